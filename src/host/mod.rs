//! The seam to the machine.
//!
//! Everything kaas-join asks of the running machine beyond files under `--root` goes through
//! one [`Host`]: processes (spawn, signal, their state and command line), systemd, the wall
//! clock, the hostname, disk and memory figures, the user id, whether a port is free and a CRI
//! call to the container runtime.
//! [`LinuxHost`] is the real one; [`FakeHost`] records what would have been done and answers
//! from a script, so tests of reset's systemctl path, status's liveness check and the
//! preflight checks run without root and without touching the machine (youki's syscall trait is
//! the model).
//!
//! Files are not behind the trait: they are read and written under `--root` ([`paths::Paths`],
//! [`files`]), so a temporary directory already stands for a machine there. [`runtime`] reads
//! the container runtime's configuration under the root.
//!
//! Monotonic time is tokio's (`tokio::time::Instant`, `sleep`): tests pause and advance it.

pub mod fake;
pub mod files;
pub mod kubelet_version;
pub mod linux;
pub mod paths;
pub mod runtime;

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, SystemTime};

pub use crate::model::resources::{DiskSpace, Memory};
pub use fake::FakeHost;
pub use linux::LinuxHost;
pub use nix::sys::signal::Signal;

/// A process as the machine shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// `R`, `S`, `D`, `Z` (zombie), ... as in `/proc/<pid>/stat`.
    pub state: char,
    pub parent: u32,
    pub process_group: u32,
    /// The short name (`/proc/<pid>/comm`, at most 15 bytes).
    pub name: String,
    /// The command line.
    pub argv: Vec<String>,
}

impl ProcessInfo {
    /// Not a zombie (a dead process its parent has not reaped yet).
    pub fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A child process to start: in its own process group, stdin from /dev/null, stdout and stderr
/// piped, killed by the kernel when the thread that started it ends (`PR_SET_PDEATHSIG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Variables removed from the child's environment (ours, not the child's).
    pub env_remove: Vec<String>,
}

/// Whether a TCP port can be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortState {
    Free,
    InUse,
    /// Binding failed for another reason (no permission, no such address).
    Unusable(String),
}

/// The machine (see the module docs). Methods that wait on the machine (a command, a file
/// system query) block: call them from `spawn_blocking` in async code.
pub trait Host: Send + Sync + std::fmt::Debug {
    /// The wall clock.
    fn now(&self) -> SystemTime;
    /// This machine's hostname, trimmed, case kept.
    fn hostname(&self) -> io::Result<String>;
    /// This process's effective user id.
    fn effective_uid(&self) -> Option<u32>;
    /// Whether `root` is this machine's own `/` (not a staging directory or an image): only
    /// there are its processes, systemd units and kernel files this machine's.
    fn is_machine_root(&self, root: &Path) -> bool;
    /// Whether systemd runs this machine (`/run/systemd/system` exists).
    fn systemd_running(&self) -> bool;

    /// The process `pid`, if there is one (zombies included: see [`ProcessInfo::is_live`]).
    fn process(&self, pid: u32) -> Option<ProcessInfo>;
    /// Every process's pid.
    fn pids(&self) -> Vec<u32>;
    /// Sends `signal` to `pid`, or to its process group (`group`).
    fn signal(&self, pid: u32, group: bool, signal: Signal) -> io::Result<()>;
    /// Starts a child (see [`ChildSpec`]); call it from the thread that must outlive the child.
    fn spawn(&self, spec: &ChildSpec) -> io::Result<Child>;
    /// Runs `program args` to its end or `timeout` (then kills it); stdout and stderr capped.
    fn run(&self, program: &Path, args: &[&str], timeout: Duration) -> io::Result<CommandOutput>;
    /// `systemctl args` (no terminal, no pager).
    fn systemctl(&self, args: &[&str]) -> io::Result<CommandOutput>;

    /// Free space on the filesystem holding `dir` (or its nearest existing parent).
    fn disk_space(&self, dir: &Path) -> io::Result<DiskSpace>;
    /// The machine's memory.
    fn memory(&self) -> io::Result<Memory>;
    /// Whether `ip:port` can be bound now.
    fn port(&self, ip: IpAddr, port: u16) -> PortState;
    /// One gRPC unary call (`method`, a protobuf `request`) to the container runtime at
    /// `socket`, a path on this machine; the answer's protobuf message
    /// ([`runtime::cri`]).
    fn cri_unary(&self, socket: &Path, method: &str, request: &[u8]) -> io::Result<Vec<u8>>;
}
