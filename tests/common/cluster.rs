//! The one sandbox builder: a sandbox control plane on loopback with a style, an approval mode
//! and any other knob of `SandboxConfig`, a bootstrap token minted on it, a temporary root and a
//! complete `JoinConfig` for joining that root to it, in one call:
//! `Cluster::builder().approval(..).start().await`. Tests that join through the library take
//! `cluster.config`; tests of the binary take `cluster.sb` and `cluster.token`.

use std::path::Path;
use std::time::Duration;

use kaas_join::config::JoinConfig;
use kaas_sandbox::{ApprovalMode, ControlPlaneStyle, Sandbox, SandboxConfig, TokenOptions};

/// The node name a [`Cluster`] joins as unless told otherwise.
pub const NODE: &str = "node-1";
/// Both phase timeouts of a [`Cluster`]'s `JoinConfig` unless told otherwise.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running sandbox, a token on it, a root to join and the configuration that joins it.
pub struct Cluster {
    pub sb: Sandbox,
    pub token: String,
    pub root: tempfile::TempDir,
    pub config: JoinConfig,
}

/// What differs between clusters; [`Cluster::builder`].
pub struct ClusterBuilder {
    sandbox: SandboxConfig,
    token: TokenOptions,
    node: String,
    timeout: Duration,
}

impl ClusterBuilder {
    pub fn style(mut self, style: ControlPlaneStyle) -> Self {
        self.sandbox.style = style;
        self
    }

    pub fn approval(mut self, approval: ApprovalMode) -> Self {
        self.sandbox.approval = approval;
        self
    }

    /// CSRs approved `delay` after creation (the real approver's rules).
    pub fn approve_after(self, delay: Duration) -> Self {
        self.approval(ApprovalMode::Auto { delay })
    }

    /// Any other knob of the sandbox's configuration.
    pub fn knobs(mut self, set: impl FnOnce(&mut SandboxConfig)) -> Self {
        set(&mut self.sandbox);
        self
    }

    /// The options the token is minted with.
    pub fn token(mut self, options: TokenOptions) -> Self {
        self.token = options;
        self
    }

    pub fn node(mut self, node: &str) -> Self {
        self.node = node.to_owned();
        self
    }

    /// Both phase timeouts of the `JoinConfig`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub async fn start(self) -> Cluster {
        let sb = super::sandbox(self.sandbox).await;
        let token = sb.create_token_with(self.token);
        let root = tempfile::tempdir().unwrap();
        let config = super::sandbox_join_config(&sb, &token, &self.node, root.path(), self.timeout);
        Cluster {
            sb,
            token,
            root,
            config,
        }
    }
}

impl Cluster {
    /// A kubeadm-style sandbox approving CSRs at once, node [`NODE`], timeouts [`TIMEOUT`].
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            sandbox: SandboxConfig::default(),
            token: TokenOptions::default(),
            node: NODE.to_owned(),
            timeout: TIMEOUT,
        }
    }

    /// [`Cluster::builder`] as it is.
    pub async fn start() -> Cluster {
        Cluster::builder().start().await
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// [`Cluster::config`] with `token` in place of the cluster's own.
    pub fn config_with_token(&self, token: &str) -> JoinConfig {
        let mut cfg = self.config.clone();
        cfg.token =
            kaas_join::model::token::BootstrapToken::parse(token).expect("a valid test token");
        cfg
    }
}
