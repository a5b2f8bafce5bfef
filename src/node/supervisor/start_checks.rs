//! Why kubelet cannot be started now: its binary is missing or not executable
//! (`CannotStart`), or another kubelet already runs (`Conflict`, usually the packages'
//! kubelet.service). The policy loop asks before every start and re-asks at each backoff step.
//!
//! The process table is read through [`Host`] (`/proc` on a real machine).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::SupervisorConfig;
use crate::host::Host;
use crate::model::kubelet_process::KubeletPhase;

/// Why kubelet cannot be started now: (phase, problem), or `None` when it can.
pub(super) async fn start_blocker(cfg: &SupervisorConfig) -> Option<(KubeletPhase, String)> {
    if let Some(problem) = binary_problem(&cfg.kubelet) {
        return Some((KubeletPhase::CannotStart, problem));
    }
    if cfg.check_other_kubelet {
        // Scanning /proc reads a file per process: the blocking pool, not the runtime.
        let host = cfg.host.clone();
        let other = tokio::task::spawn_blocking(move || other_kubelet_running(host.as_ref(), None))
            .await
            .ok()
            .flatten();
        if let Some(pid) = other {
            return Some((
                KubeletPhase::Conflict,
                format!(
                    "another kubelet (pid {pid}) is already running, probably \
                     kubelet.service: stop and disable it (systemctl disable --now kubelet) \
                     so that kaas-join runs the only kubelet"
                ),
            ));
        }
    }
    None
}

/// The pid of a running process named `kubelet` that is neither us nor `own_child` (zombies do
/// not count; the lowest pid, so repeated scans name the same process).
pub fn other_kubelet_running(host: &dyn Host, own_child: Option<u32>) -> Option<u32> {
    let me = std::process::id();
    host.pids()
        .into_iter()
        .filter(|pid| *pid != me && Some(*pid) != own_child)
        // Processes come and go while we scan: those gone meanwhile are skipped.
        .filter(|pid| {
            host.process(*pid)
                .is_some_and(|p| p.name == "kubelet" && p.is_live())
        })
        .min()
}

/// Why `path` cannot be run, with the fix.
fn binary_problem(path: &Path) -> Option<String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(format!(
            "kubelet binary {shown} not found (install the kubelet package, or pass --kubelet PATH)"
        )),
        Err(e) => Some(format!("kubelet binary {shown} cannot be read: {e}")),
        Ok(m) if !m.is_file() => Some(format!(
            "kubelet binary {shown} is not a regular file (pass --kubelet PATH)"
        )),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Some(format!(
            "kubelet binary {shown} is not executable (chmod +x {shown})"
        )),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FakeHost;
    use std::sync::Arc;

    #[test]
    fn other_kubelets_are_found_in_the_process_table() {
        let host = FakeHost::new();
        host.add_process(10, "containerd", &["containerd"]);
        host.add_process(11, "kubelet", &["kubelet"]);
        host.end_process(11);
        assert_eq!(other_kubelet_running(&host, None), None);
        host.add_process(40, "kubelet", &["kubelet"]);
        host.add_process(30, "kubelet", &["kubelet"]);
        assert_eq!(other_kubelet_running(&host, None), Some(30));
        assert_eq!(other_kubelet_running(&host, Some(30)), Some(40));
        host.add_process(std::process::id(), "kubelet", &["kubelet"]);
        assert_eq!(other_kubelet_running(&host, Some(30)), Some(40));
    }

    #[test]
    fn binary_problems() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("kubelet");
        assert_eq!(
            binary_problem(&missing).unwrap(),
            format!(
                "kubelet binary {} not found (install the kubelet package, or pass --kubelet PATH)",
                missing.display()
            )
        );
        std::fs::write(&missing, b"").unwrap();
        let p = binary_problem(&missing).unwrap();
        let want = format!("is not executable (chmod +x {})", missing.display());
        assert!(p.ends_with(&want), "{p}");
        std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(binary_problem(&missing), None);
        assert!(binary_problem(dir.path())
            .unwrap()
            .contains("not a regular file"));
    }

    /// The binary is checked first; the process table only when asked and the binary is fine.
    #[tokio::test]
    async fn blockers_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let kubelet = dir.path().join("kubelet");
        let host = Arc::new(FakeHost::new());
        host.add_process(30, "kubelet", &["kubelet"]);
        let mut cfg = SupervisorConfig::new(kubelet.clone(), vec![], None);
        cfg.host = host;
        let (phase, _) = start_blocker(&cfg).await.unwrap();
        assert_eq!(phase, KubeletPhase::CannotStart);
        std::fs::write(&kubelet, b"").unwrap();
        std::fs::set_permissions(&kubelet, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (phase, problem) = start_blocker(&cfg).await.unwrap();
        assert_eq!(phase, KubeletPhase::Conflict);
        assert!(problem.starts_with("another kubelet (pid 30)"), "{problem}");
        cfg.check_other_kubelet = false;
        assert_eq!(start_blocker(&cfg).await, None);
    }
}
