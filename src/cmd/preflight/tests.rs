//! The local checks on a fake machine ([`FakeRoot`]: a temporary root and a `FakeHost`), through
//! [`local_checks`] as `join` and `preflight` run them.

use super::*;
use crate::host::FakeHost;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixListener;

/// A fake machine: a temporary root with /proc files, a kubelet script and a runtime socket,
/// and a fake host answering for the user id, the ports and `kubelet --version`.
struct FakeRoot {
    dir: tempfile::TempDir,
    _runtime: Option<UnixListener>,
    host: Arc<FakeHost>,
}

const CONTAINERD: &str = "unix:///run/containerd/containerd.sock";

impl FakeRoot {
    fn new() -> FakeRoot {
        FakeRoot {
            dir: tempfile::tempdir().unwrap(),
            _runtime: None,
            host: Arc::new(FakeHost::new()),
        }
    }

    /// A healthy node: no swap, sysctls 1, modules loaded, kubelet v1.31.2, containerd
    /// listening with SystemdCgroup = true.
    fn healthy() -> FakeRoot {
        let mut r = FakeRoot::new();
        r.write(
            "/proc/swaps",
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
        );
        r.write("/proc/sys/net/ipv4/ip_forward", "1\n");
        r.write("/proc/sys/net/bridge/bridge-nf-call-iptables", "1\n");
        r.write(
            "/proc/modules",
            "overlay 151552 0 - Live 0x0\nbr_netfilter 32768 0 - Live 0x0\n",
        );
        r.kubelet("/usr/bin/kubelet", "Kubernetes v1.31.2", 0);
        r.write(
            "/etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n",
        );
        r.listen();
        r
    }

    fn path(&self, node_path: &str) -> PathBuf {
        Paths::new(self.dir.path()).host(node_path)
    }

