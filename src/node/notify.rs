//! The systemd notification protocol (`sd_notify(3)`), without libsystemd.
//!
//! With `Type=notify` in the kaas-join unit, systemd passes a datagram socket in `NOTIFY_SOCKET`
//! (a path, or `@name` for an abstract socket) and, with `WatchdogSec=`, the watchdog period in
//! `WATCHDOG_USEC` (for the process in `WATCHDOG_PID`, when set). We send plain-text datagrams:
//! `READY=1`, `STATUS=...`, `WATCHDOG=1`, `EXTEND_TIMEOUT_USEC=...`, `STOPPING=1`.
//!
//! Notification must never fail the daemon: every error is logged at debug level and ignored, and
//! without `NOTIFY_SOCKET` every call does nothing.
//!
//! The variables describe *our* unit, not kubelet's: the supervisor removes them from kubelet's
//! environment ([`VARIABLES`]), otherwise kubelet (which speaks the protocol too)
//! would send `READY=1` on our behalf. We leave our own environment alone (changing it in a
//! multi-threaded process races with every reader).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

/// The variables of the protocol.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";
/// The protocol's variables: they describe our unit, and a child that speaks the protocol
/// (kubelet does) would otherwise notify systemd in our name; children never get them.
pub const VARIABLES: [&str; 3] = [NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID];

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A socket in the file system.
    Path(PathBuf),
    /// An abstract socket (`@name` in `NOTIFY_SOCKET`), name without the `@`.
    Abstract(Vec<u8>),
}

/// Sends notifications to systemd, or does nothing when not run by systemd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    target: Option<Target>,
    /// The full `WATCHDOG_USEC` period, when it applies to this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (the watchdog only when
    /// `WATCHDOG_PID` is unset or names this process).
    pub fn from_env() -> Notifier {
        let var = |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        Notifier::from_vars(
            var(NOTIFY_SOCKET).as_deref(),
            var(WATCHDOG_USEC).as_deref(),
            var(WATCHDOG_PID).as_deref(),
            std::process::id(),
        )
    }

    /// [`Notifier::from_env`] on given values, for tests.
    fn from_vars(
        socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        own_pid: u32,
    ) -> Notifier {
        let target = match socket {
            None | Some("") => None,
            Some(s) if s.starts_with('@') => Some(Target::Abstract(s.as_bytes()[1..].to_vec())),
            Some(s) if s.starts_with('/') => Some(Target::Path(PathBuf::from(s))),
            Some(other) => {
                // e.g. vsock:..., which only VMs managed from the host use.
                tracing::debug!(
                    socket = other,
                    "unsupported NOTIFY_SOCKET; not notifying systemd"
                );
                None
            }
        };
        let pid_matches = match watchdog_pid {
            None | Some("") => true,
            Some(p) => p.trim().parse::<u32>().ok() == Some(own_pid),
        };
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && pid_matches && target.is_some())
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// Does nothing, whatever the environment says.
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// Sends to the socket at `path` (tests).
    pub fn at_path(path: impl Into<PathBuf>) -> Notifier {
        Notifier {
            target: Some(Target::Path(path.into())),
            watchdog: None,
        }
    }

    /// Sends to the abstract socket `name` (without the leading `@`; tests).
    pub fn at_abstract(name: &[u8]) -> Notifier {
        Notifier {
            target: Some(Target::Abstract(name.to_vec())),
            watchdog: None,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `READY=1`: start-up is finished.
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// `STATUS=...`, shown by `systemctl status`. One line: newlines become spaces.
    pub fn status(&self, text: &str) {
        let line: String = text
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        self.send(&format!("STATUS={line}"));
    }

    /// `WATCHDOG=1`: still alive.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// `EXTEND_TIMEOUT_USEC=...`: the current start or stop needs up to `d` more.
    pub fn extend_timeout(&self, d: Duration) {
        self.send(&format!("EXTEND_TIMEOUT_USEC={}", d.as_micros()));
    }

    /// `STOPPING=1`: shutting down.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// How often to send [`Notifier::watchdog`]: half the watchdog period, as
    /// `sd_watchdog_enabled(3)` advises. `None` when no watchdog is set for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    fn send(&self, message: &str) {
        let Some(target) = &self.target else {
            return;
        };
        let result = UnixDatagram::unbound().and_then(|socket| match target {
            Target::Path(path) => socket.send_to(message.as_bytes(), path),
            Target::Abstract(name) => SocketAddr::from_abstract_name(name)
                .and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr)),
        });
        match result {
            Ok(_) => tracing::trace!(message, "notified systemd"),
            Err(error) => {
                tracing::debug!(message, ?target, %error, "cannot notify systemd; ignored")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn bound() -> (tempfile::TempDir, PathBuf, UnixDatagram) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (dir, path, socket)
    }

    #[test]
    fn sends_exact_datagrams_to_a_path() {
        let (_dir, path, socket) = bound();
        let n = Notifier::at_path(&path);
        assert!(n.is_enabled());
        n.ready();
        n.status("kubelet running\nhealthz ok\r");
        n.watchdog();
        n.extend_timeout(Duration::from_secs(90));
        n.stopping();
        assert_eq!(receive(&socket), "READY=1");
        assert_eq!(receive(&socket), "STATUS=kubelet running healthz ok ");
        assert_eq!(receive(&socket), "WATCHDOG=1");
        assert_eq!(receive(&socket), "EXTEND_TIMEOUT_USEC=90000000");
        assert_eq!(receive(&socket), "STOPPING=1");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("kaas-join-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::from_vars(Some(&format!("@{name}")), None, None, 1);
        assert_eq!(n, Notifier::at_abstract(name.as_bytes()));
        n.ready();
        assert_eq!(receive(&socket), "READY=1");
    }

    #[test]
    fn errors_are_ignored_and_disabled_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // Nobody listens there: the send fails, quietly.
        Notifier::at_path(dir.path().join("missing.sock")).ready();
        let d = Notifier::disabled();
        assert!(!d.is_enabled());
        d.ready();
        assert_eq!(d.watchdog_interval(), None);
    }

    #[test]
    fn environment_parsing() {
        assert!(!Notifier::from_vars(None, None, None, 7).is_enabled());
        assert!(!Notifier::from_vars(Some(""), None, None, 7).is_enabled());
        assert!(!Notifier::from_vars(Some("vsock:2:1"), None, None, 7).is_enabled());
        let n = Notifier::from_vars(Some("/run/systemd/notify"), Some("20000000"), None, 7);
        assert_eq!(
            n,
            Notifier::at_path("/run/systemd/notify").with_watchdog(20)
        );
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(10)));
        // WATCHDOG_PID names another process: the watchdog is not ours.
        let n = Notifier::from_vars(Some("/run/systemd/notify"), Some("20000000"), Some("8"), 7);
        assert_eq!(n.watchdog_interval(), None);
        assert!(n.is_enabled());
        let n = Notifier::from_vars(Some("/run/systemd/notify"), Some("20000000"), Some("7"), 7);
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(10)));
        // Garbage or zero: no watchdog.
        let n = Notifier::from_vars(Some("/run/systemd/notify"), Some("x"), None, 7);
        assert_eq!(n.watchdog_interval(), None);
        let n = Notifier::from_vars(Some("/run/systemd/notify"), Some("0"), None, 7);
        assert_eq!(n.watchdog_interval(), None);
    }

    impl Notifier {
        fn with_watchdog(mut self, secs: u64) -> Notifier {
            self.watchdog = Some(Duration::from_secs(secs));
            self
        }
    }
}
