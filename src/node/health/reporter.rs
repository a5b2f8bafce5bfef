//! The reporter's state: what it knows (kubelet state, probes, the server's clock), the
//! conditions it wants on the Node and the ones the API server last accepted, when the next
//! write and the next event requests are due (coalescing, heartbeat, backoff, Retry-After), and
//! how each answer changes that. [`super::run_reporter`] drives it; the API calls run in a
//! spawned [`exchange`](super::exchange) job, so nothing here waits on the network, and the
//! certificate file is read in `spawn_blocking`. The wall clock is `cfg.host.now()`.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinError;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::host::paths::KUBELET_CLIENT_CURRENT;
use crate::k8s::client::{ApiClient, ApiError, RequestCounter};
use crate::model::backoff::Backoff;
use crate::model::identity::Unauthorized;
use crate::model::kubelet_process::KubeletState;
use crate::model::node_conditions::{
    adopt_transition_times, carry_transition_times, conditions, patch_body, write_key,
    NodeCondition, Probes, RecordedTransition, WriteKey,
};
use crate::model::time::{clock_skew, k8s_time, parse_http_date};

use super::events::{
    condition_events, kubelet_events, EventRecorder, EventResult, EventType, NODE_NOT_REGISTERED,
};
use super::exchange::{run_job, Job, Outcome};
use super::probes::read_client_certificate;
use super::{AbortOnDrop, HealthConfig, ReportedConditions, ReportedStatus, COALESCE};

/// How often a streak of failed status writes is logged again at warning level.
const WARN_AGAIN_AFTER: Duration = Duration::from_secs(300);

/// A job in flight: its task, the conditions its status patch carries (if it has one), and the
/// span its answer is taken in.
pub(super) struct InFlight {
    pub(super) task: AbortOnDrop<Outcome>,
    pub(super) sent: Option<Vec<NodeCondition>>,
    pub(super) span: tracing::Span,
}

/// What the status patch's answer asks of the caller.
#[derive(Debug, PartialEq, Eq)]
enum AfterPatch {
    Nothing,
    /// 401/403: kubelet may have just rotated the certificate; look at the file now.
    RecheckCertificate,
}

pub(super) struct Reporter {
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
    written_key: Option<WriteKey>,
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
    /// A reporter that has evaluated `kubelet` and `probes` once and tried to load the client
    /// certificate.
    pub(super) async fn start(cfg: HealthConfig, probes: Probes, kubelet: KubeletState) -> Self {
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
            local: probes,
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
        r.evaluate(Some(kubelet));
        r.refresh_client(true).await;
        r
    }

    /// What to publish now.
    pub(super) fn status(&self) -> &ReportedStatus {
        &self.status
    }

    pub(super) fn kubelet_changed(&mut self, kubelet: KubeletState) {
        self.evaluate(Some(kubelet));
    }

    pub(super) async fn probes_changed(&mut self, probes: Probes) {
        self.local = probes;
        if self.refresh_client(false).await && self.retry_at.is_some() {
            // A new certificate: retry now rather than at the end of the backoff.
            self.retry_at = Some(Instant::now());
        }
        self.evaluate(None);
    }

    fn probes(&self) -> Probes {
        Probes {
            clock_skew: self.skew,
            ..self.local.clone()
        }
    }

    /// Keeps the Node's lastTransitionTime for each of our conditions whose status is the same
    /// there (written by kaas-join before it restarted): a restart is not a transition.
    fn adopt_transition_times(&mut self, on_node: &[RecordedTransition]) {
        adopt_transition_times(&mut self.desired, on_node);
        self.status.conditions = self.desired.clone();
    }

    /// Recomputes the conditions; records events for what changed; marks a write as due.
    fn evaluate(&mut self, new_kubelet: Option<KubeletState>) {
        let now = self.cfg.host.now();
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
        if !self.desired_is_written() && self.dirty_since.is_none() {
            self.dirty_since = Some(at);
        }
        self.status.conditions = self.desired.clone();
        self.status.clock_skew_seconds = self.skew;
        self.status.identity.not_after = self.local.client_cert.clone().and_then(Result::ok);
    }

    fn desired_is_written(&self) -> bool {
        self.written_key.as_ref() == Some(&write_key(&self.desired))
    }

