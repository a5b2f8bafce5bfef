//! Reads what the control plane publishes for joining nodes: `kube-system/kubeadm-config`
//! (ClusterConfiguration: service subnet, DNS domain, version) and `kube-system/kubelet-config`
//! (the cluster's KubeletConfiguration).
//!
//! kubeadm-built control planes have both and let the bootstrap token read them. Helm-chart
//! control planes have neither, nor a Role to read them, so the read answers 403 (today's
//! `kubeadm join` stops there). Forbidden or not found is not an error here: the caller falls back
//! to documented defaults and says so loudly. Transient errors are retried until the deadline;
//! a 401 means the token stopped working and ends the join.

use tokio::time::Instant;

use crate::k8s::client::{ApiClient, ApiError};
use crate::model::backoff::Backoff;
use crate::model::exit_code::ExitCode;

pub const KUBEADM_CONFIG_PATH: &str = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config";
pub const KUBELET_CONFIG_PATH: &str = "/api/v1/namespaces/kube-system/configmaps/kubelet-config";

/// One published ConfigMap: found, or why not.
#[derive(Debug, Clone)]
pub enum Published<T> {
    Found(T),
    /// 403 or 404, with the server's words.
    Missing(String),
}

impl<T> Published<T> {
    pub fn found(&self) -> Option<&T> {
        match self {
            Published::Found(t) => Some(t),
            Published::Missing(_) => None,
        }
    }
}

/// The fields of kubeadm's ClusterConfiguration a node needs.
#[derive(Debug, Clone, Default)]
pub struct ClusterNetworking {
    pub service_subnet: Option<String>,
    pub dns_domain: Option<String>,
    pub kubernetes_version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ClusterFacts {
    pub networking: Published<ClusterNetworking>,
    /// The cluster's KubeletConfiguration (data key `kubelet`).
    pub kubelet: Published<serde_norway::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterConfigError {
    #[error("the API server no longer accepts the bootstrap token ({0}); it expired or was deleted during the join: create a new one (`kubeadm token create`) and run again")]
    TokenRejected(ApiError),
    #[error("cannot read the cluster's configuration: {0}")]
    Api(ApiError),
    #[error("kube-system/{name} is not usable: {detail}")]
    Invalid { name: &'static str, detail: String },
}

impl ClusterConfigError {
    /// The documented exit code.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ClusterConfigError::TokenRejected(_) => ExitCode::TokenRejected,
            ClusterConfigError::Api(e) => e.exit_code(),
            ClusterConfigError::Invalid { .. } => ExitCode::NotKubernetes,
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct ConfigMap {
    #[serde(default)]
    data: std::collections::BTreeMap<String, String>,
}

/// Reads both ConfigMaps (concurrently: two requests, one round trip).
pub async fn read(
    client: &ApiClient,
    deadline: Instant,
) -> Result<ClusterFacts, ClusterConfigError> {
    let (kubeadm, kubelet) = tokio::join!(
        read_configmap(client, KUBEADM_CONFIG_PATH, deadline),
        read_configmap(client, KUBELET_CONFIG_PATH, deadline)
    );
    let networking = match kubeadm? {
        Published::Found(cm) => Published::Found(parse_cluster_configuration(&cm)?),
        Published::Missing(why) => Published::Missing(why),
    };
    let kubelet = match kubelet? {
        Published::Found(cm) => {
            let text = cm.data.get("kubelet").ok_or(ClusterConfigError::Invalid {
                name: "kubelet-config",
                detail: "no data.kubelet".into(),
            })?;
            crate::model::yaml_guard::check_nesting(text).map_err(|detail| {
                ClusterConfigError::Invalid {
                    name: "kubelet-config",
                    detail,
                }
            })?;
            let value: serde_norway::Value =
                serde_norway::from_str(text).map_err(|e| ClusterConfigError::Invalid {
                    name: "kubelet-config",
                    detail: format!("data.kubelet is not YAML: {e}"),
                })?;
            if !value.is_mapping() {
                return Err(ClusterConfigError::Invalid {
                    name: "kubelet-config",
                    detail: "data.kubelet is not a KubeletConfiguration mapping".into(),
                });
            }
            Published::Found(value)
        }
        Published::Missing(why) => Published::Missing(why),
    };
    Ok(ClusterFacts {
        networking,
        kubelet,
    })
}

async fn read_configmap(
    client: &ApiClient,
    path: &str,
    deadline: Instant,
) -> Result<Published<ConfigMap>, ClusterConfigError> {
    let mut backoff = Backoff::discovery(deadline);
    let mut last_failure: Option<ApiError> = None;
    loop {
        // A stalled answer must not outlive the deadline; then the last real failure says most.
        let answer =
            match tokio::time::timeout_at(deadline, client.get_json::<ConfigMap>(path)).await {
                Ok(answer) => answer,
                Err(_) => Err(last_failure.take().unwrap_or_else(|| {
                    ApiError::deadline_passed(&format!("{}{path}", client.base()))
                })),
            };
        match answer {
            Ok(cm) => return Ok(Published::Found(cm)),
            Err(ApiError::Status {
                code: code @ (403 | 404),
                reason,
                message,
                ..
            }) => return Ok(Published::Missing(format!("{code} {reason}: {message}"))),
            Err(err @ ApiError::Status { code: 401, .. }) => {
                return Err(ClusterConfigError::TokenRejected(err))
            }
            Err(err) if err.is_transient() => {
                tracing::warn!(path, error = %err, "reading cluster configuration failed; retrying");
                let wait = err.retry_after();
                if let Some(wait) = wait {
                    tokio::time::sleep(
                        wait.min(deadline.saturating_duration_since(Instant::now())),
                    )
                    .await;
                }
                if !backoff.wait().await {
                    return Err(ClusterConfigError::Api(err));
                }
                last_failure = Some(err);
            }
            Err(err) => return Err(ClusterConfigError::Api(err)),
        }
    }
}

fn parse_cluster_configuration(cm: &ConfigMap) -> Result<ClusterNetworking, ClusterConfigError> {
    let invalid = |detail: String| ClusterConfigError::Invalid {
        name: "kubeadm-config",
        detail,
    };
    let text = cm
        .data
        .get("ClusterConfiguration")
        .ok_or_else(|| invalid("no data.ClusterConfiguration".into()))?;
    crate::model::yaml_guard::check_nesting(text).map_err(invalid)?;
    let value: serde_norway::Value = serde_norway::from_str(text)
        .map_err(|e| invalid(format!("data.ClusterConfiguration is not YAML: {e}")))?;
    let text_at = |path: &[&str]| -> Option<String> {
        let mut v = &value;
        for key in path {
            v = v.get(*key)?;
        }
        v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
    };
    Ok(ClusterNetworking {
        service_subnet: text_at(&["networking", "serviceSubnet"]),
        dns_domain: text_at(&["networking", "dnsDomain"]),
        kubernetes_version: text_at(&["kubernetesVersion"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_kubeadm_config_yields_networking() {
        let cm: ConfigMap = serde_json::from_slice(&crate::fixtures::fixture(
            "200-kubeadm-config-get-bootstrap-token.json",
        ))
        .unwrap();
        let net = parse_cluster_configuration(&cm).unwrap();
        assert_eq!(net.service_subnet.as_deref(), Some("10.96.0.0/12"));
        assert_eq!(net.dns_domain.as_deref(), Some("cluster.local"));
        assert_eq!(net.kubernetes_version.as_deref(), Some("v1.32.0"));
    }
}
