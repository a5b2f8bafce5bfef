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
//!
//! # Kubelet flags and settings lifted into fields
//!
//! In either format, `kubeletExtraArgs` entries `node-ip` (a single address) and `node-labels`
//! become `nodeIP` and `nodeLabels` (so that they are validated and a flag can override them),
//! and `cgroupDriver`, `clusterDNS` and `clusterDomain` in the kubelet overrides become the
//! fields of the same name (and are removed from the overrides), so `--cgroup-driver` and friends
//! win over the file as documented.
//!
//! # Precedence
//!
//! Flags > `KAAS_JOIN_TOKEN` (token only) > config file > detected/defaults. List flags
//! (`--server`, `--discovery-token-ca-cert-hash`, `--cluster-dns`) replace the file's list when
//! given; `--node-labels` are merged over the file's labels key by key; boolean flags
//! (`--dry-run`, `--discovery-token-unsafe-skip-ca-verification`) can only switch on what the
//! file leaves off.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read as _};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use serde::Deserialize;
use serde_norway::Value;
use zeroize::Zeroizing;

use crate::cli::JoinArgs;
use crate::host::files::FsError;
use crate::host::paths::{Paths, DEFAULT_CONFIG_FILE};
use crate::host::runtime::HostError;
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::duration::parse_duration;
use crate::model::endpoint::{normalize_cri_socket, normalize_server};
use crate::model::exit_code::ExitCode;
use crate::model::labels::{self, LabelError};
use crate::model::node_name::check_node_name;
use crate::model::output::OutputFormat;
use crate::model::pin::{CaPin, PinError};
use crate::model::token::{BootstrapToken, TokenError};

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
/// Where kubeadm and kaas-join write the cluster CA; kubeadm's `caCertPath` default.
const KUBEADM_CA_CERT_PATH: &str = "/etc/kubernetes/pki/ca.crt";
const KUBEADM_V1BETA4: &str = "kubeadm.k8s.io/v1beta4";
const KUBEADM_V1BETA3: &str = "kubeadm.k8s.io/v1beta3";
const KUBELET_CONFIG_API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
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

