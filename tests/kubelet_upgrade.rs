//! `kaas-join upgrade-kubelet` end to end: the real binary `kaas-join run` joins the sandbox
//! (kube-apiserver `v1.32.0`) and supervises a copy of the stand-in kubelet at a path of the
//! test's own (`run --kubelet`, so the swap never touches the shared test binary); then
//! `kaas-join upgrade-kubelet --binary NEW` hands it a new binary, a small shell script that
//! says `v1.32.1` to `--version` and then crash-loops, never answers healthz, or runs the
//! stand-in kubelet (a working upgrade). Checked: the exit code, the binary in place and the
//! one kept as `.previous`, kubelet healthy again, the Events on the sandbox, and the
//! refusals (not kubelet, outside the skew policy, no running `run`). A `run` stopped in the
//! middle of an upgrade puts the old binary back when it starts again.
//!
//! Every wait is bounded (the upgrade by `run --upgrade-timeout 20s` and `upgrade-kubelet
//! --wait`); nothing is timed. Loopback only; the daemon is killed when its test ends.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::machine::{Daemon, Machine, BIN};
use common::node::poll;
use kaas_join::model::exit_code::ExitCode;
use kaas_sandbox::{Sandbox, SandboxConfig};

/// The join, kubelet's first Running (up to a healthz interval of 10 s) and the like.
const WAIT: Duration = Duration::from_secs(40);
/// `run --upgrade-timeout`.
const UPGRADE_TIMEOUT: &str = "20s";

/// A joined machine whose `run` supervises its own copy of the stand-in kubelet.
struct Node {
    sb: Sandbox,
    m: Machine,
    kubelet: PathBuf,
    daemon: Daemon,
    /// `run`'s arguments, to start it again.
    args: Vec<String>,
}

impl Node {
    async fn start(name: &str) -> Node {
        let sb = Sandbox::start(SandboxConfig::default())
            .await
            .expect("sandbox starts");
        let m = Machine::new(&sb, name);
        let kubelet = m.own_kubelet();
        let mut args = m.args("run");
        args.extend([
            "--kubelet".into(),
            kubelet.display().to_string(),
            "--heartbeat".into(),
            "2s".into(),
            "--upgrade-timeout".into(),
            UPGRADE_TIMEOUT.into(),
            "-v".into(),
        ]);
        args.extend(m.metrics_args());
        let daemon = m.spawn(&args);
        let node = Node {
            sb,
            m,
            kubelet,
            daemon,
            args,
        };
        poll(WAIT, || node.m.joined().then_some(()))
            .await
            .unwrap_or_else(|| node.fail("no join"));
        node.sb.add_node(name, true);
        node.wait_running("kubelet running").await;
        node
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\nrun status: {:?}\nlog:\n{}",
            self.daemon.run_status(),
            self.daemon.log()
        )
    }

    async fn wait_running(&self, what: &str) {
        poll(WAIT, || {
            let rs = self.daemon.run_status()?;
            (rs["kubelet"]["phase"] == "running").then_some(())
        })
        .await
        .unwrap_or_else(|| self.fail(what));
    }

    /// A new "kubelet": says `version` to `--version`, then runs `body`.
    fn script(&self, name: &str, version: &str, body: &str) -> PathBuf {
        let path = self.m.files.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nif [ \"$1\" = --version ]; then echo \"Kubernetes {version}\"; exit 0; fi\n{body}\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// `kaas-join upgrade-kubelet --binary <binary>`: (exit code, stdout + stderr).
    async fn upgrade(&self, binary: &Path) -> (i32, String) {
        upgrade(&self.m.root, binary).await
    }

    fn event_reasons(&self) -> Vec<String> {
        self.sb
            .events("default")
            .iter()
            .filter_map(|e| e["reason"].as_str().map(str::to_owned))
            .collect()
    }
}

async fn upgrade(root: &Path, binary: &Path) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["upgrade-kubelet", "--wait", "120s", "--binary"])
        .arg(binary)
        .arg("--root")
        .arg(root);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn previous(kubelet: &Path) -> PathBuf {
    kubelet.with_file_name("test-kubelet.previous")
}

