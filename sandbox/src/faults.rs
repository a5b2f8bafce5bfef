//! Fault injection for tests: failed, delayed and dropped requests, and cut or expired watches.
//!
//! Every knob is bounded (a count, or a duration that only applies until [`Faults::clear`]);
//! nothing polls: watches learn about `cut_watches_after` through a `tokio::sync::watch` channel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

#[derive(Debug, Default)]
struct State {
    fail: Vec<(String, u16, usize)>,
    delay: Vec<(String, Duration)>,
    drop: Vec<(String, usize)>,
    watch_expired: usize,
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
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            state: Arc::default(),
            cut: Arc::new(watch::Sender::new(None)),
        }
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `count` requests whose path starts with `path_prefix` get HTTP `status` with a
    /// matching Status body (reason from the code: 500 InternalError, 503 ServiceUnavailable,
    /// 429 TooManyRequests with `Retry-After: 1`, 504 Timeout, ...).
    pub fn fail_next(&self, path_prefix: &str, status: u16, count: usize) {
        self.lock()
            .fail
            .push((path_prefix.to_string(), status, count));
    }

    /// Every request whose path starts with `path_prefix` waits `delay` before it is handled
    /// (until [`Faults::clear`]). Delays of several matching rules add up.
    pub fn delay(&self, path_prefix: &str, delay: Duration) {
        self.lock().delay.push((path_prefix.to_string(), delay));
    }

    /// The next `count` requests whose path starts with `path_prefix` have their TCP (TLS)
    /// connection closed without any response.
    pub fn drop_connections(&self, path_prefix: &str, count: usize) {
        self.lock().drop.push((path_prefix.to_string(), count));
    }

    /// Every watch stream, open or new, ends cleanly (end of the chunked body, no ERROR event)
    /// once it has been open for `after`.
    pub fn cut_watches_after(&self, after: Duration) {
        self.cut.send_replace(Some(after));
    }

    /// The next `count` watch requests answer 200 with a single `ERROR` event carrying a
    /// 410 Expired Status, then end: the client has to re-list.
    pub fn watch_error_expired_next(&self, count: usize) {
        self.lock().watch_expired += count;
    }

    /// Removes every fault.
    pub fn clear(&self) {
        *self.lock() = State::default();
        self.cut.send_replace(None);
    }

    /// Decides (and counts down) the faults for a request to `path`.
    pub(crate) fn decide(&self, path: &str) -> Decision {
        let mut state = self.lock();
        let mut decision = Decision::default();
        if let Some(rule) = state
            .drop
            .iter_mut()
            .find(|(p, n)| *n > 0 && path.starts_with(p.as_str()))
        {
            rule.1 -= 1;
            decision.drop = true;
        }
        decision.delay = state
            .delay
            .iter()
            .filter(|(p, _)| path.starts_with(p.as_str()))
            .map(|(_, d)| *d)
            .sum();
        if !decision.drop {
            if let Some(rule) = state
                .fail
                .iter_mut()
                .find(|(p, _, n)| *n > 0 && path.starts_with(p.as_str()))
            {
                rule.2 -= 1;
                decision.fail = Some(rule.1);
            }
        }
        state.drop.retain(|(_, n)| *n > 0);
        state.fail.retain(|(_, _, n)| *n > 0);
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

    pub(crate) fn watch_cut(&self) -> watch::Receiver<Option<Duration>> {
        self.cut.subscribe()
    }
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
        assert_eq!(f.decide("/api/v1/nodes/x").fail, Some(503));
        assert!(f.decide("/apis/certificates.k8s.io/v1").drop);
        let d = f.decide("/api/v1");
        assert_eq!(d.fail, Some(503));
        assert_eq!(d.delay, Duration::from_millis(5));
        assert_eq!(f.decide("/api/v1").fail, None);
        f.watch_error_expired_next(1);
        assert!(f.take_watch_expired());
        assert!(!f.take_watch_expired());
        f.clear();
        assert_eq!(f.decide("/api").delay, Duration::ZERO);
    }
}
