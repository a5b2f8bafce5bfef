//! kubelet's `/var/lib/kubelet/config.yaml`, as `kubeadm join` writes it (and, re-exported
//! from `super::flags_env`, the flags file beside it).
//!
//! The KubeletConfiguration starts from the cluster's (`kube-system/kubelet-config`, key
//! `kubelet`) or, on control planes that publish none, from kubeadm's defaulted configuration;
//! the user's fragment is deep-merged over it; then the secure defaults (CIS kubelet benchmark)
//! are put back wherever the user did not set that field explicitly, so an override can never
//! silently drop one. The result is printed the way kubeadm prints it (`super::go_yaml`: go-yaml
//! v2 via sigs.k8s.io/yaml, keys sorted, `"0"` and `""` double-quoted, sequences not indented),
//! so the file for the recorded cluster is byte-identical to the one `kubeadm join` wrote.
//!
//! Used by `join` (`cmd::join`), which writes the files; pure: values in, text out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_norway::{Mapping, Value};

use super::go_yaml::{self, scalar_text};
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::exit_code::ExitCode;

pub use super::flags_env::{render_flags_env, KubeletFlags};

const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
const KIND: &str = "KubeletConfiguration";

/// Errors building kubelet's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeletConfigError {
    /// The cluster's config or the user's fragment is not a YAML mapping.
    #[error("the {source_name} is not a KubeletConfiguration mapping: it must be a YAML object with fields like `cgroupDriver: systemd`")]
    NotAMapping { source_name: &'static str },
    /// apiVersion/kind name some other object.
    #[error(
        "the {source_name} has {field} {found:?}: expected apiVersion \"{API_VERSION}\" and kind \"{KIND}\" \
         (other versions are not supported; drop the field or convert the file)"
    )]
    WrongType {
        source_name: &'static str,
        field: &'static str,
        found: String,
    },
    /// A field we must set sits under something that is not a mapping.
    #[error("KubeletConfiguration field {field} must be a mapping, found {found}; fix the kubelet configuration (cluster or overrides)")]
    FieldNotAMapping { field: String, found: &'static str },
    /// A YAML tag (`!foo`), which KubeletConfiguration never uses.
    #[error("KubeletConfiguration field {field} carries a YAML tag, which kubelet does not accept; remove the tag")]
    Tagged { field: String },
    /// The service subnet does not give a DNS address.
    #[error(
        "cannot derive clusterDNS from service subnet {subnets:?}: {reason}; expected a \
         comma-separated CIDR list like \"10.96.0.0/12\", or set clusterDNS explicitly"
    )]
    ServiceSubnet {
        subnets: String,
        reason: &'static str,
    },
}

impl KubeletConfigError {
    /// The documented exit code: always Usage (kubelet settings that cannot be rendered are bad input).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

/// Everything that decides kubelet's configuration file.
#[derive(Debug, Clone)]
pub struct KubeletConfigInputs<'a> {
    /// The cluster's KubeletConfiguration (`kube-system/kubelet-config`, key `kubelet`); `None`
    /// on control planes that publish none.
    pub cluster: Option<&'a Value>,
    /// The user's KubeletConfiguration fragment.
    pub overrides: Option<&'a Value>,
    /// Used when the merged configuration has no clusterDNS.
    pub cluster_dns: Vec<IpAddr>,
    /// Used when the merged configuration has no clusterDomain.
    pub cluster_domain: String,
    /// What the container runtime uses.
    pub cgroup_driver: CgroupDriver,
    /// `/etc/kubernetes/pki/ca.crt`: kubelet trusts client certs signed by the cluster CA.
    pub client_ca_file: &'a str,
}

/// Renders `/var/lib/kubelet/config.yaml`.
pub fn render_kubelet_config(inputs: &KubeletConfigInputs) -> Result<String, KubeletConfigError> {
    let mut cfg = match inputs.cluster {
        Some(c) => {
            check_type(
                c,
                "cluster's KubeletConfiguration (kube-system/kubelet-config)",
            )?;
            c.clone()
        }
        None => kubeadm_default(inputs),
    };
    let empty = Value::Mapping(Mapping::new());
    let overrides = match inputs.overrides {
        Some(o) if !o.is_null() => {
            check_type(o, "kubelet overrides")?;
            o
        }
        _ => &empty,
    };
    deep_merge(&mut cfg, overrides);
    enforce(&mut cfg, overrides, inputs)?;
    go_yaml::to_string(&cfg).map_err(|t| KubeletConfigError::Tagged { field: t.field })
}

