//! `kaas-join run` end to end: the real binary joins against the in-process sandbox control
//! plane, supervises the stand-in kubelet (`fake-kubelet`, a binary of kaas-sandbox) and reports
//! the node's health as the node itself; `kaas-join status` reads what it left behind.
//!
//! Each test has its own sandbox, temporary `--root`, kubelet healthz port (set through the
//! config file's `kubelet: {healthzPort: N}`, so tests never collide on 10248), fake container
//! runtime socket under the root, and a `NOTIFY_SOCKET` datagram socket standing in for systemd
//! (with `WATCHDOG_USEC` and no `WATCHDOG_PID`, which `notify.rs` takes as "the watchdog is
//! ours"). The fake kubelet registers no Node, so the tests create it (`Sandbox::add_node`) once
//! the join is done, as kubelet's registration would. Loopback only; every wait is bounded and
//! every process is killed when its test ends, passes or not.
//!
//! Timing: the supervisor probes healthz at once after a start, then every 10 s (not settable
//! from the command line). The fake kubelet usually binds its port a few milliseconds after that
//! first probe, so "Running" can take up to ~10 s after each start: the waits for it allow 20 s.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::alive;
use common::machine::CRI;
use common::process::Running;
use common::{Invocation, Wait};
use kaas_join::host::paths::Paths;
use kaas_join::node::run_status::RUN_STATUS_FILE;
use kaas_sandbox::{Sandbox, SandboxConfig};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const NODE: &str = "run-node-1";
/// Joining against the sandbox takes well under a second; this is the bound.
const JOIN_WAIT: Duration = Duration::from_secs(20);
/// A (re)start of kubelet until it is Running: see the module docs.
const RUNNING_WAIT: Duration = Duration::from_secs(20);
/// From a change of kubelet to the Node's condition (200 ms coalescing + one PATCH).
const REPORT_WAIT: Duration = Duration::from_secs(3);
/// `status` reads local files only.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// A machine: root, token, config, runtime socket, systemd's notify socket
// ---------------------------------------------------------------------------------------------

/// A [`common::machine::Machine`] for this node whose token and config files are written only
/// by [`Machine::write_files`], with containerd's configuration and systemd's notify socket.
struct Machine {
    node: common::machine::Machine,
    notify_path: PathBuf,
    /// Every datagram received on the notify socket, in order.
    notifications: Arc<Mutex<Vec<String>>>,
}

impl std::ops::Deref for Machine {
    type Target = common::machine::Machine;

    fn deref(&self) -> &Self::Target {
        &self.node
    }
}

impl Machine {
    /// Mints a token on `sb`; writes nothing the run reads yet (see
    /// [`common::machine::Machine::write_files`]).
    fn new(sb: &Sandbox) -> Machine {
        let node = common::machine::Machine::builder(sb, NODE)
            .files_later()
            .build();
        // containerd's configuration, agreeing with the config file's cgroupDriver (preflight
        // compares them; without it containerd's default is cgroupfs).
        let containerd_config = node.root.join("etc/containerd/config.toml");
        std::fs::create_dir_all(containerd_config.parent().unwrap()).unwrap();
        std::fs::write(
            &containerd_config,
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n",
        )
        .unwrap();

        let notify_path = node.dir().join("notify.sock");
        let socket = UnixDatagram::bind(&notify_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let notifications = Arc::new(Mutex::new(Vec::new()));
        let received = notifications.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Until the machine is dropped (then only this thread holds the list).
            while Arc::strong_count(&received) > 1 {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    received.lock().unwrap().push(text);
                }
            }
        });

        Machine {
            node,
            notify_path,
            notifications,
        }
    }

    /// Starts `kaas-join run` with `kubelet` as the kubelet binary.
    fn spawn(&self, kubelet: &Path, extra: &[&str]) -> Daemon {
        let kubelet = kubelet.display().to_string();
        let config_file = self.config_file.display().to_string();
        let root = self.root.display().to_string();
        let process = Invocation::new([
            "run",
            "--config",
            &config_file,
            "--root",
            &root,
            "--kubelet",
            &kubelet,
            "--heartbeat",
            "2s",
            "-v",
        ])
        .args(self.metrics_args())
        .args(extra)
        .envs(self.fake_kubelet_env())
        .env("NOTIFY_SOCKET", &self.notify_path)
        .env("WATCHDOG_USEC", "2000000")
        .start();
        Daemon {
            process,
            root: self.root.clone(),
            notifications: self.notifications.clone(),
        }
    }

    /// `kaas-join status --root <root> --output json`: exit code and report.
    fn status(&self) -> (i32, Value) {
        let root = self.root.display().to_string();
        let run = Invocation::new(["status", "--root", &root, "--output", "json"])
            .timeout(STATUS_TIMEOUT)
            .run();
        assert_ne!(run.code, -1, "status exits by itself: {run:#?}");
        let report = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!(
                "status printed no JSON ({e}): {}\nstderr: {}",
                run.stdout, run.stderr
            )
        });
        (run.code, report)
    }

    fn notified(&self) -> Vec<String> {
        self.notifications.lock().unwrap().clone()
    }
}

