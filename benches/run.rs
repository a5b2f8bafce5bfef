//! The `kaas-join run` benchmark: what the daemon costs at idle and how fast it reacts, measured
//! on the real release binary supervising the stand-in kubelet (`fake-kubelet`, kaas-sandbox)
//! and reporting to the sandbox control plane on loopback (127.0.0.1 only).
//!
//! Run it (see BENCHMARKS.md, "kaas-join run"):
//!
//! ```text
//! cargo build --release --locked -p kaas-join && cargo build --locked -p kaas-sandbox --bin fake-kubelet
//! cargo bench --locked --bench run
//! ```
//!
//! What it does, in order:
//!
//! 1. Starts the sandbox in-process, writes a 0600 token file and a `kaas-join.io/v1alpha1`
//!    config file, binds a stand-in CRI socket under the root (so the node is healthy), and runs
//!    `kaas-join run --config … --root … --kubelet fake-kubelet --heartbeat 5m --metrics-address
//!    127.0.0.1:<port>` as a child ("daemon A"). The Node is created in the sandbox as soon as
//!    the join has posted its CSR.
//! 2. Idle: once kubelet is Running and the node's `KubeletUnhealthy` is False, samples the
//!    daemon's RSS, CPU time, context switches (all threads) and I/O syscalls from `/proc` every
//!    5 s for `KAAS_BENCH_IDLE_SECS` (default 120; the issue asks for "a few minutes": run with
//!    300 for the record), scrapes its metrics every 15 s (as a Prometheus would), and counts
//!    the API requests made as `system:node:<name>`.
//! 3. Crash → condition: SIGKILLs the kubelet 5 times (waiting for Running in between) and
//!    measures how long until the Node in the sandbox shows `KubeletUnhealthy=True`.
//! 4. Restarts the daemon ("daemon B", same root: no new join, fresh backoff), switches the fake
//!    kubelet to crash mode through its control file, and measures exit → next start for
//!    5 restarts: 1, 2, 4, 8 s, then the crash-loop cap (60 s, the 5th restart within 10 min).
//! 5. SIGTERMs the daemon with kubelet running and measures the time to exit.
//! 6. Metrics off and on: the same idle window twice more on the joined node (no join in
//!    either, so neither carries the join's allocations): "daemon C" with `--no-metrics`, then
//!    "daemon D" with metrics on and scraped every 15 s; RSS and CPU side by side.
//!
//! Bounded: every wait has a deadline, the daemons are killed on any failure (kubelet dies with
//! them: PR_SET_PDEATHSIG), and the whole run must end within three idle windows + 360 s (about
//! 12 minutes with the default window). Prints a table and writes it to `target/bench-run.txt`;
//! the daemons' logs go to `target/bench-run-daemon.log`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Invocation, Wait};
use kaas_sandbox::{RequestRecord, Sandbox};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const NODE: &str = "bench-run-node";
/// `--heartbeat` given to the daemon (its default).
const HEARTBEAT: &str = "5m";
const HEARTBEAT_SECS: u64 = 300;
const DEFAULT_IDLE_SECS: u64 = 120;
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Metrics are scraped at every third sample: every 15 s, a common Prometheus scrape interval.
const SCRAPE_EVERY_SAMPLES: usize = 3;
/// Kills of a healthy kubelet measured for crash → condition.
const CRASH_TRIALS: usize = 5;
/// Restarts measured for the backoff steps.
const BACKOFF_RESTARTS: usize = 5;
/// How long a crash-mode fake kubelet runs before it exits 1.
const CRASH_AFTER_MS: u64 = 50;
/// The daemon's defaults (`SupervisorConfig::new`): 1 s doubling to 60 s, ±10 % jitter; 5
/// restarts within 10 minutes = crash loop, then always the cap.
const BACKOFF_INITIAL_SECS: f64 = 1.0;
const BACKOFF_MAX_SECS: f64 = 60.0;
const CRASHLOOP_RESTARTS: usize = 5;
/// kubelet's own steady writes per node and hour: Lease renewal every 10 s
/// (nodeLeaseDurationSeconds 40 × 0.25) and a status update every 5 minutes
/// (nodeStatusReportFrequency) when nothing changes.
const KUBELET_LEASE_PER_HOUR: u64 = 360;
const KUBELET_STATUS_PER_HOUR: u64 = 12;
/// Deadlines.
const JOIN_DEADLINE: Duration = Duration::from_secs(40);
/// Backoff up to 8 s (+10 %), plus healthz probes every 10 s should the first one fail.
const RUNNING_DEADLINE: Duration = Duration::from_secs(40);
const CONDITION_DEADLINE: Duration = Duration::from_secs(15);
/// Backoff steps (1+2+4+8+60 s with +10 % jitter) plus slack.
const BACKOFF_DEADLINE: Duration = Duration::from_secs(100);
/// The supervisor's grace period is 30 s.
const EXIT_DEADLINE: Duration = Duration::from_secs(45);
/// Beyond the three idle windows (daemon A's, and metrics off and on).
const BUDGET_BEYOND_IDLE: Duration = Duration::from_secs(360);

