//! The local probes: whether the container runtime's socket accepts a connection, the client
//! certificate's notAfter (re-read every probe: kubelet rotates it), and disk and memory through
//! [`Host`](crate::host::Host). [`probe_loop`] runs them every `probe_interval` in its own task and
//! publishes a changed [`Probes`] on a watch channel; what blocks (file reads, `statvfs`) runs in
//! `spawn_blocking`. Also here: loading the client certificate for the API client
//! ([`read_client_certificate`]), blocking as well.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::host::files;
use crate::host::paths::{Paths, KUBELET_CLIENT_CURRENT, KUBELET_DIR};
use crate::model::node_conditions::Probes;

use super::HealthConfig;

/// Time allowed to connect to the container runtime socket.
const RUNTIME_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the CRI socket is on this machine, from `unix:///path` (or a bare absolute path).
fn runtime_socket(paths: &Paths, endpoint: &str) -> Result<PathBuf, String> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if !path.starts_with('/') {
        return Err(format!(
            "only unix socket endpoints can be checked, not {endpoint:?}"
        ));
    }
    Ok(paths.host(path))
}

async fn probe_runtime(paths: &Paths, endpoint: &str) -> Result<(), String> {
    let socket = runtime_socket(paths, endpoint)?;
    match tokio::time::timeout(
        RUNTIME_CONNECT_TIMEOUT,
        tokio::net::UnixStream::connect(&socket),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no connection within {} s",
            RUNTIME_CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// The first certificate in a PEM (kubelet's file holds the certificate and then the key).
fn first_certificate_der(pem: &[u8]) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
}

fn cert_id(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The client certificate file: notAfter, identity and lifetime.
fn probe_cert(path: &Path) -> Result<(SystemTime, String, Option<Duration>), String> {
    let pem =
        files::read_private_file(path, "kubelet client certificate").map_err(|e| e.to_string())?;
    let der = first_certificate_der(&pem).ok_or("it holds no PEM CERTIFICATE")?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("not a valid certificate: {e}"))?;
    let not_after = cert.validity().not_after.timestamp();
    let not_after = if not_after >= 0 {
        UNIX_EPOCH + Duration::from_secs(not_after as u64)
    } else {
        UNIX_EPOCH
    };
    let validity = cert.validity();
    let lifetime = u64::try_from(validity.not_after.timestamp() - validity.not_before.timestamp())
        .ok()
        .map(Duration::from_secs);
    Ok((not_after, cert_id(&der), lifetime))
}

/// Runs every local probe once (the clock is measured elsewhere).
pub(super) async fn probe_all(cfg: &HealthConfig) -> Probes {
    let runtime = probe_runtime(&cfg.paths, &cfg.cri_endpoint).await;
    let cert_path = cfg.paths.host(KUBELET_CLIENT_CURRENT);
    let kubelet_dir = cfg.paths.host(KUBELET_DIR);
    let host = cfg.host.clone();
    let blocking = tokio::task::spawn_blocking(move || {
        (
            probe_cert(&cert_path),
            host.disk_space(&kubelet_dir).map_err(|e| e.to_string()),
            host.memory().map_err(|e| e.to_string()),
        )
    })
    .await;
    let (cert, disk, memory) = match blocking {
        Ok(r) => r,
        Err(e) => {
            let err = format!("the probe failed: {e}");
            (Err(err.clone()), Err(err.clone()), Err(err))
        }
    };
    cfg.metrics
        .client_certificate_expires(cert.as_ref().ok().map(|(not_after, _, _)| *not_after));
    let (client_cert, client_cert_id, client_cert_lifetime) = match cert {
        Ok((not_after, id, lifetime)) => (Ok(not_after), Some(id), lifetime),
        Err(e) => (Err(e), None, None),
    };
    Probes {
        runtime_endpoint: cfg.cri_endpoint.clone(),
        runtime: Some(runtime),
        client_cert_path: KUBELET_CLIENT_CURRENT.to_string(),
        kubelet_dir: KUBELET_DIR.to_string(),
        client_cert: Some(client_cert),
        client_cert_id,
        client_cert_lifetime,
        clock_skew: None,
        disk: Some(disk),
        memory: Some(memory),
        limits: cfg.limits(),
    }
}

pub(super) async fn probe_loop(cfg: HealthConfig, tx: watch::Sender<Probes>) {
    let mut tick = tokio::time::interval(cfg.probe_interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; the caller already probed once
    loop {
        tick.tick().await;
        let probes = probe_all(&cfg).await;
        if tx.is_closed() {
            return;
        }
        tx.send_if_modified(|p| {
            if *p == probes {
                false
            } else {
                *p = probes;
                true
            }
        });
    }
}

/// kubelet's client certificate and key (PEM) and the certificate's identity ([`cert_id`]),
/// as the API client is built from them. No `Debug`, and zeroed when dropped: the PEM holds the
/// private key.
pub(super) struct ClientCertificate {
    pub(super) pem: Zeroizing<Vec<u8>>,
    pub(super) id: String,
}

/// Reads kubelet's client certificate file for the API client (blocking: call it from
/// `spawn_blocking`). The error is the reporter's published `lastError`.
pub(super) fn read_client_certificate(path: &Path) -> Result<ClientCertificate, String> {
    let pem = files::read_private_file(path, "kubelet client certificate")
        .map_err(|e| format!("cannot load the node's client certificate: {e}"))?;
    let Some(der) = first_certificate_der(&pem) else {
        return Err(format!(
            "cannot load the node's client certificate: {} holds no PEM CERTIFICATE",
            path.display()
        ));
    };
    Ok(ClientCertificate {
        id: cert_id(&der),
        pem,
    })
}
