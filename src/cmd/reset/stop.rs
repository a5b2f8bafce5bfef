//! Stopping what runs this node (step 2 of a reset), through [`Host`]: the active systemd units
//! on the machine's own root, then the `kaas-join run` named by the run-status file and the
//! kubelet it last published, each only once identified as ours by its command line.

use std::time::Duration;

use super::ResetError;
use crate::host::paths::{Paths, KUBELET_CONFIG, KUBELET_KUBECONFIG};
use crate::host::{Host, Signal};
use crate::node::run_status;

/// How long `kaas-join run` may take to stop after SIGTERM: its supervisor gives kubelet 30 s,
/// then writes the stop on the Node (5 s at most).
pub const DAEMON_STOP_WAIT: Duration = Duration::from_secs(40);
/// How long an orphaned kubelet gets after SIGTERM before SIGKILL (the supervisor's grace).
pub const KUBELET_STOP_WAIT: Duration = Duration::from_secs(30);
/// After SIGKILL: a process in uninterruptible sleep dies when its I/O ends.
const KILL_WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);
/// The systemd units stopped on `/`, in this order (see the module docs).
pub const UNITS: [&str; 3] = [
    "kaas-join.service",
    "kaas-join-oneshot.service",
    "kubelet.service",
];

/// Stops what runs this node (see the module docs): the systemd units on this machine's own
/// root, then the daemon named in the run-status file and the kubelet it ran, if they are ours.
pub(super) async fn stop_processes(
    paths: &Paths,
    host: &dyn Host,
    dry_run: bool,
) -> Result<Vec<String>, ResetError> {
    let mut stopped = Vec::new();

    // Units are this machine's: under a staging root they are not the root's to stop.
    if host.is_machine_root(paths.root()) && host.systemd_running() {
        let active: Vec<&str> = UNITS.into_iter().filter(|u| unit_active(host, u)).collect();
        if !active.is_empty() && !dry_run {
            systemctl_stop(host, &active)?;
        }
        stopped.extend(active.iter().map(|u| format!("{u} (systemd)")));
    }

    let run = run_status::read(paths);
    if let Some(run) = run
        .as_ref()
        .filter(|r| run_status::daemon_running(host, r, paths.root()))
    {
        let what = format!("kaas-join run (pid {})", run.pid);
        if !dry_run {
            tracing::info!(pid = run.pid, "stopping kaas-join run");
            send(host, run.pid, false, Signal::SIGTERM);
            if !wait_gone(host, run.pid, DAEMON_STOP_WAIT).await {
                return Err(ResetError::StillRunning {
                    what,
                    pid: run.pid,
                    waited: DAEMON_STOP_WAIT,
                });
            }
        }
        stopped.push(what);
    }

    // The kubelet it supervised, should it have outlived it (it dies with kaas-join, so this
    // is a last resort): the pid it published, if that is still kubelet for this node.
    if let Some(pid) = run.as_ref().and_then(|r| r.kubelet.pid) {
        let kubelet = host
            .process(pid)
            .filter(|p| p.is_live() && is_kubelet_of_this_node(&p.argv));
        if let Some(p) = kubelet {
            let what = format!("kubelet (pid {pid})");
            if !dry_run {
                let group = p.process_group == pid;
                tracing::info!(pid, "stopping kubelet");
                send(host, pid, group, Signal::SIGTERM);
                if !wait_gone(host, pid, KUBELET_STOP_WAIT).await {
                    send(host, pid, group, Signal::SIGKILL);
                    if !wait_gone(host, pid, KILL_WAIT).await {
                        return Err(ResetError::StillRunning {
                            what,
                            pid,
                            waited: KUBELET_STOP_WAIT + KILL_WAIT,
                        });
                    }
                }
            }
            stopped.push(what);
        }
    }
    Ok(stopped)
}

/// kubelet with the command line kubeadm's drop-in (and our supervisor) gives it.
fn is_kubelet_of_this_node(argv: &[String]) -> bool {
    let has = |flag: String| argv.contains(&flag);
    has(format!("--kubeconfig={KUBELET_KUBECONFIG}")) && has(format!("--config={KUBELET_CONFIG}"))
}

/// Waits (bounded) until `pid` is gone; whether it is.
async fn wait_gone(host: &dyn Host, pid: u32, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if !host.process(pid).is_some_and(|p| p.is_live()) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

fn send(host: &dyn Host, pid: u32, group: bool, signal: Signal) {
    if let Err(e) = host.signal(pid, group, signal) {
        tracing::debug!(pid, %signal, error = %e, "signal not delivered");
    }
}

/// Whether systemd has `unit` loaded and running (or starting, or stopping).
fn unit_active(host: &dyn Host, unit: &str) -> bool {
    match host.systemctl(&[
        "show",
        "--property=LoadState",
        "--property=ActiveState",
        unit,
    ]) {
        Ok(out) if out.success() => {
            let (load, active) = parse_show(&out.stdout);
            load == "loaded" && is_running_state(&active)
        }
        _ => false,
    }
}

fn is_running_state(active: &str) -> bool {
    matches!(
        active,
        "active" | "activating" | "reloading" | "deactivating"
    )
}

/// `LoadState` and `ActiveState` from `systemctl show` output (`Key=Value` lines).
fn parse_show(text: &str) -> (String, String) {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    (get("LoadState"), get("ActiveState"))
}

fn systemctl_stop(host: &dyn Host, units: &[&str]) -> Result<(), ResetError> {
    let fail = |detail: String| ResetError::Systemctl {
        units: units.join(" "),
        detail,
    };
    let mut args = vec!["stop"];
    args.extend_from_slice(units);
    // A blocking call (it waits for the units to stop), but reset has nothing else to do
    // meanwhile: no other task shares this runtime.
    let out = host.systemctl(&args).map_err(|e| fail(e.to_string()))?;
    if out.success() {
        Ok(())
    } else {
        let code = out
            .code
            .map_or("a signal".to_owned(), |c| format!("exit code {c}"));
        Err(fail(format!(
            "{code}: {}",
            out.stderr.lines().next().unwrap_or("").trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn daemon_and_kubelet_are_identified_by_their_command_lines() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        assert!(run_status::is_our_daemon(
            &v(&format!("/usr/bin/kaas-join -v run --root {root}")),
            dir.path()
        ));
        assert!(run_status::is_our_daemon(
            &v(&format!("kaas-join run --root={root}")),
            dir.path()
        ));
        assert!(run_status::is_our_daemon(
            &v("/usr/bin/kaas-join run --config /etc/kaas-join/config.yaml"),
            Path::new("/")
        ));
        assert!(!run_status::is_our_daemon(
            &v("/usr/bin/kaas-join run"),
            dir.path()
        ));
        assert!(!run_status::is_our_daemon(
            &v(&format!("kaas-join status --root {root}")),
            dir.path()
        ));
        assert!(!run_status::is_our_daemon(
            &v(&format!("/bin/sleep run --root {root}")),
            dir.path()
        ));
        assert!(is_kubelet_of_this_node(&v(
            "/usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
             --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml"
        )));
        assert!(!is_kubelet_of_this_node(&v(
            "/usr/bin/kubelet --config=/other.yaml"
        )));
        assert_eq!(
            parse_show("LoadState=loaded\nActiveState=active\n"),
            ("loaded".to_string(), "active".to_string())
        );
        assert_eq!(
            parse_show("ActiveState=inactive\nLoadState=not-found\n").0,
            "not-found"
        );
        assert!(!is_running_state("inactive") && is_running_state("activating"));
    }
}
