//! The processes and threads of the supervisor; how kubelet is forked, watched and signalled.
//!
//! - One **spawner thread** ([`Spawner`]) lives as long as `supervise` and forks every kubelet,
//!   through [`Host::spawn`]. kubelet gets `PR_SET_PDEATHSIG(SIGKILL)`, which Linux fires when
//!   the *thread* that forked it exits, not the process: spawning from tokio's blocking pool
//!   would kill kubelet whenever tokio retired an idle thread. If kaas-join dies (even by
//!   SIGKILL), every thread dies and kubelet with them; no orphan kubelet keeps running
//!   unsupervised. If the future of `supervise` is dropped, the spawner thread's channel closes,
//!   the thread exits, and kubelet is killed the same way (and its process group too, by
//!   [`KillOnDrop`]).
//! - kubelet runs in its own process group (`process_group(0)`, set by the host), so signals go
//!   to the group (`-pgid`, [`signal_group`]): kubelet and anything it started.
//! - Per kubelet run: a **waiter thread** (`Child::wait`, result over a tokio oneshot; tokio's
//!   own process support cannot be used for a child forked on our thread) and two **reader
//!   threads** (stdout, stderr), which log each line under target `kubelet` and keep the last
//!   [`LAST_LINES`] for [`ExitInfo::last_lines`](crate::model::kubelet_process::ExitInfo).
//!
//! What a run does with the child (probes, stops, restarts) is `super::one_run`'s.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::SupervisorError;
use crate::host::{ChildSpec, Host, Signal};

/// How many of kubelet's last output lines an [`ExitInfo`](crate::model::kubelet_process::ExitInfo)
/// keeps.
pub const LAST_LINES: usize = 20;
/// Longer output lines are cut (a runaway line must not eat memory).
pub const MAX_LINE: usize = 4096;
/// After kubelet exits, how long the waiter lets the readers drain the pipes (a grandchild that
/// inherited them must not hold the exit report up).
const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// Kubelet's recent output, shared by the reader threads of one run.
pub(super) type Lines = Arc<Mutex<VecDeque<String>>>;

/// A started kubelet.
pub(super) struct Spawned {
    pub(super) pid: u32,
    /// The exit status, from the waiter thread.
    pub(super) exit: ExitReceiver,
    pub(super) lines: Lines,
}

/// Where a run learns how its kubelet exited (from the waiter thread).
pub(super) type ExitReceiver = oneshot::Receiver<io::Result<ExitStatus>>;

struct SpawnRequest {
    program: PathBuf,
    args: Vec<String>,
    reply: oneshot::Sender<io::Result<Spawned>>,
}

/// The long-lived thread that forks kubelet (see the module docs for why one thread).
pub(super) struct Spawner {
    requests: std_mpsc::Sender<SpawnRequest>,
}

impl Spawner {
    pub(super) fn start(host: Arc<dyn Host>) -> Result<Spawner, SupervisorError> {
        let (requests, rx) = std_mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("kubelet-spawner".into())
            .spawn(move || {
                // Ends when the supervisor drops its sender; any kubelet still running then
                // gets SIGKILL from PR_SET_PDEATHSIG.
                while let Ok(req) = rx.recv() {
                    let _ = req
                        .reply
                        .send(spawn_kubelet(&host, &req.program, &req.args));
                }
            })
            .map_err(SupervisorError::Thread)?;
        Ok(Spawner { requests })
    }

