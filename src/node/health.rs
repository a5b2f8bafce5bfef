//! Node health reporting: kaas-join reports, as the node itself, what it knows about the node's
//! health, in the Node's status conditions and in Events.
//!
//! Where it touches the rest: [`report`] reads the supervisor's [`KubeletState`] from a
//! `tokio::sync::watch` channel and publishes a [`ReportedStatus`] for `run` (the status file
//! behind `kaas-join status`); it talks to the API server with [`ApiClient`] as
//! `system:node:<name>`, using kubelet's own client certificate (`kubelet-client-current.pem`),
//! which it re-reads whenever kubelet rotates it.
//!
//! # Conditions
//!
//! Following node-problem-detector's convention: `status: "True"` means the problem is present,
//! `"False"` that it is not, `"Unknown"` that it could not be checked (yet). `reason` is CamelCase,
//! `message` is for people (at most [`MAX_MESSAGE`] bytes), `lastTransitionTime` changes only when
//! the status flips, `lastHeartbeatTime` is the time of the write.
//!
//! | type | True reasons | False reason | Unknown reason | checked |
//! |---|---|---|---|---|
//! | `KubeletUnhealthy` | `KubeletNotRunning`, `KubeletRestarting`, `KubeletCrashLooping`, `KubeletHealthzFailing`, `KubeletCannotStart`, `KubeletConflict` | `KubeletHealthy`, `KubeletStarting` | `KubeletNotStarted` | on every supervisor change |
//! | `ContainerRuntimeUnreachable` | `ContainerRuntimeUnreachable` | `ContainerRuntimeReachable` | `ContainerRuntimeNotChecked` | connect to the CRI unix socket, every probe |
//! | `ClientCertificateExpiring` | `ClientCertificateExpiringSoon`, `ClientCertificateExpired`, `ClientCertificateUnreadable` | `ClientCertificateValid` | `ClientCertificateNotChecked` | notAfter of the cert file, re-read every probe |
//! | `ClockSkew` | `ClockSkewed` | `ClockSynchronized` | `ServerTimeUnknown` | the API server's `Date` header vs our clock, on every answer |
//! | `LowDiskSpace` | `LowDiskSpace` | `DiskSpaceSufficient` | `DiskSpaceUnknown` | free % of the filesystem holding `/var/lib/kubelet` (sysinfo), every probe |
//! | `LowMemory` | `LowMemory` | `MemorySufficient` | `MemoryUnknown` | available / total memory (sysinfo), every probe |
//!
//! `KubeletUnhealthy` follows the supervisor's phase: Running (False, or True with
//! `KubeletHealthzFailing` when healthz fails), Starting (False, or True with `KubeletRestarting`
//! after an exit, so a crash loop does not flap to False between restarts), BackingOff and
//! Stopped (`KubeletNotRunning`), CrashLooping, CannotStart, Conflict. Its message carries the last
//! exit's description and the last lines kubelet printed (the newest ones kept when the message
//! has to be cut). **`KubeletPhase::NotStarted`** (kubelet not started yet, or not supervised at
//! all with `run --no-kubelet`) is judged on healthz alone: healthy → False `KubeletHealthy`,
//! failing → True `KubeletHealthzFailing`, no answer yet → Unknown `KubeletNotStarted`.
//!
//! Messages hold no jittery numbers while nothing changes (no restart counters on healthz
//! failures, no percentages in the False messages, the clock skew estimate moves only by more
//! than its resolution), so a steady node is written only on the heartbeat.
//!
//! The conditions kubelet owns (`Ready`, `MemoryPressure`, `DiskPressure`, `PIDPressure`,
//! `NetworkUnavailable`, [`KUBELET_OWNED`]) are never written, whatever happens, and the node's
//! Lease in `kube-node-lease` is never touched: renewing it would hide a dead kubelet.
//!
//! # Clock skew
//!
//! HTTP dates have a resolution of one second: the API server's time at the moment its answer
//! arrived lies in `[Date, Date + 1 s)` plus the request's latency, so the estimate is
//! `Date + 0.5 s − local receipt time` (±0.5 s plus latency). The default limit is 30 s: far above
//! that error and above what NTP slewing produces, well below what breaks things (the CSR signer
//! back-dates certificates by 5 minutes, bound service account tokens and webhook timeouts are
//! in the minutes), so the node hears of drift before TLS and tokens fail.
//!
//! # Writes
//!
//! `PATCH /api/v1/nodes/<name>/status`, `application/strategic-merge-patch+json`, body
//! `{"status":{"conditions":[...our conditions only...]}}` (conditions merge by `type`). A write
//! happens when the set of (type, status, reason, message) changes — [`COALESCE`] (200 ms) after
//! the first change of a burst, so a change reaches the API within well under 2 s — and otherwise
//! every `heartbeat` (default 5 minutes). Failures back off from 1 s to 60 s with ±20 % jitter
//! (`HealthConfig::backoff_initial`/`backoff_max`), never sooner than the server's Retry-After
//! (`retryAfterSeconds`, or the `Retry-After` header), always sending the latest state; the request in flight is cut by the
//! client's own timeout (10 s), and the loop never waits for it. Before the first write a GET of
//! the node's own Node learns the server's clock (its `Date`), so the first write is already
//! complete (no `ServerTimeUnknown` write followed by another), and the conditions an earlier
//! kaas-join wrote: their `lastTransitionTime` is kept where the status is the same (a restart of
//! kaas-join is not a transition). A 404 (the Node is not registered yet:
//! kubelet never started or never registered) is retried at the shorter of the backoff and the
//! heartbeat, and meanwhile
//! each present problem is reported as an Event (plus one `NodeNotRegistered`). 401/403 are
//! logged loudly once (the node's certificate is not accepted, or not allowed) and retried at the
//! 60 s cap, or at once when the certificate file changes.
//!
//! # Events
//!
//! `POST /api/v1/namespaces/default/events`, about the Node (`involvedObject` kind Node, name
//! and uid = node name), source and reportingComponent `kaas-join`. Reasons: `KubeletRestarted`
//! (or `KubeletHung` when it was killed as hung), `KubeletCrashLooping`, `KubeletCannotStart`,
//! `KubeletConflict`, `KubeletHealthzFailing`, `KubeletRecovered`, and for the other conditions
//! their reason when they turn True (`ContainerRuntimeUnreachable`, `ClientCertificateExpiringSoon`,
//! `ClockSkewed`, `LowDiskSpace`, `LowMemory`, ...) and their False reason when they recover
//! (`ContainerRuntimeReachable`, ...); `NodeNotRegistered` while the Node does not exist.
//!
//! Aggregation, as kubelet's event correlator does it: the same reason and message again within
//! the aggregation window (10 minutes) PATCHes the existing event (`count`, `lastTimestamp`)
//! instead of creating a new one. Rate limit: at most one request per reason per
//! `event_min_interval` (10 s); occurrences in between are counted and go out with the next
//! request, so none is lost and none is repeated. At most [`MAX_EVENT_KEYS`] distinct events are
//! tracked. Failed event requests back off as the status writes do (their own backoff, and
//! Retry-After), and the last failure is published (`lastEventError`) until one succeeds. A
//! create answered 409 (an earlier try reached the server, its answer did not) is followed by a
//! PATCH of the count, as the earlier try's count is not known.
//!
//! # Concurrency
//!
//! Reporting never blocks supervision: the supervisor only publishes on a watch channel. The
//! local probes (socket connect, sysinfo, certificate file) run in their own task, the API calls
//! in a spawned job, so the loop that turns state into conditions never waits on the network.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::macros::format_description;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::host::paths::{Paths, KUBELET_CLIENT_CURRENT, KUBELET_DIR};
use crate::host::{files, DiskSpace, Host, LinuxHost, Memory};
use crate::k8s::client::{ApiClient, ApiError, RequestCounter};
use crate::model::backoff::Backoff;
use crate::model::kubelet_process::{ExitInfo, KubeletPhase, KubeletState};

/// Our condition types.
pub const KUBELET_UNHEALTHY: &str = "KubeletUnhealthy";
pub const CONTAINER_RUNTIME_UNREACHABLE: &str = "ContainerRuntimeUnreachable";
pub const CLIENT_CERTIFICATE_EXPIRING: &str = "ClientCertificateExpiring";
pub const CLOCK_SKEW: &str = "ClockSkew";
pub const LOW_DISK_SPACE: &str = "LowDiskSpace";
pub const LOW_MEMORY: &str = "LowMemory";
/// Every condition type kaas-join writes, in the order written.
pub const OUR_CONDITIONS: [&str; 6] = [
    KUBELET_UNHEALTHY,
    CONTAINER_RUNTIME_UNREACHABLE,
    CLIENT_CERTIFICATE_EXPIRING,
    CLOCK_SKEW,
    LOW_DISK_SPACE,
    LOW_MEMORY,
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
/// How long a burst of changes is gathered before it is written.
pub const COALESCE: Duration = Duration::from_millis(200);
/// First wait after a failed write.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Longest wait between two tries (also the retry interval after 401/403).
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Distinct events tracked for aggregation.
pub const MAX_EVENT_KEYS: usize = 64;
/// Time allowed to connect to the container runtime socket.
const RUNTIME_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const EVENT_NAMESPACE: &str = "default";
const COMPONENT: &str = "kaas-join";
const STRATEGIC_MERGE: &str = "application/strategic-merge-patch+json";

/// What [`report`] needs; [`HealthConfig::new`] fills in the documented defaults.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub node_name: String,
    /// `https://host:port` of the API server (from kubelet.conf / state).
    pub server: String,
    /// The cluster CA bundle, PEM.
    pub ca_pem: Vec<u8>,
    /// The client certificate is read at `paths.host(KUBELET_CLIENT_CURRENT)`; the disk check
    /// looks at `paths.host("/var/lib/kubelet")`.
    pub paths: Paths,
    /// `unix:///run/containerd/containerd.sock`; the socket is looked for under `paths`.
    pub cri_endpoint: String,
    /// Rewrite unchanged conditions this often (default 5 minutes).
    pub heartbeat: Duration,
    /// Local probes (runtime socket, disk, memory, certificate), default 10 s.
    pub probe_interval: Duration,
    /// `ClientCertificateExpiring` turns True this long before notAfter (default 7 days).
    pub cert_expiry_warning: Duration,
    /// `ClockSkew` turns True above this difference (default 30 s; see the module doc).
    pub clock_skew_limit: Duration,
    /// `LowDiskSpace` below this free percentage (default 10).
    pub disk_free_min_percent: f64,
    /// `LowMemory` below this available percentage (default 5).
    pub memory_available_min_percent: f64,
    /// At most one event request per reason this often (default 10 s).
    pub event_min_interval: Duration,
    /// The same reason and message within this window aggregate into one event (default
    /// 10 minutes, as kubelet's correlator).
    pub event_aggregation_window: Duration,
    /// First wait after a failed request (default [`BACKOFF_INITIAL`]); doubles up to
    /// `backoff_max` (default [`BACKOFF_MAX`], also the retry interval after 401/403).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Counts every HTTP request the reporter sends (tests and benchmarks read it).
    pub requests: Arc<RequestCounter>,
    /// The machine: disk and memory figures.
    pub host: Arc<dyn Host>,
}

