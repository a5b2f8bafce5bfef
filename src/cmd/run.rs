//! `kaas-join run`: what the systemd unit runs.
//!
//! 1. Join, unless this machine already has: while the config file or token is not there yet
//!    (cloud-init writes them later), or the join fails, it waits and tries again, saying why in
//!    its log, in systemd's STATUS= and in the run-status file — it never exits in a loop.
//! 2. Supervise kubelet as a child ([`crate::node::supervisor`]) and report the node's health as the
//!    node itself ([`crate::node::health`]). The two only share the kubelet state over a watch channel:
//!    reporting never blocks supervision, and supervision never waits on the network.
//! 3. systemd: READY=1 once kubelet answers healthz, STATUS= on every change, WATCHDOG=1 while
//!    the supervision loop is alive, EXTEND_TIMEOUT_USEC while joining or waiting so a long
//!    discovery does not trip the start timeout. Without systemd it is a plain foreground process.
//! 4. Signals: SIGTERM/SIGINT stop kubelet gracefully and exit; SIGHUP re-reads kubelet's
//!    command line and health-check address and restarts kubelet when they changed.
//!
//! The run-status file ([`crate::node::run_status::RUN_STATUS_FILE`]) is what `kaas-join status` reads.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::cli::RunArgs;
use crate::cmd::error::Error;
use crate::cmd::join;
use crate::config::{self, ConfigError, Environment};
use crate::host::files;
use crate::host::paths::{Paths, CA_CERT, KUBELET_FLAGS_ENV, KUBELET_KUBECONFIG};
use crate::model::backoff::Backoff;
use crate::model::kubelet_process::{KubeletPhase, KubeletState};
use crate::node::health::{self, HealthConfig, ReportedStatus};
use crate::node::join_state::{self as state, Phase};
use crate::node::notify::Notifier;
use crate::node::run_status::StatusFile;
use crate::node::supervisor::{self, Control, SupervisorConfig};

/// How often a missing config file or token is looked for again.
const CONFIG_POLL: Duration = Duration::from_secs(2);
/// The longest wait between two join attempts after a failure.
const JOIN_RETRY_MAX: Duration = Duration::from_secs(60);
/// While starting (before READY=1), each wait asks systemd for this much more start time.
const START_EXTENSION: Duration = Duration::from_secs(120);

/// After kubelet stopped, how long the reporter may take to write that on the Node (the unit's
/// TimeoutStopSec counts on it).
const FINAL_REPORT: Duration = Duration::from_secs(5);

/// How often the loop checks that the supervisor task is still alive.
const SUPERVISOR_CHECK: Duration = Duration::from_secs(5);

/// A running supervisor task and how to stop it.
struct Supervision {
    control: mpsc::Sender<Control>,
    handle: tokio::task::JoinHandle<Result<(), supervisor::SupervisorError>>,
    kubelet: std::path::PathBuf,
    args: Vec<String>,
    healthz_url: Option<String>,
}

impl Supervision {
    fn start(cfg: SupervisorConfig, state: &watch::Sender<KubeletState>) -> Supervision {
        tracing::info!(kubelet = %cfg.kubelet.display(), args = ?cfg.args, "supervising kubelet");
        let (control, control_rx) = mpsc::channel(4);
        let (kubelet, args, healthz_url) = (
            cfg.kubelet.clone(),
            cfg.args.clone(),
            cfg.healthz_url.clone(),
        );
        let handle = tokio::spawn(supervisor::supervise(cfg, state.clone(), control_rx));
        Supervision {
            control,
            handle,
            kubelet,
            args,
            healthz_url,
        }
    }

    fn same_command(&self, cfg: &SupervisorConfig) -> bool {
        self.kubelet == cfg.kubelet && self.args == cfg.args && self.healthz_url == cfg.healthz_url
    }

    /// Stops kubelet gracefully and waits for the supervisor to return.
    async fn stop(self) {
        let _ = self.control.send(Control::Stop).await;
        match self.handle.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("kubelet supervision ended with an error: {e}"),
            Err(e) => tracing::error!("kubelet supervision panicked: {e}"),
        }
    }
}

