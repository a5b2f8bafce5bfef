//! TLS bootstrap done by kaas-join itself: the node's key, its CertificateSigningRequest, and the
//! wait for the signed certificate, as kubelet's `pkg/kubelet/certificate/bootstrap` does it.
//!
//! - Key: ECDSA P-256, generated on the node and kept in the state directory (0600) until the
//!   certificate arrives, so a re-run after a crash reuses it.
//! - CSR: subject `O=system:nodes, CN=system:node:<name>`, no SANs, usages digital signature and
//!   client auth, signer `kubernetes.io/kube-apiserver-client-kubelet`: anything else and the
//!   csrapproving controller silently skips it.
//! - Name: kubelet's deterministic `node-csr-<digest>` over the public key, subject and usages. The
//!   same key always makes the same name, so a re-run gets 409 AlreadyExists, reads the existing
//!   CSR and reuses it when its public key is ours: never a second pending CSR.
//! - Wait: watch from the create's resourceVersion (kubelet lists first; the create already
//!   answered with the object, so that list would only cost a request); resume from the last
//!   resourceVersion when the watch ends, re-read the CSR when the server says 410 Expired.
//! - Still pending after [`DIAGNOSE_AFTER`]: one SelfSubjectAccessReview asks whether the token may
//!   create `certificatesigningrequests/nodeclient`, so the user learns early why nothing happens.

use std::time::Duration;

use tokio::time::Instant;

use base64::Engine as _;
use serde_json::{json, Value};
use x509_parser::prelude::FromDer as _;
use zeroize::Zeroizing;

use crate::k8s::client::{ApiClient, ApiError};
use crate::model::backoff::Backoff;
use crate::model::exit_code::ExitCode;

pub const SIGNER_NAME: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const USAGES: [&str; 2] = ["digital signature", "client auth"];
const CSR_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
const SSAR_PATH: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
/// On a real control plane approval takes ~0.11 s; past this, find out why it has not come.
pub const DIAGNOSE_AFTER: Duration = Duration::from_secs(5);
/// The ClusterRole that auto-approval needs bound to the token's group.
pub const NODECLIENT_ROLE: &str =
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot make the node key or CSR: {0}")]
    Crypto(String),
    #[error("the node key at {path} is not usable ({detail}); remove it and run again")]
    BadKey { path: String, detail: String },
    #[error("creating the CertificateSigningRequest {name} failed: {source}")]
    Create { name: String, source: ApiError },
    #[error("CertificateSigningRequest {name} exists but was made for another key; delete it (`kubectl delete csr {name}`) and run again")]
    Foreign { name: String },
    #[error("CertificateSigningRequest {name} was denied ({reason}: {message}); an administrator or policy refused it")]
    Denied {
        name: String,
        reason: String,
        message: String,
    },
    #[error("signing CertificateSigningRequest {name} failed ({reason}: {message}); check kube-controller-manager's --cluster-signing-cert-file/--cluster-signing-key-file")]
    Failed {
        name: String,
        reason: String,
        message: String,
    },
    #[error("CertificateSigningRequest {name} was not approved within {waited_s}s. {diagnosis}")]
    NotApproved {
        name: String,
        waited_s: u64,
        diagnosis: String,
    },
    #[error("the signed certificate for {name} is not usable: {detail}")]
    BadCertificate { name: String, detail: String },
    #[error("waiting for CertificateSigningRequest {name} failed: {source}")]
    Wait { name: String, source: ApiError },
}

impl BootstrapError {
    /// The documented exit code.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            BootstrapError::NotApproved { .. } => ExitCode::NotApproved,
            BootstrapError::Create { source, .. } | BootstrapError::Wait { source, .. } => {
                match source.status_code() {
                    _ if source.is_server_failure() => ExitCode::Unreachable,
                    Some(401) => ExitCode::TokenRejected,
                    Some(_) => ExitCode::CsrRefused,
                    None => source.exit_code(),
                }
            }
            BootstrapError::BadKey { .. } => ExitCode::Filesystem,
            BootstrapError::Crypto(_) => ExitCode::Internal,
            BootstrapError::Foreign { .. }
            | BootstrapError::Denied { .. }
            | BootstrapError::Failed { .. }
            | BootstrapError::BadCertificate { .. } => ExitCode::CsrRefused,
        }
    }
}

