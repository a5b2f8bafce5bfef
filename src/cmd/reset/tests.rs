//! [`reset`] on a root as `join` leaves it: which files go and which stay, and what is stopped
//! (on a `FakeHost`).

use std::path::{Path, PathBuf};

use super::*;
use crate::host::paths::{
    CA_CERT, KUBELET_CLIENT_CURRENT, KUBELET_CONFIG, KUBELET_FLAGS_ENV, KUBELET_PKI_DIR,
};
use crate::host::{CommandOutput, FakeHost, Signal};
use crate::model::pin::CaPin;
use crate::node::join_state::NODE_KEY;
use crate::node::join_state::{Phase, State};
use crate::node::run_status::RunStatus;
use crate::node::run_status::RUN_STATUS_FILE;

const SERVER: &str = "https://127.0.0.1:6443";

fn ca_pem() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let pin = CaPin::of_certificate_der(cert.der()).unwrap().to_string();
    (cert.pem(), pin)
}

fn write(paths: &Paths, node_path: &str, content: &str) {
    let p = paths.host(node_path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// A root as `join` leaves it, kubelet having rotated once, plus what is not ours.
fn joined_root(phase: Phase) -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let (ca, pin) = ca_pem();
    state::save(
        &paths,
        &State {
            version: 1,
            phase,
            node_name: "n1".into(),
            server: SERVER.into(),
            ca_pin: Some(pin),
            csr_name: Some("node-csr-x".into()),
            certificate_not_after: None,
            rejoin: None,
            replacing: None,
            updated_at: state::now_rfc3339(),
        },
    )
    .unwrap();
    let conf =
        crate::model::kubeconfig::kubelet_kubeconfig(SERVER, ca.as_bytes(), KUBELET_CLIENT_CURRENT);
    write(&paths, KUBELET_KUBECONFIG, &conf.to_yaml());
    write(&paths, CA_CERT, &ca);
    write(&paths, KUBELET_CONFIG, "kind: KubeletConfiguration\n");
    write(&paths, KUBELET_FLAGS_ENV, "KUBELET_KUBEADM_ARGS=\"\"\n");
    let pki = KUBELET_PKI_DIR;
    write(
        &paths,
        &format!("{pki}/kubelet-client-2026-01-02-03-04-05.pem"),
        "ours",
    );
    // kubelet's rotation: a new pair and an absolute link to it.
    write(
        &paths,
        &format!("{pki}/kubelet-client-2026-03-01-00-00-00.pem"),
        "rotated",
    );
    std::os::unix::fs::symlink(
        "/var/lib/kubelet/pki/kubelet-client-2026-03-01-00-00-00.pem",
        paths.host(KUBELET_CLIENT_CURRENT),
    )
    .unwrap();
    write(
        &paths,
        &format!("{pki}/.kubelet-client-current.pem.77.0.tmp"),
        "",
    );
    write(&paths, NODE_KEY, "key");
    write(&paths, RUN_STATUS_FILE, "{}");
    // Not ours.
    write(&paths, &format!("{pki}/kubelet.crt"), "serving");
    write(&paths, &format!("{pki}/kubelet.key"), "serving key");
    write(
        &paths,
        &format!("{pki}/kubelet-client-backup.pem"),
        "someone's",
    );
    write(
        &paths,
        &format!("{pki}/kubelet-server-2026-01-02-03-04-05.pem"),
        "server",
    );
    write(&paths, "/var/lib/kubelet/pods/x/volume", "pod data");
    write(
        &paths,
        "/etc/kubernetes/manifests/static.yaml",
        "static pod",
    );
    write(&paths, "/etc/kaas-join/config.yaml", "servers: []\n");
    write(&paths, "/etc/kaas-join/token", "secret");
    write(
        &paths,
        "/etc/kubernetes/.kubelet.conf.tmp",
        "not our temp name",
    );
    (dir, paths)
}

/// A machine with nothing running on it.
static IDLE: std::sync::LazyLock<FakeHost> = std::sync::LazyLock::new(FakeHost::new);

fn opts(paths: &Paths, dry_run: bool) -> ResetOptions<'static> {
    opts_on(paths, dry_run, &*IDLE)
}

fn opts_on<'a>(paths: &Paths, dry_run: bool, host: &'a dyn Host) -> ResetOptions<'a> {
    ResetOptions {
        paths: paths.clone(),
        admin: None,
        dry_run,
        host,
    }
}

