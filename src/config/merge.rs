//! One function per setting group of [`JoinConfig`](super::JoinConfig): the flag's value, else
//! the config file's, else the default or what is detected; validated, with messages naming
//! where the refused value came from. [`super::load`] calls them in order; the precedence rules
//! are in the module doc of `config`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr as _;
use std::time::Duration;

use super::file::FileSettings;
use super::{
    parse_ip, ConfigError, Warning, DEFAULT_DISCOVERY_TIMEOUT, DEFAULT_TLS_BOOTSTRAP_TIMEOUT,
};
use crate::cli::JoinArgs;
use crate::host::paths::Paths;
use crate::host::runtime;
use crate::host::{Host as _, LinuxHost};
use crate::model::duration::parse_duration;
use crate::model::endpoint::{normalize_cri_socket, normalize_server};
use crate::model::labels;
use crate::model::node_name::check_node_name;
use crate::model::pin::CaPin;
use crate::model::token::BootstrapToken;

/// The list flag when given, else the file's list; with where the values came from.
fn list_source<'a>(
    flag: &'a [String],
    flag_name: &str,
    field: &'a [String],
    file: &FileSettings,
) -> (&'a [String], String) {
    if flag.is_empty() {
        (field, file.origin())
    } else {
        (flag, flag_name.to_owned())
    }
}

/// The discovery endpoints as `https://host:port` URLs, deduplicated in order; at least one.
pub(super) fn servers(args: &JoinArgs, file: &FileSettings) -> Result<Vec<String>, ConfigError> {
    let (values, from) = list_source(&args.server, "--server", &file.servers, file);
    let mut servers: Vec<String> = Vec::new();
    for value in values {
        let url = normalize_server(value).map_err(|reason| ConfigError::InvalidServer {
            value: value.clone(),
            from: from.clone(),
            reason,
        })?;
        if !servers.contains(&url) {
            servers.push(url);
        }
    }
    if servers.is_empty() {
        return Err(ConfigError::NoServer);
    }
    Ok(servers)
}

/// The CA pins, deduplicated in order (blank entries skipped); may be empty.
pub(super) fn ca_pins(args: &JoinArgs, file: &FileSettings) -> Result<Vec<CaPin>, ConfigError> {
    let (values, from) = list_source(
        &args.discovery_token_ca_cert_hash,
        "--discovery-token-ca-cert-hash",
        &file.ca_cert_hashes,
        file,
    );
    let mut ca_pins: Vec<CaPin> = Vec::new();
    for value in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        let pin = CaPin::from_str(value).map_err(|error| ConfigError::InvalidCaPin {
            value: value.to_owned(),
            from: from.clone(),
            error,
        })?;
        if !ca_pins.contains(&pin) {
            ca_pins.push(pin);
        }
    }
    Ok(ca_pins)
}

/// Whether the CA goes unchecked: only when asked for and no pin is given (then with a loud
/// warning); no pin without asking is refused.
pub(super) fn skip_ca_verification(
    args: &JoinArgs,
    file: &FileSettings,
    ca_pins: &[CaPin],
    servers: &[String],
    warnings: &mut Vec<Warning>,
) -> Result<bool, ConfigError> {
    let unsafe_requested =
        args.discovery_token_unsafe_skip_ca_verification || file.unsafe_skip_ca_verification;
    if ca_pins.is_empty() && !unsafe_requested {
        return Err(ConfigError::NoCaPin);
    }
    let unsafe_skip_ca_verification = unsafe_requested && ca_pins.is_empty();
    if unsafe_skip_ca_verification {
        warnings.push(Warning(format!(
            "CA verification is OFF (--discovery-token-unsafe-skip-ca-verification): the cluster CA \
             is taken from whichever server answers at {} without checking it against a pin, so a \
             machine in the middle could pose as the control plane and take this node; pass \
             --discovery-token-ca-cert-hash sha256:<hash> instead",
            servers.join(", ")
        )));
    } else if unsafe_requested {
        warnings.push(Warning(
            "--discovery-token-unsafe-skip-ca-verification is ignored because CA pins are given: \
             the CA is checked against them"
                .to_owned(),
        ));
    }
    Ok(unsafe_skip_ca_verification)
}

