//! `kaas-join run`'s Prometheus metrics: the registry ([`Metrics`]) and the HTTP server that
//! serves it (`server`, [`start`]), in the text format (`exposition`).
//!
//! Where it touches the rest: `run` makes one [`Metrics`] and passes it in. What happens is
//! counted where it happens: the supervisor (`node::supervisor`) counts kubelet's restarts,
//! failed healthz probes and crash loops, the health reporter (`node::health`) records its
//! successful status writes and the client certificate's notAfter, `run` its join attempts and
//! the join's duration, and the API client reports every answer through the [`RequestCounter`]
//! it was built with ([`Metrics::request_counter`]). Counters live here, not in the published
//! states: `run` starts supervising afresh after a lost identity, and its counts must not start
//! over with it. What is a state already published on a watch channel (kubelet's phase and
//! start, the node's conditions) is read from it at scrape time ([`Metrics::show_kubelet`],
//! [`Metrics::show_conditions`]), so it is never out of step.
//!
//! Every label has a fixed set of values (phases, condition types and statuses, API call names,
//! HTTP codes): no node, pod or object name is a label value. The families, in the order
//! scraped, are in [`Metrics::render`]; the README lists them.

mod exposition;
mod server;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::k8s::client::{ApiCall, ApiObserver, RequestCounter};
use crate::model::kubelet_process::{KubeletPhase, KubeletState};
use crate::model::node_conditions::{status, NodeCondition};
use exposition::{Exposition, Kind};

pub use exposition::CONTENT_TYPE;
pub use server::{start, MetricsServer};

/// A condition's possible statuses, each a sample of `kaas_join_node_condition`.
const STATUSES: [&str; 3] = [status::TRUE, status::FALSE, status::UNKNOWN];

/// The `code` of a request that got no answer (as client-go's `rest_client_requests_total`).
const NO_ANSWER: &str = "<error>";

/// The registry of `run`'s metrics (see the module doc). Shared as `Arc<Metrics>`.
#[derive(Default)]
pub struct Metrics {
    recorded: Mutex<Recorded>,
    views: Mutex<Views>,
}

/// What was counted or set where it happened.
#[derive(Default, Clone)]
struct Recorded {
    join_attempts: u64,
    join_duration: Option<Duration>,
    kubelet_restarts: u64,
    kubelet_crash_loops: u64,
    kubelet_healthz_failures: u64,
    last_status_write: Option<SystemTime>,
    client_certificate_expiry: Option<SystemTime>,
    api_requests: BTreeMap<(ApiCall, Option<u16>), u64>,
}

/// The node's conditions as (type, status), read at scrape time.
type ConditionsView = Box<dyn Fn() -> Vec<(String, String)> + Send + Sync>;

/// What is read from where it is published, at scrape time.
#[derive(Default)]
struct Views {
    kubelet: Option<watch::Receiver<KubeletState>>,
    conditions: Option<ConditionsView>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A lock that a panicked holder did not spoil: the values stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// kubelet's phase and start are read from the supervisor's channel (the latest one given).
    pub fn show_kubelet(&self, kubelet: watch::Receiver<KubeletState>) {
        lock(&self.views).kubelet = Some(kubelet);
    }

    /// The node's conditions are `conditions(&*published.borrow())`, read at each scrape.
    pub fn show_conditions<T: Send + Sync + 'static>(
        &self,
        published: watch::Receiver<T>,
        conditions: fn(&T) -> &[NodeCondition],
    ) {
        lock(&self.views).conditions = Some(Box::new(move || {
            conditions(&published.borrow())
                .iter()
                .map(|c| (c.type_.clone(), c.status.clone()))
                .collect()
        }));
    }

    /// `run` starts a join attempt (the first join, or again after a lost identity).
    pub fn join_attempted(&self) {
        lock(&self.recorded).join_attempts += 1;
    }

    /// A join of `run` (the first, or again after a lost identity) succeeded after `took`.
    pub fn joined(&self, took: Duration) {
        lock(&self.recorded).join_duration = Some(took);
    }

    /// The supervisor restarts kubelet (after an exit or a liveness kill).
    pub fn kubelet_restarted(&self) {
        lock(&self.recorded).kubelet_restarts += 1;
    }

    /// The supervisor found kubelet crash-looping (after it was not).
    pub fn kubelet_crash_loop_began(&self) {
        lock(&self.recorded).kubelet_crash_loops += 1;
    }

    /// A healthz probe of kubelet failed.
    pub fn kubelet_healthz_failed(&self) {
        lock(&self.recorded).kubelet_healthz_failures += 1;
    }

    /// The API server accepted the node's status conditions at `at`.
    pub fn status_written(&self, at: SystemTime) {
        lock(&self.recorded).last_status_write = Some(at);
    }

    /// The client certificate's notAfter as last read (`None`: unreadable).
    pub fn client_certificate_expires(&self, not_after: Option<SystemTime>) {
        lock(&self.recorded).client_certificate_expiry = not_after;
    }

    /// A request counter whose clients report every answer here.
    pub fn request_counter(self: &Arc<Self>) -> Arc<RequestCounter> {
        Arc::new(RequestCounter::observed_by(self.clone()))
    }

    /// One scrape, in the text exposition format.
    pub fn render(&self) -> String {
        let recorded = lock(&self.recorded).clone();
        let (kubelet, conditions) = {
            let views = lock(&self.views);
            let kubelet = views.kubelet.as_ref().map(|k| {
                let k = k.borrow();
                (k.phase, k.pid.and(k.started_at), version_skew(&k))
            });
            (kubelet, views.conditions.as_ref().map(|c| c()))
        };
        let (phase, started, skew) = kubelet.unwrap_or((KubeletPhase::NotStarted, None, None));
        let mut e = Exposition::default();
        e.family(
            "kaas_join_build_info",
            Kind::Gauge,
            "Always 1; the version of kaas-join as a label.",
        );
        e.sample(
            "kaas_join_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        join_families(&mut e, &recorded);
        kubelet_families(&mut e, &recorded, phase, started);
        e.single(
            "kaas_join_kubelet_version_skew_minors",
            Kind::Gauge,
            "kube-apiserver's minor version minus kubelet's (negative: kubelet is newer; the policy allows 0 to 3), absent while either is unknown.",
            skew,
        );
        node_families(&mut e, &recorded, conditions.unwrap_or_default());
        api_families(&mut e, &recorded);
        e.finish()
    }
}

