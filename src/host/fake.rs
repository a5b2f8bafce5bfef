//! [`FakeHost`]: a [`Host`] that answers from what a test set up and records what was asked of
//! it, so a test can assert what would have been done to a machine (signals sent, units
//! stopped, children started) without root and without touching this one.
//!
//! Processes obey: SIGTERM, SIGINT and SIGKILL remove a process from the table unless the test
//! made it [`stubborn`](FakeHost::stubborn). Defaults: root user, no systemd, no machine root,
//! every port free, every CRI method unimplemented, `systemctl` answers success with no
//! output, `spawn` fails (NotFound) unless a stand-in program is set.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{ChildSpec, CommandOutput, DiskSpace, Host, Memory, PortState, ProcessInfo, Signal};

/// Something a [`FakeHost`] was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Signal {
        pid: u32,
        group: bool,
        signal: Signal,
    },
    Spawn(ChildSpec),
    Run {
        program: PathBuf,
        args: Vec<String>,
    },
    Systemctl(Vec<String>),
    /// A CRI call to the runtime's socket.
    Cri {
        socket: PathBuf,
        method: String,
    },
}

#[derive(Debug)]
struct State {
    now: SystemTime,
    hostname: Option<String>,
    uid: Option<u32>,
    machine_root: Option<PathBuf>,
    systemd: bool,
    processes: BTreeMap<u32, ProcessInfo>,
    stubborn: BTreeSet<u32>,
    systemctl: Vec<(Vec<String>, CommandOutput)>,
    run: BTreeMap<PathBuf, Result<CommandOutput, String>>,
    stand_in: Option<PathBuf>,
    disk: Result<DiskSpace, String>,
    memory: Result<Memory, String>,
    ports: BTreeMap<(IpAddr, u16), PortState>,
    cri: BTreeMap<String, Result<Vec<u8>, String>>,
    calls: Vec<Call>,
}

/// A scripted, recording [`Host`] (see the module docs).
#[derive(Debug)]
pub struct FakeHost {
    state: Mutex<State>,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost::new()
    }
}

impl FakeHost {
    pub fn new() -> FakeHost {
        FakeHost {
            state: Mutex::new(State {
                now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                hostname: Some("fake-node".into()),
                uid: Some(0),
                machine_root: None,
                systemd: false,
                processes: BTreeMap::new(),
                stubborn: BTreeSet::new(),
                systemctl: Vec::new(),
                run: BTreeMap::new(),
                stand_in: None,
                disk: Ok(DiskSpace {
                    mount_point: "/".into(),
                    available: 50 << 30,
                    total: 100 << 30,
                }),
                memory: Ok(Memory {
                    available: 8 << 30,
                    total: 16 << 30,
                }),
                ports: BTreeMap::new(),
                cri: BTreeMap::new(),
                calls: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `root` stands for this machine's `/` (its processes, units and kernel files).
    pub fn with_machine_root(self, root: &Path) -> Self {
        self.lock().machine_root = Some(root.to_owned());
        self
    }

    /// systemd runs this machine.
    pub fn with_systemd(self) -> Self {
        self.lock().systemd = true;
        self
    }

    pub fn with_uid(self, uid: Option<u32>) -> Self {
        self.lock().uid = uid;
        self
    }

    pub fn with_hostname(self, name: Option<&str>) -> Self {
        self.lock().hostname = name.map(str::to_owned);
        self
    }

    pub fn with_disk(self, disk: Result<DiskSpace, String>) -> Self {
        self.lock().disk = disk;
        self
    }

    pub fn with_memory(self, memory: Result<Memory, String>) -> Self {
        self.lock().memory = memory;
        self
    }

    /// Children are started as `program` (a real stand-in, e.g. a script) with the same
    /// arguments; the spawn is recorded as asked.
    pub fn with_stand_in(self, program: &Path) -> Self {
        self.lock().stand_in = Some(program.to_owned());
        self
    }

    /// A running process.
    pub fn add_process(&self, pid: u32, name: &str, argv: &[&str]) {
        self.lock().processes.insert(
            pid,
            ProcessInfo {
                pid,
                state: 'S',
                parent: 1,
                process_group: pid,
                name: name.to_owned(),
                argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            },
        );
    }

    /// A process that ignores every signal.
    pub fn stubborn(&self, pid: u32) {
        self.lock().stubborn.insert(pid);
    }

    /// The process exits (as if it ended by itself).
    pub fn end_process(&self, pid: u32) {
        self.lock().processes.remove(&pid);
    }

    /// `systemctl` with exactly `args` answers `output` (the first match wins).
    pub fn answer_systemctl(&self, args: &[&str], output: CommandOutput) {
        let args = args.iter().map(|a| (*a).to_owned()).collect();
        self.lock().systemctl.push((args, output));
    }

    /// `run(program, ..)` answers this.
    pub fn answer_run(&self, program: &Path, output: Result<CommandOutput, String>) {
        self.lock().run.insert(program.to_owned(), output);
    }

    /// The CRI `method` (e.g. [`super::runtime::cri::STATUS`]) answers this protobuf message,
    /// on any socket (`Err`: fails with that message); other methods fail as unimplemented.
    pub fn answer_cri(&self, method: &str, answer: Result<Vec<u8>, String>) {
        self.lock().cri.insert(method.to_owned(), answer);
    }

    pub fn set_port(&self, ip: IpAddr, port: u16, state: PortState) {
        self.lock().ports.insert((ip, port), state);
    }

    pub fn set_now(&self, now: SystemTime) {
        self.lock().now = now;
    }

    /// Everything asked so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The `systemctl` command lines asked so far.
    pub fn systemctl_calls(&self) -> Vec<Vec<String>> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Systemctl(args) => Some(args),
                _ => None,
            })
            .collect()
    }

    /// The signals sent so far: (pid, group, signal).
    pub fn signals(&self) -> Vec<(u32, bool, Signal)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Signal { pid, group, signal } => Some((pid, group, signal)),
                _ => None,
            })
            .collect()
    }
}