impl HealthConfig {
    pub fn new(
        node_name: impl Into<String>,
        server: impl Into<String>,
        ca_pem: Vec<u8>,
        paths: Paths,
        cri_endpoint: impl Into<String>,
    ) -> HealthConfig {
        let limits = Limits::default();
        HealthConfig {
            node_name: node_name.into(),
            server: server.into(),
            ca_pem,
            paths,
            cri_endpoint: cri_endpoint.into(),
            heartbeat: Duration::from_secs(300),
            probe_interval: Duration::from_secs(10),
            cert_expiry_warning: limits.cert_expiry_warning,
            clock_skew_limit: limits.clock_skew_limit,
            disk_free_min_percent: limits.disk_free_min_percent,
            memory_available_min_percent: limits.memory_available_min_percent,
            event_min_interval: Duration::from_secs(10),
            event_aggregation_window: Duration::from_secs(600),
            backoff_initial: BACKOFF_INITIAL,
            backoff_max: BACKOFF_MAX,
            requests: Arc::default(),
            host: Arc::new(LinuxHost),
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            cert_expiry_warning: self.cert_expiry_warning,
            clock_skew_limit: self.clock_skew_limit,
            disk_free_min_percent: self.disk_free_min_percent,
            memory_available_min_percent: self.memory_available_min_percent,
        }
    }
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
            message: bound(message),
        }
    }

    pub fn is_problem(&self) -> bool {
        self.status == "True"
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
    /// notAfter of the client certificate.
    pub client_cert: Option<Result<SystemTime, String>>,
    /// Identifies the certificate read (SHA-256 of its DER, shortened): a change means kubelet
    /// rotated it. Not used for conditions.
    pub client_cert_id: Option<String>,
    /// Seconds the API server's clock is ahead of ours (negative: behind).
    pub clock_skew: Option<f64>,
    pub disk: Option<Result<DiskSpace, String>>,
    pub memory: Option<Result<Memory, String>>,
    pub limits: Limits,
}

/// What was last written, and when (RFC 3339).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedConditions {
    pub conditions: Vec<NodeCondition>,
    pub written_at: String,
}

/// Published after every evaluation and every API exchange, for the status file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedStatus {
    /// The conditions as kaas-join sees them now.
    pub conditions: Vec<NodeCondition>,
    /// The last conditions the API server accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_written: Option<ReportedConditions>,
    /// Why the last write (or loading the certificate) failed; cleared by a successful write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<String>,
    /// Why the last event request failed; cleared by the next one that succeeds. Events are
    /// best effort (they are retried, never block the conditions), but a failure that lasts
    /// must be visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_error: Option<String>,
    /// `Some(false)` while the Node does not exist (the patch answered 404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_registered: Option<bool>,
    /// How many times the API client was built from the certificate file (1 + rotations seen).
    pub client_loads: u32,
    /// Event requests (creates and aggregating patches) the API server accepted.
    pub events_sent: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_seconds: Option<f64>,
}

// ---------------------------------------------------------------------------------------------
// Conditions (pure)

/// The node's conditions for this kubelet state and these probes, all stamped `now` (the caller
/// keeps `lastTransitionTime` with [`carry_transition_times`]). Never a kubelet-owned type.
pub fn conditions(kubelet: &KubeletState, probes: &Probes, now: SystemTime) -> Vec<NodeCondition> {
    let t = k8s_time(now);
    let l = &probes.limits;
    let (status, reason, message) = kubelet_condition(kubelet);
    let mut out = vec![NodeCondition::new(
        KUBELET_UNHEALTHY,
        status,
        reason,
        message,
        &t,
    )];

    let endpoint = &probes.runtime_endpoint;
    let (s, r, m) = match &probes.runtime {
        None => (
            "Unknown",
            "ContainerRuntimeNotChecked",
            format!("the container runtime at {endpoint} has not been checked yet"),
        ),
        Some(Ok(())) => (
            "False",
            "ContainerRuntimeReachable",
            format!("the container runtime socket {endpoint} accepts connections"),
        ),
        Some(Err(e)) => (
            "True",
            "ContainerRuntimeUnreachable",
            format!("cannot connect to the container runtime socket {endpoint}: {e}; kubelet cannot run pods without it"),
        ),
    };
    out.push(NodeCondition::new(
        CONTAINER_RUNTIME_UNREACHABLE,
        s,
        r,
        m,
        &t,
    ));

    let (s, r, m) = match &probes.client_cert {
        None => (
            "Unknown",
            "ClientCertificateNotChecked",
            "the node's client certificate has not been checked yet".to_string(),
        ),
        Some(Err(e)) => (
            "True",
            "ClientCertificateUnreadable",
            format!("cannot read the node's client certificate {}: {e}", KUBELET_CLIENT_CURRENT),
        ),
        Some(Ok(not_after)) => match not_after.duration_since(now) {
            Err(_) => (
                "True",
                "ClientCertificateExpired",
                format!(
                    "the node's client certificate expired at {}; kubelet's rotation did not renew it (is certificate rotation approved for system:nodes?)",
                    k8s_time(*not_after)
                ),
            ),
            Ok(left) if left <= l.cert_expiry_warning => (
                "True",
                "ClientCertificateExpiringSoon",
                format!(
                    "the node's client certificate expires at {} (in {}); kubelet rotates it at about 70-90% of its lifetime, so rotation is not working (is certificate rotation approved for system:nodes?)",
                    k8s_time(*not_after),
                    human_duration(left)
                ),
            ),
            Ok(_) => (
                "False",
                "ClientCertificateValid",
                format!(
                    "the node's client certificate is valid until {}",
                    k8s_time(*not_after)
                ),
            ),
        },
    };
    out.push(NodeCondition::new(CLIENT_CERTIFICATE_EXPIRING, s, r, m, &t));

    let limit = l.clock_skew_limit.as_secs_f64();
    let (s, r, m) = match probes.clock_skew {
        None => (
            "Unknown",
            "ServerTimeUnknown",
            "the API server's time is not known yet".to_string(),
        ),
        Some(skew) if skew.abs() > limit => (
            "True",
            "ClockSkewed",
            format!(
                "this node's clock is about {} s {} the API server's (more than the {} s allowed); check NTP on the node",
                skew.abs().round(),
                if skew > 0.0 { "behind" } else { "ahead of" },
                l.clock_skew_limit.as_secs()
            ),
        ),
        Some(_) => (
            "False",
            "ClockSynchronized",
            format!(
                "this node's clock is within {} s of the API server's",
                l.clock_skew_limit.as_secs()
            ),
        ),
    };
    out.push(NodeCondition::new(CLOCK_SKEW, s, r, m, &t));

    let min = l.disk_free_min_percent;
    let (s, r, m) = match &probes.disk {
        None => (
            "Unknown",
            "DiskSpaceUnknown",
            format!("free space under {} has not been checked yet", KUBELET_DIR),
        ),
        Some(Err(e)) => (
            "Unknown",
            "DiskSpaceUnknown",
            format!("cannot tell the free space under {}: {e}", KUBELET_DIR),
        ),
        Some(Ok(d)) if percent(d.available, d.total) < min => (
            "True",
            "LowDiskSpace",
            format!(
                "only {}% ({}) free on the filesystem at {} holding {}; the minimum is {min}%",
                percent(d.available, d.total).floor(),
                human_bytes(d.available),
                d.mount_point,
                KUBELET_DIR
            ),
        ),
        Some(Ok(d)) => (
            "False",
            "DiskSpaceSufficient",
            format!(
                "the filesystem at {} holding {} has at least {min}% free",
                d.mount_point, KUBELET_DIR
            ),
        ),
    };
    out.push(NodeCondition::new(LOW_DISK_SPACE, s, r, m, &t));

    let min = l.memory_available_min_percent;
    let (s, r, m) = match &probes.memory {
        None => (
            "Unknown",
            "MemoryUnknown",
            "available memory has not been checked yet".to_string(),
        ),
        Some(Err(e)) => (
            "Unknown",
            "MemoryUnknown",
            format!("cannot tell the available memory: {e}"),
        ),
        Some(Ok(m)) if percent(m.available, m.total) < min => (
            "True",
            "LowMemory",
            format!(
                "only {}% of memory ({} of {}) is available; the minimum is {min}%",
                percent(m.available, m.total).floor(),
                human_bytes(m.available),
                human_bytes(m.total)
            ),
        ),
        Some(Ok(_)) => (
            "False",
            "MemorySufficient",
            format!("at least {min}% of memory is available"),
        ),
    };
    out.push(NodeCondition::new(LOW_MEMORY, s, r, m, &t));
    out
}