/// Why the configuration was refused. Each message is one line naming the problem and the fix;
/// none contains the token.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} does not exist: check the --config path", path.display())]
    ConfigFileMissing { path: PathBuf },
    #[error("cannot read config file {}: {source}", path.display())]
    ReadConfigFile { path: PathBuf, source: io::Error },
    #[error("config file {} is not valid YAML: {message}", path.display())]
    Yaml { path: PathBuf, message: String },
    #[error("config file {}, document {doc}: {message}", path.display())]
    Document {
        path: PathBuf,
        doc: usize,
        message: String,
    },
    #[error(
        "config file {}, document {doc}: unsupported apiVersion {api_version} and kind {kind}; \
         accepted: {API_VERSION} JoinConfiguration, {KUBEADM_V1BETA4} or {KUBEADM_V1BETA3} \
         JoinConfiguration, {KUBELET_CONFIG_API_VERSION} KubeletConfiguration",
        path.display()
    )]
    UnknownKind {
        path: PathBuf,
        doc: usize,
        /// Quoted, or "(not shown…)" when it is not shaped like one ([`crate::model::yaml_guard::shown_api_version`]).
        api_version: String,
        /// Quoted, or "(not shown…)" ([`crate::model::yaml_guard::shown_kind`]).
        kind: String,
    },
    #[error(
        "config file {} holds no JoinConfiguration document: add one (apiVersion: {API_VERSION}, \
         kind: JoinConfiguration) or leave --config out",
        path.display()
    )]
    NoJoinConfiguration { path: PathBuf },
    #[error("config file {} holds more than one {kind} document: keep one", path.display())]
    DuplicateDocument { path: PathBuf, kind: &'static str },
    #[error("config file {}: {field} is not supported: {reason}", path.display())]
    Unsupported {
        path: PathBuf,
        field: &'static str,
        reason: &'static str,
    },
    #[error(
        "both --token and --token-file are given: pass only one (--token-file keeps the token out \
         of the process list)"
    )]
    TokenFlagsConflict,
    #[error(
        "config file {}: both token and tokenFile are given: keep only tokenFile",
        path.display()
    )]
    TokenFieldsConflict { path: PathBuf },
    #[error(
        "config file {}: discovery.bootstrapToken.token and discovery.tlsBootstrapToken differ: \
         kaas-join uses one token for discovery and TLS bootstrap; give the same token in both or \
         only one of them",
        path.display()
    )]
    TokenMismatch { path: PathBuf },
    #[error("{0}")]
    TokenFile(#[from] FsError),
    #[error("cannot read the bootstrap token file {path} (from {from}): {source}; check the path, or give the token through KAAS_JOIN_TOKEN or `--token-file -` (standard input)")]
    TokenFileRead {
        path: PathBuf,
        from: String,
        #[source]
        source: io::Error,
    },
    #[error("the bootstrap token from {from} is not UTF-8 text: write the token as printed by `kubeadm token create`")]
    TokenNotText { from: String },
    #[error("cannot read the token from standard input (--token-file -): {0}")]
    Stdin(#[source] io::Error),
    #[error("--token-file - reads the token from standard input, which is not available here: give a file path")]
    StdinUnavailable,
    #[error(
        "no bootstrap token given: pass --token-file FILE (\"-\" for standard input), set \
         {TOKEN_ENV}, or put tokenFile: in the config file (create a token on the control plane \
         with `kubeadm token create`)"
    )]
    NoToken,
    #[error("bootstrap token from {from}: {error}")]
    Token { from: String, error: TokenError },
    #[error("{0}")]
    Ticket(crate::model::ticket::TicketError),
    #[error(
        "both a join ticket and {flag} are given: the ticket already holds the server, the token \
         and the CA pin; give either the ticket or the flags"
    )]
    TicketConflict { flag: &'static str },
    #[error("no API server given: pass --server host:port (e.g. --server 10.0.0.5:6443)")]
    NoServer,
    #[error("API server {value:?} (from {from}) {reason}")]
    InvalidServer {
        value: String,
        from: String,
        reason: String,
    },
    #[error(
        "no CA pin given: pass --discovery-token-ca-cert-hash sha256:<hash> (printed by \
         `kubeadm token create --print-join-command`), or \
         --discovery-token-unsafe-skip-ca-verification to trust the first server that answers \
         (dangerous)"
    )]
    NoCaPin,
    #[error("CA pin {value:?} (from {from}): {error}")]
    InvalidCaPin {
        value: String,
        from: String,
        error: PinError,
    },
    #[error(
        "this machine's hostname could not be read (/proc/sys/kernel/hostname, /etc/hostname): \
         pass --node-name"
    )]
    NoHostname,
    #[error(
        "node name {value:?} (from {from}) is not valid: it {reason}; a node name is a lowercase \
         DNS-1123 subdomain (at most 253 characters of a-z, 0-9, '-' and '.', each part between \
         dots starting and ending with a letter or digit): pass a valid --node-name"
    )]
    InvalidNodeName {
        value: String,
        from: String,
        reason: String,
    },
    #[error("{0}")]
    Label(#[from] LabelError),
    #[error("node IP {value:?} (from {from}) is not an IP address: give one IPv4 or IPv6 address, e.g. --node-ip 10.0.0.7")]
    InvalidNodeIp { value: String, from: String },
    #[error("CRI socket {value:?} (from {from}) {reason}: give unix:///path/to/runtime.sock or an absolute path")]
    InvalidCriSocket {
        value: String,
        from: String,
        reason: &'static str,
    },
    #[error("{0}")]
    CriSocket(#[from] HostError),
    #[error("cluster DNS address {value:?} (from {from}) is not an IP address: give IPs, e.g. --cluster-dns 10.96.0.10")]
    InvalidClusterDns { value: String, from: String },
    #[error("cluster domain {value:?} (from {from}) is not valid: it {reason}; e.g. --cluster-domain cluster.local")]
    InvalidClusterDomain {
        value: String,
        from: String,
        reason: String,
    },
    #[error("{what} {value:?} is not a duration: {reason}; use e.g. 90s, 5m, 1m30s, 1h or plain seconds")]
    InvalidDuration {
        what: String,
        value: String,
        reason: String,
    },
    #[error("config file {}: kubelet extra argument {name:?} {reason}", path.display())]
    InvalidKubeletArg {
        path: PathBuf,
        name: String,
        reason: String,
    },
    #[error("config file {}: taint {taint:?} {reason}", path.display())]
    InvalidTaint {
        path: PathBuf,
        taint: String,
        reason: String,
    },
    #[error("config file {}: kubelet configuration {reason}", path.display())]
    InvalidKubeletConfig { path: PathBuf, reason: String },
    #[error(
        "--ignore-preflight-errors (with the config file's ignorePreflightErrors) names \"all\" \
         together with single checks ({others}): give either all or the checks, as kubeadm requires"
    )]
    IgnorePreflightAllMixed { others: String },
}