/// Refuses non-mappings and other object types (a missing apiVersion/kind is filled in later).
fn check_type(v: &Value, source_name: &'static str) -> Result<(), KubeletConfigError> {
    let Value::Mapping(m) = v else {
        return Err(KubeletConfigError::NotAMapping { source_name });
    };
    for (field, want) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        match m.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == want => {}
            Some(other) => {
                return Err(KubeletConfigError::WrongType {
                    source_name,
                    field,
                    found: scalar_text(other),
                })
            }
        }
    }
    Ok(())
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in entries {
        m.insert(s(k), v);
    }
    Value::Mapping(m)
}

/// kubeadm's defaulted KubeletConfiguration (componentconfigs/kubelet.go `Default()`), without
/// the zero-valued fields its Go struct adds on marshalling (`0s` durations and the like, which
/// kubelet's own defaulting treats as unset). clusterDNS, clusterDomain, cgroupDriver and the
/// secure fields are filled in by [`enforce`] like for a cluster config.
fn kubeadm_default(inputs: &KubeletConfigInputs) -> Value {
    map(vec![
        ("apiVersion", s(API_VERSION)),
        ("kind", s(KIND)),
        (
            "authentication",
            map(vec![
                ("anonymous", map(vec![("enabled", Value::Bool(false))])),
                ("webhook", map(vec![("enabled", Value::Bool(true))])),
                (
                    "x509",
                    map(vec![("clientCAFile", s(inputs.client_ca_file))]),
                ),
            ]),
        ),
        ("authorization", map(vec![("mode", s("Webhook"))])),
        ("healthzBindAddress", s("127.0.0.1")),
        ("healthzPort", Value::Number(10248.into())),
        ("rotateCertificates", Value::Bool(true)),
        ("staticPodPath", s("/etc/kubernetes/manifests")),
    ])
}

/// Maps merge key by key, recursively; anything else (scalars, lists) replaces. A `null` in the
/// overrides removes the field, as in a JSON merge patch (RFC 7386).
fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                    continue;
                }
                match b.get_mut(k) {
                    Some(existing @ Value::Mapping(_)) if v.is_mapping() => deep_merge(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn get_path<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |cur, k| cur.as_mapping()?.get(*k))
}

/// Did the user's fragment name this field at all (even as `null`)?
fn explicitly_set(overrides: &Value, path: &[&str]) -> bool {
    let (last, parents) = path.split_last().expect("non-empty path");
    get_path(overrides, parents)
        .and_then(Value::as_mapping)
        .is_some_and(|m| m.contains_key(*last))
}

/// Sets a nested field, creating missing (or null) parent mappings.
fn set_path(v: &mut Value, path: &[&str], value: Value) -> Result<(), KubeletConfigError> {
    let mut cur = v;
    for (i, key) in path.iter().enumerate() {
        if cur.is_null() {
            *cur = Value::Mapping(Mapping::new());
        }
        let found = kind_name(cur);
        let Value::Mapping(m) = cur else {
            return Err(KubeletConfigError::FieldNotAMapping {
                field: path[..i].join("."),
                found,
            });
        };
        if i + 1 == path.len() {
            m.insert(s(key), value);
            return Ok(());
        }
        cur = m.entry(s(key)).or_insert(Value::Null);
    }
    Ok(())
}

/// Puts back the secure and node-specific fields, except where the user's fragment set them.
fn enforce(
    cfg: &mut Value,
    overrides: &Value,
    inputs: &KubeletConfigInputs,
) -> Result<(), KubeletConfigError> {
    restore_secure_fields(cfg, overrides, inputs)?;
    close_read_only_port(cfg, overrides)?;
    fill_cluster_dns(cfg, inputs)?;
    set_path(cfg, &["apiVersion"], s(API_VERSION))?;
    set_path(cfg, &["kind"], s(KIND))?;
    Ok(())
}

