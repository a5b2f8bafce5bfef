//! Kubelet settings in the config file, lifted into fields so that they are validated and a flag
//! can override them.
//!
//! In either format, `kubeletExtraArgs` entries `node-ip` (a single address) and `node-labels`
//! become `nodeIP` and `nodeLabels` (so that they are validated and a flag can override them),
//! and `cgroupDriver`, `clusterDNS` and `clusterDomain` in the kubelet overrides become the
//! fields of the same name (and are removed from the overrides), so `--cgroup-driver` and friends
//! win over the file as documented.
//!
//! `file` calls both lifts once the file's documents are read. What stays in the kubelet
//! overrides is only checked to be a mapping of the right apiVersion/kind here; this is the
//! place to validate it against KubeletConfiguration v1beta1 field by field.

use serde_norway::{Mapping, Value};

use super::file::FileSettings;
use super::{parse_ip, ConfigError, Warning};
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::labels;

pub(super) const KUBELET_CONFIG_API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";

/// Checks the kubelet overrides and moves `cgroupDriver`, `clusterDNS` and `clusterDomain` out of
/// them into the settings, so that flags can override them (see the module doc).
pub(super) fn lift_kubelet_settings(settings: &mut FileSettings) -> Result<(), ConfigError> {
    let path = settings.path.clone();
    let invalid = |reason: String| ConfigError::InvalidKubeletConfig {
        path: path.clone(),
        reason,
    };
    let Some(kubelet) = settings.kubelet.as_mut() else {
        return Ok(());
    };
    let Some(map) = kubelet.as_mapping_mut() else {
        return Err(invalid(
            "is not a mapping: give KubeletConfiguration fields, e.g. maxPods: 50".into(),
        ));
    };
    check_type_field(map, "apiVersion", KUBELET_CONFIG_API_VERSION).map_err(invalid)?;
    check_type_field(map, "kind", "KubeletConfiguration").map_err(invalid)?;
    let cgroup_driver = map.shift_remove("cgroupDriver");
    let cluster_dns = map.shift_remove("clusterDNS");
    let cluster_domain = map.shift_remove("clusterDomain");
    let nothing_left = map.is_empty();
    if let Some(v) = cgroup_driver {
        lift_cgroup_driver(settings, v).map_err(invalid)?;
    }
    if let Some(v) = cluster_dns {
        lift_cluster_dns(settings, v).map_err(invalid)?;
    }
    if let Some(v) = cluster_domain {
        lift_cluster_domain(settings, v).map_err(invalid)?;
    }
    if nothing_left {
        settings.kubelet = None;
    }
    Ok(())
}

/// Removes `apiVersion` or `kind` from the overrides: absent, or the one `expected` value.
fn check_type_field(map: &mut Mapping, field: &str, expected: &str) -> Result<(), String> {
    match map.shift_remove(field) {
        None => Ok(()),
        Some(Value::String(v)) if v == expected => Ok(()),
        Some(other) => Err(format!(
            "has {field} {other:?}: only {expected} is accepted"
        )),
    }
}

/// The overrides' `cgroupDriver`, which must agree with the file's `cgroupDriver` field.
fn lift_cgroup_driver(settings: &mut FileSettings, v: Value) -> Result<(), String> {
    let driver: CgroupDriver =
        serde_norway::from_value(v).map_err(|e| format!("cgroupDriver: {e}"))?;
    match settings.cgroup_driver {
        Some(d) if d != driver => Err(format!(
            "sets cgroupDriver {} but cgroupDriver {} is also given: keep one",
            driver.as_str(),
            d.as_str()
        )),
        _ => {
            settings.cgroup_driver = Some(driver);
            Ok(())
        }
    }
}

/// The overrides' `clusterDNS`, which must agree with the file's `clusterDNS` field.
fn lift_cluster_dns(settings: &mut FileSettings, v: Value) -> Result<(), String> {
    let dns: Vec<String> = serde_norway::from_value(v).map_err(|e| format!("clusterDNS: {e}"))?;
    if settings.cluster_dns.is_empty() {
        settings.cluster_dns = dns;
    } else if settings.cluster_dns != dns {
        return Err(
            "sets clusterDNS but clusterDNS is also given with other values: keep one".into(),
        );
    }
    Ok(())
}

/// The overrides' `clusterDomain`, which must agree with the file's `clusterDomain` field.
fn lift_cluster_domain(settings: &mut FileSettings, v: Value) -> Result<(), String> {
    let domain: String = serde_norway::from_value(v).map_err(|e| format!("clusterDomain: {e}"))?;
    match &settings.cluster_domain {
        Some(d) if *d != domain => Err(
            "sets clusterDomain but clusterDomain is also given with another value: keep \
             one"
            .into(),
        ),
        _ => {
            settings.cluster_domain = Some(domain);
            Ok(())
        }
    }
}

/// Validates the kubelet extra args and lifts `node-ip` and `node-labels` into fields.
pub(super) fn lift_extra_args(
    settings: &mut FileSettings,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    let args = std::mem::take(&mut settings.kubelet_extra_args);
    for (name, value) in args {
        check_extra_arg_name(&name).map_err(|reason| ConfigError::InvalidKubeletArg {
            path: settings.path.clone(),
            name: name.clone(),
            reason: reason.to_owned(),
        })?;
        match name.as_str() {
            "node-ip" if parse_ip(&value).is_some() => {
                if settings.node_ip.is_some() {
                    warnings.push(Warning(format!(
                        "config file {}: kubeletExtraArgs node-ip={value} is ignored: nodeIP is \
                         also given",
                        settings.path.display()
                    )));
                } else {
                    settings.node_ip = Some(value);
                }
            }
            "node-labels" => {
                // Validated like --node-labels; the file's nodeLabels win over them.
                for (k, v) in labels::parse_node_labels(std::slice::from_ref(&value))? {
                    settings.node_labels.entry(k).or_insert(v);
                }
            }
            _ => settings.kubelet_extra_args.push((name, value)),
        }
    }
    Ok(())
}

/// A kubelet flag's name as `kubeletExtraArgs` wants it: bare, without dashes or a value.
fn check_extra_arg_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty: give a kubelet flag name, e.g. max-pods");
    }
    if name.starts_with('-') {
        return Err("starts with '-': give the flag name without leading dashes, e.g. max-pods");
    }
    if name.contains(['=', ' ', '\t']) {
        return Err("contains '=' or a space: give the name and the value separately");
    }
    Ok(())
}