/// A running `kaas-join run`; killed (and with it its kubelet, by PDEATHSIG) when dropped.
struct Daemon {
    process: Running,
    root: PathBuf,
    notifications: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.process.pid() as i32)
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal kaas-join");
    }

    /// The run-status file, when it exists and parses.
    fn run_status(&self) -> Option<Value> {
        let bytes = std::fs::read(Paths::new(&self.root).host(RUN_STATUS_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn kubelet_phase(&self) -> Option<String> {
        Some(self.run_status()?["kubelet"]["phase"].as_str()?.to_owned())
    }

    fn kubelet_pid(&self) -> Option<i32> {
        self.run_status()?["kubelet"]["pid"]
            .as_i64()
            .map(|p| p as i32)
    }

    /// What went wrong, for failure messages: the daemon's log, notifications, run status.
    fn diagnostics(&self) -> String {
        format!(
            "log:\n{}\nnotifications: {:#?}\nrun status: {:#}\n",
            self.process.stderr_so_far(),
            self.notifications.lock().unwrap(),
            self.run_status().unwrap_or(Value::Null),
        )
    }

    /// Polls `f` every 50 ms until it gives a value, failing with `what` after `timeout` or
    /// when the daemon exits.
    async fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&mut Daemon) -> Option<T>,
    ) -> T {
        let found = Wait::new(what, timeout)
            .every(Duration::from_millis(50))
            .poll(|| {
                if let Ok(Some(status)) = self.process.child.try_wait() {
                    panic!(
                        "kaas-join exited ({status}) while waiting for {what}\n{}",
                        self.diagnostics()
                    );
                }
                f(self)
            })
            .await;
        found.unwrap_or_else(|timed_out| panic!("{timed_out}\n{}", self.diagnostics()))
    }

    /// Waits for kubelet to be Running with a pid other than `not`; its pid.
    async fn wait_running(&mut self, not: Option<i32>) -> i32 {
        self.wait_for("kubelet Running", RUNNING_WAIT, |d| {
            let pid = d.kubelet_pid()?;
            (d.kubelet_phase().as_deref() == Some("running") && Some(pid) != not).then_some(pid)
        })
        .await
    }

    /// SIGTERM, then waits (bounded) for the exit; the status, how long it took, and the log.
    async fn terminate(self) -> (ExitStatus, Duration, String) {
        let t = Instant::now();
        self.signal(Signal::SIGTERM);
        let run = self.process.finish_async(Duration::from_secs(10)).await;
        (run.status, t.elapsed(), run.stderr)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the Node and the Events
// ---------------------------------------------------------------------------------------------

/// (status, reason, message) of the Node's condition `type_`.
fn condition(sb: &Sandbox, type_: &str) -> Option<(String, String, String)> {
    let node = sb.node(NODE)?;
    let c = node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .clone();
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    Some((s("status"), s("reason"), s("message")))
}

fn event_reasons(sb: &Sandbox) -> Vec<String> {
    sb.events("default")
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

/// `/proc/<pid>/cmdline` as words (empty when the process is gone).
fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// utime + stime of `pid`, in clock ticks (USER_HZ, 100 per second on Linux).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state is field 3, utime 14, stime 15 (1-based in proc(5)).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Problems in a `status` report that come from this machine, not from the node under test
/// (a CI runner may well be low on disk or memory).
fn machine_problem(p: &str) -> bool {
    p.starts_with("LowDiskSpace") || p.starts_with("LowMemory")
}

/// Asserts `status` says healthy (exit 0), allowing only this machine's own disk/memory
/// conditions as problems (then exit 21).
fn assert_healthy(m: &Machine, context: &str) {
    let (code, report) = m.status();
    let problems: Vec<String> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    assert!(report["joined"] == true, "{context}: {report:#}");
    assert_eq!(report["daemon"]["running"], true, "{context}: {report:#}");
    if problems.iter().all(|p| machine_problem(p)) && !problems.is_empty() {
        eprintln!("note: this machine itself is low on resources: {problems:?}");
        assert_eq!(code, 21, "{context}: {report:#}");
    } else {
        assert_eq!(code, 0, "{context}: {report:#}");
        assert_eq!(report["healthy"], true, "{context}: {report:#}");
    }
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts")
}

/// Waits for the join, then registers the Node as kubelet would.
async fn joined_and_registered(m: &Machine, d: &mut Daemon, sb: &Sandbox) {
    d.wait_for("the join", JOIN_WAIT, |_| m.joined().then_some(()))
        .await;
    sb.add_node(NODE, true);
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_joins_supervises_and_reports() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    m.write_files();
    let t0 = Instant::now();
    let mut d = m.spawn(&common::fake_kubelet(), &[]);

    joined_and_registered(&m, &mut d, &sb).await;
    let joined_after = t0.elapsed();
    for f in [
        "etc/kubernetes/kubelet.conf",
        "etc/kubernetes/pki/ca.crt",
        "var/lib/kubelet/config.yaml",
        "var/lib/kubelet/kubeadm-flags.env",
        "var/lib/kubelet/pki/kubelet-client-current.pem",
    ] {
        assert!(m.root.join(f).exists(), "{f} not written");
    }
    let config_yaml = std::fs::read_to_string(m.root.join("var/lib/kubelet/config.yaml")).unwrap();
    assert!(
        config_yaml.contains(&format!("healthzPort: {}", m.healthz_port)),
        "{config_yaml}"
    );

    // kubelet runs with kubeadm's drop-in command line.
    let pid = d.wait_running(None).await;
    let running_after = t0.elapsed();
    let argv = cmdline(pid);
    assert_eq!(
        argv[0],
        common::fake_kubelet().display().to_string(),
        "{argv:?}"
    );
    let args = &argv[1..];
    assert_eq!(
        &args[..3],
        [
            "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--config=/var/lib/kubelet/config.yaml",
        ],
        "{argv:?}"
    );
    assert!(
        args.contains(&format!("--container-runtime-endpoint={CRI}")),
        "{argv:?}"
    );

    // systemd heard: the start extended, READY=1 once kubelet was healthy, STATUS= lines and
    // the watchdog (WATCHDOG_USEC=2 s → every second).
    d.wait_for("two WATCHDOG=1", Duration::from_secs(5), |_| {
        (m.notified().iter().filter(|n| *n == "WATCHDOG=1").count() >= 2).then_some(())
    })
    .await;
    let notified = m.notified();
    let ready = notified
        .iter()
        .position(|n| n == "READY=1")
        .unwrap_or_else(|| panic!("no READY=1: {notified:#?}"));
    assert!(
        notified[..ready]
            .iter()
            .any(|n| n.starts_with("STATUS=kubelet started (pid ")),
        "{notified:#?}"
    );
    assert!(
        notified[..ready]
            .iter()
            .any(|n| n.starts_with("EXTEND_TIMEOUT_USEC=")),
        "{notified:#?}"
    );
    assert!(
        notified
            .iter()
            .any(|n| n == &format!("STATUS=kubelet running (pid {pid}, 0 restarts)")),
        "{notified:#?}"
    );
    assert_eq!(
        notified.iter().filter(|n| *n == "READY=1").count(),
        1,
        "{notified:#?}"
    );

    // The Node has our conditions, and `status` says healthy.
    d.wait_for("KubeletUnhealthy False on the Node", JOIN_WAIT, |_| {
        condition(&sb, "KubeletUnhealthy")
            .filter(|(s, r, _)| s == "False" && r == "KubeletHealthy")
            .map(|_| ())
    })
    .await;
    let (runtime, _, _) = condition(&sb, "ContainerRuntimeUnreachable").unwrap();
    assert_eq!(
        runtime, "False",
        "the fake runtime socket is under the root"
    );
    assert_eq!(
        condition(&sb, "Ready").unwrap().0,
        "True",
        "kubelet's own condition is left alone"
    );
    assert_healthy(&m, "while running");
    let rs = d.run_status().unwrap();
    assert_eq!(rs["pid"], d.process.pid(), "{rs:#}");
    assert_eq!(rs["supervising"], true);
    assert_eq!(
        rs["activity"],
        format!("kubelet running (pid {pid}, 0 restarts)")
    );

    // kubelet dies: the Node says so within 3 s, an Event tells, and kubelet comes back.
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    let (_, reason, message) = d
        .wait_for("KubeletUnhealthy True on the Node", REPORT_WAIT, |_| {
            condition(&sb, "KubeletUnhealthy").filter(|(s, _, _)| s == "True")
        })
        .await;
    let reported_after = killed.elapsed();
    assert!(
        ["KubeletNotRunning", "KubeletRestarting"].contains(&reason.as_str()),
        "{reason}: {message}"
    );
    assert!(message.contains("SIGKILL"), "{message}");
    d.wait_for("a KubeletRestarted event", REPORT_WAIT, |_| {
        event_reasons(&sb)
            .iter()
            .any(|r| r == "KubeletRestarted")
            .then_some(())
    })
    .await;
    let pid2 = d.wait_running(Some(pid)).await;
    let back_after = killed.elapsed();
    assert_eq!(d.run_status().unwrap()["kubelet"]["restarts"], 1);
    d.wait_for("KubeletUnhealthy False again", REPORT_WAIT, |_| {
        condition(&sb, "KubeletUnhealthy")
            .filter(|(s, _, _)| s == "False")
            .map(|_| ())
    })
    .await;

    // SIGTERM: kubelet stopped gracefully, exit 0, the status file says stopped.
    let root = m.root.clone();
    let (status, took, log) = d.terminate().await;
    assert!(status.success(), "{status}\n{log}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let gone = Wait::new(
        format!("kubelet {pid2} to go with kaas-join"),
        Duration::from_secs(2),
    )
    .poll(|| !alive(pid2))
    .await;
    assert!(gone.is_ok(), "kubelet {pid2} survived kaas-join");
    let rs: Value =
        serde_json::from_slice(&std::fs::read(Paths::new(&root).host(RUN_STATUS_FILE)).unwrap())
            .unwrap();
    assert_eq!(rs["activity"], "stopped", "{rs:#}");
    assert_eq!(rs["kubelet"]["phase"], "stopped", "{rs:#}");
    assert_eq!(
        rs["kubelet"]["lastExit"]["description"], "exited with code 0 (stopped by kaas-join)",
        "{rs:#}"
    );
    assert!(m.notified().iter().any(|n| n == "STOPPING=1"));
    // Before exiting, it told the Node that kubelet is not running any more.
    let (s, reason, message) = condition(&sb, "KubeletUnhealthy").unwrap();
    assert_eq!(
        (s.as_str(), reason.as_str()),
        ("True", "KubeletNotRunning"),
        "{message}"
    );

    // `status` now: joined but the daemon is not running → 21.
    let (code, report) = m.status();
    assert_eq!(code, 21, "{report:#}");
    assert_eq!(report["daemon"]["running"], false, "{report:#}");
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("is not running")),
        "{report:#}"
    );
    eprintln!(
        "timings: joined {joined_after:?}, running {running_after:?}; after SIGKILL: \
         reported {reported_after:?}, running again {back_after:?}; stop took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_waits_for_its_config_then_joins() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    let mut d = m.spawn(&common::fake_kubelet(), &[]);

    d.wait_for(
        "STATUS=waiting for configuration",
        Duration::from_secs(5),
        |_| {
            m.notified()
                .iter()
                .any(|n| n.starts_with("STATUS=waiting for configuration: config file"))
                .then_some(())
        },
    )
    .await;
    let rs = d
        .wait_for("the run status", Duration::from_secs(5), |d| d.run_status())
        .await;
    assert!(
        rs["activity"]
            .as_str()
            .unwrap()
            .starts_with("waiting for configuration"),
        "{rs:#}"
    );
    assert!(
        m.notified()
            .iter()
            .any(|n| n.starts_with("EXTEND_TIMEOUT_USEC=")),
        "waiting extends systemd's start timeout"
    );
    let (code, report) = m.status();
    assert_eq!(code, 20, "{report:#}");
    assert_eq!(report["joined"], false);

    // It stays up (polling every 2 s), then joins soon after the files appear.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        d.process.child.try_wait().unwrap().is_none(),
        "it must not exit"
    );
    assert!(!m.joined());
    m.write_files();
    let written = Instant::now();
    d.wait_for("the join", Duration::from_secs(10), |_| {
        m.joined().then_some(())
    })
    .await;
    let join_after = written.elapsed();
    assert!(join_after < Duration::from_secs(5), "{join_after:?}");
    d.wait_for("kubelet started", Duration::from_secs(5), |d| {
        d.kubelet_pid()
    })
    .await;
    assert_eq!(sb.csrs().len(), 1);
    let (status, _, log) = d.terminate().await;
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("waiting for configuration"), "{log}");
    eprintln!("joined {join_after:?} after the config was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_restarts_kubelet_on_sighup_when_its_command_line_changed() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    m.write_files();
    let mut d = m.spawn(&common::fake_kubelet(), &[]);
    let pid = d.wait_running(None).await;
    assert!(!cmdline(pid).contains(&"--v=2".to_string()));

    // Nothing changed: SIGHUP keeps kubelet.
    d.signal(Signal::SIGHUP);
    d.wait_for("the SIGHUP handled", REPORT_WAIT, |d| {
        d.process
            .stderr_so_far()
            .contains("kubelet's command line and health check are unchanged")
            .then_some(())
    })
    .await;
    assert_eq!(d.kubelet_pid(), Some(pid), "unchanged config, same kubelet");
    assert!(alive(pid));

    // KUBELET_EXTRA_ARGS in the deb env file: SIGHUP restarts kubelet with it.
    let default = m.root.join("etc/default/kubelet");
    std::fs::create_dir_all(default.parent().unwrap()).unwrap();
    std::fs::write(&default, "KUBELET_EXTRA_ARGS=\"--v=2\"\n").unwrap();
    d.signal(Signal::SIGHUP);
    let t = Instant::now();
    let pid2 = d
        .wait_for("a new kubelet", Duration::from_secs(10), |d| {
            d.kubelet_pid().filter(|&p| p != pid)
        })
        .await;
    let restarted_after = t.elapsed();
    let argv = cmdline(pid2);
    assert_eq!(argv.last().map(String::as_str), Some("--v=2"), "{argv:?}");
    assert!(!alive(pid), "the old kubelet is gone");
    d.wait_running(None).await;
    let (status, _, log) = d.terminate().await;
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("restarting kubelet"), "{log}");
    eprintln!("new kubelet {restarted_after:?} after SIGHUP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_reports_a_missing_kubelet_binary() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    m.write_files();
    // The preflight before the join would refuse it; `run` must cope with it later too.
    let mut d = m.spawn(
        Path::new("/nonexistent/kubelet"),
        &["--ignore-preflight-errors=FileExisting-kubelet"],
    );
    joined_and_registered(&m, &mut d, &sb).await;

    let rs = d
        .wait_for("phase cannot-start", Duration::from_secs(5), |d| {
            d.run_status()
                .filter(|rs| rs["kubelet"]["phase"] == "cannot-start")
        })
        .await;
    let problem = rs["kubelet"]["problem"].as_str().unwrap();
    assert!(
        problem.contains("/nonexistent/kubelet") && problem.contains("not found"),
        "{problem}"
    );
    assert!(
        rs["activity"]
            .as_str()
            .unwrap()
            .starts_with("kubelet cannot run: "),
        "{rs:#}"
    );
    d.wait_for("KubeletCannotStart on the Node", JOIN_WAIT, |_| {
        condition(&sb, "KubeletUnhealthy")
            .filter(|(s, r, _)| s == "True" && r == "KubeletCannotStart")
    })
    .await;
    d.wait_for("a KubeletCannotStart event", REPORT_WAIT, |_| {
        event_reasons(&sb)
            .iter()
            .any(|r| r == "KubeletCannotStart")
            .then_some(())
    })
    .await;
    assert!(
        !m.notified().iter().any(|n| n == "READY=1"),
        "no READY=1 without a healthy kubelet"
    );

    // It does not spin: under 0.5 s of CPU over 2 s.
    let pid = d.process.pid() as i32;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(pid) - before;
    assert!(used < 50, "{used} ticks of CPU in 2 s");

    let (code, report) = m.status();
    assert_eq!(code, 21, "{report:#}");
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("not found")),
        "{report:#}"
    );
    let (status, _, log) = d.terminate().await;
    assert!(status.success(), "{status}\n{log}");
    eprintln!("CPU while unable to start kubelet: {used} ticks (1/100 s) in 2 s");
}