    /// Forks kubelet on the spawner thread and starts watching it.
    pub(super) async fn spawn(&self, program: &Path, args: &[String]) -> io::Result<Spawned> {
        let (reply, rx) = oneshot::channel();
        let req = SpawnRequest {
            program: program.to_owned(),
            args: args.to_vec(),
            reply,
        };
        let gone = || io::Error::other("the kubelet spawner thread is gone");
        self.requests.send(req).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

/// Forks kubelet on the calling (spawner) thread, then starts its reader and waiter threads.
fn spawn_kubelet(host: &Arc<dyn Host>, program: &Path, args: &[String]) -> io::Result<Spawned> {
    let spec = ChildSpec {
        program: program.to_owned(),
        args: args.to_vec(),
        env_remove: variables_kept_from_kubelet(),
    };
    let child = host.spawn(&spec)?;
    let pid = child.id();
    watch_child(host, child).inspect(|_| tracing::debug!(pid, "kubelet forked"))
}

/// What kubelet must not inherit: systemd's notification variables (they describe our unit,
/// and kubelet speaks the protocol too) and every `KAAS_JOIN_*` variable (the bootstrap token
/// among them: kubelet, and the credential providers and exec plugins it starts, never see it).
fn variables_kept_from_kubelet() -> Vec<String> {
    let mut names: Vec<String> = crate::node::notify::VARIABLES
        .iter()
        .map(|v| (*v).to_owned())
        .collect();
    names.extend(
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("KAAS_JOIN_")),
    );
    names
}

/// Starts the reader threads and the waiter thread of a kubelet just forked. If a thread cannot
/// be started, kubelet is killed: it must not run unwatched.
fn watch_child(host: &Arc<dyn Host>, mut child: Child) -> io::Result<Spawned> {
    let pid = child.id();
    let lines: Lines = Arc::new(Mutex::new(VecDeque::with_capacity(LAST_LINES)));
    let (done_tx, done_rx) = std_mpsc::channel::<()>();
    let mut readers = 0;
    let mut started = Ok(());
    if let Some(out) = child.stdout.take() {
        started = start_reader(out, "stdout", &lines, done_tx.clone());
        readers += 1;
    }
    if let Some(err) = child.stderr.take().filter(|_| started.is_ok()) {
        started = start_reader(err, "stderr", &lines, done_tx.clone());
        readers += 1;
    }
    drop(done_tx);
    if let Err(e) = started {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let (exit_tx, exit) = oneshot::channel();
    let waiter = std::thread::Builder::new()
        .name("kubelet-waiter".into())
        .spawn(move || {
            let status = loop {
                match child.wait() {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            // Let the readers drain what the pipes still hold, within a bound.
            let deadline = std::time::Instant::now() + DRAIN_WAIT;
            for _ in 0..readers {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if done_rx.recv_timeout(left).is_err() {
                    break;
                }
            }
            let _ = exit_tx.send(status);
        });
    if let Err(e) = waiter {
        // The Child went down with the closure, unreaped: its pid is still ours to signal.
        signal_group(host.as_ref(), pid, Signal::SIGKILL);
        return Err(e);
    }
    Ok(Spawned { pid, exit, lines })
}

fn start_reader(
    stream: impl Read + Send + 'static,
    name: &'static str,
    lines: &Lines,
    done: std_mpsc::Sender<()>,
) -> io::Result<()> {
    let lines = lines.clone();
    std::thread::Builder::new()
        .name(format!("kubelet-{name}"))
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            // Ends at end of file (kubelet and everything holding the pipe exited) or an error.
            while let Ok(Some(truncated)) = read_capped_line(&mut reader, &mut buf, MAX_LINE) {
                let mut line = String::from_utf8_lossy(&buf).into_owned();
                if truncated {
                    line.push_str(" [line cut]");
                }
                tracing::info!(target: "kubelet", stream = name, "{line}");
                let mut ring = lines.lock().unwrap_or_else(|e| e.into_inner());
                if ring.len() == LAST_LINES {
                    ring.pop_front();
                }
                ring.push_back(line);
            }
            let _ = done.send(());
        })?;
    Ok(())
}

/// Reads one line into `out` (without its end of line), keeping at most `cap` bytes and
/// discarding the rest of the line. `Ok(None)` at end of input; `Ok(Some(cut))` otherwise.
fn read_capped_line<R: BufRead>(
    reader: &mut R,
    out: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Option<bool>> {
    out.clear();
    let mut any = false;
    let mut cut = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any.then_some(cut));
        }
        any = true;
        let (chunk, used, end) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (
                available[..i]
                    .strip_suffix(b"\r")
                    .unwrap_or(&available[..i]),
                i + 1,
                true,
            ),
            None => (available, available.len(), false),
        };
        let room = cap.saturating_sub(out.len());
        cut |= chunk.len() > room;
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        if end {
            if out.last() == Some(&b'\r') {
                out.pop();
            }
            return Ok(Some(cut));
        }
    }
}

/// Sends `signal` to kubelet's process group (its pgid is its pid). A group already gone is fine.
pub(super) fn signal_group(host: &dyn Host, pid: u32, signal: Signal) {
    if let Err(e) = host.signal(pid, true, signal) {
        tracing::debug!(pid, %signal, error = %e, "cannot signal kubelet's process group");
    }
}

/// Kills kubelet's group when a run is abandoned without seeing its exit (the supervise future
/// dropped): kubelet must not outlive its supervision.
pub(super) struct KillOnDrop {
    pub(super) host: Arc<dyn Host>,
    pub(super) pid: u32,
    /// Cleared once the run has seen kubelet's exit (or knows it is stopped).
    pub(super) armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.host.as_ref(), self.pid, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn capped_lines() {
        let mut r = Cursor::new(b"short\r\nxxxxxxxxxxxx\nlast".to_vec());
        let mut buf = Vec::new();
        assert_eq!(read_capped_line(&mut r, &mut buf, 5).unwrap(), Some(false));
        assert_eq!(buf, b"short");
        assert_eq!(read_capped_line(&mut r, &mut buf, 5).unwrap(), Some(true));
        assert_eq!(buf, b"xxxxx");
        assert_eq!(read_capped_line(&mut r, &mut buf, 5).unwrap(), Some(false));
        assert_eq!(buf, b"last");
        assert_eq!(read_capped_line(&mut r, &mut buf, 5).unwrap(), None);
    }
}
