//! The documented exit codes (README, "Exit codes"): one per failure class a user acts on
//! differently. Every error type says its own code through an exhaustive match, so a new
//! variant cannot silently take a wrong one.

/// An exit code of `kaas-join`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitCode {
    /// Joined (or already joined); `run`: stopped by SIGTERM/SIGINT; `status`: healthy.
    Ok = 0,
    /// An unexpected internal error.
    Internal = 1,
    /// Bad input: flags, config file, token or hash format, labels, token file mode.
    Usage = 2,
    /// The control plane could not be reached, or kept failing (5xx, 429), until the timeout.
    Unreachable = 3,
    /// TLS verification against the pinned CA failed.
    Tls = 4,
    /// cluster-info is not readable anonymously (not published, or no RBAC for it).
    AnonymousDenied = 5,
    /// cluster-info has no signature for this token id (unknown, expired, not yet signed).
    NoSignature = 6,
    /// cluster-info's signature does not match this token (wrong token).
    SignatureMismatch = 7,
    /// The CA pin does not match.
    PinMismatch = 8,
    /// The server is not a Kubernetes API, or answered something unusable.
    NotKubernetes = 9,
    /// The certificate request was denied, failed or was refused.
    CsrRefused = 10,
    /// The certificate request was not approved in time.
    NotApproved = 11,
    /// A Ready Node with this name already exists.
    DuplicateNode = 12,
    /// The bootstrap token was rejected after discovery (expired or deleted); `join` on a node
    /// whose client certificate expired or was rejected, without a token to join again with.
    TokenRejected = 13,
    /// A local file could not be read or written.
    Filesystem = 14,
    /// `status`: not joined (or not finished); `reset`: nothing to reset, or not ours.
    NotJoined = 20,
    /// `status`: joined, but something is wrong (kubelet, daemon, a reported condition).
    Unhealthy = 21,
    /// The admin kubeconfig's user may not do it (403), or was not accepted (401).
    NotAllowed = 22,
    /// `cluster prepare --check` found something missing or wrong.
    NotPrepared = 23,
    /// Preflight found errors (nothing written, no request made when it runs before a join).
    Preflight = 24,
    /// `upgrade-kubelet`: the binary is not kubelet, or outside the version skew policy (or
    /// cannot be checked against kube-apiserver); nothing was changed.
    UpgradeRefused = 25,
    /// `upgrade-kubelet`: the new kubelet did not pass its healthz in time; the old one is back
    /// (or could not be put back: the message says).
    UpgradeRolledBack = 26,
    /// `upgrade-kubelet`: no running `kaas-join run` to hand the upgrade to, or it did not
    /// answer in time.
    DaemonNotRunning = 27,
}

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl std::fmt::Display for ExitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// A process's exit status compares with the code it should be (`status.code() == Some(..)`).
impl PartialEq<ExitCode> for i32 {
    fn eq(&self, other: &ExitCode) -> bool {
        *self == i32::from(other.code())
    }
}