/// What the daemon is asked to do from outside (signals, or a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM, SIGINT: stop kubelet, write the stop, return.
    Stop,
    /// SIGHUP: re-read the config (while waiting to join) or kubelet's files (once running).
    Reload,
}

/// The requests `run` is given; a closed channel counts as [`Request::Stop`].
pub struct Requests(mpsc::Receiver<Request>);

impl Requests {
    pub fn new(rx: mpsc::Receiver<Request>) -> Requests {
        Requests(rx)
    }

    async fn next(&mut self) -> Request {
        self.0.recv().await.unwrap_or(Request::Stop)
    }
}

/// SIGTERM and SIGINT as [`Request::Stop`], SIGHUP as [`Request::Reload`], for as long as the
/// returned [`Requests`] lives.
pub fn os_signals() -> Result<Requests, Error> {
    let make =
        |kind| signal(kind).map_err(|e| Error::Internal(format!("cannot watch signals: {e}")));
    let (mut term, mut int, mut hup) = (
        make(SignalKind::terminate())?,
        make(SignalKind::interrupt())?,
        make(SignalKind::hangup())?,
    );
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                _ = term.recv() => Request::Stop,
                _ = int.recv() => Request::Stop,
                _ = hup.recv() => Request::Reload,
            };
            if tx.send(request).await.is_err() {
                return;
            }
        }
    });
    Ok(Requests::new(rx))
}

/// `kaas-join run` (see the module docs), until `requests` says stop.
pub async fn run(args: RunArgs, mut requests: Requests) -> Result<(), Error> {
    let heartbeat = crate::model::duration::parse_duration(&args.heartbeat).map_err(|reason| {
        ConfigError::InvalidDuration {
            what: "--heartbeat".into(),
            value: args.heartbeat.clone(),
            reason,
        }
    })?;
    let paths = Paths::new(&args.join.root);
    let notifier = Notifier::from_env();
    let mut status = StatusFile::new(&paths, !args.no_kubelet);

    let result = match ensure_joined(&args, &paths, &notifier, &mut requests, &mut status).await {
        Ok(true) => {
            supervise_and_report(
                &args,
                &paths,
                heartbeat,
                &notifier,
                &mut requests,
                &mut status,
            )
            .await
        }
        Ok(false) => {
            notifier.stopping();
            Ok(())
        }
        Err(e) => Err(e),
    };
    // The last word in the status file, however `run` ends (but SIGKILL): `status` then says
    // the daemon is not running, whatever --root.
    status.update(|s| {
        s.activity = match &result {
            Ok(()) => "stopped".into(),
            Err(e) => format!("stopped: {e}"),
        };
        if s.kubelet.phase != KubeletPhase::NotStarted {
            s.kubelet.phase = KubeletPhase::Stopped;
        }
        s.kubelet.pid = None;
        s.exited_at = Some(state::now_rfc3339());
    });
    result
}

/// Joined per the state file, with kubelet's kubeconfig in place.
fn is_joined(paths: &Paths) -> Result<bool, Error> {
    Ok(
        state::load(paths)?.is_some_and(|s| s.phase == Phase::Joined)
            && paths.host(KUBELET_KUBECONFIG).exists(),
    )
}