impl ApiObserver for Metrics {
    fn answered(&self, call: ApiCall, code: Option<u16>) {
        *lock(&self.recorded)
            .api_requests
            .entry((call, code))
            .or_default() += 1;
    }
}

fn join_families(e: &mut Exposition, r: &Recorded) {
    e.single(
        "kaas_join_join_attempts_total",
        Kind::Counter,
        "Join attempts this run made (each with a usable configuration).",
        Some(r.join_attempts as f64),
    );
    e.single(
        "kaas_join_join_duration_seconds",
        Kind::Gauge,
        "How long this run's last successful join took (absent when the node had joined before).",
        r.join_duration.map(|took| took.as_secs_f64()),
    );
}

fn kubelet_families(
    e: &mut Exposition,
    r: &Recorded,
    phase: KubeletPhase,
    started: Option<SystemTime>,
) {
    let name = "kaas_join_kubelet_state";
    e.family(
        name,
        Kind::Gauge,
        "1 for kubelet's current phase in the supervisor, 0 for the others.",
    );
    for p in KubeletPhase::ALL {
        let value = if p == phase { 1.0 } else { 0.0 };
        e.sample(name, &[("state", phase_name(p))], value);
    }
    e.single(
        "kaas_join_kubelet_start_time_seconds",
        Kind::Gauge,
        "When the running kubelet process started, in seconds since the epoch (absent while none runs).",
        started.map(unix_seconds),
    );
    e.single(
        "kaas_join_kubelet_restarts_total",
        Kind::Counter,
        "kubelet restarts by the supervisor, after it exited or was killed as hung.",
        Some(r.kubelet_restarts as f64),
    );
    e.single(
        "kaas_join_kubelet_crash_loops_total",
        Kind::Counter,
        "Times kubelet began crash-looping (too many restarts within the window).",
        Some(r.kubelet_crash_loops as f64),
    );
    e.single(
        "kaas_join_kubelet_healthz_failures_total",
        Kind::Counter,
        "Failed probes of kubelet's healthz.",
        Some(r.kubelet_healthz_failures as f64),
    );
}

fn node_families(e: &mut Exposition, r: &Recorded, conditions: Vec<(String, String)>) {
    let name = "kaas_join_node_condition";
    e.family(
        name,
        Kind::Gauge,
        "1 for the status each of kaas-join's node conditions has now, 0 for the others (True: the problem is present).",
    );
    for (type_, current) in &conditions {
        for s in STATUSES {
            let value = if current == s { 1.0 } else { 0.0 };
            e.sample(name, &[("type", type_), ("status", s)], value);
        }
    }
    e.single(
        "kaas_join_node_status_last_write_timestamp_seconds",
        Kind::Gauge,
        "When the API server last accepted the node's conditions, in seconds since the epoch.",
        r.last_status_write.map(unix_seconds),
    );
    e.single(
        "kaas_join_client_certificate_expiration_timestamp_seconds",
        Kind::Gauge,
        "notAfter of the node's client certificate (kubelet-client-current.pem), in seconds since the epoch.",
        r.client_certificate_expiry.map(unix_seconds),
    );
}

fn api_families(e: &mut Exposition, r: &Recorded) {
    let name = "kaas_join_api_requests_total";
    e.family(
        name,
        Kind::Counter,
        "API server requests by call and HTTP status code (\"<error>\": no answer).",
    );
    for ((call, code), n) in &r.api_requests {
        let code = code.map_or(NO_ANSWER.to_string(), |c| c.to_string());
        e.sample(
            name,
            &[("call", &call.to_string()), ("code", &code)],
            *n as f64,
        );
    }
}

/// kube-apiserver's minor version minus kubelet's, from `run`'s last version check (a major
/// version apart counts 100 minors a major, so it is far outside the policy either way).
fn version_skew(k: &KubeletState) -> Option<f64> {
    let (kubelet, server) = k.version.as_ref()?.known()?;
    let minors = |major: u64, minor: u64| major as f64 * 100.0 + minor as f64;
    Some(minors(server.major, server.minor) - minors(kubelet.major, kubelet.minor))
}

/// The phase as the run-status file spells it.
fn phase_name(phase: KubeletPhase) -> &'static str {
    match phase {
        KubeletPhase::NotStarted => "not-started",
        KubeletPhase::Starting => "starting",
        KubeletPhase::Running => "running",
        KubeletPhase::BackingOff => "backing-off",
        KubeletPhase::CrashLooping => "crash-looping",
        KubeletPhase::CannotStart => "cannot-start",
        KubeletPhase::Conflict => "conflict",
        KubeletPhase::Stopped => "stopped",
    }
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