fn main() {
    // Arguments (`cargo bench` passes `--bench`) are ignored: there is one benchmark, run once.
    let started = Instant::now();
    let idle_secs = std::env::var("KAAS_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_IDLE_SECS)
        .clamp(10, 900);
    let idle = Duration::from_secs(idle_secs);
    let budget = 3 * idle + BUDGET_BEYOND_IDLE;

    let (Some(bin), Some(fake)) = (common::bench::find_kaas_join(), find_fake_kubelet()) else {
        eprintln!(
            "bench run: needs the release binary {} (or $KAAS_JOIN_BIN) and fake-kubelet in \
             target/release or target/debug (or $FAKE_KUBELET_BIN); build them first:\n  \
             cargo build --release --locked -p kaas-join && cargo build --locked -p kaas-sandbox --bin fake-kubelet",
            common::bench::expected_kaas_join().display()
        );
        std::process::exit(1);
    };
    let log_path = common::bench::target_dir().join("bench-run-daemon.log");
    let _ = std::fs::remove_file(&log_path);

    let runtime = common::bench::sandbox_runtime();
    let sb = common::bench::start_sandbox(&runtime, Duration::ZERO);

    let setup = Setup::new(&sb, &bin, &fake, &log_path);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kaas-join run benchmark (sandbox on {}, kaas-join {}, kubelet {}, heartbeat {HEARTBEAT}, idle window {idle_secs} s)",
        sb.url(),
        bin.display(),
        fake.display()
    );
    let _ = writeln!(
        out,
        "machine: nproc {}, load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(out);
    print!("{out}");
    let _ = std::io::stdout().flush();
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // ---- Daemon A: join, idle, crash → condition ------------------------------------------
    let records_start = sb.requests().len();
    let mut daemon = setup.spawn("A", true);
    let spawned = Instant::now();
    Wait::new("a CSR posted by the join", JOIN_DEADLINE)
        .every(Duration::from_millis(5))
        .poll_blocking(|| {
            sb.requests()
                .iter()
                .skip(records_start)
                .any(|r| r.method == "POST" && r.path.ends_with("/certificatesigningrequests"))
                .then_some(())
        })
        .ok()
        .unwrap_or_else(|| daemon.fail("no CSR posted (join did not run)"));
    sb.add_node(NODE, true);
    let status = wait_running(&setup, &mut daemon);
    let to_running = spawned.elapsed();
    let first_pid = kubelet_pid(&status).unwrap_or(0);
    wait_condition(&sb, &mut daemon, "False");
    let to_condition = spawned.elapsed();
    rows.push((
        "daemon start (join included) → kubelet Running / KubeletUnhealthy=False on the Node"
            .into(),
        format!(
            "{} / {} (kubelet pid {first_pid})",
            secs(to_running),
            secs(to_condition)
        ),
    ));
    // Let the start's requests (first write, events) finish before the window opens.
    std::thread::sleep(Duration::from_secs(3));
    let startup_records: Vec<RequestRecord> = sb.requests()[records_start..].to_vec();

    println!("idle phase: {idle_secs} s");
    let idle_result = idle_phase(&sb, &daemon, idle, Some(&setup.metrics));
    idle_result.rows(&mut rows, &mut notes);

    println!("crash → condition: {CRASH_TRIALS} kills");
    let crash = crash_phase(&sb, &setup, &mut daemon);
    let mut sorted = crash.iter().map(|c| c.latency).collect::<Vec<_>>();
    sorted.sort();
    rows.push((
        format!("kubelet SIGKILL → KubeletUnhealthy=True visible on the Node ({CRASH_TRIALS} kills, polled every 20 ms)"),
        format!(
            "median {}, min {}, max {}; each: {}",
            ms(sorted[(sorted.len() - 1) / 2]),
            ms(sorted[0]),
            ms(*sorted.last().unwrap()),
            crash
                .iter()
                .map(|c| format!("{} ({})", ms(c.latency), c.reason))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    let hwm_a = proc_status(daemon.pid()).map_or(0, |s| s.hwm_kib);
    // The 5th kill put the supervisor into its crash loop: stop it during the 60 s wait.
    let stop_a = daemon.stop();
    rows.push((
        "SIGTERM → daemon exit, kubelet not running (daemon A, in its crash-loop backoff)".into(),
        format!("{} ({})", ms(stop_a.0), stop_a.1),
    ));

    // ---- Daemon B: backoff steps, stop ----------------------------------------------------
    let bootstrap_before = count_bootstrap(&sb.requests());
    let mut daemon = setup.spawn("B", true);
    let spawned = Instant::now();
    let status = wait_running(&setup, &mut daemon);
    let to_running = spawned.elapsed();
    wait_condition(&sb, &mut daemon, "False");
    let rejoined = count_bootstrap(&sb.requests()) - bootstrap_before;
    rows.push((
        "daemon restart on a joined node → kubelet Running".into(),
        format!(
            "{} (bootstrap-token requests: {rejoined}, i.e. no new join)",
            secs(to_running)
        ),
    ));
    let records_backoff = sb.requests().len();
    println!("backoff phase: {BACKOFF_RESTARTS} restarts (about 80 s)");
    let steps = backoff_phase(&setup, &mut daemon, kubelet_pid(&status));
    for s in &steps {
        let d = s.delay.as_secs_f64();
        let ok = d >= 0.9 * s.nominal && d <= 1.1 * s.nominal + 0.05;
        rows.push((
            format!(
                "exit → restart, restart {} (configured {} ±10 %)",
                s.index,
                secs_f(s.nominal)
            ),
            format!(
                "{} (ratio {:.3}; supervisor phase during the wait: {}; run before it {}){}",
                secs(s.delay),
                d / s.nominal,
                s.phase,
                s.ran.map_or("SIGKILLed".into(), ms),
                if ok { "" } else { " OUTSIDE the jitter band" }
            ),
        ));
    }
    wait_running(&setup, &mut daemon);
    let node_identity = format!("system:node:{NODE}");
    let crash_records: Vec<RequestRecord> = sb.requests()[records_backoff..]
        .iter()
        .filter(|r| r.identity == node_identity)
        .cloned()
        .collect();
    rows.push((
        format!(
            "API requests as system:node:{NODE} from the first kill to Running again ({} s of crash loop)",
            steps
                .iter()
                .map(|s| s.delay.as_secs_f64())
                .sum::<f64>()
                .round()
        ),
        by_kind(&crash_records),
    ));
    let hwm_b = proc_status(daemon.pid()).map_or(0, |s| s.hwm_kib);
    let kubelet = read_status(&setup.root)
        .as_ref()
        .and_then(kubelet_pid)
        .unwrap_or(0);
    let stop_b = daemon.stop();
    let kubelet_gone = !alive(kubelet);
    let final_phase = read_status(&setup.root)
        .map(|s| phase(&s))
        .unwrap_or_default();
    rows.push((
        "SIGTERM → daemon exit, kubelet running (daemon B)".into(),
        format!(
            "{} ({}); kubelet pid {kubelet} {}; status file phase {final_phase:?}",
            ms(stop_b.0),
            stop_b.1,
            if kubelet_gone {
                "gone"
            } else {
                "STILL RUNNING"
            }
        ),
    ));
    rows.push((
        "peak RSS over the whole life of the daemon (VmHWM before SIGTERM)".into(),
        format!("daemon A {}, daemon B {}", kib(hwm_a), kib(hwm_b)),
    ));
    println!("metrics off and on: 2 × {idle_secs} s idle");
    rows.extend(metrics_off_and_on(&sb, &setup, idle));

    // ---- Table ---------------------------------------------------------------------------
    let _ = writeln!(out, "| measure | value |");
    let _ = writeln!(out, "|---|---|");
    for (k, v) in &rows {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Requests of daemon A's start (spawn → 3 s after the condition was False): {}",
        by_kind(&startup_records)
    );
    for n in &notes {
        let _ = writeln!(out, "{n}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "total benchmark time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!();
    print!("{}", &out[out.find("| measure").unwrap_or(0)..]);
    let report_path = common::bench::target_dir().join("bench-run.txt");
    match std::fs::write(&report_path, &out) {
        Ok(()) => println!("written to {}", report_path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", report_path.display()),
    }
    runtime.block_on(sb.shutdown());
    assert!(
        kubelet_gone,
        "kubelet {kubelet} survived the daemon's SIGTERM"
    );
    assert!(
        started.elapsed() < budget,
        "the benchmark took {:?}, over its {budget:?} budget",
        started.elapsed()
    );
}

// -------------------------------------------------------------------------------------------
// Setup and the daemon process
// -------------------------------------------------------------------------------------------

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    control: PathBuf,
    healthz: String,
    /// `--metrics-address` of the daemons that serve metrics.
    metrics: String,
    bin: PathBuf,
    fake: PathBuf,
    log: PathBuf,
}

impl Setup {
    fn new(sb: &Sandbox, bin: &Path, fake: &Path, log: &Path) -> Setup {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let token_file = dir.path().join("token");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&token_file)
            .expect("token file");
        writeln!(f, "{}", sb.create_token()).expect("token written");
        drop(f);
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("root");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "apiVersion: kaas-join.io/v1alpha1\n\
                 kind: JoinConfiguration\n\
                 servers: [\"{}\"]\n\
                 caCertHashes: [\"{}\"]\n\
                 tokenFile: {}\n\
                 nodeName: {NODE}\n\
                 criSocket: unix:///run/containerd/containerd.sock\n\
                 cgroupDriver: systemd\n\
                 discoveryTimeout: 30s\n\
                 tlsBootstrapTimeout: 30s\n\
                 kubelet: {{healthzPort: {port}}}\n",
                sb.url(),
                sb.ca_cert_hash(),
                token_file.display()
            ),
        )
        .expect("config file");
        let control = dir.path().join("fake-kubelet.mode");
        std::fs::write(&control, "serve\n").expect("control file");
        // A container runtime that answers: the node is healthy, so nothing but the heartbeat
        // should be written at idle. Connections are accepted and dropped.
        let sock_dir = root.join("run/containerd");
        std::fs::create_dir_all(&sock_dir).expect("socket dir");
        // Its configuration agrees with the config file's cgroupDriver: the preflight checks
        // compare them (containerd's default without a file is cgroupfs).
        let containerd_config = root.join("etc/containerd/config.toml");
        std::fs::create_dir_all(containerd_config.parent().expect("a parent"))
            .expect("containerd config dir");
        std::fs::write(
            &containerd_config,
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n",
        )
        .expect("containerd config");
        let listener = UnixListener::bind(sock_dir.join("containerd.sock")).expect("CRI socket");
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                drop(conn);
            }
        });
        Setup {
            _dir: dir,
            root,
            config,
            control,
            healthz: format!("127.0.0.1:{port}"),
            metrics: format!("127.0.0.1:{}", common::free_port()),
            bin: bin.to_path_buf(),
            fake: fake.to_path_buf(),
            log: log.to_path_buf(),
        }
    }

    /// Starts `kaas-join run`; serving metrics on `self.metrics`, or with `--no-metrics`.
    fn spawn(&self, name: &str, metrics: bool) -> Daemon {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("daemon log");
        let _ = writeln!(log, "==== daemon {name} ====");
        let mut args: Vec<&OsStr> = vec![
            "run".as_ref(),
            "--config".as_ref(),
            self.config.as_os_str(),
            "--root".as_ref(),
            self.root.as_os_str(),
            "--kubelet".as_ref(),
            self.fake.as_os_str(),
            "--heartbeat".as_ref(),
            HEARTBEAT.as_ref(),
        ];
        if metrics {
            args.push("--metrics-address".as_ref());
            args.push(self.metrics.as_ref());
        } else {
            args.push("--no-metrics".as_ref());
        }
        // The kit's runner: none of our variables (token, notify socket, watchdog) inherited.
        let child = Invocation::of(&self.bin, args)
            .env("FAKE_KUBELET_HEALTHZ", &self.healthz)
            .env("FAKE_KUBELET_CONTROL", &self.control)
            .env("FAKE_KUBELET_AFTER_MS", CRASH_AFTER_MS.to_string())
            .spawn_with(log.try_clone().expect("log fd").into(), log.into());
        Daemon {
            child: Some(child),
            log: self.log.clone(),
        }
    }
}