/// The node's private key (PKCS#8 PEM), zeroized on drop.
///
/// Only the zeroized PEM is kept. rcgen's `KeyPair` (and ring's key inside it) hold copies of
/// the private key that nothing wipes when they are dropped, so one exists only while a CSR is
/// signed ([`csr_pem`]), not for the whole wait for approval. Those short-lived copies are not
/// zeroized: neither library offers a way, and unsafe code is denied.
pub struct NodeKey {
    pem: Zeroizing<String>,
    /// DER SubjectPublicKeyInfo (not secret).
    public_key_der: Vec<u8>,
}

/// Everything secret in a [`NodeKey`] is in a [`Zeroizing`] buffer.
impl zeroize::ZeroizeOnDrop for NodeKey {}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(<redacted>)")
    }
}

impl NodeKey {
    pub fn generate() -> Result<NodeKey, BootstrapError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| BootstrapError::Crypto(e.to_string()))?;
        let pem = Zeroizing::new(pair.serialize_pem());
        Ok(NodeKey {
            public_key_der: rcgen::PublicKeyData::subject_public_key_info(&pair),
            pem,
        })
    }

    pub fn from_pem(pem: &str, path: &str) -> Result<NodeKey, BootstrapError> {
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| BootstrapError::BadKey {
            path: path.into(),
            detail: e.to_string(),
        })?;
        if pair.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(BootstrapError::BadKey {
                path: path.into(),
                detail: "not an ECDSA P-256 key".into(),
            });
        }
        Ok(NodeKey {
            public_key_der: rcgen::PublicKeyData::subject_public_key_info(&pair),
            pem: Zeroizing::new(pem.to_string()),
        })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.public_key_der.clone()
    }

    /// The key as rcgen needs it for signing; drop it as soon as the signature is made.
    fn signing_pair(&self) -> Result<rcgen::KeyPair, BootstrapError> {
        rcgen::KeyPair::from_pem(&self.pem).map_err(|e| BootstrapError::Crypto(e.to_string()))
    }
}

pub fn node_common_name(node_name: &str) -> String {
    format!("system:node:{node_name}")
}

/// kubelet's `digestedName`: `node-csr-` + base64url(SHA-512/256 over the base64url of the
/// public key, CN, organizations and usages, each followed by `|`).
pub fn csr_name(public_key_der: &[u8], node_name: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA512_256);
    let mut write = |data: &[u8]| {
        ctx.update(b64.encode(data).as_bytes());
        ctx.update(b"|");
    };
    write(public_key_der);
    write(node_common_name(node_name).as_bytes());
    write(b"system:nodes");
    for usage in USAGES {
        write(usage.as_bytes());
    }
    format!("node-csr-{}", b64.encode(ctx.finish().as_ref()))
}

/// The PEM CSR kubelet would make for this node and key.
pub fn csr_pem(key: &NodeKey, node_name: &str) -> Result<String, BootstrapError> {
    let crypto = |e: rcgen::Error| BootstrapError::Crypto(e.to_string());
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(crypto)?;
    let mut dn = rcgen::DistinguishedName::new();
    // Go's pkix.Name puts O before CN; so does the recorded kubelet CSR.
    dn.push(rcgen::DnType::OrganizationName, "system:nodes");
    dn.push(rcgen::DnType::CommonName, node_common_name(node_name));
    params.distinguished_name = dn;
    params
        .serialize_request(&key.signing_pair()?)
        .map_err(crypto)?
        .pem()
        .map_err(crypto)
}

/// The certificate we were issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub csr_name: String,
    pub certificate_pem: String,
    pub not_after: String,
    /// An existing CSR of ours was found (a re-run after a crash).
    pub reused: bool,
    /// Whether the approval diagnosis (an extra request) was needed.
    pub diagnosed: bool,
}

