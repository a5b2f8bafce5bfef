//! kube-apiserver's version: `GET /version` (anonymous access is allowed by default, through
//! `system:public-info-viewer`; a node's own client works too), its `gitVersion` parsed with
//! [`KubeVersion::find`]. Used by preflight's `KubeletVersion` check, `run`'s
//! `KubeletVersionSkew` condition and `kaas-join upgrade-kubelet`.

use super::client::ApiClient;
use crate::model::kube_version::KubeVersion;

/// The API server's version, or why there is none (for messages).
pub async fn server_version(client: &ApiClient) -> Result<KubeVersion, String> {
    match client.get_json::<serde_json::Value>("/version").await {
        Ok(v) => v["gitVersion"]
            .as_str()
            .and_then(KubeVersion::find)
            .ok_or_else(|| "/version has no usable gitVersion".to_string()),
        Err(e) => Err(format!("GET /version failed: {e}")),
    }
}
