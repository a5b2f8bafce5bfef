//! One real control plane for the tests and benches: etcd, kube-apiserver and
//! kube-controller-manager (real binaries from `KUBEBUILDER_ASSETS`, envtest's layout; see
//! `scripts/test-binaries.sh`) on loopback ports chosen free at start, set up as one of
//! [`Setup`]'s control planes, with an admin client and an audit log. Every child is killed
//! when the [`RealControlPlane`] is dropped, also when a test panics (then the logs' tails are
//! printed and the folder is kept); every readiness wait is bounded.
//!
//! Included by `tests/real_control_plane.rs` and `benches/real.rs` beside `common`
//! (`#[path = ".../common/real/mod.rs"] mod real;`), not by every test binary.
//!
//! | file | what |
//! |---|---|
//! | `pki.rs` | CA, serving, admin and service-account keys; rustls client configurations |
//! | `processes.rs` | children, their logs, bounded waits |
//! | `objects.rs` | the objects of each set-up, token Secrets, kubeconfig and audit-policy texts |
//! | `api.rs` | a REST client as any identity |
//! | `forward.rs` | the API server's Service address (chart set-up) |
//! | `audit.rs` | reading and counting the audit log |
//! | `node.rs` | a node's folder for the real binary: root, token file, `kaas-join` arguments |
//! | `kubeadm.rs` | `kubeadm join` with a real kubelet and containerd (the benchmark's comparison) |
//! | `node_host.rs` | a node's own paths in a mount namespace, containerd in it, `kaas-join run` there |
#![allow(dead_code)]

pub mod api;
pub mod audit;
pub mod forward;
pub mod kubeadm;
pub mod node;
pub mod node_host;
pub mod objects;
pub mod pki;
pub mod processes;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kaas_join::config::JoinConfig;
use kaas_join::model::pin::CaPin;
use serde_json::{json, Value};

use api::Api;
use audit::AuditLog;
use forward::Forwarder;
use pki::Pki;
use processes::{Processes, POLL};

/// The environment variable naming the folder with the binaries (envtest's).
pub const ASSETS_ENV: &str = "KUBEBUILDER_ASSETS";
/// What the control plane needs from that folder.
pub const BINARIES: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];
/// How a skipped test or bench says where binaries come from.
pub const HOW_TO_GET_BINARIES: &str = "set KUBEBUILDER_ASSETS to a folder with etcd, \
    kube-apiserver and kube-controller-manager (and kubeadm for the benchmark): \
    `export KUBEBUILDER_ASSETS=$(scripts/test-binaries.sh DIR)` from .xz release binaries, or \
    `setup-envtest use -p path 1.33.x` plus kube-controller-manager from \
    https://dl.k8s.io/release/v1.33.3/bin/linux/amd64/; see README, \"Tests against a real \
    control plane\"";
/// Longest wait for something the control plane does by itself (a signature, an approval, an
/// informer noticing a deletion): about 15 ms and 0.1 s on the recorded control plane.
pub const SETTLE_WAIT: Duration = Duration::from_secs(60);

/// Which control plane to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// As `kubeadm init` leaves it ([`objects::kubeadm_init_objects`]): cluster-info naming the
    /// API server, kubeadm-config and kubelet-config readable by tokens and nodes, kubeadm's
    /// bootstrap bindings including `kubeadm:get-nodes`.
    Kubeadm,
    /// As the seed's Helm chart leaves it ([`objects::chart_objects`]): cluster-info naming the
    /// API server's Service address (a forwarder on 127.0.0.2, see `forward.rs`), only the
    /// node-bootstrapper, nodeclient and selfnodeclient bindings, no cluster ConfigMaps.
    Chart,
    /// Nothing for joining nodes at all: no cluster-info, no bindings (what `kaas-join cluster
    /// prepare` is for).
    Bare,
}