/// Creates (or finds) our CSR and waits for its certificate until `deadline`.
pub async fn request_certificate(
    client: &ApiClient,
    key: &NodeKey,
    node_name: &str,
    deadline: Instant,
) -> Result<Issued, BootstrapError> {
    let name = csr_name(&key.public_key_der(), node_name);
    let request = csr_pem(key, node_name)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": b64.encode(request.as_bytes()),
            "signerName": SIGNER_NAME,
            "usages": USAGES,
        },
    });

    let mut reused = false;
    let mut backoff = Backoff::discovery(deadline);
    let mut last_failure: Option<ApiError> = None;
    let mut csr: Value = loop {
        // A stalled answer must not outlive the deadline; then the last real failure says most.
        let created =
            match tokio::time::timeout_at(deadline, client.post_json::<_, Value>(CSR_PATH, &body))
                .await
            {
                Ok(created) => created,
                Err(_) => Err(last_failure.take().unwrap_or_else(|| {
                    ApiError::deadline_passed(&format!("{}{CSR_PATH}", client.base()))
                })),
            };
        match created {
            Ok(created) => break created,
            Err(ApiError::Status { code: 409, .. }) => {
                let existing: Value = client
                    .get_json(&format!("{CSR_PATH}/{name}"))
                    .await
                    .map_err(|source| BootstrapError::Wait {
                        name: name.clone(),
                        source,
                    })?;
                if !is_ours(&existing, &key.public_key_der()) {
                    return Err(BootstrapError::Foreign { name });
                }
                tracing::info!(csr = %name, "found our CertificateSigningRequest from an earlier run; reusing it");
                reused = true;
                break existing;
            }
            Err(err) if err.is_transient() && err.status_code() != Some(403) => {
                tracing::warn!(csr = %name, error = %err, "creating the CertificateSigningRequest failed; retrying");
                if !backoff.wait().await {
                    return Err(BootstrapError::Create { name, source: err });
                }
                last_failure = Some(err);
            }
            Err(source) => return Err(BootstrapError::Create { name, source }),
        }
    };

    let started = Instant::now();
    let mut diagnosis: Option<String> = None;
    let mut backoff = Backoff::discovery(deadline);
    loop {
        if let Some(cert) = outcome(&csr, &name)? {
            let not_after = check_certificate(&cert, key, node_name, &name)?;
            return Ok(Issued {
                csr_name: name,
                certificate_pem: cert,
                not_after,
                reused,
                diagnosed: diagnosis.is_some(),
            });
        }
        let rv = resource_version(&csr);
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(not_approved(client, &name, started, diagnosis).await);
        }
        let path = format!(
            "{CSR_PATH}?fieldSelector=metadata.name%3D{name}&watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds={}",
            remaining.as_secs().clamp(1, 300)
        );
        let watch_started = Instant::now();
        let reread = match watch_until_decided(
            client,
            &path,
            &mut csr,
            &name,
            deadline,
            started,
            &mut diagnosis,
        )
        .await
        {
            Ok(WatchOutcome::Decided) => false,
            // A watch ends normally at its timeout: resume at once from the last version.
            Ok(WatchOutcome::Ended) if watch_started.elapsed() >= Duration::from_secs(1) => false,
            // Ended at once, without news: something between us and the server cuts watches, so
            // read the CSR itself rather than trust the next watch. So do 410 Expired, a broken
            // stream and a failed connect.
            Ok(WatchOutcome::Ended) | Ok(WatchOutcome::Relist) | Err(_) => {
                if !backoff.wait().await {
                    return Err(not_approved(client, &name, started, diagnosis).await);
                }
                true
            }
            Ok(WatchOutcome::Deadline) => {
                return Err(not_approved(client, &name, started, diagnosis).await)
            }
        };
        if reread {
            let read = tokio::time::timeout_at(
                deadline,
                client.get_json::<Value>(&format!("{CSR_PATH}/{name}")),
            )
            .await
            .unwrap_or_else(|_| Err(ApiError::deadline_passed(&format!("{CSR_PATH}/{name}"))));
            match read {
                Ok(obj) => csr = obj,
                Err(ApiError::Status { code: 404, .. }) => {
                    return Err(BootstrapError::Wait {
                        name: name.clone(),
                        source: ApiError::Status {
                            url: format!("{}{CSR_PATH}/{name}", client.base()),
                            code: 404,
                            reason: "NotFound".into(),
                            message: DELETED_WHILE_WAITING.into(),
                            retry_after: None,
                        },
                    })
                }
                Err(err) if err.is_transient() => {
                    tracing::warn!(csr = %name, error = %err, "re-reading the CertificateSigningRequest failed; retrying")
                }
                Err(source) => return Err(BootstrapError::Wait { name, source }),
            }
        }
    }
}

