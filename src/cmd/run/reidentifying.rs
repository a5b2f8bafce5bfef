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
//! when it changed, after the backoff (a new token may be signed a moment late), or on SIGHUP.
//! The preflight checks are not run: the machine has run kubelet already.

use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument as _;

use super::joining::CONFIG_POLL;
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
use crate::node::notify::Notifier;
use crate::node::run_status::{LostIdentity, StatusFile};

/// While nothing changes, the warning is logged again this often.
const WARN_AGAIN: Duration = Duration::from_secs(300);
/// The longest wait before the same token is tried again after a failure.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// A token that was tried and failed: which (a digest, never the token), why, and when it may
/// be tried again.
struct Tried {
    digest: Vec<u8>,
    problem: String,
    again_at: Instant,
}

/// Waits for a usable token and joins again as the same node; `true` once joined, `false` when
/// a stop request came first.
pub(super) async fn join_again(
    args: &RunArgs,
    loss: IdentityLoss,
    notifier: &Notifier,
    requests: &mut Requests,
    status: &mut StatusFile,
) -> Result<bool, Error> {
    let span = tracing::info_span!("rejoining", reason = ?loss);
    let mut waiting = Waiting {
        args,
        advice: identity::advice(&config::token_place(&args.join)),
        noticed_at: state::now_rfc3339(),
        loss,
        notifier,
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
            };
            waiting.say(token_problem, status);
            match waiting.fed(requests, tokio::time::sleep(CONFIG_POLL)).await {
                Ok(()) => {}
                Err(Request::Stop) => return Ok(false),
                // SIGHUP: look (and try the token) again at once.
                Err(Request::Reload) => waiting.tried = None,
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
}

impl Waiting<'_> {
    /// Reads the configuration and, when its token is worth a try, joins again with it.
    async fn look(&mut self, requests: &mut Requests, status: &mut StatusFile) -> Result<Look, Error> {
        let join_args = self.args.join.clone();
        let loaded =
            blocking(move || Ok(config::load(&join_args, Environment::from_process()))).await?;
        let (cfg, warnings) = match loaded {
            Err(e) if e.is_missing_token() => return Ok(Look::Wait(None)),
            Err(e) => return Ok(Look::Wait(Some(format!("the configuration is not usable: {e}")))),
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
        let warnings = warnings.into_iter().map(|w| w.0).collect();
        let loss = self.loss.clone();
        match self.fed(requests, join::join_again(&cfg, warnings, &loss)).await {
            Ok(Ok(report)) => {
                for line in report.render(crate::model::output::OutputFormat::Text).lines() {
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
            Err(Request::Stop) => Ok(Look::Stopped),
            Err(Request::Reload) => {
                self.tried = None;
                Ok(Look::Wait(None))
            }
        }
    }

    /// Runs `work` until it ends (`Ok`) or a request comes (`Err`), feeding systemd's watchdog
    /// meanwhile: `run` has said READY=1, so the watchdog is armed.
    async fn fed<T>(
        &mut self,
        requests: &mut Requests,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, Request> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Ok(done),
                received = requests.next() => return Err(received),
                _ = async { self.watchdog.as_mut().expect("guarded").tick().await }, if self.watchdog.is_some() => {
                    self.notifier.watchdog();
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