/// Joins if needed; `false` when a stop signal came first.
async fn ensure_joined(
    args: &RunArgs,
    paths: &Paths,
    notifier: &Notifier,
    requests: &mut Requests,
    status: &mut StatusFile,
) -> Result<bool, Error> {
    // 1 s doubling to JOIN_RETRY_MAX, ±20 %: after a control-plane outage, a thousand nodes
    // retrying do not come back in lockstep.
    let mut retry = Backoff::new(Duration::from_secs(1), JOIN_RETRY_MAX);
    let mut last_said = String::new();
    loop {
        if is_joined(paths)? {
            return Ok(true);
        }
        // Re-read every time: the operator (or cloud-init) may have fixed or written the config.
        // (why, and how long until the next look: the poll while an input is missing, the
        // backoff after a failure)
        let (why, wait) = match config::load(&args.join, Environment::from_process()) {
            Err(e) if is_missing_input(&e) => {
                (format!("waiting for configuration: {e}"), CONFIG_POLL)
            }
            Err(e) => (
                format!("the configuration is not usable: {e}"),
                retry.next_delay(),
            ),
            Ok((cfg, warnings)) => {
                let warnings: Vec<String> = warnings.into_iter().map(|w| w.0).collect();
                let what = format!(
                    "joining as node {} via {}",
                    cfg.node_name,
                    cfg.servers.join(", ")
                );
                tracing::info!("{what}");
                notifier.status(&what);
                notifier.extend_timeout(
                    cfg.discovery_timeout + cfg.tls_bootstrap_timeout + START_EXTENSION,
                );
                status.update(|s| s.activity = what);
                tokio::select! {
                    result = checked_join(args, &cfg, warnings) => match result {
                        Ok(report) => {
                            for line in report.render(crate::model::output::OutputFormat::Text).lines() {
                                tracing::info!(target: "kaas_join::cmd::join", "{line}");
                            }
                            continue;
                        }
                        Err(e) => (
                            format!("join failed (exit code {}): {e}", e.exit_code()),
                            retry.next_delay(),
                        ),
                    },
                    received = requests.next() => match received {
                        Request::Stop => return Ok(false),
                        Request::Reload => continue,
                    },
                }
            }
        };
        if why != last_said {
            tracing::warn!(
                "{why}; trying again every {}s or on SIGHUP",
                wait.as_secs().max(1)
            );
            last_said = why.clone();
        }
        notifier.status(&why);
        notifier.extend_timeout(wait + START_EXTENSION);
        notifier.watchdog();
        status.update(|s| s.activity = why);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            received = requests.next() => if let Request::Stop = received { return Ok(false) },
        }
    }
}

/// The preflight's local checks, then the join: an unignored preflight error is a failed
/// attempt like any other (logged, in STATUS= and the run-status file, retried with the backoff).
/// The kubelet checked is the one `run` will start (`--kubelet`), or with `--no-kubelet` the one
/// kubelet.service runs (found where packages put it).
async fn checked_join(
    args: &RunArgs,
    cfg: &config::JoinConfig,
    warnings: Vec<String>,
) -> Result<crate::cmd::join::report::JoinReport, Error> {
    let kubelet = if args.no_kubelet {
        crate::cmd::preflight::KubeletBinary::Search
    } else {
        crate::cmd::preflight::KubeletBinary::Given(args.kubelet.clone())
    };
    crate::cmd::preflight::before_join(cfg, kubelet).await?;
    join::join(cfg, warnings).await
}

