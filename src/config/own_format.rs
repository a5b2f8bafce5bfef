//! Our own config file format, `kaas-join.io/v1alpha1` `JoinConfiguration`: its fields map one
//! to one onto [`FileSettings`]. `file` dispatches the document here; the kubelet settings and
//! extra args it carries are lifted into fields afterwards by `kubelet_settings`.
//!
//! # Our config file format
//!
//! ```yaml
//! apiVersion: kaas-join.io/v1alpha1
//! kind: JoinConfiguration
//! servers: ["10.0.0.5:6443"]          # host:port, [ipv6]:port or https://host[:port]
//! tokenFile: /etc/kaas-join/token      # or token: "<id>.<secret>" (discouraged: chmod 600 the file)
//! caCertHashes: ["sha256:9be846df..."]
//! unsafeSkipCAVerification: false
//! nodeName: worker-1
//! nodeLabels: {team: a}
//! nodeIP: 10.0.0.7
//! criSocket: unix:///run/containerd/containerd.sock
//! cgroupDriver: systemd                # or cgroupfs
//! clusterDNS: ["10.96.0.10"]
//! clusterDomain: cluster.local
//! discoveryTimeout: 5m                 # 90s, 1m30s, 1h or plain seconds
//! tlsBootstrapTimeout: 5m
//! kubeletExtraArgs: [{name: max-pods, value: "50"}]
//! ignorePreflightErrors: [Swap]        # preflight checks whose errors do not stop the join
//! kubelet:                             # a KubeletConfiguration fragment, merged over the cluster's
//!   maxPods: 50
//! ```
//!
//! Every field is optional. Unknown fields are errors (so that a typo does not pass silently).
//! A `KubeletConfiguration` document (`kubelet.config.k8s.io/v1beta1`) may follow after `---`
//! instead of `kubelet:`. `tokenFile` is a path on this machine, read as given (not under
//! `--root`), and must not be readable by group or others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::Value;

use super::fields::{DurationText, ExtraArg, SecretText};
use super::file::FileSettings;
use super::ConfigError;
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::labels;

/// Our own format, `kaas-join.io/v1alpha1` `JoinConfiguration` (see the module doc).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct OwnJoinConfiguration {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    servers: Vec<String>,
    token: Option<SecretText>,
    token_file: Option<PathBuf>,
    #[serde(default)]
    ca_cert_hashes: Vec<String>,
    #[serde(default, rename = "unsafeSkipCAVerification")]
    unsafe_skip_ca_verification: bool,
    node_name: Option<String>,
    #[serde(default)]
    node_labels: BTreeMap<String, String>,
    #[serde(rename = "nodeIP")]
    node_ip: Option<String>,
    cri_socket: Option<String>,
    cgroup_driver: Option<CgroupDriver>,
    #[serde(default, rename = "clusterDNS")]
    cluster_dns: Vec<String>,
    cluster_domain: Option<String>,
    discovery_timeout: Option<DurationText>,
    tls_bootstrap_timeout: Option<DurationText>,
    #[serde(default)]
    kubelet_extra_args: Vec<ExtraArg>,
    kubelet: Option<Value>,
    #[serde(default)]
    ignore_preflight_errors: Vec<String>,
}

/// The settings of our format, checked where a field alone can be checked (token and tokenFile
/// both given, label syntax).
pub(super) fn own_settings(
    c: OwnJoinConfiguration,
    path: &Path,
) -> Result<FileSettings, ConfigError> {
    if c.token.is_some() && c.token_file.is_some() {
        return Err(ConfigError::TokenFieldsConflict {
            path: path.to_owned(),
        });
    }
    for (k, v) in &c.node_labels {
        labels::validate_label(k, v)?;
    }
    Ok(FileSettings {
        path: path.to_owned(),
        servers: c.servers,
        token: c.token.map(|t| t.0),
        token_field: "token",
        token_file: c.token_file,
        ca_cert_hashes: c.ca_cert_hashes,
        unsafe_skip_ca_verification: c.unsafe_skip_ca_verification,
        node_name: c.node_name,
        node_labels: c.node_labels,
        node_ip: c.node_ip,
        cri_socket: c.cri_socket,
        cgroup_driver: c.cgroup_driver,
        cluster_dns: c.cluster_dns,
        cluster_domain: c.cluster_domain,
        discovery_timeout: c.discovery_timeout.map(|d| d.0),
        tls_bootstrap_timeout: c.tls_bootstrap_timeout.map(|d| d.0),
        kubelet_extra_args: c
            .kubelet_extra_args
            .into_iter()
            .map(|a| (a.name, a.value))
            .collect(),
        kubelet: c.kubelet,
        dry_run: false,
        ignore_preflight_errors: c.ignore_preflight_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_text_never_echoes_numbers() {
        let v: Result<OwnJoinConfiguration, _> = serde_norway::from_str(
            "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\ntoken: 123456.1234567890123456\n",
        );
        let msg = match v {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a number was accepted as a token"),
        };
        assert!(msg.contains("quoted string"), "{msg}");
        assert!(!msg.contains("123456"), "{msg}");
    }
}
