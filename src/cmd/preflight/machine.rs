//! The machine itself: the user (IsPrivilegedUser), the kernel's files under `--root` (Swap,
//! the two sysctls, the modules of SystemVerification), the kubelet ports (bound through
//! [`Host::port`]) and the files another join left (FileAvailable-*).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_norway::Value;

use super::names;
use super::report::{plural, CheckResult};
use crate::host::paths::Paths;
use crate::host::{Host, PortState};
use crate::node::join_state as state;

/// Binding a busy port is tried this often before it counts as in use: another preflight (a
/// parallel test, a second kaas-join) may hold it for a moment while it checks it too.
const PORT_ATTEMPTS: u32 = 3;
const PORT_RETRY: Duration = Duration::from_millis(25);
/// kubelet's default `port` and `healthzPort`.
const KUBELET_PORT: u16 = 10250;
const KUBELET_HEALTHZ_PORT: u16 = 10248;

/// Error: writing kubelet's files on `/`, and running kubelet, need root (as kubeadm).
pub(super) fn privileged_user(paths: &Paths, host: &dyn Host) -> CheckResult {
    if !host.is_machine_root(paths.root()) {
        return CheckResult::pass(
            names::IS_PRIVILEGED_USER,
            format!(
                "--root {}: writing into a staging directory needs no root",
                paths.root().display()
            ),
        );
    }
    match host.effective_uid() {
        Some(0) => CheckResult::pass(names::IS_PRIVILEGED_USER, "running as root"),
        Some(uid) => CheckResult::error(
            names::IS_PRIVILEGED_USER,
            format!("not running as root (uid {uid}): kubelet's files under / need root"),
            "run it as root (sudo), or use --root DIR to prepare a staging directory",
        ),
        None => CheckResult::skipped(
            names::IS_PRIVILEGED_USER,
            "cannot read this process's user id",
        ),
    }
}

/// A kernel file under the root, or why it cannot be judged.
enum KernelFile {
    Text(String),
    /// Absent on this machine (`/`): meaningful (a module not loaded, no swap support).
    Absent,
    /// Absent under another root (a staging directory has no /proc): cannot tell.
    NotHere(String),
    Unreadable(String),
}