enum WatchOutcome {
    /// `csr` now holds an issued certificate or a Denied/Failed condition.
    Decided,
    Ended,
    Relist,
    Deadline,
}

/// Follows one watch stream, keeping `csr` current, until the CSR is decided or the stream ends.
async fn watch_until_decided(
    client: &ApiClient,
    path: &str,
    csr: &mut Value,
    name: &str,
    deadline: Instant,
    started: Instant,
    diagnosis: &mut Option<String>,
) -> Result<WatchOutcome, ApiError> {
    // The answer to the watch request itself may stall too: bound it by the deadline.
    let mut stream = match tokio::time::timeout_at(deadline, client.watch(path)).await {
        Ok(stream) => stream?,
        Err(_) => return Ok(WatchOutcome::Deadline),
    };
    loop {
        let diagnose_at = started + DIAGNOSE_AFTER;
        tokio::select! {
            event = stream.next_event() => {
                let Some(event) = event? else { return Ok(WatchOutcome::Ended) };
                match event.kind.as_str() {
                    "ADDED" | "MODIFIED" => {
                        *csr = event.object;
                        if is_decided(csr) {
                            return Ok(WatchOutcome::Decided);
                        }
                    }
                    "BOOKMARK" => {
                        let rv = resource_version(&event.object);
                        set_resource_version(csr, &rv);
                    }
                    "DELETED" => return Ok(WatchOutcome::Relist),
                    "ERROR" => {
                        let status: crate::k8s::client::Status = serde_json::from_value(event.object)
                            .map_err(|e| ApiError::Decode { url: path.into(), detail: e.to_string() })?;
                        tracing::debug!(csr = name, code = status.code, reason = %status.reason, "watch error event");
                        if let Some(wait) = status.details.as_ref().and_then(|d| d.retry_after_seconds) {
                            tokio::time::sleep(Duration::from_secs(wait.min(5))).await;
                        }
                        return Ok(WatchOutcome::Relist);
                    }
                    other => tracing::debug!(csr = name, kind = other, "ignoring watch event"),
                }
            }
            _ = tokio::time::sleep_until(diagnose_at), if diagnosis.is_none() => {
                let text = diagnose(client).await;
                tracing::warn!(csr = name, "no approval after {}s: {text}", DIAGNOSE_AFTER.as_secs());
                *diagnosis = Some(text);
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(WatchOutcome::Deadline),
        }
    }
}

fn is_decided(csr: &Value) -> bool {
    let issued = csr["status"]["certificate"]
        .as_str()
        .is_some_and(|c| !c.is_empty());
    let refused = csr["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| matches!(c["type"].as_str(), Some("Denied" | "Failed")));
    issued || refused
}

/// `Some(certificate PEM)` when issued; an error when denied or failed; `None` while pending.
fn outcome(csr: &Value, name: &str) -> Result<Option<String>, BootstrapError> {
    let status = &csr["status"];
    for cond in status["conditions"].as_array().into_iter().flatten() {
        let text = |k: &str| cond[k].as_str().unwrap_or("").to_string();
        if cond["status"].as_str().unwrap_or("True") != "True" {
            continue;
        }
        match cond["type"].as_str() {
            Some("Denied") => {
                return Err(BootstrapError::Denied {
                    name: name.into(),
                    reason: text("reason"),
                    message: text("message"),
                })
            }
            Some("Failed") => {
                return Err(BootstrapError::Failed {
                    name: name.into(),
                    reason: text("reason"),
                    message: text("message"),
                })
            }
            _ => {}
        }
    }
    match status["certificate"].as_str() {
        Some(b64) if !b64.is_empty() => {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| BootstrapError::BadCertificate {
                    name: name.into(),
                    detail: "status.certificate is not base64 PEM".into(),
                })?;
            Ok(Some(pem))
        }
        _ => Ok(None),
    }
}

/// Checks the issued certificate is for our key and node; returns its expiry (RFC 3339).
fn check_certificate(
    pem: &str,
    key: &NodeKey,
    node_name: &str,
    name: &str,
) -> Result<String, BootstrapError> {
    let bad = |detail: String| BootstrapError::BadCertificate {
        name: name.into(),
        detail,
    };
    let ders =
        crate::model::pin::certificates_from_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&ders[0])
        .map_err(|e| bad(format!("cannot parse it: {e}")))?;
    if cert.public_key().raw != key.public_key_der().as_slice() {
        return Err(bad("it is not for this node's key".into()));
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("");
    if cn != node_common_name(node_name) {
        return Err(bad(format!(
            "its subject is {cn:?}, not system:node:{node_name}"
        )));
    }
    let not_after = cert.validity().not_after.to_datetime();
    not_after
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| bad(e.to_string()))
}

