//! The Node conditions kaas-join reports, as a pure function of what is known: the supervisor's
//! [`KubeletState`] (with `run`'s kubelet version check, `version_skew`) and the local [`Probes`] (runtime socket, client certificate, API server
//! clock, disk, memory) become one [`NodeCondition`] per type in [`OUR_CONDITIONS`].
//!
//! Following node-problem-detector's convention: `status: "True"` means the problem is present,
//! `"False"` that it is not, `"Unknown"` that it could not be checked (yet). `reason` is
//! CamelCase ([`reason`]), `message` is for people (at most [`MAX_MESSAGE`] bytes). The table of
//! types and reasons is in the module doc of `node::health`, which writes them on the Node.
//!
//! Here too: keeping `lastTransitionTime` across evaluations ([`carry_transition_times`],
//! [`adopt_transition_times`]), what decides whether a write is due ([`write_key`]) and the
//! status patch ([`patch_body`]), which never carries a condition kubelet owns
//! ([`KUBELET_OWNED`]).

mod kubelet;
mod local;
#[cfg(test)]
pub(crate) mod tests;
mod version_skew;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::model::kubelet_process::KubeletState;
use crate::model::resources::{DiskSpace, Memory};
use crate::model::time::k8s_time;

/// Our condition types.
pub const KUBELET_UNHEALTHY: &str = "KubeletUnhealthy";
pub const CONTAINER_RUNTIME_UNREACHABLE: &str = "ContainerRuntimeUnreachable";
pub const CLIENT_CERTIFICATE_EXPIRING: &str = "ClientCertificateExpiring";
pub const CLOCK_SKEW: &str = "ClockSkew";
pub const LOW_DISK_SPACE: &str = "LowDiskSpace";
pub const LOW_MEMORY: &str = "LowMemory";
pub const KUBELET_VERSION_SKEW: &str = "KubeletVersionSkew";
/// Every condition type kaas-join writes, in the order written.
pub const OUR_CONDITIONS: [&str; 7] = [
    KUBELET_UNHEALTHY,
    CONTAINER_RUNTIME_UNREACHABLE,
    CLIENT_CERTIFICATE_EXPIRING,
    CLOCK_SKEW,
    LOW_DISK_SPACE,
    LOW_MEMORY,
    KUBELET_VERSION_SKEW,
];
/// kubelet's own conditions: never written by kaas-join.
pub const KUBELET_OWNED: [&str; 5] = [
    "Ready",
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
];
/// Longest condition or event message, in bytes.
pub const MAX_MESSAGE: usize = 1024;

/// A condition's `status`.
pub mod status {
    /// The problem is present.
    pub const TRUE: &str = "True";
    /// The problem is not present.
    pub const FALSE: &str = "False";
    /// It could not be checked (yet).
    pub const UNKNOWN: &str = "Unknown";
}

/// Every `reason` our conditions carry, by condition type.
pub mod reason {
    // KubeletUnhealthy
    pub const KUBELET_HEALTHY: &str = "KubeletHealthy";
    pub const KUBELET_STARTING: &str = "KubeletStarting";
    pub const KUBELET_NOT_STARTED: &str = "KubeletNotStarted";
    pub const KUBELET_HEALTHZ_FAILING: &str = "KubeletHealthzFailing";
    pub const KUBELET_RESTARTING: &str = "KubeletRestarting";
    pub const KUBELET_NOT_RUNNING: &str = "KubeletNotRunning";
    pub const KUBELET_CRASH_LOOPING: &str = "KubeletCrashLooping";
    pub const KUBELET_CANNOT_START: &str = "KubeletCannotStart";
    pub const KUBELET_CONFLICT: &str = "KubeletConflict";
    // ContainerRuntimeUnreachable
    pub const CONTAINER_RUNTIME_NOT_CHECKED: &str = "ContainerRuntimeNotChecked";
    pub const CONTAINER_RUNTIME_REACHABLE: &str = "ContainerRuntimeReachable";
    pub const CONTAINER_RUNTIME_UNREACHABLE: &str = "ContainerRuntimeUnreachable";
    // ClientCertificateExpiring
    pub const CLIENT_CERTIFICATE_NOT_CHECKED: &str = "ClientCertificateNotChecked";
    pub const CLIENT_CERTIFICATE_UNREADABLE: &str = "ClientCertificateUnreadable";
    pub const CLIENT_CERTIFICATE_EXPIRED: &str = "ClientCertificateExpired";
    pub const CLIENT_CERTIFICATE_EXPIRING_SOON: &str = "ClientCertificateExpiringSoon";
    pub const CLIENT_CERTIFICATE_VALID: &str = "ClientCertificateValid";
    // ClockSkew
    pub const SERVER_TIME_UNKNOWN: &str = "ServerTimeUnknown";
    pub const CLOCK_SKEWED: &str = "ClockSkewed";
    pub const CLOCK_SYNCHRONIZED: &str = "ClockSynchronized";
    // LowDiskSpace
    pub const DISK_SPACE_UNKNOWN: &str = "DiskSpaceUnknown";
    pub const LOW_DISK_SPACE: &str = "LowDiskSpace";
    pub const DISK_SPACE_SUFFICIENT: &str = "DiskSpaceSufficient";
    // LowMemory
    pub const MEMORY_UNKNOWN: &str = "MemoryUnknown";
    pub const LOW_MEMORY: &str = "LowMemory";
    pub const MEMORY_SUFFICIENT: &str = "MemorySufficient";
    // KubeletVersionSkew
    pub const KUBELET_VERSION_NOT_CHECKED: &str = "KubeletVersionNotChecked";
    pub const KUBELET_VERSION_UNKNOWN: &str = "KubeletVersionUnknown";
    pub const SERVER_VERSION_UNKNOWN: &str = "ServerVersionUnknown";
    pub const KUBELET_VERSION_TOO_NEW: &str = "KubeletVersionTooNew";
    pub const KUBELET_VERSION_TOO_OLD: &str = "KubeletVersionTooOld";
    /// False, but the next control-plane upgrade puts kubelet outside the policy.
    pub const KUBELET_VERSION_SKEW_AT_LIMIT: &str = "KubeletVersionSkewAtLimit";
    pub const KUBELET_VERSION_SKEW_WITHIN_POLICY: &str = "KubeletVersionSkewWithinPolicy";
}

