//! kaas-join against a REAL control plane: etcd, kube-apiserver and kube-controller-manager
//! (v1.33) started on loopback by the kit in `tests/common/real/`, set up as `kubeadm init`
//! does, as the seed's Helm chart does, or not at all. The real `kaas-join` binary joins,
//! re-runs and fails with each documented exit code; the API server then says who the written
//! kubelet.conf is.
//!
//! ```text
//! export KUBEBUILDER_ASSETS=$(scripts/test-binaries.sh)   # or setup-envtest, see README
//! cargo test --locked --test real_control_plane -- --ignored
//! ```
//!
//! The control-plane tests are `#[ignore]`d because they need those binaries: a user's
//! `cargo test` skips them; without the variable, `--ignored` prints why and passes; with it
//! set and a binary missing they fail naming it (CI sets it). Each test starts its own control
//! plane (about 6 s) and runs several joins against it. The kit's pure parts (certificates,
//! objects, audit parsing, the forwarder) are checked by the tests at the end, which always run.
//! Every wait is bounded; no test asserts a timing.

mod common;
#[path = "common/real/mod.rs"]
mod real;

use common::Wait;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::Run;
use kaas_join::cmd::join::report::Outcome;
use kaas_join::model::exit_code::ExitCode;
use kaas_join::model::pin::CaPin;
use kaas_join::model::token::BootstrapToken;
use real::api::Api;
use real::node::Node;
use real::objects::{self, NODECLIENT_ROLE, NODES_GROUP, NO_AUTOAPPROVE_GROUP, RBAC, TOKEN_GROUP};
use real::{audit, pki, RealControlPlane, Setup};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};

/// Phase timeouts of a join expected to succeed (a cold controller-manager may take a while
/// for its first approval).
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Phase timeouts of a join expected to time out (exit 6, 11): short, so the test is.
const SHORT_TIMEOUT: Duration = Duration::from_secs(5);
/// A join of the kit's happy path, on a quiet control plane: 2 cluster-info reads, 2 cluster
/// ConfigMaps, the Node check, the CSR create and its watch (as against the sandbox). A watch
/// the server ends early costs a re-list and a new watch.
const MAX_JOIN_REQUESTS: usize = 9;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs the real binary; prints what it said (the test output shows it on failure).
async fn kaas_join(what: &str, args: Vec<String>) -> Run {
    let run = common::kaas_join(&args).await;
    println!(
        "--- {what}: exit {}\n--- stdout:\n{}--- stderr:\n{}",
        run.code, run.stdout, run.stderr
    );
    run
}

fn assert_exit(run: &Run, code: ExitCode, what: &str) {
    assert!(
        run.code == code,
        "{what}: expected exit {code}, got {}\nstdout:\n{}\nstderr:\n{}",
        run.code,
        run.stdout,
        run.stderr
    );
}

/// A client built only from what the join wrote: kubelet.conf's server and CA, and the client
/// certificate and key it points at (node paths, read under the node's root).
fn kubelet_client(node: &Node) -> Api {
    let text = std::fs::read_to_string(node.file("/etc/kubernetes/kubelet.conf"))
        .expect("kubelet.conf written");
    let conf: Value = serde_norway::from_str(&text).expect("kubelet.conf is YAML");
    let cluster = &conf["clusters"][0]["cluster"];
    let server = cluster["server"]
        .as_str()
        .expect("a server in kubelet.conf");
    let ca_pem = match cluster["certificate-authority-data"].as_str() {
        Some(data) => objects::b64_decode(data),
        None => std::fs::read(node.file(cluster["certificate-authority"].as_str().unwrap()))
            .expect("the CA file kubelet.conf names"),
    };
    let user = &conf["users"][0]["user"];
    let cert_path = user["client-certificate"]
        .as_str()
        .expect("kubelet.conf names a client certificate file");
    assert_eq!(
        user["client-key"].as_str(),
        Some(cert_path),
        "certificate and key in one rotating file, as kubelet writes it"
    );
    let pair = std::fs::read(node.file(cert_path)).expect("the client certificate file");
    let ca = CertificateDer::from_pem_slice(&ca_pem).expect("a CA certificate in kubelet.conf");
    Api::new(server, pki::tls_from_pair_pem(&ca, &pair))
}

