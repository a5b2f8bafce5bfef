//! `kaas-join run`: what the systemd unit runs.
//!
//! 1. Join, unless this machine already has: while the config file or token is not there yet
//!    (cloud-init writes them later), or the join fails, it waits and tries again, saying why in
//!    its log, in systemd's STATUS= and in the run-status file — it never exits in a loop
//!    (`joining`).
//! 2. Supervise kubelet as a child ([`crate::node::supervisor`]) and report the node's health as the
//!    node itself ([`crate::node::health`]). The two only share the kubelet state over a watch channel:
//!    reporting never blocks supervision, and supervision never waits on the network
//!    (`supervising`).
//! 3. When the node's identity is lost (kubelet's client certificate expired, or the API server
//!    keeps rejecting it: [`crate::model::identity`]), stop kubelet, wait for a bootstrap token
//!    and join again as the same node, saying what happened and how to fix it; then back to 2
//!    (`reidentifying`). A machine whose certificate expired while it was off goes there before
//!    kubelet starts.
//! 4. systemd: READY=1 once kubelet answers healthz, STATUS= on every change, WATCHDOG=1 while
//!    the supervision loop is alive, EXTEND_TIMEOUT_USEC while joining or waiting so a long
//!    discovery does not trip the start timeout. Without systemd it is a plain foreground process.
//! 5. Signals: SIGTERM/SIGINT stop kubelet gracefully and exit; SIGHUP re-reads kubelet's
//!    command line and health-check address and restarts kubelet when they changed.
//!
//! The run-status file ([`crate::node::run_status::RUN_STATUS_FILE`]) is what `kaas-join status`
//! reads; it is written by its own thread ([`StatusFile`]), and the other file system calls run
//! in `spawn_blocking` (`blocking`): the async worker, which the health reporter shares, never
//! waits on the disk.
//!
//! Metrics: [`crate::node::metrics`] on `--metrics-address` (loopback by default) from the
//! start, joining included; the join counts its attempts and duration here, the supervisor and
//! the reporter what they see, the API clients every answer.
//!
//! Tracing: each activity runs in a span: `waiting_for_config`, `join_attempt{attempt, node,
//! server}`, `join_retry_wait{attempt}`, `supervising_kubelet{node, server, supervised}` and,
//! inside it, the reporter's `health_reporter{node, server}`, `rejoining{reason}` while the
//! identity is lost. No span carries the token.

mod joining;
mod reidentifying;
mod supervising;

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::cli::RunArgs;
use crate::cmd::error::Error;
use crate::cmd::join;
use crate::config::ConfigError;
use crate::host::paths::Paths;
use crate::model::kubelet_process::KubeletPhase;
use crate::node::join_state as state;
use crate::node::metrics::{self, Metrics};
use crate::node::notify::Notifier;
use crate::node::run_status::StatusFile;

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
    let heartbeat = duration_arg("--heartbeat", &args.heartbeat)?;
    let version_check_interval =
        duration_arg("--version-check-interval", &args.version_check_interval)?;
    let upgrade_timeout = duration_arg("--upgrade-timeout", &args.upgrade_timeout)?;
    let paths = Paths::new(&args.join.root);
    let notifier = Notifier::from_env();
    let mut status = StatusFile::new(&paths, !args.no_kubelet);
    // Served from the start (joining included) until `run` returns.
    let metrics = Arc::new(Metrics::default());
    let _metrics_server = args
        .metrics_listen()
        .map(|address| metrics::start(address, metrics.clone()));

    let joined = joining::ensure_joined(
        &args,
        &paths,
        &notifier,
        &mut requests,
        &mut status,
        &metrics,
    )
    .await;
    let result = match joined {
        Ok(true) => {
            let daemon = Daemon {
                args: &args,
                paths: &paths,
                heartbeat,
                version_check_interval,
                upgrade_timeout,
                notifier: &notifier,
                metrics: &metrics,
            };
            daemon.supervise(&mut requests, &mut status).await
        }
        Ok(false) => {
            notifier.stopping();
            Ok(())
        }
        Err(e) => Err(e),
    };
    // The last word in the status file, however `run` ends (but SIGKILL): `status` then says
    // the daemon is not running, whatever --root. It is on disk before `run` returns.
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
    status.close().await;
    result
}

/// What the joined daemon runs with.
struct Daemon<'a> {
    args: &'a RunArgs,
    paths: &'a Paths,
    heartbeat: std::time::Duration,
    /// `--version-check-interval`: see [`crate::node::version_check`].
    version_check_interval: std::time::Duration,
    /// `--upgrade-timeout`: how long an upgraded kubelet has to pass its healthz.
    upgrade_timeout: std::time::Duration,
    notifier: &'a Notifier,
    metrics: &'a Arc<Metrics>,
}

impl Daemon<'_> {
    /// Supervises kubelet until a stop request; whenever the node's identity is lost (before
    /// kubelet starts, or while it runs), joins again first.
    async fn supervise(
        &self,
        requests: &mut Requests,
        status: &mut StatusFile,
    ) -> Result<(), Error> {
        let paths = self.paths.clone();
        let mut lost = blocking(move || join::lost_before_start(&paths)).await?;
        let mut ready_sent = false;
        loop {
            if let Some(loss) = lost.take() {
                let starting = !ready_sent;
                let joined = reidentifying::join_again(
                    self.args,
                    loss,
                    starting,
                    self.notifier,
                    requests,
                    status,
                    self.metrics,
                )
                .await?;
                if !joined {
                    self.notifier.stopping();
                    return Ok(());
                }
                if self.args.no_kubelet {
                    tracing::warn!("joined again with a new client certificate: restart kubelet.service so that kubelet uses it");
                }
            }
            let supervised =
                supervising::supervise_and_report(self, requests, status, ready_sent).await?;
            match supervised {
                supervising::Supervised::Stopped => return Ok(()),
                supervising::Supervised::IdentityLost {
                    loss,
                    ready_sent: sent,
                } => {
                    ready_sent = sent;
                    lost = Some(loss);
                }
            }
        }
    }
}

/// A duration argument (`5m`, `30s`), or the usage error naming it.
fn duration_arg(what: &str, value: &str) -> Result<std::time::Duration, Error> {
    crate::model::duration::parse_duration(value).map_err(|reason| {
        ConfigError::InvalidDuration {
            what: what.into(),
            value: value.into(),
            reason,
        }
        .into()
    })
}

/// Runs `work` (file system calls) in `spawn_blocking`, in the caller's span, so the async
/// worker never waits on the disk.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| Error::Internal(format!("a file system task failed: {e}")))?
}
