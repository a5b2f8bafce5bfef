//! [`LinuxHost`]: the [`Host`] of the machine kaas-join runs on. `/proc` is parsed here and
//! nowhere else.

use std::io::{self, Read as _};
use std::net::{IpAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::{ChildSpec, CommandOutput, DiskSpace, Host, Memory, PortState, ProcessInfo, Signal};

/// At most this much of a command's output is kept.
const MAX_OUTPUT: u64 = 64 * 1024;
/// How often a running command is looked at while waiting for it.
const RUN_POLL: Duration = Duration::from_millis(10);

/// The real machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxHost;

impl Host for LinuxHost {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn hostname(&self) -> io::Result<String> {
        hostname_from(
            Path::new("/proc/sys/kernel/hostname"),
            Path::new("/etc/hostname"),
        )
    }

    fn effective_uid(&self) -> Option<u32> {
        Some(nix::unistd::geteuid().as_raw())
    }

    fn is_machine_root(&self, root: &Path) -> bool {
        std::fs::canonicalize(root).is_ok_and(|r| r == Path::new("/"))
    }

    fn systemd_running(&self) -> bool {
        Path::new("/run/systemd/system").is_dir()
    }

    fn process(&self, pid: u32) -> Option<ProcessInfo> {
        let dir = Path::new("/proc").join(pid.to_string());
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        let (state, parent, process_group) = parse_stat(&stat)?;
        let name = std::fs::read_to_string(dir.join("comm"))
            .map(|c| c.trim_end_matches('\n').to_owned())
            .unwrap_or_default();
        let argv = std::fs::read(dir.join("cmdline"))
            .map(|c| parse_cmdline(&c))
            .unwrap_or_default();
        Some(ProcessInfo {
            pid,
            state,
            parent,
            process_group,
            name,
            argv,
        })
    }

    fn pids(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect()
    }

    fn signal(&self, pid: u32, group: bool, signal: Signal) -> io::Result<()> {
        let raw = i32::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let pid = nix::unistd::Pid::from_raw(raw);
        let sent = if group {
            nix::sys::signal::killpg(pid, signal)
        } else {
            nix::sys::signal::kill(pid, signal)
        };
        sent.map_err(io::Error::from)
    }

    fn spawn(&self, spec: &ChildSpec) -> io::Result<Child> {
        let parent = nix::unistd::Pid::this();
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for var in &spec.env_remove {
            cmd.env_remove(var);
        }
        #[allow(unsafe_code)]
        // SAFETY: the hook runs in the forked child before exec, where only async-signal-safe
        // calls are allowed. It makes two system calls, prctl(PR_SET_PDEATHSIG) and getppid(),
        // and builds its error with io::Error::from(Errno): no allocation, no lock, nothing
        // shared with other threads of the parent. The getppid check closes the race where
        // kaas-join died between fork and prctl (the signal would then never come).
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                if nix::unistd::getppid() != parent {
                    return Err(io::Error::from(nix::errno::Errno::ESRCH));
                }
                Ok(())
            });
        }
        cmd.spawn()
    }

    fn run(&self, program: &Path, args: &[&str], timeout: Duration) -> io::Result<CommandOutput> {
        run_bounded(program, args, timeout)
    }

    fn systemctl(&self, args: &[&str]) -> io::Result<CommandOutput> {
        let mut all = vec!["--no-pager", "--no-ask-password"];
        all.extend_from_slice(args);
        run_bounded(Path::new("systemctl"), &all, Duration::from_secs(90))
    }

    fn disk_space(&self, dir: &Path) -> io::Result<DiskSpace> {
        let mut existing = dir;
        while !existing.exists() {
            existing = existing.parent().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} does not exist", dir.display()),
                )
            })?;
        }
        let real = std::fs::canonicalize(existing)?;
        let disks = sysinfo::Disks::new_with_refreshed_list();
        let disk = disks
            .list()
            .iter()
            .filter(|d| real.starts_with(d.mount_point()))
            .max_by_key(|d| d.mount_point().as_os_str().len())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no mounted filesystem found for {}", real.display()),
                )
            })?;
        Ok(DiskSpace {
            mount_point: disk.mount_point().display().to_string(),
            available: disk.available_space(),
            total: disk.total_space(),
        })
    }

    fn memory(&self) -> io::Result<Memory> {
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        let total = sys.total_memory();
        if total == 0 {
            return Err(io::Error::other("the total memory reads as 0"));
        }
        Ok(Memory {
            available: sys.available_memory(),
            total,
        })
    }

    fn port(&self, ip: IpAddr, port: u16) -> PortState {
        match TcpListener::bind((ip, port)) {
            Ok(_) => PortState::Free,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => PortState::InUse,
            Err(e) => PortState::Unusable(e.to_string()),
        }
    }

    fn cri_unary(&self, socket: &Path, method: &str, request: &[u8]) -> io::Result<Vec<u8>> {
        super::runtime::cri::unary(socket, method, request)
    }
}