fn all_files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(&p, root, out);
            } else {
                out.push(format!("/{}", p.strip_prefix(root).unwrap().display()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn dirs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = [
        "etc/kubernetes/pki",
        "var/lib/kubelet/pki",
        "var/lib/kaas-join",
        "run/kaas-join",
    ]
    .iter()
    .map(|d| root.join(d))
    .collect();
    v.sort();
    v
}

const FOREIGN: [&str; 9] = [
    "/etc/kaas-join/config.yaml",
    "/etc/kaas-join/token",
    "/etc/kubernetes/.kubelet.conf.tmp",
    "/etc/kubernetes/manifests/static.yaml",
    "/var/lib/kubelet/pki/kubelet-client-backup.pem",
    "/var/lib/kubelet/pki/kubelet-server-2026-01-02-03-04-05.pem",
    "/var/lib/kubelet/pki/kubelet.crt",
    "/var/lib/kubelet/pki/kubelet.key",
    "/var/lib/kubelet/pods/x/volume",
];

#[tokio::test]
async fn removes_ours_and_rotated_keeps_everything_else() {
    let (dir, paths) = joined_root(Phase::Joined);
    let report = reset(&opts(&paths, false)).await.unwrap();
    assert_eq!(
        report.removed,
        vec![
            "/etc/kubernetes/kubelet.conf",
            "/var/lib/kubelet/kubeadm-flags.env",
            "/var/lib/kubelet/config.yaml",
            "/etc/kubernetes/pki/ca.crt",
            "/var/lib/kubelet/pki/kubelet-client-current.pem",
            "/var/lib/kubelet/pki/kubelet-client-2026-01-02-03-04-05.pem",
            "/var/lib/kubelet/pki/kubelet-client-2026-03-01-00-00-00.pem",
            "/var/lib/kubelet/pki/.kubelet-client-current.pem.77.0.tmp",
            "/var/lib/kaas-join/node-key.pem",
            "/run/kaas-join/status.json",
            "/var/lib/kaas-join/state.json",
        ]
    );
    assert_eq!(all_files(dir.path()), FOREIGN);
    for d in dirs(dir.path()) {
        assert!(d.is_dir(), "directory {} was removed", d.display());
    }
    let kept: Vec<&str> = report.kept.iter().map(|k| k.path.as_str()).collect();
    assert_eq!(
        kept,
        [
            "/var/lib/kubelet/pki/kubelet.crt",
            "/var/lib/kubelet/pki/kubelet.key",
            "/etc/kaas-join/"
        ]
    );
    assert_eq!(report.node.outcome, NodeOutcome::NotRequested);
    assert!(report.stopped.is_empty(), "{:?}", report.stopped);
    let text = render_text(&report);
    assert!(
        text.contains("removed      /etc/kubernetes/kubelet.conf\n"),
        "{text}"
    );
    assert!(text.contains("kubectl delete node n1"), "{text}");
    assert!(!text.contains("secret"), "{text}");

    // Once done, there is nothing to reset, and reset says so.
    let err = reset(&opts(&paths, false)).await.unwrap_err();
    assert!(matches!(err, ResetError::NothingToReset), "{err}");
    assert_eq!(err.exit_code(), ExitCode::NotJoined);
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let (dir, paths) = joined_root(Phase::Joined);
    let before = all_files(dir.path());
    let report = reset(&opts(&paths, true)).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(report.removed.len(), 11, "{:?}", report.removed);
    assert_eq!(all_files(dir.path()), before);
    assert!(render_text(&report).contains("would remove /var/lib/kaas-join/state.json"));
}

#[tokio::test]
async fn foreign_kubeconfig_and_ca_are_kept() {
    let (dir, paths) = joined_root(Phase::Joined);
    let (other_ca, _) = ca_pem();
    write(&paths, CA_CERT, &other_ca);
    let conf = crate::model::kubeconfig::kubelet_kubeconfig(
        "https://10.9.9.9:6443",
        other_ca.as_bytes(),
        KUBELET_CLIENT_CURRENT,
    );
    write(&paths, KUBELET_KUBECONFIG, &conf.to_yaml());
    let report = reset(&opts(&paths, false)).await.unwrap();
    let kept: Vec<&str> = report.kept.iter().map(|k| k.path.as_str()).collect();
    assert!(kept.contains(&CA_CERT), "{kept:?}");
    assert!(kept.contains(&KUBELET_KUBECONFIG), "{kept:?}");
    let files = all_files(dir.path());
    assert!(files.contains(&CA_CERT.to_string()));
    assert!(files.contains(&KUBELET_KUBECONFIG.to_string()));
    assert!(!files.contains(&STATE_FILE.to_string()));
    let why = &report
        .kept
        .iter()
        .find(|k| k.path == CA_CERT)
        .unwrap()
        .reason;
    assert!(why.contains("pin sha256:"), "{why}");
}

#[tokio::test]
async fn half_done_join_is_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    write(&paths, NODE_KEY, "key");
    std::fs::write(paths.host(STATE_FILE), "{\"damaged").unwrap();
    write(&paths, "/var/lib/kaas-join/.state.json.12.3.tmp", "{");
    let report = reset(&opts(&paths, false)).await.unwrap();
    assert_eq!(
        report.removed,
        [
            "/var/lib/kaas-join/.state.json.12.3.tmp",
            "/var/lib/kaas-join/node-key.pem",
            "/var/lib/kaas-join/state.json"
        ]
    );
    assert_eq!(report.node_name, None);
    assert!(all_files(dir.path()).is_empty());
}

#[tokio::test]
async fn not_ours_or_nothing_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let err = reset(&opts(&paths, false)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "nothing to reset: this node has not joined (no /var/lib/kaas-join/state.json): it \
         was reset already, or joined with another --root"
    );
    // kubeadm's join: kubelet.conf without our state.
    write(&paths, KUBELET_KUBECONFIG, "kubeadm's");
    write(&paths, CA_CERT, "kubeadm's");
    write(
        &paths,
        "/var/lib/kubelet/pki/kubelet-client-current.pem",
        "x",
    );
    let before = all_files(dir.path());
    let err = reset(&opts(&paths, false)).await.unwrap_err();
    assert!(matches!(err, ResetError::NotOurs));
    assert_eq!(err.exit_code(), ExitCode::NotJoined);
    assert!(err.to_string().contains("`kubeadm reset`"), "{err}");
    assert_eq!(all_files(dir.path()), before);
}

