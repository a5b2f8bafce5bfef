//! The faults both fault matrices inject (`tests/fault_matrix.rs`, the join side, and
//! `tests/fault_matrix_run.rs`, the run side) and how often. Which calls a fault applies to, how
//! it is armed and what each cell must show stay in each matrix.

/// How often a transient fault hits; a persistent one hits every time.
pub const TRANSIENT: usize = 2;
pub const PERSISTENT: usize = 1000;

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