/// The join wrote kubelet.conf for `server`, and the API server takes its credentials for
/// `system:node:<name>` in `system:nodes`.
async fn assert_node_identity(node: &Node, server: &str) {
    let kubelet = kubelet_client(node);
    assert_eq!(kubelet.base(), server, "kubelet.conf's server");
    let (user, groups) = RealControlPlane::whoami(&kubelet).await;
    assert_eq!(user, format!("system:node:{}", node.name));
    assert!(groups.iter().any(|g| g == NODES_GROUP), "{groups:?}");
    // And the Node authorizer treats it as that node: it may read its own (missing) Node.
    let a = kubelet.get(&format!("/api/v1/nodes/{}", node.name)).await;
    assert_eq!(a.status, 404, "GET own Node as the node: {}", a.body);
}

/// The requests made as the joining node since `offset` (anonymous, its token, its identity).
async fn join_requests(cp: &RealControlPlane, offset: u64, node: &str) -> Vec<String> {
    let events = cp.audit_since(offset).await;
    audit::requests(&events)
        .into_iter()
        .filter(|e| audit::by_joining_node(e, node))
        .map(audit::Event::line)
        .collect()
}

/// Starts `kaas-join` in the background.
fn spawn_join(what: &'static str, args: Vec<String>) -> tokio::task::JoinHandle<Run> {
    tokio::spawn(kaas_join(what, args))
}

/// Waits until the admin sees a CSR for `node`; returns it.
async fn wait_for_csr(cp: &RealControlPlane, node: &str) -> Value {
    Wait::new(format!("a CSR for {node}"), real::SETTLE_WAIT)
        .every(real::processes::POLL)
        .until_await(|| async { cp.csrs_for(node).await.into_iter().next() })
        .await
}

// ---------------------------------------------------------------------------------------------
// As `kubeadm init` does
// ---------------------------------------------------------------------------------------------

/// The happy path with the binary and with the library, the re-run, and the discovery
/// failures (wrong pin 8, wrong secret 7, unknown token 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real control-plane binaries: export KUBEBUILDER_ASSETS=$(scripts/test-binaries.sh DIR) (or setup-envtest, see README), then cargo test --test real_control_plane -- --ignored"]
async fn kubeadm_style_joins_reruns_and_refuses_bad_discovery() {
    let Some(cp) = RealControlPlane::start(Setup::Kubeadm).await else {
        return;
    };
    let token = cp.token().await;

    // Happy path, the binary.
    let node = Node::new("kubeadm-node-1", &token.full());
    let offset = cp.audit.offset();
    let run = kaas_join("join", node.join_args(&cp, JOIN_TIMEOUT, &[])).await;
    assert_exit(&run, ExitCode::Ok, "join");
    assert!(run.stdout.contains("Joined"), "{}", run.stdout);
    assert_node_identity(&node, &cp.server).await;
    let requests = join_requests(&cp, offset, &node.name).await;
    println!("the join's requests:\n  {}", requests.join("\n  "));
    assert!(
        (7..=MAX_JOIN_REQUESTS).contains(&requests.len()),
        "{requests:#?}"
    );
    assert_eq!(cp.csrs_for(&node.name).await.len(), 1);

    // Re-run: already joined, nothing asked, no new CSR.
    let offset = cp.audit.offset();
    let run = kaas_join("re-run", node.join_args(&cp, JOIN_TIMEOUT, &[])).await;
    assert_exit(&run, ExitCode::Ok, "re-run");
    assert!(
        run.stdout.to_lowercase().contains("already joined"),
        "{}",
        run.stdout
    );
    assert_eq!(
        join_requests(&cp, offset, &node.name).await,
        Vec::<String>::new()
    );
    assert_eq!(
        cp.csrs_for(&node.name).await.len(),
        1,
        "a re-run made a CSR"
    );

    // The library, as envtest's first harness did: its own count of requests agrees.
    let root = tempfile::tempdir().unwrap();
    let cfg = cp.join_config(&token.full(), "kubeadm-node-lib", root.path(), JOIN_TIMEOUT);
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .expect("library join");
    assert_eq!(report.outcome, Outcome::Joined);
    assert!(
        report.requests <= MAX_JOIN_REQUESTS as u64,
        "{}",
        report.requests
    );

    // Wrong pin: exit 8, the error names the pin the server has.
    let wrong_pin = format!("sha256:{}", "ab".repeat(32));
    let node = Node::new("kubeadm-node-wrong-pin", &token.full());
    let run = kaas_join(
        "wrong pin",
        node.join_args_with_pin(&cp, &wrong_pin, JOIN_TIMEOUT, &[]),
    )
    .await;
    assert_exit(&run, ExitCode::PinMismatch, "wrong pin");
    assert!(run.stderr.contains(&cp.pin().to_string()), "{}", run.stderr);
    assert!(!node.file("/etc/kubernetes/kubelet.conf").exists());

    // Wrong secret for a signed id: exit 7.
    let node = Node::new("kubeadm-node-wrong-secret", &token.with_wrong_secret());
    let run = kaas_join("wrong secret", node.join_args(&cp, JOIN_TIMEOUT, &[])).await;
    assert_exit(&run, ExitCode::SignatureMismatch, "wrong secret");

    // A token id nobody created: no signature until the discovery timeout, exit 6.
    let (id, secret) = objects::random_token();
    let node = Node::new("kubeadm-node-unknown-token", &format!("{id}.{secret}"));
    let run = kaas_join("unknown token", node.join_args(&cp, SHORT_TIMEOUT, &[])).await;
    assert_exit(&run, ExitCode::NoSignature, "unknown token");
    assert!(run.stderr.contains(&id), "{}", run.stderr);
    assert!(
        !run.stderr.contains(&secret) && !run.stdout.contains(&secret),
        "the token's secret was printed"
    );
}

