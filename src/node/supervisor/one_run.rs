//! One kubelet run, from its start to its end: `Starting`, then `Running` at the first good
//! healthz; a liveness kill after `liveness_failures` failed probes in a row; a graceful stop
//! (SIGTERM to the group, SIGKILL after `grace`) on [`Control`]; and the record of how it ended
//! ([`ExitInfo`], with kubelet's last lines). What happens after the run (backoff, crash loop,
//! the next start) is the policy loop's, in `super`.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::child::{signal_group, ExitReceiver, KillOnDrop, Lines, Spawned};
use super::healthz::start_probing;
use super::{Control, Supervisor};
use crate::host::{Host, Signal};
use crate::model::kubelet_process::{ExitInfo, Healthz, KubeletPhase};

/// After SIGKILL, how long to wait for the exit before giving up on it (a process stuck in
/// uninterruptible sleep cannot die before its I/O ends).
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How one kubelet run ended.
pub(super) enum RunEnd {
    /// Exited or killed as hung: back off, then start again.
    Exited { ran_for: Duration },
    /// Stopped for a requested restart: start again now.
    Restart,
    /// Stopped for good.
    Stopped,
}

impl Supervisor {
    /// Watches a kubelet just started until it ends (see the module docs).
    pub(super) async fn run_child(
        &mut self,
        child: Spawned,
        control: &mut mpsc::Receiver<Control>,
    ) -> RunEnd {
        let Spawned {
            pid,
            mut exit,
            lines,
        } = child;
        let mut guard = KillOnDrop {
            host: self.cfg.host.clone(),
            pid,
            armed: true,
        };
        let started = Instant::now();
        let probing = self.cfg.healthz_url.is_some();
        tracing::info!(pid, kubelet = %self.cfg.kubelet.display(), "kubelet started");
        self.publish(|s| {
            s.phase = if probing {
                KubeletPhase::Starting
            } else {
                KubeletPhase::Running
            };
            s.pid = Some(pid);
            s.started_at = Some(SystemTime::now());
            s.healthz = Healthz::default();
            s.problem = None;
        });
        let (probe_tx, mut probe_rx) = mpsc::channel(1);
        let _probe = self.cfg.healthz_url.clone().map(|url| {
            start_probing(
                url,
                self.cfg.healthz_interval,
                self.cfg.healthz_timeout,
                probe_tx,
            )
        });
        let end = loop {
            tokio::select! {
                status = &mut exit => {
                    let status = status
                        .unwrap_or_else(|_| Err(io::Error::other("the waiter thread is gone")));
                    self.record_exit(Some(status), None, &lines, true, true);
                    break RunEnd::Exited { ran_for: started.elapsed() };
                }
                msg = control.recv() => {
                    let restart = msg == Some(Control::Restart);
                    tracing::info!(pid, restart, "stopping kubelet (SIGTERM)");
                    let (status, killed) = self.terminate(pid, &mut exit).await;
                    let why = match (restart, killed) {
                        (true, false) => "{status} (restart requested)".to_owned(),
                        (false, false) => "{status} (stopped by kaas-join)".to_owned(),
                        (_, true) => {
                            let grace = self.cfg.grace;
                            format!("{{status}} (did not stop within {grace:?} of SIGTERM)")
                        }
                    };
                    self.record_exit(status, Some(why), &lines, restart, killed);
                    if restart {
                        break RunEnd::Restart;
                    }
                    guard.armed = false;
                    self.stopped();
                    break RunEnd::Stopped;
                }
                Some(result) = probe_rx.recv() => {
                    if let Some(failures) = self.probed(result) {
                        tracing::warn!(
                            pid,
                            failures,
                            "kubelet's healthz failed {failures} times in a row; killing it as hung"
                        );
                        let status = kill_and_wait(self.cfg.host.as_ref(), pid, &mut exit).await;
                        let why = format!("killed: healthz failed {failures} times (hung)");
                        self.record_exit(status, Some(why), &lines, true, true);
                        break RunEnd::Exited { ran_for: started.elapsed() };
                    }
                }
            }
        };
        guard.armed = false;
        end
    }

