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
//! This file orchestrates: [`load`] and [`load_local`] read as the list of their steps.
//!
//! - `token_source`: the bootstrap token (flag, file, stdin, env, config file) and the join ticket;
//!   [`token_place`], where a new token goes, in words.
//! - `file`: reading the config file and dispatching its YAML documents into one `FileSettings`.
//! - `own_format`: our `kaas-join.io/v1alpha1 JoinConfiguration` (the file format reference).
//! - `kubeadm_format`: kubeadm's `JoinConfiguration` and how its fields map to ours.
//! - `kubelet_settings`: kubelet settings and extra args lifted into fields.
//! - `fields`: field types both formats share (a token that never echoes, durations, extra args).
//! - `merge`: one function per setting group: the flag over the file over the default, validated.
//! - `error`: [`ConfigError`].

mod error;
mod fields;
mod file;
mod kubeadm_format;
mod kubelet_settings;
mod merge;
mod own_format;
mod token_source;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read as _};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::JoinArgs;
use crate::host::paths::Paths;
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::output::OutputFormat;
use crate::model::pin::CaPin;
use crate::model::token::BootstrapToken;

pub use error::ConfigError;
pub use merge::ignore_list;
pub use token_source::token_place;

use token_source::{args_with_ticket, load_token, read_ticket};

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
                    .take(MAX_STDIN_TOKEN + 1)
                    .read_to_string(&mut s)?;
                if s.len() as u64 > MAX_STDIN_TOKEN {
                    return Err(io::Error::new(
                        io::ErrorKind::FileTooLarge,
                        format!(
                            "standard input holds more than {MAX_STDIN_TOKEN} bytes; a token or \
                             a join ticket is one short line"
                        ),
                    ));
                }
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
/// token. Each step below is one setting group, in the order their errors are reported.
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
    let ticket_args = ticket.as_ref().map(|t| args_with_ticket(args, t));
    let args = ticket_args.as_ref().unwrap_or(args);
    let root = root_of(args);
    let paths = Paths::new(root.clone());
    let file = file::read_config_file(args, &paths, &mut warnings)?.unwrap_or_default();
    let ignore_preflight_errors =
        ignore_list(&args.ignore_preflight_errors, &file.ignore_preflight_errors)?;

    let servers = merge::servers(args, &file)?;
    let ca_pins = merge::ca_pins(args, &file)?;
    let unsafe_skip_ca_verification =
        merge::skip_ca_verification(args, &file, &ca_pins, &servers, &mut warnings)?;
    let token = match ticket {
        Some(t) => t.token,
        None => load_token(args, env_token.as_deref(), &mut stdin, &file, &mut warnings)?,
    };
    let hostname = hostname.trim().to_lowercase();
    let node_name = merge::node_name(args, &file, &hostname, &token, &mut warnings)?;
    let node_labels = merge::node_labels(args, &file)?;
    let mut kubelet_extra_args = file.kubelet_extra_args.clone();
    let node_ip = merge::node_ip(args, &file, &mut kubelet_extra_args, &mut warnings)?;
    let cri_socket = merge::cri_socket(args, &file, &paths, &mut warnings)?;
    let cgroup_driver = args.cgroup_driver.or(file.cgroup_driver);
    let cluster_dns = merge::cluster_dns(args, &file)?;
    let cluster_domain = merge::cluster_domain(args, &file)?;
    let discovery_timeout = merge::discovery_timeout(args, &file)?;
    let tls_bootstrap_timeout = merge::tls_bootstrap_timeout(args, &file)?;

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
    let file = file::read_config_file(args, &paths, &mut warnings)?.unwrap_or_default();
    let config = LocalConfig {
        cri_socket: merge::given_cri_socket(args, &file)?,
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

/// An IP address as written in a flag or the file (blanks around it allowed).
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}