/// The CIS fields (anonymous auth off, webhook authn/authz, the client CA, certificate
/// rotation) and this node's cgroup driver, over whatever the cluster's config says.
fn restore_secure_fields(
    cfg: &mut Value,
    overrides: &Value,
    inputs: &KubeletConfigInputs,
) -> Result<(), KubeletConfigError> {
    let secure: [(&[&str], Value); 6] = [
        (
            &["authentication", "anonymous", "enabled"],
            Value::Bool(false),
        ),
        (&["authentication", "webhook", "enabled"], Value::Bool(true)),
        (
            &["authentication", "x509", "clientCAFile"],
            s(inputs.client_ca_file),
        ),
        (&["authorization", "mode"], s("Webhook")),
        (&["rotateCertificates"], Value::Bool(true)),
        (&["cgroupDriver"], s(inputs.cgroup_driver.as_str())),
    ];
    for (path, want) in secure {
        if explicitly_set(overrides, path) {
            continue;
        }
        let current = get_path(cfg, path);
        if let Some(cur) = current.filter(|c| **c != want && !c.is_null()) {
            // The cluster's cgroup driver is the uploading machine's; this node's runtime decides.
            if path == ["cgroupDriver"] {
                tracing::info!(
                    cluster_value = scalar_text(cur),
                    our_value = scalar_text(&want),
                    "using this node's cgroup driver, not the one in the cluster's kubelet config"
                );
                if current != Some(&want) {
                    set_path(cfg, path, want)?;
                }
                continue;
            }
            tracing::warn!(
                field = path.join("."),
                cluster_value = scalar_text(cur),
                our_value = scalar_text(&want),
                "replacing the cluster's kubelet setting; set it in the kubelet overrides to keep it"
            );
        }
        if current != Some(&want) {
            set_path(cfg, path, want)?;
        }
    }
    Ok(())
}

/// readOnlyPort: absent means 0 (disabled) for a config file, and kubeadm leaves it out
/// (omitempty); only a non-zero value from the cluster needs correcting.
fn close_read_only_port(cfg: &mut Value, overrides: &Value) -> Result<(), KubeletConfigError> {
    if !explicitly_set(overrides, &["readOnlyPort"]) {
        if let Some(port) = get_path(cfg, &["readOnlyPort"]) {
            if port.as_u64() != Some(0) {
                tracing::warn!(
                    cluster_value = scalar_text(port),
                    "the cluster's kubelet config opens the unauthenticated read-only port; \
                     setting readOnlyPort to 0 (set it in the kubelet overrides to keep it)"
                );
                set_path(cfg, &["readOnlyPort"], Value::Number(0.into()))?;
            }
        }
    }
    Ok(())
}

/// clusterDNS and clusterDomain from `inputs` where the merged configuration has none.
fn fill_cluster_dns(
    cfg: &mut Value,
    inputs: &KubeletConfigInputs,
) -> Result<(), KubeletConfigError> {
    let dns_missing = match get_path(cfg, &["clusterDNS"]) {
        None | Some(Value::Null) => true,
        Some(Value::Sequence(v)) => v.is_empty(),
        Some(_) => false,
    };
    if dns_missing && !inputs.cluster_dns.is_empty() {
        let ips = inputs
            .cluster_dns
            .iter()
            .map(|ip| s(&ip.to_string()))
            .collect();
        set_path(cfg, &["clusterDNS"], Value::Sequence(ips))?;
    }
    let domain_missing = match get_path(cfg, &["clusterDomain"]) {
        None | Some(Value::Null) => true,
        Some(Value::String(d)) => d.is_empty(),
        Some(_) => false,
    };
    if domain_missing && !inputs.cluster_domain.is_empty() {
        set_path(cfg, &["clusterDomain"], s(&inputs.cluster_domain))?;
    }
    Ok(())
}