    fn write(&self, node_path: &str, text: &str) {
        let p = self.path(node_path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// An executable kubelet at `node_path` whose `--version` prints `stdout` and exits
    /// with `code`.
    fn kubelet(&self, node_path: &str, stdout: &str, code: i32) {
        self.write(
            node_path,
            &format!("#!/bin/sh\necho '{stdout}'\nexit {code}\n"),
        );
        std::fs::set_permissions(self.path(node_path), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let out = crate::host::CommandOutput {
            code: Some(code),
            stdout: format!("{stdout}\n"),
            stderr: String::new(),
        };
        self.host.answer_run(&self.path(node_path), Ok(out));
    }

    fn listen(&mut self) {
        let p = self.path("/run/containerd/containerd.sock");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        self._runtime = Some(UnixListener::bind(p).unwrap());
    }

    fn inputs(&self) -> LocalInputs {
        LocalInputs {
            root: self.dir.path().to_owned(),
            cri_socket: Ok(CONTAINERD.into()),
            cgroup_driver: Some(CgroupDriver::Systemd),
            // Ports nobody uses in these tests: each test its own.
            kubelet_overrides: None,
            kubelet: KubeletBinary::Search,
            server_version: ServerVersion::NotAsked,
            host: self.host.clone(),
        }
    }

    fn run(&self, inputs: &LocalInputs) -> Vec<CheckResult> {
        local_checks(inputs)
    }
}

fn find<'a>(checks: &'a [CheckResult], name: &str) -> &'a CheckResult {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {checks:#?}"))
}

fn status(checks: &[CheckResult], name: &str) -> Status {
    find(checks, name).status
}

#[test]
fn a_healthy_fake_machine_passes_every_local_check() {
    let r = FakeRoot::healthy();
    let checks = r.run(&r.inputs());
    for c in &checks {
        assert_eq!(c.status, Status::Pass, "{c:#?}");
    }
    assert!(find(&checks, names::KUBELET_VERSION)
        .message
        .contains("v1.31.2"));
    assert!(find(&checks, names::IS_PRIVILEGED_USER)
        .message
        .contains("staging directory needs no root"));
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    for n in [
        names::IS_PRIVILEGED_USER,
        names::KUBELET_BINARY,
        names::CRI,
        names::CGROUP_DRIVER,
        names::SWAP,
        names::IP_FORWARD,
        names::BRIDGE_NF,
        names::SYSTEM_VERIFICATION,
        names::KUBELET_CONF,
        names::BOOTSTRAP_KUBELET_CONF,
        names::CA_CRT,
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
}

#[test]
fn kernel_checks_warn_and_fail() {
    let r = FakeRoot::healthy();
    r.write(
        "/proc/swaps",
        "Filename Type Size Used Priority\n/swap.img file 1048572 0 -2\n",
    );
    r.write("/proc/sys/net/ipv4/ip_forward", "0\n");
    r.write("/proc/sys/net/bridge/bridge-nf-call-iptables", "0\n");
    r.write("/proc/modules", "overlay 151552 0 - Live 0x0\n");
    let checks = r.run(&r.inputs());
    let swap = find(&checks, names::SWAP);
    assert_eq!(swap.status, Status::Warning, "{swap:?}");
    assert!(swap.message.contains("/swap.img") && swap.fix.as_ref().unwrap().contains("swapoff"));
    let fwd = find(&checks, names::IP_FORWARD);
    assert_eq!(fwd.status, Status::Error, "{fwd:?}");
    assert!(fwd.fix.as_ref().unwrap().contains("net.ipv4.ip_forward=1"));
    assert_eq!(status(&checks, names::BRIDGE_NF), Status::Warning);
    let m = find(&checks, names::SYSTEM_VERIFICATION);
    assert_eq!(m.status, Status::Warning, "{m:?}");
    assert!(m.message.contains("br_netfilter") && !m.message.contains("overlay"));
    // A module built into the kernel shows in /sys/module only.
    std::fs::create_dir_all(r.path("/sys/module/br_netfilter")).unwrap();
    assert_eq!(
        status(&r.run(&r.inputs()), names::SYSTEM_VERIFICATION),
        Status::Pass
    );
    // Swap with failSwapOn: false is what the user wants.
    let mut inputs = r.inputs();
    inputs.kubelet_overrides = Some(serde_norway::from_str("{failSwapOn: false}").unwrap());
    assert_eq!(status(&r.run(&inputs), names::SWAP), Status::Pass);
}

#[test]
fn kernel_files_missing_under_a_staging_root_are_skipped() {
    let r = FakeRoot::new();
    let checks = r.run(&r.inputs());
    for n in [
        names::SWAP,
        names::IP_FORWARD,
        names::BRIDGE_NF,
        names::SYSTEM_VERIFICATION,
    ] {
        let c = find(&checks, n);
        assert_eq!(c.status, Status::Skipped, "{c:?}");
        assert!(c.message.contains("cannot tell"), "{c:?}");
    }
}

#[test]
fn kubelet_missing_broken_and_versions() {
    let r = FakeRoot::new();
    let checks = r.run(&r.inputs());
    let c = find(&checks, names::KUBELET_BINARY);
    assert_eq!(c.status, Status::Error, "{c:?}");
    assert!(c
        .message
        .contains("/usr/bin/kubelet, /usr/local/bin/kubelet, /opt/bin/kubelet"));
    assert_eq!(status(&checks, names::KUBELET_VERSION), Status::Skipped);

    // Found in the second place; a given path is taken as is.
    r.kubelet("/usr/local/bin/kubelet", "Kubernetes v1.30.1", 0);
    assert_eq!(
        status(&r.run(&r.inputs()), names::KUBELET_BINARY),
        Status::Pass
    );
    let mut inputs = r.inputs();
    inputs.kubelet = KubeletBinary::Given(r.path("/usr/local/bin/kubelet"));
    let v = r.run(&inputs);
    assert_eq!(status(&v, names::KUBELET_BINARY), Status::Pass);
    assert!(find(&v, names::KUBELET_VERSION)
        .message
        .contains("not checked"));

    let skew = |server: &str| {
        let mut inputs = r.inputs();
        inputs.server_version = ServerVersion::Known(KubeVersion::find(server).unwrap());
        find(&r.run(&inputs), names::KUBELET_VERSION).clone()
    };
    assert_eq!(skew("v1.30.0").status, Status::Pass);
    assert_eq!(
        skew("v1.33.4").status,
        Status::Pass,
        "3 minors older is fine"
    );
    let old = skew("v1.34.0");
    assert_eq!(old.status, Status::Error, "{old:?}");
    assert!(old.message.contains("more than 3 minor"), "{old:?}");
    let newer = skew("v1.29.9");
    assert_eq!(newer.status, Status::Error);
    assert!(
        newer.message.contains("newer than the control plane"),
        "{newer:?}"
    );

    // Not executable; prints nothing; hangs past the timeout would take 5 s: not tested.
    r.write("/usr/bin/kubelet", "not a program");
    assert_eq!(
        status(&r.run(&r.inputs()), names::KUBELET_BINARY),
        Status::Error
    );
    r.kubelet("/usr/bin/kubelet", "hello", 0);
    let c = find(&r.run(&r.inputs()), names::KUBELET_VERSION).clone();
    assert_eq!(c.status, Status::Error, "{c:?}");
    r.kubelet("/usr/bin/kubelet", "", 3);
    let c = find(&r.run(&r.inputs()), names::KUBELET_VERSION).clone();
    assert!(c.message.contains("failed"), "{c:?}");
}

#[test]
fn cri_socket_and_cgroup_driver() {
    let mut r = FakeRoot::new();
    let checks = r.run(&r.inputs());
    let c = find(&checks, names::CRI);
    assert_eq!(c.status, Status::Error);
    assert!(c.message.contains("no socket at"), "{c:?}");
    assert_eq!(status(&checks, names::CGROUP_DRIVER), Status::Skipped);

    let mut inputs = r.inputs();
    inputs.cri_socket = Err("no container runtime socket found".into());
    let checks = r.run(&inputs);
    assert_eq!(status(&checks, names::CRI), Status::Error);
    assert_eq!(status(&checks, names::CGROUP_DRIVER), Status::Skipped);

    // Listening, no containerd config: containerd's default is cgroupfs.
    r.listen();
    let checks = r.run(&r.inputs());
    assert_eq!(status(&checks, names::CRI), Status::Pass);
    let c = find(&checks, names::CGROUP_DRIVER);
    assert_eq!(c.status, Status::Error, "{c:?}");
    assert!(
        c.fix.as_ref().unwrap().contains("--cgroup-driver cgroupfs"),
        "{c:?}"
    );
    let mut inputs = r.inputs();
    inputs.cgroup_driver = None;
    assert_eq!(status(&r.run(&inputs), names::CGROUP_DRIVER), Status::Pass);
    inputs.cgroup_driver = Some(CgroupDriver::Cgroupfs);
    assert_eq!(status(&r.run(&inputs), names::CGROUP_DRIVER), Status::Pass);

    // An endpoint of an unknown runtime: the driver cannot be read.
    let other = r.path("/run/other.sock");
    let _l = UnixListener::bind(&other).unwrap();
    inputs.cri_socket = Ok("unix:///run/other.sock".into());
    inputs.cgroup_driver = None;
    let checks = r.run(&inputs);
    assert_eq!(status(&checks, names::CRI), Status::Pass);
    assert_eq!(status(&checks, names::CGROUP_DRIVER), Status::Warning);
    inputs.cgroup_driver = Some(CgroupDriver::Systemd);
    assert_eq!(
        status(&r.run(&inputs), names::CGROUP_DRIVER),
        Status::Skipped
    );
}

#[test]
fn foreign_files_fail_ours_pass() {
    let r = FakeRoot::new();
    r.write(
        "/etc/kubernetes/kubelet.conf",
        "apiVersion: v1\nkind: Config\n",
    );
    r.write("/etc/kubernetes/pki/ca.crt", "pem");
    let checks = r.run(&r.inputs());
    for n in [names::KUBELET_CONF, names::CA_CRT] {
        let c = find(&checks, n);
        assert_eq!(c.status, Status::Error, "{c:?}");
        assert!(c.message.contains("kaas-join did not write it"), "{c:?}");
    }
    assert_eq!(status(&checks, names::BOOTSTRAP_KUBELET_CONF), Status::Pass);
    // With our state file they are from our own (earlier or half-done) join.
    r.write(state::STATE_FILE, "{}");
    let checks = r.run(&r.inputs());
    assert_eq!(status(&checks, names::KUBELET_CONF), Status::Pass);
    assert_eq!(status(&checks, names::CA_CRT), Status::Pass);
    // bootstrap-kubelet.conf is never ours.
    r.write("/etc/kubernetes/bootstrap-kubelet.conf", "x");
    assert_eq!(
        status(&r.run(&r.inputs()), names::BOOTSTRAP_KUBELET_CONF),
        Status::Error
    );
}

#[test]
fn root_is_required_only_on_the_machine_itself() {
    let r = FakeRoot::healthy();
    let on_machine = FakeHost::new()
        .with_machine_root(r.dir.path())
        .with_uid(Some(1000));
    let c = privileged_user(&Paths::new(r.dir.path()), &on_machine);
    assert_eq!(c.status, Status::Error, "{c:?}");
    assert!(c.message.contains("uid 1000"), "{c:?}");
    let root = FakeHost::new().with_machine_root(r.dir.path());
    assert_eq!(
        privileged_user(&Paths::new(r.dir.path()), &root).status,
        Status::Pass
    );
    let staging = FakeHost::new().with_uid(Some(1000));
    assert_eq!(
        privileged_user(&Paths::new(r.dir.path()), &staging).status,
        Status::Pass
    );
}

#[test]
fn debug_hides_the_token() {
    let args = PreflightArgs {
        join: JoinArgs {
            token: Some("abcdef.0123456789abcdef".into()),
            ticket: Some("kj1.secret.x".into()),
            ..JoinArgs::default()
        },
        kubelet: None,
    };
    let dbg = format!("{args:?}");
    assert!(
        !dbg.contains("0123456789abcdef") && !dbg.contains("kj1"),
        "{dbg}"
    );
}

#[test]
fn systemd_is_refused_where_systemd_does_not_run_this_machine() {
    let r = FakeRoot::healthy();
    let paths = Paths::new(r.dir.path());
    let no_systemd = FakeHost::new().with_machine_root(r.dir.path());
    let given = Some(CgroupDriver::Systemd);
    // Even with the runtime agreeing (SystemdCgroup = true), kubelet would exit at once.
    let c = cgroup_driver(&no_systemd, &paths, &Ok(CONTAINERD.into()), true, given);
    assert_eq!(c.status, Status::Error, "{c:?}");
    assert!(
        c.message.contains("systemd does not run this machine"),
        "{c:?}"
    );
    assert!(
        c.fix.as_ref().unwrap().contains("--cgroup-driver cgroupfs"),
        "{c:?}"
    );
    // Whatever the runtime says, before it is even asked.
    let c = cgroup_driver(&no_systemd, &paths, &Ok(CONTAINERD.into()), false, given);
    assert_eq!(c.status, Status::Error, "{c:?}");

    let with_systemd = FakeHost::new()
        .with_machine_root(r.dir.path())
        .with_systemd();
    let c = cgroup_driver(&with_systemd, &paths, &Ok(CONTAINERD.into()), true, given);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    // An image under --root boots elsewhere: systemd not running here says nothing.
    let staging = FakeHost::new();
    let c = cgroup_driver(&staging, &paths, &Ok(CONTAINERD.into()), true, given);
    assert_eq!(c.status, Status::Pass, "{c:?}");
}

#[test]
fn an_unknown_driver_is_defaulted_to_what_can_work_here() {
    let r = FakeRoot::new();
    let other = r.path("/run/other.sock");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    let _l = UnixListener::bind(&other).unwrap();
    let paths = Paths::new(r.dir.path());
    let endpoint = Ok("unix:///run/other.sock".to_owned());
    let no_systemd = FakeHost::new().with_machine_root(r.dir.path());
    let c = cgroup_driver(&no_systemd, &paths, &endpoint, true, None);
    assert_eq!(c.status, Status::Warning, "{c:?}");
    assert!(c.message.contains("will give kubelet cgroupfs"), "{c:?}");
    let with_systemd = FakeHost::new()
        .with_machine_root(r.dir.path())
        .with_systemd();
    let c = cgroup_driver(&with_systemd, &paths, &endpoint, true, None);
    assert!(c.message.contains("will give kubelet systemd"), "{c:?}");
}
