//! Tests of the runtime detection against fake roots.

use super::containerd::glob_match;
use super::toml_scan::{parse_toml_string_array, scan_toml};
use super::*;
use std::os::unix::net::UnixListener;

struct Root {
    dir: tempfile::TempDir,
    // Keeps the sockets bound for the test's duration.
    _listeners: Vec<UnixListener>,
}

impl Root {
    fn new() -> Root {
        Root {
            dir: tempfile::tempdir().unwrap(),
            _listeners: Vec::new(),
        }
    }
    fn paths(&self) -> Paths {
        Paths::new(self.dir.path())
    }
    fn file(&self, node_path: &str, text: &str) {
        let p = self.dir.path().join(node_path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    fn socket(&mut self, node_path: &str) {
        let p = self.dir.path().join(node_path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        self._listeners.push(UnixListener::bind(p).unwrap());
    }
}

#[test]
fn detects_containerd_socket() {
    let mut r = Root::new();
    r.socket("/run/containerd/containerd.sock");
    assert_eq!(
        detect_cri_socket(&r.paths()).unwrap(),
        "unix:///run/containerd/containerd.sock"
    );
}

#[test]
fn detects_crio_under_var_run() {
    let mut r = Root::new();
    r.socket("/var/run/crio/crio.sock");
    assert_eq!(
        detect_cri_socket(&r.paths()).unwrap(),
        "unix:///var/run/crio/crio.sock"
    );
}

#[test]
fn same_runtime_at_both_paths_is_one_runtime() {
    let mut r = Root::new();
    r.socket("/run/containerd/containerd.sock");
    r.socket("/var/run/containerd/containerd.sock");
    assert_eq!(
        detect_cri_socket(&r.paths()).unwrap(),
        "unix:///run/containerd/containerd.sock"
    );
}

#[test]
fn no_socket_is_an_error_naming_the_fix() {
    let r = Root::new();
    // A regular file where the socket should be does not count.
    r.file("/run/containerd/containerd.sock", "");
    let e = detect_cri_socket(&r.paths()).unwrap_err();
    assert!(matches!(e, HostError::NoCriSocket { .. }));
    let msg = e.to_string();
    assert!(msg.contains("--cri-socket"), "{msg}");
    assert!(msg.contains("unix:///run/crio/crio.sock"), "{msg}");
}

#[test]
fn an_image_without_a_socket_gets_containerds_default_and_the_machine_an_error() {
    let mut r = Root::new();
    let (socket, warning) = cri_socket_for_join(&r.paths(), false).unwrap();
    assert_eq!(socket, DEFAULT_CRI_SOCKET);
    assert!(warning.unwrap().contains("pass --cri-socket"));
    let e = cri_socket_for_join(&r.paths(), true).unwrap_err();
    assert!(matches!(e, HostError::NoCriSocket { .. }), "{e}");
    // A socket there is used, with nothing to warn about.
    r.socket("/run/crio/crio.sock");
    let found = cri_socket_for_join(&r.paths(), false).unwrap();
    assert_eq!(found, ("unix:///run/crio/crio.sock".to_owned(), None));
    r.socket("/run/containerd/containerd.sock");
    // Two runtimes stay an error everywhere.
    assert!(cri_socket_for_join(&r.paths(), false).is_err());
}

#[test]
fn two_runtimes_is_an_error_listing_them() {
    let mut r = Root::new();
    r.socket("/run/containerd/containerd.sock");
    r.socket("/var/run/cri-dockerd.sock");
    let e = detect_cri_socket(&r.paths()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, HostError::MultipleCriSockets { .. }));
    assert!(
        msg.contains("containerd at unix:///run/containerd/containerd.sock"),
        "{msg}"
    );
    assert!(
        msg.contains("cri-dockerd at unix:///var/run/cri-dockerd.sock"),
        "{msg}"
    );
    assert!(msg.contains("--cri-socket"), "{msg}");
}

const CONTAINERD: &str = "unix:///run/containerd/containerd.sock";

#[test]
fn containerd_without_config_is_cgroupfs() {
    let r = Root::new();
    let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
    assert_eq!(d, CgroupDriver::Cgroupfs);
    assert!(why.contains("no /etc/containerd/config.toml"), "{why}");
}

#[test]
fn containerd_v2_config_systemd() {
    let r = Root::new();
    r.file(
        CONTAINERD_CONFIG,
        r#"version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
sandbox_image = "registry.k8s.io/pause:3.10" # comment
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    # SystemdCgroup = false
    SystemdCgroup = true
"#,
    );
    let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
    assert_eq!(d, CgroupDriver::Systemd);
    assert_eq!(
        why,
        "containerd: SystemdCgroup = true for runtime runc in /etc/containerd/config.toml"
    );
}

#[test]
fn containerd_v3_config_single_quotes() {
    let r = Root::new();
    r.file(
        CONTAINERD_CONFIG,
        "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = false\n",
    );
    let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
    assert_eq!(d, CgroupDriver::Cgroupfs);
    assert!(why.contains("SystemdCgroup = false"), "{why}");
}

#[test]
fn containerd_unset_is_cgroupfs_default() {
    let r = Root::new();
    r.file(
        CONTAINERD_CONFIG,
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  BinaryName = \"\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.other.options]\n  SystemdCgroup = true\n",
    );
    let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
    assert_eq!(d, CgroupDriver::Cgroupfs);
    assert_eq!(
        why,
        "containerd: no SystemdCgroup setting for runtime runc in /etc/containerd/config.toml, \
         containerd's default (cgroupfs)"
    );
}

#[test]
fn containerd_follows_default_runtime_name() {
    let r = Root::new();
    r.file(
        CONTAINERD_CONFIG,
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"nvidia\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia.options]\n  SystemdCgroup = true\n",
    );
    let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
    assert_eq!(d, CgroupDriver::Systemd);
    assert!(why.contains("runtime nvidia"), "{why}");
}

#[test]
fn containerd_dotted_keys_and_v1_layout() {
    let r = Root::new();
    r.file(
        CONTAINERD_CONFIG,
        "[plugins.cri.containerd.runtimes.runc]\n  options.SystemdCgroup = true\n",
    );
    let (d, _) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
    assert_eq!(d, CgroupDriver::Systemd);
}

#[test]
fn containerd_imports_override_main_file() {
    let r = Root::new();
    r.file(
        CONTAINERD_CONFIG,
        "version = 2\nimports = [\n  \"/etc/containerd/conf.d/*.toml\",\n  \"extra.toml\", # relative\n]\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = false\n",
    );
    r.file(
        "/etc/containerd/conf.d/10-systemd.toml",
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n",
    );
    r.file("/etc/containerd/conf.d/README", "SystemdCgroup = false\n");
    let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
    assert_eq!(d, CgroupDriver::Systemd);
    assert!(
        why.contains("/etc/containerd/conf.d/10-systemd.toml"),
        "{why}"
    );

    // A later import wins over an earlier one.
    r.file(
        "/etc/containerd/extra.toml",
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = false\n",
    );
    let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
    assert_eq!(d, CgroupDriver::Cgroupfs);
    assert!(why.contains("/etc/containerd/extra.toml"), "{why}");
}

#[test]
fn containerd_invalid_value_is_an_error() {
    let r = Root::new();
    r.file(
        CONTAINERD_CONFIG,
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = \"yes\"\n",
    );
    let e = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(":2: SystemdCgroup = \"yes\""), "{msg}");
    assert!(msg.contains("--cgroup-driver"), "{msg}");
}

const CRIO: &str = "unix:///var/run/crio/crio.sock";

#[test]
fn crio_default_is_systemd() {
    let r = Root::new();
    r.file(
        CRIO_CONFIG,
        "[crio.runtime]\n# cgroup_manager = \"cgroupfs\"\n",
    );
    let (d, why) = detect_cgroup_driver(&r.paths(), CRIO).unwrap();
    assert_eq!(d, CgroupDriver::Systemd);
    assert!(why.contains("CRI-O's default (systemd)"), "{why}");
}

#[test]
fn crio_drop_ins_override_in_order() {
    let r = Root::new();
    r.file(
        CRIO_CONFIG,
        "[crio.runtime]\ncgroup_manager = \"systemd\"\n",
    );
    r.file(
        "/etc/crio/crio.conf.d/10-a.conf",
        "[crio.runtime]\ncgroup_manager = \"systemd\"\n",
    );
    r.file(
        "/etc/crio/crio.conf.d/20-b.conf",
        "[crio]\n[crio.runtime]\n  cgroup_manager = 'cgroupfs'\n  conmon_cgroup = \"pod\"\n",
    );
    r.file(
        "/etc/crio/crio.conf.d/30-c.disabled",
        "[crio.runtime]\ncgroup_manager = \"systemd\"\n",
    );
    let (d, why) = detect_cgroup_driver(&r.paths(), "/run/crio/crio.sock").unwrap();
    assert_eq!(d, CgroupDriver::Cgroupfs);
    assert_eq!(
        why,
        "CRI-O: cgroup_manager = \"cgroupfs\" in /etc/crio/crio.conf.d/20-b.conf"
    );
}

#[test]
fn crio_other_section_does_not_count() {
    let r = Root::new();
    r.file(CRIO_CONFIG, "[crio.image]\ncgroup_manager = \"cgroupfs\"\n");
    let (d, _) = detect_cgroup_driver(&r.paths(), CRIO).unwrap();
    assert_eq!(d, CgroupDriver::Systemd);
}

#[test]
fn crio_invalid_value_is_an_error() {
    let r = Root::new();
    r.file(CRIO_CONFIG, "[crio.runtime]\ncgroup_manager = \"auto\"\n");
    assert!(matches!(
        detect_cgroup_driver(&r.paths(), CRIO),
        Err(HostError::InvalidSetting { .. })
    ));
}

#[test]
fn cri_dockerd_reads_daemon_json_or_cgroup_version() {
    let ep = "unix:///var/run/cri-dockerd.sock";
    let r = Root::new();
    let (d, why) = detect_cgroup_driver(&r.paths(), ep).unwrap();
    assert_eq!(d, CgroupDriver::Cgroupfs);
    assert!(why.contains("cgroup v1"), "{why}");
    r.file(CGROUP_V2_MARKER, "cpu memory\n");
    let (d, _) = detect_cgroup_driver(&r.paths(), ep).unwrap();
    assert_eq!(d, CgroupDriver::Systemd);
    r.file(
        DOCKER_DAEMON_JSON,
        r#"{"exec-opts": ["native.cgroupdriver=cgroupfs"]}"#,
    );
    let (d, why) = detect_cgroup_driver(&r.paths(), ep).unwrap();
    assert_eq!(d, CgroupDriver::Cgroupfs);
    assert!(why.contains("native.cgroupdriver=cgroupfs"), "{why}");
}

#[test]
fn unknown_endpoint_asks_for_flag() {
    let r = Root::new();
    let e =
        detect_cgroup_driver(&r.paths(), "unix:///run/k3s/containerd/containerd.sock").unwrap_err();
    assert!(e.to_string().contains("--cgroup-driver"), "{e}");
}

#[test]
fn toml_scanner_handles_quotes_comments_and_arrays() {
    let a = scan_toml(
        "a = \"x # not a comment\" # comment\n[t.\"q.k\"]\nb = [\n \"1\",\n \"2\" ]\nc = '''\nx = 1\n'''\nd = 4\n",
    );
    let keys: Vec<String> = a.iter().map(|a| a.key.join("|")).collect();
    assert_eq!(keys, ["a", "t|q.k|b", "t|q.k|c", "t|q.k|d"]);
    assert_eq!(a[0].value, "\"x # not a comment\"");
    assert_eq!(parse_toml_string_array(&a[1].value).unwrap(), ["1", "2"]);
    assert_eq!(a[3].line, 9);
}

#[test]
fn glob_matching() {
    assert!(glob_match(b"*.toml", b"a.toml"));
    assert!(glob_match(b"?0-*.conf", b"10-x.conf"));
    assert!(!glob_match(b"*.toml", b"a.toml.bak"));
    assert!(glob_match(b"*", b""));
}

#[test]
fn the_fallback_driver_is_systemd_only_where_systemd_can_run_kubelet() {
    use crate::host::FakeHost;
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let on_machine = FakeHost::new().with_machine_root(dir.path());
    let (d, why) = fallback_cgroup_driver(&on_machine, &paths);
    assert_eq!(d, CgroupDriver::Cgroupfs, "{why}");
    assert!(why.contains("/run/systemd/system"), "{why}");
    let (d, _) = fallback_cgroup_driver(&on_machine.with_systemd(), &paths);
    assert_eq!(d, CgroupDriver::Systemd);

    // Under another --root: what the image has, not what runs here.
    let staging = FakeHost::new().with_systemd();
    let (d, why) = fallback_cgroup_driver(&staging, &paths);
    assert_eq!(d, CgroupDriver::Cgroupfs, "{why}");
    let systemd = dir.path().join("usr/lib/systemd/systemd");
    std::fs::create_dir_all(systemd.parent().unwrap()).unwrap();
    std::fs::write(&systemd, "").unwrap();
    let (d, why) = fallback_cgroup_driver(&FakeHost::new(), &paths);
    assert_eq!(d, CgroupDriver::Systemd, "{why}");
    assert!(why.contains("/usr/lib/systemd/systemd"), "{why}");
}

#[test]
fn the_running_runtime_is_asked_when_its_files_say_nothing() {
    use super::cri::tests::status_with_config;
    use super::cri::{RUNTIME_CONFIG, STATUS};
    use crate::host::fake::Call;
    use crate::host::FakeHost;
    // No /etc/containerd/config.toml: containerd runs with a --config of its own.
    let r = Root::new();
    let machine = FakeHost::new();
    let systemd = r#"{"containerd":{"defaultRuntimeName":"runc","runtimes":{"runc":{"options":{"SystemdCgroup":true}}}}}"#;
    machine.answer_cri(STATUS, Ok(status_with_config(systemd)));
    let (d, how) = runtime_cgroup_driver(&machine, &r.paths(), CONTAINERD).unwrap();
    assert_eq!(d, CgroupDriver::Systemd, "{how}");
    assert!(
        how.contains("running containerd says SystemdCgroup = true"),
        "{how}"
    );
    let asked: Vec<Call> = machine.calls();
    let socket = r.paths().host("/run/containerd/containerd.sock");
    assert_eq!(
        asked,
        [RUNTIME_CONFIG, STATUS].map(|m| Call::Cri {
            socket: socket.clone(),
            method: m.to_owned()
        })
    );

    // An endpoint no file is known for: RuntimeConfig answers (containerd 2.x, CRI-O).
    let other = FakeHost::new();
    other.answer_cri(RUNTIME_CONFIG, Ok(vec![0x0a, 0x02, 0x08, 0x01]));
    let (d, how) = runtime_cgroup_driver(&other, &r.paths(), "unix:///run/k3s/c.sock").unwrap();
    assert_eq!(d, CgroupDriver::Cgroupfs, "{how}");
    // Nobody answers: the file default stays, saying why; an unknown runtime stays an error.
    let silent = FakeHost::new();
    let (d, how) = runtime_cgroup_driver(&silent, &r.paths(), CONTAINERD).unwrap();
    assert_eq!(d, CgroupDriver::Cgroupfs);
    assert!(
        how.contains("containerd's default") && how.contains("did not tell"),
        "{how}"
    );
    let e = runtime_cgroup_driver(&silent, &r.paths(), "unix:///run/k3s/c.sock").unwrap_err();
    assert!(matches!(e, HostError::UnknownRuntime { .. }), "{e}");

    // A file that says it is not second-guessed.
    r.file(
        "/etc/containerd/config.toml",
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = false\n",
    );
    let (d, _) = runtime_cgroup_driver(&machine, &r.paths(), CONTAINERD).unwrap();
    assert_eq!(d, CgroupDriver::Cgroupfs);
    assert_eq!(machine.calls().len(), 2, "not asked again");
}