/// The node name, lowercased: `--node-name`, the file's, else `hostname` (already trimmed and
/// lowercased). Never one that contains the token's secret.
pub(super) fn node_name(
    args: &JoinArgs,
    file: &FileSettings,
    hostname: &str,
    token: &BootstrapToken,
    warnings: &mut Vec<Warning>,
) -> Result<String, ConfigError> {
    let (name_value, name_from) = match (&args.node_name, &file.node_name) {
        (Some(n), _) => (n.clone(), "--node-name".to_owned()),
        (None, Some(n)) => (n.clone(), file.origin()),
        (None, None) if hostname.is_empty() => return Err(ConfigError::NoHostname),
        (None, None) => (hostname.to_owned(), "the hostname".to_owned()),
    };
    let node_name = name_value.trim().to_lowercase();
    check_node_name(&node_name).map_err(|reason| ConfigError::InvalidNodeName {
        value: name_value.clone(),
        from: name_from.clone(),
        reason,
    })?;
    // A token pasted into the wrong field is a valid name: it would go to the cluster (Node, CSR)
    // and into every log line that names the node.
    if node_name.contains(token.secret()) {
        return Err(ConfigError::InvalidNodeName {
            value: node_name.replace(token.secret(), "****************"),
            from: name_from,
            reason:
                "contains the bootstrap token's secret (the token pasted into the wrong field?)"
                    .into(),
        });
    }
    if node_name != name_value && name_from != "the hostname" {
        warnings.push(Warning(format!(
            "node name {name_value:?} (from {name_from}) is used as {node_name:?}: Node names are \
             lowercase, as kubelet makes them"
        )));
    }
    Ok(node_name)
}

/// The file's labels, then the flags' over them.
pub(super) fn node_labels(
    args: &JoinArgs,
    file: &FileSettings,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut node_labels = file.node_labels.clone();
    node_labels.extend(labels::parse_node_labels(&args.node_labels)?);
    Ok(node_labels)
}

/// `--node-ip`, else the file's. `--node-ip` also drops a `node-ip` left in the file's
/// `kubelet_extra_args` (a dual-stack one, which was not lifted into the field).
pub(super) fn node_ip(
    args: &JoinArgs,
    file: &FileSettings,
    kubelet_extra_args: &mut Vec<(String, String)>,
    warnings: &mut Vec<Warning>,
) -> Result<Option<IpAddr>, ConfigError> {
    match (&args.node_ip, &file.node_ip) {
        (Some(v), _) => {
            let ip = parse_ip(v).ok_or_else(|| ConfigError::InvalidNodeIp {
                value: v.clone(),
                from: "--node-ip".into(),
            })?;
            // A dual-stack node-ip left in the extra args would contradict the flag.
            if kubelet_extra_args.iter().any(|(n, _)| n == "node-ip") {
                kubelet_extra_args.retain(|(n, _)| n != "node-ip");
                warnings.push(Warning(format!(
                    "kubeletExtraArgs node-ip in {} is replaced by --node-ip {ip}",
                    file.path.display()
                )));
            }
            Ok(Some(ip))
        }
        (None, Some(v)) => Ok(Some(parse_ip(v).ok_or_else(|| {
            ConfigError::InvalidNodeIp {
                value: v.clone(),
                from: file.origin(),
            }
        })?)),
        (None, None) => Ok(None),
    }
}

/// The CRI socket: given, else detected under the root (under a `--root` other than this
/// machine's, containerd's default when none is there, with a warning: see
/// [`runtime::cri_socket_for_join`]).
pub(super) fn cri_socket(
    args: &JoinArgs,
    file: &FileSettings,
    paths: &Paths,
    warnings: &mut Vec<Warning>,
) -> Result<String, ConfigError> {
    if let Some(socket) = given_cri_socket(args, file)? {
        return Ok(socket);
    }
    let on_machine = LinuxHost.is_machine_root(paths.root());
    let (socket, warning) = runtime::cri_socket_for_join(paths, on_machine)?;
    warnings.extend(warning.map(Warning));
    Ok(socket)
}

/// The CRI endpoint from `--cri-socket`, else from the file, normalized; `None` when neither
/// gives one.
pub(super) fn given_cri_socket(
    args: &JoinArgs,
    file: &FileSettings,
) -> Result<Option<String>, ConfigError> {
    let (value, from) = match (&args.cri_socket, &file.cri_socket) {
        (Some(v), _) => (v, "--cri-socket".to_owned()),
        (None, Some(v)) => (v, file.origin()),
        (None, None) => return Ok(None),
    };
    normalize_cri_socket(value)
        .map(Some)
        .map_err(|reason| ConfigError::InvalidCriSocket {
            value: value.clone(),
            from,
            reason,
        })
}