impl ConfigError {
    /// The documented exit code: always Usage (every way a configuration is refused is bad input).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
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

type StdinReader = Box<dyn FnOnce() -> io::Result<String>>;

/// Reads and checks the join ticket (`-`: standard input); the flags it stands for must not
/// be given too.
fn read_ticket(
    args: &JoinArgs,
    text: &str,
    stdin: &mut Option<StdinReader>,
    warnings: &mut Vec<Warning>,
) -> Result<crate::model::ticket::Ticket, ConfigError> {
    let conflicts = [
        (!args.server.is_empty(), "--server"),
        (args.token.is_some(), "--token"),
        (args.token_file.is_some(), "--token-file"),
        (
            !args.discovery_token_ca_cert_hash.is_empty(),
            "--discovery-token-ca-cert-hash",
        ),
        (
            args.discovery_token_unsafe_skip_ca_verification,
            "--discovery-token-unsafe-skip-ca-verification",
        ),
    ];
    if let Some((_, flag)) = conflicts.iter().find(|(given, _)| *given) {
        return Err(ConfigError::TicketConflict { flag });
    }
    let text = if text.trim() == "-" {
        let read = stdin.take().ok_or(ConfigError::StdinUnavailable)?;
        Zeroizing::new(read().map_err(ConfigError::Stdin)?)
    } else {
        warnings.push(Warning(
            "the join ticket on the command line is visible to other users in the process list \
             while kaas-join runs (it holds the bootstrap token); pass \"-\" and give it on \
             standard input instead"
                .to_owned(),
        ));
        Zeroizing::new(text.to_owned())
    };
    crate::model::ticket::Ticket::parse(&text).map_err(ConfigError::Ticket)
}

/// Picks the token by precedence and parses it. The token's text is kept in zeroized buffers.
fn load_token(
    args: &JoinArgs,
    env_token: Option<&str>,
    stdin: &mut Option<StdinReader>,
    file: &FileSettings,
    warnings: &mut Vec<Warning>,
) -> Result<BootstrapToken, ConfigError> {
    if args.token.is_some() && args.token_file.is_some() {
        return Err(ConfigError::TokenFlagsConflict);
    }
    let env_token = env_token.filter(|t| !t.trim().is_empty());
    let (text, from): (Zeroizing<String>, String) = if let Some(t) = &args.token {
        warnings.push(Warning(
            "--token on the command line is visible to other users in the process list; use \
             --token-file or KAAS_JOIN_TOKEN"
                .to_owned(),
        ));
        (Zeroizing::new(t.clone()), "--token".to_owned())
    } else if let Some(path) = &args.token_file {
        let from = format!("--token-file {}", path.display());
        (read_token_file(path, stdin, &from)?, from)
    } else if let Some(t) = env_token {
        (Zeroizing::new(t.to_owned()), TOKEN_ENV.to_owned())
    } else if let Some(path) = &file.token_file {
        let from = format!(
            "tokenFile {} in config file {}",
            path.display(),
            file.path.display()
        );
        (read_token_file(path, stdin, &from)?, from)
    } else if let Some(t) = &file.token {
        (
            t.clone(),
            format!(
                "{} in config file {}",
                file.token_field,
                file.path.display()
            ),
        )
    } else {
        return Err(ConfigError::NoToken);
    };
    BootstrapToken::parse(&text).map_err(|error| ConfigError::Token { from, error })
}

/// Reads a token file as given (a path on this machine, not under `--root`) through
/// [`crate::host::files::read_private_file`], or standard input for `-`.
fn read_token_file(
    path: &Path,
    stdin: &mut Option<StdinReader>,
    from: &str,
) -> Result<Zeroizing<String>, ConfigError> {
    if path == Path::new("-") {
        let read = stdin.take().ok_or(ConfigError::StdinUnavailable)?;
        return read().map(Zeroizing::new).map_err(ConfigError::Stdin);
    }
    let bytes = crate::host::files::read_private_file(path, "token file").map_err(|e| match e {
        FsError::Read { path, source } => ConfigError::TokenFileRead {
            path,
            from: from.to_owned(),
            source,
        },
        other => ConfigError::TokenFile(other),
    })?;
    std::str::from_utf8(&bytes)
        .map(|s| Zeroizing::new(s.to_owned()))
        .map_err(|_| ConfigError::TokenNotText {
            from: from.to_owned(),
        })
}

/// The config file's settings, whichever format they came from, before validation.
#[derive(Debug, Default)]
struct FileSettings {
    /// The file as read (for messages).
    path: PathBuf,
    servers: Vec<String>,
    token: Option<Zeroizing<String>>,
    /// Which field `token` came from, for messages.
    token_field: &'static str,
    token_file: Option<PathBuf>,
    ca_cert_hashes: Vec<String>,
    unsafe_skip_ca_verification: bool,
    node_name: Option<String>,
    node_labels: BTreeMap<String, String>,
    node_ip: Option<String>,
    cri_socket: Option<String>,
    cgroup_driver: Option<CgroupDriver>,
    cluster_dns: Vec<String>,
    cluster_domain: Option<String>,
    discovery_timeout: Option<String>,
    tls_bootstrap_timeout: Option<String>,
    kubelet_extra_args: Vec<(String, String)>,
    kubelet: Option<Value>,
    dry_run: bool,
    ignore_preflight_errors: Vec<String>,
}

/// Reads `--config`, or the default file under the root if it exists.
fn read_config_file(
    args: &JoinArgs,
    paths: &Paths,
    warnings: &mut Vec<Warning>,
) -> Result<Option<FileSettings>, ConfigError> {
    let (path, explicit) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (paths.host(DEFAULT_CONFIG_FILE), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ConfigError::ConfigFileMissing { path })
        }
        Err(source) => return Err(ConfigError::ReadConfigFile { path, source }),
    };
    let settings = parse_config_text(&text, &path, warnings)?;
    if settings.token.is_some() {
        let mode = std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        if mode & 0o077 != 0 {
            warnings.push(Warning(format!(
                "config file {} holds the bootstrap token but is readable by group or others \
                 (mode {mode:04o}): run `chmod 600 {}`, or move the token to a tokenFile",
                path.display(),
                path.display()
            )));
        }
    }
    Ok(Some(settings))
}