fn is_ours(csr: &Value, public_key_der: &[u8]) -> bool {
    let Some(b64) = csr["spec"]["request"].as_str() else {
        return false;
    };
    let Ok(pem) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return false;
    };
    let Ok((_, block)) = x509_parser::pem::parse_x509_pem(&pem) else {
        return false;
    };
    match x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents) {
        Ok((_, req)) => req.certification_request_info.subject_pki.raw == public_key_der,
        Err(_) => false,
    }
}

fn resource_version(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string()
}

fn set_resource_version(obj: &mut Value, rv: &str) {
    obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
}

/// The answer of a SelfSubjectAccessReview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessAnswer {
    pub allowed: bool,
    /// The authorizer's reason (RBAC names the binding that allowed it); may be empty.
    pub reason: String,
}

/// Asks the API server whether the client's identity may `create` CertificateSigningRequests
/// (`subresource` "") or their `subresource` (`nodeclient`: what the csrapproving controller
/// checks before approving a node client CSR). Every authenticated identity may ask this about
/// itself (ClusterRole system:basic-user).
pub async fn may_create_csr(
    client: &ApiClient,
    subresource: &str,
) -> Result<AccessAnswer, ApiError> {
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {
            "verb": "create",
            "group": "certificates.k8s.io",
            "resource": "certificatesigningrequests",
            "subresource": subresource,
        }},
    });
    let answer = client.post_json::<_, Value>(SSAR_PATH, &review).await?;
    Ok(AccessAnswer {
        allowed: answer["status"]["allowed"].as_bool() == Some(true),
        reason: answer["status"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    })
}

/// Asks the API server whether this token may create `certificatesigningrequests/nodeclient`,
/// which is what the csrapproving controller checks before approving.
async fn diagnose(client: &ApiClient) -> String {
    match may_create_csr(client, "nodeclient").await {
        Ok(answer) if answer.allowed => format!(
            "The token may create certificatesigningrequests/nodeclient, so auto-approval should come: check that kube-controller-manager runs with the csrapproving and csrsigning controllers (--controllers=*,bootstrapsigner,tokencleaner) and is healthy. {SKIP_RULES}"
        ),
        Ok(_) => format!(
            "The token may NOT create certificatesigningrequests/nodeclient, so the csrapproving controller skips this request: bind ClusterRole {NODECLIENT_ROLE} to the token's group (kubeadm binds it to system:bootstrappers:kubeadm:default-node-token; `kaas-join cluster prepare` does it too), or approve by hand: kubectl certificate approve <csr>."
        ),
        Err(err) => format!(
            "Could not ask whether the token may create certificatesigningrequests/nodeclient ({err}). Auto-approval needs ClusterRole {NODECLIENT_ROLE} bound to the token's group. {SKIP_RULES}"
        ),
    }
}

