//! Waiting for our CSR to be decided, as kubelet waits: watch from the resourceVersion we last
//! saw, resume when the watch ends at its timeout, re-read the CSR when the watch cannot be
//! trusted (410 Expired, a DELETED or ERROR event, a stream cut at once, a failed connect), and
//! ask why ([`super::diagnosis`]) once approval is [`DIAGNOSE_AFTER`] late.
//!
//! Decided means issued (the certificate, checked against our key and node by
//! [`check_certificate`]) or refused (Denied, Failed). Nothing here outlives the deadline.

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tokio::time::Instant;

use crate::k8s::client::{ApiClient, ApiError, Status};
use crate::model::backoff::Backoff;

use super::diagnosis::{diagnose, not_approved};
use super::key::{node_common_name, NodeKey};
use super::{BootstrapError, CSR_PATH, DIAGNOSE_AFTER};

/// What the wait ends with when the CSR is issued.
pub(super) struct Decided {
    pub certificate_pem: String,
    /// Whether the approval diagnosis (an extra request) was needed.
    pub diagnosed: bool,
}

/// Waits until `csr` (as created or found) is decided or `deadline` passes.
pub(super) async fn wait_for_certificate(
    client: &ApiClient,
    csr: Value,
    name: &str,
    deadline: Instant,
) -> Result<Decided, BootstrapError> {
    let mut wait = Waiting {
        client,
        name,
        deadline,
        started: Instant::now(),
        csr,
        diagnosis: None,
    };
    let mut backoff = Backoff::discovery(deadline);
    let mut unusable = 0;
    loop {
        if let Some(certificate_pem) = outcome(&wait.csr, name)? {
            return Ok(Decided {
                certificate_pem,
                diagnosed: wait.diagnosis.is_some(),
            });
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(wait.not_approved().await);
        }
        let watch_started = Instant::now();
        let watched = wait.watch(remaining).await;
        // A stream of garbage (lines that are not JSON, a chunk that never ends its line) is a
        // server or proxy that answers something unusable: not worth waiting out the timeout
        // and then blaming the approver.
        match &watched {
            Err(e) if is_unusable(e) => {
                unusable += 1;
                tracing::debug!(csr = name, unusable, error = %e, "unusable watch answer");
                if unusable >= MAX_UNUSABLE_WATCHES {
                    return Err(BootstrapError::Wait {
                        name: name.to_owned(),
                        source: watched.err().expect("an error"),
                    });
                }
            }
            Ok(_) => unusable = 0,
            Err(_) => {}
        }
        let reread = match watched {
            Ok(WatchOutcome::Decided) => false,
            // A watch ends normally at its timeout: resume at once from the last version.
            Ok(WatchOutcome::Ended) if watch_started.elapsed() >= Duration::from_secs(1) => false,
            // Ended at once, without news: something between us and the server cuts watches, so
            // read the CSR itself rather than trust the next watch. So do 410 Expired, a broken
            // stream and a failed connect.
            Ok(WatchOutcome::Ended) | Ok(WatchOutcome::Relist) | Err(_) => {
                if !backoff.wait().await {
                    return Err(wait.not_approved().await);
                }
                true
            }
            Ok(WatchOutcome::Deadline) => return Err(wait.not_approved().await),
        };
        if reread {
            wait.reread().await?;
        }
    }
}

/// Watches in a row answered with something that is not a watch stream (not JSON, cut
/// lines) before the wait gives up with exit 9: a proxy's hiccup heals in one or two.
const MAX_UNUSABLE_WATCHES: u32 = 5;

/// An answer that says the server is not speaking the API, as opposed to a network failure.
fn is_unusable(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::Decode { .. } | ApiError::NotKubernetes { .. } | ApiError::TooLarge { .. }
    )
}

/// One wait for one CSR: the CSR as last seen, since when we wait, the diagnosis once made.
struct Waiting<'a> {
    client: &'a ApiClient,
    name: &'a str,
    deadline: Instant,
    started: Instant,
    csr: Value,
    diagnosis: Option<String>,
}