/// Parses a config file's text: dispatches each YAML document on `apiVersion`/`kind`.
fn parse_config_text(
    text: &str,
    path: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<FileSettings, ConfigError> {
    let mut join: Option<FileSettings> = None;
    let mut kubelet_doc: Option<(usize, Value)> = None;
    crate::model::yaml_guard::check_nesting(text).map_err(|message| ConfigError::Yaml {
        path: path.to_owned(),
        message,
    })?;
    for (i, de) in serde_norway::Deserializer::from_str(text).enumerate() {
        let doc = i + 1;
        let value = Value::deserialize(de).map_err(|e| ConfigError::Yaml {
            path: path.to_owned(),
            message: crate::model::yaml_guard::redact_values(&e.to_string()),
        })?;
        if value.is_null() {
            continue;
        }
        let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
            return Err(ConfigError::Document {
                path: path.to_owned(),
                doc,
                message: format!(
                    "no apiVersion and kind: start the document with apiVersion: {API_VERSION} \
                     and kind: JoinConfiguration"
                ),
            });
        };
        let document_error = |e: serde_norway::Error| {
            // serde quotes the refused value: it may be the token, put where a map belongs.
            let mut message = crate::model::yaml_guard::redact_values(&e.to_string());
            if message.contains("unknown field") {
                message.push_str(
                    " (misspelled? unknown fields are refused so that typos do not pass silently)",
                );
            }
            ConfigError::Document {
                path: path.to_owned(),
                doc,
                message,
            }
        };
        let settings = match (api_version.as_str(), kind.as_str()) {
            (API_VERSION, "JoinConfiguration") => {
                let own: OwnJoinConfiguration =
                    serde_norway::from_value(value).map_err(document_error)?;
                Some(own_settings(own, path)?)
            }
            (KUBEADM_V1BETA4 | KUBEADM_V1BETA3, "JoinConfiguration") => {
                let v1beta3 = api_version == KUBEADM_V1BETA3;
                let kubeadm: KubeadmJoinConfiguration =
                    serde_norway::from_value(value).map_err(document_error)?;
                Some(kubeadm_settings(kubeadm, v1beta3, path, doc, warnings)?)
            }
            (KUBELET_CONFIG_API_VERSION, "KubeletConfiguration") => {
                if kubelet_doc.is_some() {
                    return Err(ConfigError::DuplicateDocument {
                        path: path.to_owned(),
                        kind: "KubeletConfiguration",
                    });
                }
                kubelet_doc = Some((doc, value));
                None
            }
            (
                KUBEADM_V1BETA4 | KUBEADM_V1BETA3,
                "InitConfiguration"
                | "ClusterConfiguration"
                | "ResetConfiguration"
                | "UpgradeConfiguration",
            )
            | ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration") => {
                warnings.push(Warning(format!(
                    "config file {}: ignoring the {kind} document (document {doc}): only \
                     JoinConfiguration and KubeletConfiguration apply to joining a node",
                    path.display()
                )));
                None
            }
            _ => {
                return Err(ConfigError::UnknownKind {
                    path: path.to_owned(),
                    doc,
                    api_version: crate::model::yaml_guard::shown_api_version(&api_version),
                    kind: crate::model::yaml_guard::shown_kind(&kind),
                })
            }
        };
        if let Some(settings) = settings {
            if join.is_some() {
                return Err(ConfigError::DuplicateDocument {
                    path: path.to_owned(),
                    kind: "JoinConfiguration",
                });
            }
            join = Some(settings);
        }
    }
    let mut settings = join.ok_or_else(|| ConfigError::NoJoinConfiguration {
        path: path.to_owned(),
    })?;
    if let Some((_, doc)) = kubelet_doc {
        if settings.kubelet.is_some() {
            return Err(ConfigError::InvalidKubeletConfig {
                path: path.to_owned(),
                reason: "is given both as kubelet: and as a KubeletConfiguration document: keep \
                         one"
                .into(),
            });
        }
        settings.kubelet = Some(doc);
    }
    lift_kubelet_settings(&mut settings)?;
    lift_extra_args(&mut settings, warnings)?;
    Ok(settings)
}

