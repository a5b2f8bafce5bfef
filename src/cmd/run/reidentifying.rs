//! `run` while the node's identity is lost ([`crate::model::identity`]): kubelet is stopped
//! (`supervising` returned, or it was never started), and `run` waits for a bootstrap token to
//! join again with, as the same node ([`join::join_again`]). Then `run` supervises kubelet again.
//!
//! While it waits it says what happened and how to fix it (the command that mints a token, where
//! to put it): in its log (a warning when that changes, and again every [`WARN_AGAIN`]), in
//! systemd's STATUS= and in the run-status file (`identityLost`, which `kaas-join status` shows).
//!
//! The token comes from the same sources as a first join's (the config file's `tokenFile` or
//! `token`, `--token-file`, `KAAS_JOIN_TOKEN`), re-read every [`CONFIG_POLL`]: a token written
//! to the token file later is found without a restart. A token that was tried and failed
//! (expired or unknown: exit 6, 7, 13; or the control plane did not answer) is tried again only
//! when it changed, after the backoff (a new token may be signed a moment late), or on SIGHUP;
//! a new token also cuts short an attempt still running with the old one. An attempt's
//! discovery gives up after [`DISCOVERY_MAX`], so that an unusable token is reported soon.
//! The preflight checks are not run: the machine has run kubelet already.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument as _;

use super::joining::{CONFIG_POLL, START_EXTENSION};
use super::{blocking, Request, Requests};
use crate::cli::RunArgs;
use crate::cmd::error::Error;
use crate::cmd::join;
use crate::config::{self, Environment, JoinConfig};
use crate::model::backoff::Backoff;
use crate::model::exit_code::ExitCode;
use crate::model::identity::{self, IdentityLoss};
use crate::model::kubelet_process::KubeletPhase;
use crate::node::join_state as state;
use crate::node::metrics::Metrics;
use crate::node::notify::Notifier;
use crate::node::run_status::{LostIdentity, StatusFile};

/// While nothing changes, the warning is logged again this often.
const WARN_AGAIN: Duration = Duration::from_secs(300);
/// The longest wait before the same token is tried again after a failure.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// The longest discovery of an attempt: a token the cluster has not signed (expired, unknown)
/// makes discovery retry until its timeout, and the operator must hear that it is not usable
/// sooner than a first join's 5 minutes. The waiting loop retries anyway.
const DISCOVERY_MAX: Duration = Duration::from_secs(15);

/// A token that was tried and failed: which (a digest, never the token), why, and when it may
/// be tried again.
struct Tried {
    digest: Vec<u8>,
    problem: String,
    again_at: Instant,
}

/// Waits for a usable token and joins again as the same node; `true` once joined, `false` when
/// a stop request came first. `starting`: READY=1 was not sent yet (the certificate expired
/// while the machine was off), so each wait asks systemd for more start time, as the first
/// join's do.
pub(super) async fn join_again(
    args: &RunArgs,
    loss: IdentityLoss,
    starting: bool,
    notifier: &Notifier,
    requests: &mut Requests,
    status: &mut StatusFile,
    metrics: &Arc<Metrics>,
) -> Result<bool, Error> {
    let span = tracing::info_span!("rejoining", reason = ?loss);
    let mut waiting = Waiting {
        args,
        advice: identity::advice(&config::token_place(&args.join)),
        noticed_at: state::now_rfc3339(),
        loss,
        notifier,
        metrics,
        starting,
        watchdog: notifier.watchdog_interval().map(tokio::time::interval),
        retry: Backoff::new(Duration::from_secs(1), RETRY_MAX),
        tried: None,
        last_said: String::new(),
        logged_at: None,
    };
    async move {
        loop {
            let token_problem = match waiting.look(requests, status).await? {
                Look::Joined => return Ok(true),
                Look::Stopped => return Ok(false),
                Look::Wait(problem) => problem,
                Look::Again => continue,
            };
            waiting.say(token_problem, status);
            if waiting.starting {
                notifier.extend_timeout(CONFIG_POLL + START_EXTENSION);
            }
            match waiting
                .fed(requests, tokio::time::sleep(CONFIG_POLL), None)
                .await
            {
                Ok(()) | Err(Interrupt::TokenChanged) => {}
                Err(Interrupt::Request(Request::Stop)) => return Ok(false),
                // SIGHUP: look (and try the token) again at once.
                Err(Interrupt::Request(Request::Reload)) => waiting.tried = None,
            }
        }
    }
    .instrument(span)
    .await
}

