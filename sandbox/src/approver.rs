//! The kube-controller-manager's csrapproving (`pkg/controller/certificates/approver/
//! sarapprove.go`) and csrsigning controllers, for signer
//! `kubernetes.io/kube-apiserver-client-kubelet`.
//!
//! Auto mode follows the real rules: a CSR is approved only when its request is a kubelet client
//! request (subject exactly `O=system:nodes`, `CN=system:node:...`, no SANs, usages exactly
//! {digital signature, client auth} or {digital signature, key encipherment, client auth}) and
//! the requester may create `certificatesigningrequests/nodeclient` (or, for renewals,
//! `selfnodeclient` with CN = the requesting node). Anything else is left Pending, silently.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use crate::authz::{self, User};
use crate::store::{Condition, Csr, Kind, Obj};
use crate::{ApprovalMode, Shared};

/// Approver workers (the controller's `--concurrent-...-syncs` default is 5).
pub(crate) const WORKERS: usize = 5;

pub(crate) const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const APPROVE_MESSAGE: &str =
    "Auto approving kubelet client certificate after SubjectAccessReview.";

/// `capihelper.ValidateKubeletClientCSR`: why the request is not a kubelet client request.
pub(crate) fn kubelet_client_problem(request_der: &[u8], usages: &[String]) -> Option<String> {
    let Ok((_, req)) = X509CertificationRequest::from_der(request_der) else {
        return Some("cannot parse the certificate request".into());
    };
    let subject = &req.certification_request_info.subject;
    let orgs: Vec<&str> = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .collect();
    if orgs != ["system:nodes"] {
        return Some("subject organization is not system:nodes".into());
    }
    let has_sans = req.requested_extensions().is_some_and(|mut exts| {
        exts.any(|e| matches!(e, ParsedExtension::SubjectAlternativeName(san) if !san.general_names.is_empty()))
    });
    if has_sans {
        return Some("DNS, email, IP or URI subjectAltNames are not allowed".into());
    }
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or("");
    if !cn.starts_with("system:node:") {
        return Some("subject common name does not begin with system:node:".into());
    }
    let got: BTreeSet<&str> = usages.iter().map(String::as_str).collect();
    let no_rsa = BTreeSet::from(["digital signature", "client auth"]);
    let rsa = BTreeSet::from(["digital signature", "key encipherment", "client auth"]);
    if got != no_rsa && got != rsa {
        return Some(format!("usages did not match {no_rsa:?} or {rsa:?}"));
    }
    None
}

fn common_name(request_der: &[u8]) -> Option<String> {
    let (_, req) = X509CertificationRequest::from_der(request_der).ok()?;
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

/// Whether csrapproving would approve this CSR (recognizer + SubjectAccessReview).
pub(crate) fn would_approve(shared: &Shared, csr: &Csr) -> bool {
    if csr.spec.signer_name != KUBELET_CLIENT_SIGNER
        || kubelet_client_problem(&csr.request_der, &csr.spec.usages).is_some()
    {
        return false;
    }
    let requester = User {
        name: csr.spec.username.clone(),
        groups: csr.spec.groups.clone(),
    };
    if shared.nodeclient_group(&requester).is_some() {
        return true;
    }
    // selfnodeclient: a node renewing its own certificate.
    requester.in_group(authz::NODES)
        && common_name(&csr.request_der).as_deref() == Some(csr.spec.username.as_str())
}

fn add_condition(shared: &Shared, name: &str, condition: Condition) -> bool {
    let updated = shared.store.update::<()>(Kind::Csr, None, name, |obj| {
        let Obj::Csr(csr) = obj else { return Ok(false) };
        if csr.has_condition(&condition.type_) {
            return Ok(false);
        }
        csr.status.conditions.push(condition);
        Ok(true)
    });
    updated.is_some()
}

/// The csrsigning controller: fills `status.certificate`, or adds `Failed`.
fn sign(shared: &Shared, name: &str) {
    let Some(Obj::Csr(csr)) = shared.store.get(Kind::Csr, None, name) else {
        return;
    };
    let lifetime = *shared
        .certificate_lifetime
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let validity = match lifetime {
        Some(d) => time::Duration::milliseconds(d.as_millis() as i64),
        None => csr
            .spec
            .expiration_seconds
            .map_or(time::Duration::days(365), |s| {
                time::Duration::seconds(s.max(600))
            }),
    };
    match shared
        .ca
        .sign_csr(&csr.request_der, &csr.spec.usages, validity)
    {
        Ok(pem) => {
            let certificate = STANDARD.encode(pem.as_bytes());
            shared
                .store
                .update::<()>(Kind::Csr, None, name, move |obj| {
                    let Obj::Csr(csr) = obj else { return Ok(false) };
                    csr.status.certificate = Some(certificate);
                    Ok(true)
                });
        }
        Err(message) => {
            add_condition(
                shared,
                name,
                Condition::new("Failed", "SignerValidationFailure", &message),
            );
        }
    }
}

/// Handles one new CSR according to the sandbox's [`ApprovalMode`].
pub(crate) async fn process(shared: Arc<Shared>, name: String) {
    let mode = shared.config.approval;
    let delay = match mode {
        ApprovalMode::Never => return,
        ApprovalMode::Auto { delay } => delay,
        ApprovalMode::Deny | ApprovalMode::Fail => Duration::ZERO,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let Ok(_worker) = shared.approvers.acquire().await else {
        return;
    };
    let work = shared.config.approval_workers_delay;
    if !work.is_zero() {
        tokio::time::sleep(work).await;
    }
    let Some(Obj::Csr(csr)) = shared.store.get(Kind::Csr, None, &name) else {
        return;
    };
    if csr.has_condition("Approved")
        || csr.has_condition("Denied")
        || csr.status.certificate.is_some()
    {
        return;
    }
    match mode {
        ApprovalMode::Never => {}
        ApprovalMode::Auto { .. } => {
            if !would_approve(&shared, &csr) {
                tracing::debug!(csr = %name, "not a node client CSR the requester may have approved; left Pending");
                return;
            }
            if add_condition(
                &shared,
                &name,
                Condition::new("Approved", "AutoApproved", APPROVE_MESSAGE),
            ) {
                sign(&shared, &name);
            }
        }
        ApprovalMode::Deny => {
            add_condition(
                &shared,
                &name,
                Condition::new("Denied", "SandboxDenied", "The sandbox control plane denies every certificate signing request (ApprovalMode::Deny)."),
            );
        }
        ApprovalMode::Fail => {
            if add_condition(
                &shared,
                &name,
                Condition::new("Approved", "AutoApproved", APPROVE_MESSAGE),
            ) {
                add_condition(
                    &shared,
                    &name,
                    Condition::new(
                        "Failed",
                        "SignerValidationFailure",
                        "The sandbox signer refuses to sign (ApprovalMode::Fail).",
                    ),
                );
            }
        }
    }
}
