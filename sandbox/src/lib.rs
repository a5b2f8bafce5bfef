//! kaas-sandbox: a faithful fake of the node-facing part of a kubeadm-style control plane
//! (kube-apiserver + the kube-controller-manager's bootstrapsigner, csrapproving and csrsigning
//! controllers), serving real TLS on loopback. Used by kaas-join's tests, benchmarks and demo;
//! not shipped.
//!
//! Responses are modelled on the recordings in `tests/fixtures` (see `tests/fidelity.rs`).
//!
//! Modules: [`tls`](tls) (CA, certificates, client-cert authentication), `store` (objects,
//! resourceVersion, watch fan-out), `api` (authentication, routing, handlers), `authz` (the
//! RBAC/Node authorizer table), `approver` (csrapproving + csrsigning), `faults`, `status`
//! (Status bodies), `jws` (bootstrapsigner).

mod api;
mod approver;
mod authz;
mod faults;
mod jws;
mod rbac;
mod status;
mod store;
mod tls;
mod util;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

pub use faults::Faults;
pub use jws::{cluster_info_kubeconfig, sign_detached_jws};

use store::{ConfigMap, Kind, Obj, ObjectMeta, Secret, Store};

/// How the sandbox is set up.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where to listen; default `127.0.0.1:0` (a free port).
    pub listen: SocketAddr,
    pub style: ControlPlaneStyle,
    pub approval: ApprovalMode,
    /// How long after a token's creation its `jws-kubeconfig-<id>` appears in cluster-info
    /// (the recorded control plane took about 15 ms). Default 0.
    pub jws_delay: Duration,
    /// The `server` written into cluster-info's kubeconfig; default the listen URL.
    pub advertised_server: Option<String>,
    /// Per-approval processing time, serialised over 5 approver workers (load benchmarks).
    pub approval_workers_delay: Duration,
    /// Shifts the `Date` header of every response by this many seconds (positive: the API
    /// server's clock is ahead of the real one), for clients' clock-skew checks. Default 0.
    pub clock_offset_seconds: i64,
    /// Send no `Date` header at all (as behind a proxy that strips it); real kube-apiservers
    /// always send one. Default false.
    pub omit_date_header: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            style: ControlPlaneStyle::default(),
            approval: ApprovalMode::default(),
            jws_delay: Duration::ZERO,
            advertised_server: None,
            approval_workers_delay: Duration::ZERO,
            clock_offset_seconds: 0,
            omit_date_header: false,
        }
    }
}

/// Which kind of control plane to imitate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ControlPlaneStyle {
    /// `kube-system/kubeadm-config` and `kubelet-config` exist (the recorded contents) and
    /// bootstrap tokens and nodes may read them.
    #[default]
    Kubeadm,
    /// A Helm-chart control plane: neither ConfigMap exists and reading them is Forbidden (403).
    Chart,
    /// A control plane nobody prepared for joining nodes: no cluster-info, no kubeadm-config or
    /// kubelet-config, no bootstrap RBAC. Authorization (for everyone but nodes and
    /// `system:masters`) follows the Roles, ClusterRoles and bindings stored through the API,
    /// so anonymous cluster-info reads are 403 and node client CSRs are not auto-approved until
    /// `kaas-join cluster prepare` (or an admin) created the bindings.
    Bare,
}

/// What the csrapproving/csrsigning controllers do with node client CSRs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalMode {
    /// The real approver's rules, applied `delay` after creation; a CSR that fails them stays
    /// Pending forever. Approved CSRs are then signed by the CA.
    Auto { delay: Duration },
    /// Every CSR gets condition `Denied` (reason `SandboxDenied`).
    Deny,
    /// Every CSR is approved, then the signer adds condition `Failed`.
    Fail,
    /// Nothing ever happens: CSRs stay Pending.
    Never,
}

impl Default for ApprovalMode {
    fn default() -> Self {
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        }
    }
}

/// Options for [`Sandbox::create_token_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOptions {
    /// Created already expired: it authenticates nobody (401) and signs nothing.
    pub expired: bool,
    /// `usage-bootstrap-signing`: the bootstrapsigner adds `jws-kubeconfig-<id>`.
    pub signing: bool,
    /// `usage-bootstrap-authentication`: usable as a Bearer token.
    pub auth: bool,
    /// `auth-extra-groups`.
    pub groups: Vec<String>,
    /// The token's group is bound to the nodeclient ClusterRole, so its node client CSRs are
    /// auto-approved. (In [`ControlPlaneStyle::Bare`] the stored bindings decide instead.)
    pub can_nodeclient: bool,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            expired: false,
            signing: true,
            auth: true,
            groups: vec![authz::KUBEADM_NODE_TOKEN_GROUP.to_string()],
            can_nodeclient: true,
        }
    }
}

