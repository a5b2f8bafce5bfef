//! A full join against a REAL control plane: etcd, kube-apiserver and kube-controller-manager
//! started on loopback from `KUBEBUILDER_ASSETS` (envtest's layout plus the controller-manager),
//! set up as `kubeadm init` does, then `kaas_join::cmd::join::join` as a node would run it.
//!
//! ```text
//! KUBEBUILDER_ASSETS=/path/to/bin cargo test --test envtest -- --ignored --nocapture
//! ```
//!
//! The full join is `#[ignore]`d because it needs those binaries; without the variable it prints
//! why it is skipped and passes, with the variable set and a binary missing it fails naming it.
//! The certificate generation and the `kubeadm init` objects are plain functions, checked by the
//! tests that always run (against the recorded fixtures where they must match byte for byte).

mod common;

use std::fs::File;
use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::free_port;
use kaas_join::cmd::join::report::Outcome;
use kaas_join::config::JoinConfig;
use kaas_join::model::output::OutputFormat;
use kaas_join::model::pin::CaPin;
use kaas_join::model::token::BootstrapToken;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};

/// The environment variable naming the folder with the control-plane binaries (envtest's).
const ASSETS_ENV: &str = "KUBEBUILDER_ASSETS";
const BINARIES: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];
/// kubeadm's `NodeBootstrapTokenAuthGroup`.
const TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// kubeadm's `NodesGroup`.
const NODES_GROUP: &str = "system:nodes";
const NODE_NAME: &str = "envtest-node-1";
/// The longest any single wait in this file may take.
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
const RBAC: &str = "rbac.authorization.k8s.io";

fn fixtures() -> PathBuf {
    common::fixtures::fixtures_dir()
}

fn fixture_json(name: &str) -> Value {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------

/// The binaries of [`BINARIES`] that `dir` lacks or cannot execute, each with the reason.
fn missing_binaries(dir: &Path) -> Vec<String> {
    BINARIES
        .iter()
        .filter_map(|name| {
            let path = dir.join(name);
            match std::fs::metadata(&path) {
                Err(e) => Some(format!("{name} ({}: {e})", path.display())),
                Ok(m) if !m.is_file() => Some(format!("{name} ({} is not a file)", path.display())),
                Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                    Some(format!("{name} ({} is not executable)", path.display()))
                }
                Ok(_) => None,
            }
        })
        .collect()
}

/// The assets folder, `None` (skip) when the variable is unset or empty, a panic naming what is
/// missing when the folder is incomplete.
fn assets_dir() -> Option<PathBuf> {
    let dir = std::env::var_os(ASSETS_ENV).filter(|v| !v.is_empty())?;
    let dir = PathBuf::from(dir);
    let missing = missing_binaries(&dir);
    assert!(
        missing.is_empty(),
        "{ASSETS_ENV}={} is set but incomplete: missing or not executable: {}. It must hold \
         etcd, kube-apiserver and kube-controller-manager (envtest's binaries plus the \
         controller-manager of the same Kubernetes version)",
        dir.display(),
        missing.join(", ")
    );
    Some(dir)
}

// ---------------------------------------------------------------------------------------------
// PKI
// ---------------------------------------------------------------------------------------------

/// Everything the control plane and the admin client need, as kubeadm's `certs` phase would
/// make it (ECDSA P-256 instead of kubeadm's RSA-2048).
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    ca_key_pem: String,
    serving_pem: String,
    serving_key_pem: String,
    sa_key_pem: String,
    sa_pub_pem: String,
    admin_pem: String,
    admin_der: CertificateDer<'static>,
    admin_key_pem: String,
    admin_key_der: Vec<u8>,
}

fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn leaf_params(cn: &str, org: Option<&str>) -> CertificateParams {
    let now = time::OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(org) = org {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(1);
    params.serial_number = Some(serial());
    params
}

/// Cluster CA (`CN=kubernetes`), kube-apiserver serving certificate for loopback and the
/// in-cluster names, service-account key pair, admin client certificate
/// (`CN=kubernetes-admin`, `O=system:masters`).
fn generate_pki() -> Pki {
    let p256 = &rcgen::PKCS_ECDSA_P256_SHA256;
    let now = time::OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate_for(p256).unwrap();
    let ca_key_pem = ca_key.serialize_pem();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kubernetes");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(2);
    params.serial_number = Some(serial());
    let ca = CertifiedIssuer::self_signed(params, ca_key).unwrap();

    let serving_key = KeyPair::generate_for(p256).unwrap();
    let mut params = leaf_params("kube-apiserver", None);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.subject_alt_names = vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1))),
    ];
    for name in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        params
            .subject_alt_names
            .push(SanType::DnsName(name.try_into().unwrap()));
    }
    let serving = params.signed_by(&serving_key, &ca).unwrap();

    let admin_key = KeyPair::generate_for(p256).unwrap();
    let mut params = leaf_params("kubernetes-admin", Some("system:masters"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin = params.signed_by(&admin_key, &ca).unwrap();

    let sa_key = KeyPair::generate_for(p256).unwrap();

    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        ca_key_pem,
        serving_pem: serving.pem(),
        serving_key_pem: serving_key.serialize_pem(),
        sa_key_pem: sa_key.serialize_pem(),
        sa_pub_pem: sa_key.public_key_pem(),
        admin_pem: admin.pem(),
        admin_der: admin.der().clone(),
        admin_key_pem: admin_key.serialize_pem(),
        admin_key_der: admin_key.serialize_der(),
    }
}

/// A rustls client configuration (ring) trusting only `ca`, presenting `chain` with `key`.
fn client_tls(
    ca: &CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("the CA is a usable root");
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client certificate and key match")
}

fn admin_tls(pki: &Pki) -> rustls::ClientConfig {
    client_tls(
        &pki.ca_der,
        vec![pki.admin_der.clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.admin_key_der.clone())),
    )
}

/// A client authenticating with the certificate and key of a PEM file holding both (as
/// kubelet's `kubelet-client-current.pem`).
fn tls_from_pair_pem(ca: &CertificateDer<'static>, pair_pem: &[u8]) -> rustls::ClientConfig {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pair_pem)
        .collect::<Result<_, _>>()
        .expect("certificates in the PEM");
    assert!(!chain.is_empty(), "no certificate in the PEM");
    let key = PrivateKeyDer::from_pem_slice(pair_pem).expect("a private key in the PEM");
    client_tls(ca, chain, key)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// kube-public/cluster-info's `data.kubeconfig`, in the text form kubeadm's `clientcmd.Write`
/// gives (the recorded fixture).
fn cluster_info_kubeconfig(server: &str, ca_pem: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        b64(ca_pem.as_bytes())
    )
}

/// The admin kubeconfig for kube-controller-manager (JSON, which kubeconfig loaders accept).
fn admin_kubeconfig(server: &str, pki: &Pki) -> String {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "envtest", "cluster": {
            "server": server,
            "certificate-authority-data": b64(pki.ca_pem.as_bytes()),
        }}],
        "users": [{"name": "kubernetes-admin", "user": {
            "client-certificate-data": b64(pki.admin_pem.as_bytes()),
            "client-key-data": b64(pki.admin_key_pem.as_bytes()),
        }}],
        "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": "kubernetes-admin"}}],
        "current-context": "envtest",
    });
    serde_json::to_string_pretty(&config).unwrap()
}

// ---------------------------------------------------------------------------------------------
// What `kubeadm init` creates for joining nodes
// ---------------------------------------------------------------------------------------------

/// A random bootstrap token `(id, secret)`, `[a-z0-9]{6}` and `[a-z0-9]{16}`.
fn random_token() -> (String, String) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 22];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    let s: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    (s[..6].to_string(), s[6..].to_string())
}

fn group(name: &str) -> Value {
    json!({"kind": "Group", "apiGroup": RBAC, "name": name})
}

fn get_configmap_role(namespace: &str, role: &str, configmap: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": role, "namespace": namespace},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": [configmap]}],
    })
}

fn role_binding(namespace: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": role, "namespace": namespace},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role},
        "subjects": subjects,
    })
}

fn cluster_role_binding(name: &str, cluster_role: &str, subject: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": cluster_role},
        "subjects": [subject],
    })
}

fn configmap(namespace: &str, name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    })
}

/// kube-system/bootstrap-token-<id>, as `kubeadm token create` writes it.
fn bootstrap_token_secret(id: &str, secret: &str, expiration: time::OffsetDateTime) -> Value {
    let expiration = expiration
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {
            "description": "kaas-join envtest",
            "token-id": id,
            "token-secret": secret,
            "expiration": expiration,
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": TOKEN_GROUP,
        },
    })
}

