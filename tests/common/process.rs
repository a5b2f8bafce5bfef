//! The one way tests and benches start the `kaas-join` binary (or another program in its place,
//! such as a bench's release build or `/usr/bin/time` around it): an [`Invocation`] is the
//! arguments, added environment and standard input; it runs to completion with its output
//! captured and a time cap ([`Invocation::run`]), or starts as a daemon logging to a file
//! ([`Invocation::spawn`]). Either way the child starts with our variables cleaned out
//! ([`CLEANED_ENV`] and every `WATCHDOG_*`) unless the invocation sets them.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::wait::Wait;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kaas-join");

/// Variables of ours (and of systemd's and kubectl's) that would change what the binary does; a
/// child never inherits them from the test's environment. Every `WATCHDOG_*` goes too.
pub const CLEANED_ENV: [&str; 4] = ["KAAS_JOIN_TOKEN", "RUST_LOG", "NOTIFY_SOCKET", "KUBECONFIG"];

/// How long [`Invocation::run`] lets a process run before it kills it and fails the test.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished process printed.
#[derive(Debug)]
pub struct Run {
    /// -1 when killed by a signal.
    pub code: i32,
    /// How it ended (the signal, when there was one).
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Its stdout as JSON (`--output json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }

    /// stdout, then stderr.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// One start of a program: what it runs, its arguments, the environment added to the cleaned
/// one, its standard input and how long it may run.
#[derive(Debug, Clone)]
pub struct Invocation {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl Invocation {
    /// The binary under test with `args`.
    pub fn new<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Invocation {
        Invocation::of(BIN, args)
    }

    /// `program` (a bench's release build, a wrapper) with `args`, the same way.
    pub fn of<S: AsRef<OsStr>>(
        program: impl AsRef<Path>,
        args: impl IntoIterator<Item = S>,
    ) -> Invocation {
        Invocation {
            program: program.as_ref().to_owned(),
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            env: Vec::new(),
            stdin: None,
            timeout: RUN_TIMEOUT,
        }
    }

    /// Adds `args` at the end.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Invocation {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Puts `args` before the ones it has (a command line whose tail was chosen first).
    pub fn prepend_args<S: AsRef<OsStr>>(
        mut self,
        args: impl IntoIterator<Item = S>,
    ) -> Invocation {
        let tail = std::mem::take(&mut self.args);
        self.args = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self.args.extend(tail);
        self
    }

    /// Sets `key` (even one of [`CLEANED_ENV`]) to `value`.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Invocation {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Sets each of `vars`.
    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Invocation {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Writes `input` to its standard input (else it has none).
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Invocation {
        self.stdin = Some(input.into());
        self
    }

    /// Lets [`Invocation::run`] take up to `timeout` instead of [`RUN_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Invocation {
        self.timeout = timeout;
        self
    }

    /// The arguments, as given.
    pub fn arg_list(&self) -> &[OsString] {
        &self.args
    }

    /// The command with the cleaned environment and the invocation's own; no standard streams
    /// set yet.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for key in CLEANED_ENV {
            cmd.env_remove(key);
        }
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("WATCHDOG_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts it with stdout and stderr piped and drained on threads as they come (a `-vvv`
    /// run writes far more than a pipe holds), and its stdin written if it has one.
    pub fn start(&self) -> Running {
        let mut child = self
            .command()
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", self.program.display()));
        if let Some(input) = self.stdin.clone() {
            let mut stdin = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                // The program may exit (or stop reading at a limit) first: a broken pipe is not
                // our failure.
                let _ = stdin.write_all(&input);
            });
        }
        Running {
            stdout: Some(Drain::new(child.stdout.take().unwrap())),
            stderr: Some(Drain::new(child.stderr.take().unwrap())),
            child,
            args: self.args.clone(),
        }
    }

    /// Runs it to completion on this thread ([`Invocation::start`], then
    /// [`Running::finish`]): killed and the test failed after its timeout.
    pub fn run(&self) -> Run {
        self.start().finish(self.timeout)
    }

    /// [`Invocation::run`] from async tests, off the runtime's worker threads (so a sandbox in
    /// this process keeps serving).
    pub async fn run_async(self) -> Run {
        tokio::task::spawn_blocking(move || self.run())
            .await
            .expect("the runner thread does not panic")
    }

    /// Starts it as a daemon: no stdin, no stdout, stderr (its log) appended to `log`.
    pub fn spawn(&self, log: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
        self.spawn_with(Stdio::null(), log.into())
    }

    /// Starts it as a daemon with no standard streams at all.
    pub fn spawn_quiet(&self) -> Child {
        self.spawn_with(Stdio::null(), Stdio::null())
    }

    /// Starts it with `stdout` and `stderr` as given (no stdin).
    pub fn spawn_with(&self, stdout: Stdio, stderr: Stdio) -> Child {
        self.command()
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", self.program.display()))
    }
}