/// A rolled-back upgrade: exit code 26, the old binary in place (and kept as `.previous`),
/// kubelet healthy again, the Events said so.
async fn rolled_back(node: &Node, new: &Path) {
    let original = std::fs::read(common::fake_kubelet()).unwrap();
    let (code, out) = node.upgrade(new).await;
    assert_eq!(code, ExitCode::UpgradeRolledBack, "{out}");
    assert!(out.contains("rolled back"), "{out}");
    assert!(out.contains("pods are not evicted"), "{out}");
    assert!(
        std::fs::read(&node.kubelet).unwrap() == original,
        "old binary in place"
    );
    assert!(std::fs::read(previous(&node.kubelet)).unwrap() == original);
    node.wait_running("kubelet not healthy again after the rollback")
        .await;
    poll(WAIT, || {
        let reasons = node.event_reasons();
        (reasons.iter().any(|r| r == "KubeletUpgradeStarted")
            && reasons.iter().any(|r| r == "KubeletUpgradeRolledBack"))
        .then_some(())
    })
    .await
    .unwrap_or_else(|| node.fail("no upgrade events"));
    let rs = node.daemon.run_status().unwrap();
    assert_eq!(rs["kubelet"]["upgrade"]["phase"], "rolled-back", "{rs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_new_kubelet_is_rolled_back() {
    let node = Node::start("upgrade-crash").await;
    let new = node.script(
        "kubelet-crashes",
        "v1.32.1",
        "echo 'E1202 failed to run Kubelet: misconfiguration' >&2\nexit 1",
    );
    rolled_back(&node, &new).await;
    let stderr = node.daemon.log();
    assert!(stderr.contains("putting kubelet"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_kubelet_that_never_answers_healthz_is_rolled_back() {
    let node = Node::start("upgrade-silent").await;
    let new = node.script("kubelet-silent", "v1.32.1", "exec sleep 600");
    rolled_back(&node, &new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_new_kubelet_is_kept_and_refusals_change_nothing() {
    let node = Node::start("upgrade-works").await;
    let original = std::fs::read(&node.kubelet).unwrap();

    // Refused, nothing changed: not kubelet, and newer than kube-apiserver.
    let not_kubelet = node.m.files.join("not-kubelet");
    std::fs::write(&not_kubelet, "#!/bin/sh\necho hello\n").unwrap();
    std::fs::set_permissions(&not_kubelet, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, out) = node.upgrade(&not_kubelet).await;
    assert_eq!(code, ExitCode::UpgradeRefused, "{out}");
    assert!(out.contains("not a kubelet binary"), "{out}");
    let too_new = node.script("kubelet-too-new", "v1.33.0", "exit 1");
    let (code, out) = node.upgrade(&too_new).await;
    assert_eq!(code, ExitCode::UpgradeRefused, "{out}");
    assert!(out.contains("newer than kube-apiserver"), "{out}");
    assert!(std::fs::read(&node.kubelet).unwrap() == original);

    // A working one: in place, the old one kept, kubelet healthy, the events.
    let works = node.script(
        "kubelet-works",
        "v1.32.1",
        &format!("exec {} \"$@\"", common::fake_kubelet().display()),
    );
    let (code, out) = node.upgrade(&works).await;
    assert_eq!(code, ExitCode::Ok, "{out}\n{}", node.daemon.log());
    assert!(out.contains("upgraded from v1.32.0 to v1.32.1"), "{out}");
    assert_eq!(
        std::fs::read(&node.kubelet).unwrap(),
        std::fs::read(&works).unwrap()
    );
    assert!(std::fs::read(previous(&node.kubelet)).unwrap() == original);
    node.wait_running("kubelet not running after the upgrade")
        .await;
    poll(WAIT, || {
        node.event_reasons()
            .iter()
            .any(|r| r == "KubeletUpgraded")
            .then_some(())
    })
    .await
    .unwrap_or_else(|| node.fail("no KubeletUpgraded event"));
    // The version check follows the new binary.
    poll(WAIT, || {
        let rs = node.daemon.run_status()?;
        (rs["kubelet"]["version"]["kubelet"]["known"]["text"] == "v1.32.1").then_some(())
    })
    .await
    .unwrap_or_else(|| node.fail("the version check did not see the new kubelet"));

    // Without a running `run`: said so, exit code 27.
    let Node {
        m, mut daemon, sb, ..
    } = node;
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let (code, out) = upgrade(&m.root, &works).await;
    assert_eq!(code, ExitCode::DaemonNotRunning, "{out}");
    assert!(out.contains("no running kaas-join run"), "{out}");
    drop(sb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_an_upgrade_puts_the_old_kubelet_back_at_the_next_start() {
    let mut node = Node::start("upgrade-cut").await;
    let original = std::fs::read(&node.kubelet).unwrap();
    let new = node.script("kubelet-silent", "v1.32.1", "exec sleep 600");
    let mut cli = Command::new(BIN);
    cli.args(["upgrade-kubelet", "--wait", "120s", "--binary"])
        .arg(&new)
        .arg("--root")
        .arg(&node.m.root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut cli = cli.spawn().unwrap();
    poll(WAIT, || {
        let rs = node.daemon.run_status()?;
        (rs["kubelet"]["upgrade"]["phase"] == "started").then_some(())
    })
    .await
    .unwrap_or_else(|| node.fail("the upgrade did not start"));
    assert!(
        std::fs::read(&node.kubelet).unwrap() != original,
        "swapped in"
    );
    // SIGTERM: `run` stops kubelet and exits, the upgrade unconfirmed.
    let pid = nix::unistd::Pid::from_raw(node.daemon.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    poll(WAIT, || node.daemon.child.try_wait().unwrap())
        .await
        .unwrap_or_else(|| node.fail("run did not stop"));
    node.daemon = node.m.spawn(&node.args);
    poll(WAIT, || {
        let rs = node.daemon.run_status()?;
        (rs["kubelet"]["upgrade"]["phase"] == "rolled-back" && rs["kubelet"]["phase"] == "running")
            .then_some(())
    })
    .await
    .unwrap_or_else(|| node.fail("the old kubelet is not back"));
    assert!(
        std::fs::read(&node.kubelet).unwrap() == original,
        "old binary in place"
    );
    // The command, still waiting, hears the outcome.
    let code = tokio::task::spawn_blocking(move || cli.wait().unwrap().code())
        .await
        .unwrap();
    assert_eq!(code, Some(26));
}