/// The `kaas-join run` child; killed (with its kubelet) if the bench fails.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the daemon, shows the end of its log and panics.
    fn fail(&mut self, why: &str) -> ! {
        let exited = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        self.kill();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{why} (daemon exited: {exited:?}); last lines of {}:\n{}",
            self.log.display(),
            tail.join("\n")
        );
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then a bounded wait: (time to exit, how it exited).
    fn stop(&mut self) -> (Duration, String) {
        let pid = self.pid();
        let t = Instant::now();
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        let status: Option<ExitStatus> =
            Wait::new("the daemon's exit after SIGTERM", EXIT_DEADLINE)
                .every(Duration::from_millis(2))
                .poll_blocking(|| {
                    self.child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten())
                })
                .ok();
        let took = t.elapsed();
        match status {
            Some(s) => {
                self.child = None;
                (took, s.to_string())
            }
            None => self.fail(&format!("no exit within {EXIT_DEADLINE:?} of SIGTERM")),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

// -------------------------------------------------------------------------------------------
// Phases
// -------------------------------------------------------------------------------------------

struct IdleResult {
    window: Duration,
    samples: Vec<ProcStatus>,
    cpu_ticks: u64,
    clk_tck: u64,
    voluntary: u64,
    involuntary: u64,
    syscr: u64,
    syscw: u64,
    records: Vec<RequestRecord>,
    all_records: usize,
    /// Each metrics scrape: how long it took and its size (`Err`: why it failed).
    scrapes: Vec<Result<(Duration, usize), String>>,
}

/// Samples `daemon` for `window` (see the module doc); scrapes `metrics` (its address) every
/// [`SCRAPE_EVERY_SAMPLES`] samples when given.
fn idle_phase(
    sb: &Sandbox,
    daemon: &Daemon,
    window: Duration,
    metrics: Option<&str>,
) -> IdleResult {
    let pid = daemon.pid();
    let clk_tck = common::bench::clock_ticks();
    let records_before = sb.requests().len();
    let start = Instant::now();
    let first = proc_status(pid).expect("daemon alive");
    let (cpu0, io0) = (proc_cpu_ticks(pid), proc_io(pid));
    let mut switches = thread_switches(pid);
    let (mut voluntary, mut involuntary) = (0u64, 0u64);
    let mut samples = vec![first];
    let mut scrapes = Vec::new();
    let mut next = start + SAMPLE_EVERY;
    while start.elapsed() < window {
        let now = Instant::now();
        if next > now {
            std::thread::sleep((next - now).min(window.saturating_sub(start.elapsed())));
        }
        next += SAMPLE_EVERY;
        let Some(s) = proc_status(pid) else {
            panic!("the daemon died during the idle window");
        };
        samples.push(s);
        if let Some(address) = metrics.filter(|_| samples.len() % SCRAPE_EVERY_SAMPLES == 0) {
            let t = Instant::now();
            let scrape = common::http_get(address, "/metrics");
            scrapes.push(scrape.map(|body| (t.elapsed(), body.len())));
        }
        let now_switches = thread_switches(pid);
        // Per thread: threads that ended since the last sample lose their last increments, so
        // this is a lower bound (threads are few and long-lived at idle).
        for (tid, (v, n)) in &now_switches {
            let (v0, n0) = switches.get(tid).copied().unwrap_or((0, 0));
            voluntary += v.saturating_sub(v0);
            involuntary += n.saturating_sub(n0);
        }
        switches = now_switches;
    }
    let elapsed = start.elapsed();
    let cpu_ticks = proc_cpu_ticks(pid).saturating_sub(cpu0);
    let io1 = proc_io(pid);
    let records = sb.requests();
    let all_records = records.len() - records_before;
    let node_identity = format!("system:node:{NODE}");
    let records = records[records_before..]
        .iter()
        .filter(|r| r.identity == node_identity)
        .cloned()
        .collect();
    IdleResult {
        window: elapsed,
        samples,
        cpu_ticks,
        clk_tck,
        voluntary,
        involuntary,
        syscr: io1.0.saturating_sub(io0.0),
        syscw: io1.1.saturating_sub(io0.1),
        records,
        all_records,
        scrapes,
    }
}

impl IdleResult {
    fn rows(&self, rows: &mut Vec<(String, String)>, notes: &mut Vec<String>) {
        let w = self.window.as_secs_f64();
        let rss: Vec<u64> = self.samples.iter().map(|s| s.rss_kib).collect();
        let last = self.samples.last().expect("samples");
        rows.push((
            format!(
                "idle RSS of `kaas-join run` ({} samples every {} s over {:.0} s)",
                self.samples.len(),
                SAMPLE_EVERY.as_secs(),
                w
            ),
            format!(
                "max {}, last {} (anonymous {}, file-backed {}), VmHWM {}; {} threads",
                kib(*rss.iter().max().unwrap()),
                kib(last.rss_kib),
                kib(last.anon_kib),
                kib(last.rss_kib.saturating_sub(last.anon_kib)),
                kib(last.hwm_kib),
                last.threads
            ),
        ));
        let cpu = self.cpu_ticks as f64 / self.clk_tck as f64;
        rows.push((
            "idle CPU (utime+stime, all threads)".into(),
            format!(
                "{cpu:.2} s over {w:.0} s = {:.3} % of one core ({} ticks at {}/s)",
                100.0 * cpu / w,
                self.cpu_ticks,
                self.clk_tck
            ),
        ));
        rows.push((
            "idle wakeups (context switches summed over the daemon's threads)".into(),
            format!(
                "{:.2} voluntary/s, {:.2} involuntary/s ({} and {} in {w:.0} s)",
                self.voluntary as f64 / w,
                self.involuntary as f64 / w,
                self.voluntary,
                self.involuntary
            ),
        ));
        rows.push((
            "idle I/O syscalls (/proc/<pid>/io)".into(),
            format!(
                "{:.2} reads/s, {:.2} writes/s ({} and {})",
                self.syscr as f64 / w,
                self.syscw as f64 / w,
                self.syscr,
                self.syscw
            ),
        ));
        let patches = self
            .records
            .iter()
            .filter(|r| r.method == "PATCH" && r.path == format!("/api/v1/nodes/{NODE}/status"))
            .count() as f64;
        let others = self.records.len() as f64 - patches;
        let hour = 3600.0 / HEARTBEAT_SECS as f64 + others * 3600.0 / w;
        rows.push((
            format!("API requests as system:node:{NODE} at idle ({w:.0} s window)"),
            format!(
                "{} measured: {} (all identities: {})",
                self.records.len(),
                by_kind(&self.records),
                self.all_records
            ),
        ));
        rows.push((
            "API writes per node per hour when nothing changes".into(),
            format!(
                "{hour:.1} = 3600 / heartbeat {HEARTBEAT_SECS} s ({:.0} status PATCHes) + {others:.0} other requests in the window × 3600 / {w:.0}; kubelet itself: {} (Lease renewals every 10 s: {KUBELET_LEASE_PER_HOUR}, status updates every 5 min: {KUBELET_STATUS_PER_HOUR})",
                3600.0 / HEARTBEAT_SECS as f64,
                KUBELET_LEASE_PER_HOUR + KUBELET_STATUS_PER_HOUR
            ),
        ));
        if let Some(row) = self.scrapes_row() {
            rows.push(row);
        }
        let per_sample: Vec<String> = self
            .samples
            .iter()
            .map(|s| format!("{}", s.rss_kib))
            .collect();
        notes.push(format!("Idle RSS samples (KiB): {}", per_sample.join(" ")));
        if (w as u64) < HEARTBEAT_SECS {
            notes.push(format!(
                "NOTE: the idle window ({w:.0} s) is shorter than the heartbeat ({HEARTBEAT_SECS} s): it sees at most one heartbeat PATCH, so the hourly rate counts the heartbeat from the configuration, not from the window."
            ));
        }
    }
}

impl IdleResult {
    /// The scrapes of the window: how many, how long, how big.
    fn scrapes_row(&self) -> Option<(String, String)> {
        if self.scrapes.is_empty() {
            return None;
        }
        let failed: Vec<&String> = self
            .scrapes
            .iter()
            .filter_map(|s| s.as_ref().err())
            .collect();
        let mut took: Vec<Duration> = self.scrapes.iter().flatten().map(|s| s.0).collect();
        took.sort();
        let sizes: Vec<usize> = self.scrapes.iter().flatten().map(|s| s.1).collect();
        let value = if took.is_empty() {
            format!("all {} failed: {}", failed.len(), failed[0])
        } else {
            format!(
                "{} scrapes: median {:.2} ms, max {:.2} ms; {}–{} bytes{}",
                took.len(),
                took[(took.len() - 1) / 2].as_secs_f64() * 1000.0,
                took[took.len() - 1].as_secs_f64() * 1000.0,
                sizes.iter().min().unwrap(),
                sizes.iter().max().unwrap(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!("; {} FAILED: {}", failed.len(), failed[0])
                }
            )
        };
        Some((
            format!(
                "GET /metrics during the idle window (every {} s, connect to last byte)",
                SAMPLE_EVERY.as_secs() * SCRAPE_EVERY_SAMPLES as u64
            ),
            value,
        ))
    }
}

/// Step 6 of the module doc: daemon C (`--no-metrics`) and daemon D (metrics on, scraped), each
/// idle for `window` on the joined node; their RSS and CPU side by side.
fn metrics_off_and_on(sb: &Sandbox, setup: &Setup, window: Duration) -> Vec<(String, String)> {
    let mut measured = Vec::new();
    for (name, metrics) in [("C", false), ("D", true)] {
        let mut daemon = setup.spawn(name, metrics);
        wait_running(setup, &mut daemon);
        wait_condition(sb, &mut daemon, "False");
        // As for daemon A: the start's requests finish before the window opens.
        std::thread::sleep(Duration::from_secs(3));
        let scrape = metrics.then_some(setup.metrics.as_str());
        measured.push(idle_phase(sb, &daemon, window, scrape));
        daemon.stop();
    }
    let [off, on] = <[IdleResult; 2]>::try_from(measured).unwrap_or_else(|_| unreachable!());
    let rss = |r: &IdleResult| {
        let last = r.samples.last().expect("samples");
        let max = r.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        format!(
            "RSS last {} (anonymous {}), max {}, {} threads",
            kib(last.rss_kib),
            kib(last.anon_kib),
            kib(max),
            last.threads
        )
    };
    let cpu = |r: &IdleResult| {
        let s = r.cpu_ticks as f64 / r.clk_tck as f64;
        let w = r.window.as_secs_f64();
        format!(
            "CPU {s:.2} s over {w:.0} s = {:.3} % of one core, {:.2} voluntary wakeups/s",
            100.0 * s / w,
            r.voluntary as f64 / w
        )
    };
    let mut rows = vec![
        (
            "idle, metrics off (`--no-metrics`, daemon C, joined node, no join)".into(),
            format!("{}; {}", rss(&off), cpu(&off)),
        ),
        (
            "idle, metrics on and scraped every 15 s (daemon D, joined node, no join)".into(),
            format!("{}; {}", rss(&on), cpu(&on)),
        ),
    ];
    rows.extend(on.scrapes_row());
    rows
}

struct CrashTrial {
    latency: Duration,
    reason: String,
}

fn crash_phase(sb: &Sandbox, setup: &Setup, daemon: &mut Daemon) -> Vec<CrashTrial> {
    let mut trials = Vec::with_capacity(CRASH_TRIALS);
    let mut killed = None;
    for i in 0..CRASH_TRIALS {
        let status = wait_running_other_than(setup, daemon, killed);
        wait_condition(sb, daemon, "False");
        let Some(pid) = kubelet_pid(&status) else {
            daemon.fail("Running without a kubelet pid");
        };
        let t = Instant::now();
        if let Err(e) = kill(Pid::from_raw(pid as i32), Signal::SIGKILL) {
            daemon.fail(&format!("cannot SIGKILL kubelet {pid}: {e}"));
        }
        killed = Some(pid);
        let found = Wait::new("KubeletUnhealthy True", CONDITION_DEADLINE)
            .every(Duration::from_millis(20))
            .poll_blocking(|| {
                let (status, reason) = kubelet_condition(sb)?;
                (status == "True").then_some(reason)
            })
            .ok();
        let latency = t.elapsed();
        let Some(reason) = found else {
            daemon.fail(&format!(
                "kill {i}: KubeletUnhealthy not True within {CONDITION_DEADLINE:?}"
            ));
        };
        println!("  kill {}: {} ({reason})", i + 1, ms(latency));
        trials.push(CrashTrial { latency, reason });
    }
    trials
}

struct Step {
    index: usize,
    delay: Duration,
    nominal: f64,
    phase: String,
    /// How long the kubelet ran before this wait (None: it was SIGKILLed by the bench).
    ran: Option<Duration>,
}

/// Kill → restart → crash → restart …: `BACKOFF_RESTARTS` exit-to-start delays. The last start
/// finds the control file at `serve` again and stays up.
fn backoff_phase(setup: &Setup, daemon: &mut Daemon, pid: Option<u32>) -> Vec<Step> {
    let Some(pid) = pid else {
        daemon.fail("Running without a kubelet pid");
    };
    let starts_path = PathBuf::from(format!("{}.starts", setup.control.display()));
    let known = read_starts(&starts_path).len();
    std::fs::write(&setup.control, "crash\n").expect("control file");
    let kill_ms = unix_ms();
    if let Err(e) = kill(Pid::from_raw(pid as i32), Signal::SIGKILL) {
        daemon.fail(&format!("cannot SIGKILL kubelet {pid}: {e}"));
    }
    // exits[k] precedes starts[k].
    let mut exits: Vec<u128> = vec![kill_ms];
    let mut starts: Vec<(u128, u32)> = Vec::new();
    let mut phases: Vec<String> = vec![String::new()];
    let mut serve_again = false;
    let mut polls = 0u64;
    let restarts = Wait::new("the backoff restarts", BACKOFF_DEADLINE)
        .every(Duration::from_millis(5))
        .poll_blocking(|| {
            polls += 1;
            if exits.len() > starts.len() {
                // Waiting for the next start.
                let all = read_starts(&starts_path);
                if all.len() > known + starts.len() {
                    starts.push(all[known + starts.len()]);
                } else if polls % 20 == 0 && phases.last().is_some_and(String::is_empty) {
                    if let Some(s) = read_status(&setup.root) {
                        let p = phase(&s);
                        if p != "running" && p != "starting" {
                            *phases.last_mut().expect("one per wait") = p;
                        }
                    }
                }
            } else {
                // Waiting for the current kubelet's exit.
                let (_, current) = *starts.last().expect("a start");
                if !alive(current) {
                    exits.push(unix_ms());
                    phases.push(String::new());
                    if exits.len() == BACKOFF_RESTARTS && !serve_again {
                        std::fs::write(&setup.control, "serve\n").expect("control file");
                        serve_again = true;
                    }
                }
            }
            if starts.len() >= BACKOFF_RESTARTS {
                Ok(())
            } else {
                Err(starts.len())
            }
        });
    if let Err(timed_out) = restarts {
        daemon.fail(&format!(
            "backoff phase: only {} restarts within {BACKOFF_DEADLINE:?}",
            timed_out.last
        ));
    }
    if !serve_again {
        std::fs::write(&setup.control, "serve\n").expect("control file");
    }
    let mut steps = Vec::new();
    for (k, &(start_ms, _)) in starts.iter().enumerate() {
        let restart = k + 1;
        let nominal = if restart >= CRASHLOOP_RESTARTS {
            BACKOFF_MAX_SECS
        } else {
            (BACKOFF_INITIAL_SECS * 2f64.powi(k as i32)).min(BACKOFF_MAX_SECS)
        };
        let ran = (k > 0).then(|| Duration::from_millis((exits[k] - starts[k - 1].0) as u64));
        steps.push(Step {
            index: restart,
            delay: Duration::from_millis(start_ms.saturating_sub(exits[k]) as u64),
            nominal,
            phase: if phases[k].is_empty() {
                "?".into()
            } else {
                phases[k].clone()
            },
            ran,
        });
        println!(
            "  restart {restart}: {} after the exit",
            secs(steps[k].delay)
        );
    }
    steps
}

// -------------------------------------------------------------------------------------------
// Polling helpers
// -------------------------------------------------------------------------------------------

fn read_status(root: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(root.join("run/kaas-join/status.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn phase(status: &serde_json::Value) -> String {
    status["kubelet"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn kubelet_pid(status: &serde_json::Value) -> Option<u32> {
    status["kubelet"]["pid"].as_u64().map(|p| p as u32)
}

/// Waits until the status file says kubelet is Running; returns that status.
fn wait_running(setup: &Setup, daemon: &mut Daemon) -> serde_json::Value {
    wait_running_other_than(setup, daemon, None)
}

/// [`wait_running`] for a kubelet other than `killed`: the status file may still name the
/// killed one for a moment after its death.
fn wait_running_other_than(
    setup: &Setup,
    daemon: &mut Daemon,
    killed: Option<u32>,
) -> serde_json::Value {
    let found = Wait::new("kubelet Running", RUNNING_DEADLINE)
        .every(Duration::from_millis(20))
        .poll_blocking(|| {
            read_status(&setup.root).filter(|s| {
                phase(s) == "running" && kubelet_pid(s).is_some_and(|p| Some(p) != killed)
            })
        })
        .ok();
    match found {
        Some(s) => s,
        None => {
            let last = read_status(&setup.root);
            daemon.fail(&format!(
                "kubelet not Running within {RUNNING_DEADLINE:?}; status: {last:?}"
            ))
        }
    }
}

/// `KubeletUnhealthy` (status, reason) on the Node.
fn kubelet_condition(sb: &Sandbox) -> Option<(String, String)> {
    let node = sb.node(NODE)?;
    let c = node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "KubeletUnhealthy")?;
    Some((
        c["status"].as_str()?.to_owned(),
        c["reason"].as_str().unwrap_or_default().to_owned(),
    ))
}

fn wait_condition(sb: &Sandbox, daemon: &mut Daemon, want: &str) {
    if Wait::new(format!("KubeletUnhealthy {want}"), CONDITION_DEADLINE)
        .every(Duration::from_millis(20))
        .poll_blocking(|| kubelet_condition(sb).filter(|(s, _)| s == want))
        .ok()
        .is_none()
    {
        daemon.fail(&format!(
            "KubeletUnhealthy not {want} within {CONDITION_DEADLINE:?}; now {:?}",
            kubelet_condition(sb)
        ));
    }
}

/// `<unix ms> <pid>` lines of the fake kubelet's starts file.
fn read_starts(path: &Path) -> Vec<(u128, u32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (ms, pid) = l.split_once(' ')?;
            Some((ms.trim().parse().ok()?, pid.trim().parse().ok()?))
        })
        .collect()
}

fn count_bootstrap(records: &[RequestRecord]) -> usize {
    records
        .iter()
        .filter(|r| r.identity.starts_with("system:bootstrap:"))
        .count()
}

/// Requests grouped by kind, e.g. `2 × PATCH node status, 1 × POST event`.
fn by_kind(records: &[RequestRecord]) -> String {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        let kind = if r.path.starts_with("/api/v1/nodes/") && r.path.ends_with("/status") {
            format!("{} node status", r.method)
        } else if r.path.contains("/events") {
            format!("{} event", r.method)
        } else {
            format!("{} {}", r.method, r.path)
        };
        *kinds.entry(format!("{kind} → {}", r.status)).or_default() += 1;
    }
    if kinds.is_empty() {
        return "none".into();
    }
    kinds
        .iter()
        .map(|(k, n)| format!("{n} × {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// -------------------------------------------------------------------------------------------
// /proc
// -------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct ProcStatus {
    rss_kib: u64,
    hwm_kib: u64,
    anon_kib: u64,
    threads: u64,
}

fn status_fields(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k, v.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

fn proc_status(pid: u32) -> Option<ProcStatus> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let f = status_fields(&text);
    Some(ProcStatus {
        rss_kib: *f.get("VmRSS")?,
        hwm_kib: *f.get("VmHWM")?,
        anon_kib: f.get("RssAnon").copied().unwrap_or(0),
        threads: f.get("Threads").copied().unwrap_or(0),
    })
}

/// Fields of `/proc/<pid>/stat` after the command name: [0] is the state, [11] utime, [12] stime.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime of the whole process (all threads), in clock ticks.
fn proc_cpu_ticks(pid: u32) -> u64 {
    stat_fields(pid).map_or(0, |f| {
        f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
    })
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    pid != 0 && stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z" && s != "X"))
}

/// (syscr, syscw) of the whole process.
fn proc_io(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let f = status_fields(&text);
    (
        f.get("syscr").copied().unwrap_or(0),
        f.get("syscw").copied().unwrap_or(0),
    )
}

/// (voluntary, involuntary) context switches per thread id. `/proc/<pid>/status` counts only
/// the main thread, so every `/proc/<pid>/task/<tid>/status` is read.
fn thread_switches(pid: u32) -> HashMap<u32, (u64, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let f = status_fields(&text);
        out.insert(
            tid,
            (
                f.get("voluntary_ctxt_switches").copied().unwrap_or(0),
                f.get("nonvoluntary_ctxt_switches").copied().unwrap_or(0),
            ),
        );
    }
    out
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

// -------------------------------------------------------------------------------------------
// Binaries and formatting
// -------------------------------------------------------------------------------------------

/// fake-kubelet: next to the bench (`target/release`), in `target/debug`, or `$FAKE_KUBELET_BIN`.
fn find_fake_kubelet() -> Option<PathBuf> {
    let target = common::bench::target_dir();
    [
        common::bench::expected_kaas_join().with_file_name("fake-kubelet"),
        target.join("debug/fake-kubelet"),
    ]
    .into_iter()
    .chain(std::env::var_os("FAKE_KUBELET_BIN").map(PathBuf::from))
    .find(|p| p.is_file())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn secs_f(s: f64) -> String {
    format!("{s:.0} s")
}

fn kib(k: u64) -> String {
    format!("{k} KiB ({:.1} MiB)", k as f64 / 1024.0)
}