/// The assets folder; `None` (skip) when the variable is unset or empty; a panic naming what
/// is missing when it is set but incomplete (a CI misconfiguration must fail, not skip).
pub fn assets_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os(ASSETS_ENV).filter(|v| !v.is_empty())?);
    let missing = missing_binaries(&dir, &BINARIES);
    assert!(
        missing.is_empty(),
        "{ASSETS_ENV}={} is set but incomplete: missing or not executable: {}. {HOW_TO_GET_BINARIES}",
        dir.display(),
        missing.join(", ")
    );
    Some(dir)
}

/// The binaries of `names` that `dir` lacks or cannot execute, each with the reason.
pub fn missing_binaries(dir: &Path, names: &[&str]) -> Vec<String> {
    names
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

/// A bootstrap token made on the control plane.
#[derive(Clone)]
pub struct Token {
    pub id: String,
    secret: String,
}

impl Token {
    /// `<id>.<secret>`.
    pub fn full(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// The same id with another secret (a wrong token).
    pub fn with_wrong_secret(&self) -> String {
        let (_, other) = objects::random_token();
        format!("{}.{other}", self.id)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}.<secret>)", self.id)
    }
}

/// A running control plane; see the module documentation.
pub struct RealControlPlane {
    pub setup: Setup,
    pub pki: Pki,
    /// The API server's own address, where nodes discover: `https://127.0.0.1:<port>`.
    pub server: String,
    /// The chart set-up's Service address (the forwarder); `None` otherwise.
    pub service: Option<Forwarder>,
    pub admin: Api,
    pub audit: AuditLog,
    /// The admin kubeconfig (`kaas-join token`, `cluster prepare`, kubectl).
    pub admin_kubeconfig: PathBuf,
    pub assets: PathBuf,
    procs: Processes,
    sentinels: std::sync::atomic::AtomicU64,
}

impl RealControlPlane {
    /// Starts one, `None` (after saying why) when `KUBEBUILDER_ASSETS` is not set.
    pub async fn start(setup: Setup) -> Option<RealControlPlane> {
        let Some(assets) = assets_dir() else {
            println!("skipped: {ASSETS_ENV} is not set; {HOW_TO_GET_BINARIES}");
            return None;
        };
        Some(Self::start_with(setup, &assets).await)
    }

    /// Starts one from the binaries in `assets`. Takes about 6 s on 2 cores; the API server's
    /// readiness dominates.
    pub async fn start_with(setup: Setup, assets: &Path) -> RealControlPlane {
        let pki = pki::generate();
        let mut procs = Processes::new();
        let files = Files::write(&procs, &pki);

        let etcd_port = start_etcd(&mut procs, assets).await;
        let api_port = crate::common::free_port();
        let server = format!("https://127.0.0.1:{api_port}");
        procs.spawn(
            "kube-apiserver",
            &assets.join("kube-apiserver"),
            &files.apiserver_args(etcd_port, api_port),
        );
        let admin = Api::new(&server, pki::admin_tls(&pki));
        admin.wait_ready(&mut procs, "/readyz").await;
        let service = set_up(setup, &admin, &server, &pki, api_port).await;

        // kube-controller-manager as kubeadm runs it: bootstrapsigner signs cluster-info,
        // csrapproving and csrsigning approve and issue node certificates with the cluster CA.
        let admin_kubeconfig = procs.write(
            "admin.conf",
            &objects::admin_kubeconfig(&server, &pki.ca_pem, &pki.admin_pem, &pki.admin_key_pem),
        );
        let kcm_port = crate::common::free_port();
        procs.spawn(
            "kube-controller-manager",
            &assets.join("kube-controller-manager"),
            &files.controller_manager_args(&admin_kubeconfig, kcm_port),
        );
        let kcm = Api::new(
            &format!("https://127.0.0.1:{kcm_port}"),
            pki::admin_tls(&pki),
        );
        kcm.wait_ready(&mut procs, "/healthz").await;

        RealControlPlane {
            setup,
            pki,
            server,
            service,
            admin,
            audit: AuditLog::new(&files.audit_log),
            admin_kubeconfig,
            assets: assets.to_path_buf(),
            procs,
            sentinels: Default::default(),
        }
    }

