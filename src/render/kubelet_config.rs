//! kubelet's `/var/lib/kubelet/config.yaml` and `/var/lib/kubelet/kubeadm-flags.env`, as
//! `kubeadm join` writes them.
//!
//! The KubeletConfiguration starts from the cluster's (`kube-system/kubelet-config`, key
//! `kubelet`) or, on control planes that publish none, from kubeadm's defaulted configuration;
//! the user's fragment is deep-merged over it; then the secure defaults (CIS kubelet benchmark)
//! are put back wherever the user did not set that field explicitly, so an override can never
//! silently drop one. The result is printed the way kubeadm prints it (go-yaml v2 via
//! sigs.k8s.io/yaml: keys sorted, `"0"` and `""` double-quoted, sequences not indented), so the
//! file for the recorded cluster is byte-identical to the one `kubeadm join` wrote.
//!
//! The flags file follows `cmd/kubeadm/app/phases/kubelet/flags.go`: generated flags, replaced by
//! same-named extra args, sorted by name then value, joined and quoted with Go's `%q`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_norway::{Mapping, Value};

use crate::model::cgroup_driver::CgroupDriver;
use crate::model::exit_code::ExitCode;

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
    let mut out = String::new();
    emit_document(&mut out, &cfg)?;
    Ok(out)
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

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
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
    // readOnlyPort: absent means 0 (disabled) for a config file, and kubeadm leaves it out
    // (omitempty); only a non-zero value from the cluster needs correcting.
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
    set_path(cfg, &["apiVersion"], s(API_VERSION))?;
    set_path(cfg, &["kind"], s(KIND))?;
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

/// What goes into `/var/lib/kubelet/kubeadm-flags.env`.
#[derive(Debug, Clone)]
pub struct KubeletFlags<'a> {
    pub cri_endpoint: &'a str,
    pub node_ip: Option<IpAddr>,
    /// Set when the node name differs from the hostname (else kubelet registers the wrong name).
    pub hostname_override: Option<&'a str>,
    pub node_labels: &'a BTreeMap<String, String>,
    /// `(name, value)` without the leading `--`; a name given here replaces the generated flag.
    pub extra_args: &'a [(String, String)],
}

/// Renders `KUBELET_KUBEADM_ARGS="..."\n` exactly as kubeadm does (`ArgumentsToCommand`: extra
/// args replace same-named generated ones; everything sorted by name, then value).
pub fn render_flags_env(flags: &KubeletFlags) -> String {
    let mut base: Vec<(String, String)> = vec![(
        "container-runtime-endpoint".into(),
        flags.cri_endpoint.to_owned(),
    )];
    if let Some(h) = flags.hostname_override {
        base.push(("hostname-override".into(), h.to_owned()));
    }
    if let Some(ip) = flags.node_ip {
        base.push(("node-ip".into(), ip.to_string()));
    }
    if !flags.node_labels.is_empty() {
        let labels: Vec<String> = flags
            .node_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        base.push(("node-labels".into(), labels.join(",")));
    }
    // Names are accepted with or without the leading dashes.
    let extra: Vec<(String, String)> = flags
        .extra_args
        .iter()
        .map(|(n, v)| (n.trim_start_matches('-').to_owned(), v.clone()))
        .collect();
    let mut args: Vec<(String, String)> = extra.clone();
    args.extend(
        base.into_iter()
            .filter(|(n, _)| !extra.iter().any(|(e, _)| e == n)),
    );
    args.sort();
    let joined: Vec<String> = args.iter().map(|(n, v)| format!("--{n}={v}")).collect();
    format!("KUBELET_KUBEADM_ARGS={}\n", go_quote(&joined.join(" ")))
}

/// Go's `strconv.Quote` (`%q`): what kubeadm uses for the env file.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || c == '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// YAML output in go-yaml v2's style (what sigs.k8s.io/yaml, and so kubeadm, prints).
// serde_norway prints `''` and `'0'` where go-yaml prints `""` and `"0"`, and keeps input key
// order where go-yaml sorts; a kubelet reads both the same, but byte-identity with kubeadm's file
// is what lets the golden test catch real differences.

fn emit_document(out: &mut String, v: &Value) -> Result<(), KubeletConfigError> {
    match v {
        Value::Mapping(m) if !m.is_empty() => emit_mapping(out, m, 0, false, ""),
        Value::Sequence(q) if !q.is_empty() => emit_sequence(out, q, 0, false, ""),
        other => {
            emit_inline(out, other, 0, "")?;
            out.push('\n');
            Ok(())
        }
    }
}

