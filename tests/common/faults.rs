//! The faults both fault matrices inject (`tests/fault_matrix.rs`, the join side, and
//! `tests/fault_matrix_run.rs`, the run side), how often, and how one is armed on the requests
//! to one path ([`arm_on`]). Which calls a fault applies to, the faults that are not about one
//! path, and what each cell must show stay in each matrix.

use std::time::Duration;

use kaas_sandbox::Faults;

/// How often a transient fault hits; a persistent one hits every time.
pub const TRANSIENT: usize = 2;
pub const PERSISTENT: usize = 1000;

/// The client's own per-request timeout is 10 s (`apiclient::REQUEST_TIMEOUT`): a transient stall
/// of 11 s is cut by it; a persistent stall is held long enough for one timeout and a retry.
pub const STALL: Duration = Duration::from_secs(11);
pub const STALL_FOREVER: Duration = Duration::from_secs(25);

/// Arms `fault` in `mode` on the requests whose `METHOD path` starts with `prefix`: HTTP errors,
/// dropped and reset connections, TLS failures after the handshake's start, stalls ([`STALL`]
/// once, or [`STALL_FOREVER`]), invalid JSON. `false` for the faults that are not about one path
/// (a refused port, a cut watch): the matrix arms those itself.
pub fn arm_on(faults: &Faults, prefix: &str, fault: Fault, mode: Mode) -> bool {
    let n = mode.hits();
    match fault {
        Fault::Http500 => faults.fail_next(prefix, 500, n),
        Fault::Http503 => faults.fail_next(prefix, 503, n),
        Fault::Http429 => faults.fail_next(prefix, 429, n),
        Fault::Dropped => faults.drop_connections(prefix, n),
        Fault::Reset => faults.reset_mid_body(prefix, n),
        Fault::Tls => faults.tls_fail_after(prefix, n),
        Fault::Stall => match mode {
            Mode::Transient => faults.stall_next(prefix, STALL, 1),
            Mode::Persistent => faults.stall_next(prefix, STALL_FOREVER, n),
        },
        Fault::InvalidJson => faults.invalid_json(prefix, n),
        Fault::Refused | Fault::WatchCut => return false,
    }
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Http500,
    Http503,
    Http429,
    Refused,
    Dropped,
    Reset,
    Tls,
    Stall,
    WatchCut,
    InvalidJson,
}

impl Fault {
    pub const ALL: [Fault; 10] = [
        Fault::Http500,
        Fault::Http503,
        Fault::Http429,
        Fault::Refused,
        Fault::Dropped,
        Fault::Reset,
        Fault::Tls,
        Fault::Stall,
        Fault::WatchCut,
        Fault::InvalidJson,
    ];

    /// The fault's name in the tables (and FAULTS.md).
    pub fn name(self) -> &'static str {
        match self {
            Fault::Http500 => "HTTP 500",
            Fault::Http503 => "HTTP 503 + Retry-After",
            Fault::Http429 => "HTTP 429 + Retry-After",
            Fault::Refused => "connection refused",
            Fault::Dropped => "closed, no answer",
            Fault::Reset => "reset mid-body",
            Fault::Tls => "TLS handshake failure",
            Fault::Stall => "stall past timeout",
            Fault::WatchCut => "watch cut after N events",
            Fault::InvalidJson => "invalid JSON body",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Transient,
    Persistent,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Transient, Mode::Persistent];

    /// The mode's name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Transient => "transient",
            Mode::Persistent => "persistent",
        }
    }

    /// How many times a fault in this mode hits: [`TRANSIENT`] or [`PERSISTENT`].
    pub fn hits(self) -> usize {
        match self {
            Mode::Transient => TRANSIENT,
            Mode::Persistent => PERSISTENT,
        }
    }
}