/// The API path a new object of this kind is POSTed to.
fn collection_path(object: &Value) -> String {
    let kind = object["kind"].as_str().expect("kind");
    let ns = object["metadata"]["namespace"].as_str();
    let (prefix, plural) = match kind {
        "Namespace" => ("/api/v1", "namespaces"),
        "ConfigMap" => ("/api/v1", "configmaps"),
        "Secret" => ("/api/v1", "secrets"),
        "Role" => ("/apis/rbac.authorization.k8s.io/v1", "roles"),
        "RoleBinding" => ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
        "ClusterRole" => ("/apis/rbac.authorization.k8s.io/v1", "clusterroles"),
        "ClusterRoleBinding" => ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings"),
        other => panic!("no path for kind {other}"),
    };
    match ns {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}"),
        None => format!("{prefix}/{plural}"),
    }
}

/// Every object `kubeadm init` (phases upload-config and bootstrap-token) makes that a joining
/// worker relies on, in creation order, with the token Secret last. The names are kubeadm's
/// (`cmd/kubeadm/app/phases/bootstraptoken/{clusterinfo,node}`, `uploadconfig`, constants).
fn kubeadm_init_objects(server: &str, ca_pem: &str, token_secret: &Value) -> Vec<Value> {
    let kubeadm_config = fixture_json("200-kubeadm-config-get-bootstrap-token.json");
    let kubelet_config = fixture_json("200-kubelet-config-get-bootstrap-token.json");
    let token_group = || group(TOKEN_GROUP);
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-public"}}),
        // upload-config: kubeadm-config and kubelet-config, readable by joining nodes.
        configmap(
            "kube-system",
            "kubeadm-config",
            kubeadm_config["data"].clone(),
        ),
        get_configmap_role(
            "kube-system",
            "kubeadm:nodes-kubeadm-config",
            "kubeadm-config",
        ),
        role_binding(
            "kube-system",
            "kubeadm:nodes-kubeadm-config",
            vec![token_group(), group(NODES_GROUP)],
        ),
        configmap(
            "kube-system",
            "kubelet-config",
            kubelet_config["data"].clone(),
        ),
        get_configmap_role("kube-system", "kubeadm:kubelet-config", "kubelet-config"),
        role_binding(
            "kube-system",
            "kubeadm:kubelet-config",
            vec![token_group(), group(NODES_GROUP)],
        ),
        // bootstrap-token: cluster-info, public.
        configmap(
            "kube-public",
            "cluster-info",
            json!({"kubeconfig": cluster_info_kubeconfig(server, ca_pem)}),
        ),
        get_configmap_role(
            "kube-public",
            "kubeadm:bootstrap-signer-clusterinfo",
            "cluster-info",
        ),
        role_binding(
            "kube-public",
            "kubeadm:bootstrap-signer-clusterinfo",
            vec![json!({"kind": "User", "apiGroup": RBAC, "name": "system:anonymous"})],
        ),
        // bootstrap-token: tokens may post CSRs, their CSRs and renewals are auto-approved,
        // and they may get Nodes (the duplicate-name check).
        cluster_role_binding(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            token_group(),
        ),
        cluster_role_binding(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            token_group(),
        ),
        cluster_role_binding(
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            group(NODES_GROUP),
        ),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "kubeadm:get-nodes"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
        }),
        cluster_role_binding("kubeadm:get-nodes", "kubeadm:get-nodes", token_group()),
        token_secret.clone(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// The control plane's processes and their folder. Dropping it kills and reaps every child
/// (then removes the folder); when dropped during a panic it first prints each child's log.
struct ControlPlane {
    children: Vec<(String, Child, PathBuf)>,
    dir: tempfile::TempDir,
}

impl ControlPlane {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    /// Starts `bin` with `args`, stdout and stderr into `<name>.log` in the folder.
    fn spawn(&mut self, name: &str, bin: &Path, args: &[String]) {
        let log_path = self.path(&format!("{name}.log"));
        let log = File::create(&log_path).unwrap();
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        println!(
            "started {name} (pid {}): {} {}",
            child.id(),
            bin.display(),
            args.join(" ")
        );
        self.children.push((name.to_string(), child, log_path));
    }

    /// Panics (printing the logs on drop) when a child has exited: it will not come back.
    fn assert_running(&mut self) {
        for (name, child, _) in &mut self.children {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{name} exited early with {status}; its log follows");
            }
        }
    }

    fn print_logs(&self) {
        for (name, _, log) in &self.children {
            let mut text = String::new();
            let _ = File::open(log).and_then(|mut f| f.read_to_string(&mut text));
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "----- {name}: last {} of {} lines of {} -----\n{}",
                tail.len(),
                lines.len(),
                log.display(),
                tail.join("\n")
            );
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        for (_, child, _) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn etcd_args(data_dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name=default".into(),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=default={peer}"),
    ]
}

