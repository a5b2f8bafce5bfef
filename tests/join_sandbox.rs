//! End-to-end joins against the sandbox control plane on loopback, through the library: each test
//! starts its own sandbox on 127.0.0.1:0 and joins into its own temporary root.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use kaas_join::cmd::error::Error;
use kaas_join::cmd::join::report::Outcome;
use kaas_join::config::JoinConfig;
use kaas_join::model::exit_code::ExitCode;
use kaas_join::model::output::OutputFormat;
use kaas_sandbox::{ApprovalMode, ControlPlaneStyle, Sandbox, SandboxConfig, TokenOptions};

async fn sandbox(style: ControlPlaneStyle, approval: ApprovalMode) -> Sandbox {
    Sandbox::start(SandboxConfig {
        style,
        approval,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts")
}

fn config(sb: &Sandbox, token: &str, root: &Path) -> JoinConfig {
    common::sandbox_join_config(sb, token, "node-1", root, Duration::from_secs(10))
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn read(root: &Path, node_path: &str) -> String {
    std::fs::read_to_string(root.join(node_path.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("{node_path}: {e}"))
}

/// Every file under `root` (relative paths), to prove nothing is left half-written.
fn all_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn csr_count(sb: &Sandbox) -> usize {
    sb.csrs().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_a_kubeadm_style_control_plane_with_seven_requests() {
    let sb = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        },
    )
    .await;
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let cfg = config(&sb, &token, root.path());

    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("joins");
    assert_eq!(report.outcome, Outcome::Joined);
    assert!(
        report.requests <= 7,
        "one join made {} requests",
        report.requests
    );
    assert_eq!(csr_count(&sb), 1);

    let r = root.path();
    assert_eq!(mode(&r.join("etc/kubernetes/kubelet.conf")), 0o600);
    assert_eq!(mode(&r.join("etc/kubernetes/pki/ca.crt")), 0o644);
    assert_eq!(mode(&r.join("var/lib/kubelet")), 0o700);
    assert_eq!(mode(&r.join("var/lib/kubelet/config.yaml")), 0o644);
    assert_eq!(mode(&r.join("var/lib/kubelet/kubeadm-flags.env")), 0o644);
    assert_eq!(mode(&r.join("var/lib/kaas-join/state.json")), 0o600);
    assert!(
        !r.join("var/lib/kaas-join/node-key.pem").exists(),
        "the pending key is gone"
    );

    // The symlink is relative and points at a 0600 cert+key file.
    let link = r.join("var/lib/kubelet/pki/kubelet-client-current.pem");
    let target = std::fs::read_link(&link).unwrap();
    assert!(target.is_relative(), "{target:?}");
    assert!(target.to_str().unwrap().starts_with("kubelet-client-"));
    assert_eq!(mode(&r.join("var/lib/kubelet/pki").join(&target)), 0o600);
    let pair = std::fs::read_to_string(&link).unwrap();
    assert!(pair.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(pair.contains("PRIVATE KEY-----"));

    // kubelet.conf: cluster-info's server, the CA inline, the node paths (not the temp root).
    let kubelet_conf = read(r, "/etc/kubernetes/kubelet.conf");
    assert!(
        kubelet_conf.contains(&format!("server: {}", sb.url())),
        "{kubelet_conf}"
    );
    assert!(kubelet_conf
        .contains("client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem"));
    assert!(!kubelet_conf.contains(r.to_str().unwrap()));
    assert_eq!(read(r, "/etc/kubernetes/pki/ca.crt"), sb.ca_pem());

    let kubelet_config = read(r, "/var/lib/kubelet/config.yaml");
    for expected in [
        "cgroupDriver: systemd",
        "- 10.96.0.10",
        "clientCAFile: /etc/kubernetes/pki/ca.crt",
        "rotateCertificates: true",
    ] {
        assert!(
            kubelet_config.contains(expected),
            "{expected} missing:\n{kubelet_config}"
        );
    }
    let flags = read(r, "/var/lib/kubelet/kubeadm-flags.env");
    assert!(flags.contains("--container-runtime-endpoint=unix:///run/containerd/containerd.sock"));
    assert!(
        !flags.contains("--hostname-override"),
        "node name equals hostname: {flags}"
    );

    // The certificate is for this node, and what the sandbox signed.
    let csr = &sb.csrs()[0];
    assert_eq!(
        csr["spec"]["username"],
        format!("system:bootstrap:{}", &token[..6])
    );
    assert!(csr["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("node-csr-"));

    let text = report.render(OutputFormat::Text);
    assert!(text.contains("Joined: node node-1"), "{text}");
    assert!(
        !text.contains(&token[7..]),
        "the report shows the token secret"
    );
    assert!(
        all_files(r).iter().all(|f| !f.ends_with(".tmp")),
        "{:?}",
        all_files(r)
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_a_no_op_and_force_joins_again() {
    let sb = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        },
    )
    .await;
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config(&sb, &token, root.path());
    kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("joins");

    let again = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("re-run");
    assert_eq!(again.outcome, Outcome::AlreadyJoined);
    assert_eq!(again.requests, 0);
    assert!(again.render(OutputFormat::Text).contains("Already joined"));

    // Our own node is Ready now; --force must not trip the duplicate-name check on it.
    sb.add_node("node-1", true);
    cfg.force = true;
    let forced = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("forced re-join");
    assert_eq!(forced.outcome, Outcome::Joined);
    assert_eq!(csr_count(&sb), 2, "a forced join makes a new key and CSR");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_style_control_plane_gets_defaults_and_a_loud_warning() {
    let sb = sandbox(
        ControlPlaneStyle::Chart,
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        },
    )
    .await;
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let report = kaas_join::cmd::join::join(&config(&sb, &token, root.path()), vec![])
        .await
        .expect("joins without kubeadm-config and kubelet-config");
    let warning = report.warnings.join("\n");
    for expected in ["10.96.0.10", "cluster.local", "cgroupDriver systemd", "403"] {
        assert!(
            warning.contains(expected),
            "{expected} missing from: {warning}"
        );
    }
    let kubelet_config = read(root.path(), "/var/lib/kubelet/config.yaml");
    // Absent means 0 (disabled) in a v1beta1 file, as kubeadm writes it; never a real port.
    assert!(
        !kubelet_config.contains("readOnlyPort") || kubelet_config.contains("readOnlyPort: 0\n"),
        "{kubelet_config}"
    );
    assert!(kubelet_config.contains("mode: Webhook"), "{kubelet_config}");
    assert!(
        kubelet_config.contains("anonymous:\n    enabled: false"),
        "{kubelet_config}"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_node_with_the_same_name_is_refused_and_nothing_is_written() {
    let sb = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        },
    )
    .await;
    sb.add_node("node-1", true);
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let err = kaas_join::cmd::join::join(&config(&sb, &token, root.path()), vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateNode { .. }), "{err}");
    assert_eq!(err.exit_code(), ExitCode::DuplicateNode);
    assert!(err.to_string().contains("--node-name"));
    assert_eq!(csr_count(&sb), 0);
    assert!(
        all_files(root.path()).is_empty(),
        "{:?}",
        all_files(root.path())
    );

    // A Node that exists but is not Ready (a replaced VM) is taken over.
    let sb2 = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        },
    )
    .await;
    sb2.add_node("node-1", false);
    let token = sb2.create_token();
    let root = tempfile::tempdir().unwrap();
    kaas_join::cmd::join::join(&config(&sb2, &token, root.path()), vec![])
        .await
        .expect("a NotReady node of the same name is taken over");
    sb.shutdown().await;
    sb2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_failures_have_their_own_exit_codes() {
    let sb = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        },
    )
    .await;
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();

    // Right id, wrong secret: the signature does not match (permanent, fails fast).
    let wrong_secret = format!("{}.{}", &token[..6], "0000000000000000");
    let err = kaas_join::cmd::join::join(&config(&sb, &wrong_secret, root.path()), vec![])
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::SignatureMismatch, "{err}");

    // Unknown token id: no signature, retried until the discovery timeout.
    let mut cfg = config(&sb, "zzzzzz.0123456789abcdef", root.path());
    cfg.discovery_timeout = Duration::from_millis(700);
    let err = kaas_join::cmd::join::join(&cfg, vec![]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::NoSignature, "{err}");
    assert!(err.to_string().contains("zzzzzz"));

    // Wrong pin: the error shows the pin the server has.
    let mut cfg = config(&sb, &token, root.path());
    cfg.ca_pins = vec![format!("sha256:{}", "ab".repeat(32)).parse().unwrap()];
    let err = kaas_join::cmd::join::join(&cfg, vec![]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::PinMismatch, "{err}");
    assert!(err.to_string().contains(&sb.ca_cert_hash()), "{err}");

    // Nothing listens: unreachable after the timeout.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = config(&sb, &token, root.path());
    cfg.servers = vec![format!("https://127.0.0.1:{port}")];
    cfg.discovery_timeout = Duration::from_millis(500);
    let err = kaas_join::cmd::join::join(&cfg, vec![]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Unreachable, "{err}");
    assert!(err.to_string().contains(&port.to_string()));

    assert_eq!(csr_count(&sb), 0);
    assert!(
        all_files(root.path()).is_empty(),
        "{:?}",
        all_files(root.path())
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_tried_in_turn_and_cluster_infos_server_is_used_after_discovery() {
    let sb = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        },
    )
    .await;
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("https://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let mut cfg = config(&sb, &token, root.path());
    // Discover through "localhost"; cluster-info names https://127.0.0.1:<port>.
    cfg.servers = vec![dead, format!("https://localhost:{}", sb.addr().port())];
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("joins");
    assert_eq!(report.server.as_deref(), Some(sb.url().as_str()));
    let kubelet_conf = read(root.path(), "/etc/kubernetes/kubelet.conf");
    assert!(
        kubelet_conf.contains(&format!("server: {}", sb.url())),
        "{kubelet_conf}"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freshly_minted_token_joins_as_soon_as_it_is_signed() {
    let sb = Sandbox::start(SandboxConfig {
        jws_delay: Duration::from_millis(400),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let report = kaas_join::cmd::join::join(&config(&sb, &token, root.path()), vec![])
        .await
        .expect("joins once signed");
    // Not a timing assertion on speed: only that we did not wait out kubeadm's 5 s poll.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        report.steps[0].detail.contains("retries"),
        "{}",
        report.steps[0].detail
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denial_and_missing_approval_are_explained() {
    let sb = sandbox(ControlPlaneStyle::Kubeadm, ApprovalMode::Deny).await;
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let err = kaas_join::cmd::join::join(&config(&sb, &token, root.path()), vec![])
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::CsrRefused, "{err}");
    assert!(err.to_string().contains("denied"), "{err}");
    assert!(!root.path().join("etc/kubernetes/kubelet.conf").exists());
    sb.shutdown().await;

    // The token's group is not bound to the nodeclient ClusterRole: the approver skips the CSR.
    let sb = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        },
    )
    .await;
    let token = sb.create_token_with(TokenOptions {
        can_nodeclient: false,
        ..TokenOptions::default()
    });
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config(&sb, &token, root.path());
    cfg.tls_bootstrap_timeout = Duration::from_millis(800);
    let err = kaas_join::cmd::join::join(&cfg, vec![]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::NotApproved, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("may NOT create certificatesigningrequests/nodeclient"),
        "{text}"
    );
    assert!(
        text.contains(kaas_join::k8s::bootstrap::NODECLIENT_ROLE),
        "{text}"
    );
    assert!(!root.path().join("etc/kubernetes/kubelet.conf").exists());
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_an_interrupted_bootstrap_reuses_the_key_and_the_csr() {
    // Approval comes after the first run gave up: the second run must find the same CSR.
    let sb = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::from_millis(1500),
        },
    )
    .await;
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config(&sb, &token, root.path());
    cfg.tls_bootstrap_timeout = Duration::from_millis(500);
    let err = kaas_join::cmd::join::join(&cfg, vec![]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::NotApproved, "{err}");
    let key_path = root.path().join("var/lib/kaas-join/node-key.pem");
    let key_before = std::fs::read(&key_path).expect("the key is kept for the re-run");
    assert_eq!(mode(&key_path), 0o600);
    assert!(!root.path().join("etc/kubernetes/kubelet.conf").exists());

    cfg.tls_bootstrap_timeout = Duration::from_secs(10);
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("re-run finishes");
    assert_eq!(report.outcome, Outcome::Joined);
    assert_eq!(csr_count(&sb), 1, "no second CSR");
    assert!(report
        .steps
        .iter()
        .any(|s| s.detail.contains("earlier run")));
    let pair = std::fs::read_to_string(
        root.path()
            .join("var/lib/kubelet/pki/kubelet-client-current.pem"),
    )
    .unwrap();
    assert!(
        pair.contains(std::str::from_utf8(&key_before).unwrap().trim()),
        "same key"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_the_wire_are_survived() {
    let sb = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::from_millis(300),
        },
    )
    .await;
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let faults = sb.faults();
    faults.drop_connections("/api/v1/namespaces/kube-public/configmaps/cluster-info", 1);
    faults.fail_next(
        "/api/v1/namespaces/kube-system/configmaps/kubelet-config",
        503,
        1,
    );
    faults.watch_error_expired_next(1);
    faults.cut_watches_after(Duration::from_millis(100));
    let report = kaas_join::cmd::join::join(&config(&sb, &token, root.path()), vec![])
        .await
        .expect("joins despite the faults");
    assert_eq!(report.outcome, Outcome::Joined);
    assert_eq!(csr_count(&sb), 1);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing_creates_no_csr_and_shows_no_secret() {
    let sb = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        },
    )
    .await;
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config(&sb, &token, root.path());
    cfg.dry_run = true;
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("dry run");
    assert_eq!(report.outcome, Outcome::DryRun);
    assert!(
        all_files(root.path()).is_empty(),
        "{:?}",
        all_files(root.path())
    );
    assert_eq!(csr_count(&sb), 0);
    for format in [OutputFormat::Text, OutputFormat::Json] {
        let out = report.render(format);
        assert!(out.contains("/var/lib/kubelet/config.yaml"), "{out}");
        assert!(out.contains("cgroupDriver: systemd"), "{out}");
        assert!(!out.contains(&token[7..]), "the token secret leaked: {out}");
        assert!(!out.contains("PRIVATE KEY"), "{out}");
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_skip_joins_without_a_pin() {
    let sb = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        },
    )
    .await;
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config(&sb, &token, root.path());
    cfg.ca_pins.clear();
    cfg.unsafe_skip_ca_verification = true;
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("joins");
    assert!(report.steps[0].detail.contains("NOT verified"));
    assert_eq!(report.ca_pin, None);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_name_other_than_hostname_gets_hostname_override() {
    let sb = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        },
    )
    .await;
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config(&sb, &token, root.path());
    cfg.hostname = "ip-10-0-0-7".into();
    cfg.node_ip = Some("10.0.0.7".parse().unwrap());
    kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("joins");
    let flags = read(root.path(), "/var/lib/kubelet/kubeadm-flags.env");
    assert!(flags.contains("--hostname-override=node-1"), "{flags}");
    assert!(flags.contains("--node-ip=10.0.0.7"), "{flags}");
    sb.shutdown().await;
}

/// When the runtime's driver cannot be told, an image root without systemd gets cgroupfs (kubelet
/// would exit at once with systemd where systemd does not run), one with systemd gets systemd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_cgroup_driver_defaults_to_one_that_can_work_on_the_root() {
    let sb = sandbox(
        ControlPlaneStyle::Kubeadm,
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        },
    )
    .await;
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config(&sb, &token, root.path());
    cfg.dry_run = true;
    cfg.cgroup_driver = None;
    // Not a well-known socket: its configuration cannot be read.
    cfg.cri_socket = "unix:///run/other/runtime.sock".into();
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("dry run");
    let out = report.render(OutputFormat::Text);
    assert!(out.contains("cgroupDriver: cgroupfs"), "{out}");
    assert!(out.contains("the root has no systemd"), "{out}");

    let systemd = root.path().join("usr/lib/systemd/systemd");
    std::fs::create_dir_all(systemd.parent().unwrap()).unwrap();
    std::fs::write(&systemd, "").unwrap();
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("dry run");
    let out = report.render(OutputFormat::Text);
    assert!(out.contains("cgroupDriver: systemd"), "{out}");
    assert!(out.contains("the root has systemd"), "{out}");
    sb.shutdown().await;
}