/// One request as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The raw query string ("" when there is none).
    pub query: String,
    /// `anonymous`, `system:bootstrap:<id>`, `system:node:<name>` (any other user name from a
    /// CA-signed client certificate), or `unauthenticated` for a request answered 401.
    pub identity: String,
    /// The HTTP status; 0 when the connection was dropped by a fault.
    pub status: u16,
}

/// A bootstrap token, i.e. the Secret `kube-system/bootstrap-token-<id>`.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub id: String,
    pub secret: String,
    pub expiration: OffsetDateTime,
    pub opts: TokenOptions,
    /// The bootstrapsigner has processed it (after `jws_delay`).
    pub signed: bool,
}

impl Token {
    pub fn expired(&self) -> bool {
        self.opts.expired || self.expiration <= OffsetDateTime::now_utc()
    }
}

const MAX_RECORDS: usize = 100_000;

/// State shared by the server, the controllers and the [`Sandbox`] handle.
pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub url: String,
    pub ca: tls::Ca,
    pub store: Store,
    pub faults: Faults,
    pub kubeconfig: String,
    pub tokens: Mutex<BTreeMap<String, Token>>,
    /// Held across a re-signing's read of the tokens and its write of cluster-info, so that two
    /// at once cannot write an older set of signatures last.
    resigning: Mutex<()>,
    records: Mutex<VecDeque<RequestRecord>>,
    tasks: Mutex<JoinSet<()>>,
    runtime: tokio::runtime::Handle,
    pub approvers: Semaphore,
}

/// Compares two secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Runs a background task that [`Sandbox::shutdown`] (or dropping the sandbox) aborts.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(fut, &self.runtime);
    }

    pub fn record(&self, record: RequestRecord) {
        let mut records = lock(&self.records);
        if records.len() >= MAX_RECORDS {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// A valid bootstrap token for `Authorization: Bearer <token>`.
    pub fn authenticate_token(&self, token: &str) -> Option<authz::User> {
        let (id, secret) = token.split_once('.')?;
        let tokens = lock(&self.tokens);
        let t = tokens.get(id)?;
        let ok = constant_time_eq(t.secret.as_bytes(), secret.as_bytes());
        if !ok || t.expired() || !t.opts.auth {
            return None;
        }
        let mut groups = vec![authz::BOOTSTRAPPERS.to_string()];
        groups.extend(t.opts.groups.iter().cloned());
        Some(authz::User::authenticated(
            format!("system:bootstrap:{id}"),
            groups,
        ))
    }

    /// The authorization decision: the fixed kubeadm table, or in [`ControlPlaneStyle::Bare`]
    /// the stored RBAC objects (nodes still go through the Node authorizer's table).
    pub fn authorize(&self, user: &authz::User, attrs: &authz::Attrs) -> authz::Decision {
        if self.config.style == ControlPlaneStyle::Bare
            && user.node_name().is_none()
            && !user.in_group(authz::MASTERS)
        {
            return rbac::authorize(&self.store, user, attrs);
        }
        let nodeclient = self.nodeclient_group(user);
        authz::authorize(user, attrs, self.config.style, nodeclient.as_deref())
    }

    /// The requester's group bound to the nodeclient ClusterRole, if any.
    pub fn nodeclient_group(&self, user: &authz::User) -> Option<String> {
        if self.config.style == ControlPlaneStyle::Bare {
            return rbac::nodeclient_subject(&self.store, user);
        }
        let id = user.bootstrap_token_id()?;
        let tokens = lock(&self.tokens);
        let t = tokens.get(id)?;
        if t.expired() || !t.opts.can_nodeclient {
            return None;
        }
        Some(
            t.opts
                .groups
                .first()
                .cloned()
                .unwrap_or_else(|| authz::BOOTSTRAPPERS.to_string()),
        )
    }

    /// The bootstrapsigner and tokencleaner: makes cluster-info's `jws-kubeconfig-*` keys match
    /// the valid signing tokens, signing the `kubeconfig` cluster-info holds now. Other keys
    /// are left alone.
    pub fn resign_cluster_info(&self) {
        // Without this, two tokens created at once could each read the tokens, then write in
        // the other order: the later token's signature lost, its joins failing "no signature"
        // (seen as a rare exit 6 in tests/crash_resume.rs under CI load).
        let _one_at_a_time = lock(&self.resigning);
        let signers: Vec<(String, String)> = lock(&self.tokens)
            .values()
            .filter(|t| t.signed && t.opts.signing && !t.expired())
            .map(|t| (t.id.clone(), t.secret.clone()))
            .collect();
        self.store.update::<()>(
            Kind::ConfigMap,
            Some("kube-public"),
            "cluster-info",
            move |obj| {
                let Obj::ConfigMap(cm) = obj else {
                    return Ok(false);
                };
                let Some(kubeconfig) = cm.data.get("kubeconfig").cloned() else {
                    return Ok(false);
                };
                let mut data = cm.data.clone();
                data.retain(|k, _| !k.starts_with("jws-kubeconfig-"));
                for (id, secret) in &signers {
                    data.insert(
                        format!("jws-kubeconfig-{id}"),
                        sign_detached_jws(kubeconfig.as_bytes(), id, secret),
                    );
                }
                let changed = cm.data != data;
                cm.data = data;
                Ok(changed)
            },
        );
    }

    /// Makes `token` authenticate and (after `jws_delay`) sign cluster-info.
    pub fn register_token(self: &Arc<Self>, mut token: Token) {
        let immediate = self.config.jws_delay.is_zero();
        token.signed = immediate;
        let id = token.id.clone();
        lock(&self.tokens).insert(id.clone(), token);
        if immediate {
            self.resign_cluster_info();
        } else {
            let shared = self.clone();
            let delay = shared.config.jws_delay;
            self.spawn(async move {
                tokio::time::sleep(delay).await;
                if let Some(t) = lock(&shared.tokens).get_mut(&id) {
                    t.signed = true;
                }
                shared.resign_cluster_info();
            });
        }
    }

    /// Forgets a token (its Secret is gone): it stops authenticating and signing.
    pub fn unregister_token(&self, token_id: &str) -> bool {
        let removed = lock(&self.tokens).remove(token_id).is_some();
        self.resign_cluster_info();
        removed
    }
}

/// A token far in the future stands for "no expiration" (`expiration` key left out).
fn never() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(365 * 100)
}

