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
//! | 13 | the bootstrap token was rejected after discovery (expired or deleted); or `join` without a token on a node whose client certificate expired or was rejected |
//! | 14 | a local file could not be read or written |
//! | 20 | `status`: this machine has not joined (or the join is not finished); `reset`: nothing to reset, or not joined by kaas-join |
//! | 21 | `status`: joined, but something is wrong (kubelet, daemon, a reported condition) |
//! | 22 | `token`, `cluster prepare`: the admin kubeconfig's user is not allowed (RBAC 403) or its credentials were rejected (401) |
//! | 23 | `cluster prepare --check`: something is missing or wrong |
//! | 24 | preflight found errors (`preflight`, and `join` before it does anything) |

use crate::config::ConfigError;
use crate::host::files::FsError;
use crate::host::runtime::HostError;
use crate::k8s::bootstrap::BootstrapError;
use crate::k8s::cluster_config::ClusterConfigError;
use crate::k8s::discovery::DiscoveryError;
use crate::model::exit_code::ExitCode;
use crate::node::join_state::StateError;

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
    /// The duplicate-name check got no usable answer before the phase's deadline.
    #[error(
        "cannot check whether a Node named {name:?} already exists (after {retries} retries): \
         {source}; the join does not go on unchecked (a duplicate hostname would take the other \
         machine's Node): retry when the API server answers, or raise --tls-bootstrap-timeout"
    )]
    NodeCheck {
        name: String,
        retries: u32,
        // Boxed as the other network errors: large and rare.
        source: Box<crate::k8s::client::ApiError>,
    },
    #[error("{0}")]
    Bootstrap(Box<BootstrapError>),
    /// `join` without a token on a machine that joined, but whose identity is lost.
    #[error("already joined as {node}, but {what}: it must join again, and no bootstrap token was given: {advice}")]
    IdentityLost {
        node: String,
        what: String,
        advice: String,
    },
    #[error("{0}")]
    Kubelet(#[from] crate::render::kubelet_config::KubeletConfigError),
    #[error("{0}")]
    Supervisor(#[from] crate::node::supervisor::SupervisorError),
    #[error("{0}")]
    Fs(#[from] FsError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("internal error: {0}")]
    Internal(String),
    /// `token ...`, `cluster prepare` (the provider's side, through an admin kubeconfig).
    #[error("{0}")]
    Admin(Box<crate::k8s::admin::AdminError>),
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
    Reset(Box<crate::cmd::reset::ResetError>),
    /// `kaas-join upgrade-kubelet` (its errors carry their own exit codes).
    #[error("{0}")]
    Upgrade(#[from] crate::cmd::upgrade_kubelet::UpgradeError),
}

impl From<crate::cmd::reset::ResetError> for Error {
    fn from(e: crate::cmd::reset::ResetError) -> Error {
        Error::Reset(Box::new(e))
    }
}

impl From<crate::k8s::admin::AdminError> for Error {
    fn from(e: crate::k8s::admin::AdminError) -> Error {
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

impl Error {
    /// The documented exit code: the command's own error's.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(e) => e.exit_code(),
            Error::Host(e) => e.exit_code(),
            Error::Discovery(e) => e.exit_code(),
            Error::ClusterConfig(e) => e.exit_code(),
            Error::DuplicateNode { .. } => ExitCode::DuplicateNode,
            Error::NodeCheck { source, .. } => source.exit_code(),
            Error::Bootstrap(e) => e.exit_code(),
            Error::IdentityLost { .. } => ExitCode::TokenRejected,
            Error::Kubelet(e) => e.exit_code(),
            Error::Supervisor(e) => e.exit_code(),
            Error::Fs(e) => e.exit_code(),
            Error::State(e) => e.exit_code(),
            Error::Internal(_) => ExitCode::Internal,
            Error::Admin(e) => e.exit_code(),
            Error::Preflight { .. } => ExitCode::Preflight,
            Error::Reset(e) => e.exit_code(),
            Error::Upgrade(e) => e.exit_code(),
        }
    }
}
