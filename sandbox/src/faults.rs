//! Fault injection for tests: failed, delayed, stalled and dropped requests, bodies cut short or
//! not JSON, failed TLS handshakes, and cut or expired watches.
//!
//! Every knob is bounded (a count, or a setting that only applies until [`Faults::clear`]);
//! nothing polls: watches learn about `cut_watches_after` through a `tokio::sync::watch` channel.
//!
//! # Matching requests
//!
//! Knobs that take a `path_prefix` match requests whose path starts with it. The prefix may start
//! with a verb and a space to match only those requests: an HTTP method (`"POST /apis/..."`,
//! `"GET /api/..."`), where `GET` means a GET that is not a watch, or `WATCH` for a GET with
//! `watch=true` (or `watch=1`) in its query. A prefix starting with `/` matches every verb.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The body sent by [`Faults::invalid_json`]: a 200 answer whose JSON stops half-way.
pub(crate) const INVALID_JSON_BODY: &[u8] =
    b"{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"cluster-in";

/// A TLS alert record: fatal (2) `handshake_failure` (40), as a server sends it when it cannot
/// negotiate (e.g. a load balancer with no common cipher suite).
const HANDSHAKE_FAILURE_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];

#[derive(Debug, Default)]
struct State {
    fail: Vec<(String, u16, usize)>,
    delay: Vec<(String, Duration)>,
    stall: Vec<(String, Duration, usize)>,
    drop: Vec<(String, usize)>,
    reset: Vec<(String, usize)>,
    invalid_json: Vec<(String, usize)>,
    tls_fail_after: Vec<(String, usize)>,
    tls_fail: usize,
    watch_expired: usize,
    watch_event_limit: Option<usize>,
    watch_garbage: Option<WatchGarbage>,
}

/// What a watch stream carries instead of events ([`Faults::garbage_watches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchGarbage {
    /// Lines that are not JSON (an HTML error page, one line at a time).
    Lines,
    /// A chunk of JSON that never ends its line, then the end of the stream.
    NoNewline,
}

/// A handle to the sandbox's fault injection. Cheap to clone; all clones share state.
#[derive(Debug, Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    cut: Arc<watch::Sender<Option<Duration>>>,
}

/// What to do with one request, decided when it arrives.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    pub drop: bool,
    pub delay: Duration,
    pub fail: Option<u16>,
    /// Send the headers and part of the body, then close the connection.
    pub reset: bool,
    /// Answer 200 with [`INVALID_JSON_BODY`].
    pub invalid_json: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            state: Arc::default(),
            cut: Arc::new(watch::Sender::new(None)),
        }
    }
}

/// The verb a rule's optional method prefix is compared with.
fn verb_of(method: &str, query: &str) -> String {
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    if method.eq_ignore_ascii_case("GET") && watch {
        "WATCH".into()
    } else {
        method.to_ascii_uppercase()
    }
}

/// Whether `rule` (`"/prefix"` or `"VERB /prefix"`) matches a request.
fn rule_matches(rule: &str, verb: &str, path: &str) -> bool {
    match rule.split_once(' ') {
        Some((want, prefix)) if !rule.starts_with('/') => {
            want.eq_ignore_ascii_case(verb) && path.starts_with(prefix)
        }
        _ => path.starts_with(rule),
    }
}