/// Inputs that cloud-init or an operator has not written yet: wait for them quietly.
fn is_missing_input(e: &ConfigError) -> bool {
    match e {
        ConfigError::ConfigFileMissing { .. } | ConfigError::NoToken | ConfigError::NoServer => {
            true
        }
        ConfigError::TokenFileRead { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// kubelet's command line and health-check address, as the files say now.
fn supervisor_config(args: &RunArgs, paths: &Paths) -> Result<SupervisorConfig, Error> {
    let argv = supervisor::kubelet_command_line(paths, &args.kubelet_args)?;
    let healthz = supervisor::healthz_url(paths)?;
    let mut cfg = SupervisorConfig::new(args.kubelet.clone(), argv, healthz);
    cfg.liveness_failures = args.liveness_failures.max(1);
    Ok(cfg)
}

/// Waits (at most [`FINAL_REPORT`]) until the reporter has evaluated kubelet's stop and the API
/// server accepted it; not at all while the Node does not exist.
async fn wait_final_report(reported: &mut watch::Receiver<ReportedStatus>) {
    let written = |s: &ReportedStatus| {
        if s.node_registered == Some(false) {
            return true;
        }
        let Some(now) = s
            .conditions
            .iter()
            .find(|c| c.type_ == health::KUBELET_UNHEALTHY && c.status == "True")
        else {
            return false;
        };
        s.last_written.as_ref().is_some_and(|w| {
            w.conditions.iter().any(|c| {
                c.type_ == now.type_
                    && c.status == now.status
                    && c.reason == now.reason
                    && c.message == now.message
            })
        })
    };
    if tokio::time::timeout(FINAL_REPORT, reported.wait_for(written))
        .await
        .is_err()
    {
        tracing::warn!(
            "could not report kubelet's stop to the API server within {}s",
            FINAL_REPORT.as_secs()
        );
    }
}

/// Starts supervising kubelet; when its command line cannot be built (e.g. a syntax error in
/// `/etc/default/kubelet`), publishes `CannotStart` with the reason instead and returns `None`:
/// the node reports it (KubeletUnhealthy/KubeletCannotStart) and SIGHUP tries again. Exiting
/// would only make systemd restart us into the same error every 10 s, reporting nothing.
fn start_supervision(
    args: &RunArgs,
    paths: &Paths,
    kubelet: &watch::Sender<KubeletState>,
) -> Option<Supervision> {
    match supervisor_config(args, paths) {
        Ok(cfg) => Some(Supervision::start(cfg, kubelet)),
        Err(e) => {
            let problem = format!(
                "cannot build kubelet's command line: {e}; fix it, then reload kaas-join (SIGHUP)"
            );
            tracing::error!("{problem}");
            kubelet.send_modify(|s| {
                s.phase = KubeletPhase::CannotStart;
                s.pid = None;
                s.problem = Some(problem);
            });
            None
        }
    }
}

/// The runtime endpoint from kubelet's flags file (where join wrote it).
fn cri_endpoint(paths: &Paths) -> String {
    std::fs::read_to_string(paths.host(KUBELET_FLAGS_ENV))
        .ok()
        .and_then(|text| {
            text.split_whitespace().find_map(|w| {
                w.trim_matches('"')
                    .strip_prefix("--container-runtime-endpoint=")
                    .map(str::to_string)
            })
        })
        .unwrap_or_else(|| "unix:///run/containerd/containerd.sock".to_string())
}

fn describe(kubelet: &KubeletState, supervising: bool) -> String {
    if !supervising {
        return "reporting node health (kubelet runs outside kaas-join)".into();
    }
    let base = match kubelet.phase {
        KubeletPhase::NotStarted => "starting kubelet".to_string(),
        KubeletPhase::Starting => format!(
            "kubelet started (pid {}), waiting for healthz",
            kubelet.pid.unwrap_or(0)
        ),
        KubeletPhase::Running => format!(
            "kubelet running (pid {}, {} restarts)",
            kubelet.pid.unwrap_or(0),
            kubelet.restarts
        ),
        KubeletPhase::BackingOff => format!(
            "kubelet {}; restarting",
            kubelet
                .last_exit
                .as_ref()
                .map_or("exited".to_string(), |e| e.description.clone())
        ),
        KubeletPhase::CrashLooping => format!(
            "kubelet is crash-looping ({} restarts; last: {})",
            kubelet.restarts,
            kubelet
                .last_exit
                .as_ref()
                .map_or("?".to_string(), |e| e.description.clone())
        ),
        KubeletPhase::CannotStart | KubeletPhase::Conflict => {
            format!(
                "kubelet cannot run: {}",
                kubelet.problem.as_deref().unwrap_or("unknown")
            )
        }
        KubeletPhase::Stopped => "kubelet stopped".to_string(),
    };
    base
}

async fn supervise_and_report(
    args: &RunArgs,
    paths: &Paths,
    heartbeat: Duration,
    notifier: &Notifier,
    requests: &mut Requests,
    status: &mut StatusFile,
) -> Result<(), Error> {
    let joined = state::load(paths)?
        .ok_or_else(|| Error::Internal("the state file vanished after the join".into()))?;
    let ca_pem = std::fs::read(paths.host(CA_CERT)).map_err(|source| files::FsError::Read {
        path: paths.host(CA_CERT),
        source,
    })?;

    let (kubelet_tx, kubelet_rx) = watch::channel(KubeletState::default());
    let (reported_tx, mut reported_rx) = watch::channel(ReportedStatus::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let mut health_cfg = HealthConfig::new(
        joined.node_name.clone(),
        joined.server.clone(),
        ca_pem,
        paths.clone(),
        cri_endpoint(paths),
    );
    health_cfg.heartbeat = heartbeat;
    let health = tokio::spawn(health::run_reporter(
        health_cfg,
        kubelet_rx.clone(),
        reported_tx,
        shutdown_rx,
    ));

    let mut supervision = if args.no_kubelet {
        notifier.ready();
        None
    } else {
        start_supervision(args, paths, &kubelet_tx)
    };

    let mut kubelet_rx = kubelet_rx;
    let mut ready_sent = args.no_kubelet;
    let mut watchdog = notifier.watchdog_interval().map(tokio::time::interval);
    let mut last_activity = String::new();
    let mut publish =
        |status: &mut StatusFile, kubelet: &KubeletState, reported: &ReportedStatus| {
            let activity = describe(kubelet, !args.no_kubelet);
            if activity != last_activity {
                notifier.status(&activity);
                last_activity = activity.clone();
            }
            status.update(|s| {
                s.activity = activity;
                s.kubelet = kubelet.clone();
                s.reported = reported.clone();
            });
        };
    publish(status, &kubelet_rx.borrow(), &reported_rx.borrow());

    loop {
        tokio::select! {
            received = requests.next() => match received {
                Request::Stop => break,
                Request::Reload => {
                    tracing::info!("SIGHUP: re-reading kubelet's configuration");
                    if supervision.is_none() && !args.no_kubelet {
                        // kubelet's command line was not usable: try the fixed one.
                        supervision = start_supervision(args, paths, &kubelet_tx);
                    } else if let Some(running) = supervision.take() {
                        supervision = Some(match supervisor_config(args, paths) {
                            Ok(cfg) if running.same_command(&cfg) => {
                                tracing::info!("kubelet's command line and health check are unchanged");
                                running
                            }
                            Ok(cfg) => {
                                tracing::info!("kubelet's configuration changed: restarting kubelet");
                                running.stop().await;
                                Supervision::start(cfg, &kubelet_tx)
                            }
                            Err(e) => {
                                tracing::error!(
                                    "keeping the running kubelet: the new configuration is not usable: {e}"
                                );
                                running
                            }
                        });
                    }
                }
            },
            _ = kubelet_rx.changed() => {
                let kubelet = kubelet_rx.borrow_and_update().clone();
                if !ready_sent && kubelet.phase == KubeletPhase::Running {
                    notifier.ready();
                    ready_sent = true;
                }
                if !ready_sent {
                    notifier.extend_timeout(START_EXTENSION);
                }
                publish(status, &kubelet, &reported_rx.borrow());
            }
            changed = reported_rx.changed() => {
                if changed.is_ok() {
                    let reported = reported_rx.borrow_and_update().clone();
                    publish(status, &kubelet_rx.borrow(), &reported);
                }
            }
            _ = async { watchdog.as_mut().expect("guarded").tick().await }, if watchdog.is_some() => {
                // Only while the supervision loop is alive: a wedged supervisor must be noticed.
                if supervision.as_ref().is_none_or(|s| !s.handle.is_finished()) {
                    notifier.watchdog();
                }
            }
            _ = tokio::time::sleep(SUPERVISOR_CHECK) => {}
        }
        if supervision.as_ref().is_some_and(|s| s.handle.is_finished()) {
            // The supervisor returns only when told to stop, or when it cannot start its
            // spawner thread: a node without kubelet is no state to stay in. Exit non-zero so
            // systemd restarts us.
            let Some(ended) = supervision.take() else {
                unreachable!()
            };
            let why = match ended.handle.await {
                Ok(Ok(())) => "ended unexpectedly".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("panicked: {e}"),
            };
            let _ = shutdown_tx.send(true);
            return Err(Error::Internal(format!("kubelet supervision {why}")));
        }
    }

    notifier.stopping();
    notifier.status("stopping kubelet");
    if let Some(running) = supervision.take() {
        running.stop().await;
        // The reporter stops at once when told to: first let it tell the Node that kubelet is
        // not running any more, or the Node keeps saying "running and healthy" meanwhile.
        wait_final_report(&mut reported_rx).await;
        // The loop is over: publish the stop (its exit, "stopped by kaas-join") and the report.
        let (kubelet, reported) = (kubelet_rx.borrow().clone(), reported_rx.borrow().clone());
        status.update(|s| {
            s.kubelet = kubelet;
            s.reported = reported;
        });
    }
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), health).await;
    Ok(())
}