/// How one watch ended.
enum WatchOutcome {
    /// `csr` now holds an issued certificate or a Denied/Failed condition.
    Decided,
    Ended,
    Relist,
    Deadline,
}

impl Waiting<'_> {
    /// Follows one watch stream from the last resourceVersion, keeping `csr` current, until the
    /// CSR is decided or the stream ends; `remaining` until the deadline bounds the watch.
    async fn watch(&mut self, remaining: Duration) -> Result<WatchOutcome, ApiError> {
        let path = format!(
            "{CSR_PATH}?fieldSelector=metadata.name%3D{}&watch=true&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds={}",
            self.name,
            resource_version(&self.csr),
            remaining.as_secs().clamp(1, 300)
        );
        // The answer to the watch request itself may stall too: bound it by the deadline.
        let mut stream =
            match tokio::time::timeout_at(self.deadline, self.client.watch(&path)).await {
                Ok(stream) => stream?,
                Err(_) => return Ok(WatchOutcome::Deadline),
            };
        let name = self.name;
        loop {
            let diagnose_at = self.started + DIAGNOSE_AFTER;
            tokio::select! {
                event = stream.next_event() => {
                    let Some(event) = event? else { return Ok(WatchOutcome::Ended) };
                    match event.kind.as_str() {
                        "ADDED" | "MODIFIED" => {
                            self.csr = event.object;
                            if is_decided(&self.csr) {
                                return Ok(WatchOutcome::Decided);
                            }
                        }
                        "BOOKMARK" => {
                            let rv = resource_version(&event.object);
                            set_resource_version(&mut self.csr, &rv);
                        }
                        "DELETED" => return Ok(WatchOutcome::Relist),
                        "ERROR" => {
                            let status: Status = serde_json::from_value(event.object)
                                .map_err(|e| ApiError::Decode { url: path.clone(), detail: e.to_string() })?;
                            tracing::debug!(csr = name, code = status.code, reason = %status.reason, "watch error event");
                            if let Some(wait) = status.details.as_ref().and_then(|d| d.retry_after_seconds) {
                                tokio::time::sleep(Duration::from_secs(wait.min(5))).await;
                            }
                            return Ok(WatchOutcome::Relist);
                        }
                        other => tracing::debug!(csr = name, kind = other, "ignoring watch event"),
                    }
                }
                _ = tokio::time::sleep_until(diagnose_at), if self.diagnosis.is_none() => {
                    let text = diagnose(self.client).await;
                    tracing::warn!(csr = name, "no approval after {}s: {text}", DIAGNOSE_AFTER.as_secs());
                    self.diagnosis = Some(text);
                }
                _ = tokio::time::sleep_until(self.deadline) => return Ok(WatchOutcome::Deadline),
            }
        }
    }

    /// Reads the CSR itself (after a watch that cannot be trusted); a CSR deleted meanwhile ends
    /// the wait, a failure that may heal is retried by the next round.
    async fn reread(&mut self) -> Result<(), BootstrapError> {
        let (client, name) = (self.client, self.name);
        let read = tokio::time::timeout_at(
            self.deadline,
            client.get_json::<Value>(&format!("{CSR_PATH}/{name}")),
        )
        .await
        .unwrap_or_else(|_| Err(ApiError::deadline_passed(&format!("{CSR_PATH}/{name}"))));
        match read {
            Ok(obj) => self.csr = obj,
            Err(ApiError::Status { code: 404, .. }) => {
                return Err(BootstrapError::Wait {
                    name: name.into(),
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
            Err(source) => {
                return Err(BootstrapError::Wait {
                    name: name.into(),
                    source,
                })
            }
        }
        Ok(())
    }

    /// The deadline passed with the CSR still pending.
    async fn not_approved(&mut self) -> BootstrapError {
        not_approved(self.client, self.name, self.started, self.diagnosis.take()).await
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
pub(super) fn check_certificate(
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

fn resource_version(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string()
}

fn set_resource_version(obj: &mut Value, rv: &str) {
    obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
}

const DELETED_WHILE_WAITING: &str =
    "the CertificateSigningRequest was deleted while we waited; run again";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