    /// Applies a probe result; `Some(failures)` when kubelet is to be killed as hung.
    fn probed(&self, result: Result<(), String>) -> Option<u32> {
        let threshold = self.cfg.liveness_failures;
        if result.is_err() {
            self.cfg.metrics.kubelet_healthz_failed();
        }
        let mut kill = None;
        self.state.send_if_modified(|s| {
            let before = s.clone();
            match &result {
                Ok(()) => {
                    if s.phase == KubeletPhase::Starting {
                        tracing::info!(pid = s.pid, "kubelet is healthy (healthz ok)");
                        s.phase = KubeletPhase::Running;
                    } else if s.healthz.ok == Some(false) {
                        tracing::info!(pid = s.pid, "kubelet's healthz is ok again");
                    }
                    s.healthz = Healthz {
                        ok: Some(true),
                        consecutive_failures: 0,
                        last_error: None,
                    };
                }
                Err(e) => {
                    tracing::debug!(error = %e, "kubelet healthz failed");
                    s.healthz.ok = Some(false);
                    s.healthz.consecutive_failures =
                        s.healthz.consecutive_failures.saturating_add(1);
                    s.healthz.last_error = Some(e.clone());
                    if s.phase == KubeletPhase::Running
                        && threshold > 0
                        && s.healthz.consecutive_failures >= threshold
                    {
                        kill = Some(s.healthz.consecutive_failures);
                    }
                }
            }
            *s != before
        });
        kill
    }

    /// SIGTERM to the group, SIGKILL after the grace period; returns the status (None when it
    /// did not even die of SIGKILL) and whether SIGKILL was needed.
    async fn terminate(
        &self,
        pid: u32,
        exit: &mut ExitReceiver,
    ) -> (Option<io::Result<ExitStatus>>, bool) {
        signal_group(self.cfg.host.as_ref(), pid, Signal::SIGTERM);
        if let Ok(status) = tokio::time::timeout(self.cfg.grace, &mut *exit).await {
            return (status.ok(), false);
        }
        tracing::warn!(
            pid,
            grace = ?self.cfg.grace,
            "kubelet did not stop after SIGTERM; sending SIGKILL"
        );
        (kill_and_wait(self.cfg.host.as_ref(), pid, exit).await, true)
    }

    /// Records how kubelet ended.
    fn record_exit(
        &self,
        status: Option<io::Result<ExitStatus>>,
        why: Option<String>,
        lines: &Lines,
        restart: bool,
        unexpected: bool,
    ) {
        let (code, signal, base) = match status {
            Some(Ok(st)) => (st.code(), st.signal(), describe(&st)),
            Some(Err(e)) => (None, None, format!("exit status unknown ({e})")),
            None => (
                None,
                None,
                "did not exit after SIGKILL; no longer watched".to_owned(),
            ),
        };
        let description = match why {
            Some(why) => why.replace("{status}", &base),
            None => base,
        };
        let last_lines: Vec<String> = lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        if unexpected {
            tracing::warn!(code, signal, "kubelet {description}");
        } else {
            tracing::info!(code, signal, "kubelet {description}");
        }
        if restart {
            self.cfg.metrics.kubelet_restarted();
        }
        self.publish(|s| {
            s.pid = None;
            if restart {
                s.restarts += 1;
            }
            s.last_exit = Some(ExitInfo {
                code,
                signal,
                description,
                at: SystemTime::now(),
                last_lines,
            });
        });
    }
}

/// SIGKILL to the group and the exit status (None when it did not come within [`KILL_WAIT`]).
async fn kill_and_wait(
    host: &dyn Host,
    pid: u32,
    exit: &mut ExitReceiver,
) -> Option<io::Result<ExitStatus>> {
    signal_group(host, pid, Signal::SIGKILL);
    match tokio::time::timeout(KILL_WAIT, exit).await {
        Ok(status) => status.ok(),
        Err(_) => {
            tracing::error!(pid, "kubelet did not exit {KILL_WAIT:?} after SIGKILL");
            None
        }
    }
}

/// "exited with code 1", "killed by SIGKILL".
fn describe(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with code {code}")
    } else if let Some(sig) = status.signal() {
        match Signal::try_from(sig) {
            Ok(s) => format!("killed by {}", s.as_str()),
            Err(_) => format!("killed by signal {sig}"),
        }
    } else {
        format!("ended ({status})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_descriptions() {
        assert_eq!(
            describe(&ExitStatus::from_raw(1 << 8)),
            "exited with code 1"
        );
        assert_eq!(describe(&ExitStatus::from_raw(9)), "killed by SIGKILL");
    }
}
