//! The one backoff of kaas-join: capped exponential, with jitter, optionally bounded by a
//! deadline. Time is tokio's (`tokio::time::Instant`, `sleep`), so tests pause and advance it
//! instead of sleeping.
//!
//! Where it is used, and with which bounds (each written down where it is chosen):
//! - discovery, cluster configuration, the CSR wait ([`Backoff::discovery`]): `kubeadm join`
//!   polls every 5 s; a VM that boots right after its token was minted would sit out that whole
//!   interval waiting for the bootstrapsigner, which on a real control plane signs within
//!   ~15 ms. So 100 ms doubling to a 5 s cap (kubeadm's interval), until the phase's timeout.
//! - `run`'s join attempts: 1 s doubling to 60 s, no deadline (it never gives up).
//! - kubelet restarts: 1 s doubling to 60 s, ±10 %; a crash loop jumps to the cap
//!   ([`Backoff::capped`]), a stable run resets it.
//! - the health reporter's writes: 1 s doubling to 60 s, no deadline.
//!
//! Jitter (±20 % unless set) keeps a thousand VMs booted together from retrying in lockstep.

use std::time::Duration;

use tokio::time::Instant;

/// Discovery's first retry.
pub const DISCOVERY_INITIAL: Duration = Duration::from_millis(100);
/// Discovery's cap: never longer than kubeadm's fixed poll interval between two tries.
pub const DISCOVERY_MAX: Duration = Duration::from_secs(5);

/// Capped exponential backoff with jitter (see the module docs).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// ± this fraction of each delay.
    jitter: f64,
    next: Duration,
    deadline: Option<Instant>,
    tries: u32,
}

impl Backoff {
    /// `initial` doubling to `max`, ±20 %, no deadline.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial
            .max(Duration::from_millis(1))
            .min(max.max(Duration::from_millis(1)));
        Backoff {
            initial,
            max: max.max(initial),
            jitter: 0.2,
            next: initial,
            deadline: None,
            tries: 0,
        }
    }

    /// Discovery's bounds ([`DISCOVERY_INITIAL`] to [`DISCOVERY_MAX`]) until `deadline`.
    pub fn discovery(deadline: Instant) -> Backoff {
        Backoff::new(DISCOVERY_INITIAL, DISCOVERY_MAX).until(deadline)
    }

    /// Never waits past `deadline`; [`wait`](Backoff::wait) says false once it has passed.
    pub fn until(mut self, deadline: Instant) -> Backoff {
        self.deadline = Some(deadline);
        self
    }

    /// ± `fraction` of each delay (0.1 = ±10 %).
    pub fn with_jitter(mut self, fraction: f64) -> Backoff {
        self.jitter = fraction.clamp(0.0, 0.5);
        self
    }

    /// How many delays were taken so far (= retries).
    pub fn retries(&self) -> u32 {
        self.tries
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The deadline has passed.
    pub fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// The next delay (jittered, never past the deadline), doubling the one after up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = jitter(self.next, self.jitter);
        self.next = (self.next * 2).min(self.max);
        self.tries += 1;
        match self.deadline {
            Some(d) => delay.min(d.saturating_duration_since(Instant::now())),
            None => delay,
        }
    }

    /// The longest delay (jittered), and every later one too until [`reset`](Backoff::reset):
    /// for a crash loop.
    pub fn capped(&mut self) -> Duration {
        self.next = self.max;
        self.next_delay()
    }

    /// Back to the first delay (after a success, or a run long enough to count as stable).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// Sleeps for the next delay; false (at once) when the deadline has passed.
    pub async fn wait(&mut self) -> bool {
        if self.expired() {
            return false;
        }
        tokio::time::sleep(self.next_delay()).await;
        true
    }
}

/// `d` scaled by a random factor in [1 - fraction, 1 + fraction).
fn jitter(d: Duration, fraction: f64) -> Duration {
    let mut byte = [0u8; 1];
    // A failed random read only costs the jitter, never the retry.
    let r = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut byte)
        .map(|_| byte[0])
        .unwrap_or(128);
    d.mul_f64(1.0 - fraction + 2.0 * fraction * f64::from(r) / 256.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(d: Duration, around: Duration, fraction: f64) -> bool {
        d >= around.mul_f64(1.0 - fraction) && d < around.mul_f64(1.0 + fraction)
    }

    #[tokio::test(start_paused = true)]
    async fn discovery_starts_fast_doubles_and_caps() {
        let mut b = Backoff::discovery(Instant::now() + Duration::from_secs(3600));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(
            within(delays[0], Duration::from_millis(100), 0.2),
            "{delays:?}"
        );
        assert!(
            within(delays[1], Duration::from_millis(200), 0.2),
            "{delays:?}"
        );
        for d in &delays[7..] {
            assert!(within(*d, Duration::from_secs(5), 0.2), "{d:?}");
        }
        assert_eq!(b.retries(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn never_sleeps_past_the_deadline() {
        let start = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10))
            .until(start + Duration::from_millis(50));
        assert!(b.wait().await);
        assert_eq!(Instant::now() - start, Duration::from_millis(50));
        assert!(b.expired());
        assert!(!b.wait().await);
        assert_eq!(
            Instant::now() - start,
            Duration::from_millis(50),
            "no sleep once expired"
        );
    }

    #[test]
    fn restarts_back_off_cap_on_a_crash_loop_and_reset() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).with_jitter(0.1);
        for want in [1, 2, 4, 8, 16, 32, 60, 60] {
            let d = b.next_delay();
            assert!(within(d, Duration::from_secs(want), 0.1), "{d:?} vs {want}");
        }
        b.reset();
        assert!(within(b.next_delay(), Duration::from_secs(1), 0.1));
        assert!(within(b.capped(), Duration::from_secs(60), 0.1));
        assert!(
            within(b.next_delay(), Duration::from_secs(60), 0.1),
            "stays capped"
        );
    }

    #[test]
    fn bounds_are_sane_whatever_is_asked() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO).with_jitter(0.0);
        assert_eq!(b.next_delay(), Duration::from_millis(1));
        let mut b = Backoff::new(Duration::from_secs(9), Duration::from_secs(3)).with_jitter(0.0);
        assert_eq!(b.next_delay(), Duration::from_secs(3));
    }
}
