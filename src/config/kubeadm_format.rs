//! kubeadm's config file format: `kubeadm.k8s.io/v1beta4` and `v1beta3` `JoinConfiguration`,
//! turned into the same [`FileSettings`] as our own format. `file` dispatches the document here
//! (and handles the other kubeadm kinds); the kubelet extra args it yields are checked and lifted
//! afterwards by `kubelet_settings`.
//!
//! # kubeadm's format
//!
//! `kubeadm.k8s.io/v1beta4` (and `v1beta3`) `JoinConfiguration`, alone or in a multi-document
//! file with `InitConfiguration`/`ClusterConfiguration`/`KubeProxyConfiguration` documents (ignored
//! with a warning, as kubeadm join does) and a `KubeletConfiguration` document (used as kubelet
//! overrides). Fields map as follows:
//!
//! | kubeadm | here |
//! |---|---|
//! | `discovery.bootstrapToken.apiServerEndpoint` | `servers` (one) |
//! | `discovery.bootstrapToken.token` | the token |
//! | `discovery.tlsBootstrapToken` | the token (when set; must equal `bootstrapToken.token` if both are set, since we use one token for both steps) |
//! | `discovery.bootstrapToken.caCertHashes` | `caCertHashes` |
//! | `discovery.bootstrapToken.unsafeSkipCAVerification` | `unsafeSkipCAVerification` |
//! | `timeouts.discovery` (v1beta4), `discovery.timeout` (v1beta3) | `discoveryTimeout` |
//! | `timeouts.tlsBootstrap` | `tlsBootstrapTimeout` |
//! | `nodeRegistration.name` | `nodeName` |
//! | `nodeRegistration.criSocket` | `criSocket` |
//! | `nodeRegistration.kubeletExtraArgs` (v1beta4 list, v1beta3 map) | `kubeletExtraArgs` |
//! | `nodeRegistration.ignorePreflightErrors` | `ignorePreflightErrors` (our checks carry kubeadm's names where kubeadm has the check) |
//! | `nodeRegistration.taints` | kubelet flag `--register-with-taints` (kubelet may taint its Node when it registers it; NodeRestriction only forbids changing taints later) |
//! | `dryRun` | `--dry-run` |
//!
//! Ignored with a warning: `skipPhases`, `patches` (put kubelet settings in a `KubeletConfiguration` document),
//! a `caCertPath` other than `/etc/kubernetes/pki/ca.crt`. Ignored silently (no effect on a
//! worker join): `nodeRegistration.imagePullPolicy`/`imagePullSerial`, the other `timeouts`.
//! Refused with an error: `controlPlane` (kaas-join joins worker nodes only) and
//! `discovery.file` (we discover with a bootstrap token only).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_norway::Value;
use zeroize::Zeroizing;

use super::fields::{DurationText, ExtraArg, SecretText};
use super::file::FileSettings;
use super::{ConfigError, Warning};
use crate::model::labels;

pub(super) const KUBEADM_V1BETA4: &str = "kubeadm.k8s.io/v1beta4";
pub(super) const KUBEADM_V1BETA3: &str = "kubeadm.k8s.io/v1beta3";
/// Where kubeadm and kaas-join write the cluster CA; kubeadm's `caCertPath` default.
const KUBEADM_CA_CERT_PATH: &str = "/etc/kubernetes/pki/ca.crt";

/// The fields of kubeadm's `JoinConfiguration` these structs read (v1beta4's, plus v1beta3's
/// `discovery.timeout`). kubeadm itself warns about an unknown field ("strict decoding error")
/// and goes on, so do we for its format: [`drop_unknown_fields`] names and removes them before
/// the strict decode below. Our own format stays strict (a typo there is an error).
enum Fields {
    /// Any value (a map of free keys, a scalar, a list of scalars).
    Any,
    Map(&'static [(&'static str, Fields)]),
    /// A list of maps with these fields.
    ListOf(&'static [(&'static str, Fields)]),
}