const DELETED_WHILE_WAITING: &str =
    "the CertificateSigningRequest was deleted while we waited; run again";

const SKIP_RULES: &str = "The approver silently skips (leaves Pending) any request whose usages, organization or SANs differ from a node client request; an administrator can approve it by hand: kubectl certificate approve <csr>.";

async fn not_approved(
    client: &ApiClient,
    name: &str,
    started: Instant,
    diagnosis: Option<String>,
) -> BootstrapError {
    let diagnosis = match diagnosis {
        Some(d) => d,
        None => diagnose(client).await,
    };
    BootstrapError::NotApproved {
        name: name.into(),
        waited_s: started.elapsed().as_secs(),
        diagnosis: diagnosis.replace("<csr>", name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_name_is_deterministic_per_key_and_node() {
        let key = NodeKey::generate().unwrap();
        let a = csr_name(&key.public_key_der(), "n1");
        assert_eq!(a, csr_name(&key.public_key_der(), "n1"));
        assert_ne!(a, csr_name(&key.public_key_der(), "n2"));
        let other = NodeKey::generate().unwrap();
        assert_ne!(a, csr_name(&other.public_key_der(), "n1"));
        assert!(a.starts_with("node-csr-") && a.len() == "node-csr-".len() + 43);
    }

    #[test]
    fn csr_has_kubelets_subject_and_no_sans() {
        let key = NodeKey::generate().unwrap();
        let pem = csr_pem(&key, "worker-1").unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
                .unwrap();
        assert_eq!(
            req.certification_request_info.subject.to_string(),
            "O=system:nodes, CN=system:node:worker-1"
        );
        assert!(req
            .requested_extensions()
            .is_none_or(|mut e| e.next().is_none()));
        assert_eq!(
            req.certification_request_info.subject_pki.raw,
            key.public_key_der().as_slice()
        );
        let csr =
            json!({"spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem)}});
        assert!(is_ours(&csr, &key.public_key_der()));
        assert!(!is_ours(
            &csr,
            &NodeKey::generate().unwrap().public_key_der()
        ));
    }

    #[test]
    fn key_round_trips_and_never_prints() {
        let key = NodeKey::generate().unwrap();
        let again = NodeKey::from_pem(key.pem(), "k").unwrap();
        assert_eq!(key.public_key_der(), again.public_key_der());
        assert_eq!(format!("{key:?}"), "NodeKey(<redacted>)");
        assert!(NodeKey::from_pem("garbage", "/k").is_err());
    }

    /// The private key is only ever held in zeroized memory (tests/secret_hygiene.rs checks
    /// that it reaches no output). A compile-time check: changing the field's type fails here.
    #[test]
    fn key_material_is_zeroized_on_drop() {
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        let key = NodeKey::generate().unwrap();
        zeroized_on_drop(&key);
        zeroized_on_drop(&key.pem);
        let NodeKey {
            pem,
            public_key_der: _,
        } = &key;
        assert!(pem.contains("PRIVATE KEY"));
        assert!(!format!("{key:?}").contains(pem.lines().nth(1).unwrap()));
    }

    #[test]
    fn conditions_decide_the_outcome() {
        let denied = json!({"status": {"conditions": [{"type": "Denied", "status": "True", "reason": "R", "message": "M"}]}});
        assert!(matches!(
            outcome(&denied, "x"),
            Err(BootstrapError::Denied { .. })
        ));
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "R", "message": "M"}]}});
        assert!(matches!(
            outcome(&failed, "x"),
            Err(BootstrapError::Failed { .. })
        ));
        let pending = json!({"status": {}});
        assert!(outcome(&pending, "x").unwrap().is_none());
        let issued = json!({"status": {"certificate": base64::engine::general_purpose::STANDARD.encode("PEM")}});
        assert_eq!(outcome(&issued, "x").unwrap().as_deref(), Some("PEM"));
    }
}