/// Status, reason and message of `KubeletUnhealthy`.
fn kubelet_condition(k: &KubeletState) -> (&'static str, &'static str, String) {
    let pid = k.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    let healthz_error = || {
        k.healthz
            .last_error
            .clone()
            .unwrap_or_else(|| "no answer".into())
    };
    match k.phase {
        KubeletPhase::NotStarted => match k.healthz.ok {
            Some(true) => (
                "False",
                "KubeletHealthy",
                "kubelet (not started by kaas-join) answers its healthz check".into(),
            ),
            Some(false) => (
                "True",
                "KubeletHealthzFailing",
                format!("kubelet's healthz check fails: {}", healthz_error()),
            ),
            None => (
                "Unknown",
                "KubeletNotStarted",
                "kubelet has not been started yet and no healthz check has answered".into(),
            ),
        },
        KubeletPhase::Running if k.healthz.ok == Some(false) => (
            "True",
            "KubeletHealthzFailing",
            format!(
                "kubelet{pid} runs but its healthz check fails: {}",
                healthz_error()
            ),
        ),
        KubeletPhase::Running => (
            "False",
            "KubeletHealthy",
            format!("kubelet{pid} is running and answers its healthz check"),
        ),
        KubeletPhase::Starting => match &k.last_exit {
            Some(exit) => (
                "True",
                "KubeletRestarting",
                with_exit(
                    format!(
                        "kubelet{pid} is starting again after restart {}; waiting for its healthz check",
                        k.restarts
                    ),
                    exit,
                ),
            ),
            None => (
                "False",
                "KubeletStarting",
                format!("kubelet{pid} is starting; waiting for its healthz check"),
            ),
        },
        KubeletPhase::BackingOff => (
            "True",
            "KubeletNotRunning",
            match &k.last_exit {
                Some(exit) => with_exit(
                    format!(
                        // `restarts` already counts this exit's restart.
                        "kubelet is not running ({}); kaas-join restarts it (restart {})",
                        exit.description,
                        k.restarts
                    ),
                    exit,
                ),
                None => "kubelet is not running; kaas-join restarts it".into(),
            },
        ),
        KubeletPhase::CrashLooping => (
            "True",
            "KubeletCrashLooping",
            match &k.last_exit {
                Some(exit) => with_exit(
                    format!(
                        "kubelet is crash-looping ({} restarts); kaas-join keeps restarting it at the longest backoff",
                        k.restarts
                    ),
                    exit,
                ),
                None => format!("kubelet is crash-looping ({} restarts)", k.restarts),
            },
        ),
        KubeletPhase::CannotStart => (
            "True",
            "KubeletCannotStart",
            k.problem
                .clone()
                .unwrap_or_else(|| "kubelet cannot be started".into()),
        ),
        KubeletPhase::Conflict => (
            "True",
            "KubeletConflict",
            k.problem
                .clone()
                .unwrap_or_else(|| "another kubelet already runs on this machine".into()),
        ),
        KubeletPhase::Stopped => (
            "True",
            "KubeletNotRunning",
            "kubelet was stopped: kaas-join is shutting down".into(),
        ),
    }
}

/// `head`, the last exit and as many of the last lines as fit in [`MAX_MESSAGE`] (the newest
/// kept: they say why it ended).
fn with_exit(head: String, exit: &ExitInfo) -> String {
    let mut msg = format!(
        "{head}. Last exit: {} at {}",
        exit.description,
        k8s_time(exit.at)
    );
    if exit.last_lines.is_empty() {
        return bound(msg);
    }
    msg.push_str("; last lines:");
    let budget = MAX_MESSAGE.saturating_sub(msg.len());
    let mut tail: Vec<String> = Vec::new();
    let mut used = 0;
    for line in exit.last_lines.iter().rev() {
        let line = line.trim_end();
        let cost = line.len() + 1;
        if used + cost <= budget {
            tail.push(line.to_string());
            used += cost;
            continue;
        }
        if tail.is_empty() && budget > 8 {
            // One line longer than the room left: keep its end, marked as cut.
            let mut start = line.len() - (budget - 4);
            while !line.is_char_boundary(start) {
                start += 1;
            }
            tail.push(format!("…{}", &line[start..]));
        }
        break;
    }
    for line in tail.iter().rev() {
        msg.push('\n');
        msg.push_str(line);
    }
    bound(msg)
}

/// Cuts `s` to at most [`MAX_MESSAGE`] bytes (on a character boundary, ending in `…`).
fn bound(mut s: String) -> String {
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

/// Type, status and lastTransitionTime of each condition in a Node's JSON (empty if none).
fn transition_times_on_node(body: &[u8]) -> Vec<(String, String, String)> {
    let Ok(node) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let field = |c: &serde_json::Value, name: &str| c.get(name)?.as_str().map(str::to_owned);
    node.pointer("/status/conditions")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                field(c, "type")?,
                field(c, "status")?,
                field(c, "lastTransitionTime")?,
            ))
        })
        .collect()
}

/// Keeps `lastTransitionTime` from `previous` for every condition whose status did not change.
pub fn carry_transition_times(current: &mut [NodeCondition], previous: &[NodeCondition]) {
    for c in current.iter_mut() {
        if let Some(p) = previous
            .iter()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
        {
            c.last_transition_time = p.last_transition_time.clone();
        }
    }
}

/// What decides whether a write is due: everything but the timestamps.
fn key_of(conditions: &[NodeCondition]) -> Vec<(String, String, String, String)> {
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
        .collect()
}

/// The status patch: our conditions only, never one kubelet owns.
pub fn patch_body(conditions: &[NodeCondition]) -> serde_json::Value {
    let ours: Vec<&NodeCondition> = conditions
        .iter()
        .filter(|c| !KUBELET_OWNED.contains(&c.type_.as_str()))
        .collect();
    json!({"status": {"conditions": ours}})
}

fn percent(part: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        part as f64 * 100.0 / total as f64
    }
}

fn human_bytes(b: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    if b as f64 >= GIB {
        format!("{:.1} GiB", b as f64 / GIB)
    } else {
        format!("{:.0} MiB", b as f64 / MIB)
    }
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 2 * 86400 {
        format!("{} days", s / 86400)
    } else if s >= 2 * 3600 {
        format!("{} hours", s / 3600)
    } else {
        format!("{} minutes", s / 60)
    }
}

/// `metav1.Time` format: RFC 3339, whole seconds, `Z`.
pub fn k8s_time(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

/// Parses an HTTP `Date` header (`Fri, 27 Nov 2026 06:08:10 GMT`).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let t = time::PrimitiveDateTime::parse(
        s.trim(),
        format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ),
    )
    .ok()?
    .assume_utc();
    Some(SystemTime::from(t))
}