/// Counts down the first live rule matching the request; whether one did.
fn take(rules: &mut Vec<(String, usize)>, verb: &str, path: &str) -> bool {
    let hit = rules
        .iter_mut()
        .find(|(rule, n)| *n > 0 && rule_matches(rule, verb, path))
        .map(|(_, n)| *n -= 1)
        .is_some();
    rules.retain(|(_, n)| *n > 0);
    hit
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `count` requests matching `path_prefix` get HTTP `status` with a matching Status
    /// body (reason from the code: 500 InternalError, 503 ServiceUnavailable with
    /// `Retry-After: 1`, 504 Timeout, ...), except 429: the plain-text refusal of kube-apiserver's
    /// priority and fairness, with `Retry-After: 1`.
    pub fn fail_next(&self, path_prefix: &str, status: u16, count: usize) {
        self.lock()
            .fail
            .push((path_prefix.to_string(), status, count));
    }

    /// Every request matching `path_prefix` waits `delay` before it is handled (until
    /// [`Faults::clear`]). Delays of several matching rules add up.
    pub fn delay(&self, path_prefix: &str, delay: Duration) {
        self.lock().delay.push((path_prefix.to_string(), delay));
    }

    /// The next `count` requests matching `path_prefix` wait `delay` before they are handled (a
    /// stall past the client's timeout when `delay` is longer); later ones are not delayed.
    pub fn stall_next(&self, path_prefix: &str, delay: Duration, count: usize) {
        self.lock()
            .stall
            .push((path_prefix.to_string(), delay, count));
    }

    /// The next `count` requests matching `path_prefix` have their TCP (TLS) connection closed
    /// without any response.
    pub fn drop_connections(&self, path_prefix: &str, count: usize) {
        self.lock().drop.push((path_prefix.to_string(), count));
    }

    /// The next `count` requests matching `path_prefix` get their status line, headers (with the
    /// full `Content-Length`) and the first half of their body; then the connection closes. A
    /// watch gets its first event, then the connection closes.
    pub fn reset_mid_body(&self, path_prefix: &str, count: usize) {
        self.lock().reset.push((path_prefix.to_string(), count));
    }

    /// The next `count` requests matching `path_prefix` get `200 OK`, `application/json`, and a
    /// body that is JSON cut off half-way (a complete HTTP response).
    pub fn invalid_json(&self, path_prefix: &str, count: usize) {
        self.lock()
            .invalid_json
            .push((path_prefix.to_string(), count));
    }

    /// The next `count` TLS handshakes fail: the server reads the ClientHello, answers with a
    /// fatal `handshake_failure` alert and closes the connection.
    pub fn tls_fail_next(&self, count: usize) {
        self.lock().tls_fail += count;
    }

    /// Aims TLS failures at one call: the next request matching `path_prefix` has its
    /// connection closed without a response (as [`Faults::drop_connections`]), and the `count`
    /// TLS handshakes after that fail (as [`Faults::tls_fail_next`]), so the client's retry of
    /// that call, on a new connection, meets them.
    pub fn tls_fail_after(&self, path_prefix: &str, count: usize) {
        self.lock()
            .tls_fail_after
            .push((path_prefix.to_string(), count));
    }

    /// Every watch stream, open or new, ends cleanly (end of the chunked body, no ERROR event)
    /// once it has been open for `after`.
    pub fn cut_watches_after(&self, after: Duration) {
        self.cut.send_replace(Some(after));
    }

    /// Every new watch stream ends cleanly after it has sent `events` events (0: at once, with
    /// none), until [`Faults::clear`].
    pub fn cut_watches_after_events(&self, events: usize) {
        self.lock().watch_event_limit = Some(events);
    }

    /// Every new watch stream answers 200 and sends `garbage` instead of events, then ends, until
    /// [`Faults::clear`]: a proxy or a broken server that speaks something else.
    pub fn garbage_watches(&self, garbage: WatchGarbage) {
        self.lock().watch_garbage = Some(garbage);
    }

    /// The next `count` watch requests answer 200 with a single `ERROR` event carrying a
    /// 410 Expired Status, then end: the client has to re-list.
    pub fn watch_error_expired_next(&self, count: usize) {
        self.lock().watch_expired += count;
    }

    /// How many hits the counted faults (`fail_next`, `stall_next`, `drop_connections`,
    /// `reset_mid_body`, `invalid_json`, `tls_fail_*`, `watch_error_expired_next`) have left: 0
    /// once a transient fault has been spent in full.
    pub fn pending(&self) -> usize {
        let s = self.lock();
        s.fail.iter().map(|r| r.2).sum::<usize>()
            + s.stall.iter().map(|r| r.2).sum::<usize>()
            + [&s.drop, &s.reset, &s.invalid_json, &s.tls_fail_after]
                .iter()
                .flat_map(|rules| rules.iter().map(|r| r.1))
                .sum::<usize>()
            + s.tls_fail
            + s.watch_expired
    }

    /// Removes every fault.
    pub fn clear(&self) {
        *self.lock() = State::default();
        self.cut.send_replace(None);
    }

    /// Decides (and counts down) the faults for a request.
    pub(crate) fn decide(&self, method: &str, path: &str, query: &str) -> Decision {
        let verb = verb_of(method, query);
        let mut state = self.lock();
        let state = &mut *state;
        let mut decision = Decision::default();
        if let Some(pos) = state
            .tls_fail_after
            .iter()
            .position(|(p, n)| *n > 0 && rule_matches(p, &verb, path))
        {
            let (_, n) = state.tls_fail_after.remove(pos);
            state.tls_fail += n;
            decision.drop = true;
        }
        if take(&mut state.drop, &verb, path) {
            decision.drop = true;
        }
        decision.delay = state
            .delay
            .iter()
            .filter(|(p, _)| rule_matches(p, &verb, path))
            .map(|(_, d)| *d)
            .sum();
        if let Some(rule) = state
            .stall
            .iter_mut()
            .find(|(p, _, n)| *n > 0 && rule_matches(p, &verb, path))
        {
            rule.2 -= 1;
            decision.delay += rule.1;
        }
        state.stall.retain(|(_, _, n)| *n > 0);
        if !decision.drop {
            if let Some(rule) = state
                .fail
                .iter_mut()
                .find(|(p, _, n)| *n > 0 && rule_matches(p, &verb, path))
            {
                rule.2 -= 1;
                decision.fail = Some(rule.1);
            }
            state.fail.retain(|(_, _, n)| *n > 0);
            if decision.fail.is_none() {
                decision.invalid_json = take(&mut state.invalid_json, &verb, path);
            }
            decision.reset = take(&mut state.reset, &verb, path);
        }
        decision
    }

    /// Whether this watch should answer with a 410 Expired ERROR event (counts down).
    pub(crate) fn take_watch_expired(&self) -> bool {
        let mut state = self.lock();
        if state.watch_expired > 0 {
            state.watch_expired -= 1;
            true
        } else {
            false
        }
    }

    /// What a new watch sends instead of events, if anything.
    pub(crate) fn watch_garbage(&self) -> Option<WatchGarbage> {
        self.lock().watch_garbage
    }

    /// How many events a new watch may send before it ends (`None`: no limit).
    pub(crate) fn watch_event_limit(&self) -> Option<usize> {
        self.lock().watch_event_limit
    }

    /// Whether this TLS handshake should fail (counts down).
    pub(crate) fn take_tls_fail(&self) -> bool {
        let mut state = self.lock();
        if state.tls_fail > 0 {
            state.tls_fail -= 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn watch_cut(&self) -> watch::Receiver<Option<Duration>> {
        self.cut.subscribe()
    }
}

/// Counts one event sent on a watch against its [`Faults::cut_watches_after_events`] budget;
/// true when the watch must end now.
pub(crate) fn spend_watch_event(budget: &mut Option<usize>) -> bool {
    match budget {
        Some(n) => {
            *n = n.saturating_sub(1);
            *n == 0
        }
        None => false,
    }
}

/// Fails a TLS handshake as [`Faults::tls_fail_next`] describes (bounded: at most 1 s to read
/// the ClientHello).
pub(crate) async fn fail_tls_handshake(mut tcp: TcpStream) {
    let mut hello = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut hello)).await;
    let _ = tcp.write_all(&HANDSHAKE_FAILURE_ALERT).await;
    let _ = tcp.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_and_clears() {
        let f = Faults::default();
        f.fail_next("/api", 503, 2);
        f.drop_connections("/apis/cert", 1);
        f.delay("/", Duration::from_millis(5));
        assert_eq!(f.decide("GET", "/api/v1/nodes/x", "").fail, Some(503));
        assert!(f.decide("GET", "/apis/certificates.k8s.io/v1", "").drop);
        let d = f.decide("GET", "/api/v1", "");
        assert_eq!(d.fail, Some(503));
        assert_eq!(d.delay, Duration::from_millis(5));
        assert_eq!(f.decide("GET", "/api/v1", "").fail, None);
        assert_eq!(f.pending(), 0);
        f.reset_mid_body("/x", 2);
        f.tls_fail_after("/y", 3);
        assert_eq!(f.pending(), 5);
        assert!(f.decide("GET", "/x", "").reset);
        assert!(f.decide("GET", "/y", "").drop);
        assert_eq!(
            f.pending(),
            4,
            "the tls_fail_after count moved to the handshakes"
        );
        f.clear();
        f.watch_error_expired_next(1);
        assert!(f.take_watch_expired());
        assert!(!f.take_watch_expired());
        f.clear();
        assert_eq!(f.decide("GET", "/api", "").delay, Duration::ZERO);
    }

    #[test]
    fn verbs_tell_create_from_watch() {
        let f = Faults::default();
        let csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
        f.fail_next(&format!("POST {csrs}"), 500, 1);
        f.invalid_json(&format!("WATCH {csrs}"), 1);
        f.reset_mid_body(&format!("GET {csrs}"), 1);
        let watch = "fieldSelector=x&watch=true&resourceVersion=3";
        let d = f.decide("GET", csrs, watch);
        assert!(d.invalid_json && !d.reset && d.fail.is_none());
        assert_eq!(f.decide("POST", csrs, "").fail, Some(500));
        assert!(f.decide("GET", &format!("{csrs}/node-csr-x"), "").reset);
        assert_eq!(f.decide("POST", csrs, ""), Decision::default());
        assert_eq!(f.decide("GET", csrs, watch), Decision::default());
    }

    #[test]
    fn stalls_tls_and_watch_limits_are_bounded() {
        let f = Faults::default();
        f.stall_next("/api", Duration::from_secs(3), 1);
        assert_eq!(f.decide("GET", "/api/v1", "").delay, Duration::from_secs(3));
        assert_eq!(f.decide("GET", "/api/v1", "").delay, Duration::ZERO);
        f.tls_fail_next(1);
        assert!(f.take_tls_fail());
        assert!(!f.take_tls_fail());
        f.tls_fail_after("POST /apis", 2);
        assert!(!f.decide("GET", "/apis/x", "").drop);
        assert!(f.decide("POST", "/apis/x", "").drop);
        assert!(!f.decide("POST", "/apis/x", "").drop);
        assert!(f.take_tls_fail() && f.take_tls_fail() && !f.take_tls_fail());
        assert_eq!(f.watch_event_limit(), None);
        f.cut_watches_after_events(2);
        assert_eq!(f.watch_event_limit(), Some(2));
        f.clear();
        assert_eq!(f.watch_event_limit(), None);
    }
}