/// One Node condition as the API carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` (problem present), `False` or `Unknown`.
    pub status: String,
    pub last_heartbeat_time: String,
    pub last_transition_time: String,
    pub reason: String,
    pub message: String,
}

impl NodeCondition {
    fn new(type_: &str, status: &str, reason: &str, message: String, now: &str) -> NodeCondition {
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            last_heartbeat_time: now.into(),
            last_transition_time: now.into(),
            reason: reason.into(),
            message: bound_message(message),
        }
    }

    pub fn is_problem(&self) -> bool {
        self.status == status::TRUE
    }

    /// Type, status and `lastTransitionTime`.
    fn transition(&self) -> (&str, &str, &str) {
        (&self.type_, &self.status, &self.last_transition_time)
    }
}

/// The thresholds the conditions are judged by.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub cert_expiry_warning: Duration,
    pub clock_skew_limit: Duration,
    pub disk_free_min_percent: f64,
    pub memory_available_min_percent: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cert_expiry_warning: Duration::from_secs(7 * 24 * 3600),
            clock_skew_limit: Duration::from_secs(30),
            disk_free_min_percent: 10.0,
            memory_available_min_percent: 5.0,
        }
    }
}

/// What the local probes and the API server's clock said. `None`: not checked yet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Probes {
    /// The CRI endpoint, for messages.
    pub runtime_endpoint: String,
    pub runtime: Option<Result<(), String>>,
    /// Where the client certificate is on the node, and kubelet's directory whose filesystem
    /// the disk check measures: for messages.
    pub client_cert_path: String,
    pub kubelet_dir: String,
    /// notAfter of the client certificate.
    pub client_cert: Option<Result<SystemTime, String>>,
    /// Identifies the certificate read (SHA-256 of its DER, shortened): a change means kubelet
    /// rotated it. Not used for conditions.
    pub client_cert_id: Option<String>,
    /// notAfter − notBefore of the client certificate, when read: a short-lived certificate
    /// (a cluster that issues them for hours, or one capped by a young CA) is judged on its
    /// lifetime, not on the fixed warning period.
    pub client_cert_lifetime: Option<Duration>,
    /// Seconds the API server's clock is ahead of ours (negative: behind).
    pub clock_skew: Option<f64>,
    pub disk: Option<Result<DiskSpace, String>>,
    pub memory: Option<Result<Memory, String>>,
    pub limits: Limits,
}

/// One condition's status, reason and message, before it is given its type and time.
#[derive(Debug)]
struct Verdict {
    status: &'static str,
    reason: &'static str,
    message: String,
}

impl Verdict {
    /// `True`: the problem is present.
    fn problem(reason: &'static str, message: String) -> Verdict {
        Verdict {
            status: status::TRUE,
            reason,
            message,
        }
    }

    /// `False`: the problem is not present.
    fn fine(reason: &'static str, message: String) -> Verdict {
        Verdict {
            status: status::FALSE,
            reason,
            message,
        }
    }