const DURATION: Fields = Fields::Any;
const KUBEADM_JOIN_FIELDS: Fields = Fields::Map(&[
    ("apiVersion", Fields::Any),
    ("kind", Fields::Any),
    ("dryRun", Fields::Any),
    (
        "nodeRegistration",
        Fields::Map(&[
            ("name", Fields::Any),
            ("criSocket", Fields::Any),
            (
                "taints",
                Fields::ListOf(&[
                    ("key", Fields::Any),
                    ("value", Fields::Any),
                    ("effect", Fields::Any),
                    ("timeAdded", Fields::Any),
                ]),
            ),
            ("kubeletExtraArgs", Fields::Any),
            ("ignorePreflightErrors", Fields::Any),
            ("imagePullPolicy", Fields::Any),
            ("imagePullSerial", Fields::Any),
        ]),
    ),
    ("caCertPath", Fields::Any),
    (
        "discovery",
        Fields::Map(&[
            (
                "bootstrapToken",
                Fields::Map(&[
                    ("token", Fields::Any),
                    ("apiServerEndpoint", Fields::Any),
                    ("caCertHashes", Fields::Any),
                    ("unsafeSkipCAVerification", Fields::Any),
                ]),
            ),
            ("file", Fields::Any),
            ("tlsBootstrapToken", Fields::Any),
            ("timeout", DURATION),
        ]),
    ),
    ("controlPlane", Fields::Any),
    ("skipPhases", Fields::Any),
    ("patches", Fields::Any),
    (
        "timeouts",
        Fields::Map(&[
            ("controlPlaneComponentHealthCheck", DURATION),
            ("kubeletHealthCheck", DURATION),
            ("kubernetesAPICall", DURATION),
            ("etcdAPICall", DURATION),
            ("tlsBootstrap", DURATION),
            ("discovery", DURATION),
            ("upgradeManifests", DURATION),
        ]),
    ),
]);

/// Removes the fields of a kubeadm `JoinConfiguration` document these structs do not know,
/// with a warning naming each (as kubeadm warns and goes on).
pub(super) fn drop_unknown_fields(
    value: &mut Value,
    path: &std::path::Path,
    doc: usize,
    warnings: &mut Vec<Warning>,
) {
    let mut unknown = Vec::new();
    drop_unknown(value, &KUBEADM_JOIN_FIELDS, "", &mut unknown);
    for field in unknown {
        warnings.push(Warning(format!(
            "config file {}, document {doc}: unknown field {field} in kubeadm's \
             JoinConfiguration, ignored (kubeadm join warns and goes on too; misspelled?)",
            path.display()
        )));
    }
}

fn drop_unknown(value: &mut Value, fields: &Fields, at: &str, unknown: &mut Vec<String>) {
    let known = match fields {
        Fields::Any => return,
        Fields::ListOf(item) => {
            if let Some(items) = value.as_sequence_mut() {
                for (i, v) in items.iter_mut().enumerate() {
                    drop_unknown(v, &Fields::Map(item), &format!("{at}[{i}]"), unknown);
                }
            }
            return;
        }
        Fields::Map(known) => known,
    };
    let Some(map) = value.as_mapping_mut() else {
        return; // a wrong type: the strict decode says so
    };
    let mut gone = Vec::new();
    for (key, v) in map.iter_mut() {
        let name = key.as_str().unwrap_or_default();
        let shown = if at.is_empty() {
            name.to_owned()
        } else {
            format!("{at}.{name}")
        };
        match known.iter().find(|(k, _)| *k == name) {
            Some((_, inner)) => drop_unknown(v, inner, &shown, unknown),
            None => {
                // A key that is no field name (a token pasted as a key) is not shown.
                unknown.push(if crate::model::yaml_guard::is_field_name(name) {
                    format!("`{shown}`")
                } else {
                    "(a key that is not a field name)".to_owned()
                });
                gone.push(key.clone());
            }
        }
    }
    for key in gone {
        map.shift_remove(&key);
    }
}