/// kubeadm's `GetDNSIP`: the first CIDR of a comma-separated list, network address + 10.
pub fn cluster_dns_from_service_subnet(subnets: &str) -> Result<IpAddr, KubeletConfigError> {
    let fail = |reason| KubeletConfigError::ServiceSubnet {
        subnets: subnets.to_owned(),
        reason,
    };
    let first = subnets.split(',').next().unwrap_or("").trim();
    let (addr, prefix) = first
        .split_once('/')
        .ok_or(fail("the CIDR has no /prefix"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| fail("the address is not an IP address"))?;
    let prefix: u32 = prefix
        .parse()
        .map_err(|_| fail("the prefix length is not a number"))?;
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > bits {
        return Err(fail("the prefix length is too long for the address family"));
    }
    // The 10th address must still be inside the subnet (2^host_bits > 10).
    if bits - prefix < 4 {
        return Err(fail("the subnet is too small to hold its 10th address"));
    }
    Ok(match addr {
        IpAddr::V4(a) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4(Ipv4Addr::from((u32::from(a) & mask) + 10))
        }
        IpAddr::V6(a) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6(Ipv6Addr::from((u128::from(a) & mask) + 10))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    fn inputs<'a>(
        cluster: Option<&'a Value>,
        overrides: Option<&'a Value>,
    ) -> KubeletConfigInputs<'a> {
        KubeletConfigInputs {
            cluster,
            overrides,
            cluster_dns: vec!["10.96.0.10".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
            cgroup_driver: CgroupDriver::Systemd,
            client_ca_file: "/etc/kubernetes/pki/ca.crt",
        }
    }

    #[test]
    fn dns_ip_from_service_subnet() {
        let ip = |s| cluster_dns_from_service_subnet(s).unwrap().to_string();
        assert_eq!(ip("10.96.0.0/12"), "10.96.0.10");
        assert_eq!(ip("10.96.5.7/12"), "10.96.0.10");
        assert_eq!(ip("10.96.0.0/12,fd00::/108"), "10.96.0.10");
        assert_eq!(ip("fd00::/108"), "fd00::a");
        assert_eq!(ip("fd00::/108,10.96.0.0/12"), "fd00::a");
        assert_eq!(ip("10.0.0.0/28"), "10.0.0.10");
        for bad in [
            "",
            "10.96.0.0",
            "10.96.0.0/33",
            "x/12",
            "10.96.0.0/x",
            "10.0.0.0/29",
            "fd00::/129",
        ] {
            let err = cluster_dns_from_service_subnet(bad).unwrap_err();
            assert!(
                matches!(err, KubeletConfigError::ServiceSubnet { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn overrides_merge_deeply_and_keep_secure_defaults() {
        let cluster = yaml("authentication:\n  anonymous:\n    enabled: true\n  webhook:\n    cacheTTL: 2m\nreadOnlyPort: 10255\nevictionHard:\n  memory.available: 100Mi\n  nodefs.available: 10%\n");
        let over = yaml("authentication:\n  webhook:\n    cacheTTL: 1m\nevictionHard:\n  memory.available: 200Mi\nfeatureGates:\n  Foo: true\n");
        let out = render_kubelet_config(&inputs(Some(&cluster), Some(&over))).unwrap();
        let v = yaml(&out);
        assert_eq!(v["authentication"]["anonymous"]["enabled"], false);
        assert_eq!(v["authentication"]["webhook"]["enabled"], true);
        assert_eq!(v["authentication"]["webhook"]["cacheTTL"], "1m");
        assert_eq!(
            v["authentication"]["x509"]["clientCAFile"],
            "/etc/kubernetes/pki/ca.crt"
        );
        assert_eq!(v["authorization"]["mode"], "Webhook");
        assert_eq!(v["readOnlyPort"], 0);
        assert_eq!(v["rotateCertificates"], true);
        assert_eq!(v["evictionHard"]["memory.available"], "200Mi");
        assert_eq!(v["evictionHard"]["nodefs.available"], "10%");
        assert_eq!(v["featureGates"]["Foo"], true);
        assert_eq!(v["cgroupDriver"], "systemd");
        assert_eq!(v["clusterDNS"][0], "10.96.0.10");
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["kind"], KIND);
    }

    #[test]
    fn explicit_overrides_win_and_null_removes() {
        let cluster = yaml("clusterDNS: [10.0.0.10]\nclusterDomain: corp.local\nstaticPodPath: /etc/kubernetes/manifests\n");
        let over = yaml("readOnlyPort: 10255\ncgroupDriver: cgroupfs\nauthorization: {mode: AlwaysAllow}\nstaticPodPath: null\n");
        let v = yaml(&render_kubelet_config(&inputs(Some(&cluster), Some(&over))).unwrap());
        assert_eq!(v["readOnlyPort"], 10255);
        assert_eq!(v["cgroupDriver"], "cgroupfs");
        assert_eq!(v["authorization"]["mode"], "AlwaysAllow");
        assert!(v.get("staticPodPath").is_none());
        // The cluster's DNS settings are kept when present.
        assert_eq!(v["clusterDNS"][0], "10.0.0.10");
        assert_eq!(v["clusterDomain"], "corp.local");
    }

    #[test]
    fn refuses_wrong_shapes() {
        let list = yaml("[1]");
        let err = render_kubelet_config(&inputs(Some(&list), None)).unwrap_err();
        assert!(
            matches!(err, KubeletConfigError::NotAMapping { .. }),
            "{err}"
        );
        let other = yaml("apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n");
        let err = render_kubelet_config(&inputs(None, Some(&other))).unwrap_err();
        assert!(
            matches!(
                err,
                KubeletConfigError::WrongType {
                    field: "apiVersion",
                    ..
                }
            ),
            "{err}"
        );
        let bad = yaml("authentication: oops\n");
        let err = render_kubelet_config(&inputs(Some(&bad), None)).unwrap_err();
        assert!(
            matches!(err, KubeletConfigError::FieldNotAMapping { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("authentication"));
        let tagged = yaml("featureGates:\n  Foo: !custom true\n");
        let err = render_kubelet_config(&inputs(None, Some(&tagged))).unwrap_err();
        assert_eq!(
            err,
            KubeletConfigError::Tagged {
                field: "featureGates.Foo".into()
            }
        );
    }
}
