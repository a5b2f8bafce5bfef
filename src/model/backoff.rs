//! Capped exponential backoff with jitter, bounded by a deadline.
//!
//! Discovery and the CSR wait retry transient failures. `kubeadm join` polls every 5 s; a VM that
//! boots right after its token was minted would sit out that whole interval waiting for the
//! bootstrapsigner, which on a real control plane signs within ~15 ms. So we start at 100 ms and
//! double up to a 5 s cap (kubeadm's interval), with ±20 % jitter so a thousand VMs booted
//! together do not retry in lockstep.

use std::time::{Duration, Instant};

/// Where the first retry starts.
pub const INITIAL: Duration = Duration::from_millis(100);
/// The cap: never wait longer than kubeadm's fixed poll interval between two tries.
pub const MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    deadline: Instant,
    tries: u32,
}

impl Backoff {
    pub fn new(deadline: Instant) -> Backoff {
        Backoff::with_bounds(INITIAL, MAX, deadline)
    }

    pub fn with_bounds(initial: Duration, max: Duration, deadline: Instant) -> Backoff {
        Backoff {
            next: initial,
            max,
            deadline,
            tries: 0,
        }
    }

    /// How many waits were taken so far (= retries).
    pub fn retries(&self) -> u32 {
        self.tries
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The next delay, or `None` when waiting it would pass the deadline.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let now = Instant::now();
        if now >= self.deadline {
            return None;
        }
        let delay = jitter(self.next).min(self.deadline - now);
        self.next = (self.next * 2).min(self.max);
        self.tries += 1;
        Some(delay)
    }

    /// Sleeps for the next delay; false when the deadline has passed.
    pub async fn wait(&mut self) -> bool {
        match self.next_delay() {
            Some(delay) => {
                tokio::time::sleep(delay).await;
                true
            }
            None => false,
        }
    }
}

/// `d` scaled by a random factor in [0.8, 1.2).
fn jitter(d: Duration) -> Duration {
    let mut byte = [0u8; 1];
    // A failed random read only costs the jitter, never the retry.
    let r = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut byte)
        .map(|_| byte[0])
        .unwrap_or(128);
    d.mul_f64(0.8 + 0.4 * f64::from(r) / 256.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_fast_doubles_and_caps() {
        let mut b = Backoff::new(Instant::now() + Duration::from_secs(3600));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay().unwrap()).collect();
        assert!(delays[0] >= Duration::from_millis(80) && delays[0] < Duration::from_millis(120));
        assert!(delays[1] >= Duration::from_millis(160) && delays[1] < Duration::from_millis(240));
        for d in &delays[7..] {
            assert!(
                *d >= Duration::from_secs(4) && *d < Duration::from_secs(6),
                "{d:?}"
            );
        }
        assert_eq!(b.retries(), 10);
    }

    #[test]
    fn never_sleeps_past_the_deadline() {
        let mut b = Backoff::with_bounds(
            Duration::from_secs(10),
            Duration::from_secs(10),
            Instant::now() + Duration::from_millis(50),
        );
        assert!(b.next_delay().unwrap() <= Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.next_delay(), None);
    }
}
