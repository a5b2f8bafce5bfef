//! Runs kubelet as a child process: starts it, watches its healthz, restarts it with a capped
//! backoff, stops it gracefully, and publishes what it knows as a [`KubeletState`] on a watch
//! channel (read by [`crate::node::health`] and by `run` for systemd's STATUS= line).
//!
//! - `command_line`: kubelet's arguments ([`kubelet_command_line`]), as kubeadm's systemd
//!   drop-in builds them from the files `join` wrote; `env_file` reads those as systemd does.
//! - `healthz`: where kubelet's healthz listens ([`healthz_url`]) and the probe that asks it.
//! - `child`: the processes and threads. One spawner thread forks every kubelet, because
//!   `PR_SET_PDEATHSIG` is tied to the *thread* that forked (so kubelet dies with kaas-join, and
//!   only then); per run a waiter thread and two reader threads keep the last [`LAST_LINES`].
//! - `start_checks`: why kubelet cannot start now (binary, [`other_kubelet_running`]).
//! - `one_run`: one run from its start to its end (Starting/Running, liveness kill, stop).
//! - This module: the configuration, [`Control`], and the policy across runs ([`supervise`]).
//!
//! Nothing here waits on the network (the probe is local and bounded by its timeout) or blocks
//! the runtime (the /proc scan runs on the blocking pool). Every process operation goes through
//! [`Host`] (`SupervisorConfig::host`).
//!
//! # Policy
//! - Phase `Starting` after the start, `Running` at the first good healthz (or at once when
//!   healthz is off, `healthzPort: 0`). `liveness_failures` consecutive failures while `Running`
//!   → SIGKILL to the group, counted as a restart ("killed: healthz failed N times (hung)").
//!   `liveness_failures: 0` reports failures but never kills.
//! - After an exit: `BackingOff` for the backoff (initial, doubling, capped, ±10 % jitter; back to
//!   initial after a run of `stable_after`); `CrashLooping` when `crashloop_restarts` restarts fell
//!   within `crashloop_window` (then always the capped backoff). Still retried, forever.
//! - Missing or non-executable binary: `CannotStart`; another kubelet running: `Conflict`; both
//!   re-checked at each backoff step, never spinning.
//! - [`Control::Stop`] (or the control channel closing): SIGTERM to the group, SIGKILL after
//!   `grace`, phase `Stopped`, return. [`Control::Restart`]: the same stop, then an immediate
//!   start with a fresh backoff (counted as a restart); during a backoff wait, it starts at once.

mod child;
mod command_line;
mod env_file;
mod healthz;
mod one_run;
mod start_checks;

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::host::{Host, LinuxHost};
use crate::model::backoff::Backoff;
use crate::model::exit_code::ExitCode;
use crate::model::kubelet_process::{KubeletPhase, KubeletState};
use crate::node::metrics::Metrics;
use child::Spawner;
use one_run::RunEnd;

pub use child::{LAST_LINES, MAX_LINE};
pub use command_line::{
    container_runtime_endpoint, kubelet_command_line, BOOTSTRAP_KUBECONFIG, EXTRA_ARGS_FILES,
};
pub use healthz::healthz_url;
pub use start_checks::other_kubelet_running;

/// Errors of the supervisor; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The flags file `join` writes is missing.
    #[error(
        "this node has not joined a cluster: {} is missing (run `kaas-join join` first)",
        path.display()
    )]
    NotJoined { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("cannot start the thread that spawns kubelet: {0}")]
    Thread(io::Error),
}

impl SupervisorError {
    /// The documented exit code.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            SupervisorError::NotJoined { .. } => ExitCode::NotJoined,
            SupervisorError::Read { .. } => ExitCode::Filesystem,
            SupervisorError::Invalid { .. } => ExitCode::Usage,
            SupervisorError::Thread(_) => ExitCode::Internal,
        }
    }
}

/// A file `join` writes (the flags file, kubelet's config.yaml): missing means not joined.
fn read_file_join_wrote(path: &Path) -> Result<String, SupervisorError> {
    std::fs::read_to_string(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => SupervisorError::NotJoined {
            path: path.to_owned(),
        },
        _ => SupervisorError::Read {
            path: path.to_owned(),
            source,
        },
    })
}

