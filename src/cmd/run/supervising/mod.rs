//! `run` once joined: kubelet supervised as a child (unless `--no-kubelet`), the health
//! reporter running beside it, systemd (READY=1, STATUS=, WATCHDOG=1) and the run-status file
//! kept up to date, SIGHUP re-reading kubelet's command line, SIGTERM stopping kubelet and
//! having its stop written on the Node before `run` returns.
//!
//! It also watches the node's identity: when what the reporter saw (the client certificate's
//! notAfter, the API server's 401 answers) says it is lost ([`crate::model::identity`]), it
//! stops kubelet (crash-looping against an API server that refuses it helps nobody) and returns
//! [`Supervised::IdentityLost`]: `run` then joins again (`reidentifying`) before kubelet runs
//! again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::Instrument as _;

use super::joining::START_EXTENSION;
use super::{blocking, Daemon, Request, Requests};
use crate::cli::RunArgs;
use crate::cmd::error::Error;
use crate::host::files;
use crate::host::paths::{Paths, CA_CERT};
use crate::model::identity::IdentityLoss;
use crate::model::kubelet_process::{KubeletPhase, KubeletState};
use crate::node::health::{self, HealthConfig, ReportedStatus};
use crate::node::join_state as state;
use crate::node::metrics::Metrics;
use crate::node::notify::Notifier;
use crate::node::run_status::StatusFile;
use crate::node::supervisor::{self, Control, SupervisorConfig};
use alongside::Alongside;

mod alongside;

/// After kubelet stopped, how long the reporter may take to write that on the Node (the unit's
/// TimeoutStopSec counts on it).
const FINAL_REPORT: Duration = Duration::from_secs(5);
/// After that, how long the reporter may take to stop.
const REPORTER_STOP: Duration = Duration::from_secs(5);

/// The runtime endpoint probed when kubelet's command line names none (containerd's socket, as
/// `join` detects first).
const DEFAULT_CRI_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";

/// How often the loop checks that the supervisor task is still alive (and the identity).
const SUPERVISOR_CHECK: Duration = Duration::from_secs(5);

/// How supervising ended (but on an error).
#[derive(Debug)]
pub(super) enum Supervised {
    /// A stop request: kubelet is stopped and its stop reported.
    Stopped,
    /// The node's identity is lost: kubelet is stopped, the reporter too.
    IdentityLost {
        loss: IdentityLoss,
        /// READY=1 was sent (it is not sent twice).
        ready_sent: bool,
    },
}

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

/// Supervises kubelet and reports the node's health until a stop request (then stops kubelet
/// and lets the reporter write that), until the node's identity is lost (then stops kubelet),
/// or until the supervisor ends on its own (an error). `ready_sent`: READY=1 went out already.
pub(super) async fn supervise_and_report(
    daemon: &Daemon<'_>,
    requests: &mut Requests,
    status: &mut StatusFile,
    ready_sent: bool,
) -> Result<Supervised, Error> {
    let Daemon {
        args,
        paths,
        heartbeat,
        notifier,
        metrics,
        ..
    } = *daemon;
    let mut health_cfg = reporter_config(paths, heartbeat, &args.kubelet_args).await?;
    health_cfg.requests = metrics.request_counter();
    health_cfg.metrics = metrics.clone();
    let (kubelet_tx, kubelet_rx) = watch::channel(KubeletState::default());
    let alongside = Alongside::start(daemon, &health_cfg, &kubelet_tx);
    let span = tracing::info_span!(
        "supervising_kubelet",
        node = %health_cfg.node_name,
        server = %health_cfg.server,
        supervised = !args.no_kubelet,
    );
    async move {
        let (reported_tx, reported_rx) = watch::channel(ReportedStatus::default());
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        metrics.show_kubelet(kubelet_rx.clone());
        metrics.show_conditions(reported_rx.clone(), |r: &ReportedStatus| &r.conditions);
        // kubelet first, the reporter after: on this single-threaded runtime the reporter's
        // first round (probes, its TLS client, the Node lookup) would otherwise run before
        // kubelet is forked, and kubelet's start-up is what the node waits for. The reporter
        // sees kubelet's state from the channel either way.
        let reporter_kubelet_rx = kubelet_rx.clone();
        let mut node = Node::start(
            args,
            paths,
            notifier,
            kubelet_tx,
            kubelet_rx,
            reported_rx,
            metrics.clone(),
        )
        .await;
        let reporter = tokio::spawn(health::run_reporter(
            health_cfg,
            reporter_kubelet_rx,
            reported_tx,
            shutdown_rx,
        ));
        node.ready_sent |= ready_sent;
        node.alongside = Some(alongside);
        node.share_control();
        let kubelet = node.kubelet_rx.borrow().clone();
        let reported = node.reported_rx.borrow().clone();
        node.publish(status, &kubelet, &reported);
        let ended = match node.until_stopped(requests, status).await {
            Ok(ended) => ended,
            Err(e) => {
                let _ = shutdown_tx.send(true);
                return Err(e);
            }
        };
        let ended = match ended {
            Ended::Stopped => {
                node.stop(status).await;
                Supervised::Stopped
            }
            Ended::IdentityLost(loss) => {
                let ready_sent = node.ready_sent;
                node.stop_for_identity(status, &loss).await;
                Supervised::IdentityLost { loss, ready_sent }
            }
        };
        let _ = shutdown_tx.send(true);
        let _ = tokio::time::timeout(REPORTER_STOP, reporter).await;
        Ok(ended)
    }
    .instrument(span)
    .await
}