fn unix_f64(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Seconds the server is ahead of us, from its `Date` (1 s resolution: take the middle of the
/// second) and our clock when the answer arrived.
pub fn clock_skew(server_date: SystemTime, received_at: SystemTime) -> f64 {
    unix_f64(server_date) + 0.5 - unix_f64(received_at)
}

// ---------------------------------------------------------------------------------------------
// Local probes

/// Where the CRI socket is on this machine, from `unix:///path` (or a bare absolute path).
fn runtime_socket(paths: &Paths, endpoint: &str) -> Result<PathBuf, String> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if !path.starts_with('/') {
        return Err(format!(
            "only unix socket endpoints can be checked, not {endpoint:?}"
        ));
    }
    Ok(paths.host(path))
}

async fn probe_runtime(paths: &Paths, endpoint: &str) -> Result<(), String> {
    let socket = runtime_socket(paths, endpoint)?;
    match tokio::time::timeout(
        RUNTIME_CONNECT_TIMEOUT,
        tokio::net::UnixStream::connect(&socket),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no connection within {} s",
            RUNTIME_CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// The first certificate in a PEM (kubelet's file holds the certificate and then the key).
fn first_certificate_der(pem: &[u8]) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
}

fn cert_id(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// notAfter and identity of the client certificate file.
fn probe_cert(path: &Path) -> Result<(SystemTime, String), String> {
    let pem =
        files::read_private_file(path, "kubelet client certificate").map_err(|e| e.to_string())?;
    let der = first_certificate_der(&pem).ok_or("it holds no PEM CERTIFICATE")?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("not a valid certificate: {e}"))?;
    let not_after = cert.validity().not_after.timestamp();
    let not_after = if not_after >= 0 {
        UNIX_EPOCH + Duration::from_secs(not_after as u64)
    } else {
        UNIX_EPOCH
    };
    Ok((not_after, cert_id(&der)))
}

/// Runs every local probe once (the clock is measured elsewhere).
async fn probe_all(cfg: &HealthConfig) -> Probes {
    let runtime = probe_runtime(&cfg.paths, &cfg.cri_endpoint).await;
    let cert_path = cfg.paths.host(KUBELET_CLIENT_CURRENT);
    let kubelet_dir = cfg.paths.host(KUBELET_DIR);
    let host = cfg.host.clone();
    let blocking = tokio::task::spawn_blocking(move || {
        (
            probe_cert(&cert_path),
            host.disk_space(&kubelet_dir).map_err(|e| e.to_string()),
            host.memory().map_err(|e| e.to_string()),
        )
    })
    .await;
    let (cert, disk, memory) = match blocking {
        Ok(r) => r,
        Err(e) => {
            let err = format!("the probe failed: {e}");
            (Err(err.clone()), Err(err.clone()), Err(err))
        }
    };
    let (client_cert, client_cert_id) = match cert {
        Ok((not_after, id)) => (Ok(not_after), Some(id)),
        Err(e) => (Err(e), None),
    };
    Probes {
        runtime_endpoint: cfg.cri_endpoint.clone(),
        runtime: Some(runtime),
        client_cert: Some(client_cert),
        client_cert_id,
        clock_skew: None,
        disk: Some(disk),
        memory: Some(memory),
        limits: cfg.limits(),
    }
}

async fn probe_loop(cfg: HealthConfig, tx: watch::Sender<Probes>) {
    let mut tick = tokio::time::interval(cfg.probe_interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; the caller already probed once
    loop {
        tick.tick().await;
        let probes = probe_all(&cfg).await;
        if tx.is_closed() {
            return;
        }
        tx.send_if_modified(|p| {
            if *p == probes {
                false
            } else {
                *p = probes;
                true
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Events

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One aggregated event: every occurrence of the same reason and message in the window.
#[derive(Debug, Clone)]
struct TrackedEvent {
    type_: EventType,
    reason: String,
    message: String,
    name: String,
    /// Created on the server (further occurrences PATCH it).
    created: bool,
    count: u32,
    sent_count: u32,
    first: SystemTime,
    last: SystemTime,
    last_seen: Instant,
}

/// One request to send.
#[derive(Debug, Clone)]
struct EventSend {
    name: String,
    create: bool,
    body: serde_json::Value,
    count: u32,
}

/// kubelet's event correlator, simplified: aggregation by reason + message, a per-reason rate
/// limit that defers (and counts) instead of dropping.
#[derive(Debug)]
struct EventRecorder {
    node: String,
    window: Duration,
    min_interval: Duration,
    events: Vec<TrackedEvent>,
    last_sent: HashMap<String, Instant>,
    last_nanos: u128,
}

impl EventRecorder {
    fn new(node: &str, window: Duration, min_interval: Duration) -> EventRecorder {
        EventRecorder {
            node: node.into(),
            window,
            min_interval,
            events: Vec::new(),
            last_sent: HashMap::new(),
            last_nanos: 0,
        }
    }

    /// `<node>.<hex nanoseconds>`, like kubelet's event names; unique within this process.
    fn new_name(&mut self, at: SystemTime) -> String {
        let nanos = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .max(self.last_nanos + 1);
        self.last_nanos = nanos;
        format!("{}.{nanos:x}", self.node)
    }

    fn record(
        &mut self,
        type_: EventType,
        reason: &str,
        message: &str,
        now: SystemTime,
        at: Instant,
    ) {
        let message = bound(message.to_string());
        if let Some(e) = self
            .events
            .iter_mut()
            .find(|e| e.reason == reason && e.message == message)
        {
            if at.duration_since(e.last_seen) < self.window {
                e.count += 1;
                e.last = now;
                e.last_seen = at;
                return;
            }
        }
        self.events
            .retain(|e| !(e.reason == reason && e.message == message));
        if self.events.len() >= MAX_EVENT_KEYS {
            // Forget the oldest one already sent in full, else simply the oldest.
            let victim = self
                .events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.sent_count >= e.count)
                .min_by_key(|(_, e)| e.last_seen)
                .or_else(|| {
                    self.events
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, e)| e.last_seen)
                })
                .map(|(i, _)| i);
            if let Some(i) = victim {
                self.events.remove(i);
            }
        }
        let name = self.new_name(now);
        tracing::info!(reason, message = %message, "node event");
        self.events.push(TrackedEvent {
            type_,
            reason: reason.into(),
            message,
            name,
            created: false,
            count: 1,
            sent_count: 0,
            first: now,
            last: now,
            last_seen: at,
        });
    }

    fn ready(&self, reason: &str, at: Instant) -> bool {
        self.last_sent
            .get(reason)
            .is_none_or(|t| at.duration_since(*t) >= self.min_interval)
    }

    /// The requests due now (one per reason), marking their reasons as sent.
    fn due(&mut self, at: Instant) -> Vec<EventSend> {
        let mut out = Vec::new();
        let mut reasons: Vec<String> = Vec::new();
        for e in &self.events {
            if e.count <= e.sent_count || reasons.contains(&e.reason) || !self.ready(&e.reason, at)
            {
                continue;
            }
            reasons.push(e.reason.clone());
            let body = if e.created {
                json!({"count": e.count, "lastTimestamp": k8s_time(e.last), "message": e.message})
            } else {
                self.create_body(e)
            };
            out.push(EventSend {
                name: e.name.clone(),
                create: !e.created,
                body,
                count: e.count,
            });
        }
        for r in reasons {
            self.last_sent.insert(r, at);
        }
        out
    }

    /// When the next deferred request becomes due (`None`: nothing pending).
    fn next_due(&self) -> Option<Instant> {
        self.events
            .iter()
            .filter(|e| e.count > e.sent_count)
            .map(|e| {
                self.last_sent
                    .get(&e.reason)
                    .map_or_else(Instant::now, |t| *t + self.min_interval)
            })
            .min()
    }

    fn create_body(&self, e: &TrackedEvent) -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": e.name, "namespace": EVENT_NAMESPACE},
            "involvedObject": {"kind": "Node", "name": self.node, "uid": self.node, "apiVersion": "v1"},
            "reason": e.reason,
            "message": e.message,
            "source": {"component": COMPONENT, "host": self.node},
            "firstTimestamp": k8s_time(e.first),
            "lastTimestamp": k8s_time(e.last),
            "count": e.count,
            "type": e.type_.as_str(),
            "reportingComponent": COMPONENT,
            "reportingInstance": self.node,
        })
    }

    /// Records the result of a send.
    fn sent(&mut self, name: &str, count: u32, result: &EventResult) {
        let Some(e) = self.events.iter_mut().find(|e| e.name == name) else {
            return;
        };
        match result {
            EventResult::Sent => {
                e.created = true;
                e.sent_count = e.sent_count.max(count);
            }
            // Created, but with the count of an earlier try: the next request PATCHes the count.
            EventResult::Exists => e.created = true,
            EventResult::Gone => e.created = false,
            EventResult::Failed(_) => {}
        }
    }
}

#[derive(Debug)]
enum EventResult {
    Sent,
    /// A create answered 409: an earlier try reached the server although its answer did not.
    /// Which count that try carried is not known, so the count is sent again (PATCH).
    Exists,
    /// The event to aggregate into no longer exists: create it again.
    Gone,
    Failed(ApiError),
}

/// Events for the change from `old` to `new` kubelet state.
fn kubelet_events(
    old: &KubeletState,
    new: &KubeletState,
) -> Vec<(EventType, &'static str, String)> {
    let mut out = Vec::new();
    if let Some(exit) = &new.last_exit {
        if old.last_exit.as_ref() != Some(exit) && new.phase != KubeletPhase::Stopped {
            let hung = exit.description.contains("hung");
            out.push((
                EventType::Warning,
                if hung {
                    "KubeletHung"
                } else {
                    "KubeletRestarted"
                },
                format!("kubelet {}; kaas-join restarts it", exit.description),
            ));
        }
    }
    if new.phase != old.phase {
        let problem = || new.problem.clone().unwrap_or_default();
        match new.phase {
            KubeletPhase::CrashLooping => out.push((
                EventType::Warning,
                "KubeletCrashLooping",
                match &new.last_exit {
                    Some(e) => format!("kubelet keeps failing ({}); kaas-join keeps restarting it at the longest backoff", e.description),
                    None => "kubelet keeps failing; kaas-join keeps restarting it at the longest backoff".into(),
                },
            )),
            KubeletPhase::CannotStart => out.push((EventType::Warning, "KubeletCannotStart", problem())),
            KubeletPhase::Conflict => out.push((EventType::Warning, "KubeletConflict", problem())),
            _ => {}
        }
    }
    out
}

/// Events for condition changes: a problem appearing (Warning, its reason), a problem going
/// away (Normal, the recovered reason; `KubeletRecovered` for kubelet).
fn condition_events(
    old: &[NodeCondition],
    new: &[NodeCondition],
) -> Vec<(EventType, String, String)> {
    let mut out = Vec::new();
    for c in new {
        let before = old.iter().find(|o| o.type_ == c.type_);
        let was_problem = before.is_some_and(NodeCondition::is_problem);
        if c.type_ == KUBELET_UNHEALTHY {
            // Exits, crash loops, etc. come from the kubelet state; only healthz and recovery here.
            if c.reason == "KubeletHealthzFailing"
                && before.is_none_or(|b| b.reason != "KubeletHealthzFailing")
            {
                out.push((EventType::Warning, c.reason.clone(), c.message.clone()));
            }
            if was_problem && c.status == "False" {
                out.push((
                    EventType::Normal,
                    "KubeletRecovered".into(),
                    c.message.clone(),
                ));
            }
            continue;
        }
        if c.is_problem() && (!was_problem || before.is_some_and(|b| b.reason != c.reason)) {
            out.push((EventType::Warning, c.reason.clone(), c.message.clone()));
        } else if was_problem && c.status == "False" {
            out.push((EventType::Normal, c.reason.clone(), c.message.clone()));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// API jobs

struct Job {
    client: ApiClient,
    node: String,
    /// GET the Node first, for the server's clock (and the conditions already on it).
    fetch_date: bool,
    patch: Option<serde_json::Value>,
    events: Vec<EventSend>,
}

struct Outcome {
    date_error: Option<ApiError>,
    /// The server answered, but without a `Date` header (a proxy that strips it).
    answered_without_date: bool,
    /// Type, status and lastTransitionTime of the conditions on the Node when the first
    /// exchange read it (what an earlier kaas-join wrote).
    node_conditions: Option<Vec<(String, String, String)>>,
    patch: Option<Result<(), ApiError>>,
    events: Vec<(String, u32, EventResult)>,
}

async fn run_job(job: Job) -> Outcome {
    let mut out = Outcome {
        date_error: None,
        answered_without_date: false,
        node_conditions: None,
        patch: None,
        events: Vec::new(),
    };
    if job.fetch_date {
        // Our own Node (the node authorizer lets a node read it) rather than /version: the same
        // Date header, and the conditions an earlier kaas-join wrote, whose lastTransitionTime
        // a restart of kaas-join must not move. 404 (not registered yet) teaches the Date too.
        let result = job
            .client
            .get_bytes(&format!("/api/v1/nodes/{}", job.node))
            .await;
        if let Ok(body) = &result {
            out.node_conditions = Some(transition_times_on_node(body));
        }
        if job.client.last_server_date().is_none() {
            match result {
                // Not reachable: nothing learned, retried with the backoff.
                Err(e) if e.status_code().is_none() => {
                    out.date_error = Some(e);
                    return out;
                }
                // kube-apiserver always sends Date; something in between stripped it. Go on
                // without the clock rather than asking again at once (a hot loop, FAULTS.md).
                _ => out.answered_without_date = true,
            }
        }
    }
    if let Some(body) = &job.patch {
        let path = format!("/api/v1/nodes/{}/status", job.node);
        let result = job
            .client
            .patch_json::<_, serde::de::IgnoredAny>(&path, STRATEGIC_MERGE, body)
            .await
            .map(|_| ());
        let down =
            matches!(&result, Err(e) if e.status_code().is_none_or(|c| c >= 500 || c == 429));
        out.patch = Some(result);
        if down {
            // The API server is not answering: the events would fail too.
            return out;
        }
    }
    for ev in job.events {
        let result = send_event(&job.client, &ev).await;
        out.events.push((ev.name, ev.count, result));
    }
    out
}

async fn send_event(client: &ApiClient, ev: &EventSend) -> EventResult {
    let collection = format!("/api/v1/namespaces/{EVENT_NAMESPACE}/events");
    let result = if ev.create {
        client
            .post_json::<_, serde::de::IgnoredAny>(&collection, &ev.body)
            .await
    } else {
        client
            .patch_json::<_, serde::de::IgnoredAny>(
                &format!("{collection}/{}", ev.name),
                STRATEGIC_MERGE,
                &ev.body,
            )
            .await
    };
    match result {
        Ok(_) => EventResult::Sent,
        // A create whose answer was lost earlier: it exists, aggregate into it next time.
        Err(e) if ev.create && e.status_code() == Some(409) => EventResult::Exists,
        Err(e) if !ev.create && e.status_code() == Some(404) => EventResult::Gone,
        Err(e) => EventResult::Failed(e),
    }
}

// ---------------------------------------------------------------------------------------------
// The reporter

/// How often a streak of failed status writes is logged again at warning level.
const WARN_AGAIN_AFTER: Duration = Duration::from_secs(300);

struct Reporter {
    cfg: HealthConfig,
    counter: Arc<RequestCounter>,
    client: Option<ApiClient>,
    client_cert_id: Option<String>,
    kubelet: KubeletState,
    local: Probes,
    skew: Option<f64>,
    /// The server's answers carry no `Date`: do not ask for it again.
    no_server_date: bool,
    desired: Vec<NodeCondition>,
    written_key: Option<Vec<(String, String, String, String)>>,
    last_write_ok: Option<Instant>,
    dirty_since: Option<Instant>,
    retry_at: Option<Instant>,
    retry: Backoff,
    events_retry_at: Option<Instant>,
    events_retry: Backoff,
    auth_warned: bool,
    /// The current streak of failed status writes: how many, and when one was last logged at
    /// warning level (a long outage gets one line per `WARN_AGAIN_AFTER`, not one per retry).
    failed_writes: u32,
    failure_warned_at: Option<Instant>,
    events: EventRecorder,
    status: ReportedStatus,
}

impl Reporter {
    fn probes(&self) -> Probes {
        Probes {
            clock_skew: self.skew,
            ..self.local.clone()
        }
    }

    /// Keeps the Node's lastTransitionTime for each of our conditions whose status is the same
    /// there (written by kaas-join before it restarted): a restart is not a transition.
    fn adopt_transition_times(&mut self, on_node: &[(String, String, String)]) {
        for c in &mut self.desired {
            if let Some((_, _, time)) = on_node
                .iter()
                .find(|(type_, status, _)| *type_ == c.type_ && *status == c.status)
            {
                c.last_transition_time = time.clone();
            }
        }
        self.status.conditions = self.desired.clone();
    }

    /// Recomputes the conditions; records events for what changed; marks a write as due.
    fn evaluate(&mut self, new_kubelet: Option<KubeletState>) {
        let now = SystemTime::now();
        let at = Instant::now();
        if let Some(k) = new_kubelet {
            for (t, reason, message) in kubelet_events(&self.kubelet, &k) {
                self.events.record(t, reason, &message, now, at);
            }
            self.kubelet = k;
        }
        let mut current = conditions(&self.kubelet, &self.probes(), now);
        carry_transition_times(&mut current, &self.desired);
        for (t, reason, message) in condition_events(&self.desired, &current) {
            self.events.record(t, &reason, &message, now, at);
        }
        self.desired = current;
        if Some(key_of(&self.desired)) != self.written_key && self.dirty_since.is_none() {
            self.dirty_since = Some(at);
        }
        self.status.conditions = self.desired.clone();
        self.status.clock_skew_seconds = self.skew;
    }

    /// (Re)builds the API client when the certificate file changed (or there is none yet).
    /// Returns whether a new client was made.
    fn refresh_client(&mut self, force_check: bool) -> bool {
        let probed = self.local.client_cert_id.clone();
        if !force_check && self.client.is_some() && probed == self.client_cert_id {
            return false;
        }
        let path = self.cfg.paths.host(KUBELET_CLIENT_CURRENT);
        let pem = match files::read_private_file(&path, "kubelet client certificate") {
            Ok(pem) => pem,
            Err(e) => {
                self.fail(format!("cannot load the node's client certificate: {e}"));
                return false;
            }
        };
        let Some(der) = first_certificate_der(&pem) else {
            self.fail(format!(
                "cannot load the node's client certificate: {} holds no PEM CERTIFICATE",
                path.display()
            ));
            return false;
        };
        let id = cert_id(&der);
        if self.client.is_some() && Some(&id) == self.client_cert_id.as_ref() {
            return false;
        }
        match ApiClient::with_client_certificate(
            &self.cfg.server,
            &self.cfg.ca_pem,
            &pem,
            self.counter.clone(),
        ) {
            Ok(client) => {
                if self.client.is_some() {
                    tracing::info!(path = %path.display(), "the node's client certificate changed (kubelet rotated it); using the new one");
                }
                self.client = Some(client);
                self.client_cert_id = Some(id);
                self.status.client_loads += 1;
                true
            }
            Err(e) => {
                self.fail(format!(
                    "cannot use the node's client certificate {}: {e}",
                    path.display()
                ));
                false
            }
        }
    }

    fn fail(&mut self, message: String) {
        if self.status.last_error.as_deref() != Some(message.as_str()) {
            tracing::warn!(error = %message, "node health reporting");
        }
        self.record_error(message);
    }

    /// Publishes the error (status file, `kaas-join status`) without logging it.
    fn record_error(&mut self, message: String) {
        self.status.last_error = Some(message);
        self.status.last_error_at = Some(k8s_time(SystemTime::now()));
    }

    /// When the next status patch is due.
    fn next_patch_at(&self) -> Instant {
        if let Some(t) = self.retry_at {
            return t;
        }
        if Some(key_of(&self.desired)) != self.written_key {
            return self.dirty_since.map_or_else(Instant::now, |t| t + COALESCE);
        }
        self.last_write_ok
            .map_or_else(Instant::now, |t| t + self.cfg.heartbeat)
    }

    fn next_events_at(&self) -> Option<Instant> {
        let due = self.events.next_due()?;
        Some(match self.events_retry_at {
            Some(r) => due.max(r),
            None => due,
        })
    }

    fn next_wake(&self) -> Instant {
        let patch = self.next_patch_at();
        match self.next_events_at() {
            Some(e) => patch.min(e),
            None => patch,
        }
    }

    /// Starts the API job that is due now, if any, with the conditions it writes.
    fn start_job(&mut self) -> Option<(JoinHandle<Outcome>, Option<Vec<NodeCondition>>)> {
        let now = Instant::now();
        let patch_due = self.next_patch_at() <= now;
        let events_due = self.next_events_at().is_some_and(|t| t <= now);
        if !patch_due && !events_due {
            return None;
        }
        self.refresh_client(false);
        let Some(client) = self.client.clone() else {
            // No usable certificate yet: try again later (a new file is noticed by the probe).
            let delay = self.retry.next_delay();
            self.retry_at = Some(now + delay);
            if events_due {
                self.events_retry_at = Some(now + delay);
            }
            return None;
        };
        // The first exchange only learns the server's clock, so the first write is complete.
        let fetch_date = client.last_server_date().is_none() && !self.no_server_date;
        let patch = (patch_due && !fetch_date).then(|| {
            let stamp = k8s_time(SystemTime::now());
            for c in &mut self.desired {
                c.last_heartbeat_time = stamp.clone();
            }
            self.desired.clone()
        });
        let events = if fetch_date || self.events_retry_at.is_some_and(|t| t > now) {
            Vec::new()
        } else {
            self.events.due(now)
        };
        let job = Job {
            client,
            node: self.cfg.node_name.clone(),
            fetch_date,
            patch: patch.as_deref().map(patch_body),
            events,
        };
        Some((tokio::spawn(run_job(job)), patch))
    }

    /// Takes in the answer of a job.
    fn finish(&mut self, outcome: Outcome, sent: Option<Vec<NodeCondition>>) {
        let now = Instant::now();
        if let Some(date) = self.client.as_ref().and_then(ApiClient::last_server_date) {
            if let Some(server) = parse_http_date(&date.header) {
                let skew = clock_skew(server, date.received_at);
                // Move the estimate only by more than its resolution: no write ping-pong.
                if self.skew.is_none_or(|old| (old - skew).abs() > 1.5) {
                    self.skew = Some(skew);
                }
            }
        }
        if outcome.answered_without_date && !self.no_server_date {
            self.no_server_date = true;
            tracing::warn!(
                "the API server's answers carry no Date header (a proxy strips it?): clock skew is not measured"
            );
        }
        if let Some(on_node) = &outcome.node_conditions {
            self.adopt_transition_times(on_node);
        }
        if let Some(e) = outcome.date_error {
            let delay = self.retry.next_delay();
            self.retry_at = Some(now + delay);
            self.events_retry_at = Some(now + delay);
            self.fail(format!("cannot reach the API server: {e}"));
        }
        if let Some(result) = outcome.patch {
            self.patched(result, sent.unwrap_or_default(), now);
        }
        let mut event_failure = None;
        for (name, count, result) in &outcome.events {
            self.events.sent(name, *count, result);
            match result {
                EventResult::Sent => self.status.events_sent += 1,
                EventResult::Failed(e) => event_failure = Some(e),
                EventResult::Exists | EventResult::Gone => {}
            }
        }
        if let Some(e) = event_failure {
            // The server's Retry-After (429, 503) is a lower bound, as for the status patch.
            let delay = e
                .retry_after()
                .unwrap_or_default()
                .max(self.events_retry.next_delay());
            self.events_retry_at = Some(now + delay);
            let message = format!(
                "cannot send node events (retrying in {} ms): {e}",
                delay.as_millis()
            );
            if self.status.last_event_error.is_none() {
                tracing::warn!(error = %message, "node health reporting");
            } else {
                tracing::debug!(error = %message, "node event not sent; retrying");
            }
            self.status.last_event_error = Some(message);
        } else if !outcome.events.is_empty() {
            self.events_retry.reset();
            self.events_retry_at = None;
            self.status.last_event_error = None;
        }
        // The clock estimate may have changed a condition.
        self.evaluate(None);
    }

    fn patched(&mut self, result: Result<(), ApiError>, sent: Vec<NodeCondition>, now: Instant) {
        match result {
            Ok(()) => {
                if self.written_key.as_ref() != Some(&key_of(&sent)) {
                    tracing::info!(
                        problems = ?sent.iter().filter(|c| c.is_problem()).map(|c| c.reason.as_str()).collect::<Vec<_>>(),
                        "node conditions written"
                    );
                }
                self.written_key = Some(key_of(&sent));
                self.last_write_ok = Some(now);
                self.retry_at = None;
                self.retry.reset();
                self.auth_warned = false;
                if self.failed_writes > 0 {
                    tracing::info!(
                        failed_attempts = self.failed_writes,
                        "node conditions written again"
                    );
                    self.failed_writes = 0;
                    self.failure_warned_at = None;
                }
                self.status.last_written = Some(ReportedConditions {
                    written_at: sent
                        .first()
                        .map(|c| c.last_heartbeat_time.clone())
                        .unwrap_or_default(),
                    conditions: sent,
                });
                self.status.last_error = None;
                self.status.last_error_at = None;
                self.status.node_registered = Some(true);
                self.dirty_since = (Some(key_of(&self.desired)) != self.written_key).then_some(now);
            }
            Err(e) if e.status_code() == Some(404) => {
                // kubelet has not registered the Node: say what is wrong through Events.
                self.status.node_registered = Some(false);
                let wall = SystemTime::now();
                self.events.record(
                    EventType::Warning,
                    "NodeNotRegistered",
                    &format!(
                        "Node {} does not exist yet (kubelet has not registered it); kaas-join keeps retrying its node conditions",
                        self.cfg.node_name
                    ),
                    wall,
                    now,
                );
                for c in self.desired.iter().filter(|c| c.is_problem()) {
                    self.events
                        .record(EventType::Warning, &c.reason, &c.message, wall, now);
                }
                let delay = self.retry.next_delay().min(self.cfg.heartbeat);
                self.retry_at = Some(now + delay);
                self.fail(format!(
                    "Node {} is not registered yet; its conditions are reported as Events meanwhile",
                    self.cfg.node_name
                ));
            }
            Err(e) if matches!(e.status_code(), Some(401 | 403)) => {
                let why = if e.status_code() == Some(401) {
                    "the node's client certificate is not accepted by the API server (expired, or from another cluster's CA)"
                } else {
                    "the node is not allowed to update its own Node status (is the Node authorizer / system:nodes binding in place?)"
                };
                let message = format!("{why}: {e}");
                if !self.auth_warned {
                    tracing::error!(error = %message, "cannot report node health");
                    self.auth_warned = true;
                }
                self.retry_at = Some(now + self.retry.max());
                self.fail(message);
                // kubelet may have just rotated the certificate: look at the file now.
                if self.refresh_client(true) {
                    self.retry_at = Some(now);
                }
            }
            Err(e) => {
                let delay = e
                    .retry_after()
                    .unwrap_or_default()
                    .max(self.retry.next_delay());
                self.retry_at = Some(now + delay);
                self.failed_writes += 1;
                let message = format!(
                    "cannot write node conditions (retrying in {} ms): {e}",
                    delay.as_millis()
                );
                // The first failure of a streak is a warning, then one per WARN_AGAIN_AFTER
                // with the count; each retry in between is at debug level only.
                if self
                    .failure_warned_at
                    .is_none_or(|t| now.duration_since(t) >= WARN_AGAIN_AFTER)
                {
                    tracing::warn!(
                        error = %message,
                        failed_attempts = self.failed_writes,
                        "node health reporting"
                    );
                    self.failure_warned_at = Some(now);
                } else {
                    tracing::debug!(
                        error = %message,
                        failed_attempts = self.failed_writes,
                        "node conditions not written; retrying"
                    );
                }
                self.record_error(message);
            }
        }
    }
}

/// Reports node health until `shutdown` turns true: evaluates the conditions on every kubelet
/// state change and probe, writes them on a change (coalesced) and on the heartbeat, posts and
/// aggregates events, and publishes what it did on `reported`. Never returns an error: failures
/// are retried and published.
pub async fn report(
    cfg: HealthConfig,
    mut kubelet: watch::Receiver<KubeletState>,
    reported: watch::Sender<ReportedStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    if *shutdown.borrow() {
        return;
    }
    let first = probe_all(&cfg).await;
    let (probe_tx, mut probe_rx) = watch::channel(first.clone());
    let probe_task = AbortOnDrop(tokio::spawn(probe_loop(cfg.clone(), probe_tx)));
    let mut r = Reporter {
        events: EventRecorder::new(
            &cfg.node_name,
            cfg.event_aggregation_window,
            cfg.event_min_interval,
        ),
        counter: cfg.requests.clone(),
        client: None,
        client_cert_id: None,
        kubelet: KubeletState::default(),
        local: first,
        skew: None,
        no_server_date: false,
        desired: Vec::new(),
        written_key: None,
        last_write_ok: None,
        dirty_since: None,
        retry_at: None,
        retry: Backoff::new(cfg.backoff_initial, cfg.backoff_max),
        events_retry_at: None,
        events_retry: Backoff::new(cfg.backoff_initial, cfg.backoff_max),
        auth_warned: false,
        failed_writes: 0,
        failure_warned_at: None,
        status: ReportedStatus::default(),
        cfg,
    };
    let initial = kubelet.borrow_and_update().clone();
    r.evaluate(Some(initial));
    r.refresh_client(true);
    reported.send_replace(r.status.clone());
    let mut kubelet_open = true;
    let mut in_flight: Option<(AbortOnDrop<Outcome>, Option<Vec<NodeCondition>>)> = None;
    loop {
        if in_flight.is_none() {
            if let Some((handle, sent)) = r.start_job() {
                in_flight = Some((AbortOnDrop(handle), sent));
            }
        }
        let wake = r.next_wake();
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            changed = kubelet.changed(), if kubelet_open => match changed {
                Ok(()) => {
                    let k = kubelet.borrow_and_update().clone();
                    r.evaluate(Some(k));
                }
                // The supervisor is gone: keep reporting its last state.
                Err(_) => kubelet_open = false,
            },
            changed = probe_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                r.local = probe_rx.borrow_and_update().clone();
                if r.refresh_client(false) && r.retry_at.is_some() {
                    // A new certificate: retry now rather than at the end of the backoff.
                    r.retry_at = Some(Instant::now());
                }
                r.evaluate(None);
            }
            done = async { (&mut in_flight.as_mut().expect("guarded").0 .0).await }, if in_flight.is_some() => {
                let sent = in_flight.take().and_then(|(_, sent)| sent);
                match done {
                    Ok(outcome) => r.finish(outcome, sent),
                    Err(e) => r.fail(format!("the API request task failed: {e}")),
                }
            }
            _ = tokio::time::sleep_until(wake), if in_flight.is_none() => {}
        }
        reported.send_if_modified(|s| {
            if *s == r.status {
                false
            } else {
                *s = r.status.clone();
                true
            }
        });
    }
    drop(probe_task);
}

/// Aborts the task when dropped (shutdown never waits for the network).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kubelet_process::Healthz;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const NOW: u64 = 1_800_000_000;

    fn healthy_probes() -> Probes {
        Probes {
            runtime_endpoint: "unix:///run/containerd/containerd.sock".into(),
            runtime: Some(Ok(())),
            client_cert: Some(Ok(t(NOW + 300 * 86400))),
            client_cert_id: Some("abc".into()),
            clock_skew: Some(0.3),
            disk: Some(Ok(DiskSpace {
                mount_point: "/".into(),
                available: 50 << 30,
                total: 100 << 30,
            })),
            memory: Some(Ok(Memory {
                available: 20 << 30,
                total: 24 << 30,
            })),
            limits: Limits::default(),
        }
    }

    fn running() -> KubeletState {
        KubeletState {
            phase: KubeletPhase::Running,
            pid: Some(42),
            started_at: Some(t(NOW - 60)),
            healthz: Healthz {
                ok: Some(true),
                consecutive_failures: 0,
                last_error: None,
            },
            ..KubeletState::default()
        }
    }

    fn exit(lines: Vec<String>) -> ExitInfo {
        ExitInfo {
            code: Some(1),
            signal: None,
            description: "exited with code 1".into(),
            at: t(NOW - 1),
            last_lines: lines,
        }
    }

    fn find<'a>(cs: &'a [NodeCondition], type_: &str) -> &'a NodeCondition {
        cs.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn healthy_node_is_all_false_and_ours_only() {
        let cs = conditions(&running(), &healthy_probes(), t(NOW));
        let types: Vec<&str> = cs.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, OUR_CONDITIONS);
        for c in &cs {
            assert_eq!(c.status, "False", "{c:?}");
            assert_eq!(c.last_heartbeat_time, "2027-01-15T08:00:00Z");
            assert_eq!(c.last_transition_time, c.last_heartbeat_time);
            assert!(c.reason.chars().next().unwrap().is_ascii_uppercase());
            assert!(!c.reason.contains(' '));
        }
    }

    #[test]
    fn never_a_kubelet_owned_condition() {
        let phases = [
            KubeletPhase::NotStarted,
            KubeletPhase::Starting,
            KubeletPhase::Running,
            KubeletPhase::BackingOff,
            KubeletPhase::CrashLooping,
            KubeletPhase::CannotStart,
            KubeletPhase::Conflict,
            KubeletPhase::Stopped,
        ];
        for phase in phases {
            for probes in [healthy_probes(), Probes::default()] {
                let k = KubeletState {
                    phase,
                    last_exit: Some(exit(vec!["x".into()])),
                    ..KubeletState::default()
                };
                for c in conditions(&k, &probes, t(NOW)) {
                    assert!(!KUBELET_OWNED.contains(&c.type_.as_str()), "{c:?}");
                    assert!(OUR_CONDITIONS.contains(&c.type_.as_str()), "{c:?}");
                }
            }
        }
        // Even if one slipped in, the patch leaves it out.
        let mut cs = conditions(&running(), &healthy_probes(), t(NOW));
        cs.push(NodeCondition::new("Ready", "False", "X", "y".into(), "z"));
        let body = patch_body(&cs);
        let written = body["status"]["conditions"].as_array().unwrap();
        assert_eq!(written.len(), OUR_CONDITIONS.len());
        assert!(written.iter().all(|c| c["type"] != "Ready"));
        assert_eq!(
            body.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["status"]
        );
        assert_eq!(written[0]["lastHeartbeatTime"], "2027-01-15T08:00:00Z");
    }

    #[test]
    fn kubelet_phases() {
        let probes = healthy_probes();
        let cond =
            |k: &KubeletState| find(&conditions(k, &probes, t(NOW)), KUBELET_UNHEALTHY).clone();
        let mut k = running();
        k.healthz = Healthz {
            ok: Some(false),
            consecutive_failures: 3,
            last_error: Some("connection refused".into()),
        };
        let c = cond(&k);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "KubeletHealthzFailing")
        );
        assert!(c.message.contains("connection refused"), "{}", c.message);
        // the failure count is not in the message: no write per healthz check
        k.healthz.consecutive_failures = 4;
        assert_eq!(cond(&k).message, c.message);

        let k = KubeletState {
            phase: KubeletPhase::BackingOff,
            restarts: 2,
            last_exit: Some(exit(vec![
                "E1127 failed to run Kubelet: misconfiguration".into()
            ])),
            ..KubeletState::default()
        };
        let c = cond(&k);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "KubeletNotRunning")
        );
        assert!(c.message.contains("exited with code 1"), "{}", c.message);
        assert!(c.message.contains("misconfiguration"), "{}", c.message);

        let k = KubeletState {
            phase: KubeletPhase::CrashLooping,
            restarts: 9,
            last_exit: Some(exit(vec![])),
            ..KubeletState::default()
        };
        assert_eq!(cond(&k).reason, "KubeletCrashLooping");
        let k = KubeletState {
            phase: KubeletPhase::Starting,
            last_exit: Some(exit(vec![])),
            ..KubeletState::default()
        };
        assert_eq!(
            (cond(&k).status, cond(&k).reason),
            ("True".into(), "KubeletRestarting".into())
        );
        let k = KubeletState {
            phase: KubeletPhase::Starting,
            ..KubeletState::default()
        };
        assert_eq!(
            (cond(&k).status, cond(&k).reason),
            ("False".into(), "KubeletStarting".into())
        );
        for (phase, reason) in [
            (KubeletPhase::CannotStart, "KubeletCannotStart"),
            (KubeletPhase::Conflict, "KubeletConflict"),
        ] {
            let k = KubeletState {
                phase,
                problem: Some("the fix is X".into()),
                ..KubeletState::default()
            };
            let c = cond(&k);
            assert_eq!(
                (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
                ("True", reason, "the fix is X")
            );
        }
        // Not supervised (run --no-kubelet): healthz alone.
        let mut k = KubeletState::default();
        assert_eq!(
            (cond(&k).status, cond(&k).reason),
            ("Unknown".into(), "KubeletNotStarted".into())
        );
        k.healthz.ok = Some(true);
        assert_eq!(
            (cond(&k).status, cond(&k).reason),
            ("False".into(), "KubeletHealthy".into())
        );
        k.healthz.ok = Some(false);
        assert_eq!(
            (cond(&k).status, cond(&k).reason),
            ("True".into(), "KubeletHealthzFailing".into())
        );
    }

    #[test]
    fn messages_are_bounded_and_keep_the_newest_lines() {
        let lines: Vec<String> = (0..200)
            .map(|i| format!("I1127 line number {i:03} of kubelet output, padded out"))
            .collect();
        let k = KubeletState {
            phase: KubeletPhase::BackingOff,
            last_exit: Some(exit(lines)),
            ..KubeletState::default()
        };
        let c = find(
            &conditions(&k, &healthy_probes(), t(NOW)),
            KUBELET_UNHEALTHY,
        )
        .clone();
        assert!(c.message.len() <= MAX_MESSAGE, "{}", c.message.len());
        assert!(
            c.message.len() > MAX_MESSAGE - 100,
            "uses the room: {}",
            c.message.len()
        );
        assert!(c.message.contains("line number 199"));
        assert!(!c.message.contains("line number 000"));
        assert!(c.message.contains("exited with code 1"));
        // one enormous line (multi-byte characters): its end is kept, cut on a char boundary
        let k = KubeletState {
            phase: KubeletPhase::BackingOff,
            last_exit: Some(exit(vec![format!("{}END", "é".repeat(3000))])),
            ..KubeletState::default()
        };
        let c = find(
            &conditions(&k, &healthy_probes(), t(NOW)),
            KUBELET_UNHEALTHY,
        )
        .clone();
        assert!(c.message.len() <= MAX_MESSAGE);
        assert!(c.message.ends_with("END"), "{}", c.message);
        let k = KubeletState {
            phase: KubeletPhase::CannotStart,
            problem: Some("x".repeat(5000)),
            ..KubeletState::default()
        };
        let c = find(
            &conditions(&k, &healthy_probes(), t(NOW)),
            KUBELET_UNHEALTHY,
        )
        .clone();
        assert_eq!(c.message.len(), MAX_MESSAGE);
        assert!(c.message.ends_with('…'));
    }

    #[test]
    fn probe_conditions() {
        let mut p = healthy_probes();
        p.runtime = Some(Err("No such file or directory (os error 2)".into()));
        p.client_cert = Some(Ok(t(NOW + 3 * 86400)));
        p.clock_skew = Some(-95.4);
        p.disk = Some(Ok(DiskSpace {
            mount_point: "/var".into(),
            available: 5 << 30,
            total: 100 << 30,
        }));
        p.memory = Some(Ok(Memory {
            available: 1 << 30,
            total: 24 << 30,
        }));
        let cs = conditions(&running(), &p, t(NOW));
        let r = |ty| {
            let c = find(&cs, ty);
            (c.status.clone(), c.reason.clone())
        };
        assert_eq!(
            r(CONTAINER_RUNTIME_UNREACHABLE),
            ("True".into(), "ContainerRuntimeUnreachable".into())
        );
        assert_eq!(
            r(CLIENT_CERTIFICATE_EXPIRING),
            ("True".into(), "ClientCertificateExpiringSoon".into())
        );
        assert!(find(&cs, CLIENT_CERTIFICATE_EXPIRING)
            .message
            .contains("in 3 days"));
        assert_eq!(r(CLOCK_SKEW), ("True".into(), "ClockSkewed".into()));
        assert!(
            find(&cs, CLOCK_SKEW).message.contains("95 s ahead of"),
            "{}",
            find(&cs, CLOCK_SKEW).message
        );
        assert_eq!(r(LOW_DISK_SPACE), ("True".into(), "LowDiskSpace".into()));
        assert!(find(&cs, LOW_DISK_SPACE).message.contains("only 5%"));
        assert_eq!(r(LOW_MEMORY), ("True".into(), "LowMemory".into()));
        p.client_cert = Some(Ok(t(NOW - 1)));
        p.clock_skew = Some(29.0);
        let cs = conditions(&running(), &p, t(NOW));
        assert_eq!(
            find(&cs, CLIENT_CERTIFICATE_EXPIRING).reason,
            "ClientCertificateExpired"
        );
        assert_eq!(find(&cs, CLOCK_SKEW).status, "False");
        let cs = conditions(&running(), &Probes::default(), t(NOW));
        for ty in OUR_CONDITIONS.iter().skip(1) {
            assert_eq!(find(&cs, ty).status, "Unknown", "{ty}");
        }
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let first = conditions(&running(), &healthy_probes(), t(NOW));
        let mut second = conditions(&running(), &healthy_probes(), t(NOW + 300));
        carry_transition_times(&mut second, &first);
        for c in &second {
            assert_eq!(c.last_transition_time, "2027-01-15T08:00:00Z");
            assert_eq!(c.last_heartbeat_time, "2027-01-15T08:05:00Z");
        }
        // kubelet fails: only its condition transitions; a changed message alone does not
        let k = KubeletState {
            phase: KubeletPhase::BackingOff,
            last_exit: Some(exit(vec![])),
            ..KubeletState::default()
        };
        let mut third = conditions(&k, &healthy_probes(), t(NOW + 400));
        carry_transition_times(&mut third, &second);
        assert_eq!(
            find(&third, KUBELET_UNHEALTHY).last_transition_time,
            "2027-01-15T08:06:40Z"
        );
        assert_eq!(
            find(&third, LOW_MEMORY).last_transition_time,
            "2027-01-15T08:00:00Z"
        );
        let k = KubeletState {
            phase: KubeletPhase::CrashLooping,
            last_exit: Some(exit(vec![])),
            ..KubeletState::default()
        };
        let mut fourth = conditions(&k, &healthy_probes(), t(NOW + 500));
        carry_transition_times(&mut fourth, &third);
        assert_eq!(
            find(&fourth, KUBELET_UNHEALTHY).last_transition_time,
            "2027-01-15T08:06:40Z"
        );
        assert_ne!(key_of(&fourth), key_of(&third));
    }

    #[test]
    fn http_dates_and_skew() {
        let d = parse_http_date("Fri, 27 Nov 2026 06:08:10 GMT").unwrap();
        assert_eq!(k8s_time(d), "2026-11-27T06:08:10Z");
        assert!(parse_http_date("yesterday").is_none());
        let skew = clock_skew(d, d + Duration::from_millis(300));
        assert!((skew - 0.2).abs() < 1e-6, "{skew}");
        assert!(clock_skew(d + Duration::from_secs(3600), d) > 3599.0);
    }

    #[test]
    fn events_aggregate_and_rate_limit() {
        let start = Instant::now();
        let mut rec = EventRecorder::new("n1", Duration::from_secs(600), Duration::from_secs(10));
        rec.record(
            EventType::Warning,
            "KubeletRestarted",
            "kubelet exited with code 1; kaas-join restarts it",
            t(NOW),
            start,
        );
        rec.record(
            EventType::Warning,
            "KubeletRestarted",
            "kubelet exited with code 1; kaas-join restarts it",
            t(NOW + 1),
            start + Duration::from_secs(1),
        );
        rec.record(
            EventType::Warning,
            "KubeletRestarted",
            "kubelet exited with code 2; kaas-join restarts it",
            t(NOW + 1),
            start + Duration::from_secs(1),
        );
        assert_eq!(rec.events.len(), 2);
        let due = rec.due(start + Duration::from_secs(1));
        assert_eq!(due.len(), 1, "one request per reason at a time");
        assert!(due[0].create);
        assert_eq!(due[0].body["count"], 2);
        assert_eq!(
            due[0].body["involvedObject"],
            json!({"kind": "Node", "name": "n1", "uid": "n1", "apiVersion": "v1"})
        );
        assert_eq!(
            due[0].body["source"],
            json!({"component": "kaas-join", "host": "n1"})
        );
        assert_eq!(due[0].body["firstTimestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(due[0].body["lastTimestamp"], "2027-01-15T08:00:01Z");
        assert!(due[0].name.starts_with("n1."));
        rec.sent(&due[0].name, 2, &EventResult::Sent);
        // the other message waits for the rate limit
        assert!(rec.due(start + Duration::from_secs(5)).is_empty());
        assert_eq!(rec.next_due(), Some(start + Duration::from_secs(11)));
        rec.record(
            EventType::Warning,
            "KubeletRestarted",
            "kubelet exited with code 1; kaas-join restarts it",
            t(NOW + 20),
            start + Duration::from_secs(20),
        );
        let due = rec.due(start + Duration::from_secs(20));
        assert_eq!(due.len(), 1);
        let patch = due.iter().find(|d| !d.create);
        let create = due.iter().find(|d| d.create);
        // whichever comes first, the other one follows after the interval
        if let Some(p) = patch {
            assert_eq!(
                p.body,
                json!({"count": 3, "lastTimestamp": "2027-01-15T08:00:20Z", "message": "kubelet exited with code 1; kaas-join restarts it"})
            );
        } else {
            assert_eq!(
                create.unwrap().body["message"],
                "kubelet exited with code 2; kaas-join restarts it"
            );
        }
        // outside the window: a new event
        let mut rec = EventRecorder::new("n1", Duration::from_secs(600), Duration::ZERO);
        rec.record(EventType::Normal, "R", "m", t(NOW), start);
        let first = rec.due(start)[0].name.clone();
        rec.sent(&first, 1, &EventResult::Sent);
        rec.record(
            EventType::Normal,
            "R",
            "m",
            t(NOW + 700),
            start + Duration::from_secs(700),
        );
        let again = rec.due(start + Duration::from_secs(700));
        assert!(again[0].create);
        assert_ne!(again[0].name, first);
        // bounded
        for i in 0..(MAX_EVENT_KEYS + 10) {
            rec.record(EventType::Normal, "R", &format!("m{i}"), t(NOW), start);
        }
        assert_eq!(rec.events.len(), MAX_EVENT_KEYS);
    }

    #[test]
    fn a_create_answered_409_resends_its_count() {
        // The create reached the server with count 1, its answer was lost, the event happened
        // again: the retry (count 2) answers 409, and the count goes out as a PATCH.
        let start = Instant::now();
        let mut rec = EventRecorder::new("n1", Duration::from_secs(600), Duration::ZERO);
        rec.record(EventType::Warning, "R", "m", t(NOW), start);
        rec.record(EventType::Warning, "R", "m", t(NOW + 1), start);
        let due = rec.due(start);
        assert!(due[0].create && due[0].count == 2);
        rec.sent(&due[0].name, 2, &EventResult::Exists);
        let due = rec.due(start);
        assert_eq!(due.len(), 1);
        assert!(!due[0].create);
        assert_eq!(due[0].body["count"], 2);
        rec.sent(&due[0].name, 2, &EventResult::Sent);
        assert!(rec.due(start).is_empty());
    }

    #[test]
    fn kubelet_transitions_make_events() {
        let old = running();
        let mut new = KubeletState {
            phase: KubeletPhase::BackingOff,
            restarts: 0,
            last_exit: Some(exit(vec![])),
            ..KubeletState::default()
        };
        let ev = kubelet_events(&old, &new);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].1, "KubeletRestarted");
        assert_eq!(ev[0].2, "kubelet exited with code 1; kaas-join restarts it");
        assert!(kubelet_events(&new, &new).is_empty());
        new.last_exit.as_mut().unwrap().description =
            "killed by SIGKILL (hung: healthz failed 3 times)".into();
        assert_eq!(kubelet_events(&old, &new)[0].1, "KubeletHung");
        let looping = KubeletState {
            phase: KubeletPhase::CrashLooping,
            ..new.clone()
        };
        assert_eq!(kubelet_events(&new, &looping)[0].1, "KubeletCrashLooping");
        let a = conditions(&new, &healthy_probes(), t(NOW));
        let b = conditions(&running(), &healthy_probes(), t(NOW));
        let ev = condition_events(&a, &b);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].0, ev[0].1.as_str()),
            (EventType::Normal, "KubeletRecovered")
        );
        let mut p = healthy_probes();
        p.runtime = Some(Err("refused".into()));
        let c = conditions(&running(), &p, t(NOW));
        let ev = condition_events(&b, &c);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].0, ev[0].1.as_str()),
            (EventType::Warning, "ContainerRuntimeUnreachable")
        );
        let ev = condition_events(&c, &b);
        assert_eq!(
            (ev[0].0, ev[0].1.as_str()),
            (EventType::Normal, "ContainerRuntimeReachable")
        );
        assert!(condition_events(&b, &b).is_empty());
    }
}