/// Checks the kubelet overrides and moves `cgroupDriver`, `clusterDNS` and `clusterDomain` out of
/// them into the settings, so that flags can override them (see the module doc).
fn lift_kubelet_settings(settings: &mut FileSettings) -> Result<(), ConfigError> {
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
    match map.shift_remove("apiVersion") {
        None => {}
        Some(Value::String(v)) if v == KUBELET_CONFIG_API_VERSION => {}
        Some(other) => {
            return Err(invalid(format!(
                "has apiVersion {other:?}: only {KUBELET_CONFIG_API_VERSION} is accepted"
            )))
        }
    }
    match map.shift_remove("kind") {
        None => {}
        Some(Value::String(k)) if k == "KubeletConfiguration" => {}
        Some(other) => {
            return Err(invalid(format!(
                "has kind {other:?}: only KubeletConfiguration is accepted"
            )))
        }
    }
    if let Some(v) = map.shift_remove("cgroupDriver") {
        let driver: CgroupDriver =
            serde_norway::from_value(v).map_err(|e| invalid(format!("cgroupDriver: {e}")))?;
        match settings.cgroup_driver {
            Some(d) if d != driver => {
                return Err(invalid(format!(
                    "sets cgroupDriver {} but cgroupDriver {} is also given: keep one",
                    driver.as_str(),
                    d.as_str()
                )))
            }
            _ => settings.cgroup_driver = Some(driver),
        }
    }
    if let Some(v) = map.shift_remove("clusterDNS") {
        let dns: Vec<String> =
            serde_norway::from_value(v).map_err(|e| invalid(format!("clusterDNS: {e}")))?;
        if settings.cluster_dns.is_empty() {
            settings.cluster_dns = dns;
        } else if settings.cluster_dns != dns {
            return Err(invalid(
                "sets clusterDNS but clusterDNS is also given with other values: keep one".into(),
            ));
        }
    }
    if let Some(v) = map.shift_remove("clusterDomain") {
        let domain: String =
            serde_norway::from_value(v).map_err(|e| invalid(format!("clusterDomain: {e}")))?;
        match &settings.cluster_domain {
            Some(d) if *d != domain => {
                return Err(invalid(
                    "sets clusterDomain but clusterDomain is also given with another value: keep \
                     one"
                    .into(),
                ))
            }
            _ => settings.cluster_domain = Some(domain),
        }
    }
    if map.is_empty() {
        settings.kubelet = None;
    }
    Ok(())
}

