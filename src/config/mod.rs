//! Flags, environment and files become one validated [`JoinConfig`] before any network I/O.
//!
//! Sources, highest precedence first: command-line flags, the environment (`KAAS_JOIN_TOKEN`),
//! the config file (`--config`, default `/etc/kaas-join/config.yaml`, read under `--root`),
//! which is either our own `JoinConfiguration` (`kaas-join.io/v1alpha1`) or kubeadm's
//! (`kubeadm.k8s.io/v1beta4`, the fields that map).
//!
//! This is the "lowargs → hiargs" step: [`crate::cli::JoinArgs`] holds what was typed,
//! [`load`] merges it with [`Environment`] and the file, checks every value and returns a
//! [`JoinConfig`] with nothing left to parse, plus [`Warning`]s for the caller to show. The only
//! I/O here: reading the config file, the token file (or stdin) and, when `--cri-socket` is not
//! given, looking for the runtime's socket under `--root` ([`crate::host::runtime::detect_cri_socket`]).
//!
//! # Precedence
//!
//! Flags > `KAAS_JOIN_TOKEN` (token only) > config file > detected/defaults. List flags
//! (`--server`, `--discovery-token-ca-cert-hash`, `--cluster-dns`) replace the file's list when
//! given; `--node-labels` are merged over the file's labels key by key; boolean flags
//! (`--dry-run`, `--discovery-token-unsafe-skip-ca-verification`) can only switch on what the
//! file leaves off.
//!
//! # Layout
//!
//! This file orchestrates: [`load`] and [`load_local`], and checks each setting group.
//!
//! - `token_source`: the bootstrap token (flag, file, stdin, env, config file) and the join ticket.
//! - `file`: reading the config file and dispatching its YAML documents into one `FileSettings`.
//! - `own_format`: our `kaas-join.io/v1alpha1 JoinConfiguration` (the file format reference).
//! - `kubeadm_format`: kubeadm's `JoinConfiguration` and how its fields map to ours.
//! - `kubelet_settings`: kubelet settings and extra args lifted into fields.
//! - `fields`: field types both formats share (a token that never echoes, durations, extra args).
//! - `error`: [`ConfigError`].

mod error;
mod fields;
mod file;
mod kubeadm_format;
mod kubelet_settings;
mod own_format;
mod token_source;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read as _};
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use crate::cli::JoinArgs;
use crate::host::paths::Paths;
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::duration::parse_duration;
use crate::model::endpoint::{normalize_cri_socket, normalize_server};
use crate::model::labels;
use crate::model::node_name::check_node_name;
use crate::model::output::OutputFormat;
use crate::model::pin::CaPin;
use crate::model::token::BootstrapToken;

pub use error::ConfigError;

use file::{read_config_file, FileSettings};
use token_source::{load_token, read_ticket};

/// A validated join configuration: everything the join needs, nothing left to parse.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// Discovery endpoints as `https://host:port` URLs, tried in turn.
    pub servers: Vec<String>,
    pub token: BootstrapToken,
    /// CA public-key pins; empty only when `unsafe_skip_ca_verification` is set.
    pub ca_pins: Vec<CaPin>,
    pub unsafe_skip_ca_verification: bool,
    /// Lowercased; a valid DNS-1123 subdomain.
    pub node_name: String,
    /// The machine's own hostname, lowercased (kubelet's default node name): when it differs from
    /// `node_name`, the flags file gets `--hostname-override`.
    pub hostname: String,
    pub node_labels: BTreeMap<String, String>,
    pub node_ip: Option<IpAddr>,
    /// CRI endpoint as a URL, e.g. `unix:///run/containerd/containerd.sock`.
    pub cri_socket: String,
    /// Set by the user; otherwise detected from the runtime's configuration.
    pub cgroup_driver: Option<CgroupDriver>,
    /// Used when the cluster does not publish them (chart-style control planes).
    pub cluster_dns: Option<Vec<IpAddr>>,
    pub cluster_domain: Option<String>,
    /// A KubeletConfiguration fragment merged over the cluster's (user wins, secure defaults win
    /// over both unless the user set that field explicitly).
    pub kubelet_overrides: Option<serde_norway::Value>,
    /// Extra kubelet flags for the flags file, in order (`--name=value`).
    pub kubelet_extra_args: Vec<(String, String)>,
    /// Prefix for every path read or written (`/` on a real node).
    pub root: PathBuf,
    pub dry_run: bool,
    pub force: bool,
    pub output: OutputFormat,
    pub discovery_timeout: Duration,
    pub tls_bootstrap_timeout: Duration,
    /// Preflight checks whose errors only show as "ignored" (`--ignore-preflight-errors` and the
    /// file's `ignorePreflightErrors`): lowercased, deduplicated; `all` alone ignores every check.
    pub ignore_preflight_errors: Vec<String>,
}

