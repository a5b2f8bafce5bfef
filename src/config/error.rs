//! [`ConfigError`]: every way a configuration is refused, one line each naming the problem and
//! the fix. Raised by every step of [`super::load`] and [`super::load_local`]; `cmd::error`
//! wraps it, and tests/config_*.rs check the messages word for word.

use std::io;
use std::path::PathBuf;

use super::kubeadm_format::{KUBEADM_V1BETA3, KUBEADM_V1BETA4};
use super::kubelet_settings::KUBELET_CONFIG_API_VERSION;
use super::{API_VERSION, TOKEN_ENV};
use crate::host::files::FsError;
use crate::host::runtime::HostError;
use crate::model::exit_code::ExitCode;
use crate::model::labels::LabelError;
use crate::model::pin::PinError;
use crate::model::token::TokenError;

/// Why the configuration was refused. Each message is one line naming the problem and the fix;
/// none contains the token.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} does not exist: check the --config path", path.display())]
    ConfigFileMissing { path: PathBuf },
    #[error(
        "config file {} is larger than a config file can be ({limit} bytes at most): check the \
         --config path",
        path.display()
    )]
    ConfigFileTooLarge { path: PathBuf, limit: u64 },
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
    #[error(
        "API server {} (from {from}) {reason}",
        crate::model::shown::shown(value)
    )]
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
    #[error("CA pin {} (from {from}): {error}", crate::model::shown::shown(value))]
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
        "node name {} (from {from}) is not valid: it {reason}; a node name is a lowercase \
         DNS-1123 subdomain (at most 253 characters of a-z, 0-9, '-' and '.', each part between \
         dots starting and ending with a letter or digit): pass a valid --node-name",
        crate::model::shown::shown(value)
    )]
    InvalidNodeName {
        value: String,
        from: String,
        reason: String,
    },
    #[error("{0}")]
    Label(#[from] LabelError),
    #[error("node IP {} (from {from}) is not an IP address: give one IPv4 or IPv6 address, e.g. --node-ip 10.0.0.7", crate::model::shown::shown(value))]
    InvalidNodeIp { value: String, from: String },
    #[error("CRI socket {} (from {from}) {reason}: give unix:///path/to/runtime.sock or an absolute path", crate::model::shown::shown(value))]
    InvalidCriSocket {
        value: String,
        from: String,
        reason: &'static str,
    },
    #[error("{0}")]
    CriSocket(#[from] HostError),
    #[error("cluster DNS address {} (from {from}) is not an IP address: give IPs, e.g. --cluster-dns 10.96.0.10", crate::model::shown::shown(value))]
    InvalidClusterDns { value: String, from: String },
    #[error("cluster domain {} (from {from}) is not valid: it {reason}; e.g. --cluster-domain cluster.local", crate::model::shown::shown(value))]
    InvalidClusterDomain {
        value: String,
        from: String,
        reason: String,
    },
    #[error(
        "{what} {} is not a duration: {reason}; use e.g. 90s, 5m, 1m30s, 1h or plain seconds",
        crate::model::shown::shown(value)
    )]
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
    #[error("config file {}: kubelet settings: {error}", path.display())]
    KubeletSchema {
        path: PathBuf,
        error: crate::model::kubelet_schema::SchemaError,
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

    /// No token given anywhere, or its token file is not there (yet).
    pub fn is_missing_token(&self) -> bool {
        match self {
            ConfigError::NoToken => true,
            ConfigError::TokenFileRead { source, .. } => {
                source.kind() == std::io::ErrorKind::NotFound
            }
            _ => false,
        }
    }
}