/// `/proc/<pid>/stat` is `pid (comm) S ppid pgrp ...`; comm may hold spaces and parentheses, so
/// the fields are those after the last `)`. Returns the state, the parent and the group.
fn parse_stat(stat: &str) -> Option<(char, u32, u32)> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some((state, parent, group))
}

/// `/proc/<pid>/cmdline`: NUL-separated arguments.
fn parse_cmdline(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The hostname from `primary` (`/proc/sys/kernel/hostname`), else `fallback` (`/etc/hostname`).
pub(crate) fn hostname_from(primary: &Path, fallback: &Path) -> io::Result<String> {
    let first_line = |text: String| {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
    };
    if let Some(name) = std::fs::read_to_string(primary).ok().and_then(first_line) {
        return Ok(name);
    }
    match std::fs::read_to_string(fallback) {
        Ok(text) => first_line(text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "no hostname in {} or {}",
                    primary.display(),
                    fallback.display()
                ),
            )
        }),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!(
                "cannot read the hostname from {} or {}: {e}",
                primary.display(),
                fallback.display()
            ),
        )),
    }
}

/// Runs a command to its end, killing it after `timeout`; output capped at [`MAX_OUTPUT`].
fn run_bounded(program: &Path, args: &[&str], timeout: Duration) -> io::Result<CommandOutput> {
    let spawn = || {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    // ETXTBSY: a binary written a moment ago may still be open in a child another thread forked
    // (installers, tests); it goes away by itself.
    const ETXTBSY: i32 = 26;
    let mut child = spawn();
    for _ in 0..5 {
        match &child {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
                child = spawn();
            }
            _ => break,
        }
    }
    let mut child = child?;
    // Readers on their own threads: a chatty command must not block on a full pipe.
    let read = |stream: Option<Box<dyn io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(s) = stream {
                let _ = s.take(MAX_OUTPUT).read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn io::Read + Send>),
    );
    let stderr = read(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn io::Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {}s (killed)", timeout.as_secs()),
            ));
        }
        std::thread::sleep(RUN_POLL);
    };
    Ok(CommandOutput {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_follow_the_last_parenthesis() {
        assert_eq!(
            parse_stat("42 (kube let) (x) S 1 42 42 0"),
            Some(('S', 1, 42))
        );
        assert_eq!(parse_stat("7 (a) Z 3 7"), Some(('Z', 3, 7)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn cmdline_is_nul_separated() {
        assert_eq!(
            parse_cmdline(b"kaas-join\0run\0--root\0/x\0"),
            ["kaas-join", "run", "--root", "/x"]
        );
    }

    #[test]
    fn this_process_is_seen_as_it_is() {
        let me = LinuxHost.process(std::process::id()).unwrap();
        assert!(me.is_live());
        assert_eq!(me.parent, nix::unistd::getppid().as_raw() as u32);
        assert!(!me.argv.is_empty());
        assert!(LinuxHost.pids().contains(&std::process::id()));
    }

    #[test]
    fn commands_end_or_are_killed() {
        let out = LinuxHost
            .run(
                Path::new("sh"),
                &["-c", "echo out; echo err >&2; exit 3"],
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        let slow = LinuxHost.run(Path::new("sleep"), &["5"], Duration::from_millis(100));
        assert_eq!(slow.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn hostname_prefers_proc_then_etc() {
        let dir = tempfile::tempdir().unwrap();
        let proc_ = dir.path().join("proc");
        let etc = dir.path().join("etc");
        std::fs::write(&etc, "# comment\n\n  from-etc \n").unwrap();
        assert_eq!(hostname_from(&proc_, &etc).unwrap(), "from-etc");
        std::fs::write(&proc_, "From-Proc\n").unwrap();
        assert_eq!(hostname_from(&proc_, &etc).unwrap(), "From-Proc");
        std::fs::remove_file(&etc).unwrap();
        std::fs::write(&proc_, "\n").unwrap();
        assert!(hostname_from(&proc_, &etc).is_err());
    }

    #[test]
    fn a_machine_has_memory_and_a_disk() {
        assert!(LinuxHost.memory().unwrap().total > 0);
        assert!(
            LinuxHost
                .disk_space(Path::new("/tmp/does/not/exist"))
                .unwrap()
                .total
                > 0
        );
        assert!(LinuxHost.is_machine_root(Path::new("/")));
        assert!(!LinuxHost.is_machine_root(Path::new("/tmp")));
    }
}
