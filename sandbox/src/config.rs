//! How a sandbox is set up: where it listens, which kind of control plane it imitates, what
//! the approver does, and the knobs for timing, clock and headers.

use std::net::SocketAddr;
use std::time::Duration;

/// How the sandbox is set up.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where to listen; default `127.0.0.1:0` (a free port).
    pub listen: SocketAddr,
    pub style: ControlPlaneStyle,
    pub approval: ApprovalMode,
    /// How long after a token's creation its `jws-kubeconfig-<id>` appears in cluster-info
    /// (the recorded control plane took about 15 ms). Default 0.
    pub jws_delay: Duration,
    /// The `server` written into cluster-info's kubeconfig; default the listen URL.
    pub advertised_server: Option<String>,
    /// Per-approval processing time, serialised over 5 approver workers (load benchmarks).
    pub approval_workers_delay: Duration,
    /// Shifts the `Date` header of every response by this many seconds (positive: the API
    /// server's clock is ahead of the real one), for clients' clock-skew checks. Default 0.
    pub clock_offset_seconds: i64,
    /// Send no `Date` header at all (as behind a proxy that strips it); real kube-apiservers
    /// always send one. Default false.
    pub omit_date_header: bool,
    /// How long the certificates the signer issues for CSRs live (from now; they are backdated
    /// 5 minutes as the real signer does), whatever the CSR asks; `None` (default): the CSR's
    /// `expirationSeconds` (at least 10 minutes), else a year. Changed later with
    /// [`Sandbox::set_certificate_lifetime`](crate::Sandbox::set_certificate_lifetime).
    pub certificate_lifetime: Option<Duration>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            style: ControlPlaneStyle::default(),
            approval: ApprovalMode::default(),
            jws_delay: Duration::ZERO,
            advertised_server: None,
            approval_workers_delay: Duration::ZERO,
            clock_offset_seconds: 0,
            omit_date_header: false,
            certificate_lifetime: None,
        }
    }
}

/// Which kind of control plane to imitate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ControlPlaneStyle {
    /// `kube-system/kubeadm-config` and `kubelet-config` exist (the recorded contents) and
    /// bootstrap tokens and nodes may read them.
    #[default]
    Kubeadm,
    /// A Helm-chart control plane: neither ConfigMap exists and reading them is Forbidden (403).
    Chart,
    /// A control plane nobody prepared for joining nodes: no cluster-info, no kubeadm-config or
    /// kubelet-config, no bootstrap RBAC. Authorization (for everyone but nodes and
    /// `system:masters`) follows the Roles, ClusterRoles and bindings stored through the API,
    /// so anonymous cluster-info reads are 403 and node client CSRs are not auto-approved until
    /// `kaas-join cluster prepare` (or an admin) created the bindings.
    Bare,
}

/// What the csrapproving/csrsigning controllers do with node client CSRs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalMode {
    /// The real approver's rules, applied `delay` after creation; a CSR that fails them stays
    /// Pending forever. Approved CSRs are then signed by the CA.
    Auto { delay: Duration },
    /// Every CSR gets condition `Denied` (reason `SandboxDenied`).
    Deny,
    /// Every CSR is approved, then the signer adds condition `Failed`.
    Fail,
    /// Nothing ever happens: CSRs stay Pending.
    Never,
}

impl Default for ApprovalMode {
    fn default() -> Self {
        ApprovalMode::Auto {
            delay: Duration::ZERO,
        }
    }
}
