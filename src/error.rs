//! The top-level error of a command and its documented exit code.
//!
//! Every failure class the user can act on differently has its own code (the README's table):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | joined (or already joined) |
//! | 1 | unexpected internal error |
//! | 2 | bad input: flags, config file, token or hash format, labels, token file mode, runtime detection |
//! | 3 | the control plane could not be reached, or kept failing (5xx, 429), until the timeout |
//! | 4 | TLS verification against the pinned CA failed |
//! | 5 | cluster-info not readable anonymously (not published, or no RBAC for it) |
//! | 6 | cluster-info has no signature for this token id (unknown, expired, not yet signed) |
//! | 7 | cluster-info's signature does not match this token (wrong token) |
//! | 8 | the CA pin does not match |
//! | 9 | the server is not a Kubernetes API, or answered something unusable |
//! | 10 | the certificate request was denied, failed or was refused |
//! | 11 | the certificate request was not approved in time |
//! | 12 | a Ready Node with this name already exists |
//! | 13 | the bootstrap token was rejected after discovery (expired or deleted) |
//! | 14 | a local file could not be read or written |
//! | 20 | `status`: this machine has not joined (or the join is not finished); `reset`: nothing to reset, or not joined by kaas-join |
//! | 21 | `status`: joined, but something is wrong (kubelet, daemon, a reported condition) |
//! | 22 | `token`, `cluster prepare`: the admin kubeconfig's user is not allowed (RBAC 403) or its credentials were rejected (401) |
//! | 23 | `cluster prepare --check`: something is missing or wrong |
//! | 24 | preflight found errors (`preflight`, and `join` before it does anything) |

