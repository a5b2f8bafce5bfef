//! `kaas-join reset` end to end: the real binary against the in-process sandbox control plane on
//! loopback, each test with its own sandbox and temporary `--root`. A join (through the binary,
//! or the library where only its files matter), then reset: what it removes, what it keeps, the
//! Node, the refusals (never joined, joined by kubeadm, no terminal and no --force, an admin
//! kubeconfig that may not delete Nodes), and a running `kaas-join run` stopped through its
//! run-status file. Every process run is bounded in time and killed when its test ends.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::alive;
use common::{Invocation, Run, Wait};
use kaas_join::node::run_status::RUN_STATUS_FILE;
use kaas_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

const NODE: &str = "reset-node-1";
/// A join or a reset against the sandbox takes well under a second; reset of a running daemon
/// waits for it to stop kubelet (seconds). This is the bound for any one command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The files a join writes (node paths; the client pair is matched by prefix).
const JOIN_FILES: [&str; 6] = [
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/pki/ca.crt",
    "/var/lib/kubelet/config.yaml",
    "/var/lib/kubelet/kubeadm-flags.env",
    "/var/lib/kubelet/pki/kubelet-client-current.pem",
    "/var/lib/kaas-join/state.json",
];

/// Files that are not kaas-join's: reset must leave them as they are.
const FOREIGN: [(&str, &str); 6] = [
    (
        "/var/lib/kubelet/pki/kubelet.crt",
        "kubelet's serving certificate",
    ),
    ("/var/lib/kubelet/pki/kubelet.key", "kubelet's serving key"),
    ("/var/lib/kubelet/pods/uid-1/volumes/data", "a pod's data"),
    ("/etc/kaas-join/config.yaml", "the user's configuration"),
    ("/etc/kaas-join/token", "the user's token file"),
    ("/etc/kubernetes/manifests/static-pod.yaml", "a static pod"),
];

async fn sandbox() -> Sandbox {
    common::sandbox(SandboxConfig::default()).await
}

/// A node ([`common::machine::Machine`]) whose joins have 10 s timeouts, and what these tests
/// do with it.
struct Machine(common::machine::Machine);

impl std::ops::Deref for Machine {
    type Target = common::machine::Machine;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Machine {
    fn new(sb: &Sandbox) -> Machine {
        Machine(
            common::machine::Machine::builder(sb, NODE)
                .config_lines("discoveryTimeout: 10s\ntlsBootstrapTimeout: 10s\n")
                .build(),
        )
    }

    fn write(&self, node_path: &str, content: &str) {
        let p = self.host(node_path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn write_foreign(&self) {
        for (path, content) in FOREIGN {
            self.write(path, content);
        }
    }

    fn assert_foreign_kept(&self) {
        for (path, content) in FOREIGN {
            let got = std::fs::read_to_string(self.host(path))
                .unwrap_or_else(|e| panic!("{path} was not kept: {e}"));
            assert_eq!(got, content, "{path} changed");
        }
    }

    /// Joins through the binary; its report (text).
    async fn join(&self) -> String {
        let out = kj(self.args("join")).await;
        assert_eq!(out.code, 0, "join failed: {}{}", out.stdout, out.stderr);
        out.stdout
    }

    fn admin_conf(&self, sb: &Sandbox) -> PathBuf {
        let p = self.files.join("admin.conf");
        std::fs::write(&p, sb.admin_kubeconfig()).unwrap();
        p
    }

    /// `kaas-join reset --root <root>` with `extra`.
    async fn reset(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "reset".to_string(),
            "--root".into(),
            self.root.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        kj(args).await
    }

    /// Every file under the root (node paths), with its content (links: their target).
    fn snapshot(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let p = entry.path();
                let t = entry.file_type().unwrap();
                if t.is_dir() {
                    stack.push(p);
                    continue;
                }
                let content = if t.is_symlink() {
                    format!("-> {}", std::fs::read_link(&p).unwrap().display())
                } else if t.is_file() {
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()
                } else {
                    "(socket)".into()
                };
                let node_path = format!("/{}", p.strip_prefix(&self.root).unwrap().display());
                out.push((node_path, content));
            }
        }
        out.sort();
        out
    }

    /// The client pairs in kubelet's pki directory (`kubelet-client-<time>.pem`).
    fn client_pairs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.host("/var/lib/kubelet/pki"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with("kubelet-client-2"))
            .collect();
        v.sort();
        v
    }
}

/// Runs the binary to its end with the kit's runner, off the runtime's threads (the sandbox
/// keeps serving), stdin not a terminal, killed after [`COMMAND_TIMEOUT`].
async fn kj(args: Vec<String>) -> Run {
    Invocation::new(args)
        .timeout(COMMAND_TIMEOUT)
        .run_async()
        .await
}

