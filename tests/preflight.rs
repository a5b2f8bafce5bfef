//! `kaas-join preflight` and the preflight before `join` and `run`, through the real binary,
//! against the sandbox control plane on loopback. Each test has its own sandbox and its own fake
//! machine: a temporary root with a listening containerd socket, a kubelet script, and kubelet
//! ports (in a config file) nobody else uses.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::process::kill;
use common::{free_port, kaas_join as kj, sandbox, Invocation, Wait};
use kaas_join::model::exit_code::ExitCode;
use kaas_sandbox::{ControlPlaneStyle, Sandbox, SandboxConfig, TokenOptions};
use serde_json::Value;

const CONTAINERD: &str = "unix:///run/containerd/containerd.sock";

/// A machine that passes every local check: runtime socket listening, kubelet v1.31.0 under
/// the root, free kubelet ports in its config file (containerd without a config file uses
/// cgroupfs, and so is kubelet told to).
struct Machine {
    _dir: tempfile::TempDir,
    root: PathBuf,
    files: PathBuf,
    config: PathBuf,
    token_file: Option<PathBuf>,
    _runtime: UnixListener,
}

impl Machine {
    fn new() -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let files = dir.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        let socket = root.join("run/containerd/containerd.sock");
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let runtime = UnixListener::bind(&socket).unwrap();
        let m = Machine {
            config: files.join("config.yaml"),
            _dir: dir,
            root,
            files,
            token_file: None,
            _runtime: runtime,
        };
        m.kubelet("v1.31.0");
        m.write_config("");
        m
    }

    /// kubelet under the root, printing `version`.
    fn kubelet(&self, version: &str) {
        let path = self.root.join("usr/bin/kubelet");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\necho 'Kubernetes {version}'\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Our config file with free kubelet ports, plus `extra` lines.
    fn write_config(&self, extra: &str) {
        let text = format!(
            "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\n{extra}kubelet:\n  \
             port: {}\n  address: 127.0.0.1\n  healthzPort: {}\n",
            free_port(),
            free_port()
        );
        std::fs::write(&self.config, text).unwrap();
    }

    fn with_token(mut self, token: &str) -> Machine {
        let path = self.files.join("token");
        std::fs::write(&path, format!("{token}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        self.token_file = Some(path);
        self
    }

    fn p(path: &Path) -> String {
        path.display().to_string()
    }

    /// `preflight` with the machine's flags, against `sb` when given, plus `extra`.
    fn preflight(&self, sb: Option<&Sandbox>, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "preflight".to_string(),
            "--root".into(),
            Self::p(&self.root),
            "--config".into(),
            Self::p(&self.config),
            "--cri-socket".into(),
            CONTAINERD.into(),
            "--cgroup-driver".into(),
            "cgroupfs".into(),
        ];
        if let Some(sb) = sb {
            args.extend([
                "--server".into(),
                sb.url(),
                "--discovery-token-ca-cert-hash".into(),
                sb.ca_cert_hash(),
                "--token-file".into(),
                Self::p(self.token_file.as_ref().expect("a token")),
            ]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// `join` with the machine's flags against `sb`, plus `extra`.
    fn join(&self, sb: &Sandbox, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "join",
            "--server",
            &sb.url(),
            "--discovery-token-ca-cert-hash",
            &sb.ca_cert_hash(),
            "--token-file",
            &Self::p(self.token_file.as_ref().expect("a token")),
            "--root",
            &Self::p(&self.root),
            "--config",
            &Self::p(&self.config),
            "--node-name",
            "node-1",
            "--cri-socket",
            CONTAINERD,
            "--cgroup-driver",
            "cgroupfs",
            "--discovery-timeout",
            "10s",
            "--tls-bootstrap-timeout",
            "10s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn file(&self, node_path: &str) -> PathBuf {
        self.root.join(node_path.trim_start_matches('/'))
    }
}

/// The check named `name` in a JSON report.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

fn status<'a>(report: &'a Value, name: &str) -> &'a str {
    check(report, name)["status"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_token_passes_the_provider_checks() {
    let sb = sandbox(SandboxConfig::default()).await;
    let m = Machine::new().with_token(&sb.create_token());
    let run = kj(m.preflight(Some(&sb), &["--output", "json"])).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let r = run.json();
    for name in [
        "IsPrivilegedUser",
        "FileExisting-kubelet",
        "CRI",
        "CgroupDriver",
        "ClusterInfo",
        "CSRCreate",
        "CSRAutoApprove",
        "ClockSkew",
        "KubeletVersion",
    ] {
        assert_eq!(status(&r, name), "pass", "{name}: {r:#}");
    }
    assert!(
        check(&r, "KubeletVersion")["message"]
            .as_str()
            .unwrap()
            .contains("v1.31.0, control plane v1.32.0: within the supported skew"),
        "{r:#}"
    );
    assert!(check(&r, "CSRAutoApprove")["message"]
        .as_str()
        .unwrap()
        .contains("kubeadm:node-autoapprove-bootstrap"));
    // No /proc under the staging root: the kernel checks cannot tell.
    assert_eq!(status(&r, "Swap"), "skipped");
    assert_eq!(r["failed"], serde_json::json!([]));
    // It creates nothing: no CSR, and the token never appears.
    assert!(sb.csrs().is_empty());
    let token = std::fs::read_to_string(m.token_file.as_ref().unwrap()).unwrap();
    assert!(!run.stdout.contains(token.trim()) && !run.stderr.contains(&token.trim()[7..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_fails_cluster_info_with_the_fix() {
    let sb = sandbox(SandboxConfig::default()).await;
    let m = Machine::new().with_token("zzzzzz.0123456789abcdef");
    let run = kj(m.preflight(Some(&sb), &["--discovery-timeout", "1s"])).await;
    assert_eq!(run.code, ExitCode::Preflight, "{run:#?}");
    let out = &run.stdout;
    assert!(
        out.contains("[error  ] ClusterInfo")
            && out.contains("no signature for token id \"zzzzzz\""),
        "{out}"
    );
    assert!(
        out.contains("fix: create a token on the control plane"),
        "{out}"
    );
    assert!(out.contains("[skipped] CSRAutoApprove"), "{out}");
    assert!(out.contains("1 error (ClusterInfo)"), "{out}");
    assert!(!out.contains("0123456789abcdef") && !run.stderr.contains("0123456789abcdef"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_auto_approval_names_the_binding() {
    let sb = sandbox(SandboxConfig::default()).await;
    let token = sb.create_token_with(TokenOptions {
        can_nodeclient: false,
        ..TokenOptions::default()
    });
    let m = Machine::new().with_token(&token);
    let run = kj(m.preflight(Some(&sb), &["--output", "json"])).await;
    assert_eq!(run.code, ExitCode::Preflight, "{run:#?}");
    let r = run.json();
    assert_eq!(status(&r, "CSRCreate"), "pass", "{r:#}");
    let c = check(&r, "CSRAutoApprove");
    assert_eq!(c["status"], "error", "{r:#}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("ClusterRoleBinding kubeadm:node-autoapprove-bootstrap"),
        "{c:#}"
    );
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains("`kaas-join cluster prepare`"),
        "{c:#}"
    );
    assert_eq!(r["failed"], serde_json::json!(["CSRAutoApprove"]));

    // Ignored, it is still shown.
    let run = kj(m.preflight(
        Some(&sb),
        &[
            "--output",
            "json",
            "--ignore-preflight-errors",
            "csrautoapprove",
        ],
    ))
    .await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(status(&run.json(), "CSRAutoApprove"), "ignored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_control_plane_follows_its_rbac() {
    let sb = sandbox(SandboxConfig {
        style: ControlPlaneStyle::Bare,
        ..SandboxConfig::default()
    })
    .await;
    let m = Machine::new().with_token(&sb.create_token());
    let run = kj(m.preflight(Some(&sb), &["--discovery-timeout", "1s"])).await;
    assert_eq!(run.code, ExitCode::Preflight, "{run:#?}");
    assert!(
        run.stdout
            .contains("fix: publish cluster-info: run `kaas-join cluster prepare`"),
        "{}",
        run.stdout
    );

    let admin = m.files.join("admin.conf");
    std::fs::write(&admin, sb.admin_kubeconfig()).unwrap();
    let prepare = kj(vec![
        "cluster".into(),
        "prepare".into(),
        "--kubeconfig".into(),
        Machine::p(&admin),
    ])
    .await;
    assert_eq!(prepare.code, 0, "{prepare:#?}");
    let run = kj(m.preflight(Some(&sb), &["--output", "json"])).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let r = run.json();
    assert_eq!(status(&r, "CSRCreate"), "pass");
    assert_eq!(status(&r, "CSRAutoApprove"), "pass");

    // Without the auto-approve binding.
    let conf = kaas_join::model::kubeconfig::parse(&sb.admin_kubeconfig()).unwrap();
    let client = kaas_join::k8s::admin::from_kubeconfig(&conf, &admin)
        .unwrap()
        .client;
    client
        .delete("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm:node-autoapprove-bootstrap")
        .await
        .expect("the binding is deleted");
    let run = kj(m.preflight(Some(&sb), &["--output", "json"])).await;
    assert_eq!(run.code, ExitCode::Preflight, "{run:#?}");
    let r = run.json();
    assert_eq!(status(&r, "CSRCreate"), "pass", "{r:#}");
    assert_eq!(status(&r, "CSRAutoApprove"), "error", "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_and_kubelet_skew_against_the_server() {
    let sb = sandbox(SandboxConfig {
        clock_offset_seconds: 400,
        ..SandboxConfig::default()
    })
    .await;
    let m = Machine::new().with_token(&sb.create_token());
    m.kubelet("v1.36.1");
    let run = kj(m.preflight(Some(&sb), &["--output", "json"])).await;
    assert_eq!(run.code, ExitCode::Preflight, "{run:#?}");
    let r = run.json();
    let clock = check(&r, "ClockSkew");
    assert_eq!(clock["status"], "error", "{r:#}");
    assert!(
        clock["message"].as_str().unwrap().contains("behind"),
        "{clock:#}"
    );
    let kubelet = check(&r, "KubeletVersion");
    assert_eq!(kubelet["status"], "error", "{r:#}");
    assert!(
        kubelet["message"]
            .as_str()
            .unwrap()
            .contains("newer than the control plane v1.32.0"),
        "{kubelet:#}"
    );
    assert_eq!(
        r["failed"],
        serde_json::json!(["KubeletVersion", "ClockSkew"])
    );

    let sb = sandbox(SandboxConfig {
        clock_offset_seconds: -60,
        ..SandboxConfig::default()
    })
    .await;
    let m = Machine::new().with_token(&sb.create_token());
    let run = kj(m.preflight(Some(&sb), &["--output", "json"])).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(status(&run.json(), "ClockSkew"), "warning");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_refuses_a_foreign_kubelet_conf_and_writes_nothing() {
    let sb = sandbox(SandboxConfig::default()).await;
    let m = Machine::new().with_token(&sb.create_token());
    let foreign = "apiVersion: v1\nkind: Config\n# from kubeadm join\n";
    let conf = m.file("/etc/kubernetes/kubelet.conf");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(&conf, foreign).unwrap();

    let run = kj(m.join(&sb, &[])).await;
    assert_eq!(run.code, ExitCode::Preflight, "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert!(
        run.stderr
            .contains("preflight [ERROR FileAvailable--etc-kubernetes-kubelet.conf]"),
        "{}",
        run.stderr
    );
    let last = run.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("kaas-join: error: preflight found 1 error (FileAvailable--etc-kubernetes-kubelet.conf)")
            && last.contains("--ignore-preflight-errors=FileAvailable--etc-kubernetes-kubelet.conf"),
        "{last}"
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), foreign);
    assert!(!m.file("/var/lib/kaas-join").exists(), "state written");
    assert!(
        !m.file("/var/lib/kubelet").exists(),
        "kubelet files written"
    );
    assert!(
        sb.requests().is_empty(),
        "requests made: {:?}",
        sb.requests()
    );

    // Ignored (case-insensitive, from the config file as kubeadm's list would be): it joins.
    m.write_config("ignorePreflightErrors: [fileavailable--etc-kubernetes-kubelet.conf]\n");
    let run = kj(m.join(&sb, &[])).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr
            .contains("preflight [IGNORED FileAvailable--etc-kubernetes-kubelet.conf]"),
        "{}",
        run.stderr
    );
    assert_ne!(std::fs::read_to_string(&conf).unwrap(), foreign);

    // A re-run is a no-op, preflight and all: the files are ours now.
    m.write_config("");
    let run = kj(m.join(&sb, &[])).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains("Already joined"), "{run:#?}");
    assert!(!run.stderr.contains("preflight"), "{run:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_retries_a_join_that_fails_preflight() {
    let sb = sandbox(SandboxConfig::default()).await;
    let m = Machine::new().with_token(&sb.create_token());
    let conf = m.file("/etc/kubernetes/pki/ca.crt");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(&conf, "foreign CA").unwrap();
    let mut args = m.join(&sb, &["--no-kubelet"]);
    args[0] = "run".into();
    let mut child = Invocation::new(&args).spawn_quiet();
    let status_file = m.file("/run/kaas-join/status.json");
    let activity = Wait::new(
        "run's activity to name the preflight",
        Duration::from_secs(15),
    )
    .every(Duration::from_millis(50))
    .poll(|| {
        let text = std::fs::read_to_string(&status_file).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        let activity = v["activity"].as_str().unwrap_or_default().to_owned();
        if activity.contains("preflight") {
            Ok(activity)
        } else {
            Err(activity)
        }
    })
    .await
    .unwrap_or_else(|timed_out| timed_out.last);
    let still_running = child.try_wait().unwrap().is_none();
    kill(&mut child);
    assert!(still_running, "run exited instead of retrying");
    assert!(
        activity.contains("join failed (exit code 24): preflight found 1 error (FileAvailable--etc-kubernetes-pki-ca.crt)"),
        "{activity}"
    );
    assert!(sb.requests().is_empty(), "{:?}", sb.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input() {
    let m = Machine::new();
    // Unknown names: a warning naming the checks there are, not an error.
    let run = kj(m.preflight(None, &["--ignore-preflight-errors", "NoSuchCheck,Swap"])).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr
            .contains("names no check kaas-join has: nosuchcheck")
            && run.stderr.contains("IsPrivilegedUser"),
        "{}",
        run.stderr
    );
    assert!(run
        .stdout
        .contains("note: --ignore-preflight-errors names no check"));
    assert!(
        run.stdout.contains("[skipped] ClusterInfo"),
        "{}",
        run.stdout
    );

    // `all` with single names: kubeadm refuses it, so do we (one line, exit 2).
    let run = kj(m.preflight(None, &["--ignore-preflight-errors=all,CRI"])).await;
    assert_eq!(run.code, ExitCode::Usage, "{run:#?}");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("give either all or the checks"));

    // A ticket with the flags it stands for.
    let run = kj(m.preflight(None, &["kj1.AAAA.00000000", "--server", "10.0.0.5:6443"])).await;
    assert_eq!(run.code, ExitCode::Usage, "{run:#?}");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("kaas-join: error: "),
        "{}",
        run.stderr
    );
    // A server without a token.
    let run = kj(m.preflight(
        None,
        &[
            "--server",
            "10.0.0.5:6443",
            "--discovery-token-ca-cert-hash",
            &format!("sha256:{}", "0".repeat(64)),
        ],
    ))
    .await;
    assert_eq!(run.code, ExitCode::Usage, "{run:#?}");
    assert!(
        run.stderr.contains("no bootstrap token given"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}