/// How to run kubelet. [`SupervisorConfig::new`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// The binary to run.
    pub kubelet: PathBuf,
    /// Its arguments (without the program name), from [`kubelet_command_line`].
    pub args: Vec<String>,
    /// `None`: no liveness probe (`healthzPort: 0`).
    pub healthz_url: Option<String>,
    /// Consecutive failed probes while Running before kubelet is killed and restarted (0: never).
    pub liveness_failures: u32,
    pub healthz_interval: Duration,
    pub healthz_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A run at least this long resets the backoff to `backoff_initial`.
    pub stable_after: Duration,
    /// This many restarts within `crashloop_window` → CrashLooping (0: never).
    pub crashloop_restarts: u32,
    pub crashloop_window: Duration,
    /// SIGTERM → SIGKILL after this.
    pub grace: Duration,
    /// Refuse to start while another process named `kubelet` runs.
    pub check_other_kubelet: bool,
    /// The machine kubelet runs on (spawn, signals, the process table).
    pub host: Arc<dyn Host>,
    /// Where failed healthz probes and crash loops are counted (`run`'s metrics).
    pub metrics: Arc<Metrics>,
}

impl SupervisorConfig {
    pub fn new(kubelet: PathBuf, args: Vec<String>, healthz_url: Option<String>) -> Self {
        SupervisorConfig {
            kubelet,
            args,
            healthz_url,
            liveness_failures: 3,
            healthz_interval: Duration::from_secs(10),
            healthz_timeout: Duration::from_secs(2),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(600),
            crashloop_restarts: 5,
            crashloop_window: Duration::from_secs(600),
            grace: Duration::from_secs(30),
            check_other_kubelet: true,
            host: Arc::new(LinuxHost),
            metrics: Arc::default(),
        }
    }
}

/// What `run` asks of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop kubelet gracefully and return (SIGTERM/SIGINT).
    Stop,
    /// Stop kubelet gracefully and start it again at once (SIGHUP, after the config was re-read).
    Restart,
}

/// Runs kubelet until [`Control::Stop`] or the control channel closes (see the module docs).
/// Returns once kubelet has stopped; errors only when the spawner thread cannot be started.
pub async fn supervise(
    cfg: SupervisorConfig,
    state: watch::Sender<KubeletState>,
    mut control: mpsc::Receiver<Control>,
) -> Result<(), SupervisorError> {
    let mut sup = Supervisor::new(cfg, state)?;
    sup.run(&mut control).await;
    Ok(())
}

/// How a backoff wait ended.
enum Wake {
    Elapsed,
    /// Restart asked: go now.
    Now,
    Stop,
}

/// How an attempt to start kubelet ended.
enum Attempt {
    /// It could not start: (phase, problem).
    Blocked(KubeletPhase, String),
    /// It started, and this run is over.
    Ran(RunEnd),
}

/// The policy loop's state (see the module docs); `one_run` adds the methods of one run.
struct Supervisor {
    cfg: SupervisorConfig,
    state: watch::Sender<KubeletState>,
    spawner: Spawner,
    backoff: Backoff,
    /// When the recent restarts happened (within `crashloop_window`).
    restarts: VecDeque<Instant>,
}