/// Asserts a one-line error on stderr (the last line, after any log lines), nothing on stdout;
/// the error line.
fn one_line_error(out: &Run, code: i32) -> String {
    assert_eq!(
        out.code, code,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert_eq!(out.stdout, "", "stderr: {}", out.stderr);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("kaas-join: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    errors[0].to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_reset_with_admin_kubeconfig_then_join_again() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    m.write_foreign();
    m.join().await;
    for f in JOIN_FILES {
        assert!(
            m.host(f).symlink_metadata().is_ok(),
            "join did not write {f}"
        );
    }
    // kubelet registers the Node and rotates its client certificate once (its store's naming,
    // an absolute link).
    sb.add_node(NODE, true);
    let first_pair = m.client_pairs();
    assert_eq!(first_pair.len(), 1, "{first_pair:?}");
    m.write(
        "/var/lib/kubelet/pki/kubelet-client-2099-01-02-03-04-05.pem",
        "rotated by kubelet",
    );
    let current = m.host("/var/lib/kubelet/pki/kubelet-client-current.pem");
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink(
        "/var/lib/kubelet/pki/kubelet-client-2099-01-02-03-04-05.pem",
        &current,
    )
    .unwrap();
    let admin = m.admin_conf(&sb);

    let out = m
        .reset(&[
            "--force",
            "--kubeconfig",
            admin.to_str().unwrap(),
            "--output",
            "json",
        ])
        .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let removed = strings(&report["removed"]);
    for f in JOIN_FILES {
        assert!(
            removed.iter().any(|r| r == f),
            "{f} not reported: {removed:?}"
        );
        assert!(m.host(f).symlink_metadata().is_err(), "{f} still there");
    }
    for pair in [
        first_pair[0].as_str(),
        "kubelet-client-2099-01-02-03-04-05.pem",
    ] {
        let p = format!("/var/lib/kubelet/pki/{pair}");
        assert!(removed.contains(&p), "{p} not reported: {removed:?}");
    }
    assert_eq!(
        removed.last().map(String::as_str),
        Some("/var/lib/kaas-join/state.json"),
        "state.json goes last"
    );
    assert!(m.client_pairs().is_empty(), "{:?}", m.client_pairs());
    m.assert_foreign_kept();
    // What is left is exactly what is not ours (the runtime socket is the test's).
    let left: Vec<String> = m.snapshot().into_iter().map(|(p, _)| p).collect();
    let mut expected: Vec<String> = FOREIGN.iter().map(|(p, _)| p.to_string()).collect();
    expected.push("/run/containerd/containerd.sock".into());
    expected.sort();
    assert_eq!(left, expected);
    assert!(m.host("/var/lib/kubelet/pki").is_dir(), "directories stay");
    let kept: Vec<&str> = report["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["path"].as_str().unwrap())
        .collect();
    assert!(kept.contains(&"/etc/kaas-join/"), "{kept:?}");
    assert!(
        kept.contains(&"/var/lib/kubelet/pki/kubelet.crt"),
        "{kept:?}"
    );
    assert_eq!(report["node"]["outcome"], "deleted", "{report:#}");
    assert!(sb.node(NODE).is_none(), "the Node is still in the cluster");

    // Again: nothing to reset, one line, exit 20.
    let again = m.reset(&["--force"]).await;
    let line = one_line_error(&again, 20);
    assert_eq!(
        line,
        "kaas-join: error: nothing to reset: this node has not joined (no \
         /var/lib/kaas-join/state.json): it was reset already, or joined with another --root"
    );

    // And the machine joins again (a fresh join, not "already joined").
    let report = m.join().await;
    assert!(!report.contains("already joined"), "{report}");
    for f in JOIN_FILES {
        assert!(
            m.host(f).symlink_metadata().is_ok(),
            "rejoin did not write {f}"
        );
    }
    m.assert_foreign_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_joined_root_is_refused_and_left_alone() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    m.write_foreign();
    let before = m.snapshot();
    let out = m.reset(&["--force"]).await;
    let line = one_line_error(&out, 20);
    assert!(line.contains("nothing to reset"), "{line}");
    assert_eq!(m.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeadm_joined_root_is_refused_and_left_alone() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    m.write_foreign();
    // What `kubeadm join` leaves: kubelet's files, no state of ours.
    m.write(
        "/etc/kubernetes/kubelet.conf",
        "apiVersion: v1\nkind: Config\n",
    );
    m.write("/etc/kubernetes/pki/ca.crt", "kubeadm's CA");
    m.write(
        "/var/lib/kubelet/config.yaml",
        "kind: KubeletConfiguration\n",
    );
    m.write(
        "/var/lib/kubelet/kubeadm-flags.env",
        "KUBELET_KUBEADM_ARGS=\"\"\n",
    );
    m.write(
        "/var/lib/kubelet/pki/kubelet-client-2026-01-01-00-00-00.pem",
        "kubeadm's",
    );
    let before = m.snapshot();
    for extra in [&["--force"][..], &["--dry-run"][..], &[][..]] {
        let out = m.reset(extra).await;
        let line = one_line_error(&out, 20);
        assert_eq!(
            line,
            "kaas-join: error: this node was not joined by kaas-join (no \
             /var/lib/kaas-join/state.json); `kubeadm reset` undoes a kubeadm join",
            "{extra:?}"
        );
        assert_eq!(m.snapshot(), before, "{extra:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_and_unconfirmed_and_refused_resets_change_nothing() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    m.write_foreign();
    m.join().await;
    sb.add_node(NODE, true);
    let before = m.snapshot();
    let admin = m.admin_conf(&sb);

    // --dry-run: says what it would do, does nothing.
    let out = m
        .reset(&["--dry-run", "--kubeconfig", admin.to_str().unwrap()])
        .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("would remove /etc/kubernetes/kubelet.conf"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("would delete Node {NODE}")),
        "{}",
        out.stdout
    );
    assert_eq!(m.snapshot(), before);
    assert!(sb.node(NODE).is_some());

    // No terminal, no --force: refused, exit 2.
    let out = m.reset(&[]).await;
    let line = one_line_error(&out, 2);
    assert!(line.contains("add --force"), "{line}");
    assert_eq!(m.snapshot(), before);

    // An admin kubeconfig whose user may not delete Nodes: exit 22, no file removed, and the
    // message says so.
    let viewer = m.files.join("viewer.conf");
    std::fs::write(&viewer, sb.user_kubeconfig("viewer", &[])).unwrap();
    let out = m
        .reset(&["--force", "--kubeconfig", viewer.to_str().unwrap()])
        .await;
    let line = one_line_error(&out, 22);
    assert!(
        line.contains(&format!("cannot delete Node {NODE}"))
            && line.contains("no file was removed"),
        "{line}"
    );
    assert_eq!(m.snapshot(), before);
    assert!(sb.node(NODE).is_some());

    // A kubeconfig that does not exist: bad input before anything happens.
    let out = m
        .reset(&["--force", "--kubeconfig", "/nonexistent/admin.conf"])
        .await;
    one_line_error(&out, 2);
    assert_eq!(m.snapshot(), before);

    // Without --kubeconfig the Node stays and the report says how to delete it.
    let out = m.reset(&["--force"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains(&format!("`kubectl delete node {NODE}`")),
        "{}",
        out.stdout
    );
    assert!(sb.node(NODE).is_some());
    m.assert_foreign_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_stops_a_running_daemon_and_its_kubelet() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    let mut daemon = m.spawn(&m.run_args());
    let daemon_pid = i64::from(daemon.child.id());

    // Until kubelet runs (the join takes well under a second; kubelet's healthz up to ~10 s).
    let status_file = m.host(RUN_STATUS_FILE);
    let kubelet_pid = Wait::new("kubelet running", Duration::from_secs(30))
        .every(Duration::from_millis(50))
        .until(|| {
            let status: Option<Value> = std::fs::read(&status_file)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(s) = &status {
                if s["kubelet"]["phase"] == "running" {
                    return Ok(s["kubelet"]["pid"].as_i64().expect("kubelet's pid"));
                }
            }
            if let Some(exit) = daemon.child.try_wait().unwrap() {
                panic!("kaas-join run exited ({exit}); status: {status:?}");
            }
            Err(status)
        })
        .await;
    sb.add_node(NODE, true);
    assert!(alive(kubelet_pid));

    let out = m.reset(&["--force", "--output", "json"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        strings(&report["stopped"]),
        [format!("kaas-join run (pid {daemon_pid})")],
        "{report:#}"
    );
    // reset waited for it: it has exited (a zombie until reaped here) and kubelet with it.
    let exit = daemon
        .child
        .try_wait()
        .unwrap()
        .expect("kaas-join run has exited");
    assert!(exit.success(), "SIGTERM is a clean stop: {exit}");
    assert!(!alive(kubelet_pid), "kubelet {kubelet_pid} still runs");
    let removed = strings(&report["removed"]);
    assert!(
        removed.contains(&RUN_STATUS_FILE.to_string()),
        "{removed:?}"
    );
    assert!(
        !status_file.exists(),
        "the run-status file was written after reset"
    );
    for f in JOIN_FILES {
        assert!(m.host(f).symlink_metadata().is_err(), "{f} still there");
    }
}