    /// Starts kube-scheduler from the assets (kubeadm's flags; the demo schedules a Deployment
    /// onto a joined node), healthy.
    pub async fn start_scheduler(&mut self) {
        let port = crate::common::free_port();
        let kubeconfig = self.admin_kubeconfig.display().to_string();
        let args = vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!(
                "--tls-cert-file={}",
                self.procs.path("apiserver.crt").display()
            ),
            format!(
                "--tls-private-key-file={}",
                self.procs.path("apiserver.key").display()
            ),
        ];
        let bin = self.assets.join("kube-scheduler");
        self.procs.spawn("kube-scheduler", &bin, &args);
        let scheduler = Api::new(
            &format!("https://127.0.0.1:{port}"),
            pki::admin_tls(&self.pki),
        );
        scheduler.wait_ready(&mut self.procs, "/healthz").await;
    }

    /// What cluster-info names: the API server, or in the chart set-up its Service address.
    pub fn advertised_server(&self) -> String {
        match &self.service {
            Some(fwd) => format!("https://{}", fwd.addr()),
            None => self.server.clone(),
        }
    }

    /// The CA pin a join is given.
    pub fn pin(&self) -> CaPin {
        CaPin::of_certificate_der(&self.pki.ca_der).unwrap()
    }

    /// The control plane's folder (certificates, configuration, logs, audit log).
    pub fn dir(&self) -> &Path {
        self.procs.dir()
    }

    pub fn pids(&self) -> Vec<(String, u32)> {
        self.procs.pids()
    }

    /// Fails (with the logs) when a component has died.
    pub fn assert_running(&mut self) {
        self.procs.assert_running();
    }

    pub fn anonymous(&self) -> Api {
        Api::new(&self.server, pki::anonymous_tls(&self.pki.ca_der))
    }

    /// A client authenticating with a node's `kubelet-client-current.pem` (certificate + key).
    pub fn client_with_pair(&self, base: &str, pair_pem: &[u8]) -> Api {
        Api::new(base, pki::tls_from_pair_pem(&self.pki.ca_der, pair_pem))
    }

    /// A join configuration for this control plane (library joins).
    pub fn join_config(
        &self,
        token: &str,
        node: &str,
        root: &Path,
        timeout: Duration,
    ) -> JoinConfig {
        crate::common::join_config(&self.server, token, self.pin(), node, root, timeout)
    }

    /// Creates an admin-made object (201, or 409 when it is there).
    pub async fn apply(&self, object: &Value) {
        self.admin
            .apply(&objects::collection_path(object), object)
            .await;
    }

    /// Makes a bootstrap token in `groups` (kubeadm's group when empty), valid for an hour; does
    /// not wait for its signature ([`RealControlPlane::wait_signed`]).
    pub async fn create_token_in(&self, groups: &[&str]) -> Token {
        let (id, secret) = objects::random_token();
        let groups = if groups.is_empty() {
            &[objects::TOKEN_GROUP][..]
        } else {
            groups
        };
        let expiration = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let secret_obj = objects::bootstrap_token_secret(&id, &secret, groups, expiration);
        self.apply(&secret_obj).await;
        Token { id, secret }
    }

    /// A token in kubeadm's group, once the bootstrapsigner has signed cluster-info for it.
    pub async fn token(&self) -> Token {
        let token = self.create_token_in(&[]).await;
        self.wait_signed(&token.id).await;
        token
    }

    /// Waits until cluster-info carries `jws-kubeconfig-<id>`.
    pub async fn wait_signed(&self, id: &str) {
        let key = format!("jws-kubeconfig-{id}");
        self.settle(&format!("cluster-info signed for {id}"), || async {
            let a = self
                .admin
                .get("/api/v1/namespaces/kube-public/configmaps/cluster-info")
                .await;
            match a.status {
                200 if a.json()["data"][&key].is_string() => Ok(()),
                _ => Err(format!("{} {}", a.status, a.body)),
            }
        })
        .await;
    }

    /// Deletes the token's Secret and waits until the API server no longer takes it (its
    /// authenticator reads Secrets through an informer).
    pub async fn delete_token(&self, token: &Token) {
        let a = self
            .admin
            .delete(&format!(
                "/api/v1/namespaces/kube-system/secrets/bootstrap-token-{}",
                token.id
            ))
            .await;
        assert_eq!(a.status, 200, "deleting token {}: {}", token.id, a.body);
        let as_token = self.anonymous().with_bearer(&token.full());
        self.settle(&format!("token {} rejected", token.id), || async {
            match as_token.get("/version").await.status {
                401 => Ok(()),
                other => Err(format!("still {other}")),
            }
        })
        .await;
    }

    /// Who the API server takes `api`'s credentials for: `(username, groups)` from a
    /// SelfSubjectReview.
    pub async fn whoami(api: &Api) -> (String, Vec<String>) {
        let a = api
            .post(
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
            )
            .await;
        assert_eq!(a.status, 201, "SelfSubjectReview: {}", a.body);
        let info = &a.json()["status"]["userInfo"];
        let groups = info["groups"]
            .as_array()
            .map(|g| {
                g.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        (
            info["username"].as_str().unwrap_or_default().to_string(),
            groups,
        )
    }

    /// Every CertificateSigningRequest for `node` (`spec.username` of the token that made it,
    /// subject `system:node:<node>`), as the admin lists them.
    pub async fn csrs_for(&self, node: &str) -> Vec<Value> {
        let a = self
            .admin
            .get("/apis/certificates.k8s.io/v1/certificatesigningrequests")
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let pem_subject = format!("system:node:{node}");
        a.json()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|csr| csr_subject_cn(csr).as_deref() == Some(pem_subject.as_str()))
            .collect()
    }

    /// The audit events from `offset` up to a sentinel request made now: once the sentinel is
    /// in the log, every request answered before it is too (the log is written before each
    /// response; bounded by [`SETTLE_WAIT`]).
    pub async fn audit_since(&self, offset: u64) -> Vec<audit::Event> {
        let n = self
            .sentinels
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let marker = format!("/version?kaas-audit-sentinel={n}");
        let _ = self.admin.get(&marker).await;
        let deadline = Instant::now() + SETTLE_WAIT;
        loop {
            let events = self.audit.events_since(offset);
            if let Some(at) = events.iter().position(|e| e.uri == marker) {
                return events[..at].to_vec();
            }
            assert!(
                Instant::now() < deadline,
                "audit sentinel {marker} not in {} after {SETTLE_WAIT:?}",
                self.audit.path().display()
            );
            tokio::time::sleep(POLL / 10).await;
        }
    }

    /// Polls `probe` until `Ok`, at most [`SETTLE_WAIT`]; fails naming `what`.
    pub async fn settle<F, Fut>(&self, what: &str, mut probe: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let deadline = Instant::now() + SETTLE_WAIT;
        loop {
            match probe().await {
                Ok(()) => return,
                Err(last) if Instant::now() >= deadline => {
                    panic!("{what}: not within {SETTLE_WAIT:?}; last: {last}")
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }
}

/// The files the processes read, in the control plane's folder.
struct Files {
    ca_crt: String,
    ca_key: String,
    serving_crt: String,
    serving_key: String,
    sa_key: String,
    sa_pub: String,
    policy: String,
    audit_log: PathBuf,
    cert_dir: String,
}

impl Files {
    fn write(procs: &Processes, pki: &Pki) -> Files {
        let w = |name: &str, content: &str| procs.write(name, content).display().to_string();
        Files {
            ca_crt: w("ca.crt", &pki.ca_pem),
            ca_key: w("ca.key", &pki.ca_key_pem),
            serving_crt: w("apiserver.crt", &pki.serving_pem),
            serving_key: w("apiserver.key", &pki.serving_key_pem),
            sa_key: w("sa.key", &pki.sa_key_pem),
            sa_pub: w("sa.pub", &pki.sa_pub_pem),
            policy: w("audit-policy.yaml", objects::AUDIT_POLICY),
            audit_log: procs.path("audit.log"),
            cert_dir: procs.path("apiserver-certs").display().to_string(),
        }
    }

    /// The flags of the recorded control plane (fixtures/INDEX.md) and kubeadm's, and an audit
    /// log.
    fn apiserver_args(&self, etcd_port: u16, api_port: u16) -> Vec<String> {
        vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            format!("--secure-port={api_port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--tls-cert-file={}", self.serving_crt),
            format!("--tls-private-key-file={}", self.serving_key),
            format!("--client-ca-file={}", self.ca_crt),
            format!("--cert-dir={}", self.cert_dir),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={}", self.sa_pub),
            format!("--service-account-signing-key-file={}", self.sa_key),
            "--service-cluster-ip-range=10.96.0.0/12".into(),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            "--enable-bootstrap-token-auth".into(),
            "--anonymous-auth=true".into(),
            "--allow-privileged=true".into(),
            // etcd 3.4 has no watch progress notify (fixtures/INDEX.md, the WatchList recording).
            "--feature-gates=WatchList=false".into(),
            format!("--audit-policy-file={}", self.policy),
            format!("--audit-log-path={}", self.audit_log.display()),
            // Written before the response (the default for the log backend, said here).
            "--audit-log-mode=blocking".into(),
        ]
    }

    /// kubeadm's controller-manager flags, the cluster CA as signer.
    fn controller_manager_args(&self, kubeconfig: &Path, port: u16) -> Vec<String> {
        let kubeconfig = kubeconfig.display();
        vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--controllers=*,bootstrapsigner,tokencleaner".into(),
            format!("--cluster-signing-cert-file={}", self.ca_crt),
            format!("--cluster-signing-key-file={}", self.ca_key),
            format!("--root-ca-file={}", self.ca_crt),
            format!("--service-account-private-key-file={}", self.sa_key),
            // kubeadm says true; false spares the service-account tokens each controller would
            // need first, and changes nothing a joining node sees.
            "--use-service-account-credentials=false".into(),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            // Serves /healthz with a certificate the admin client trusts.
            format!("--tls-cert-file={}", self.serving_crt),
            format!("--tls-private-key-file={}", self.serving_key),
        ]
    }
}

/// etcd on free loopback ports, healthy; its client port.
async fn start_etcd(procs: &mut Processes, assets: &Path) -> u16 {
    let (client, peer) = (crate::common::free_port(), crate::common::free_port());
    let data = procs.path("etcd-data");
    procs.spawn(
        "etcd",
        &assets.join("etcd"),
        &processes::etcd_args(&data, client, peer),
    );
    processes::wait_for_etcd(procs, client).await;
    client
}

/// Creates `setup`'s objects; the chart's Service address (a forwarder) when it has one.
async fn set_up(
    setup: Setup,
    admin: &Api,
    server: &str,
    pki: &Pki,
    api_port: u16,
) -> Option<Forwarder> {
    let service = (setup == Setup::Chart).then(|| {
        Forwarder::start(
            SocketAddr::from((pki::SERVICE_IP, 0)),
            SocketAddr::from((Ipv4Addr::LOCALHOST, api_port)),
        )
        .expect("a forwarder on 127.0.0.2 (any 127/8 address is loopback on Linux)")
    });
    let objects = match (setup, &service) {
        (Setup::Kubeadm, _) => objects::kubeadm_init_objects(server, &pki.ca_pem),
        (Setup::Chart, Some(fwd)) => {
            objects::chart_objects(&format!("https://{}", fwd.addr()), &pki.ca_pem)
        }
        _ => Vec::new(),
    };
    for object in &objects {
        admin.apply(&objects::collection_path(object), object).await;
    }
    service
}

/// The subject CN of a CSR object's `spec.request` (base64 of a PEM CSR).
pub fn csr_subject_cn(csr: &Value) -> Option<String> {
    use base64::Engine as _;
    use rustls::pki_types::pem::PemObject as _;
    use x509_parser::prelude::FromDer as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(csr["spec"]["request"].as_str()?)
        .ok()?;
    let der = rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(&pem).ok()?;
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .ok()?;
    let cn = req
        .certification_request_info
        .subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}