/// The TLS bootstrap's failures: a token whose group has no nodeclient auto-approval (11,
/// with the diagnosis), and a CSR an admin denies (10, with the reason).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real control-plane binaries: export KUBEBUILDER_ASSETS=$(scripts/test-binaries.sh DIR) (or setup-envtest, see README), then cargo test --test real_control_plane -- --ignored"]
async fn kubeadm_style_bootstrap_failures_say_why() {
    let Some(cp) = RealControlPlane::start(Setup::Kubeadm).await else {
        return;
    };
    cp.apply(&objects::no_autoapprove_binding()).await;
    let token = cp.create_token_in(&[NO_AUTOAPPROVE_GROUP]).await;
    cp.wait_signed(&token.id).await;

    // Not approved in time: exit 11, and the API server's own answer (a SelfSubjectAccessReview)
    // names the binding that is missing.
    let node = Node::new("kubeadm-node-not-approved", &token.full());
    let run = kaas_join("no auto-approval", node.join_args(&cp, SHORT_TIMEOUT, &[])).await;
    assert_exit(&run, ExitCode::NotApproved, "no auto-approval");
    assert!(
        run.stderr
            .contains("may NOT create certificatesigningrequests/nodeclient"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(NODECLIENT_ROLE), "{}", run.stderr);
    let csrs = cp.csrs_for(&node.name).await;
    assert_eq!(csrs.len(), 1, "one pending CSR is left: {csrs:#?}");
    assert!(csrs[0]["status"]["conditions"].is_null(), "{:#?}", csrs[0]);

    // Denied by an admin while the join waits: exit 10 with the reason and message.
    let node = Node::new("kubeadm-node-denied", &token.full());
    let joining = spawn_join("denied", node.join_args(&cp, JOIN_TIMEOUT, &[]));
    let mut csr = wait_for_csr(&cp, &node.name).await;
    let name = csr["metadata"]["name"].as_str().unwrap().to_string();
    csr["status"]["conditions"] = json!([{
        "type": "Denied", "status": "True",
        "reason": "KaasTestDenied", "message": "the test's admin said no",
    }]);
    let a = cp
        .admin
        .put(
            &format!("/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval"),
            &csr,
        )
        .await;
    assert_eq!(a.status, 200, "denying {name}: {}", a.body);
    let run = joining.await.unwrap();
    assert_exit(&run, ExitCode::CsrRefused, "denied");
    assert!(run.stderr.contains("KaasTestDenied"), "{}", run.stderr);
    assert!(
        run.stderr.contains("the test's admin said no"),
        "{}",
        run.stderr
    );
    assert!(!node.file("/etc/kubernetes/kubelet.conf").exists());
}

// ---------------------------------------------------------------------------------------------
// As the seed's Helm chart does
// ---------------------------------------------------------------------------------------------

/// Discovery on the API server's address, then everything through the Service address that
/// cluster-info names; defaults for the cluster settings nobody publishes; the re-run; and a
/// token deleted between discovery and the CSR (13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real control-plane binaries: export KUBEBUILDER_ASSETS=$(scripts/test-binaries.sh DIR) (or setup-envtest, see README), then cargo test --test real_control_plane -- --ignored"]
async fn chart_style_joins_through_the_service_address() {
    let Some(cp) = RealControlPlane::start(Setup::Chart).await else {
        return;
    };
    let service = cp
        .service
        .as_ref()
        .expect("the chart set-up has a Service address");
    let advertised = cp.advertised_server();
    assert_ne!(advertised, cp.server);
    let token = cp.token().await;

    let node = Node::new("chart-node-1", &token.full());
    let before = service.accepted();
    let offset = cp.audit.offset();
    let run = kaas_join("join", node.join_args(&cp, JOIN_TIMEOUT, &[])).await;
    assert_exit(&run, ExitCode::Ok, "join");
    // The cluster settings are not published here: defaults, said loudly.
    assert!(
        run.stderr.contains("kubeadm-config") && run.stderr.contains("10.96.0.10"),
        "{}",
        run.stderr
    );
    assert!(
        service.accepted() > before,
        "nothing went through the Service address"
    );
    assert_node_identity(&node, &advertised).await;
    let requests = join_requests(&cp, offset, &node.name).await;
    println!("the join's requests:\n  {}", requests.join("\n  "));
    for (what, status) in [
        ("/configmaps/kubeadm-config", "403"),
        ("/configmaps/kubelet-config", "403"),
        ("/api/v1/nodes/chart-node-1", "403"),
    ] {
        assert!(
            requests
                .iter()
                .any(|r| r.contains(what) && r.contains(&format!("-> {status}"))),
            "{what} answered {status}: {requests:#?}"
        );
    }

    let run = kaas_join("re-run", node.join_args(&cp, JOIN_TIMEOUT, &[])).await;
    assert_exit(&run, ExitCode::Ok, "re-run");
    assert!(
        run.stdout.to_lowercase().contains("already joined"),
        "{}",
        run.stdout
    );
    assert_eq!(cp.csrs_for(&node.name).await.len(), 1);

    // The Service address holds new connections: discovery (on the API server's own address)
    // finishes, then the join waits at the Service while the admin deletes its token.
    let doomed = cp.token().await;
    let node = Node::new("chart-node-deleted-token", &doomed.full());
    service.hold();
    let joining = spawn_join(
        "token deleted after discovery",
        node.join_args(&cp, JOIN_TIMEOUT, &[]),
    );
    cp.settle("the join at the Service address", || async {
        match service.waiting() {
            0 => Err("no connection held yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    cp.delete_token(&doomed).await;
    service.release();
    let run = joining.await.unwrap();
    assert_exit(
        &run,
        ExitCode::TokenRejected,
        "token deleted after discovery",
    );
    assert!(cp.csrs_for(&node.name).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// A bare control plane and `kaas-join cluster prepare`
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real control-plane binaries: export KUBEBUILDER_ASSETS=$(scripts/test-binaries.sh DIR) (or setup-envtest, see README), then cargo test --test real_control_plane -- --ignored"]
async fn cluster_prepare_makes_a_bare_control_plane_joinable() {
    let Some(cp) = RealControlPlane::start(Setup::Bare).await else {
        return;
    };
    let kubeconfig = cp.admin_kubeconfig.display().to_string();
    let admin = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--kubeconfig".to_string(), kubeconfig.clone()]);
        v
    };

    // Nothing published: --check says what is missing (23), a join cannot even discover (5).
    let run = kaas_join(
        "prepare --check, bare",
        admin(&["cluster", "prepare", "--check"]),
    )
    .await;
    assert_exit(
        &run,
        ExitCode::NotPrepared,
        "prepare --check on a bare control plane",
    );
    assert!(run.stdout.contains("missing"), "{}", run.stdout);
    let early = cp.create_token_in(&[]).await;
    let node = Node::new("bare-node-early", &early.full());
    let run = kaas_join(
        "join before prepare",
        node.join_args(&cp, SHORT_TIMEOUT, &[]),
    )
    .await;
    assert_exit(&run, ExitCode::AnonymousDenied, "join before prepare");

    // Prepared: everything created, then --check is clean and a second prepare changes nothing.
    let run = kaas_join("prepare", admin(&["cluster", "prepare"])).await;
    assert_exit(&run, ExitCode::Ok, "prepare");
    assert!(run.stdout.contains("created"), "{}", run.stdout);
    let run = kaas_join(
        "prepare --check, prepared",
        admin(&["cluster", "prepare", "--check"]),
    )
    .await;
    assert_exit(&run, ExitCode::Ok, "prepare --check after prepare");
    let run = kaas_join("prepare again", admin(&["cluster", "prepare"])).await;
    assert_exit(&run, ExitCode::Ok, "prepare again");
    assert!(
        run.stdout
            .lines()
            .all(|l| !l.starts_with("created") && !l.starts_with("updated")),
        "{}",
        run.stdout
    );

    // A token from `kaas-join token create`, signed by the real bootstrapsigner, joins.
    let run = kaas_join("token create", admin(&["token", "create", "--ttl", "1h"])).await;
    assert_exit(&run, ExitCode::Ok, "token create");
    let token = run.stdout.trim().to_string();
    let parsed = BootstrapToken::parse(&token).expect("token create prints a token");
    cp.wait_signed(parsed.id()).await;
    let node = Node::new("bare-node-1", &token);
    let run = kaas_join("join after prepare", node.join_args(&cp, JOIN_TIMEOUT, &[])).await;
    assert_exit(&run, ExitCode::Ok, "join after prepare");
    assert_node_identity(&node, &cp.server).await;
    // The earlier token works now too.
    let node = Node::new("bare-node-early", &early.full());
    cp.wait_signed(&early.id).await;
    let run = kaas_join(
        "early token after prepare",
        node.join_args(&cp, JOIN_TIMEOUT, &[]),
    )
    .await;
    assert_exit(&run, ExitCode::Ok, "early token after prepare");
}

// ---------------------------------------------------------------------------------------------
// The kit's pure parts: always run
// ---------------------------------------------------------------------------------------------

#[test]
fn cluster_info_kubeconfig_has_the_recorded_text_format() {
    let recorded = common::fixtures::fixture_json("200-anonymous-get-cluster-info-signed.json");
    let recorded = recorded["data"]["kubeconfig"].as_str().unwrap();
    let ca_pem = common::fixtures::fixture_text("ca.crt");
    assert_eq!(
        objects::cluster_info_kubeconfig("https://127.0.0.1:6443", &ca_pem),
        recorded
    );
}

#[test]
fn missing_binaries_are_named() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("etcd"), "").unwrap(); // not executable
    let apiserver = dir.path().join("kube-apiserver");
    std::fs::write(&apiserver, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&apiserver, std::fs::Permissions::from_mode(0o755)).unwrap();
    let missing = real::missing_binaries(dir.path(), &real::BINARIES);
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert!(
        missing[0].starts_with("etcd (") && missing[0].contains("not executable"),
        "{missing:?}"
    );
    assert!(
        missing[1].starts_with("kube-controller-manager ("),
        "{missing:?}"
    );
}

#[test]
fn generated_pki_serves_loopback_and_the_service_address_and_authenticates_the_admin() {
    let pki = pki::generate();

    // The serving certificate verifies against the CA for loopback, the Service address and
    // the in-cluster name, and the server accepts the admin client certificate.
    for name in [
        "127.0.0.1",
        "127.0.0.2",
        "localhost",
        "kubernetes.default.svc",
    ] {
        let seen = pki::handshake(&pki, pki::admin_tls(&pki), name)
            .unwrap_or_else(|e| panic!("handshake for {name}: {e}"));
        assert_eq!(seen, vec![pki.admin_der.clone()]);
    }
    assert!(
        pki::handshake(&pki, pki::admin_tls(&pki), "example.com").is_err(),
        "the serving certificate must not be valid for other names"
    );

    // The admin is kubeadm's: CN=kubernetes-admin in system:masters.
    let (_, admin) = x509_parser::parse_x509_certificate(&pki.admin_der).unwrap();
    let cn: Vec<_> = admin
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    let org: Vec<_> = admin
        .subject()
        .iter_organization()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["kubernetes-admin"]);
    assert_eq!(org, ["system:masters"]);
    let (_, ca) = x509_parser::parse_x509_certificate(&pki.ca_der).unwrap();
    assert!(ca.is_ca());
    assert_eq!(admin.issuer(), ca.subject());

    // The key files are PEM the Go tooling reads: PKCS#8 private keys and a PKIX public key.
    for pem in [&pki.ca_key_pem, &pki.serving_key_pem, &pki.sa_key_pem] {
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    }
    assert!(pki.sa_pub_pem.starts_with("-----BEGIN PUBLIC KEY-----"));

    // A node's pair file (certificate then key) gives a working client configuration too.
    let pair = format!("{}{}", pki.admin_pem, pki.admin_key_pem);
    let seen = pki::handshake(
        &pki,
        pki::tls_from_pair_pem(&pki.ca_der, pair.as_bytes()),
        "127.0.0.1",
    )
    .unwrap();
    assert_eq!(seen, vec![pki.admin_der.clone()]);

    // The pin the join is given is the CA's.
    CaPin::of_certificate_der(&pki.ca_der).unwrap();

    // The admin kubeconfig names the server and carries the admin's credentials.
    let kubeconfig: Value = serde_json::from_str(&objects::admin_kubeconfig(
        "https://127.0.0.1:1234",
        &pki.ca_pem,
        &pki.admin_pem,
        &pki.admin_key_pem,
    ))
    .unwrap();
    assert_eq!(
        kubeconfig["clusters"][0]["cluster"]["server"],
        "https://127.0.0.1:1234"
    );
    assert_eq!(
        kubeconfig["users"][0]["user"]["client-certificate-data"],
        objects::b64(pki.admin_pem.as_bytes())
    );
    assert_eq!(kubeconfig["current-context"], "real");
}

fn by_name(objects: &[Value], kind: &str, name: &str) -> Option<Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .cloned()
}

#[test]
fn kubeadm_init_configmaps_and_roles_are_kubeadms() {
    let objects = objects::kubeadm_init_objects("https://127.0.0.1:6443", "CA");
    let by_name = |kind: &str, name: &str| {
        by_name(&objects, kind, name).unwrap_or_else(|| panic!("no {kind} {name}"))
    };

    // ConfigMaps: the recorded data, and cluster-info in kubeadm's format.
    for (name, file) in [
        (
            "kubeadm-config",
            "200-kubeadm-config-get-bootstrap-token.json",
        ),
        (
            "kubelet-config",
            "200-kubelet-config-get-bootstrap-token.json",
        ),
    ] {
        let cm = by_name("ConfigMap", name);
        assert_eq!(cm["metadata"]["namespace"], "kube-system");
        assert_eq!(cm["data"], common::fixtures::fixture_json(file)["data"]);
    }
    let cluster_info = by_name("ConfigMap", "cluster-info");
    assert_eq!(cluster_info["metadata"]["namespace"], "kube-public");
    assert_eq!(
        cluster_info["data"]["kubeconfig"],
        objects::cluster_info_kubeconfig("https://127.0.0.1:6443", "CA")
    );

    // Roles grant exactly `get` on their one ConfigMap.
    for (ns, role, cm) in [
        (
            "kube-public",
            "kubeadm:bootstrap-signer-clusterinfo",
            "cluster-info",
        ),
        (
            "kube-system",
            "kubeadm:nodes-kubeadm-config",
            "kubeadm-config",
        ),
        ("kube-system", "kubeadm:kubelet-config", "kubelet-config"),
    ] {
        let r = by_name("Role", role);
        assert_eq!(r["metadata"]["namespace"], ns);
        assert_eq!(
            r["rules"],
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": [cm]}])
        );
        let b = by_name("RoleBinding", role);
        assert_eq!(b["metadata"]["namespace"], ns);
        assert_eq!(
            b["roleRef"],
            json!({"apiGroup": RBAC, "kind": "Role", "name": role})
        );
    }
    assert_eq!(
        by_name("RoleBinding", "kubeadm:bootstrap-signer-clusterinfo")["subjects"],
        json!([{"kind": "User", "apiGroup": RBAC, "name": "system:anonymous"}])
    );
    for name in ["kubeadm:nodes-kubeadm-config", "kubeadm:kubelet-config"] {
        assert_eq!(
            by_name("RoleBinding", name)["subjects"],
            json!([objects::group(TOKEN_GROUP), objects::group(NODES_GROUP)])
        );
    }
}

#[test]
fn kubeadm_init_bindings_are_kubeadms_and_cluster_prepares() {
    let objects = objects::kubeadm_init_objects("https://127.0.0.1:6443", "CA");
    let by_name = |kind: &str, name: &str| {
        by_name(&objects, kind, name).unwrap_or_else(|| panic!("no {kind} {name}"))
    };

    // ClusterRoleBindings: kubeadm's names, roles and subjects.
    for (name, role, subject) in [
        (
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            TOKEN_GROUP,
        ),
        (
            "kubeadm:node-autoapprove-bootstrap",
            NODECLIENT_ROLE,
            TOKEN_GROUP,
        ),
        (
            "kubeadm:node-autoapprove-certificate-rotation",
            objects::SELFNODECLIENT_ROLE,
            NODES_GROUP,
        ),
        ("kubeadm:get-nodes", "kubeadm:get-nodes", TOKEN_GROUP),
    ] {
        let b = by_name("ClusterRoleBinding", name);
        assert_eq!(b["roleRef"]["name"], role, "{name}");
        assert_eq!(b["roleRef"]["kind"], "ClusterRole", "{name}");
        assert_eq!(b["subjects"], json!([objects::group(subject)]), "{name}");
    }
    assert_eq!(
        by_name("ClusterRole", "kubeadm:get-nodes")["rules"],
        json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}])
    );

    // `kaas-join cluster prepare` ensures the same objects under the same names.
    let kubeconfig = objects::cluster_info_kubeconfig("https://127.0.0.1:6443", "CA");
    for desired in kaas_join::k8s::cluster_prepare::desired_objects(&kubeconfig) {
        let o = &desired.object;
        let kind = o["kind"].as_str().unwrap();
        let name = o["metadata"]["name"].as_str().unwrap();
        assert_eq!(&by_name(kind, name), o, "{kind} {name}");
    }

    // Every object has a collection to be created in.
    let paths: Vec<String> = objects.iter().map(objects::collection_path).collect();
    assert!(paths.contains(&"/api/v1/namespaces/kube-public/configmaps".to_string()));
    assert!(paths.contains(
        &"/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings".to_string()
    ));
    assert!(paths.contains(&"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".to_string()));
}