use crate::apiclient::ApiError;
use crate::bootstrap::BootstrapError;
use crate::cluster_config::ClusterConfigError;
use crate::config::ConfigError;
use crate::discovery::DiscoveryError;
use crate::fs::FsError;
use crate::host::HostError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Host(#[from] HostError),
    // The network errors are boxed: they are large and rare, and `Result<_, Error>` is everywhere.
    #[error("{0}")]
    Discovery(Box<DiscoveryError>),
    #[error("{0}")]
    ClusterConfig(Box<ClusterConfigError>),
    #[error("a Ready Node named {name:?} already exists in the cluster: another machine uses this name (duplicate hostnames are a classic trap); give this one another --node-name, or delete the old Node first (`kubectl delete node {name}`) if it is gone")]
    DuplicateNode { name: String },
    #[error("{0}")]
    Bootstrap(Box<BootstrapError>),
    #[error("{0}")]
    Kubelet(#[from] crate::kubelet_config::KubeletConfigError),
    #[error("{0}")]
    Supervisor(#[from] crate::supervisor::SupervisorError),
    #[error("{0}")]
    Fs(#[from] FsError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("internal error: {0}")]
    Internal(String),
    /// `token ...`, `cluster prepare` (the provider's side, through an admin kubeconfig).
    #[error("{0}")]
    Admin(Box<crate::admin::AdminError>),
    /// The preflight checks before a join found errors nobody ignored (each was logged above).
    #[error(
        "preflight found {} error{} ({}): fix {}, or skip a check with \
         --ignore-preflight-errors={} (`kaas-join preflight` shows every check)",
        failed.len(),
        if failed.len() == 1 { "" } else { "s" },
        failed.join(", "),
        if failed.len() == 1 { "it" } else { "them" },
        failed.join(",")
    )]
    Preflight { failed: Vec<String> },
    /// `kaas-join reset` (its errors carry their own exit codes).
    #[error("{0}")]
    Reset(Box<crate::reset::ResetError>),
}

impl From<crate::reset::ResetError> for Error {
    fn from(e: crate::reset::ResetError) -> Error {
        Error::Reset(Box::new(e))
    }
}

impl From<crate::admin::AdminError> for Error {
    fn from(e: crate::admin::AdminError) -> Error {
        Error::Admin(Box::new(e))
    }
}

impl From<DiscoveryError> for Error {
    fn from(e: DiscoveryError) -> Error {
        Error::Discovery(Box::new(e))
    }
}

impl From<ClusterConfigError> for Error {
    fn from(e: ClusterConfigError) -> Error {
        Error::ClusterConfig(Box::new(e))
    }
}

impl From<BootstrapError> for Error {
    fn from(e: BootstrapError) -> Error {
        Error::Bootstrap(Box::new(e))
    }
}

pub mod exit {
    pub const OK: i32 = 0;
    pub const INTERNAL: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const UNREACHABLE: i32 = 3;
    pub const TLS: i32 = 4;
    pub const ANONYMOUS_DENIED: i32 = 5;
    pub const NO_SIGNATURE: i32 = 6;
    pub const SIGNATURE_MISMATCH: i32 = 7;
    pub const PIN_MISMATCH: i32 = 8;
    pub const NOT_KUBERNETES: i32 = 9;
    pub const CSR_REFUSED: i32 = 10;
    pub const NOT_APPROVED: i32 = 11;
    pub const DUPLICATE_NODE: i32 = 12;
    pub const TOKEN_REJECTED: i32 = 13;
    pub const FILESYSTEM: i32 = 14;
    pub const NOT_JOINED: i32 = 20;
    pub const UNHEALTHY: i32 = 21;
    /// The admin kubeconfig's user may not do it (403), or was not accepted (401).
    pub const NOT_ALLOWED: i32 = 22;
    /// `cluster prepare --check` found something missing or wrong.
    pub const NOT_PREPARED: i32 = 23;
    /// Preflight found errors (none written, no request made when it runs before a join).
    pub const PREFLIGHT: i32 = 24;
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        use exit::*;
        match self {
            Error::Config(_) | Error::Host(_) => USAGE,
            Error::Discovery(d) => match d.as_ref() {
                DiscoveryError::Unreachable(_) => UNREACHABLE,
                DiscoveryError::Tls(_) => TLS,
                DiscoveryError::AnonymousDenied { .. } => ANONYMOUS_DENIED,
                DiscoveryError::NoSignature { .. } => NO_SIGNATURE,
                DiscoveryError::SignatureMismatch { .. } => SIGNATURE_MISMATCH,
                DiscoveryError::PinMismatch { .. } => PIN_MISMATCH,
                DiscoveryError::Invalid { .. }
                | DiscoveryError::NotKubernetes(_)
                | DiscoveryError::Changed { .. } => NOT_KUBERNETES,
            },
            Error::ClusterConfig(c) => match c.as_ref() {
                ClusterConfigError::TokenRejected(_) => TOKEN_REJECTED,
                ClusterConfigError::Api(e) => api_code(e),
                ClusterConfigError::Invalid { .. } => NOT_KUBERNETES,
            },
            Error::DuplicateNode { .. } => DUPLICATE_NODE,
            Error::Bootstrap(b) => match b.as_ref() {
                BootstrapError::NotApproved { .. } => NOT_APPROVED,
                BootstrapError::Create { source, .. } | BootstrapError::Wait { source, .. } => {
                    match source.status_code() {
                        _ if source.is_server_failure() => UNREACHABLE,
                        Some(401) => TOKEN_REJECTED,
                        Some(_) => CSR_REFUSED,
                        None => api_code(source),
                    }
                }
                BootstrapError::BadKey { .. } => FILESYSTEM,
                BootstrapError::Crypto(_) => INTERNAL,
                _ => CSR_REFUSED,
            },
            Error::Kubelet(_) => USAGE,
            Error::Supervisor(s) => match s {
                crate::supervisor::SupervisorError::NotJoined { .. } => NOT_JOINED,
                crate::supervisor::SupervisorError::Read { .. } => FILESYSTEM,
                crate::supervisor::SupervisorError::Invalid { .. } => USAGE,
                crate::supervisor::SupervisorError::Thread(_) => INTERNAL,
            },
            Error::Fs(_) | Error::State(_) => FILESYSTEM,
            Error::Internal(_) => INTERNAL,
            Error::Admin(a) => match a.as_ref() {
                crate::admin::AdminError::Kubeconfig { .. }
                | crate::admin::AdminError::Invalid(_)
                | crate::admin::AdminError::NotFound(_) => USAGE,
                crate::admin::AdminError::Forbidden { .. }
                | crate::admin::AdminError::Unauthorized { .. } => NOT_ALLOWED,
                crate::admin::AdminError::Api(e) => api_code(e),
            },
            Error::Preflight { .. } => PREFLIGHT,
            Error::Reset(r) => r.exit_code(),
        }
    }
}

pub(crate) fn api_code(err: &ApiError) -> i32 {
    match err {
        ApiError::Unreachable { .. } => exit::UNREACHABLE,
        _ if err.is_server_failure() => exit::UNREACHABLE,
        ApiError::Tls { .. } | ApiError::TlsSetup(_) => exit::TLS,
        ApiError::Status { code: 401, .. } => exit::TOKEN_REJECTED,
        _ => exit::NOT_KUBERNETES,
    }
}