    /// (Re)builds the API client when the certificate file changed (or there is none yet).
    /// Returns whether a new client was made.
    async fn refresh_client(&mut self, force_check: bool) -> bool {
        if !force_check && self.client.is_some() && self.local.client_cert_id == self.client_cert_id
        {
            return false;
        }
        let path = self.cfg.paths.host(KUBELET_CLIENT_CURRENT);
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || read_client_certificate(&path)).await
        };
        let cert = match read {
            Ok(Ok(cert)) => cert,
            Ok(Err(message)) => {
                self.fail(message);
                return false;
            }
            Err(e) => {
                self.fail(format!("cannot load the node's client certificate: {e}"));
                return false;
            }
        };
        if self.client.is_some() && Some(&cert.id) == self.client_cert_id.as_ref() {
            return false;
        }
        match ApiClient::with_client_certificate(
            &self.cfg.server,
            &self.cfg.ca_pem,
            &cert.pem,
            self.counter.clone(),
        ) {
            Ok(client) => {
                if self.client.is_some() {
                    tracing::info!(path = %path.display(), "the node's client certificate changed (kubelet rotated it); using the new one");
                }
                self.client = Some(client);
                self.client_cert_id = Some(cert.id);
                self.status.client_loads += 1;
                // A new certificate: the old one's 401 answers say nothing about it.
                self.status.identity.unauthorized = None;
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

    pub(super) fn fail(&mut self, message: String) {
        if self.status.last_error.as_deref() != Some(message.as_str()) {
            tracing::warn!(error = %message, "node health reporting");
        }
        self.record_error(message);
    }

    /// Publishes the error (status file, `kaas-join status`) without logging it.
    fn record_error(&mut self, message: String) {
        self.status.last_error = Some(message);
        self.status.last_error_at = Some(k8s_time(self.cfg.host.now()));
    }

    /// When the next status patch is due.
    fn next_patch_at(&self) -> Instant {
        if let Some(t) = self.retry_at {
            return t;
        }
        if !self.desired_is_written() {
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

    /// When the loop must look again, with nothing else happening.
    pub(super) fn next_wake(&self) -> Instant {
        let patch = self.next_patch_at();
        match self.next_events_at() {
            Some(e) => patch.min(e),
            None => patch,
        }
    }

    /// Starts the API job that is due now, if any (one span per write).
    pub(super) async fn start_job(&mut self) -> Option<InFlight> {
        let now = Instant::now();
        let patch_due = self.next_patch_at() <= now;
        let events_due = self.next_events_at().is_some_and(|t| t <= now);
        if !patch_due && !events_due {
            return None;
        }
        self.refresh_client(false).await;
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
        let read_node = client.last_server_date().is_none() && !self.no_server_date;
        let sent = (patch_due && !read_node).then(|| self.stamp_heartbeat());
        let events = if read_node || self.events_retry_at.is_some_and(|t| t > now) {
            Vec::new()
        } else {
            self.events.due(now)
        };
        let span = tracing::info_span!(
            "write",
            read_node,
            status = sent.is_some(),
            events = events.len(),
            attempt = self.failed_writes + 1,
        );
        let job = Job {
            client,
            node: self.cfg.node_name.clone(),
            read_node,
            patch: sent.as_deref().map(patch_body),
            events,
        };
        let task = AbortOnDrop(tokio::spawn(run_job(job).instrument(span.clone())));
        Some(InFlight { task, sent, span })
    }

    /// Stamps every desired condition's `lastHeartbeatTime` with now: the conditions to send.
    fn stamp_heartbeat(&mut self) -> Vec<NodeCondition> {
        let stamp = k8s_time(self.cfg.host.now());
        for c in &mut self.desired {
            c.last_heartbeat_time = stamp.clone();
        }
        self.desired.clone()
    }

    /// Takes in a finished job (the caller enters its span).
    pub(super) async fn job_done(
        &mut self,
        done: Result<Outcome, JoinError>,
        sent: Option<Vec<NodeCondition>>,
    ) {
        match done {
            Ok(outcome) => self.finish(outcome, sent).await,
            Err(e) => self.fail(format!("the API request task failed: {e}")),
        }
    }

    /// Takes in the answer of a job.
    async fn finish(&mut self, outcome: Outcome, sent: Option<Vec<NodeCondition>>) {
        let now = Instant::now();
        self.learn_server_clock();
        if outcome.answered_without_date && !self.no_server_date {
            self.no_server_date = true;
            tracing::warn!(
                "the API server's answers carry no Date header (a proxy strips it?): clock skew is not measured"
            );
        }
        if let Some(on_node) = &outcome.on_node {
            self.adopt_transition_times(on_node);
        }
        if let Some(e) = outcome.date_error {
            let delay = self.retry.next_delay();
            self.retry_at = Some(now + delay);
            self.events_retry_at = Some(now + delay);
            self.fail(format!("cannot reach the API server: {e}"));
        }
        if let Some(result) = outcome.patch {
            let after = self.patched(result, sent.unwrap_or_default(), now);
            if after == AfterPatch::RecheckCertificate && self.refresh_client(true).await {
                self.retry_at = Some(now);
            }
        }
        self.events_answered(&outcome.events, now);
        // The clock estimate may have changed a condition.
        self.evaluate(None);
    }

    /// The skew from the last answer's `Date`, moved only by more than its resolution (no
    /// write ping-pong).
    fn learn_server_clock(&mut self) {
        let Some(date) = self.client.as_ref().and_then(ApiClient::last_server_date) else {
            return;
        };
        if let Some(server) = parse_http_date(&date.header) {
            let skew = clock_skew(server, date.received_at);
            if self.skew.is_none_or(|old| (old - skew).abs() > 1.5) {
                self.skew = Some(skew);
            }
        }
    }

    /// Takes in the answers to the event requests: the recorder's counts, the published error
    /// and the events' backoff.
    fn events_answered(&mut self, answers: &[(String, u32, EventResult)], now: Instant) {
        let mut event_failure = None;
        for (name, count, result) in answers {
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
        } else if !answers.is_empty() {
            self.events_retry.reset();
            self.events_retry_at = None;
            self.status.last_event_error = None;
        }
    }

    /// Takes in the status patch's answer.
    fn patched(
        &mut self,
        result: Result<(), ApiError>,
        sent: Vec<NodeCondition>,
        now: Instant,
    ) -> AfterPatch {
        match result {
            Ok(()) => self.written(sent, now),
            Err(e) if e.status_code() == Some(404) => self.node_not_registered(now),
            Err(e) if matches!(e.status_code(), Some(401 | 403)) => {
                self.refused(&e, now);
                return AfterPatch::RecheckCertificate;
            }
            Err(e) => self.write_failed(&e, now),
        }
        AfterPatch::Nothing
    }

    /// The API server accepted `sent`.
    fn written(&mut self, sent: Vec<NodeCondition>, now: Instant) {
        let key = write_key(&sent);
        if self.written_key.as_ref() != Some(&key) {
            tracing::info!(
                problems = ?sent.iter().filter(|c| c.is_problem()).map(|c| c.reason.as_str()).collect::<Vec<_>>(),
                "node conditions written"
            );
        }
        self.written_key = Some(key);
        self.last_write_ok = Some(now);
        self.cfg.metrics.status_written(self.cfg.host.now());
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
        self.status.identity.unauthorized = None;
        self.dirty_since = (!self.desired_is_written()).then_some(now);
    }

    /// 404: kubelet has not registered the Node. Say what is wrong through Events meanwhile.
    fn node_not_registered(&mut self, now: Instant) {
        self.status.node_registered = Some(false);
        let wall = self.cfg.host.now();
        self.events.record(
            EventType::Warning,
            NODE_NOT_REGISTERED,
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

    /// 401/403: the certificate is not accepted, or not allowed. Logged loudly once per streak,
    /// retried at the backoff's cap. A 401 also lengthens the published streak that `run`
    /// judges the node's identity by ([`crate::model::identity`]).
    fn refused(&mut self, e: &ApiError, now: Instant) {
        if e.status_code() == Some(401) {
            let wall = self.cfg.host.now();
            let streak = self
                .status
                .identity
                .unauthorized
                .get_or_insert(Unauthorized {
                    count: 0,
                    since: wall,
                });
            streak.count += 1;
        }
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
    }

    /// Any other failure: backed off (never sooner than Retry-After), logged once per streak
    /// and then once per [`WARN_AGAIN_AFTER`].
    fn write_failed(&mut self, e: &ApiError, now: Instant) {
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
        // The first failure of a streak is a warning, then one per WARN_AGAIN_AFTER with the
        // count; each retry in between is at debug level only.
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
