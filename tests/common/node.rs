//! A node for `health::run_reporter` driven through the library against the sandbox (no
//! binary): kubelet's client certificate in a temporary root, a fake container runtime socket, the
//! reporter with its channels, the kubelet states the tests drive it with, and what they read
//! back from the sandbox. Used by tests/health.rs and tests/fault_matrix_run.rs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kaas_join::host::files;
use kaas_join::host::paths::{Paths, KUBELET_CLIENT_CURRENT, KUBELET_PKI_DIR};
use kaas_join::k8s::client::RequestCounter;
use kaas_join::model::kubelet_process::{ExitInfo, Healthz, KubeletPhase, KubeletState};
use kaas_join::node::health::{self, HealthConfig, ReportedStatus};
use kaas_sandbox::Sandbox;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The container runtime endpoint the node's reporter probes (see [`runtime_socket`]).
pub const CRI: &str = "unix:///run/containerd/containerd.sock";

/// A new P-256 key and certificate parameters for `node`'s user (`system:node:<node>`, group
/// `system:nodes`).
pub fn node_key_and_params(node: &str) -> (rcgen::KeyPair, rcgen::CertificateParams) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "system:nodes");
    dn.push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params.distinguished_name = dn;
    (key, params)
}

/// A node client certificate + key PEM signed by the sandbox CA (as the CSR signer would).
pub fn node_identity(sb: &Sandbox, node: &str) -> String {
    let (key, params) = node_key_and_params(node);
    let csr = params.serialize_request(&key).unwrap();
    let cert = sb.sign_client_cert(&csr.pem().unwrap());
    format!("{cert}{}", key.serialize_pem())
}

/// Writes `pem` as kubelet does on rotation: a new dated file (its seconds are `n`), then the
/// symlink repointed.
pub fn install_identity(paths: &Paths, pem: &str, n: u32) {
    let dir = paths.host(KUBELET_PKI_DIR);
    files::ensure_dir(&dir, 0o755).unwrap();
    let name = format!("kubelet-client-2026-11-27-07-30-{n:02}.pem");
    files::write_atomic(&dir.join(&name), pem.as_bytes(), 0o600).unwrap();
    files::symlink_atomic(Path::new(&name), &paths.host(KUBELET_CLIENT_CURRENT)).unwrap();
}

/// A fake container runtime socket at [`CRI`] that accepts (and drops) connections.
pub fn runtime_socket(paths: &Paths) -> JoinHandle<()> {
    let path: PathBuf = paths.host("/run/containerd/containerd.sock");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            drop(conn);
        }
    })
}

/// A temporary root; its runtime socket (if any) stops when dropped.
pub struct Node {
    _dir: tempfile::TempDir,
    pub paths: Paths,
    runtime: Option<JoinHandle<()>>,
}

impl Node {
    /// An empty root: no certificate, no runtime socket.
    pub fn bare() -> Node {
        let dir = tempfile::tempdir().unwrap();
        Node {
            paths: Paths::new(dir.path()),
            _dir: dir,
            runtime: None,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(r) = self.runtime.take() {
            r.abort();
        }
    }
}

/// A temporary root with `node`'s client certificate signed by `sb` and, if `with_runtime`, a
/// container runtime socket.
pub fn node_root(sb: &Sandbox, node: &str, with_runtime: bool) -> Node {
    let mut root = Node::bare();
    install_identity(&root.paths, &node_identity(sb, node), 0);
    root.runtime = with_runtime.then(|| runtime_socket(&root.paths));
    root
}

/// The reporter's configuration for tests: a 1 s heartbeat, 100 ms probes and event interval,
/// and no disk or memory threshold (whatever the test machine's disk and memory look like, they
/// are not the subject here).
pub fn health_config(sb: &Sandbox, node_name: &str, server: String, node: &Node) -> HealthConfig {
    let mut cfg = HealthConfig::new(
        node_name,
        server,
        sb.ca_pem().into_bytes(),
        node.paths.clone(),
        CRI,
    );
    cfg.heartbeat = Duration::from_secs(1);
    cfg.probe_interval = Duration::from_millis(100);
    cfg.event_min_interval = Duration::from_millis(100);
    cfg.disk_free_min_percent = 0.0;
    cfg.memory_available_min_percent = 0.0;
    cfg
}

/// `health::run_reporter` running in a task, with the kubelet state it is fed, what it publishes
/// and its request counter.
pub struct Reporter {
    pub kubelet: watch::Sender<KubeletState>,
    status: watch::Receiver<ReportedStatus>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    pub requests: Arc<RequestCounter>,
}

impl Reporter {
    pub fn start(cfg: HealthConfig, state: KubeletState) -> Reporter {
        let requests = cfg.requests.clone();
        let (kubelet, kubelet_rx) = watch::channel(state);
        let (status_tx, status) = watch::channel(ReportedStatus::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(health::run_reporter(
            cfg,
            kubelet_rx,
            status_tx,
            shutdown_rx,
        ));
        Reporter {
            kubelet,
            status,
            shutdown,
            task,
            requests,
        }
    }

    /// What the reporter publishes now.
    pub fn status(&self) -> ReportedStatus {
        self.status.borrow().clone()
    }

    /// Stops the reporter: `Err` when it did not stop within 2 s or had panicked.
    pub async fn try_stop(self) -> Result<(), String> {
        self.shutdown.send_replace(true);
        match tokio::time::timeout(Duration::from_secs(2), self.task).await {
            Err(_) => Err("the reporter did not stop within 2 s of shutdown".into()),
            Ok(Err(e)) => Err(format!("the reporter panicked: {e}")),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Stops the reporter; panics when it did not stop within 2 s or had panicked.
    pub async fn stop(self) {
        if let Err(e) = self.try_stop().await {
            panic!("{e}");
        }
    }
}

/// kubelet running and healthy.
pub fn running() -> KubeletState {
    KubeletState {
        phase: KubeletPhase::Running,
        pid: Some(4242),
        started_at: Some(SystemTime::now()),
        healthz: Healthz {
            ok: Some(true),
            ..Healthz::default()
        },
        ..KubeletState::default()
    }
}

/// kubelet exited with code 1 after `restarts` restarts, its last lines `lines`.
pub fn exited(restarts: u32, lines: &[&str]) -> KubeletState {
    KubeletState {
        phase: KubeletPhase::BackingOff,
        restarts,
        last_exit: Some(ExitInfo {
            code: Some(1),
            signal: None,
            description: "exited with code 1".into(),
            at: SystemTime::now(),
            last_lines: lines.iter().map(|s| s.to_string()).collect(),
        }),
        ..KubeletState::default()
    }
}

/// Polls `f` every 20 ms until it returns `Some`, or `None` after `timeout` (see
/// [`super::wait::Wait`]).
pub async fn poll<T>(timeout: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    super::wait::Wait::new("a value", timeout)
        .poll(f)
        .await
        .ok()
}

/// [`super::wait_for`] with the arguments in this order.
pub async fn wait_for<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    super::wait_for(what, timeout, f).await
}

/// The Node `node`'s condition `type_` in the sandbox.
pub fn node_condition(sb: &Sandbox, node: &str, type_: &str) -> Option<Value> {
    sb.node(node)?["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// The events in `default` with `reason`.
pub fn events(sb: &Sandbox, reason: &str) -> Vec<Value> {
    sb.events("default")
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}