#[tokio::test]
async fn a_file_that_cannot_be_removed_stops_with_its_name_and_keeps_the_state() {
    let (_dir, paths) = joined_root(Phase::Joined);
    // A directory where kubelet's config file should be: not removable as a file.
    std::fs::remove_file(paths.host(KUBELET_CONFIG)).unwrap();
    std::fs::create_dir(paths.host(KUBELET_CONFIG)).unwrap();
    let err = reset(&opts(&paths, false)).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Filesystem);
    let msg = err.to_string();
    assert!(msg.contains("config.yaml"), "{msg}");
    assert!(msg.contains("2 file(s) removed before it"), "{msg}");
    assert!(paths.host(STATE_FILE).exists());
    // Fixed, a re-run finishes the job.
    std::fs::remove_dir(paths.host(KUBELET_CONFIG)).unwrap();
    let report = reset(&opts(&paths, false)).await.unwrap();
    assert_eq!(report.removed.first().map(String::as_str), Some(CA_CERT));
    assert!(!paths.host(STATE_FILE).exists());
}

/// A run-status file naming daemon `pid` and kubelet `kubelet`.
fn write_run_status(paths: &Paths, pid: u32, kubelet: u32) {
    let run = RunStatus {
        pid,
        kubelet: crate::model::kubelet_process::KubeletState {
            pid: Some(kubelet),
            ..Default::default()
        },
        ..RunStatus::default()
    };
    write(
        paths,
        RUN_STATUS_FILE,
        &serde_json::to_string(&run).unwrap(),
    );
}

const KUBELET_ARGV: [&str; 3] = [
    "/usr/bin/kubelet",
    "--kubeconfig=/etc/kubernetes/kubelet.conf",
    "--config=/var/lib/kubelet/config.yaml",
];

#[tokio::test]
async fn a_live_process_that_is_not_ours_is_not_signalled() {
    let (_dir, paths) = joined_root(Phase::Joined);
    let host = FakeHost::new();
    host.add_process(50, "sshd", &["/usr/sbin/sshd", "-D"]);
    host.add_process(51, "bash", &["bash"]);
    write_run_status(&paths, 50, 51);
    let report = reset(&opts_on(&paths, false, &host)).await.unwrap();
    assert!(report.stopped.is_empty(), "{:?}", report.stopped);
    assert!(host.signals().is_empty(), "{:?}", host.signals());
}

