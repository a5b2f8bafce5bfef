//! The container runtime: does its socket accept connections (CRI), and does its cgroup driver
//! match the one kubelet will be given (CgroupDriver). The runtime's configuration is read
//! under `--root` by [`crate::host::runtime`].

use std::io;

use super::names;
use super::report::CheckResult;
use crate::host::paths::Paths;
use crate::host::runtime::{fallback_cgroup_driver, runtime_cgroup_driver, runtime_of_endpoint};
use crate::host::Host;
use crate::model::cgroup_driver::CgroupDriver;

/// Error when the runtime's socket does not accept a connection: kubelet cannot run a pod
/// without it (kubeadm: error). The `bool` says whether the socket answered.
pub(super) fn cri(paths: &Paths, endpoint: &Result<String, String>) -> (CheckResult, bool) {
    let endpoint = match endpoint {
        Ok(e) => e,
        Err(why) => {
            return (
                CheckResult::error(
                    names::CRI,
                    why.clone(),
                    "install and start containerd or CRI-O, or pass --cri-socket",
                ),
                false,
            )
        }
    };
    let Some(path) = endpoint
        .strip_prefix("unix://")
        .filter(|p| p.starts_with('/'))
    else {
        return (
            CheckResult::skipped(
                names::CRI,
                format!("only unix socket endpoints can be checked, not {endpoint}"),
            ),
            false,
        );
    };
    let runtime = runtime_of_endpoint(endpoint)
        .map(|r| format!(" ({})", r.name()))
        .unwrap_or_default();
    let host_path = paths.host(path);
    let fix = "start the container runtime (e.g. `systemctl enable --now containerd`), or pass \
               --cri-socket with the endpoint it listens on";
    match std::os::unix::net::UnixStream::connect(&host_path) {
        Ok(_) => (
            CheckResult::pass(
                names::CRI,
                format!("the container runtime{runtime} accepts connections at {endpoint}"),
            ),
            true,
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (
            CheckResult::error(
                names::CRI,
                format!(
                    "no socket at {}: the container runtime{runtime} is not running or not \
                     installed",
                    host_path.display()
                ),
                fix,
            ),
            false,
        ),
        Err(e) => (
            CheckResult::error(
                names::CRI,
                format!(
                    "cannot connect to the container runtime{runtime} at {}: {e}",
                    host_path.display()
                ),
                fix,
            ),
            false,
        ),
    }
}

/// Error when the driver kubelet will be given differs from the runtime's: kubelet then fails
/// to start pods ("misconfiguration: kubelet cgroup driver ... is different from docker cgroup
/// driver"), the classic first-day failure. Compared only while the runtime runs (its socket
/// answers): otherwise its configuration's defaults say nothing about a runtime that is not
/// there (the CRI check already fails). Error too when the user asks for systemd on this
/// machine's own root and systemd does not run it: kubelet would exit at once.
pub(super) fn cgroup_driver(
    machine: &dyn Host,
    paths: &Paths,
    endpoint: &Result<String, String>,
    socket_up: bool,
    given: Option<CgroupDriver>,
) -> CheckResult {
    let on_machine = machine.is_machine_root(paths.root());
    if given == Some(CgroupDriver::Systemd) && on_machine && !machine.systemd_running() {
        return CheckResult::error(
            names::CGROUP_DRIVER,
            "kubelet is given cgroup driver systemd (--cgroup-driver or cgroupDriver) but \
             systemd does not run this machine (no /run/systemd/system): kubelet would exit at \
             once (\"systemd not running on this host, cannot use systemd cgroups manager\")",
            "pass --cgroup-driver cgroupfs, with the container runtime on cgroupfs too \
             (containerd: SystemdCgroup = false; CRI-O: cgroup_manager = \"cgroupfs\")",
        );
    }
    let Ok(endpoint) = endpoint else {
        return CheckResult::skipped(
            names::CGROUP_DRIVER,
            format!("no container runtime endpoint (see {})", names::CRI),
        );
    };
    if !socket_up {
        return CheckResult::skipped(
            names::CGROUP_DRIVER,
            format!(
                "the container runtime does not answer at {endpoint} (see {}), so its cgroup \
                 driver cannot be told",
                names::CRI
            ),
        );
    }
    match (runtime_cgroup_driver(machine, paths, endpoint), given) {
        (Ok((runtime, how)), Some(kubelet)) if runtime == kubelet => CheckResult::pass(
            names::CGROUP_DRIVER,
            format!(
                "kubelet and the container runtime both use {} ({how})",
                kubelet.as_str()
            ),
        ),
        (Ok((runtime, how)), Some(kubelet)) => CheckResult::error(
            names::CGROUP_DRIVER,
            format!(
                "kubelet is given cgroup driver {} (--cgroup-driver or cgroupDriver) but the \
                 container runtime uses {} ({how}): kubelet would fail to start pods",
                kubelet.as_str(),
                runtime.as_str()
            ),
            format!(
                "pass --cgroup-driver {} (or change the runtime's configuration to {} and \
                 restart it)",
                runtime.as_str(),
                kubelet.as_str()
            ),
        ),
        (Ok((runtime, how)), None) => CheckResult::pass(
            names::CGROUP_DRIVER,
            format!(
                "kubelet will use {}, as the container runtime ({how})",
                runtime.as_str()
            ),
        ),
        (Err(e), Some(kubelet)) => CheckResult::skipped(
            names::CGROUP_DRIVER,
            format!(
                "kubelet is given {}; the runtime's driver cannot be read to compare ({e})",
                kubelet.as_str()
            ),
        ),
        (Err(e), None) => {
            let (fallback, why) = fallback_cgroup_driver(machine, paths);
            CheckResult::warning(
                names::CGROUP_DRIVER,
                format!(
                    "cannot tell which cgroup driver the container runtime uses ({e}); the join \
                     will give kubelet {} ({why})",
                    fallback.as_str()
                ),
                "pass --cgroup-driver systemd or cgroupfs, matching the runtime's configuration",
            )
        }
    }
}