/// A pipe read to its end on a thread, into a buffer readable meanwhile.
pub struct Drain {
    text: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drain {
    pub fn new(mut pipe: impl std::io::Read + Send + 'static) -> Drain {
        let text = Arc::new(Mutex::new(Vec::new()));
        let shared = text.clone();
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => shared.lock().unwrap().extend_from_slice(&chunk[..n]),
                }
            }
        });
        Drain {
            text,
            reader: Some(reader),
        }
    }

    /// What has come so far.
    pub fn so_far(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }

    /// All of it, once the pipe is closed.
    pub fn finish(mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.so_far()
    }
}

/// A started process with its output drained ([`Invocation::start`]); killed when dropped.
pub struct Running {
    pub child: Child,
    stdout: Option<Drain>,
    stderr: Option<Drain>,
    args: Vec<OsString>,
}

impl Running {
    /// What it has written to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr.as_ref().map(Drain::so_far).unwrap_or_default()
    }

    /// What it has written to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        self.stdout.as_ref().map(Drain::so_far).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// Waits (on this thread, at most `within`) for it to exit, then collects its output; kills
    /// it and fails the test, with its stderr so far, when it does not exit in time.
    pub fn finish(self, within: Duration) -> Run {
        self.try_finish(within)
            .unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`Running::finish`], saying why instead of panicking (for benches that report it).
    pub fn try_finish(mut self, within: Duration) -> Result<Run, String> {
        let started = Instant::now();
        let status = Wait::new(format!("{:?} to exit", self.args), within)
            .every(Duration::from_millis(2))
            .poll_blocking(|| self.child.try_wait().expect("try_wait"));
        match status {
            Ok(status) => Ok(self.collect(status)),
            Err(timed_out) => {
                kill(&mut self.child);
                Err(format!(
                    "{timed_out} (killed after {:?})\nstderr:\n{}",
                    started.elapsed(),
                    self.stderr_so_far()
                ))
            }
        }
    }

    /// [`Running::finish`] from async tests: waits on tokio time, so the runtime keeps serving.
    pub async fn finish_async(mut self, within: Duration) -> Run {
        let status = Wait::new(format!("{:?} to exit", self.args), within)
            .poll(|| self.child.try_wait().expect("try_wait"))
            .await
            .unwrap_or_else(|timed_out| {
                kill(&mut self.child);
                panic!("{timed_out} (killed)\nstderr:\n{}", self.stderr_so_far());
            });
        self.collect(status)
    }

    fn collect(mut self, status: std::process::ExitStatus) -> Run {
        Run {
            code: status.code().unwrap_or(-1),
            status,
            stdout: self.stdout.take().map(Drain::finish).unwrap_or_default(),
            stderr: self.stderr.take().map(Drain::finish).unwrap_or_default(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A running daemon (see [`Invocation::spawn`]), killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub log_file: PathBuf,
}

impl Daemon {
    /// Starts `invocation` as a daemon logging to `log_file`.
    pub fn start(invocation: &Invocation, log_file: impl Into<PathBuf>) -> Daemon {
        let log_file = log_file.into();
        Daemon {
            child: invocation.spawn(&log_file),
            log_file,
        }
    }

    /// What it has logged so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Kills `child` (if it still runs) and reaps it.
pub fn kill(child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
}