impl Host for FakeHost {
    fn now(&self) -> SystemTime {
        self.lock().now
    }

    fn hostname(&self) -> io::Result<String> {
        self.lock()
            .hostname
            .clone()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no hostname (fake)"))
    }

    fn effective_uid(&self) -> Option<u32> {
        self.lock().uid
    }

    fn is_machine_root(&self, root: &Path) -> bool {
        self.lock().machine_root.as_deref() == Some(root)
    }

    fn systemd_running(&self) -> bool {
        self.lock().systemd
    }

    fn process(&self, pid: u32) -> Option<ProcessInfo> {
        self.lock().processes.get(&pid).cloned()
    }

    fn pids(&self) -> Vec<u32> {
        self.lock().processes.keys().copied().collect()
    }

    fn signal(&self, pid: u32, group: bool, signal: Signal) -> io::Result<()> {
        let mut s = self.lock();
        s.calls.push(Call::Signal { pid, group, signal });
        if !s.processes.contains_key(&pid) {
            return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
        }
        let ends = matches!(signal, Signal::SIGTERM | Signal::SIGINT | Signal::SIGKILL);
        if ends && !s.stubborn.contains(&pid) {
            s.processes.remove(&pid);
        }
        Ok(())
    }

    fn spawn(&self, spec: &ChildSpec) -> io::Result<Child> {
        let stand_in = {
            let mut s = self.lock();
            s.calls.push(Call::Spawn(spec.clone()));
            s.stand_in.clone()
        };
        let Some(program) = stand_in else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} (fake host: no stand-in)", spec.program.display()),
            ));
        };
        Command::new(program)
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }

    fn run(&self, program: &Path, args: &[&str], _timeout: Duration) -> io::Result<CommandOutput> {
        let mut s = self.lock();
        s.calls.push(Call::Run {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        });
        match s.run.get(program) {
            Some(Ok(out)) => Ok(out.clone()),
            Some(Err(e)) => Err(io::Error::other(e.clone())),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} (fake host)", program.display()),
            )),
        }
    }

    fn systemctl(&self, args: &[&str]) -> io::Result<CommandOutput> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let mut s = self.lock();
        s.calls.push(Call::Systemctl(args.clone()));
        Ok(s.systemctl
            .iter()
            .find(|(a, _)| *a == args)
            .map(|(_, out)| out.clone())
            .unwrap_or(CommandOutput {
                code: Some(0),
                ..CommandOutput::default()
            }))
    }

    fn disk_space(&self, _dir: &Path) -> io::Result<DiskSpace> {
        self.lock().disk.clone().map_err(io::Error::other)
    }

    fn memory(&self) -> io::Result<Memory> {
        self.lock().memory.clone().map_err(io::Error::other)
    }

    fn port(&self, ip: IpAddr, port: u16) -> PortState {
        self.lock()
            .ports
            .get(&(ip, port))
            .cloned()
            .unwrap_or(PortState::Free)
    }

    fn cri_unary(&self, socket: &Path, method: &str, _request: &[u8]) -> io::Result<Vec<u8>> {
        let mut state = self.lock();
        state.calls.push(Call::Cri {
            socket: socket.to_owned(),
            method: method.to_owned(),
        });
        match state.cri.get(method) {
            Some(answer) => answer.clone().map_err(io::Error::other),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the fake runtime does not implement {method}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_obey_signals_unless_stubborn_and_every_call_is_recorded() {
        let host = FakeHost::new();
        host.add_process(10, "kaas-join", &["kaas-join", "run"]);
        host.add_process(11, "kubelet", &["kubelet"]);
        host.stubborn(11);
        host.signal(10, false, Signal::SIGTERM).unwrap();
        host.signal(11, true, Signal::SIGKILL).unwrap();
        assert!(host.process(10).is_none());
        assert!(host.process(11).is_some());
        assert!(host.signal(12, false, Signal::SIGTERM).is_err());
        assert_eq!(
            host.signals(),
            [
                (10, false, Signal::SIGTERM),
                (11, true, Signal::SIGKILL),
                (12, false, Signal::SIGTERM)
            ]
        );
    }

    #[test]
    fn systemctl_answers_from_the_script() {
        let host = FakeHost::new();
        host.answer_systemctl(
            &["is-active", "x"],
            CommandOutput {
                code: Some(3),
                stdout: "inactive\n".into(),
                stderr: String::new(),
            },
        );
        assert_eq!(host.systemctl(&["is-active", "x"]).unwrap().code, Some(3));
        assert!(host.systemctl(&["stop", "x"]).unwrap().success());
        assert_eq!(host.systemctl_calls().len(), 2);
    }
}