/// The reporter's configuration: the node and server from the state file, the cluster CA, the
/// runtime endpoint kubelet is given ([`cri_endpoint`]; file reads: in `spawn_blocking`).
async fn reporter_config(
    paths: &Paths,
    heartbeat: Duration,
    kubelet_args: &[String],
) -> Result<HealthConfig, Error> {
    let (paths, kubelet_args) = (paths.clone(), kubelet_args.to_vec());
    blocking(move || {
        let joined = state::load(&paths)?
            .ok_or_else(|| Error::Internal("the state file vanished after the join".into()))?;
        let ca_pem = std::fs::read(paths.host(CA_CERT)).map_err(|source| files::FsError::Read {
            path: paths.host(CA_CERT),
            source,
        })?;
        let cri_endpoint = cri_endpoint(&paths, &kubelet_args);
        let mut cfg =
            HealthConfig::new(joined.node_name, joined.server, ca_pem, paths, cri_endpoint);
        cfg.heartbeat = heartbeat;
        Ok(cfg)
    })
    .await
}

/// Where kubelet finds its container runtime, so the health probe checks that socket: the
/// `--container-runtime-endpoint` of kubelet's command line as `run` builds it (the flags file
/// `join` wrote, `KUBELET_EXTRA_ARGS`, `--kubelet-arg`), else containerd's default. (The flags
/// file's first word is `KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=...`: reading it word
/// by word never found the flag, and every node probed the default socket.)
fn cri_endpoint(paths: &Paths, kubelet_args: &[String]) -> String {
    supervisor::kubelet_command_line(paths, kubelet_args)
        .ok()
        .and_then(|argv| supervisor::container_runtime_endpoint(&argv))
        .unwrap_or_else(|| DEFAULT_CRI_ENDPOINT.to_string())
}

/// kubelet's command line and health-check address, as the files say now (read in
/// `spawn_blocking`).
async fn supervisor_config(
    args: &RunArgs,
    paths: &Paths,
    metrics: &Arc<Metrics>,
) -> Result<SupervisorConfig, Error> {
    let (paths, extra) = (paths.clone(), args.kubelet_args.clone());
    let (argv, healthz) = blocking(move || {
        let argv = supervisor::kubelet_command_line(&paths, &extra)?;
        Ok((argv, supervisor::healthz_url(&paths)?))
    })
    .await?;
    let mut cfg = SupervisorConfig::new(args.kubelet.clone(), argv, healthz);
    cfg.liveness_failures = args.liveness_failures.max(1);
    cfg.metrics = metrics.clone();
    Ok(cfg)
}

