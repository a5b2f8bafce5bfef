//! `run`'s first step: join, unless this machine already has. While the configuration is
//! missing or unusable, or a join attempt fails, it waits and tries again (the poll while an
//! input is missing, the backoff after a failure, at once on SIGHUP), saying why in its log, in
//! systemd's STATUS= and in the run-status file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument as _;

use super::{blocking, Request, Requests};
use crate::cli::RunArgs;
use crate::cmd::error::Error;
use crate::cmd::join;
use crate::config::{self, ConfigError, Environment, JoinConfig};
use crate::host::paths::{Paths, KUBELET_KUBECONFIG};
use crate::model::backoff::Backoff;
use crate::node::join_state::{self as state, Phase};
use crate::node::metrics::Metrics;
use crate::node::notify::Notifier;
use crate::node::run_status::StatusFile;

/// How often a missing config file or token is looked for again.
pub(super) const CONFIG_POLL: Duration = Duration::from_secs(2);
/// The longest wait between two join attempts after a failure.
const JOIN_RETRY_MAX: Duration = Duration::from_secs(60);
/// While starting (before READY=1), each wait asks systemd for this much more start time.
pub(super) const START_EXTENSION: Duration = Duration::from_secs(120);

/// How one join attempt ended.
enum Attempt {
    /// Joined, or SIGHUP: look at the machine again.
    LookAgain,
    Stopped,
    Failed(Error),
}

/// What keeps `run` from joining now, and how long until the next look.
struct Wait {
    why: String,
    wait: Duration,
    span: tracing::Span,
}

/// Joins if needed; `false` when a stop signal came first.
pub(super) async fn ensure_joined(
    args: &RunArgs,
    paths: &Paths,
    notifier: &Notifier,
    requests: &mut Requests,
    status: &mut StatusFile,
    metrics: &Arc<Metrics>,
) -> Result<bool, Error> {
    // 1 s doubling to JOIN_RETRY_MAX, ±20 %: after a control-plane outage, a thousand nodes
    // retrying do not come back in lockstep.
    let mut retry = Backoff::new(Duration::from_secs(1), JOIN_RETRY_MAX);
    let mut last_said = String::new();
    let mut attempts = 0u32;
    loop {
        let at = paths.clone();
        if blocking(move || is_joined(&at)).await? {
            return Ok(true);
        }
        // Re-read every time: the operator (or cloud-init) may have fixed or written the config.
        let join_args = args.join.clone();
        let loaded = blocking(move || Ok(config::load(&join_args, Environment::from_process())));
        let wait = match loaded.await? {
            Err(e) if is_missing_input(&e) => Wait {
                why: format!("waiting for configuration: {e}"),
                wait: CONFIG_POLL,
                span: tracing::info_span!("waiting_for_config"),
            },
            Err(e) => Wait {
                why: format!("the configuration is not usable: {e}"),
                wait: retry.next_delay(),
                span: tracing::info_span!("waiting_for_config"),
            },
            Ok((cfg, warnings)) => {
                attempts += 1;
                metrics.join_attempted();
                let span = tracing::info_span!(
                    "join_attempt",
                    attempt = attempts,
                    node = %cfg.node_name,
                    server = %cfg.servers.join(", "),
                );
                let attempt =
                    join_attempt(args, &cfg, warnings, notifier, requests, status, metrics)
                        .instrument(span)
                        .await;
                match attempt {
                    Attempt::LookAgain => continue,
                    Attempt::Stopped => return Ok(false),
                    Attempt::Failed(e) => Wait {
                        why: format!("join failed (exit code {}): {e}", e.exit_code()),
                        wait: retry.next_delay(),
                        span: tracing::info_span!("join_retry_wait", attempt = attempts),
                    },
                }
            }
        };
        let span = wait.span.clone();
        let stopped = wait_before_next_look(wait, &mut last_said, notifier, requests, status)
            .instrument(span)
            .await;
        if stopped {
            return Ok(false);
        }
    }
}

/// Joined per the state file, with kubelet's kubeconfig in place (blocking).
fn is_joined(paths: &Paths) -> Result<bool, Error> {
    Ok(
        state::load(paths)?.is_some_and(|s| s.phase == Phase::Joined)
            && paths.host(KUBELET_KUBECONFIG).exists(),
    )
}

/// One join attempt with a usable configuration, said in the log, STATUS= and the status file;
/// a stop or reload request cuts it short.
async fn join_attempt(
    args: &RunArgs,
    cfg: &JoinConfig,
    warnings: Vec<config::Warning>,
    notifier: &Notifier,
    requests: &mut Requests,
    status: &mut StatusFile,
    metrics: &Arc<Metrics>,
) -> Attempt {
    let warnings: Vec<String> = warnings.into_iter().map(|w| w.0).collect();
    let what = format!(
        "joining as node {} via {}",
        cfg.node_name,
        cfg.servers.join(", ")
    );
    tracing::info!("{what}");
    notifier.status(&what);
    notifier.extend_timeout(cfg.discovery_timeout + cfg.tls_bootstrap_timeout + START_EXTENSION);
    status.update(|s| s.activity = what);
    let started = Instant::now();
    tokio::select! {
        result = checked_join(args, cfg, warnings, metrics) => match result {
            Ok(report) => {
                metrics.joined(started.elapsed());
                for line in report.render(crate::model::output::OutputFormat::Text).lines() {
                    tracing::info!(target: "kaas_join::cmd::join", "{line}");
                }
                Attempt::LookAgain
            }
            Err(e) => Attempt::Failed(e),
        },
        received = requests.next() => match received {
            Request::Stop => Attempt::Stopped,
            Request::Reload => Attempt::LookAgain,
        },
    }
}

/// Says why `run` is not joined (the log only when the reason changed) and waits for the next
/// look; `true` when a stop request came meanwhile.
async fn wait_before_next_look(
    Wait { why, wait, .. }: Wait,
    last_said: &mut String,
    notifier: &Notifier,
    requests: &mut Requests,
    status: &mut StatusFile,
) -> bool {
    if why != *last_said {
        tracing::warn!(
            "{why}; trying again every {}s or on SIGHUP",
            wait.as_secs().max(1)
        );
        last_said.clone_from(&why);
    }
    notifier.status(&why);
    notifier.extend_timeout(wait + START_EXTENSION);
    notifier.watchdog();
    status.update(|s| s.activity = why);
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        received = requests.next() => received == Request::Stop,
    }
}

/// The preflight's local checks, then the join: an unignored preflight error is a failed
/// attempt like any other (logged, in STATUS= and the run-status file, retried with the backoff).
/// The kubelet checked is the one `run` will start (`--kubelet`), or with `--no-kubelet` the one
/// kubelet.service runs (found where packages put it).
async fn checked_join(
    args: &RunArgs,
    cfg: &JoinConfig,
    warnings: Vec<String>,
    metrics: &Arc<Metrics>,
) -> Result<join::report::JoinReport, Error> {
    let kubelet = if args.no_kubelet {
        crate::cmd::preflight::KubeletBinary::Search
    } else {
        crate::cmd::preflight::KubeletBinary::Given(args.kubelet.clone())
    };
    crate::cmd::preflight::before_join(cfg, kubelet).await?;
    join::join_with_counter(cfg, warnings, metrics.request_counter()).await
}

/// Inputs that cloud-init or an operator has not written yet: wait for them quietly.
fn is_missing_input(e: &ConfigError) -> bool {
    match e {
        ConfigError::ConfigFileMissing { .. } | ConfigError::NoServer => true,
        e => e.is_missing_token(),
    }
}