/// Validates the kubelet extra args and lifts `node-ip` and `node-labels` into fields.
fn lift_extra_args(
    settings: &mut FileSettings,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    let args = std::mem::take(&mut settings.kubelet_extra_args);
    for (name, value) in args {
        let invalid = |reason: &str| ConfigError::InvalidKubeletArg {
            path: settings.path.clone(),
            name: name.clone(),
            reason: reason.to_owned(),
        };
        if name.is_empty() {
            return Err(invalid("is empty: give a kubelet flag name, e.g. max-pods"));
        }
        if name.starts_with('-') {
            return Err(invalid(
                "starts with '-': give the flag name without leading dashes, e.g. max-pods",
            ));
        }
        if name.contains(['=', ' ', '\t']) {
            return Err(invalid(
                "contains '=' or a space: give the name and the value separately",
            ));
        }
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

/// A string that holds a secret: deserializes only from a YAML string, and its errors never
/// echo the value (a token of digits only, e.g. `123456.1234567890123456`, reads as a number).
struct SecretText(Zeroizing<String>);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const NOT_A_STRING: &str = "the token must be a quoted string (YAML read it as another \
                                    type): write token: \"<id>.<secret>\"";
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quoted string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretText, E> {
                Ok(SecretText(Zeroizing::new(v.to_owned())))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<SecretText, A::Error> {
                Err(serde::de::Error::custom(NOT_A_STRING))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<SecretText, A::Error> {
                Err(serde::de::Error::custom(NOT_A_STRING))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration as written in a file: `5m`, `"90s"` or a plain number of seconds.
struct DurationText(String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(DurationText(s)),
            Value::Number(n) => Ok(DurationText(n.to_string())),
            _ => Err(serde::de::Error::custom(
                "a duration must be a string such as 5m or 90s, or a number of seconds",
            )),
        }
    }
}

/// `kubeletExtraArgs` entry (kubeadm v1beta4's `Arg`, also our format).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtraArg {
    name: String,
    value: String,
}

/// Our own format, `kaas-join.io/v1alpha1` `JoinConfiguration` (see the module doc).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OwnJoinConfiguration {
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

fn own_settings(c: OwnJoinConfiguration, path: &Path) -> Result<FileSettings, ConfigError> {
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

/// kubeadm's `JoinConfiguration`, v1beta4 field set (`cmd/kubeadm/app/apis/kubeadm/v1beta4`).
/// v1beta3 files are read with it too: they differ in `kubeletExtraArgs` (a map there, read by
/// version) and in `discovery.timeout`, which both are allowed to carry here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KubeadmJoinConfiguration {
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

fn kubeadm_settings(
    c: KubeadmJoinConfiguration,
    v1beta3: bool,
    path: &Path,
    doc: usize,
    warnings: &mut Vec<Warning>,
) -> Result<FileSettings, ConfigError> {
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
    let mut ignored = |what: String, why: &str| {
        warnings.push(Warning(format!(
            "config file {}: {what} is ignored: {why}",
            path.display()
        )))
    };
    let nr = c.node_registration;
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

    let bt = c.discovery.bootstrap_token;
    let discovery_token = bt.as_ref().and_then(|b| b.token.as_ref()).map(|t| &t.0);
    let tls_token = c.discovery.tls_bootstrap_token.as_ref().map(|t| &t.0);
    let (token, token_field) = match (discovery_token, tls_token) {
        (Some(d), Some(t)) if d.trim() != t.trim() => {
            return Err(ConfigError::TokenMismatch {
                path: path.to_owned(),
            })
        }
        (_, Some(t)) => (Some(t.clone()), "discovery.tlsBootstrapToken"),
        (Some(d), None) => (Some(d.clone()), "discovery.bootstrapToken.token"),
        (None, None) => (None, "token"),
    };

    let mut kubelet_extra_args = Vec::new();
    if let Some(v) = nr.kubelet_extra_args {
        let field_error = |e: serde_norway::Error| ConfigError::Document {
            path: path.to_owned(),
            doc,
            message: format!(
                "nodeRegistration.kubeletExtraArgs: {e} (v1beta4 wants a list of {{name, value}}, \
                 v1beta3 a map)"
            ),
        };
        if v1beta3 {
            let map: BTreeMap<String, String> = serde_norway::from_value(v).map_err(field_error)?;
            kubelet_extra_args.extend(map);
        } else {
            let list: Vec<ExtraArg> = serde_norway::from_value(v).map_err(field_error)?;
            kubelet_extra_args.extend(list.into_iter().map(|a| (a.name, a.value)));
        }
    }
    if let Some(taints) = nr.taints.filter(|t| !t.is_empty()) {
        if kubelet_extra_args
            .iter()
            .any(|(n, _)| n == "register-with-taints")
        {
            return Err(ConfigError::InvalidKubeletArg {
                path: path.to_owned(),
                name: "register-with-taints".into(),
                reason: "is given as well as nodeRegistration.taints: keep one".into(),
            });
        }
        let mut specs = Vec::new();
        for t in &taints {
            specs.push(taint_spec(t).map_err(|reason| ConfigError::InvalidTaint {
                path: path.to_owned(),
                taint: format!("{}={}:{}", t.key, t.value, t.effect),
                reason,
            })?);
        }
        kubelet_extra_args.push(("register-with-taints".into(), specs.join(",")));
    }

    let timeouts = c.timeouts;
    let discovery_timeout = timeouts
        .as_ref()
        .and_then(|t| t.discovery.as_ref())
        .or(c.discovery.timeout.as_ref())
        .map(|d| d.0.clone());
    let tls_bootstrap_timeout = timeouts
        .as_ref()
        .and_then(|t| t.tls_bootstrap.as_ref())
        .map(|d| d.0.clone());

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
        dry_run: c.dry_run,
        ignore_preflight_errors: nr.ignore_preflight_errors,
    })
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

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
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