/// Starts supervising kubelet; when its command line cannot be built (e.g. a syntax error in
/// `/etc/default/kubelet`), publishes `CannotStart` with the reason instead and returns `None`:
/// the node reports it (KubeletUnhealthy/KubeletCannotStart) and SIGHUP tries again. Exiting
/// would only make systemd restart us into the same error every 10 s, reporting nothing.
async fn start_supervision(
    args: &RunArgs,
    paths: &Paths,
    kubelet: &watch::Sender<KubeletState>,
    metrics: &Arc<Metrics>,
) -> Option<Supervision> {
    match supervisor_config(args, paths, metrics).await {
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

/// Why the supervising loop ended (but on an error).
enum Ended {
    Stopped,
    IdentityLost(IdentityLoss),
}

/// The supervising loop's state: kubelet's supervision (if any), what the supervisor and the
/// reporter published, what systemd was told.
struct Node<'a> {
    args: &'a RunArgs,
    paths: &'a Paths,
    notifier: &'a Notifier,
    kubelet_tx: watch::Sender<KubeletState>,
    kubelet_rx: watch::Receiver<KubeletState>,
    reported_rx: watch::Receiver<ReportedStatus>,
    metrics: Arc<Metrics>,
    supervision: Option<Supervision>,
    ready_sent: bool,
    last_activity: String,
    /// The version checks and the upgrades (`alongside`), stopped with the loop.
    alongside: Option<Alongside>,
    /// The reporter's last exchange with the API server failed.
    api_failing: bool,
}

impl<'a> Node<'a> {
    /// Starts kubelet's supervision (with `--no-kubelet`: says READY=1 at once).
    async fn start(
        args: &'a RunArgs,
        paths: &'a Paths,
        notifier: &'a Notifier,
        kubelet_tx: watch::Sender<KubeletState>,
        kubelet_rx: watch::Receiver<KubeletState>,
        reported_rx: watch::Receiver<ReportedStatus>,
        metrics: Arc<Metrics>,
    ) -> Node<'a> {
        let supervision = if args.no_kubelet {
            notifier.ready();
            None
        } else {
            start_supervision(args, paths, &kubelet_tx, &metrics).await
        };
        Node {
            args,
            paths,
            notifier,
            kubelet_tx,
            kubelet_rx,
            reported_rx,
            metrics,
            supervision,
            ready_sent: args.no_kubelet,
            last_activity: String::new(),
            alongside: None,
            api_failing: false,
        }
    }

    /// Says what is going on: STATUS= when the activity changed, and the status file.
    fn publish(
        &mut self,
        status: &mut StatusFile,
        kubelet: &KubeletState,
        reported: &ReportedStatus,
    ) {
        let activity = describe(kubelet, !self.args.no_kubelet);
        if activity != self.last_activity {
            self.notifier.status(&activity);
            self.last_activity = activity.clone();
        }
        status.update(|s| {
            s.activity = activity;
            s.kubelet = kubelet.clone();
            s.reported = reported.clone();
        });
    }

    /// Runs until a stop request, until the node's identity is lost, or until the supervisor
    /// ended on its own (`Err`).
    async fn until_stopped(
        &mut self,
        requests: &mut Requests,
        status: &mut StatusFile,
    ) -> Result<Ended, Error> {
        let mut watchdog = self.notifier.watchdog_interval().map(tokio::time::interval);
        loop {
            tokio::select! {
                received = requests.next() => match received {
                    Request::Stop => return Ok(Ended::Stopped),
                    Request::Reload => {
                        self.reload().await;
                        self.alongside.iter().for_each(Alongside::recheck_versions);
                        self.share_control();
                    }
                },
                _ = self.kubelet_rx.changed() => {
                    let kubelet = self.kubelet_rx.borrow_and_update().clone();
                    self.kubelet_changed(status, &kubelet);
                }
                changed = self.reported_rx.changed() => {
                    if changed.is_ok() {
                        let reported = self.reported_rx.borrow_and_update().clone();
                        let failing = reported.last_error.is_some();
                        if std::mem::replace(&mut self.api_failing, failing) && !failing {
                            // The API server answers again: it may have been upgraded.
                            self.alongside.iter().for_each(Alongside::recheck_versions);
                        }
                        let kubelet = self.kubelet_rx.borrow().clone();
                        self.publish(status, &kubelet, &reported);
                    }
                }
                _ = async { watchdog.as_mut().expect("guarded").tick().await }, if watchdog.is_some() => {
                    // Only while the supervision loop is alive: a wedged supervisor must be noticed.
                    if self.supervision.as_ref().is_none_or(|s| !s.handle.is_finished()) {
                        self.notifier.watchdog();
                    }
                }
                _ = tokio::time::sleep(SUPERVISOR_CHECK) => {}
            }
            if let Some(ended) = self.supervisor_ended().await {
                return Err(ended);
            }
            // Judged on every wake-up (at least every SUPERVISOR_CHECK): a certificate expires
            // without anything changing.
            let seen = self.reported_rx.borrow().identity;
            if let Some(loss) = seen.judge(std::time::SystemTime::now()) {
                return Ok(Ended::IdentityLost(loss));
            }
        }
    }

    /// READY=1 once kubelet runs; until then each change asks systemd for more start time.
    fn kubelet_changed(&mut self, status: &mut StatusFile, kubelet: &KubeletState) {
        if !self.ready_sent && kubelet.phase == KubeletPhase::Running {
            self.notifier.ready();
            self.ready_sent = true;
        }
        if !self.ready_sent {
            self.notifier.extend_timeout(START_EXTENSION);
        }
        let reported = self.reported_rx.borrow().clone();
        self.publish(status, kubelet, &reported);
    }

    /// SIGHUP: starts kubelet when its command line was not usable, else restarts it when its
    /// command line or health check changed.
    async fn reload(&mut self) {
        tracing::info!("SIGHUP: re-reading kubelet's configuration");
        if self.supervision.is_none() && !self.args.no_kubelet {
            // kubelet's command line was not usable: try the fixed one.
            self.supervision =
                start_supervision(self.args, self.paths, &self.kubelet_tx, &self.metrics).await;
        } else if let Some(running) = self.supervision.take() {
            let reread = supervisor_config(self.args, self.paths, &self.metrics).await;
            self.supervision = Some(match reread {
                Ok(cfg) if running.same_command(&cfg) => {
                    tracing::info!("kubelet's command line and health check are unchanged");
                    running
                }
                Ok(cfg) => {
                    tracing::info!("kubelet's configuration changed: restarting kubelet");
                    running.stop().await;
                    Supervision::start(cfg, &self.kubelet_tx)
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

    /// Tells the upgrades which supervision to restart.
    fn share_control(&self) {
        if let Some(alongside) = &self.alongside {
            alongside.share_control(self.supervision.as_ref().map(|s| &s.control));
        }
    }

    /// The supervisor returns only when told to stop, or when it cannot start its spawner
    /// thread: a node without kubelet is no state to stay in. The error makes `run` exit
    /// non-zero, so systemd restarts us.
    async fn supervisor_ended(&mut self) -> Option<Error> {
        if !self
            .supervision
            .as_ref()
            .is_some_and(|s| s.handle.is_finished())
        {
            return None;
        }
        let ended = self.supervision.take()?;
        let why = match ended.handle.await {
            Ok(Ok(())) => "ended unexpectedly".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("panicked: {e}"),
        };
        Some(Error::Internal(format!("kubelet supervision {why}")))
    }

    /// The identity is lost: stops kubelet (no final report: the API server would refuse it)
    /// and says so once in the log, at error level.
    async fn stop_for_identity(mut self, status: &mut StatusFile, loss: &IdentityLoss) {
        tracing::error!(
            "{}: stopping kubelet until the node has joined again",
            loss.what()
        );
        if let Some(running) = self.supervision.take() {
            running.stop().await;
        }
        let kubelet = self.kubelet_rx.borrow().clone();
        let reported = self.reported_rx.borrow().clone();
        status.update(|s| {
            s.kubelet = kubelet;
            s.reported = reported;
        });
    }

    /// Stops kubelet and waits (bounded) until the reporter wrote that on the Node.
    async fn stop(mut self, status: &mut StatusFile) {
        self.notifier.stopping();
        self.notifier.status("stopping kubelet");
        let Some(running) = self.supervision.take() else {
            return;
        };
        running.stop().await;
        // The reporter stops at once when told to: first let it tell the Node that kubelet is
        // not running any more, or the Node keeps saying "running and healthy" meanwhile.
        wait_final_report(&mut self.reported_rx).await;
        // The loop is over: publish the stop (its exit, "stopped by kaas-join") and the report.
        let kubelet = self.kubelet_rx.borrow().clone();
        let reported = self.reported_rx.borrow().clone();
        status.update(|s| {
            s.kubelet = kubelet;
            s.reported = reported;
        });
    }
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
            .find(|c| c.type_ == health::KUBELET_UNHEALTHY && c.is_problem())
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

/// The activity in words, for STATUS= and the status file.
fn describe(kubelet: &KubeletState, supervising: bool) -> String {
    if !supervising {
        return "reporting node health (kubelet runs outside kaas-join)".into();
    }
    match kubelet.phase {
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
    }
}

#[cfg(test)]
mod tests;
