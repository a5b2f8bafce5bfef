//! Why a CSR is not approved: one SelfSubjectAccessReview asks whether the token may create
//! `certificatesigningrequests/nodeclient` (what the csrapproving controller checks), and the
//! answer becomes the advice of [`BootstrapError::NotApproved`]. `cmd::preflight` asks the same
//! question through [`may_create_csr`].

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::k8s::client::{ApiClient, ApiError};

use super::{BootstrapError, NODECLIENT_ROLE};

const SSAR_PATH: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

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
pub(super) async fn diagnose(client: &ApiClient) -> String {
    match may_create_csr(client, "nodeclient").await {
        Ok(answer) if answer.allowed => format!(
            "The token may create certificatesigningrequests/nodeclient, so auto-approval should come. kube-controller-manager approves about 10 requests a second (its default --kube-api-qps 20, two writes each): when many nodes join at once, later ones wait their turn. Otherwise check that it runs with the csrapproving and csrsigning controllers (--controllers=*,bootstrapsigner,tokencleaner) and is healthy. {SKIP_RULES}"
        ),
        Ok(_) => format!(
            "The token may NOT create certificatesigningrequests/nodeclient, so the csrapproving controller skips this request: bind ClusterRole {NODECLIENT_ROLE} to the token's group (kubeadm binds it to system:bootstrappers:kubeadm:default-node-token; `kaas-join cluster prepare` does it too), or approve by hand: kubectl certificate approve <csr>."
        ),
        Err(err) => format!(
            "Could not ask whether the token may create certificatesigningrequests/nodeclient ({err}). Auto-approval needs ClusterRole {NODECLIENT_ROLE} bound to the token's group. {SKIP_RULES}"
        ),
    }
}

const SKIP_RULES: &str = "The approver silently skips (leaves Pending) any request whose usages, organization or SANs differ from a node client request; an administrator can approve it by hand: kubectl certificate approve <csr>.";

/// The error for a CSR still pending at the deadline, with `diagnosis` (asked for now when the
/// wait did not need it yet) naming the CSR.
pub(super) async fn not_approved(
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