#[test]
fn chart_objects_publish_the_service_address_and_only_the_three_bindings() {
    let objects = objects::chart_objects("https://127.0.0.2:443", "CA");
    let cluster_info = by_name(&objects, "ConfigMap", "cluster-info").expect("cluster-info");
    assert_eq!(
        cluster_info["data"]["kubeconfig"],
        objects::cluster_info_kubeconfig("https://127.0.0.2:443", "CA")
    );
    let configmaps: Vec<_> = objects
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .collect();
    assert_eq!(configmaps.len(), 1, "only cluster-info: {configmaps:#?}");
    let roles: Vec<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding")
        .map(|o| o["roleRef"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "system:node-bootstrapper",
            NODECLIENT_ROLE,
            objects::SELFNODECLIENT_ROLE
        ]
    );
    assert!(
        objects.iter().all(|o| o["kind"] != "ClusterRole"),
        "no kubeadm:get-nodes"
    );
    assert!(by_name(&objects, "RoleBinding", objects::CHART_CLUSTER_INFO_ROLE).is_some());
}

#[test]
fn token_secrets_are_kubeadms() {
    let (id, secret) = objects::random_token();
    let token = BootstrapToken::parse(&format!("{id}.{secret}")).expect("a valid token");
    assert_eq!(token.id(), id);
    let expiration = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let s = objects::bootstrap_token_secret(
        &id,
        &secret,
        &[TOKEN_GROUP, "system:bootstrappers:x"],
        expiration,
    );
    assert_eq!(s["metadata"]["name"], format!("bootstrap-token-{id}"));
    assert_eq!(s["metadata"]["namespace"], "kube-system");
    assert_eq!(s["type"], "bootstrap.kubernetes.io/token");
    let data = &s["stringData"];
    assert_eq!(data["token-id"], id);
    assert_eq!(data["token-secret"], secret);
    assert_eq!(data["usage-bootstrap-authentication"], "true");
    assert_eq!(data["usage-bootstrap-signing"], "true");
    assert_eq!(
        data["auth-extra-groups"],
        format!("{TOKEN_GROUP},system:bootstrappers:x")
    );
    let exp = time::OffsetDateTime::parse(
        data["expiration"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(exp > time::OffsetDateTime::now_utc() + time::Duration::minutes(59));
    assert_eq!(
        objects::collection_path(&s),
        "/api/v1/namespaces/kube-system/secrets"
    );
}

#[test]
fn audit_policy_parses_and_requests_are_counted_once() {
    let policy: Value = serde_norway::from_str(objects::AUDIT_POLICY).unwrap();
    assert_eq!(policy["kind"], "Policy");
    assert_eq!(policy["omitStages"], json!(["RequestReceived"]));
    assert_eq!(
        policy["rules"].as_array().unwrap().last().unwrap()["level"],
        "Metadata"
    );

    // A watch logs ResponseStarted and ResponseComplete: one request. The last line is not
    // finished yet and is left for the next read.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let event = |id: &str, stage: &str, user: &str| {
        json!({"auditID": id, "stage": stage, "verb": "watch", "requestURI": "/x", "user": {"username": user}, "responseStatus": {"code": 200}}).to_string()
    };
    let text = format!(
        "{}\n{}\n{}\n{}",
        event("a", "ResponseStarted", "system:bootstrap:abcdef"),
        event("a", "ResponseComplete", "system:bootstrap:abcdef"),
        event("b", "ResponseComplete", "kubernetes-admin"),
        event("c", "ResponseComplete", "system:anonymous"),
    );
    std::fs::write(&path, text).unwrap();
    let log = audit::AuditLog::new(&path);
    let events = log.events_since(0);
    assert_eq!(events.len(), 3, "{events:#?}");
    let requests = audit::requests(&events);
    assert_eq!(requests.len(), 2);
    let by_node: Vec<_> = requests
        .iter()
        .filter(|e| audit::by_joining_node(e, "n"))
        .collect();
    assert_eq!(by_node.len(), 1);
    assert_eq!(
        by_node[0].line(),
        "watch /x -> 200 (system:bootstrap:abcdef)"
    );
}

#[test]
fn the_forwarder_forwards_counts_and_holds() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in upstream.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 5];
                if conn.read_exact(&mut buf).is_ok() {
                    let _ = conn.write_all(&buf.map(|b| b.to_ascii_uppercase()));
                }
            });
        }
    });
    let fwd = real::forward::Forwarder::start(SocketAddr::from((pki::SERVICE_IP, 0)), target)
        .expect("a forwarder on 127.0.0.2");
    assert_eq!(
        fwd.addr().ip(),
        std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
    );
    let roundtrip = |addr: SocketAddr| {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        buf
    };
    assert_eq!(&roundtrip(fwd.addr()), b"HELLO");
    assert_eq!(fwd.accepted(), 1);

    fwd.hold();
    let addr = fwd.addr();
    let held = std::thread::spawn(move || roundtrip(addr));
    Wait::new("the connection held", Duration::from_secs(10))
        .every(Duration::from_millis(5))
        .until_blocking(|| fwd.waiting() > 0);
    fwd.release();
    assert_eq!(&held.join().unwrap(), b"HELLO");
    assert_eq!(fwd.waiting(), 0);
}

/// The kit is not the code under test, but its node folder must look like a node's.
#[test]
fn a_node_folder_keeps_its_token_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let node = Node::new("n", "abcdef.0123456789abcdef");
    let mode = std::fs::metadata(&node.token_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&node.token_file).unwrap(),
        "abcdef.0123456789abcdef\n"
    );
    assert_eq!(
        node.file("/etc/kubernetes/kubelet.conf"),
        Path::new(&node.root).join("etc/kubernetes/kubelet.conf")
    );
}
