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
//!
//! Here: the error, the constants and [`request_certificate`], which runs the steps in order.
//! Beside it: `key` (the node key, the CSR and its name), `create` (create the CSR or reuse
//! ours), `wait` (watch until decided, check the certificate) and `diagnosis` (why approval does
//! not come). Every request goes through [`crate::k8s::client`]; `cmd::join` calls
//! [`request_certificate`] and keeps the key on disk.

use std::time::Duration;

use tokio::time::Instant;

use crate::k8s::client::{ApiClient, ApiError};
use crate::model::exit_code::ExitCode;

mod create;
mod diagnosis;
mod key;
mod wait;

pub use diagnosis::{may_create_csr, AccessAnswer};
pub use key::{csr_name, csr_pem, node_common_name, NodeKey};

pub const SIGNER_NAME: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const USAGES: [&str; 2] = ["digital signature", "client auth"];
/// The CertificateSigningRequest collection (`/<name>` for one).
const CSR_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
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
    let created = create::create_or_reuse(client, key, node_name, &name, deadline).await?;
    let decided = wait::wait_for_certificate(client, created.csr, &name, deadline).await?;
    let not_after = wait::check_certificate(&decided.certificate_pem, key, node_name, &name)?;
    Ok(Issued {
        csr_name: name,
        certificate_pem: decided.certificate_pem,
        not_after,
        reused: created.reused,
        diagnosed: decided.diagnosed,
    })
}