/// Polls `http://127.0.0.1:<port>/health` until etcd says it is healthy.
async fn wait_for_etcd(cp: &mut ControlPlane, port: u16) {
    // Plain HTTP, but reqwest wants a TLS configuration with a crypto provider all the same.
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/health");
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        cp.assert_running();
        match http.get(&url).send().await {
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                if status.is_success() && body.contains("\"health\":\"true\"") {
                    return;
                }
                last = format!("{status} {body}");
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("etcd not healthy after {WAIT:?}: {last}");
}

// ---------------------------------------------------------------------------------------------
// The API as admin
// ---------------------------------------------------------------------------------------------

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str, tls: rustls::ClientConfig) -> Api {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Api {
            http,
            base: base.to_string(),
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Creates `object` at `path`: 201 Created or 409 AlreadyExists is success; 404 (namespace
    /// not there yet), 429 and 5xx are retried until [`WAIT`]; anything else fails.
    async fn apply(&self, path: &str, object: &Value) {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body) = self.post(path, object).await;
            match status {
                201 | 409 => return,
                404 | 429 | 500..=599 if Instant::now() < deadline => {
                    tokio::time::sleep(POLL).await
                }
                _ => panic!(
                    "POST {path} {} answered {status}: {body}",
                    object["metadata"]["name"]
                ),
            }
        }
    }

    /// GETs `path` until it answers 200 (at most [`WAIT`], [`POLL`] apart).
    async fn wait_ready(&self, cp: &mut ControlPlane, path: &str) {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            cp.assert_running();
            match self.http.get(format!("{}{path}", self.base)).send().await {
                Ok(resp) if resp.status().as_u16() == 200 => return,
                Ok(resp) => {
                    let status = resp.status();
                    last = format!("{status} {}", resp.text().await.unwrap_or_default());
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("GET {path} not 200 after {WAIT:?}; last answer: {last}");
    }
}

fn join_config(server: &str, token: &str, ca_der: &[u8], root: &Path) -> JoinConfig {
    let pin = CaPin::of_certificate_der(ca_der).unwrap();
    common::join_config(server, token, pin, NODE_NAME, root, WAIT)
}

// ---------------------------------------------------------------------------------------------
// The full join
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real control plane: set KUBEBUILDER_ASSETS to a folder with etcd, kube-apiserver and kube-controller-manager, then run: cargo test --test envtest -- --ignored"]
async fn full_join_against_a_real_control_plane() {
    let Some(assets) = assets_dir() else {
        println!(
            "skipped: {ASSETS_ENV} is not set (it must name a folder with etcd, kube-apiserver \
             and kube-controller-manager)"
        );
        return;
    };
    let pki = generate_pki();
    let mut cp = ControlPlane {
        children: Vec::new(),
        dir: tempfile::tempdir().unwrap(),
    };
    let ca_crt = cp.write("ca.crt", &pki.ca_pem);
    let ca_key = cp.write("ca.key", &pki.ca_key_pem);
    let serving_crt = cp.write("apiserver.crt", &pki.serving_pem);
    let serving_key = cp.write("apiserver.key", &pki.serving_key_pem);
    let sa_key = cp.write("sa.key", &pki.sa_key_pem);
    let sa_pub = cp.write("sa.pub", &pki.sa_pub_pem);

    // etcd.
    let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
    let etcd_data = cp.path("etcd-data");
    cp.spawn(
        "etcd",
        &assets.join("etcd"),
        &etcd_args(&etcd_data, etcd_port, peer_port),
    );
    wait_for_etcd(&mut cp, etcd_port).await;

    // kube-apiserver, with the flags of the recorded control plane (fixtures/INDEX.md).
    let server = format!("https://127.0.0.1:{api_port}");
    let p = |path: &PathBuf| path.display().to_string();
    let apiserver_args = vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        format!("--secure-port={api_port}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--tls-cert-file={}", p(&serving_crt)),
        format!("--tls-private-key-file={}", p(&serving_key)),
        format!("--client-ca-file={}", p(&ca_crt)),
        format!("--cert-dir={}", p(&cp.path("apiserver-certs"))),
        "--service-account-issuer=https://kubernetes.default.svc".into(),
        format!("--service-account-key-file={}", p(&sa_pub)),
        format!("--service-account-signing-key-file={}", p(&sa_key)),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
        "--authorization-mode=Node,RBAC".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--enable-bootstrap-token-auth".into(),
        "--anonymous-auth=true".into(),
        "--allow-privileged=true".into(),
    ];
    cp.spawn(
        "kube-apiserver",
        &assets.join("kube-apiserver"),
        &apiserver_args,
    );
    let admin = Api::new(&server, admin_tls(&pki));
    admin.wait_ready(&mut cp, "/readyz").await;

    // What `kubeadm init` sets up for joining nodes, with a fresh token.
    let (token_id, token_secret) = random_token();
    let token = format!("{token_id}.{token_secret}");
    let secret = bootstrap_token_secret(
        &token_id,
        &token_secret,
        time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    );
    for object in kubeadm_init_objects(&server, &pki.ca_pem, &secret) {
        admin.apply(&collection_path(&object), &object).await;
    }

    // kube-controller-manager: bootstrapsigner signs cluster-info, csrapproving and csrsigning
    // approve and issue the node's certificate with the cluster CA.
    let kubeconfig = cp.write("admin.conf", &admin_kubeconfig(&server, &pki));
    let kcm_args = vec![
        format!("--kubeconfig={}", p(&kubeconfig)),
        "--controllers=*,bootstrapsigner,tokencleaner".into(),
        format!("--cluster-signing-cert-file={}", p(&ca_crt)),
        format!("--cluster-signing-key-file={}", p(&ca_key)),
        format!("--root-ca-file={}", p(&ca_crt)),
        format!("--service-account-private-key-file={}", p(&sa_key)),
        "--use-service-account-credentials=false".into(),
        "--leader-elect=false".into(),
        "--bind-address=127.0.0.1".into(),
        "--secure-port=0".into(),
    ];
    cp.spawn(
        "kube-controller-manager",
        &assets.join("kube-controller-manager"),
        &kcm_args,
    );

    // Wait until the bootstrapsigner has signed cluster-info for our token, so that discovery
    // needs no retries and the request count below means something.
    let jws_key = format!("jws-kubeconfig-{token_id}");
    let deadline = Instant::now() + WAIT;
    loop {
        cp.assert_running();
        let (status, body) = admin
            .get("/api/v1/namespaces/kube-public/configmaps/cluster-info")
            .await;
        if status == 200 {
            let cm: Value = serde_json::from_str(&body).unwrap();
            if cm["data"][&jws_key].is_string() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "cluster-info has no {jws_key} after {WAIT:?} (is the bootstrapsigner running?); last: {status} {body}"
        );
        tokio::time::sleep(POLL).await;
    }

    // The join, as a node runs it.
    let root = tempfile::tempdir().unwrap();
    let cfg = join_config(&server, &token, &pki.ca_der, root.path());
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .unwrap_or_else(|e| panic!("the join failed: {e}"));
    println!("{}", report.render(OutputFormat::Text));
    println!("the join made {} requests", report.requests);
    assert_eq!(report.outcome, Outcome::Joined);
    // 7 on a quiet control plane (as against the sandbox); a watch the server ends early costs
    // a re-list and a new watch.
    assert!(
        report.requests <= 9,
        "one join made {} requests",
        report.requests
    );

    let kubelet_conf = std::fs::read_to_string(root.path().join("etc/kubernetes/kubelet.conf"))
        .expect("kubelet.conf written");
    assert!(
        kubelet_conf.contains(&format!("server: {server}")),
        "{kubelet_conf}"
    );

    // The written client certificate is system:node:envtest-node-1 to the real API server: the
    // Node authorizer lets it read its own (missing) Node and NodeRestriction lets it create it,
    // exactly what kubelet does when it registers.
    let pair = std::fs::read(
        root.path()
            .join("var/lib/kubelet/pki/kubelet-client-current.pem"),
    )
    .expect("kubelet-client-current.pem written");
    let node = Api::new(&server, tls_from_pair_pem(&pki.ca_der, &pair));
    let (status, body) = node.get(&format!("/api/v1/nodes/{NODE_NAME}")).await;
    assert_eq!(
        status, 404,
        "GET own Node as the node identity: expected 404 NotFound, got {status}: {body}"
    );
    assert!(body.contains("\"reason\":\"NotFound\""), "{body}");
    let (status, body) = node
        .post(
            "/api/v1/nodes",
            &json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE_NAME, "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                }},
            }),
        )
        .await;
    assert_eq!(
        status, 201,
        "POST own Node as the node identity: expected 201, got {status}: {body}"
    );

    // A second run finds the node joined and does nothing.
    let again = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .unwrap_or_else(|e| panic!("the second join failed: {e}"));
    assert_eq!(again.outcome, Outcome::AlreadyJoined);
}