/// The bootstrap token a `bootstrap.kubernetes.io/token` Secret stands for, read as the
/// bootstrap authenticator and bootstrapsigner read it: named `bootstrap-token-<token-id>`,
/// `token-id` and `token-secret` well-formed. `None` if it is not a usable token Secret.
pub(crate) fn token_from_secret(secret: &Secret) -> Option<Token> {
    use base64::Engine as _;
    if secret.type_ != "bootstrap.kubernetes.io/token" {
        return None;
    }
    let get = |k: &str| {
        secret
            .data
            .get(k)
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .and_then(|b| String::from_utf8(b).ok())
    };
    let id = get("token-id")?;
    let token_secret = get("token-secret")?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !ok(&id, 6)
        || !ok(&token_secret, 16)
        || secret.metadata.name != format!("bootstrap-token-{id}")
    {
        return None;
    }
    let expiration = match get("expiration") {
        None => never(),
        Some(e) => OffsetDateTime::parse(&e, &time::format_description::well_known::Rfc3339)
            // An unparsable expiration makes the authenticator treat the token as expired.
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    };
    let groups: Vec<String> = get("auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect();
    let can_nodeclient = groups.iter().any(|g| g == authz::KUBEADM_NODE_TOKEN_GROUP);
    Some(Token {
        id,
        secret: token_secret,
        expiration,
        opts: TokenOptions {
            expired: false,
            signing: get("usage-bootstrap-signing").as_deref() == Some("true"),
            auth: get("usage-bootstrap-authentication").as_deref() == Some("true"),
            groups,
            can_nodeclient,
        },
        signed: false,
    })
}

/// The Secret `kubeadm token create` would write for `token`.
fn token_secret(token: &Token) -> Secret {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let mut data = BTreeMap::new();
    data.insert("token-id".to_string(), b64(&token.id));
    data.insert("token-secret".to_string(), b64(&token.secret));
    data.insert(
        "expiration".to_string(),
        b64(&util::format_time(token.expiration)),
    );
    if token.opts.signing {
        data.insert("usage-bootstrap-signing".to_string(), b64("true"));
    }
    if token.opts.auth {
        data.insert("usage-bootstrap-authentication".to_string(), b64("true"));
    }
    if !token.opts.groups.is_empty() {
        data.insert(
            "auth-extra-groups".to_string(),
            b64(&token.opts.groups.join(",")),
        );
    }
    Secret {
        metadata: ObjectMeta::new(
            &format!("bootstrap-token-{}", token.id),
            Some("kube-system"),
        ),
        data,
        type_: "bootstrap.kubernetes.io/token".to_string(),
    }
}

/// A running sandbox control plane. Dropping it stops the server and its controllers.
pub struct Sandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

/// `kube-system/kubeadm-config` `data.ClusterConfiguration` as recorded
/// (`200-kubeadm-config-get-bootstrap-token.json`), `controlPlaneEndpoint` set to ours.
fn cluster_configuration(endpoint: &str) -> String {
    format!("apiServer: {{}}\napiVersion: kubeadm.k8s.io/v1beta4\ncaCertificateValidityPeriod: 87600h0m0s\ncertificateValidityPeriod: 8760h0m0s\ncertificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\ncontrolPlaneEndpoint: {endpoint}\ncontrollerManager: {{}}\ndns: {{}}\nencryptionAlgorithm: RSA-2048\netcd:\n  external:\n    caFile: \"\"\n    certFile: \"\"\n    endpoints:\n    - http://127.0.0.1:2379\n    keyFile: \"\"\nimageRepository: registry.k8s.io\nkind: ClusterConfiguration\nkubernetesVersion: v1.32.0\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\nproxy: {{}}\nscheduler: {{}}\n")
}

/// `kube-system/kubelet-config` `data.kubelet` exactly as recorded
/// (`200-kubelet-config-get-bootstrap-token.json`).
const KUBELET_CONFIGURATION: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  anonymous:\n    enabled: false\n  webhook:\n    cacheTTL: 0s\n    enabled: true\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\nauthorization:\n  mode: Webhook\n  webhook:\n    cacheAuthorizedTTL: 0s\n    cacheUnauthorizedTTL: 0s\ncgroupDriver: cgroupfs\nclusterDNS:\n- 10.96.0.10\nclusterDomain: cluster.local\ncontainerRuntimeEndpoint: \"\"\ncpuManagerReconcilePeriod: 0s\ncrashLoopBackOff: {}\nevictionPressureTransitionPeriod: 0s\nfileCheckFrequency: 0s\nhealthzBindAddress: 127.0.0.1\nhealthzPort: 10248\nhttpCheckFrequency: 0s\nimageMaximumGCAge: 0s\nimageMinimumGCAge: 0s\nkind: KubeletConfiguration\nlogging:\n  flushFrequency: 0\n  options:\n    json:\n      infoBufferSize: \"0\"\n    text:\n      infoBufferSize: \"0\"\n  verbosity: 0\nmemorySwap: {}\nnodeStatusReportFrequency: 0s\nnodeStatusUpdateFrequency: 0s\nrotateCertificates: true\nruntimeRequestTimeout: 0s\nshutdownGracePeriod: 0s\nshutdownGracePeriodCriticalPods: 0s\nstaticPodPath: /etc/kubernetes/manifests\nstreamingConnectionIdleTimeout: 0s\nsyncFrequency: 0s\nvolumeStatsAggPeriod: 0s\n";

fn configmap(namespace: &str, name: &str, key: &str, value: String) -> Obj {
    Obj::ConfigMap(ConfigMap {
        metadata: ObjectMeta::new(name, Some(namespace)),
        data: BTreeMap::from([(key.to_string(), value)]),
    })
}

/// The host part of a URL like `https://host:port/...` (brackets removed for IPv6).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_string())
}

