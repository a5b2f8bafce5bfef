//! Node health reporting: kaas-join reports, as the node itself, what it knows about the node's
//! health, in the Node's status conditions and in Events.
//!
//! Where it touches the rest: [`run_reporter`] reads the supervisor's [`KubeletState`] from a
//! `tokio::sync::watch` channel and publishes a [`ReportedStatus`] for `run` (the status file
//! behind `kaas-join status`); it talks to the API server with
//! [`ApiClient`](crate::k8s::client::ApiClient) as `system:node:<name>`, using kubelet's own
//! client certificate (`kubelet-client-current.pem`), which it re-reads whenever kubelet rotates
//! it. The machine (wall clock, disk, memory) is [`HealthConfig::host`].
//!
//! The parts: the conditions themselves are a pure function in
//! [`crate::model::node_conditions`] (re-exported here); `probes` measures the node,
//! `events` aggregates and rate-limits Events, `reporter` holds the state (what is due,
//! backoff, what each answer means), `exchange` is one round of API calls, and
//! [`run_reporter`] is the loop that ties them together.
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
//! | `KubeletVersionSkew` | `KubeletVersionTooNew`, `KubeletVersionTooOld` | `KubeletVersionSkewWithinPolicy`, `KubeletVersionSkewAtLimit` (a warning: the next control-plane upgrade breaks it) | `KubeletVersionNotChecked`, `KubeletVersionUnknown`, `ServerVersionUnknown` | `run`'s version check (`kubelet --version`, `GET /version`), published with the kubelet state |
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
//! 60 s cap, or at once when the certificate file changes. The streak of 401 answers (how many,
//! since when) and the certificate's notAfter are published (`ReportedStatus::identity`): `run`
//! judges by them whether the node's identity is lost ([`crate::model::identity`]).
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
//! `KubeletVersionSkew` makes an event whenever its verdict changes once known: Warning with
//! its reason when it turns True or reaches `KubeletVersionSkewAtLimit`, Normal
//! `KubeletVersionSkewWithinPolicy` when it is back within the policy. A kubelet upgrade by
//! `run` makes `KubeletUpgradeStarted`, `KubeletUpgradeRollingBack`, `KubeletUpgraded`,
//! `KubeletUpgradeRolledBack`, `KubeletUpgradeRefused`, `KubeletUpgradeFailed` (from the upgrade
//! state published with the kubelet state).
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
//! in a spawned job, so the loop that turns state into conditions never waits on the network;
//! what blocks (file reads, `statvfs`) runs in `spawn_blocking`.
//!
//! # Tracing
//!
//! The loop runs in a `health_reporter{node, server}` span; each job, and the taking in of its
//! answer, in a `write{read_node, status, events, attempt}` span inside it.

mod events;
mod exchange;
mod probes;
mod reporter;
mod run_events;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::host::paths::Paths;
use crate::host::{Host, LinuxHost};
use crate::k8s::client::RequestCounter;
use crate::model::identity::IdentitySeen;
use crate::model::kubelet_process::KubeletState;
use crate::model::node_conditions::Limits;
use crate::node::metrics::Metrics;

pub use crate::model::node_conditions::{
    carry_transition_times, conditions, patch_body, NodeCondition, Probes,
    CLIENT_CERTIFICATE_EXPIRING, CLOCK_SKEW, CONTAINER_RUNTIME_UNREACHABLE, KUBELET_OWNED,
    KUBELET_UNHEALTHY, KUBELET_VERSION_SKEW, LOW_DISK_SPACE, LOW_MEMORY, MAX_MESSAGE,
    OUR_CONDITIONS,
};
pub use crate::model::time::{clock_skew, k8s_time, parse_http_date};
pub use events::MAX_EVENT_KEYS;

use reporter::{InFlight, Reporter};

/// How long a burst of changes is gathered before it is written.
pub const COALESCE: Duration = Duration::from_millis(200);
/// First wait after a failed write.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Longest wait between two tries (also the retry interval after 401/403).
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What [`run_reporter`] needs; [`HealthConfig::new`] fills in the documented defaults.
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
    /// Where the last successful status write and the certificate's notAfter are recorded
    /// (`run`'s metrics).
    pub metrics: Arc<Metrics>,
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
            metrics: Arc::default(),
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
    /// The client certificate's notAfter and the current streak of 401 answers: what `run`
    /// judges the node's identity by ([`crate::model::identity`]).
    #[serde(default)]
    pub identity: IdentitySeen,
}

/// Reports node health until `shutdown` turns true: evaluates the conditions on every kubelet
/// state change and probe, writes them on a change (coalesced) and on the heartbeat, posts and
/// aggregates events, and publishes what it did on `reported`. Never returns an error: failures
/// are retried and published.
#[tracing::instrument(
    name = "health_reporter",
    skip_all,
    fields(node = %cfg.node_name, server = %cfg.server)
)]
pub async fn run_reporter(
    cfg: HealthConfig,
    mut kubelet: watch::Receiver<KubeletState>,
    reported: watch::Sender<ReportedStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    if *shutdown.borrow() {
        return;
    }
    let first = probes::probe_all(&cfg).await;
    let (probe_tx, mut probe_rx) = watch::channel(first.clone());
    let _probe_task = AbortOnDrop(tokio::spawn(
        probes::probe_loop(cfg.clone(), probe_tx).in_current_span(),
    ));
    let initial = kubelet.borrow_and_update().clone();
    let mut r = Reporter::start(cfg, first, initial).await;
    reported.send_replace(r.status().clone());
    let mut kubelet_open = true;
    let mut in_flight: Option<InFlight> = None;
    loop {
        if in_flight.is_none() {
            in_flight = r.start_job().await;
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
                    r.kubelet_changed(k);
                }
                // The supervisor is gone: keep reporting its last state.
                Err(_) => kubelet_open = false,
            },
            changed = probe_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let probes = probe_rx.borrow_and_update().clone();
                r.probes_changed(probes).await;
            }
            done = async { (&mut in_flight.as_mut().expect("guarded").task.0).await }, if in_flight.is_some() => {
                let job = in_flight.take().expect("guarded");
                r.job_done(done, job.sent).instrument(job.span).await;
            }
            _ = tokio::time::sleep_until(wake), if in_flight.is_none() => {}
        }
        reported.send_if_modified(|s| {
            if *s == *r.status() {
                false
            } else {
                *s = r.status().clone();
                true
            }
        });
    }
}

/// Aborts the task when dropped (shutdown never waits for the network).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