/// Starts etcd as the full join does and checks that it answers `/health`: the one part of the
/// control plane that distributions package (`apt-get install etcd-server`). Uses etcd from
/// `KUBEBUILDER_ASSETS`, else from `PATH`; skipped when there is none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd (in KUBEBUILDER_ASSETS or on PATH); run: cargo test --test envtest -- --ignored"]
async fn etcd_starts_on_loopback() {
    let from_assets = std::env::var_os(ASSETS_ENV)
        .filter(|v| !v.is_empty())
        .map(|d| PathBuf::from(d).join("etcd"));
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("etcd"))
            .find(|p| p.is_file())
    });
    let Some(etcd) = from_assets.filter(|p| p.is_file()).or(from_path) else {
        println!("skipped: no etcd in {ASSETS_ENV} or on PATH");
        return;
    };
    let mut cp = ControlPlane {
        children: Vec::new(),
        dir: tempfile::tempdir().unwrap(),
    };
    let (port, peer) = (free_port(), free_port());
    let data = cp.path("etcd-data");
    cp.spawn("etcd", &etcd, &etcd_args(&data, port, peer));
    wait_for_etcd(&mut cp, port).await;
}

// ---------------------------------------------------------------------------------------------
// What can be checked without the binaries
// ---------------------------------------------------------------------------------------------