impl Sandbox {
    /// Generates the CA, binds `config.listen`, publishes cluster-info (and, in Kubeadm style,
    /// kubeadm-config and kubelet-config) and starts serving.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let ca = tls::Ca::generate().map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let url = format!("https://{addr}");
        let mut names = vec!["127.0.0.1".to_string(), "::1".into(), "localhost".into()];
        if !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
        if let Some(host) = config.advertised_server.as_deref().and_then(url_host) {
            names.push(host);
        }
        let tls_config = Arc::new(tls::server_config(&ca, &names)?);
        let server = config
            .advertised_server
            .clone()
            .unwrap_or_else(|| url.clone());
        let kubeconfig = cluster_info_kubeconfig(&ca.pem(), &server);
        let store = Store::new(200);
        let endpoint = server
            .split_once("://")
            .map_or(server.as_str(), |(_, r)| r)
            .trim_end_matches('/');
        let mut initial = Vec::new();
        if config.style != ControlPlaneStyle::Bare {
            initial.push(configmap(
                "kube-public",
                "cluster-info",
                "kubeconfig",
                kubeconfig.clone(),
            ));
        }
        if config.style == ControlPlaneStyle::Kubeadm {
            initial.push(configmap(
                "kube-system",
                "kubeadm-config",
                "ClusterConfiguration",
                cluster_configuration(endpoint),
            ));
            initial.push(configmap(
                "kube-system",
                "kubelet-config",
                "kubelet",
                KUBELET_CONFIGURATION.to_string(),
            ));
        }
        for obj in initial {
            store
                .create(obj)
                .map_err(|()| std::io::Error::other("duplicate initial object"))?;
        }
        let shared = Arc::new(Shared {
            config,
            url,
            ca,
            store,
            faults: Faults::default(),
            kubeconfig,
            tokens: Mutex::default(),
            resigning: Mutex::default(),
            records: Mutex::default(),
            tasks: Mutex::new(JoinSet::new()),
            runtime: tokio::runtime::Handle::current(),
            approvers: Semaphore::new(approver::WORKERS),
        });
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(api::serve(shared.clone(), listener, tls_config, stopped));
        tracing::info!(url = %shared.url, "sandbox control plane listening");
        Ok(Sandbox {
            shared,
            addr,
            stop,
            server: Some(server),
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cluster CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.shared.ca.pem()
    }

    /// `sha256:<hex>` over the CA's DER SubjectPublicKeyInfo.
    pub fn ca_cert_hash(&self) -> String {
        self.shared.ca.cert_hash()
    }

    /// The kubeconfig text published in cluster-info.
    pub fn cluster_info_kubeconfig(&self) -> String {
        self.shared.kubeconfig.clone()
    }

    /// Mints a kubeadm-style bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`, 24 h, usages
    /// authentication + signing, group `system:bootstrappers:kubeadm:default-node-token`,
    /// bound to nodeclient).
    pub fn create_token(&self) -> String {
        self.create_token_with(TokenOptions::default())
    }

    pub fn create_token_with(&self, opts: TokenOptions) -> String {
        let tokens = lock(&self.shared.tokens);
        let id = loop {
            let id = util::random_token_chars(6);
            if !tokens.contains_key(&id) {
                break id;
            }
        };
        drop(tokens);
        let secret = util::random_token_chars(16);
        let now = OffsetDateTime::now_utc();
        let expiration = if opts.expired {
            now - time::Duration::hours(1)
        } else {
            now + time::Duration::hours(24)
        };
        let token = Token {
            id: id.clone(),
            secret: secret.clone(),
            expiration,
            opts,
            signed: false,
        };
        // Its Secret, as `kubeadm token create` would have written it (listed, deletable).
        let _ = self.shared.store.create(Obj::Secret(token_secret(&token)));
        self.shared.register_token(token);
        format!("{id}.{secret}")
    }

    /// Deletes a token (its Secret): it stops authenticating and its signature disappears.
    pub fn delete_token(&self, token_id: &str) -> bool {
        self.shared.store.delete(
            Kind::Secret,
            Some("kube-system"),
            &format!("bootstrap-token-{token_id}"),
        );
        self.shared.unregister_token(token_id)
    }

    /// A kubeconfig (YAML) for `kubernetes-admin` in group `system:masters`, as kubeadm's
    /// `admin.conf`: server, CA data, client certificate and key data. Authorized for
    /// everything.
    pub fn admin_kubeconfig(&self) -> String {
        self.user_kubeconfig("kubernetes-admin", &[authz::MASTERS])
    }

    /// A kubeconfig (YAML) with a client certificate from the cluster CA for `user` in
    /// `groups` (e.g. a `viewer` with no rights at all).
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> String {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let (cert, key) = self
            .shared
            .ca
            .issue_client_cert(user, groups)
            .expect("user_kubeconfig: cannot issue a client certificate");
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: sandbox\ncontexts:\n- context:\n    cluster: sandbox\n    user: {user}\n  name: {user}@sandbox\ncurrent-context: {user}@sandbox\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&self.shared.ca.pem()),
            self.shared.url,
            b64(&cert),
            b64(&key),
        )
    }

    /// An object as a GET would return it: `kind` is e.g. `ConfigMap`, `Secret`, `Role`,
    /// `ClusterRoleBinding`; `namespace` is empty for cluster-scoped kinds.
    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<serde_json::Value> {
        let kind = match kind {
            "ConfigMap" => Kind::ConfigMap,
            "Secret" => Kind::Secret,
            "Role" => Kind::Role,
            "RoleBinding" => Kind::RoleBinding,
            "ClusterRole" => Kind::ClusterRole,
            "ClusterRoleBinding" => Kind::ClusterRoleBinding,
            "Node" => Kind::Node,
            _ => return None,
        };
        let ns = (!namespace.is_empty()).then_some(namespace);
        self.shared.store.get(kind, ns, name).map(|o| o.value())
    }

    /// Adds (or replaces the status of) a Node with a `Ready` condition True/False.
    pub fn add_node(&self, name: &str, ready: bool) {
        let (status, reason, message) = if ready {
            ("True", "KubeletReady", "kubelet is posting ready status")
        } else {
            (
                "False",
                "KubeletNotReady",
                "container runtime network not ready",
            )
        };
        let now = util::now();
        let condition = serde_json::json!({
            "type": "Ready", "status": status, "lastHeartbeatTime": now,
            "lastTransitionTime": now, "reason": reason, "message": message,
        });
        let body = serde_json::json!({"metadata": {"labels": {
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
        }}});
        let mut node = api::new_node(name, &body);
        node.status["conditions"] = serde_json::json!([condition.clone()]);
        if ready {
            // The node lifecycle controller removes the not-ready taint from a Ready node.
            node.spec["taints"] = serde_json::json!([]);
            if let Some(spec) = node.spec.as_object_mut() {
                spec.remove("taints");
            }
        }
        if self.shared.store.create(Obj::Node(node)).is_err() {
            self.shared
                .store
                .update::<()>(Kind::Node, None, name, |obj| {
                    if let Obj::Node(n) = obj {
                        n.status["conditions"] = serde_json::json!([condition]);
                    }
                    Ok(true)
                });
        }
    }

    /// Deletes a CertificateSigningRequest (watchers see `DELETED`), as an admin would.
    pub fn delete_csr(&self, name: &str) -> bool {
        self.shared.store.delete(Kind::Csr, None, name).is_some()
    }

    /// The Node as a GET would return it.
    pub fn node(&self, name: &str) -> Option<serde_json::Value> {
        self.shared
            .store
            .get(Kind::Node, None, name)
            .map(|o| o.value())
    }

    /// All Events in `namespace`, as GETs would return them.
    pub fn events(&self, namespace: &str) -> Vec<serde_json::Value> {
        let sel = store::Selector {
            kind: Kind::Event,
            namespace: Some(namespace.to_string()),
            name: None,
        };
        self.shared
            .store
            .list(&sel)
            .0
            .iter()
            .map(Obj::value)
            .collect()
    }

    /// All CertificateSigningRequests, as GETs would return them.
    pub fn csrs(&self) -> Vec<serde_json::Value> {
        let sel = store::Selector {
            kind: Kind::Csr,
            namespace: None,
            name: None,
        };
        self.shared
            .store
            .list(&sel)
            .0
            .iter()
            .map(Obj::value)
            .collect()
    }

    /// Every request served so far (the last 100 000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.records).iter().cloned().collect()
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// Issues a node client certificate (digital signature, client auth; 1 year) for a PEM CSR
    /// from the CA, as the signer would. Panics on an unparsable CSR (a test helper).
    pub fn sign_client_cert(&self, csr_pem: &str) -> String {
        let der = x509_parser::pem::parse_x509_pem(csr_pem.as_bytes())
            .expect("sign_client_cert: not a PEM CSR")
            .1
            .contents;
        self.shared
            .ca
            .sign_csr(
                &der,
                &["digital signature".into(), "client auth".into()],
                time::Duration::days(365),
            )
            .expect("sign_client_cert: cannot sign")
    }

    /// Stops serving, closes every connection and stops the controllers.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        lock(&self.shared.tasks).abort_all();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
        lock(&self.shared.tasks).abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://10.0.0.1:443").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(url_host("https://[::1]:6443/").as_deref(), Some("::1"));
        assert_eq!(
            url_host("https://api.example").as_deref(),
            Some("api.example")
        );
    }
}
