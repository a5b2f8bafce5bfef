//! Creating our CertificateSigningRequest, or finding the one an earlier run created.
//!
//! The CSR's name is deterministic per key ([`super::csr_name`]), so a re-run after a crash gets
//! 409 AlreadyExists: the existing CSR is read and reused when it was made for our key, refused
//! ([`BootstrapError::Foreign`]) when not. Failures that may heal are retried with
//! [`Backoff::discovery`] until the deadline; 403 is not (the token may not create CSRs).

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::k8s::client::{ApiClient, ApiError};
use crate::model::backoff::Backoff;

use super::key::{csr_pem, is_ours, NodeKey};
use super::{BootstrapError, CSR_PATH, SIGNER_NAME, USAGES};

/// Our CSR as the server holds it.
pub(super) struct Created {
    pub csr: Value,
    /// It was there from an earlier run.
    pub reused: bool,
}

/// Creates the CSR `name` for `key`, or reuses ours when it exists; retries what may heal.
pub(super) async fn create_or_reuse(
    client: &ApiClient,
    key: &NodeKey,
    node_name: &str,
    name: &str,
    deadline: Instant,
) -> Result<Created, BootstrapError> {
    let body = csr_object(name, &csr_pem(key, node_name)?);
    let mut backoff = Backoff::discovery(deadline);
    let mut last_failure: Option<ApiError> = None;
    loop {
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
            Ok(csr) => return Ok(Created { csr, reused: false }),
            Err(ApiError::Status { code: 409, .. }) => {
                let csr = existing_of_ours(client, key, name).await?;
                return Ok(Created { csr, reused: true });
            }
            Err(err) if err.is_transient() && err.status_code() != Some(403) => {
                tracing::warn!(csr = %name, error = %err, "creating the CertificateSigningRequest failed; retrying");
                if !backoff.wait().await {
                    return Err(create_failed(name, err));
                }
                last_failure = Some(err);
            }
            Err(source) => return Err(create_failed(name, source)),
        }
    }
}

/// The CertificateSigningRequest object kubelet posts for `request_pem`.
fn csr_object(name: &str, request_pem: &str) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": b64.encode(request_pem.as_bytes()),
            "signerName": SIGNER_NAME,
            "usages": USAGES,
        },
    })
}

/// The CSR `name` that already exists, when it was made for `key` (an earlier run's).
async fn existing_of_ours(
    client: &ApiClient,
    key: &NodeKey,
    name: &str,
) -> Result<Value, BootstrapError> {
    let existing: Value = client
        .get_json(&format!("{CSR_PATH}/{name}"))
        .await
        .map_err(|source| BootstrapError::Wait {
            name: name.into(),
            source,
        })?;
    if !is_ours(&existing, &key.public_key_der()) {
        return Err(BootstrapError::Foreign { name: name.into() });
    }
    tracing::info!(csr = %name, "found our CertificateSigningRequest from an earlier run; reusing it");
    Ok(existing)
}

fn create_failed(name: &str, source: ApiError) -> BootstrapError {
    BootstrapError::Create {
        name: name.into(),
        source,
    }
}