impl Supervisor {
    fn new(
        cfg: SupervisorConfig,
        state: watch::Sender<KubeletState>,
    ) -> Result<Supervisor, SupervisorError> {
        let spawner = Spawner::start(cfg.host.clone())?;
        let backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max).with_jitter(0.1);
        Ok(Supervisor {
            cfg,
            state,
            spawner,
            backoff,
            restarts: VecDeque::new(),
        })
    }

    /// Publishes a change, notifying receivers only when something actually changed.
    fn publish(&self, f: impl FnOnce(&mut KubeletState)) {
        self.state.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            *s != before
        });
    }

    fn stopped(&self) {
        self.publish(|s| {
            s.phase = KubeletPhase::Stopped;
            s.pid = None;
        });
        tracing::info!("kubelet supervisor stopped");
    }

    async fn wait(&self, delay: Duration, control: &mut mpsc::Receiver<Control>) -> Wake {
        tokio::select! {
            _ = tokio::time::sleep(delay) => Wake::Elapsed,
            msg = control.recv() => match msg {
                Some(Control::Restart) => Wake::Now,
                Some(Control::Stop) | None => Wake::Stop,
            },
        }
    }

    async fn run(&mut self, control: &mut mpsc::Receiver<Control>) {
        loop {
            let delay = match self.attempt(control).await {
                Attempt::Blocked(phase, problem) => self.blocked(phase, problem),
                Attempt::Ran(RunEnd::Stopped) => return,
                Attempt::Ran(RunEnd::Restart) => {
                    self.backoff.reset();
                    continue;
                }
                Attempt::Ran(RunEnd::Exited { ran_for }) => {
                    if ran_for >= self.cfg.stable_after {
                        self.backoff.reset();
                    }
                    self.after_exit()
                }
            };
            tracing::debug!(?delay, "waiting before starting kubelet");
            match self.wait(delay, control).await {
                Wake::Elapsed => {}
                Wake::Now => self.backoff.reset(),
                Wake::Stop => {
                    self.stopped();
                    return;
                }
            }
        }
    }

    /// Starts kubelet unless something blocks it, and watches the run to its end.
    async fn attempt(&mut self, control: &mut mpsc::Receiver<Control>) -> Attempt {
        if let Some((phase, problem)) = start_checks::start_blocker(&self.cfg).await {
            return Attempt::Blocked(phase, problem);
        }
        match self.spawner.spawn(&self.cfg.kubelet, &self.cfg.args).await {
            Ok(child) => Attempt::Ran(self.run_child(child, control).await),
            Err(e) => Attempt::Blocked(
                KubeletPhase::CannotStart,
                format!("cannot start kubelet {}: {e}", self.cfg.kubelet.display()),
            ),
        }
    }

    /// Publishes why kubelet cannot start (warning once per new problem) and returns the wait.
    fn blocked(&mut self, phase: KubeletPhase, problem: String) -> Duration {
        if self.state.borrow().problem.as_deref() != Some(problem.as_str()) {
            tracing::warn!(kubelet = %self.cfg.kubelet.display(), "{problem}");
        }
        self.publish(|s| {
            s.phase = phase;
            s.problem = Some(problem);
            s.pid = None;
        });
        self.backoff.next_delay()
    }

    /// Counts the restart, picks BackingOff or CrashLooping, and returns the wait.
    fn after_exit(&mut self) -> Duration {
        let now = Instant::now();
        self.restarts.push_back(now);
        while let Some(&t) = self.restarts.front() {
            if now.duration_since(t) > self.cfg.crashloop_window {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        let looping = self.cfg.crashloop_restarts > 0
            && self.restarts.len() >= self.cfg.crashloop_restarts as usize;
        let delay = if looping {
            self.backoff.capped()
        } else {
            self.backoff.next_delay()
        };
        if looping && self.state.borrow().phase != KubeletPhase::CrashLooping {
            self.cfg.metrics.kubelet_crash_loop_began();
        }
        self.publish(|s| {
            s.phase = if looping {
                KubeletPhase::CrashLooping
            } else {
                KubeletPhase::BackingOff
            };
            s.pid = None;
        });
        if looping {
            // The same count the condition and the Event carry (all restarts of this run), and
            // how many of them fell within the window that makes it a crash loop.
            let restarts = self.state.borrow().restarts;
            tracing::warn!(
                restarts,
                within_window = self.restarts.len(),
                window = ?self.cfg.crashloop_window,
                ?delay,
                "kubelet is crash-looping; retrying at the backoff cap"
            );
        } else {
            tracing::info!(?delay, "restarting kubelet after the backoff");
        }
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FakeHost;
    use std::os::unix::fs::PermissionsExt;

    fn within(d: Duration, nominal: Duration) -> bool {
        // The kubelet backoff's jitter is ±10 %.
        d >= nominal.mul_f64(0.9) && d <= nominal.mul_f64(1.1)
    }

    /// Exits back off, doubling; `crashloop_restarts` exits within the window are a crash loop
    /// (at the cap, which then holds); older exits fall out of the window. On tokio's paused
    /// clock, so the window is crossed without waiting for it.
    #[tokio::test(start_paused = true)]
    async fn exits_back_off_then_crash_loop_within_the_window() {
        let mut cfg = SupervisorConfig::new("/nonexistent/kubelet".into(), vec![], None);
        cfg.host = Arc::new(FakeHost::new());
        cfg.backoff_initial = Duration::from_secs(1);
        cfg.backoff_max = Duration::from_secs(8);
        cfg.crashloop_restarts = 3;
        cfg.crashloop_window = Duration::from_secs(60);
        let (tx, rx) = watch::channel(KubeletState::default());
        let mut sup = Supervisor::new(cfg, tx).unwrap();
        let phase = || rx.borrow().phase;

        let delay = sup.after_exit();
        assert_eq!(phase(), KubeletPhase::BackingOff);
        assert!(within(delay, Duration::from_secs(1)), "{delay:?}");
        tokio::time::advance(Duration::from_secs(10)).await;
        let delay = sup.after_exit();
        assert_eq!(phase(), KubeletPhase::BackingOff);
        assert!(within(delay, Duration::from_secs(2)), "{delay:?}");
        tokio::time::advance(Duration::from_secs(10)).await;
        // The third exit within 60 s.
        let delay = sup.after_exit();
        assert_eq!(phase(), KubeletPhase::CrashLooping);
        assert!(within(delay, Duration::from_secs(8)), "{delay:?}");
        // 61 s later the earlier exits are out of the window: backing off again, still capped.
        tokio::time::advance(Duration::from_secs(61)).await;
        let delay = sup.after_exit();
        assert_eq!(phase(), KubeletPhase::BackingOff);
        assert_eq!(sup.restarts.len(), 1);
        assert!(within(delay, Duration::from_secs(8)), "{delay:?}");
        // A stable run resets the backoff (the loop does this before `after_exit`).
        sup.backoff.reset();
        assert!(within(sup.after_exit(), Duration::from_secs(1)));
    }

    /// A kubelet that cannot be spawned is `CannotStart` with the reason; Stop during the
    /// backoff wait ends the supervisor at once, without another attempt.
    #[tokio::test(start_paused = true)]
    async fn spawn_failure_is_reported_and_stop_ends_the_backoff_wait() {
        let dir = tempfile::tempdir().unwrap();
        let kubelet = dir.path().join("kubelet");
        std::fs::write(&kubelet, b"").unwrap();
        std::fs::set_permissions(&kubelet, std::fs::Permissions::from_mode(0o755)).unwrap();
        // No stand-in program: every spawn fails with NotFound.
        let host = Arc::new(FakeHost::new());
        let mut cfg = SupervisorConfig::new(kubelet.clone(), vec!["--v=2".into()], None);
        cfg.host = host.clone();
        cfg.check_other_kubelet = false;
        cfg.backoff_initial = Duration::from_secs(30);
        let (tx, mut rx) = watch::channel(KubeletState::default());
        let (control, control_rx) = mpsc::channel(1);
        let started = Instant::now();
        let task = tokio::spawn(supervise(cfg, tx, control_rx));
        let state = rx
            .wait_for(|s| s.phase == KubeletPhase::CannotStart)
            .await
            .unwrap()
            .clone();
        let problem = state.problem.unwrap();
        assert!(
            problem.starts_with(&format!("cannot start kubelet {}: ", kubelet.display())),
            "{problem}"
        );
        control.send(Control::Stop).await.unwrap();
        task.await.unwrap().unwrap();
        assert_eq!(rx.borrow().phase, KubeletPhase::Stopped);
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "no backoff was waited out"
        );
        let spawns: Vec<_> = host
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                crate::host::fake::Call::Spawn(spec) => Some(spec),
                _ => None,
            })
            .collect();
        assert_eq!(spawns.len(), 1, "{spawns:?}");
        assert_eq!(spawns[0].program, kubelet);
        assert_eq!(spawns[0].args, ["--v=2"]);
        // systemd's notification variables describe our unit, not kubelet's.
        for var in crate::node::notify::VARIABLES {
            assert!(spawns[0].env_remove.iter().any(|v| v == var), "{var}");
        }
    }
}
