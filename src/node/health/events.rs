//! Node Events: what kaas-join says about the node through `POST /api/v1/namespaces/default/events`
//! (see `node::health`'s module doc for the reasons), as kubelet's event correlator does it,
//! simplified: the same reason and message within the aggregation window is one event whose
//! `count` grows (a PATCH), and a per-reason rate limit defers requests (and counts what
//! happened meanwhile) instead of dropping them. [`kubelet_events`] and [`condition_events`]
//! say which events a change of the kubelet state or of the conditions makes; the reporter
//! records them here and sends what [`EventRecorder::due`] returns ([`super::exchange`]).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::time::Instant;

use crate::k8s::client::ApiError;
use crate::model::kubelet_process::{KubeletPhase, KubeletState};
use crate::model::node_conditions::{
    bound_message, reason, status, NodeCondition, KUBELET_UNHEALTHY, KUBELET_VERSION_SKEW,
};

use super::run_events;
use crate::model::time::k8s_time;

/// Distinct events tracked for aggregation.
pub const MAX_EVENT_KEYS: usize = 64;
/// Where the events go.
pub(super) const EVENT_NAMESPACE: &str = "default";
/// The events' `source.component` and `reportingComponent`.
const COMPONENT: &str = "kaas-join";

/// kubelet exited (or was killed) and is restarted.
pub const KUBELET_RESTARTED: &str = "KubeletRestarted";
/// kubelet was killed as hung (its healthz kept failing) and is restarted.
pub const KUBELET_HUNG: &str = "KubeletHung";
/// `KubeletUnhealthy` turned False again.
pub const KUBELET_RECOVERED: &str = "KubeletRecovered";
/// The status patch answered 404: kubelet has not registered the Node.
pub const NODE_NOT_REGISTERED: &str = "NodeNotRegistered";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub(super) fn as_str(self) -> &'static str {
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
pub(super) struct EventSend {
    pub(super) name: String,
    pub(super) create: bool,
    pub(super) body: serde_json::Value,
    pub(super) count: u32,
}

/// kubelet's event correlator, simplified: aggregation by reason + message, a per-reason rate
/// limit that defers (and counts) instead of dropping.
#[derive(Debug)]
pub(super) struct EventRecorder {
    node: String,
    window: Duration,
    min_interval: Duration,
    events: Vec<TrackedEvent>,
    last_sent: HashMap<String, Instant>,
    last_nanos: u128,
}

impl EventRecorder {
    pub(super) fn new(node: &str, window: Duration, min_interval: Duration) -> EventRecorder {
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

    pub(super) fn record(
        &mut self,
        type_: EventType,
        reason: &str,
        message: &str,
        now: SystemTime,
        at: Instant,
    ) {
        let message = bound_message(message.to_string());
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
    pub(super) fn due(&mut self, at: Instant) -> Vec<EventSend> {
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
    pub(super) fn next_due(&self) -> Option<Instant> {
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
    pub(super) fn sent(&mut self, name: &str, count: u32, result: &EventResult) {
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
pub(super) enum EventResult {
    Sent,
    /// A create answered 409: an earlier try reached the server although its answer did not.
    /// Which count that try carried is not known, so the count is sent again (PATCH).
    Exists,
    /// The event to aggregate into no longer exists: create it again.
    Gone,
    Failed(ApiError),
}

/// Events for the change from `old` to `new` kubelet state.
pub(super) fn kubelet_events(
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
                    KUBELET_HUNG
                } else {
                    KUBELET_RESTARTED
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
                reason::KUBELET_CRASH_LOOPING,
                match &new.last_exit {
                    Some(e) => format!("kubelet keeps failing ({}); kaas-join keeps restarting it at the longest backoff", e.description),
                    None => "kubelet keeps failing; kaas-join keeps restarting it at the longest backoff".into(),
                },
            )),
            KubeletPhase::CannotStart => out.push((EventType::Warning, reason::KUBELET_CANNOT_START, problem())),
            KubeletPhase::Conflict => out.push((EventType::Warning, reason::KUBELET_CONFLICT, problem())),
            _ => {}
        }
    }
    out.extend(run_events::upgrade_event(
        old.upgrade.as_ref(),
        new.upgrade.as_ref(),
    ));
    out
}

/// Events for condition changes: a problem appearing (Warning, its reason), a problem going
/// away (Normal, the recovered reason; `KubeletRecovered` for kubelet).
pub(super) fn condition_events(
    old: &[NodeCondition],
    new: &[NodeCondition],
) -> Vec<(EventType, String, String)> {
    let mut out = Vec::new();
    for c in new {
        let before = old.iter().find(|o| o.type_ == c.type_);
        let was_problem = before.is_some_and(NodeCondition::is_problem);
        if c.type_ == KUBELET_UNHEALTHY {
            // Exits, crash loops, etc. come from the kubelet state; only healthz and recovery here.
            if c.reason == reason::KUBELET_HEALTHZ_FAILING
                && before.is_none_or(|b| b.reason != reason::KUBELET_HEALTHZ_FAILING)
            {
                out.push((EventType::Warning, c.reason.clone(), c.message.clone()));
            }
            if was_problem && c.status == status::FALSE {
                out.push((
                    EventType::Normal,
                    KUBELET_RECOVERED.into(),
                    c.message.clone(),
                ));
            }
            continue;
        }
        if c.type_ == KUBELET_VERSION_SKEW {
            out.extend(run_events::version_skew_event(before, c));
            continue;
        }
        if c.is_problem() && (!was_problem || before.is_some_and(|b| b.reason != c.reason)) {
            out.push((EventType::Warning, c.reason.clone(), c.message.clone()));
        } else if was_problem && c.status == status::FALSE {
            out.push((EventType::Normal, c.reason.clone(), c.message.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::node_conditions::conditions;
    use crate::model::node_conditions::tests::{exit, healthy_probes, running, t, NOW};

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