/// `apiVersion` of our own config file format.
pub const API_VERSION: &str = "kaas-join.io/v1alpha1";
/// The environment variable that may hold the bootstrap token.
pub const TOKEN_ENV: &str = "KAAS_JOIN_TOKEN";
/// Default for `--discovery-timeout` (kubeadm's).
pub const DEFAULT_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Default for `--tls-bootstrap-timeout` (kubeadm's).
pub const DEFAULT_TLS_BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// At most this much is read from standard input for `--token-file -`.
const MAX_STDIN_TOKEN: u64 = 4096;

/// What the process environment supplies, injected so tests never touch the real one.
pub struct Environment {
    /// `KAAS_JOIN_TOKEN`; empty counts as unset (systemd `Environment=` lines often leave it so).
    pub token: Option<String>,
    /// This machine's hostname as read ([`crate::host::Host::hostname`]); empty when it could not be
    /// read, and then `--node-name` is required.
    pub hostname: String,
    /// Reads all of standard input, for `--token-file -`. `None`: no stdin available.
    pub stdin: Option<Box<dyn FnOnce() -> io::Result<String>>>,
}

impl Environment {
    /// The real environment: `KAAS_JOIN_TOKEN`, the hostname and standard input.
    pub fn from_process() -> Environment {
        Environment {
            token: std::env::var(TOKEN_ENV).ok(),
            hostname: crate::host::Host::hostname(&crate::host::LinuxHost).unwrap_or_default(),
            stdin: Some(Box::new(|| {
                let mut s = String::new();
                io::stdin()
                    .lock()
                    .take(MAX_STDIN_TOKEN)
                    .read_to_string(&mut s)?;
                Ok(s)
            })),
        }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("hostname", &self.hostname)
            .field("stdin", &self.stdin.as_ref().map(|_| "<reader>"))
            .finish()
    }
}

/// Something the user should know that does not stop the join (shown on stderr and in the
/// report). Never contains the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Merges flags, environment and config file into one validated [`JoinConfig`] (see the module
/// doc for the sources and their precedence). Returns warnings to show, never containing the
/// token.
pub fn load(args: &JoinArgs, env: Environment) -> Result<(JoinConfig, Vec<Warning>), ConfigError> {
    let Environment {
        token: env_token,
        hostname,
        mut stdin,
    } = env;
    let mut warnings = Vec::new();
    // A join ticket stands for --server, the token and --discovery-token-ca-cert-hash.
    let ticket = match &args.ticket {
        Some(text) => Some(read_ticket(args, text, &mut stdin, &mut warnings)?),
        None => None,
    };
    let ticket_args;
    let args = match &ticket {
        Some(t) => {
            ticket_args = JoinArgs {
                server: vec![t.server.clone()],
                discovery_token_ca_cert_hash: t.pins.iter().map(ToString::to_string).collect(),
                ..args.clone()
            };
            &ticket_args
        }
        None => args,
    };
    let root = root_of(args);
    let paths = Paths::new(root.clone());
    let file = read_config_file(args, &paths, &mut warnings)?.unwrap_or_default();
    let file_origin = || format!("config file {}", file.path.display());
    let ignore_preflight_errors =
        ignore_list(&args.ignore_preflight_errors, &file.ignore_preflight_errors)?;

    // API servers.
    let (server_values, server_from) = if !args.server.is_empty() {
        (&args.server, "--server".to_owned())
    } else {
        (&file.servers, file_origin())
    };
    let mut servers: Vec<String> = Vec::new();
    for value in server_values {
        let url = normalize_server(value).map_err(|reason| ConfigError::InvalidServer {
            value: value.clone(),
            from: server_from.clone(),
            reason,
        })?;
        if !servers.contains(&url) {
            servers.push(url);
        }
    }
    if servers.is_empty() {
        return Err(ConfigError::NoServer);
    }

    // CA pins.
    let (pin_values, pin_from) = if !args.discovery_token_ca_cert_hash.is_empty() {
        (
            &args.discovery_token_ca_cert_hash,
            "--discovery-token-ca-cert-hash".to_owned(),
        )
    } else {
        (&file.ca_cert_hashes, file_origin())
    };
    let mut ca_pins: Vec<CaPin> = Vec::new();
    for value in pin_values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        let pin = CaPin::from_str(value).map_err(|error| ConfigError::InvalidCaPin {
            value: value.to_owned(),
            from: pin_from.clone(),
            error,
        })?;
        if !ca_pins.contains(&pin) {
            ca_pins.push(pin);
        }
    }
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

    // Token.
    let token = match ticket {
        Some(t) => t.token,
        None => load_token(args, env_token.as_deref(), &mut stdin, &file, &mut warnings)?,
    };

    // Node name and hostname.
    let hostname = hostname.trim().to_lowercase();
    let (name_value, name_from) = match (&args.node_name, &file.node_name) {
        (Some(n), _) => (n.clone(), "--node-name".to_owned()),
        (None, Some(n)) => (n.clone(), file_origin()),
        (None, None) if hostname.is_empty() => return Err(ConfigError::NoHostname),
        (None, None) => (hostname.clone(), "the hostname".to_owned()),
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

    // Labels: the file's, then the flags' over them.
    let mut node_labels = file.node_labels.clone();
    node_labels.extend(labels::parse_node_labels(&args.node_labels)?);

    // Node IP.
    let mut kubelet_extra_args = file.kubelet_extra_args.clone();
    let node_ip = match (&args.node_ip, &file.node_ip) {
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
            Some(ip)
        }
        (None, Some(v)) => Some(parse_ip(v).ok_or_else(|| ConfigError::InvalidNodeIp {
            value: v.clone(),
            from: file_origin(),
        })?),
        (None, None) => None,
    };

    // CRI socket: given, else detected under the root.
    let cri_socket = match given_cri_socket(args, &file)? {
        Some(socket) => socket,
        None => crate::host::runtime::detect_cri_socket(&paths)?,
    };

    let cgroup_driver = args.cgroup_driver.or(file.cgroup_driver);

    // Cluster DNS and domain.
    let (dns_values, dns_from) = if !args.cluster_dns.is_empty() {
        (&args.cluster_dns, "--cluster-dns".to_owned())
    } else {
        (&file.cluster_dns, file_origin())
    };
    let mut dns = Vec::new();
    for v in dns_values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        dns.push(parse_ip(v).ok_or_else(|| ConfigError::InvalidClusterDns {
            value: v.to_owned(),
            from: dns_from.clone(),
        })?);
    }
    let cluster_dns = (!dns.is_empty()).then_some(dns);
    let cluster_domain = match (&args.cluster_domain, &file.cluster_domain) {
        (Some(v), _) => Some((v, "--cluster-domain".to_owned())),
        (None, Some(v)) => Some((v, file_origin())),
        (None, None) => None,
    }
    .map(|(v, from)| {
        let domain = v.trim().trim_end_matches('.').to_lowercase();
        labels::check_dns_subdomain(&domain)
            .map(|()| domain)
            .map_err(|reason| ConfigError::InvalidClusterDomain {
                value: v.clone(),
                from,
                reason,
            })
    })
    .transpose()?;

    // Timeouts.
    let timeout = |flag: &Option<String>,
                   flag_name: &str,
                   field: &Option<String>,
                   field_name: &str,
                   default: Duration| {
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
    };
    let discovery_timeout = timeout(
        &args.discovery_timeout,
        "--discovery-timeout",
        &file.discovery_timeout,
        "the discovery timeout",
        DEFAULT_DISCOVERY_TIMEOUT,
    )?;
    let tls_bootstrap_timeout = timeout(
        &args.tls_bootstrap_timeout,
        "--tls-bootstrap-timeout",
        &file.tls_bootstrap_timeout,
        "the TLS bootstrap timeout",
        DEFAULT_TLS_BOOTSTRAP_TIMEOUT,
    )?;

    let config = JoinConfig {
        servers,
        token,
        ca_pins,
        unsafe_skip_ca_verification,
        node_name,
        hostname,
        node_labels,
        node_ip,
        cri_socket,
        cgroup_driver,
        cluster_dns,
        cluster_domain,
        kubelet_overrides: file.kubelet.clone(),
        kubelet_extra_args,
        root,
        dry_run: args.dry_run || file.dry_run,
        force: args.force,
        output: args.output,
        discovery_timeout,
        tls_bootstrap_timeout,
        ignore_preflight_errors,
    };
    Ok((config, warnings))
}

