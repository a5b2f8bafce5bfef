//! Phase 2, cluster: what the cluster publishes (kubeadm-config's networking, kubelet-config)
//! and whether a Ready Node already has our name, asked concurrently as the token.

use tokio::time::Instant;

use crate::cmd::error::Error;
use crate::cmd::join::report::JoinReport;
use crate::config::JoinConfig;
use crate::k8s::client::{ApiClient, ApiError};
use crate::k8s::cluster_config::{self, ClusterFacts, Published};

/// The duplicate-name check is one GET; it may not hold up the join longer than this.
const NODE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Reads the cluster's facts and checks the node name; `rejoining_same_node`: this machine's
/// finished join had this name, so a Ready Node of that name is ours.
#[tracing::instrument(
    name = "cluster",
    skip_all,
    fields(node = %cfg.node_name, server = %client.base())
)]
pub(super) async fn cluster(
    cfg: &JoinConfig,
    client: &ApiClient,
    rejoining_same_node: bool,
    report: &mut JoinReport,
) -> Result<ClusterFacts, Error> {
    let t = Instant::now();
    let deadline = Instant::now() + cfg.tls_bootstrap_timeout;
    let (facts, node_check) = tokio::join!(
        cluster_config::read(client, deadline),
        check_node_name(client, &cfg.node_name, rejoining_same_node)
    );
    let facts = facts?;
    let node_note = node_check?;
    report.step(
        "cluster",
        format!(
            "kubeadm-config: {}; kubelet-config: {}; {node_note}",
            describe(&facts.networking),
            describe(&facts.kubelet)
        ),
        t,
    );
    Ok(facts)
}

fn describe<T>(p: &Published<T>) -> String {
    match p {
        Published::Found(_) => "read".into(),
        Published::Missing(why) => format!("not readable ({why})"),
    }
}

/// Refuses a name already held by a Ready Node, where the token may read Nodes (kubeadm's RBAC
/// lets it); a 403 means this control plane does not allow the check, which is not an error.
async fn check_node_name(
    client: &ApiClient,
    name: &str,
    rejoining_same_node: bool,
) -> Result<String, Error> {
    // Best effort: a control plane that does not answer this quickly still gets the node.
    let answer = tokio::time::timeout(
        NODE_CHECK_TIMEOUT,
        client.get_json::<serde_json::Value>(&format!("/api/v1/nodes/{name}")),
    )
    .await
    .unwrap_or_else(|_| Err(ApiError::deadline_passed(&format!("/api/v1/nodes/{name}"))));
    match answer {
        Ok(node) => {
            let ready = node["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if ready && !rejoining_same_node {
                Err(Error::DuplicateNode { name: name.into() })
            } else if ready {
                Ok(format!(
                    "Node {name} exists and is Ready: this machine, joining again"
                ))
            } else {
                Ok(format!(
                    "Node {name} exists but is not Ready; taking it over"
                ))
            }
        }
        Err(ApiError::Status { code: 404, .. }) => Ok(format!("no Node named {name} yet")),
        Err(ApiError::Status { code: 403, .. }) => {
            Ok("the token may not read Nodes, duplicate-name check skipped".into())
        }
        Err(err) => {
            tracing::warn!(error = %err, "duplicate-name check failed; going on without it");
            Ok(format!("duplicate-name check failed ({err})"))
        }
    }
}