/// `--cluster-dns`, else the file's `clusterDNS` (blank entries skipped); `None` when empty.
pub(super) fn cluster_dns(
    args: &JoinArgs,
    file: &FileSettings,
) -> Result<Option<Vec<IpAddr>>, ConfigError> {
    let (values, from) = list_source(&args.cluster_dns, "--cluster-dns", &file.cluster_dns, file);
    let mut dns = Vec::new();
    for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        dns.push(parse_ip(v).ok_or_else(|| ConfigError::InvalidClusterDns {
            value: v.to_owned(),
            from: from.clone(),
        })?);
    }
    Ok((!dns.is_empty()).then_some(dns))
}

/// `--cluster-domain`, else the file's: trimmed, without the final dot, lowercased.
pub(super) fn cluster_domain(
    args: &JoinArgs,
    file: &FileSettings,
) -> Result<Option<String>, ConfigError> {
    let (v, from) = match (&args.cluster_domain, &file.cluster_domain) {
        (Some(v), _) => (v, "--cluster-domain".to_owned()),
        (None, Some(v)) => (v, file.origin()),
        (None, None) => return Ok(None),
    };
    let domain = v.trim().trim_end_matches('.').to_lowercase();
    labels::check_dns_subdomain(&domain)
        .map(|()| Some(domain))
        .map_err(|reason| ConfigError::InvalidClusterDomain {
            value: v.clone(),
            from,
            reason,
        })
}

/// `--discovery-timeout`, else the file's, else [`DEFAULT_DISCOVERY_TIMEOUT`].
pub(super) fn discovery_timeout(
    args: &JoinArgs,
    file: &FileSettings,
) -> Result<Duration, ConfigError> {
    timeout(
        (&args.discovery_timeout, "--discovery-timeout"),
        (&file.discovery_timeout, "the discovery timeout"),
        file,
        DEFAULT_DISCOVERY_TIMEOUT,
    )
}

/// `--tls-bootstrap-timeout`, else the file's, else [`DEFAULT_TLS_BOOTSTRAP_TIMEOUT`].
pub(super) fn tls_bootstrap_timeout(
    args: &JoinArgs,
    file: &FileSettings,
) -> Result<Duration, ConfigError> {
    timeout(
        (&args.tls_bootstrap_timeout, "--tls-bootstrap-timeout"),
        (&file.tls_bootstrap_timeout, "the TLS bootstrap timeout"),
        file,
        DEFAULT_TLS_BOOTSTRAP_TIMEOUT,
    )
}

/// A timeout from its flag, else from the file's field, else `default`; each flag and field
/// with its name for messages.
fn timeout(
    (flag, flag_name): (&Option<String>, &str),
    (field, field_name): (&Option<String>, &str),
    file: &FileSettings,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match (flag, field) {
        (Some(v), _) => parse_duration(v).map_err(|reason| ConfigError::InvalidDuration {
            what: flag_name.to_owned(),
            value: v.clone(),
            reason,
        }),
        (None, Some(v)) => parse_duration(v).map_err(|reason| ConfigError::InvalidDuration {
            what: format!("{field_name} in {}", file.path.display()),
            value: v.clone(),
            reason,
        }),
        (None, None) => Ok(default),
    }
}

/// The preflight checks to ignore, from the flags (repeatable, comma-separated) and the file:
/// trimmed, lowercased (kubeadm compares case-insensitively), deduplicated. Like kubeadm,
/// refuses `all` together with single names. Unknown names are not refused here: the preflight
/// warns about them, naming the checks there are.
pub fn ignore_list(flags: &[String], file: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut names: Vec<String> = Vec::new();
    for name in flags
        .iter()
        .chain(file)
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_lowercase())
        .filter(|n| !n.is_empty())
    {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.len() > 1 && names.iter().any(|n| n == "all") {
        let others: Vec<&str> = names
            .iter()
            .filter(|n| *n != "all")
            .map(String::as_str)
            .collect();
        return Err(ConfigError::IgnorePreflightAllMixed {
            others: others.join(", "),
        });
    }
    Ok(names)
}
