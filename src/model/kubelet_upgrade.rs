//! A kubelet upgrade by `kaas-join run`, as data: the request (`kaas-join upgrade-kubelet`, or a
//! drop-in file that cloud-init or a package writes) and where the upgrade stands, published
//! with the kubelet state (the health reporter makes its Events, `kaas-join status` shows it)
//! and written as the request's result file. The procedure is `node::kubelet_upgrade`'s.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One request file: the new kubelet binary to put in place of `run --kubelet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeRequest {
    /// The new binary, an absolute path on this machine (it is copied, not moved).
    pub binary: PathBuf,
}

/// Where an upgrade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradePhase {
    /// Checked, the binary swapped in, kubelet restarted: waiting for its healthz.
    Started,
    /// The new kubelet did not become healthy in time: the old binary is being put back.
    RollingBack,
    /// The new kubelet is healthy (the old binary kept as `<kubelet>.previous`).
    Upgraded,
    /// The old binary is back and kubelet restarted with it.
    RolledBack,
    /// Not done: the binary is not kubelet, outside the skew policy, or nothing to upgrade
    /// (kubelet is not supervised). Nothing was changed.
    Refused,
    /// The swap or the rollback itself failed (the message says what is in place now).
    Failed,
}

impl UpgradePhase {
    /// The upgrade is over (a result file is written).
    pub fn is_final(self) -> bool {
        !matches!(self, UpgradePhase::Started | UpgradePhase::RollingBack)
    }
}

/// An upgrade as `run` published it last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeState {
    /// The request's name (its file name without `.json`).
    pub id: String,
    /// The new binary, as requested.
    pub binary: String,
    /// kubelet's version before, and the new binary's (when known).
    pub from: Option<String>,
    pub to: Option<String>,
    pub phase: UpgradePhase,
    /// What happened, for people.
    pub message: String,
    /// When this phase began (RFC 3339).
    pub at: String,
}
