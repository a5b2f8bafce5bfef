//! End-to-end joins against the sandbox control plane on loopback, through the library: each test
//! starts its own sandbox on 127.0.0.1:0 and joins into its own temporary root.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::cluster::Cluster;
use kaas_join::cmd::error::Error;
use kaas_join::cmd::join::report::Outcome;
use kaas_join::model::exit_code::ExitCode;
use kaas_join::model::output::OutputFormat;
use kaas_sandbox::{ApprovalMode, ControlPlaneStyle, Sandbox, TokenOptions};

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
    common::files_under(root)
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

fn csr_count(sb: &Sandbox) -> usize {
    sb.csrs().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_a_kubeadm_style_control_plane_with_seven_requests() {
    let c = Cluster::start().await;
    let cfg = c.config.clone();

    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("joins");
    assert_eq!(report.outcome, Outcome::Joined);
    assert!(
        report.requests <= 7,
        "one join made {} requests",
        report.requests
    );
    assert_eq!(csr_count(&c.sb), 1);

    let r = c.root();
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
        kubelet_conf.contains(&format!("server: {}", c.sb.url())),
        "{kubelet_conf}"
    );
    assert!(kubelet_conf
        .contains("client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem"));
    assert!(!kubelet_conf.contains(r.to_str().unwrap()));
    assert_eq!(read(r, "/etc/kubernetes/pki/ca.crt"), c.sb.ca_pem());

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
    let csr = &c.sb.csrs()[0];
    assert_eq!(
        csr["spec"]["username"],
        format!("system:bootstrap:{}", &c.token[..6])
    );
    assert!(csr["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("node-csr-"));

    let text = report.render(OutputFormat::Text);
    assert!(text.contains("Joined: node node-1"), "{text}");
    assert!(
        !text.contains(&c.token[7..]),
        "the report shows the token secret"
    );
    assert!(
        all_files(r).iter().all(|f| !f.ends_with(".tmp")),
        "{:?}",
        all_files(r)
    );
    c.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_a_no_op_and_force_joins_again() {
    let c = Cluster::start().await;
    let mut cfg = c.config.clone();
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
    c.sb.add_node("node-1", true);
    cfg.force = true;
    let forced = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("forced re-join");
    assert_eq!(forced.outcome, Outcome::Joined);
    assert_eq!(csr_count(&c.sb), 2, "a forced join makes a new key and CSR");
    c.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_style_control_plane_gets_defaults_and_a_loud_warning() {
    let c = Cluster::builder()
        .style(ControlPlaneStyle::Chart)
        .start()
        .await;
    let report = kaas_join::cmd::join::join(&c.config, vec![])
        .await
        .expect("joins without kubeadm-config and kubelet-config");
    let warning = report.warnings.join("\n");
    for expected in ["10.96.0.10", "cluster.local", "cgroupDriver systemd", "403"] {
        assert!(
            warning.contains(expected),
            "{expected} missing from: {warning}"
        );
    }
    let kubelet_config = read(c.root(), "/var/lib/kubelet/config.yaml");
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
    c.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_node_with_the_same_name_is_refused_and_nothing_is_written() {
    let c = Cluster::start().await;
    c.sb.add_node("node-1", true);
    let err = kaas_join::cmd::join::join(&c.config, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateNode { .. }), "{err}");
    assert_eq!(err.exit_code(), ExitCode::DuplicateNode);
    assert!(err.to_string().contains("--node-name"));
    assert_eq!(csr_count(&c.sb), 0);
    assert!(all_files(c.root()).is_empty(), "{:?}", all_files(c.root()));

    // A Node that exists but is not Ready (a replaced VM) is taken over.
    let c2 = Cluster::start().await;
    c2.sb.add_node("node-1", false);
    kaas_join::cmd::join::join(&c2.config, vec![])
        .await
        .expect("a NotReady node of the same name is taken over");
    c.sb.shutdown().await;
    c2.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_failures_have_their_own_exit_codes() {
    let c = Cluster::start().await;

    // Right id, wrong secret: the signature does not match (permanent, fails fast).
    let wrong_secret = format!("{}.{}", &c.token[..6], "0000000000000000");
    let err = kaas_join::cmd::join::join(&c.config_with_token(&wrong_secret), vec![])
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::SignatureMismatch, "{err}");

    // Unknown token id: no signature, retried until the discovery timeout.
    let mut cfg = c.config_with_token("zzzzzz.0123456789abcdef");
    cfg.discovery_timeout = Duration::from_millis(700);
    let err = kaas_join::cmd::join::join(&cfg, vec![]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::NoSignature, "{err}");
    assert!(err.to_string().contains("zzzzzz"));

    // Wrong pin: the error shows the pin the server has.
    let mut cfg = c.config.clone();
    cfg.ca_pins = vec![format!("sha256:{}", "ab".repeat(32)).parse().unwrap()];
    let err = kaas_join::cmd::join::join(&cfg, vec![]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::PinMismatch, "{err}");
    assert!(err.to_string().contains(&c.sb.ca_cert_hash()), "{err}");

    // Nothing listens: unreachable after the timeout.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = c.config.clone();
    cfg.servers = vec![format!("https://127.0.0.1:{port}")];
    cfg.discovery_timeout = Duration::from_millis(500);
    let err = kaas_join::cmd::join::join(&cfg, vec![]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Unreachable, "{err}");
    assert!(err.to_string().contains(&port.to_string()));

    assert_eq!(csr_count(&c.sb), 0);
    assert!(all_files(c.root()).is_empty(), "{:?}", all_files(c.root()));
    c.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_tried_in_turn_and_cluster_infos_server_is_used_after_discovery() {
    let c = Cluster::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("https://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let mut cfg = c.config.clone();
    // Discover through "localhost"; cluster-info names https://127.0.0.1:<port>.
    cfg.servers = vec![dead, format!("https://localhost:{}", c.sb.addr().port())];
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("joins");
    assert_eq!(report.server.as_deref(), Some(c.sb.url().as_str()));
    let kubelet_conf = read(c.root(), "/etc/kubernetes/kubelet.conf");
    assert!(
        kubelet_conf.contains(&format!("server: {}", c.sb.url())),
        "{kubelet_conf}"
    );
    c.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freshly_minted_token_joins_as_soon_as_it_is_signed() {
    let c = Cluster::builder()
        .knobs(|knobs| knobs.jws_delay = Duration::from_millis(400))
        .start()
        .await;
    let started = std::time::Instant::now();
    let report = kaas_join::cmd::join::join(&c.config, vec![])
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
    c.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denial_and_missing_approval_are_explained() {
    let c = Cluster::builder()
        .approval(ApprovalMode::Deny)
        .start()
        .await;
    let err = kaas_join::cmd::join::join(&c.config, vec![])
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::CsrRefused, "{err}");
    assert!(err.to_string().contains("denied"), "{err}");
    assert!(!c.root().join("etc/kubernetes/kubelet.conf").exists());
    c.sb.shutdown().await;

    // The token's group is not bound to the nodeclient ClusterRole: the approver skips the CSR.
    let c = Cluster::builder()
        .token(TokenOptions {
            can_nodeclient: false,
            ..TokenOptions::default()
        })
        .start()
        .await;
    let mut cfg = c.config.clone();
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
    assert!(!c.root().join("etc/kubernetes/kubelet.conf").exists());
    c.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_an_interrupted_bootstrap_reuses_the_key_and_the_csr() {
    // Approval comes after the first run gave up: the second run must find the same CSR.
    let c = Cluster::builder()
        .approve_after(Duration::from_millis(1500))
        .start()
        .await;
    let mut cfg = c.config.clone();
    cfg.tls_bootstrap_timeout = Duration::from_millis(500);
    let err = kaas_join::cmd::join::join(&cfg, vec![]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::NotApproved, "{err}");
    let key_path = c.root().join("var/lib/kaas-join/node-key.pem");
    let key_before = std::fs::read(&key_path).expect("the key is kept for the re-run");
    assert_eq!(mode(&key_path), 0o600);
    assert!(!c.root().join("etc/kubernetes/kubelet.conf").exists());

    cfg.tls_bootstrap_timeout = Duration::from_secs(10);
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("re-run finishes");
    assert_eq!(report.outcome, Outcome::Joined);
    assert_eq!(csr_count(&c.sb), 1, "no second CSR");
    assert!(report
        .steps
        .iter()
        .any(|s| s.detail.contains("earlier run")));
    let pair = std::fs::read_to_string(
        c.root()
            .join("var/lib/kubelet/pki/kubelet-client-current.pem"),
    )
    .unwrap();
    assert!(
        pair.contains(std::str::from_utf8(&key_before).unwrap().trim()),
        "same key"
    );
    c.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_the_wire_are_survived() {
    let c = Cluster::builder()
        .approve_after(Duration::from_millis(300))
        .start()
        .await;
    let faults = c.sb.faults();
    faults.drop_connections("/api/v1/namespaces/kube-public/configmaps/cluster-info", 1);
    faults.fail_next(
        "/api/v1/namespaces/kube-system/configmaps/kubelet-config",
        503,
        1,
    );
    faults.watch_error_expired_next(1);
    faults.cut_watches_after(Duration::from_millis(100));
    let report = kaas_join::cmd::join::join(&c.config, vec![])
        .await
        .expect("joins despite the faults");
    assert_eq!(report.outcome, Outcome::Joined);
    assert_eq!(csr_count(&c.sb), 1);
    c.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing_creates_no_csr_and_shows_no_secret() {
    let c = Cluster::start().await;
    let mut cfg = c.config.clone();
    cfg.dry_run = true;
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("dry run");
    assert_eq!(report.outcome, Outcome::DryRun);
    assert!(all_files(c.root()).is_empty(), "{:?}", all_files(c.root()));
    assert_eq!(csr_count(&c.sb), 0);
    for format in [OutputFormat::Text, OutputFormat::Json] {
        let out = report.render(format);
        assert!(out.contains("/var/lib/kubelet/config.yaml"), "{out}");
        assert!(out.contains("cgroupDriver: systemd"), "{out}");
        assert!(
            !out.contains(&c.token[7..]),
            "the token secret leaked: {out}"
        );
        assert!(!out.contains("PRIVATE KEY"), "{out}");
    }
    c.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_skip_joins_without_a_pin() {
    let c = Cluster::start().await;
    let mut cfg = c.config.clone();
    cfg.ca_pins.clear();
    cfg.unsafe_skip_ca_verification = true;
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("joins");
    assert!(report.steps[0].detail.contains("NOT verified"));
    assert_eq!(report.ca_pin, None);
    c.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_name_other_than_hostname_gets_hostname_override() {
    let c = Cluster::start().await;
    let mut cfg = c.config.clone();
    cfg.hostname = "ip-10-0-0-7".into();
    cfg.node_ip = Some("10.0.0.7".parse().unwrap());
    kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("joins");
    let flags = read(c.root(), "/var/lib/kubelet/kubeadm-flags.env");
    assert!(flags.contains("--hostname-override=node-1"), "{flags}");
    assert!(flags.contains("--node-ip=10.0.0.7"), "{flags}");
    c.sb.shutdown().await;
}

/// When the runtime's driver cannot be told, an image root without systemd gets cgroupfs (kubelet
/// would exit at once with systemd where systemd does not run), one with systemd gets systemd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_cgroup_driver_defaults_to_one_that_can_work_on_the_root() {
    let c = Cluster::start().await;
    let mut cfg = c.config.clone();
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

    let systemd = c.root().join("usr/lib/systemd/systemd");
    std::fs::create_dir_all(systemd.parent().unwrap()).unwrap();
    std::fs::write(&systemd, "").unwrap();
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("dry run");
    let out = report.render(OutputFormat::Text);
    assert!(out.contains("cgroupDriver: systemd"), "{out}");
    assert!(out.contains("the root has systemd"), "{out}");
    c.sb.shutdown().await;
}
