//! The one bounded wait of the tests and benches: poll a closure until it gives a value, at most
//! a time and a number of tries, and on failure say what was waited for and what was seen last.
//! Every request loop of a test or a bench goes through here, so none can spin or hang unbounded.
//!
//! Self-contained (std and tokio only), so the sandbox's tests can include it with `#[path]`
//! as they do `fixtures.rs`. The async forms sleep with `tokio::time`, so under
//! `#[tokio::test(start_paused = true)]` a wait costs no real time.
#![allow(dead_code)]

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// How often a probe is tried unless [`Wait::every`] says otherwise.
pub const EVERY: Duration = Duration::from_millis(20);

/// What a probe gives: a value (done) or what it saw instead (try again).
pub trait Probe {
    type Value;
    /// `Ok(value)` when done, else a description of what was seen.
    fn seen(self) -> Result<Self::Value, String>;
}

impl<T> Probe for Option<T> {
    type Value = T;
    fn seen(self) -> Result<T, String> {
        self.ok_or_else(|| "nothing yet".to_owned())
    }
}

impl<T, S: Debug> Probe for Result<T, S> {
    type Value = T;
    fn seen(self) -> Result<T, String> {
        self.map_err(|s| format!("{s:?}"))
    }
}

impl Probe for bool {
    type Value = ();
    fn seen(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("false".to_owned())
        }
    }
}

/// Why a wait gave up: what it waited for, how long and how often it tried, what it saw last.
#[derive(Debug, Clone)]
pub struct TimedOut {
    pub what: String,
    pub within: Duration,
    pub tries: u32,
    pub last: String,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gave up waiting for {} after {} tries in {:?}; last seen: {}",
            self.what, self.tries, self.within, self.last
        )
    }
}

/// A wait for `what`: at most `within`, a try every `every`, at most `tries` tries.
#[derive(Debug, Clone)]
pub struct Wait {
    what: String,
    within: Duration,
    every: Duration,
    tries: u32,
}

impl Wait {
    /// A wait for `what` of at most `within`, trying every [`EVERY`] (so at most
    /// `within / EVERY + 1` tries).
    pub fn new(what: impl Into<String>, within: Duration) -> Wait {
        Wait {
            what: what.into(),
            within,
            every: EVERY,
            tries: tries_in(within, EVERY),
        }
        .checked()
    }

    /// Tries every `every` (the count bound follows: `within / every + 1`).
    pub fn every(mut self, every: Duration) -> Wait {
        self.every = every;
        self.tries = tries_in(self.within, every);
        self.checked()
    }

    /// At most `tries` tries (fewer than the time allows; at least one).
    pub fn tries(mut self, tries: u32) -> Wait {
        self.tries = tries.clamp(1, tries_in(self.within, self.every));
        self
    }

    fn checked(self) -> Wait {
        assert!(!self.every.is_zero(), "a wait must pause between tries");
        self
    }

    fn timed_out(&self, tries: u32, last: String) -> TimedOut {
        TimedOut {
            what: self.what.clone(),
            within: self.within,
            tries,
            last,
        }
    }

    /// Polls `probe` (on tokio time) until it gives a value, or says why it gave up.
    pub async fn poll<P: Probe>(&self, mut probe: impl FnMut() -> P) -> Result<P::Value, TimedOut> {
        self.poll_await(|| std::future::ready(probe())).await
    }

    /// [`Wait::poll`] with a probe that awaits.
    pub async fn poll_await<P: Probe, F: Future<Output = P>>(
        &self,
        mut probe: impl FnMut() -> F,
    ) -> Result<P::Value, TimedOut> {
        let deadline = tokio::time::Instant::now() + self.within;
        let mut tries = 0;
        loop {
            tries += 1;
            let last = match probe().await.seen() {
                Ok(v) => return Ok(v),
                Err(last) => last,
            };
            if tries >= self.tries || tokio::time::Instant::now() >= deadline {
                return Err(self.timed_out(tries, last));
            }
            tokio::time::sleep(self.every).await;
        }
    }

    /// [`Wait::poll`] on the calling thread (sync tests and benches), sleeping it between tries.
    pub fn poll_blocking<P: Probe>(
        &self,
        mut probe: impl FnMut() -> P,
    ) -> Result<P::Value, TimedOut> {
        let deadline = std::time::Instant::now() + self.within;
        let mut tries = 0;
        loop {
            tries += 1;
            let last = match probe().seen() {
                Ok(v) => return Ok(v),
                Err(last) => last,
            };
            if tries >= self.tries || std::time::Instant::now() >= deadline {
                return Err(self.timed_out(tries, last));
            }
            std::thread::sleep(self.every);
        }
    }

    /// [`Wait::poll`], panicking with what was waited for and seen when it gives up.
    pub async fn until<P: Probe>(&self, probe: impl FnMut() -> P) -> P::Value {
        self.poll(probe).await.unwrap_or_else(|t| panic!("{t}"))
    }

    /// [`Wait::poll_await`], panicking when it gives up.
    pub async fn until_await<P: Probe, F: Future<Output = P>>(
        &self,
        probe: impl FnMut() -> F,
    ) -> P::Value {
        self.poll_await(probe)
            .await
            .unwrap_or_else(|t| panic!("{t}"))
    }

    /// [`Wait::poll_blocking`], panicking when it gives up.
    pub fn until_blocking<P: Probe>(&self, probe: impl FnMut() -> P) -> P::Value {
        self.poll_blocking(probe).unwrap_or_else(|t| panic!("{t}"))
    }
}

/// How many tries fit in `within` at one every `every`: the first at once, then one a pause.
fn tries_in(within: Duration, every: Duration) -> u32 {
    let pauses = within.as_nanos() / every.as_nanos().max(1);
    u32::try_from(pauses).unwrap_or(u32::MAX).saturating_add(1)
}

/// Waits (on tokio time) until `probe` gives a value, for at most `within`; panics naming
/// `what` and what the probe saw last.
pub async fn wait_for<P: Probe>(
    what: &str,
    within: Duration,
    probe: impl FnMut() -> P,
) -> P::Value {
    Wait::new(what, within).until(probe).await
}

/// [`wait_for`] with a probe that awaits (an HTTP request, a sandbox call that is async).
pub async fn wait_for_await<P: Probe, F: Future<Output = P>>(
    what: &str,
    within: Duration,
    probe: impl FnMut() -> F,
) -> P::Value {
    Wait::new(what, within).until_await(probe).await
}

/// [`wait_for`] on the calling thread, for sync tests and benches.
pub fn wait_for_blocking<P: Probe>(
    what: &str,
    within: Duration,
    probe: impl FnMut() -> P,
) -> P::Value {
    Wait::new(what, within).until_blocking(probe)
}