#[test]
fn cluster_info_kubeconfig_has_the_recorded_text_format() {
    let recorded = fixture_json("200-anonymous-get-cluster-info-signed.json");
    let recorded = recorded["data"]["kubeconfig"].as_str().unwrap();
    let ca_pem = std::fs::read_to_string(fixtures().join("ca.crt")).unwrap();
    assert_eq!(
        cluster_info_kubeconfig("https://127.0.0.1:6443", &ca_pem),
        recorded
    );
}

#[test]
fn missing_binaries_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("etcd"), "").unwrap(); // not executable
    let apiserver = dir.path().join("kube-apiserver");
    std::fs::write(&apiserver, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&apiserver, std::fs::Permissions::from_mode(0o755)).unwrap();
    let missing = missing_binaries(dir.path());
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

/// Runs a TLS handshake in memory between the apiserver's serving certificate and a client
/// configuration; returns the client certificate the server saw.
fn handshake(
    pki: &Pki,
    client: rustls::ClientConfig,
    server_name: &str,
) -> Result<Vec<CertificateDer<'static>>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.serving_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.serving_key_pem.as_bytes()).unwrap();
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    let mut c = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
    let mut s = rustls::ServerConnection::new(Arc::new(server_cfg)).unwrap();
    for _ in 0..10 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut slice = &buf[..];
        while !slice.is_empty() {
            s.read_tls(&mut slice).unwrap();
            s.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut slice = &buf[..];
        while !slice.is_empty() {
            c.read_tls(&mut slice).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(s
                .peer_certificates()
                .map(|p| p.to_vec())
                .unwrap_or_default());
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn generated_pki_serves_loopback_and_authenticates_the_admin() {
    let pki = generate_pki();

    // The serving certificate verifies against the CA for 127.0.0.1 and localhost, and the
    // server accepts the admin client certificate as issued by the same CA.
    for name in ["127.0.0.1", "localhost", "kubernetes.default.svc"] {
        let seen = handshake(&pki, admin_tls(&pki), name)
            .unwrap_or_else(|e| panic!("handshake for {name}: {e}"));
        assert_eq!(seen, vec![pki.admin_der.clone()]);
    }
    assert!(
        handshake(&pki, admin_tls(&pki), "example.com").is_err(),
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
    let seen = handshake(
        &pki,
        tls_from_pair_pem(&pki.ca_der, pair.as_bytes()),
        "127.0.0.1",
    )
    .unwrap();
    assert_eq!(seen, vec![pki.admin_der.clone()]);

    // The pin the join is given is the CA's.
    CaPin::of_certificate_der(&pki.ca_der).unwrap();

    // The admin kubeconfig names the server and carries the admin's credentials.
    let kubeconfig: Value =
        serde_json::from_str(&admin_kubeconfig("https://127.0.0.1:1234", &pki)).unwrap();
    assert_eq!(
        kubeconfig["clusters"][0]["cluster"]["server"],
        "https://127.0.0.1:1234"
    );
    assert_eq!(
        kubeconfig["users"][0]["user"]["client-certificate-data"],
        b64(pki.admin_pem.as_bytes())
    );
    assert_eq!(kubeconfig["current-context"], "envtest");
}

#[test]
fn kubeadm_init_objects_are_kubeadms() {
    let (id, secret) = random_token();
    let token = BootstrapToken::parse(&format!("{id}.{secret}")).expect("a valid token");
    assert_eq!(token.id(), id);
    let expiration = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let secret_obj = bootstrap_token_secret(&id, &secret, expiration);
    let objects = kubeadm_init_objects("https://127.0.0.1:6443", "CA", &secret_obj);

    let by_name = |kind: &str, name: &str| -> Value {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
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
        assert_eq!(cm["data"], fixture_json(file)["data"]);
    }
    let cluster_info = by_name("ConfigMap", "cluster-info");
    assert_eq!(cluster_info["metadata"]["namespace"], "kube-public");
    assert_eq!(
        cluster_info["data"]["kubeconfig"],
        cluster_info_kubeconfig("https://127.0.0.1:6443", "CA")
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
            json!([group(TOKEN_GROUP), group(NODES_GROUP)])
        );
    }

    // ClusterRoleBindings: kubeadm's names, roles and subjects.
    for (name, role, subject) in [
        (
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            TOKEN_GROUP,
        ),
        (
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            TOKEN_GROUP,
        ),
        (
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            NODES_GROUP,
        ),
        ("kubeadm:get-nodes", "kubeadm:get-nodes", TOKEN_GROUP),
    ] {
        let b = by_name("ClusterRoleBinding", name);
        assert_eq!(b["roleRef"]["name"], role, "{name}");
        assert_eq!(b["roleRef"]["kind"], "ClusterRole", "{name}");
        assert_eq!(b["subjects"], json!([group(subject)]), "{name}");
    }
    assert_eq!(
        by_name("ClusterRole", "kubeadm:get-nodes")["rules"],
        json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}])
    );

    // The token Secret, last, as `kubeadm token create` writes it.
    let s = objects.last().unwrap();
    assert_eq!(s, &secret_obj);
    assert_eq!(s["metadata"]["name"], format!("bootstrap-token-{id}"));
    assert_eq!(s["metadata"]["namespace"], "kube-system");
    assert_eq!(s["type"], "bootstrap.kubernetes.io/token");
    let data = &s["stringData"];
    assert_eq!(data["token-id"], id);
    assert_eq!(data["token-secret"], secret);
    assert_eq!(data["usage-bootstrap-authentication"], "true");
    assert_eq!(data["usage-bootstrap-signing"], "true");
    assert_eq!(data["auth-extra-groups"], TOKEN_GROUP);
    let exp = time::OffsetDateTime::parse(
        data["expiration"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(exp > time::OffsetDateTime::now_utc() + time::Duration::minutes(59));

    // Every object has a collection to be created in.
    let paths: Vec<String> = objects.iter().map(collection_path).collect();
    assert_eq!(paths[0], "/api/v1/namespaces");
    assert!(paths.contains(&"/api/v1/namespaces/kube-public/configmaps".to_string()));
    assert!(paths.contains(
        &"/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings".to_string()
    ));
    assert!(paths.contains(&"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".to_string()));
    assert_eq!(
        paths.last().unwrap(),
        "/api/v1/namespaces/kube-system/secrets"
    );
}