fn key_string(k: &Value) -> String {
    // kubeadm goes through JSON, where every key is a string.
    match k {
        Value::String(s) => s.clone(),
        other => scalar_text(other),
    }
}

fn field_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Entries of a non-empty mapping at `indent`; the first line's indentation is already written
/// when it follows a `- `.
fn emit_mapping(
    out: &mut String,
    m: &Mapping,
    indent: usize,
    first_inline: bool,
    parent: &str,
) -> Result<(), KubeletConfigError> {
    let mut entries: Vec<(String, &Value)> = m.iter().map(|(k, v)| (key_string(k), v)).collect();
    entries.sort_by(|a, b| go_yaml_key_cmp(&a.0, &b.0));
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 || !first_inline {
            push_indent(out, indent);
        }
        let path = field_path(parent, &key);
        emit_string(out, &key, indent, true);
        out.push(':');
        match value {
            Value::Mapping(c) if !c.is_empty() => {
                out.push('\n');
                emit_mapping(out, c, indent + 2, false, &path)?;
            }
            // go-yaml does not indent a sequence under its mapping key.
            Value::Sequence(q) if !q.is_empty() => {
                out.push('\n');
                emit_sequence(out, q, indent, false, &path)?;
            }
            other => {
                out.push(' ');
                emit_inline(out, other, indent + 2, &path)?;
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    Ok(())
}

fn emit_sequence(
    out: &mut String,
    q: &[Value],
    indent: usize,
    first_inline: bool,
    parent: &str,
) -> Result<(), KubeletConfigError> {
    for (i, item) in q.iter().enumerate() {
        if i > 0 || !first_inline {
            push_indent(out, indent);
        }
        out.push_str("- ");
        let path = format!("{parent}[{i}]");
        match item {
            Value::Mapping(c) if !c.is_empty() => emit_mapping(out, c, indent + 2, true, &path)?,
            Value::Sequence(c) if !c.is_empty() => emit_sequence(out, c, indent + 2, true, &path)?,
            other => {
                emit_inline(out, other, indent + 2, &path)?;
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    Ok(())
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A scalar or an empty collection on the current line (a literal block continues below it at
/// `block_indent`).
fn emit_inline(
    out: &mut String,
    v: &Value,
    block_indent: usize,
    path: &str,
) -> Result<(), KubeletConfigError> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                out.push_str(&go_float(n.as_f64().unwrap_or(f64::NAN)));
            }
        }
        Value::String(st) => emit_string(out, st, block_indent, false),
        Value::Mapping(_) => out.push_str("{}"),
        Value::Sequence(_) => out.push_str("[]"),
        Value::Tagged(_) => {
            return Err(KubeletConfigError::Tagged {
                field: path.to_owned(),
            })
        }
    }
    Ok(())
}

/// go-yaml v2 `floatv`: `strconv.FormatFloat(f, 'g', -1, 64)` plus YAML's infinities.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    let sci = format!("{f:e}"); // shortest digits, e.g. "1.5e6"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go switches to an exponent outside [-4, 6) for the shortest representation.
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// go-yaml v2 `stringv` + libyaml's style analysis: literal block for multi-line text, double
/// quotes when plain text would read back as another type (YAML 1.1 rules: `"0"`, `""`, `"on"`),
/// plain when libyaml allows it, else single quotes, else double quotes.
fn emit_string(out: &mut String, st: &str, block_indent: usize, is_key: bool) {
    let special = st.chars().any(|c| !is_printable(c));
    if st.contains('\n') {
        let space_break = st.contains(" \n");
        if !is_key && !special && !space_break && !st.ends_with(' ') {
            emit_literal(out, st, block_indent);
        } else {
            emit_double_quoted(out, st);
        }
    } else if resolves_to_non_string(st) || is_base60_float(st) {
        emit_double_quoted(out, st);
    } else if !special && plain_allowed(st) {
        out.push_str(st);
    } else if !special {
        out.push('\'');
        out.push_str(&st.replace('\'', "''"));
        out.push('\'');
    } else {
        emit_double_quoted(out, st);
    }
}

fn emit_literal(out: &mut String, st: &str, indent: usize) {
    out.push('|');
    if st.starts_with(' ') {
        out.push('2'); // indentation indicator, libyaml's best_indent
    }
    let body = match st.strip_suffix('\n') {
        None => {
            out.push('-');
            st
        }
        Some(rest) if rest.ends_with('\n') || rest.is_empty() => {
            out.push('+');
            rest
        }
        Some(rest) => rest,
    };
    out.push('\n');
    for line in body.split('\n') {
        if !line.is_empty() {
            push_indent(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
}

fn emit_double_quoted(out: &mut String, st: &str) {
    out.push('"');
    for c in st.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if is_printable(c) => out.push(c),
            c if (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
}

/// libyaml's `is_printable` (tab and astral-plane characters are not).
fn is_printable(c: char) -> bool {
    matches!(c, '\n' | ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        && c != '\u{feff}'
}

/// libyaml's plain-scalar rules for block context (the string has no line break).
fn plain_allowed(st: &str) -> bool {
    if st.is_empty() || st.starts_with("---") || st.starts_with("...") {
        return false;
    }
    if st.starts_with(' ') || st.ends_with(' ') {
        return false;
    }
    let chars: Vec<char> = st.chars().collect();
    let blank = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    let mut preceded_by_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = chars.get(i + 1).is_none_or(|&n| blank(n));
        let indicator = if i == 0 {
            matches!(
                c,
                '#' | ','
                    | '['
                    | ']'
                    | '{'
                    | '}'
                    | '&'
                    | '*'
                    | '!'
                    | '|'
                    | '>'
                    | '\''
                    | '"'
                    | '%'
                    | '@'
                    | '`'
            ) || (matches!(c, '?' | ':' | '-') && followed_by_ws)
        } else {
            (c == ':' && followed_by_ws) || (c == '#' && preceded_by_ws)
        };
        if indicator {
            return false;
        }
        preceded_by_ws = blank(c);
    }
    true
}

/// go-yaml v2 `resolve("", s)` != `!!str`: YAML 1.1 booleans, nulls, numbers, timestamps.
fn resolves_to_non_string(st: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if SPECIAL.contains(&st) {
        return true;
    }
    match st.as_bytes()[0] {
        b'.' => is_yaml_float(st),
        b'0'..=b'9' | b'+' | b'-' => {
            if looks_like_timestamp(st) {
                return true;
            }
            let plain = st.replace('_', "");
            go_parse_int(&plain) || is_yaml_float(&plain)
        }
        _ => false,
    }
}

/// Go `strconv.ParseInt(s, 0, 64)` or `ParseUint` would accept it (range aside).
fn go_parse_int(st: &str) -> bool {
    let digits = st.strip_prefix(['+', '-']).unwrap_or(st);
    let (radix, rest) = if let Some(r) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        (16, r)
    } else if let Some(r) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
        (2, r)
    } else if let Some(r) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        (8, r)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    !rest.is_empty() && rest.chars().all(|c| c.is_digit(radix))
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$` (go-yaml's yamlStyleFloat).
fn is_yaml_float(st: &str) -> bool {
    let b = st.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// go-yaml's timestamp hint: four digits and a dash, then a date (and maybe a time).
fn looks_like_timestamp(st: &str) -> bool {
    let b = st.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && {
        let rest = &st[5..];
        let date_end = rest.find(['T', 't', ' ']).unwrap_or(rest.len());
        let mut parts = rest[..date_end].split('-');
        let ok = |p: Option<&str>| {
            p.is_some_and(|p| (1..=2).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()))
        };
        ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
    }
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$` (YAML 1.1 sexagesimal, quoted by go-yaml).
fn is_base60_float(st: &str) -> bool {
    let body = st.strip_prefix(['+', '-']).unwrap_or(st);
    let (main, frac) = match body.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (body, None),
    };
    if frac.is_some_and(|f| !f.bytes().all(|c| c.is_ascii_digit() || c == b'_')) {
        return false;
    }
    let mut groups = main.split(':');
    let head = groups.next().unwrap_or("");
    let head_ok = head.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && head.bytes().all(|c| c.is_ascii_digit() || c == b'_');
    let mut n = 0;
    let rest_ok = groups.all(|g| {
        n += 1;
        let g = g.as_bytes();
        match g {
            [d] => d.is_ascii_digit(),
            [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
            _ => false,
        }
    });
    head_ok && n > 0 && rest_ok
}

/// go-yaml v2's key order (`keyList.Less`): runes compared one by one, letters after other
/// characters, runs of digits compared as numbers.
fn go_yaml_key_cmp(a: &str, b: &str) -> Ordering {
    if a == b {
        Ordering::Equal
    } else if go_yaml_key_less(a, b) {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

fn go_yaml_key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            for j in (0..i).rev() {
                if !ar[j].is_ascii_digit() {
                    break;
                }
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
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
    fn go_yaml_scalar_styles() {
        let one = |st: &str| {
            let mut o = String::new();
            emit_string(&mut o, st, 2, false);
            o
        };
        assert_eq!(one(""), "\"\"");
        assert_eq!(one("0"), "\"0\"");
        assert_eq!(one("0s"), "0s");
        assert_eq!(one("10.96.0.10"), "10.96.0.10");
        assert_eq!(one("1.5"), "\"1.5\"");
        assert_eq!(one("1e3"), "\"1e3\"");
        assert_eq!(one("0x1F"), "\"0x1F\"");
        assert_eq!(one("on"), "\"on\"");
        assert_eq!(one("y"), "\"y\"");
        assert_eq!(one("null"), "\"null\"");
        assert_eq!(one("10:30"), "\"10:30\"");
        assert_eq!(one("2001-12-14"), "\"2001-12-14\"");
        assert_eq!(one("*x"), "'*x'");
        assert_eq!(one("a: b"), "'a: b'");
        assert_eq!(one("a #b"), "'a #b'");
        assert_eq!(one("a#b"), "a#b");
        assert_eq!(one(" lead"), "' lead'");
        assert_eq!(one("- x"), "'- x'");
        assert_eq!(one("-x"), "-x");
        assert_eq!(one("it's"), "it's");
        assert_eq!(one("'q'"), "'''q'''");
        assert_eq!(one("tab\there"), "\"tab\\there\"");
        assert_eq!(
            one("/etc/kubernetes/pki/ca.crt"),
            "/etc/kubernetes/pki/ca.crt"
        );
        assert_eq!(one("a\nb\n"), "|\n  a\n  b\n");
        assert_eq!(one("a\nb"), "|-\n  a\n  b\n");
        assert_eq!(one("a \nb"), "\"a \\nb\"");
    }

    #[test]
    fn go_yaml_key_order() {
        let mut keys = vec![
            "clusterDomain",
            "clusterDNS",
            "address",
            "apiVersion",
            "a10",
            "a9",
            "a-b",
            "ab",
        ];
        keys.sort_by(|a, b| go_yaml_key_cmp(a, b));
        assert_eq!(
            keys,
            [
                "a-b",
                "a9",
                "a10",
                "ab",
                "address",
                "apiVersion",
                "clusterDNS",
                "clusterDomain"
            ]
        );
    }

    #[test]
    fn nested_collections_layout() {
        let v = yaml("b: [[1, 2], {x: 1, z: [a]}]\na: {}\nc: []\nd: 1.5\ne: null\ny: 1\n");
        let mut out = String::new();
        emit_document(&mut out, &v).unwrap();
        // `y` is a YAML 1.1 boolean: go-yaml quotes it even as a key.
        assert_eq!(
            out,
            "a: {}\nb:\n- - 1\n  - 2\n- x: 1\n  z:\n  - a\nc: []\nd: 1.5\ne: null\n\"y\": 1\n"
        );
        assert_eq!(yaml(&out), v);
    }

    #[test]
    fn floats_like_go() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(100000.0), "100000");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(f64::INFINITY), ".inf");
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
    }

    #[test]
    fn flags_sorted_overridden_and_quoted() {
        let labels = BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]);
        let extra = vec![
            ("--node-ip".to_string(), "10.0.0.5".to_string()),
            ("v".to_string(), "2".to_string()),
        ];
        let out = render_flags_env(&KubeletFlags {
            cri_endpoint: "unix:///run/containerd/containerd.sock",
            node_ip: Some("10.0.0.4".parse().unwrap()),
            hostname_override: None,
            node_labels: &labels,
            extra_args: &extra,
        });
        assert_eq!(
            out,
            "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock \
             --node-ip=10.0.0.5 --node-labels=a=1,b=2 --v=2\"\n"
        );
        assert_eq!(go_quote("a\"b\\c\td"), "\"a\\\"b\\\\c\\td\"");
    }
}