/// What `kaas-join preflight` reads without a server or a token: the flags' and the config
/// file's settings about this machine, validated as [`load`] validates them.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub root: PathBuf,
    /// Given by `--cri-socket` or the file (normalized); `None`: to be detected, and a failure
    /// to find one is then a preflight finding, not bad input.
    pub cri_socket: Option<String>,
    pub cgroup_driver: Option<CgroupDriver>,
    pub kubelet_overrides: Option<serde_norway::Value>,
    /// As [`JoinConfig::ignore_preflight_errors`].
    pub ignore_preflight_errors: Vec<String>,
}

/// The local part of [`load`]: root, config file, CRI socket (not detected), cgroup driver,
/// kubelet overrides and the preflight checks to ignore. Needs no server and no token.
pub fn load_local(args: &JoinArgs) -> Result<(LocalConfig, Vec<Warning>), ConfigError> {
    let mut warnings = Vec::new();
    let root = root_of(args);
    let paths = Paths::new(root.clone());
    let file = read_config_file(args, &paths, &mut warnings)?.unwrap_or_default();
    let config = LocalConfig {
        cri_socket: given_cri_socket(args, &file)?,
        cgroup_driver: args.cgroup_driver.or(file.cgroup_driver),
        kubelet_overrides: file.kubelet.clone(),
        ignore_preflight_errors: ignore_list(
            &args.ignore_preflight_errors,
            &file.ignore_preflight_errors,
        )?,
        root,
    };
    Ok((config, warnings))
}

/// `--root`; clap defaults it to "/", a JoinArgs built in code may leave it empty.
fn root_of(args: &JoinArgs) -> PathBuf {
    if args.root.as_os_str().is_empty() {
        PathBuf::from("/")
    } else {
        args.root.clone()
    }
}

/// The CRI endpoint from `--cri-socket`, else from the file, normalized; `None` when neither
/// gives one.
fn given_cri_socket(args: &JoinArgs, file: &FileSettings) -> Result<Option<String>, ConfigError> {
    let (value, from) = match (&args.cri_socket, &file.cri_socket) {
        (Some(v), _) => (v, "--cri-socket".to_owned()),
        (None, Some(v)) => (v, format!("config file {}", file.path.display())),
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

/// An IP address as written in a flag or the file (blanks around it allowed).
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}