/// The waiting loop's state.
struct Waiting<'a> {
    args: &'a RunArgs,
    loss: IdentityLoss,
    /// The command that mints a token, and where to put it.
    advice: String,
    noticed_at: String,
    notifier: &'a Notifier,
    /// Where the attempts, the join's duration and its requests are counted.
    metrics: &'a Arc<Metrics>,
    /// READY=1 not sent yet: ask systemd for more start time.
    starting: bool,
    watchdog: Option<tokio::time::Interval>,
    retry: Backoff,
    tried: Option<Tried>,
    last_said: String,
    logged_at: Option<Instant>,
}

/// What one look at the configuration led to.
enum Look {
    Joined,
    Stopped,
    /// Not joined yet; what is wrong with the token, if something is.
    Wait(Option<String>),
    /// Look again at once (SIGHUP, or a new token while an attempt ran).
    Again,
}

/// What cut a piece of work short.
enum Interrupt {
    Request(Request),
    /// The token in the configuration is another one now: try that one instead.
    TokenChanged,
}

impl Waiting<'_> {
    /// Reads the configuration and, when its token is worth a try, joins again with it.
    async fn look(
        &mut self,
        requests: &mut Requests,
        status: &mut StatusFile,
    ) -> Result<Look, Error> {
        let (cfg, warnings) = match self.load().await? {
            Err(e) if e.is_missing_token() => return Ok(Look::Wait(None)),
            Err(e) => {
                return Ok(Look::Wait(Some(format!(
                    "the configuration is not usable: {e}"
                ))))
            }
            Ok(loaded) => loaded,
        };
        let digest = token_digest(&cfg);
        let due = self
            .tried
            .as_ref()
            .is_none_or(|t| t.digest != digest || Instant::now() >= t.again_at);
        if !due {
            return Ok(Look::Wait(self.tried.as_ref().map(|t| t.problem.clone())));
        }
        self.say_attempt(&cfg, status);
        if self.starting {
            let longest = DISCOVERY_MAX.min(cfg.discovery_timeout) + cfg.tls_bootstrap_timeout;
            self.notifier.extend_timeout(longest + START_EXTENSION);
        }
        let warnings = warnings.into_iter().map(|w| w.0).collect();
        let loss = self.loss.clone();
        let cfg = JoinConfig {
            discovery_timeout: cfg.discovery_timeout.min(DISCOVERY_MAX),
            ..cfg
        };
        self.metrics.join_attempted();
        let started = Instant::now();
        let counter = self.metrics.request_counter();
        let attempt = join::join_again(&cfg, warnings, &loss, counter);
        match self.fed(requests, attempt, Some(&digest)).await {
            Ok(Ok(report)) => {
                self.metrics.joined(started.elapsed());
                for line in report
                    .render(crate::model::output::OutputFormat::Text)
                    .lines()
                {
                    tracing::info!(target: "kaas_join::cmd::join", "{line}");
                }
                status.update(|s| s.identity_lost = None);
                Ok(Look::Joined)
            }
            Ok(Err(e)) => {
                let problem = failure(&cfg, &e);
                self.tried = Some(Tried {
                    digest,
                    problem: problem.clone(),
                    again_at: Instant::now() + self.retry.next_delay(),
                });
                Ok(Look::Wait(Some(problem)))
            }
            Err(Interrupt::Request(Request::Stop)) => Ok(Look::Stopped),
            Err(Interrupt::Request(Request::Reload)) | Err(Interrupt::TokenChanged) => {
                self.tried = None;
                Ok(Look::Again)
            }
        }
    }

    /// The configuration as the files and the environment say now (read off the async worker).
    async fn load(
        &self,
    ) -> Result<Result<(JoinConfig, Vec<config::Warning>), config::ConfigError>, Error> {
        let join_args = self.args.join.clone();
        blocking(move || Ok(config::load(&join_args, Environment::from_process()))).await
    }

    /// Runs `work` until it ends (`Ok`) or something cuts it short (`Err`): a request, or, with
    /// `token` (the digest of the token it runs with), a new token in the configuration (looked
    /// for every [`CONFIG_POLL`]: an attempt with an expired token retries discovery until its
    /// timeout, and the good token must not wait for that). Cutting a join short is as safe as
    /// a crash: it is made to resume. Feeds systemd's watchdog meanwhile: `run` said READY=1.
    async fn fed<T>(
        &mut self,
        requests: &mut Requests,
        work: impl std::future::Future<Output = T>,
        token: Option<&[u8]>,
    ) -> Result<T, Interrupt> {
        tokio::pin!(work);
        let mut poll = tokio::time::interval_at(Instant::now() + CONFIG_POLL, CONFIG_POLL);
        loop {
            tokio::select! {
                done = &mut work => return Ok(done),
                received = requests.next() => return Err(Interrupt::Request(received)),
                _ = async { self.watchdog.as_mut().expect("guarded").tick().await }, if self.watchdog.is_some() => {
                    self.notifier.watchdog();
                }
                _ = poll.tick(), if token.is_some() => {
                    let now = self.load().await.ok().and_then(Result::ok).map(|(cfg, _)| token_digest(&cfg));
                    if now.is_some_and(|d| Some(d.as_slice()) != token) {
                        tracing::info!("the bootstrap token changed: trying the new one");
                        return Err(Interrupt::TokenChanged);
                    }
                }
            }
        }
    }

    /// Says that an attempt starts (STATUS=, the status file, the log).
    fn say_attempt(&mut self, cfg: &JoinConfig, status: &mut StatusFile) {
        let what = format!(
            "joining again as node {} via {}",
            cfg.node_name,
            cfg.servers.join(", ")
        );
        tracing::info!("{what}");
        self.notifier.status(&what);
        status.update(|s| s.activity = what.clone());
        self.last_said = what;
    }

    /// Says why kubelet is stopped and how to fix it: STATUS= and the status file on a change,
    /// the log on a change and then every [`WARN_AGAIN`].
    fn say(&mut self, token_problem: Option<String>, status: &mut StatusFile) {
        let (loss, advice) = (&self.loss, &self.advice);
        let why = match &token_problem {
            None => format!(
                "{}; kubelet is stopped until the node joins again: {advice}",
                loss.what()
            ),
            Some(problem) => format!(
                "{}; kubelet is stopped until the node joins again; {problem}: {advice}",
                loss.what()
            ),
        };
        let changed = why != self.last_said;
        if changed || self.logged_at.is_none_or(|t| t.elapsed() >= WARN_AGAIN) {
            tracing::warn!("{why}");
            self.logged_at = Some(Instant::now());
        }
        if !changed {
            return;
        }
        self.notifier.status(&why);
        let lost = LostIdentity {
            loss: loss.clone(),
            noticed_at: self.noticed_at.clone(),
            advice: advice.to_string(),
            token_problem,
        };
        status.update(|s| {
            s.activity = why.clone();
            s.identity_lost = Some(lost);
            if s.kubelet.phase != KubeletPhase::NotStarted {
                s.kubelet.phase = KubeletPhase::Stopped;
            }
            s.kubelet.pid = None;
        });
        self.last_said = why;
    }
}

/// What went wrong with an attempt, in words that say what to do: for a token the cluster does
/// not take (exit 6, 7, 13), that it is not usable; else the error as it is.
fn failure(cfg: &JoinConfig, e: &Error) -> String {
    let code = e.exit_code();
    match code {
        ExitCode::NoSignature | ExitCode::SignatureMismatch | ExitCode::TokenRejected => format!(
            "the bootstrap token {} is not usable (exit code {code}: {e}), a new one is needed",
            cfg.token.id()
        ),
        _ => format!("joining again failed (exit code {code}): {e}"),
    }
}

/// Tells tokens apart without keeping one: SHA-256 of the token.
fn token_digest(cfg: &JoinConfig) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, cfg.token.bearer().as_bytes())
        .as_ref()
        .to_vec()
}