/// kubeadm's `JoinConfiguration`, v1beta4 field set (`cmd/kubeadm/app/apis/kubeadm/v1beta4`).
/// v1beta3 files are read with it too: they differ in `kubeletExtraArgs` (a map there, read by
/// version) and in `discovery.timeout`, which both are allowed to carry here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct KubeadmJoinConfiguration {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    node_registration: KubeadmNodeRegistration,
    ca_cert_path: Option<String>,
    #[serde(default)]
    discovery: KubeadmDiscovery,
    control_plane: Option<Value>,
    #[serde(default)]
    skip_phases: Vec<String>,
    patches: Option<Value>,
    timeouts: Option<KubeadmTimeouts>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KubeadmNodeRegistration {
    name: Option<String>,
    cri_socket: Option<String>,
    taints: Option<Vec<KubeadmTaint>>,
    /// v1beta4: a list of `{name, value}`; v1beta3: a map.
    kubelet_extra_args: Option<Value>,
    #[serde(default)]
    ignore_preflight_errors: Vec<String>,
    #[allow(dead_code)]
    image_pull_policy: Option<String>,
    #[allow(dead_code)]
    image_pull_serial: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KubeadmTaint {
    key: String,
    #[serde(default)]
    value: String,
    effect: String,
    #[allow(dead_code)]
    time_added: Option<Value>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KubeadmDiscovery {
    bootstrap_token: Option<KubeadmBootstrapTokenDiscovery>,
    file: Option<Value>,
    tls_bootstrap_token: Option<SecretText>,
    /// v1beta3 only.
    timeout: Option<DurationText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KubeadmBootstrapTokenDiscovery {
    token: Option<SecretText>,
    api_server_endpoint: Option<String>,
    #[serde(default)]
    ca_cert_hashes: Vec<String>,
    #[serde(default, rename = "unsafeSkipCAVerification")]
    unsafe_skip_ca_verification: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct KubeadmTimeouts {
    control_plane_component_health_check: Option<DurationText>,
    kubelet_health_check: Option<DurationText>,
    #[serde(rename = "kubernetesAPICall")]
    kubernetes_api_call: Option<DurationText>,
    #[serde(rename = "etcdAPICall")]
    etcd_api_call: Option<DurationText>,
    tls_bootstrap: Option<DurationText>,
    discovery: Option<DurationText>,
    upgrade_manifests: Option<DurationText>,
}

/// The settings of a kubeadm `JoinConfiguration` (`v1beta3`: its `kubeletExtraArgs` is a map).
/// Refuses what a worker join cannot do, warns about what it ignores (see the module doc).
pub(super) fn kubeadm_settings(
    c: KubeadmJoinConfiguration,
    v1beta3: bool,
    path: &Path,
    doc: usize,
    warnings: &mut Vec<Warning>,
) -> Result<FileSettings, ConfigError> {
    refuse_unsupported(&c, path)?;
    warn_ignored(&c, path, warnings);
    let KubeadmJoinConfiguration {
        dry_run,
        node_registration: nr,
        discovery,
        timeouts,
        ..
    } = c;
    let (token, token_field) = token_of(&discovery, path)?;

    let mut kubelet_extra_args = match nr.kubelet_extra_args {
        Some(v) => extra_args(v, v1beta3, path, doc)?,
        None => Vec::new(),
    };
    if let Some(taints) = nr.taints.filter(|t| !t.is_empty()) {
        let taints = register_with_taints(&taints, &kubelet_extra_args, path)?;
        kubelet_extra_args.push(taints);
    }

    let discovery_timeout = timeouts
        .as_ref()
        .and_then(|t| t.discovery.as_ref())
        .or(discovery.timeout.as_ref())
        .map(|d| d.0.clone());
    let tls_bootstrap_timeout = timeouts
        .as_ref()
        .and_then(|t| t.tls_bootstrap.as_ref())
        .map(|d| d.0.clone());

    let bt = discovery.bootstrap_token;
    Ok(FileSettings {
        path: path.to_owned(),
        servers: bt
            .as_ref()
            .and_then(|b| b.api_server_endpoint.clone())
            .into_iter()
            .collect(),
        token,
        token_field,
        token_file: None,
        ca_cert_hashes: bt
            .as_ref()
            .map(|b| b.ca_cert_hashes.clone())
            .unwrap_or_default(),
        unsafe_skip_ca_verification: bt.as_ref().is_some_and(|b| b.unsafe_skip_ca_verification),
        node_name: nr.name.filter(|n| !n.is_empty()),
        node_labels: BTreeMap::new(),
        node_ip: None,
        cri_socket: nr.cri_socket.filter(|s| !s.is_empty()),
        cgroup_driver: None,
        cluster_dns: Vec::new(),
        cluster_domain: None,
        discovery_timeout,
        tls_bootstrap_timeout,
        kubelet_extra_args,
        kubelet: None,
        dry_run,
        ignore_preflight_errors: nr.ignore_preflight_errors,
    })
}

/// `controlPlane` and `discovery.file`: kaas-join cannot do what they ask for.
fn refuse_unsupported(c: &KubeadmJoinConfiguration, path: &Path) -> Result<(), ConfigError> {
    let unsupported = |field, reason| ConfigError::Unsupported {
        path: path.to_owned(),
        field,
        reason,
    };
    if c.control_plane.is_some() {
        return Err(unsupported(
            "controlPlane",
            "kaas-join joins worker nodes only; use `kubeadm join --control-plane` for a \
             control-plane node",
        ));
    }
    if c.discovery.file.is_some() {
        return Err(unsupported(
            "discovery.file",
            "kaas-join discovers the cluster with a bootstrap token only; use \
             discovery.bootstrapToken (apiServerEndpoint, token, caCertHashes)",
        ));
    }
    Ok(())
}

/// `skipPhases`, `patches` and a `caCertPath` other than kubeadm's: accepted, without effect.
fn warn_ignored(c: &KubeadmJoinConfiguration, path: &Path, warnings: &mut Vec<Warning>) {
    let mut ignored = |what: String, why: &str| {
        warnings.push(Warning(format!(
            "config file {}: {what} is ignored: {why}",
            path.display()
        )))
    };
    if !c.skip_phases.is_empty() {
        ignored(
            format!("skipPhases ({})", c.skip_phases.join(", ")),
            "kaas-join has its own phases and runs them all",
        );
    }
    if c.patches.is_some() {
        ignored(
            "patches".to_owned(),
            "put kubelet settings in a KubeletConfiguration document instead",
        );
    }
    if let Some(p) = c
        .ca_cert_path
        .as_deref()
        .filter(|p| *p != KUBEADM_CA_CERT_PATH)
    {
        ignored(
            format!("caCertPath {p}"),
            "the CA is always written to /etc/kubernetes/pki/ca.crt, where kubelet expects it",
        );
    }
}

/// The one token of `discovery.bootstrapToken.token` and `discovery.tlsBootstrapToken`, and the
/// field it came from (for messages).
fn token_of(
    discovery: &KubeadmDiscovery,
    path: &Path,
) -> Result<(Option<Zeroizing<String>>, &'static str), ConfigError> {
    let discovery_token = discovery
        .bootstrap_token
        .as_ref()
        .and_then(|b| b.token.as_ref())
        .map(|t| &t.0);
    let tls_token = discovery.tls_bootstrap_token.as_ref().map(|t| &t.0);
    Ok(match (discovery_token, tls_token) {
        (Some(d), Some(t)) if d.trim() != t.trim() => {
            return Err(ConfigError::TokenMismatch {
                path: path.to_owned(),
            })
        }
        (_, Some(t)) => (Some(t.clone()), "discovery.tlsBootstrapToken"),
        (Some(d), None) => (Some(d.clone()), "discovery.bootstrapToken.token"),
        (None, None) => (None, "token"),
    })
}

/// `nodeRegistration.kubeletExtraArgs`: a list of `{name, value}` (v1beta4) or a map (v1beta3).
fn extra_args(
    value: Value,
    v1beta3: bool,
    path: &Path,
    doc: usize,
) -> Result<Vec<(String, String)>, ConfigError> {
    let field_error = |e: serde_norway::Error| ConfigError::Document {
        path: path.to_owned(),
        doc,
        message: format!(
            "nodeRegistration.kubeletExtraArgs: {e} (v1beta4 wants a list of {{name, value}}, \
             v1beta3 a map)"
        ),
    };
    if v1beta3 {
        let map: BTreeMap<String, String> = serde_norway::from_value(value).map_err(field_error)?;
        Ok(map.into_iter().collect())
    } else {
        let list: Vec<ExtraArg> = serde_norway::from_value(value).map_err(field_error)?;
        Ok(list.into_iter().map(|a| (a.name, a.value)).collect())
    }
}

/// `nodeRegistration.taints` as the kubelet extra arg `register-with-taints`, which must not be
/// given in `kubeletExtraArgs` as well.
fn register_with_taints(
    taints: &[KubeadmTaint],
    extra_args: &[(String, String)],
    path: &Path,
) -> Result<(String, String), ConfigError> {
    if extra_args.iter().any(|(n, _)| n == "register-with-taints") {
        return Err(ConfigError::InvalidKubeletArg {
            path: path.to_owned(),
            name: "register-with-taints".into(),
            reason: "is given as well as nodeRegistration.taints: keep one".into(),
        });
    }
    let mut specs = Vec::new();
    for t in taints {
        specs.push(taint_spec(t).map_err(|reason| ConfigError::InvalidTaint {
            path: path.to_owned(),
            taint: format!("{}={}:{}", t.key, t.value, t.effect),
            reason,
        })?);
    }
    Ok(("register-with-taints".into(), specs.join(",")))
}

/// kubelet's `--register-with-taints` item: `key=value:Effect`, or `key:Effect` without value.
fn taint_spec(t: &KubeadmTaint) -> Result<String, String> {
    labels::check_qualified_name(&t.key).map_err(|r| format!("has an invalid key: {r}"))?;
    labels::check_label_value(&t.value).map_err(|r| format!("has an invalid value: it {r}"))?;
    if !matches!(
        t.effect.as_str(),
        "NoSchedule" | "PreferNoSchedule" | "NoExecute"
    ) {
        return Err("has an invalid effect: use NoSchedule, PreferNoSchedule or NoExecute".into());
    }
    Ok(if t.value.is_empty() {
        format!("{}:{}", t.key, t.effect)
    } else {
        format!("{}={}:{}", t.key, t.value, t.effect)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taint_specs() {
        let t = |key: &str, value: &str, effect: &str| KubeadmTaint {
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
            time_added: None,
        };
        assert_eq!(
            taint_spec(&t("dedicated", "gpu", "NoSchedule")).unwrap(),
            "dedicated=gpu:NoSchedule"
        );
        assert_eq!(
            taint_spec(&t("example.com/x", "", "NoExecute")).unwrap(),
            "example.com/x:NoExecute"
        );
        assert!(taint_spec(&t("a", "b", "Sometimes")).is_err());
        assert!(taint_spec(&t("a b", "", "NoSchedule")).is_err());
    }
}
