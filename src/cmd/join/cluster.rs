//! Phase 2, cluster: what the cluster publishes (kubeadm-config's networking, kubelet-config)
//! and whether a Ready Node already has our name, asked concurrently as the token.

use tokio::time::Instant;

use crate::cmd::error::Error;
use crate::cmd::join::report::JoinReport;
use crate::config::JoinConfig;
use crate::k8s::client::{ApiClient, ApiError};
use crate::k8s::cluster_config::{self, ClusterFacts, Published};
use crate::model::backoff::Backoff;

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
        check_node_name(client, &cfg.node_name, rejoining_same_node, deadline)
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
/// lets it); a 403 means this control plane does not allow the check, which is said, not an
/// error. The check is not skipped when the API server is slow: it is exactly when many VMs boot
/// from one image (duplicate hostnames) that the server is loaded. A transient failure is
/// retried with the discovery backoff until the phase's `deadline`; no answer by then fails the
/// join (exit 3) instead of letting a duplicate through.
async fn check_node_name(
    client: &ApiClient,
    name: &str,
    rejoining_same_node: bool,
    deadline: Instant,
) -> Result<String, Error> {
    let path = format!("/api/v1/nodes/{name}");
    let mut backoff = Backoff::discovery(deadline);
    let mut unusable = 0;
    // The last failure the server itself gave, to report rather than "deadline passed".
    let mut last_failure: Option<ApiError> = None;
    let node = loop {
        let answer = tokio::time::timeout_at(deadline, client.get_json::<serde_json::Value>(&path))
            .await
            .unwrap_or_else(|_| Err(ApiError::deadline_passed(&path)));
        match answer {
            Ok(node) => break node,
            Err(ApiError::Status { code: 404, .. }) => {
                return Ok(with_retries(format!("no Node named {name} yet"), &backoff))
            }
            Err(ApiError::Status { code: 403, .. }) => {
                return Ok("the token may not read Nodes, duplicate-name check skipped".into())
            }
            Err(err) => {
                // A garbled answer heals behind a flaky proxy; a server that keeps answering
                // something else is not the API.
                unusable += usize::from(matches!(err, ApiError::NotKubernetes { .. }));
                let retry = (err.is_transient() || matches!(err, ApiError::Unreachable { .. }))
                    && unusable < 3
                    && backoff.wait().await;
                let timed_out = err.is_deadline_passed();
                if !retry {
                    let source = match last_failure {
                        Some(earlier) if timed_out => earlier,
                        _ => err,
                    };
                    return Err(Error::NodeCheck {
                        name: name.into(),
                        retries: backoff.retries(),
                        source: Box::new(source),
                    });
                }
                tracing::debug!(error = %err, retries = backoff.retries(), "duplicate-name check: retrying");
                if !timed_out {
                    last_failure = Some(err);
                }
            }
        }
    };
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    if ready && !rejoining_same_node {
        Err(Error::DuplicateNode { name: name.into() })
    } else if ready {
        Ok(with_retries(
            format!("Node {name} exists and is Ready: this machine, joining again"),
            &backoff,
        ))
    } else {
        Ok(with_retries(
            format!("Node {name} exists but is not Ready; taking it over"),
            &backoff,
        ))
    }
}

/// `note`, with how many retries the answer took when it took any (the report says so).
fn with_retries(note: String, backoff: &Backoff) -> String {
    match backoff.retries() {
        0 => note,
        n => format!("{note} (duplicate-name check answered after {n} retries)"),
    }
}