/// Joined with `--cri-socket` naming another socket than containerd's default: the Node says the
/// runtime is reachable, because the probe checks the socket kubelet is given. (It used to check
/// the default socket whatever the flags file said: every such node showed
/// ContainerRuntimeUnreachable=True while kubelet ran its pods.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_runtime_probe_checks_the_socket_kubelet_is_given() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    // Nothing at the default socket; the runtime listens elsewhere.
    std::fs::remove_file(m.root.join("run/containerd/containerd.sock")).unwrap();
    let elsewhere = m.root.join("somewhere/else/containerd.sock");
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    let _runtime = std::os::unix::net::UnixListener::bind(&elsewhere).unwrap();
    m.write_files();
    let mut d = m.spawn(
        &common::fake_kubelet(),
        &["--cri-socket", "unix:///somewhere/else/containerd.sock"],
    );
    joined_and_registered(&m, &mut d, &sb).await;
    let flags = std::fs::read_to_string(m.root.join("var/lib/kubelet/kubeadm-flags.env")).unwrap();
    assert!(
        flags.contains("--container-runtime-endpoint=unix:///somewhere/else/containerd.sock"),
        "{flags}"
    );
    let (status, reason, message) = d
        .wait_for("ContainerRuntimeUnreachable on the Node", JOIN_WAIT, |_| {
            condition(&sb, "ContainerRuntimeUnreachable")
        })
        .await;
    assert_eq!(status, "False", "{reason}: {message}");
    let (status, _, log) = d.terminate().await;
    assert!(status.success(), "{status}\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn already_joined_node_runs_without_a_token() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    m.write_files();
    let mut d = m.spawn(&common::fake_kubelet(), &[]);
    let first = d.wait_running(None).await;
    let (status, _, log) = d.terminate().await;
    assert!(status.success(), "{status}\n{log}");
    assert_eq!(sb.csrs().len(), 1);
    let requests = sb.requests().len();

    std::fs::remove_file(&m.token_file).unwrap();
    let mut d = m.spawn(&common::fake_kubelet(), &[]);
    let second = d.wait_running(Some(first)).await;
    assert!(alive(second));
    assert_eq!(sb.csrs().len(), 1, "no new CSR");
    let not_as_node: Vec<_> = sb.requests()[requests..]
        .iter()
        .filter(|r| r.identity != format!("system:node:{NODE}"))
        .map(|r| format!("{} {} as {}", r.method, r.path, r.identity))
        .collect();
    assert!(
        not_as_node.is_empty(),
        "an already joined node talks only as itself (no discovery, no bootstrap): {not_as_node:?}"
    );
    let (status, _, log) = d.terminate().await;
    assert!(status.success(), "{status}\n{log}");
    assert!(!log.contains("joining as node"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_reports_an_unusable_kubelet_command_line_and_retries_on_sighup() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    m.write_files();
    let default = m.root.join("etc/default/kubelet");
    std::fs::create_dir_all(default.parent().unwrap()).unwrap();
    std::fs::write(&default, "KUBELET_EXTRA_ARGS=\"--node-labels='a=b\"\n").unwrap();
    let mut d = m.spawn(&common::fake_kubelet(), &[]);
    joined_and_registered(&m, &mut d, &sb).await;

    // It stays up and says why (not exit into systemd's restart loop).
    let rs = d
        .wait_for("phase cannot-start", Duration::from_secs(5), |d| {
            d.run_status()
                .filter(|rs| rs["kubelet"]["phase"] == "cannot-start")
        })
        .await;
    let problem = rs["kubelet"]["problem"].as_str().unwrap();
    assert!(
        problem.contains("/etc/default/kubelet") && problem.contains("unterminated '"),
        "{problem}"
    );
    d.wait_for("KubeletCannotStart on the Node", JOIN_WAIT, |_| {
        condition(&sb, "KubeletUnhealthy")
            .filter(|(s, r, _)| s == "True" && r == "KubeletCannotStart")
    })
    .await;

    // Fixed, then SIGHUP: kubelet starts with the fixed arguments.
    std::fs::write(&default, "KUBELET_EXTRA_ARGS=\"--node-labels='a=b'\"\n").unwrap();
    d.signal(Signal::SIGHUP);
    let pid = d.wait_running(None).await;
    assert_eq!(
        cmdline(pid).last().map(String::as_str),
        Some("--node-labels=a=b")
    );
    let (status, _, log) = d.terminate().await;
    assert!(status.success(), "{status}\n{log}");
}

/// kubelet's output must reach the journal: under systemd it is only ever printed through
/// kaas-join's log (kubelet.service, which used to carry it, is disabled).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubelet_output_reaches_the_log() {
    let sb = sandbox().await;
    let m = Machine::new(&sb);
    m.write_files();
    let mut d = m.spawn(&common::fake_kubelet(), &[]);
    d.wait_running(None).await;
    let (status, _, log) = d.terminate().await;
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("fake-kubelet args: "), "{log}");
}

/// The KubeletUnhealthy message after kubelet's first exit, as the Node shows it.
#[test]
fn the_not_running_message_counts_restarts_right() {
    use kaas_join::model::kubelet_process::{ExitInfo, KubeletPhase, KubeletState};
    use kaas_join::node::health::{self, Probes};
    let kubelet = KubeletState {
        phase: KubeletPhase::BackingOff,
        restarts: 1,
        last_exit: Some(ExitInfo {
            code: None,
            signal: Some(9),
            description: "killed by SIGKILL".into(),
            at: std::time::SystemTime::now(),
            last_lines: Vec::new(),
        }),
        ..KubeletState::default()
    };
    let conditions = health::conditions(&kubelet, &Probes::default(), std::time::SystemTime::now());
    let c = conditions
        .iter()
        .find(|c| c.type_ == health::KUBELET_UNHEALTHY)
        .unwrap();
    assert_eq!(c.reason, "KubeletNotRunning");
    assert!(c.message.contains("(restart 1)"), "{}", c.message);
    assert!(!c.message.contains("it killed"), "{}", c.message);
}