    /// `Unknown`: not checked (yet), or the check itself failed.
    fn unknown(reason: &'static str, message: String) -> Verdict {
        Verdict {
            status: status::UNKNOWN,
            reason,
            message,
        }
    }

    fn stamped(self, type_: &str, now: &str) -> NodeCondition {
        NodeCondition::new(type_, self.status, self.reason, self.message, now)
    }
}

/// The node's conditions for this kubelet state and these probes, all stamped `now` (the caller
/// keeps `lastTransitionTime` with [`carry_transition_times`]), in [`OUR_CONDITIONS`]' order.
/// Never a kubelet-owned type.
pub fn conditions(kubelet: &KubeletState, probes: &Probes, now: SystemTime) -> Vec<NodeCondition> {
    let judged = [
        (KUBELET_UNHEALTHY, kubelet::kubelet_unhealthy(kubelet)),
        (
            CONTAINER_RUNTIME_UNREACHABLE,
            local::container_runtime(probes),
        ),
        (
            CLIENT_CERTIFICATE_EXPIRING,
            local::client_certificate(probes, now),
        ),
        (CLOCK_SKEW, local::clock_skew(probes)),
        (LOW_DISK_SPACE, local::low_disk_space(probes)),
        (LOW_MEMORY, local::low_memory(probes)),
        (
            KUBELET_VERSION_SKEW,
            version_skew::kubelet_version_skew(kubelet.version.as_ref()),
        ),
    ];
    let stamp = k8s_time(now);
    judged
        .into_iter()
        .map(|(type_, verdict)| verdict.stamped(type_, &stamp))
        .collect()
}

/// Cuts `s` to at most [`MAX_MESSAGE`] bytes (on a character boundary, ending in `…`).
pub fn bound_message(mut s: String) -> String {
    if s.len() <= MAX_MESSAGE {
        return s;
    }
    let mut cut = MAX_MESSAGE - '…'.len_utf8();
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push('…');
    s
}

/// Keeps `lastTransitionTime` from `previous` for every condition whose status did not change.
pub fn carry_transition_times(current: &mut [NodeCondition], previous: &[NodeCondition]) {
    keep_transition_times(current, previous.iter().map(NodeCondition::transition));
}

/// Gives each condition the transition time `earlier` (type, status, time) has for its type
/// and status, if any.
fn keep_transition_times<'a>(
    current: &mut [NodeCondition],
    earlier: impl Iterator<Item = (&'a str, &'a str, &'a str)> + Clone,
) {
    for c in current.iter_mut() {
        if let Some((_, _, time)) = earlier
            .clone()
            .find(|(type_, status, _)| *type_ == c.type_ && *status == c.status)
        {
            c.last_transition_time = time.to_owned();
        }
    }
}

/// A condition's type, status and `lastTransitionTime` as a Node in the API carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedTransition {
    pub type_: String,
    pub status: String,
    pub last_transition_time: String,
}

impl RecordedTransition {
    /// Type, status and `lastTransitionTime`.
    fn transition(&self) -> (&str, &str, &str) {
        (&self.type_, &self.status, &self.last_transition_time)
    }
}

/// The conditions on a Node (its JSON), as [`RecordedTransition`]s (empty if none, or not a
/// Node).
pub fn transitions_on_node(body: &[u8]) -> Vec<RecordedTransition> {
    let Ok(node) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let field = |c: &serde_json::Value, name: &str| c.get(name)?.as_str().map(str::to_owned);
    node.pointer("/status/conditions")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(RecordedTransition {
                type_: field(c, "type")?,
                status: field(c, "status")?,
                last_transition_time: field(c, "lastTransitionTime")?,
            })
        })
        .collect()
}

/// Keeps the Node's `lastTransitionTime` for each condition whose status is the same there
/// (written by an earlier kaas-join): a restart of kaas-join is not a transition.
pub fn adopt_transition_times(current: &mut [NodeCondition], on_node: &[RecordedTransition]) {
    keep_transition_times(current, on_node.iter().map(RecordedTransition::transition));
}

/// What decides whether a write is due: every condition's type, status, reason and message —
/// everything but the timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteKey(Vec<(String, String, String, String)>);

/// The [`WriteKey`] of these conditions.
pub fn write_key(conditions: &[NodeCondition]) -> WriteKey {
    WriteKey(
        conditions
            .iter()
            .map(|c| {
                (
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                )
            })
            .collect(),
    )
}

/// The status patch: our conditions only, never one kubelet owns.
pub fn patch_body(conditions: &[NodeCondition]) -> serde_json::Value {
    let ours: Vec<&NodeCondition> = conditions
        .iter()
        .filter(|c| !KUBELET_OWNED.contains(&c.type_.as_str()))
        .collect();
    json!({"status": {"conditions": ours}})
}