fn read_kernel_file(paths: &Paths, on_machine: bool, node_path: &str) -> KernelFile {
    let path = paths.host(node_path);
    match std::fs::read_to_string(&path) {
        Ok(text) => KernelFile::Text(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound && on_machine => KernelFile::Absent,
        Err(e) if e.kind() == io::ErrorKind::NotFound => KernelFile::NotHere(format!(
            "{node_path} is not present under --root {}: cannot tell",
            paths.root().display()
        )),
        Err(e) => KernelFile::Unreadable(format!("cannot read {}: {e}", path.display())),
    }
}

/// Warning, as kubeadm: kubelet refuses to start with swap on only when `failSwapOn` is true
/// (its default), and a cluster may run kubelets with swap on purpose.
pub(super) fn swap(paths: &Paths, on_machine: bool, overrides: Option<&Value>) -> CheckResult {
    let text = match read_kernel_file(paths, on_machine, "/proc/swaps") {
        KernelFile::Text(t) => t,
        // kubeadm: no /proc/swaps, "no reasons to warn".
        KernelFile::Absent => return CheckResult::pass(names::SWAP, "no /proc/swaps: no swap"),
        KernelFile::NotHere(why) | KernelFile::Unreadable(why) => {
            return CheckResult::skipped(names::SWAP, why)
        }
    };
    let devices: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if devices.is_empty() {
        return CheckResult::pass(names::SWAP, "swap is off");
    }
    let fail_swap_on = overrides
        .and_then(|o| o.get("failSwapOn"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if !fail_swap_on {
        return CheckResult::pass(
            names::SWAP,
            format!(
                "swap is on ({}) and kubelet is set to failSwapOn: false",
                devices.join(", ")
            ),
        );
    }
    CheckResult::warning(
        names::SWAP,
        format!(
            "swap is on ({}): kubelet refuses to start with swap unless failSwapOn is false",
            devices.join(", ")
        ),
        "turn swap off (`swapoff -a`, and remove it from /etc/fstab), or set failSwapOn: false \
         (and memorySwap) in the kubelet settings of the config file",
    )
}

/// A sysctl that must be 1. `error`: ip_forward (kubeadm: error; pod traffic cannot leave the
/// node without it); bridge-nf-call-iptables is a warning (kube-proxy's Service rules miss
/// bridged pod traffic without it, but some CNI plugins do not need it).
pub(super) fn sysctl(
    paths: &Paths,
    on_machine: bool,
    name: &str,
    node_path: &str,
    key: &str,
    error: bool,
) -> CheckResult {
    let fix = format!(
        "`sysctl -w {key}=1`, and keep it with `echo {key}=1 > /etc/sysctl.d/99-kubernetes.conf`{}",
        if key.starts_with("net.bridge") {
            " (needs the br_netfilter module: `modprobe br_netfilter`)"
        } else {
            ""
        }
    );
    let found = |message: String| {
        if error {
            CheckResult::error(name, message, fix.clone())
        } else {
            CheckResult::warning(name, message, fix.clone())
        }
    };
    match read_kernel_file(paths, on_machine, node_path) {
        KernelFile::Text(t) if t.trim() == "1" => CheckResult::pass(name, format!("{key} = 1")),
        KernelFile::Text(t) => found(format!("{key} = {}, not 1", t.trim())),
        KernelFile::Absent => found(format!(
            "{node_path} does not exist (is the module that provides {key} loaded?)"
        )),
        KernelFile::NotHere(why) | KernelFile::Unreadable(why) => CheckResult::skipped(name, why),
    }
}

/// Warning when `overlay` or `br_netfilter` is not loaded: containerd's default snapshotter and
/// bridged pod networking need them, but some setups use neither, and a module may be loaded
/// on demand.
pub(super) fn modules(paths: &Paths, on_machine: bool) -> CheckResult {
    const WANTED: [&str; 2] = ["overlay", "br_netfilter"];
    let proc_modules = read_kernel_file(paths, on_machine, "/proc/modules");
    let sys_module = paths.host("/sys/module");
    let listed = |m: &str| match &proc_modules {
        KernelFile::Text(t) => t.lines().any(|l| l.split_whitespace().next() == Some(m)),
        _ => false,
    };
    // Modules built into the kernel are in /sys/module but not in /proc/modules.
    let built_in = |m: &str| sys_module.join(m).is_dir();
    if !matches!(proc_modules, KernelFile::Text(_)) && !sys_module.is_dir() {
        let why = match proc_modules {
            KernelFile::NotHere(why) | KernelFile::Unreadable(why) => why,
            _ => "neither /proc/modules nor /sys/module can be read".to_owned(),
        };
        return CheckResult::skipped(names::SYSTEM_VERIFICATION, why);
    }
    let missing: Vec<&str> = WANTED
        .iter()
        .copied()
        .filter(|m| !listed(m) && !built_in(m))
        .collect();
    if missing.is_empty() {
        CheckResult::pass(
            names::SYSTEM_VERIFICATION,
            "kernel modules overlay and br_netfilter are loaded",
        )
    } else {
        CheckResult::warning(
            names::SYSTEM_VERIFICATION,
            format!(
                "kernel module{} {} not loaded",
                plural(missing.len()),
                missing.join(", ")
            ),
            format!(
                "`modprobe {}`, and keep {} with `printf '%s\\n' {} > \
                 /etc/modules-load.d/k8s.conf`",
                missing.join(" "),
                if missing.len() == 1 { "it" } else { "them" },
                missing.join(" ")
            ),
        )
    }
}

/// The kubelet ports, from the user's overrides (`port`/`address`, `healthzPort`/
/// `healthzBindAddress`) or kubelet's defaults. Error when one is in use: kubelet exits at
/// start when it cannot bind them (kubeadm: error).
pub(super) fn ports(host: &dyn Host, overrides: Option<&Value>) -> Vec<CheckResult> {
    let get = |key: &str| overrides.and_then(|o| o.get(key));
    let port = |key: &str, default: u16| {
        get(key)
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(default)
    };
    let addr = |key: &str, default: IpAddr| {
        get(key)
            .and_then(Value::as_str)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let mut out = vec![port_check(
        host,
        port("port", KUBELET_PORT),
        addr("address", IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        "kubelet's API (port)",
    )];
    let healthz = port("healthzPort", KUBELET_HEALTHZ_PORT);
    if healthz == 0 {
        out.push(CheckResult::skipped(
            "Port-0",
            "kubelet's healthz endpoint is disabled (healthzPort: 0)",
        ));
    } else {
        out.push(port_check(
            host,
            healthz,
            addr("healthzBindAddress", IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "kubelet's healthz (healthzPort)",
        ));
    }
    out
}

fn port_check(host: &dyn Host, port: u16, ip: IpAddr, what: &str) -> CheckResult {
    let name = format!("Port-{port}");
    // A port in use may be one a test (or anything else) holds for a moment: look again.
    let mut state = host.port(ip, port);
    for _ in 1..PORT_ATTEMPTS {
        if state != PortState::InUse {
            break;
        }
        std::thread::sleep(PORT_RETRY);
        state = host.port(ip, port);
    }
    match state {
        PortState::Free => CheckResult::pass(&name, format!("{what}: {ip}:{port} is free")),
        PortState::InUse => CheckResult::error(
            &name,
            format!("{what}: port {port} is in use (another kubelet?)"),
            format!(
                "stop what listens on it (`ss -ltnp 'sport = :{port}'` shows it), or \
                 give kubelet another port in the config file's kubelet settings"
            ),
        ),
        PortState::Unusable(e) => CheckResult::error(
            &name,
            format!("{what}: cannot bind {ip}:{port}: {e}"),
            "run as root, or check the address in the kubelet settings",
        ),
    }
}

/// Error when a file kubelet reads exists and kaas-join did not write it (no state file): this
/// machine was joined by something else (kubeadm join, another cluster), and overwriting its
/// identity would take it from there (kubeadm: error). Files from our own earlier or half-done
/// join pass: a re-run resumes them.
pub(super) fn file_available(
    paths: &Paths,
    name: &str,
    node_path: &str,
    ours: bool,
) -> CheckResult {
    let path = paths.host(node_path);
    if std::fs::symlink_metadata(&path).is_err() {
        return CheckResult::pass(name, format!("{node_path} does not exist yet"));
    }
    if ours {
        return CheckResult::pass(
            name,
            format!(
                "{node_path} exists from an earlier kaas-join join of this machine ({}): the \
                 join resumes or says already joined",
                state::STATE_FILE
            ),
        );
    }
    CheckResult::error(
        name,
        format!(
            "{node_path} already exists and kaas-join did not write it (no {}): this machine \
             was joined by something else (kubeadm join? another cluster?)",
            state::STATE_FILE
        ),
        "if this machine may leave that cluster, `kubeadm reset` it (or move the file aside); \
         otherwise do not join it again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::preflight::Status;
    use crate::host::{FakeHost, LinuxHost};

    #[test]
    fn busy_ports_fail_with_the_overridden_port_in_the_name() {
        let host = FakeHost::new();
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        host.set_port(loopback, 20250, PortState::InUse);
        let overrides: Value =
            serde_norway::from_str("{port: 20250, address: 127.0.0.1, healthzPort: 0}").unwrap();
        let checks = ports(&host, Some(&overrides));
        let c = &checks[0];
        assert_eq!(c.name, "Port-20250");
        assert_eq!(c.status, Status::Error, "{c:?}");
        assert!(c.message.contains("in use"), "{c:?}");
        assert_eq!(checks[1].status, Status::Skipped);
        host.set_port(loopback, 20250, PortState::Free);
        assert_eq!(ports(&host, Some(&overrides))[0].status, Status::Pass);
        host.set_port(
            loopback,
            20250,
            PortState::Unusable("permission denied".into()),
        );
        let c = ports(&host, Some(&overrides))[0].clone();
        assert!(c.message.contains("permission denied"), "{c:?}");
    }

    #[test]
    fn the_real_machine_binds_its_ports() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(LinuxHost.port(loopback, port), PortState::InUse);
        drop(busy);
        assert_eq!(LinuxHost.port(loopback, port), PortState::Free);
    }
}