#[tokio::test]
async fn the_daemon_and_its_kubelet_are_stopped_with_sigterm() {
    let (dir, paths) = joined_root(Phase::Joined);
    let host = FakeHost::new();
    let root = dir.path().display().to_string();
    host.add_process(
        60,
        "kaas-join",
        &["/usr/bin/kaas-join", "run", "--root", &root],
    );
    host.add_process(61, "kubelet", &KUBELET_ARGV);
    write_run_status(&paths, 60, 61);
    let report = reset(&opts_on(&paths, false, &host)).await.unwrap();
    assert_eq!(
        report.stopped,
        ["kaas-join run (pid 60)", "kubelet (pid 61)"]
    );
    // kubelet is its own process group leader (the fake's default): the group is signalled.
    assert_eq!(
        host.signals(),
        [(60, false, Signal::SIGTERM), (61, true, Signal::SIGTERM)]
    );
    assert!(host.systemctl_calls().is_empty(), "not this machine's root");
}

#[tokio::test(start_paused = true)]
async fn a_kubelet_that_ignores_sigterm_gets_sigkill_then_reset_says_it_still_runs() {
    let (_dir, paths) = joined_root(Phase::Joined);
    let host = FakeHost::new();
    host.add_process(71, "kubelet", &KUBELET_ARGV);
    host.stubborn(71);
    write_run_status(&paths, 70, 71);
    let err = reset(&opts_on(&paths, false, &host)).await.unwrap_err();
    assert!(
        matches!(err, ResetError::StillRunning { pid: 71, .. }),
        "{err}"
    );
    assert_eq!(err.exit_code(), ExitCode::Internal);
    assert_eq!(
        host.signals(),
        [(71, true, Signal::SIGTERM), (71, true, Signal::SIGKILL)]
    );
    assert!(paths.host(STATE_FILE).exists(), "nothing removed");
}

fn show(active: &str) -> CommandOutput {
    CommandOutput {
        code: Some(0),
        stdout: format!("LoadState=loaded\nActiveState={active}\n"),
        stderr: String::new(),
    }
}

/// A machine whose root is `paths`' root, run by systemd, with kaas-join.service active.
fn systemd_machine(paths: &Paths) -> FakeHost {
    let host = FakeHost::new()
        .with_machine_root(paths.root())
        .with_systemd();
    for unit in UNITS {
        let args = [
            "show",
            "--property=LoadState",
            "--property=ActiveState",
            unit,
        ];
        let state = if unit == "kaas-join.service" {
            "active"
        } else {
            "inactive"
        };
        host.answer_systemctl(&args, show(state));
    }
    host
}

#[tokio::test]
async fn on_this_machine_under_systemd_the_active_units_are_stopped() {
    let (_dir, paths) = joined_root(Phase::Joined);
    let host = systemd_machine(&paths);
    let report = reset(&opts_on(&paths, false, &host)).await.unwrap();
    assert_eq!(report.stopped, ["kaas-join.service (systemd)"]);
    let calls = host.systemctl_calls();
    assert_eq!(calls.last().unwrap(), &["stop", "kaas-join.service"]);
    assert!(!paths.host(STATE_FILE).exists());
}

#[tokio::test]
async fn a_failed_systemctl_stop_removes_nothing() {
    let (_dir, paths) = joined_root(Phase::Joined);
    let host = systemd_machine(&paths);
    host.answer_systemctl(
        &["stop", "kaas-join.service"],
        CommandOutput {
            code: Some(1),
            stdout: String::new(),
            stderr: "Failed to stop kaas-join.service: Access denied\n".into(),
        },
    );
    let err = reset(&opts_on(&paths, false, &host)).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Internal);
    assert!(err.to_string().contains("Access denied"), "{err}");
    assert!(paths.host(STATE_FILE).exists() && paths.host(KUBELET_KUBECONFIG).exists());
}

#[tokio::test]
async fn a_dry_run_asks_systemd_but_stops_nothing() {
    let (_dir, paths) = joined_root(Phase::Joined);
    let host = systemd_machine(&paths);
    let report = reset(&opts_on(&paths, true, &host)).await.unwrap();
    assert_eq!(report.stopped, ["kaas-join.service (systemd)"]);
    assert!(host.systemctl_calls().iter().all(|c| c[0] == "show"));
}

#[tokio::test]
async fn without_systemd_no_unit_is_asked_about() {
    let (_dir, paths) = joined_root(Phase::Joined);
    let host = FakeHost::new().with_machine_root(paths.root());
    reset(&opts_on(&paths, true, &host)).await.unwrap();
    assert!(host.systemctl_calls().is_empty());
}
