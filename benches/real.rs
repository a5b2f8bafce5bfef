//! The benchmark against a REAL control plane: etcd, kube-apiserver and kube-controller-manager
//! (the kit in `tests/common/real/`, set up as `kubeadm init` does) on loopback.
//!
//! 1. Side by side, interleaved on the same control plane: `kaas-join join` (the binary, start
//!    to exit = files written; and the library call) and `kubeadm join` with a real kubelet and
//!    containerd (`tests/common/real/kubeadm.rs`), [`SIDE_BY_SIDE`] times each, every join with
//!    a token of its own, and the requests each made counted from the API server's audit log.
//! 2. To the Node registered by the real kubelet: `kaas-join run` beside `kaas-join join` and
//!    kubelet started at once, [`NODE_JOINS`] each on fresh node hosts
//!    (`tests/common/real/node_host.rs`), and kubeadm's from 1.
//! 3. Load: [`LOAD_JOINS`] concurrent library joins (`join_with_counter`, distinct node names
//!    and roots, one token, as `benches/load.rs` does against the sandbox) against the real
//!    kube-apiserver and kube-controller-manager: successes, p50/p99, and how far the wall time
//!    is above the approver's floor and the CPU's floor.
//!
//! ```text
//! export KUBEBUILDER_ASSETS=$(scripts/test-binaries.sh)   # etcd, kube-apiserver, kube-controller-manager, kubeadm, kubelet
//! cargo bench --locked --bench real
//! ```
//!
//! Without `KUBEBUILDER_ASSETS` it says why and exits 0; without containerd (or kubeadm and
//! kubelet in the folder) it skips the kubeadm half and says so. Bounded: every join has phase
//! timeouts and a guard, the whole run must end within [`TOTAL_BUDGET`]. Prints a table and
//! writes it to `target/bench-real.txt`. Numbers only: nothing here asserts a timing.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/real/mod.rs"]
mod real;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kaas_join::cmd::join::report::Outcome;
use kaas_join::k8s::client::RequestCounter;
use real::audit::{self, Event};
use real::kubeadm::{self, Containerd, KubeadmRun};
use real::node::Node;
use real::node_host::{self, NodeHost};
use real::{RealControlPlane, Setup};

/// Joins of each kind side by side (`KAAS_BENCH_SIDE_BY_SIDE` for a quicker look).
const SIDE_BY_SIDE: usize = 10;
/// Joins of each kind to the Node registered by the real kubelet (`KAAS_BENCH_NODE_JOINS`).
const NODE_JOINS: usize = 10;
/// Longest wait for one of them.
const REGISTER_GUARD: Duration = Duration::from_secs(120);
/// Concurrent joins of the load run (`KAAS_BENCH_LOAD_JOINS` for a quicker look).
const LOAD_JOINS: usize = 1_000;
/// Phase timeouts of a side-by-side join.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// Phase timeouts of a load join: kaas-join's defaults (5 minutes), far above the approver's
/// floor for 1,000 CSRs (about 100 s, see [`approver_floor`]).
const LOAD_PHASE_TIMEOUT: Duration = Duration::from_secs(300);
/// Hard guard around one load join.
const LOAD_GUARD: Duration = Duration::from_secs(420);
/// The whole benchmark must finish within this.
const TOTAL_BUDGET: Duration = Duration::from_secs(15 * 60);
/// Open files wanted: every join's connections, and the API server's ends of them (it inherits
/// the limit).
const OPEN_FILES_PER_JOIN: u64 = 16;
/// kube-controller-manager's client defaults (`--kube-api-qps`, `--kube-api-burst`; kubeadm
/// keeps them): the csrapproving controller's clientset is limited to this.
const KCM_QPS: f64 = 20.0;
const KCM_BURST: f64 = 30.0;
/// Writes the csrapproving controller makes per node client CSR through that clientset: a
/// SubjectAccessReview (may the requester create `nodeclient`?) and the approval update.
const APPROVER_WRITES_PER_CSR: f64 = 2.0;

fn main() {
    let started = Instant::now();
    let Some(assets) = real::assets_dir() else {
        println!(
            "real-control-plane benchmark skipped: {} is not set; {}",
            real::ASSETS_ENV,
            real::HOW_TO_GET_BINARIES
        );
        return;
    };
    let side_by_side_joins = from_env("KAAS_BENCH_SIDE_BY_SIDE", SIDE_BY_SIDE);
    let load_joins = from_env("KAAS_BENCH_LOAD_JOINS", LOAD_JOINS);
    let mut out = String::new();
    let _ = writeln!(out, "kaas-join against a real control plane");
    let _ = writeln!(
        out,
        "{}",
        common::bench::raise_open_file_limit(OPEN_FILES_PER_JOIN * load_joins as u64)
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cp = runtime.block_on(RealControlPlane::start_with(Setup::Kubeadm, &assets));
    write_versions(&mut out, &assets);
    let _ = writeln!(
        out,
        "control plane on {} (folder {})",
        cp.server,
        cp.dir().display()
    );

    // A first join wakes every controller and connection pool; not measured.
    let warm = runtime.block_on(library_join(&cp, "bench-warm-up"));
    let _ = writeln!(out, "warm-up join: {:.0} ms", ms(warm));

    let kubeadm_registered = side_by_side(&runtime, &cp, &assets, side_by_side_joins, &mut out);
    let node_joins = from_env("KAAS_BENCH_NODE_JOINS", NODE_JOINS);
    to_registered(
        &runtime,
        &cp,
        &assets,
        node_joins,
        &kubeadm_registered,
        &mut out,
    );
    load(&runtime, &cp, load_joins, &mut out);

    let _ = writeln!(
        out,
        "\ntotal benchmark time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    print!("{out}");
    let path = common::bench::target_dir().join("bench-real.txt");
    match std::fs::write(&path, &out) {
        Ok(()) => println!("written to {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
    drop(cp);
    assert!(
        started.elapsed() < TOTAL_BUDGET,
        "the benchmark took {:?}, over its {TOTAL_BUDGET:?} budget",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Side by side
// ---------------------------------------------------------------------------------------------

/// What one join of either kind took and asked.
struct Sample {
    /// Start to exit (kaas-join: files written; kubeadm: its exit).
    wall: Duration,
    requests: Requests,
}

/// Requests of one join from the audit log: as the token or anonymous (discovery, the
/// cluster's configuration, the CSR: everything up to the certificate), and as the new node.
#[derive(Default)]
struct Requests {
    until_certificate: usize,
    as_node: usize,
    lines: Vec<String>,
    /// From the join's start to kubelet's creation of the Node (kubeadm joins).
    node_registered: Option<Duration>,
}

/// The side-by-side joins and their table; how long each kubeadm join took until kubelet had
/// registered the Node (for [`to_registered`]).
fn side_by_side(
    runtime: &tokio::runtime::Runtime,
    cp: &RealControlPlane,
    assets: &Path,
    joins: usize,
    out: &mut String,
) -> Vec<Duration> {
    if joins == 0 {
        return Vec::new();
    }
    let kubeadm_ready = kubeadm_prerequisites(assets);
    let containerd = kubeadm_ready.and_then(|()| Containerd::start());
    let mut binary = Vec::new();
    let mut library = Vec::new();
    let mut kubeadm: Vec<(KubeadmRun, Requests)> = Vec::new();
    let mut kubeadm_error = containerd.as_ref().err().cloned();
    for i in 0..joins {
        binary.push(binary_join(runtime, cp, &format!("bench-kaas-{i}")));
        library.push(runtime.block_on(library_join(cp, &format!("bench-lib-{i}"))));
        if let (Ok(containerd), None) = (&containerd, &kubeadm_error) {
            match kubeadm_once(runtime, cp, assets, containerd, i) {
                Ok(run) => kubeadm.push(run),
                Err(e) => kubeadm_error = Some(e),
            }
        }
    }
    drop(containerd);
    write_side_by_side(out, joins, &binary, &library, &kubeadm, kubeadm_error);
    kubeadm
        .iter()
        .filter_map(|(_, r)| r.node_registered)
        .collect()
}

/// The side-by-side table and the first join of each kind's requests.
fn write_side_by_side(
    out: &mut String,
    joins: usize,
    binary: &[Sample],
    library: &[Duration],
    kubeadm: &[(KubeadmRun, Requests)],
    kubeadm_error: Option<String>,
) {
    let _ = writeln!(
        out,
        "\n## Side by side ({joins} joins each, interleaved, one control plane)\n"
    );
    let _ = writeln!(out, "| measure | kaas-join | kubeadm join + kubelet |");
    let _ = writeln!(out, "|---|---|---|");
    let walls: Vec<Duration> = binary.iter().map(|s| s.wall).collect();
    let k = |f: fn(&KubeadmRun) -> Duration| -> Vec<Duration> {
        kubeadm.iter().map(|(r, _)| f(r)).collect()
    };
    let none = || kubeadm_error.clone().unwrap_or_else(|| "-".into());
    let or_none = |v: &[Duration]| if v.is_empty() { none() } else { summary(v) };
    row(out, "discovery + TLS bootstrap + files (kaas-join: process start to exit; kubeadm: to kubelet's client certificate)", &summary(&walls), &or_none(&k(|r| r.certificate)));
    row(
        out,
        "until the process exits",
        &summary(&walls),
        &or_none(&k(|r| r.wall)),
    );
    row(
        out,
        "kubeadm alone: discovery, configuration, files (to kubeadm-flags.env)",
        "-",
        &or_none(&k(|r| r.files)),
    );
    row(
        out,
        "kubelet alone: start to client certificate (its TLS bootstrap)",
        "-",
        &or_none(&k(|r| r.kubelet_bootstrap)),
    );
    row(
        out,
        "library join (`join_with_counter`, no process start)",
        &summary(library),
        "-",
    );
    let counts = |v: &[&Requests], f: fn(&Requests) -> usize| {
        let n: Vec<u64> = v.iter().map(|r| f(r) as u64).collect();
        let (min, max, mean) = common::bench::stats(&n);
        format!("min {min}, mean {mean:.1}, max {max}")
    };
    let ours: Vec<&Requests> = binary.iter().map(|s| &s.requests).collect();
    let theirs: Vec<&Requests> = kubeadm.iter().map(|(_, r)| r).collect();
    let or = |v: &[&Requests], f: fn(&Requests) -> usize| {
        if v.is_empty() {
            none()
        } else {
            counts(v, f)
        }
    };
    row(
        out,
        "requests until the certificate (anonymous + bootstrap token, audit log)",
        &counts(&ours, |r| r.until_certificate),
        &or(&theirs, |r| r.until_certificate),
    );
    row(
        out,
        "requests as the node until the process exits (audit log)",
        &counts(&ours, |r| r.as_node),
        &or(&theirs, |r| r.as_node),
    );
    for (who, r) in [
        ("kaas-join", ours.first()),
        ("kubeadm join + kubelet", theirs.first()),
    ] {
        if let Some(r) = r {
            let _ = writeln!(
                out,
                "\nrequests of the first {who} join:\n  {}",
                r.lines.join("\n  ")
            );
        }
    }
}

fn row(out: &mut String, what: &str, ours: &str, theirs: &str) {
    let _ = writeln!(out, "| {what} | {ours} | {theirs} |");
}

/// kubeadm and kubelet in the assets folder (containerd is checked when it starts).
fn kubeadm_prerequisites(assets: &Path) -> Result<(), String> {
    let missing = real::missing_binaries(assets, &["kubeadm", "kubelet"]);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("skipped: {}", missing.join(", ")))
    }
}

/// One `kaas-join join` of the real binary, its own token and root.
fn binary_join(runtime: &tokio::runtime::Runtime, cp: &RealControlPlane, name: &str) -> Sample {
    let token = runtime.block_on(cp.token());
    let node = Node::new(name, &token.full());
    let offset = cp.audit.offset();
    let t = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_kaas-join"))
        .args(node.join_args(cp, PHASE_TIMEOUT, &[]))
        .env_remove("KAAS_JOIN_TOKEN")
        .output()
        .expect("the kaas-join binary runs");
    let wall = t.elapsed();
    assert!(
        output.status.success(),
        "kaas-join join {name} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let events = runtime.block_on(cp.audit_since(offset));
    Sample {
        wall,
        requests: count(&events, &token.id, name),
    }
}

/// One library join into a fresh root with its own token; its wall time.
async fn library_join(cp: &RealControlPlane, name: &str) -> Duration {
    let token = cp.token().await;
    let root = tempfile::tempdir().expect("temp dir");
    let cfg = cp.join_config(&token.full(), name, root.path(), PHASE_TIMEOUT);
    let t = Instant::now();
    let report = kaas_join::cmd::join::join(&cfg, vec![])
        .await
        .unwrap_or_else(|e| panic!("library join {name}: {e}"));
    assert_eq!(report.outcome, Outcome::Joined);
    t.elapsed()
}

fn kubeadm_once(
    runtime: &tokio::runtime::Runtime,
    cp: &RealControlPlane,
    assets: &Path,
    containerd: &Containerd,
    i: usize,
) -> Result<(KubeadmRun, Requests), String> {
    let token = runtime.block_on(cp.token());
    let name = format!("bench-kubeadm-{i}");
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let offset = cp.audit.offset();
    let run = kubeadm::kubeadm_join(
        assets,
        containerd,
        &cp.server,
        &token.full(),
        &cp.pin().to_string(),
        &name,
        work.path(),
    )?;
    let events = runtime.block_on(cp.audit_since(offset));
    let mut requests = count(&events, &token.id, &name);
    requests.node_registered = node_host::node_created_at(&events, &name)
        .and_then(|at| at.duration_since(run.started_at).ok());
    Ok((run, requests))
}

/// The join's requests among `events`: anonymous ones (joins run one at a time), its token's,
/// its node's.
fn count(events: &[Event], token_id: &str, node: &str) -> Requests {
    let token_user = format!("system:bootstrap:{token_id}");
    let node_user = format!("system:node:{node}");
    let mut r = Requests::default();
    for e in audit::requests(events) {
        if e.user == "system:anonymous" || e.user == token_user {
            r.until_certificate += 1;
        } else if e.user == node_user {
            r.as_node += 1;
        } else {
            continue;
        }
        r.lines.push(format!("{} [{}]", e.line(), e.user_agent));
    }
    r
}

// ---------------------------------------------------------------------------------------------
// To the Node registered by the real kubelet
// ---------------------------------------------------------------------------------------------

/// From start to the Node registered by the real kubelet (the audit log's time of kubelet's
/// create, so polling adds nothing): `kaas-join run` beside `kaas-join join` followed at once by
/// kubelet with the same command line (as a script would start it), interleaved, each on a fresh
/// node host (`tests/common/real/node_host.rs`), and kubeadm's from the side-by-side joins.
fn to_registered(
    runtime: &tokio::runtime::Runtime,
    cp: &RealControlPlane,
    assets: &Path,
    joins: usize,
    kubeadm: &[Duration],
    out: &mut String,
) {
    let _ = writeln!(
        out,
        "\n## Join start to the Node registered by the real kubelet ({joins} each, interleaved)\n"
    );
    let missing = node_host::missing(assets);
    if !missing.is_empty() {
        let _ = writeln!(out, "skipped: missing {}", missing.join("; "));
        return;
    }
    let (mut run, mut script, mut error) = (Vec::new(), Vec::new(), None);
    for i in 0..joins {
        let measured = registered_under_run(runtime, cp, i)
            .and_then(|r| Ok((r, registered_join_then_kubelet(runtime, cp, assets, i)?)));
        match measured {
            Ok((r, s)) => {
                run.push(r);
                script.push(s);
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let _ = writeln!(
        out,
        "| from start | to the Node registered | to kubelet's start |"
    );
    let _ = writeln!(out, "|---|---|---|");
    let or_error = |v: &[Duration]| match (&error, v.is_empty()) {
        (Some(e), true) => e.clone(),
        _ => summary(v),
    };
    let first = |v: &[(Duration, Duration)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
    let second = |v: &[(Duration, Duration)]| v.iter().map(|p| p.1).collect::<Vec<_>>();
    let _ = writeln!(
        out,
        "| `kaas-join run` (joins, starts kubelet as its child) | {} | {} |",
        or_error(&first(&run)),
        or_error(&second(&run))
    );
    let _ = writeln!(
        out,
        "| `kaas-join join`, then kubelet at once (a script) | {} | {} |",
        or_error(&first(&script)),
        or_error(&second(&script))
    );
    let _ = writeln!(
        out,
        "| `kubeadm join` + kubelet (side-by-side joins above) | {} | - |",
        summary(kubeadm)
    );
    let _ = writeln!(
        out,
        "\neach (run, script) pair in ms: {}",
        run.iter()
            .zip(&script)
            .map(|(r, s)| format!("({:.0}, {:.0})", ms(r.0), ms(s.0)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if let Some(e) = error {
        let _ = writeln!(out, "\nstopped early: {e}");
    }
}

/// One `kaas-join run` on a fresh node host: start to the Node registered, and start to
/// kubelet's start (the daemon's log).
fn registered_under_run(
    runtime: &tokio::runtime::Runtime,
    cp: &RealControlPlane,
    i: usize,
) -> Result<(Duration, Duration), String> {
    let host = NodeHost::start(&cp.assets.join("kubelet"))?;
    let token = runtime.block_on(cp.token());
    let node = format!("bench-run-{i}");
    let args = host.kaas_join_args("run", cp, &host.token_file(&token), &node);
    let offset = cp.audit.offset();
    let started = SystemTime::now();
    let mut daemon = host.spawn_kaas_join(&args);
    wait_registered(runtime, cp, &node, || {
        daemon
            .child
            .try_wait()
            .ok()
            .flatten()
            .map(|s| format!("kaas-join run exited with {s}: {}", tail(&daemon.log())))
    })?;
    let registered = registered_since(runtime, cp, offset, &node, started)?;
    let kubelet = daemon
        .kubelet_started_at()
        .and_then(|at| at.duration_since(started).ok())
        .ok_or("no \"kubelet started\" in the daemon's log")?;
    drop(daemon);
    Ok((registered, kubelet))
}

/// One `kaas-join join` and then kubelet with the command line `run` would give it, at once:
/// start to the Node registered, and start to kubelet's start.
fn registered_join_then_kubelet(
    runtime: &tokio::runtime::Runtime,
    cp: &RealControlPlane,
    assets: &Path,
    i: usize,
) -> Result<(Duration, Duration), String> {
    let host = NodeHost::start(&assets.join("kubelet"))?;
    let token = runtime.block_on(cp.token());
    let node = format!("bench-script-{i}");
    let args = host.kaas_join_args("join", cp, &host.token_file(&token), &node);
    let offset = cp.audit.offset();
    let started = SystemTime::now();
    let joined = host
        .enter(Path::new(env!("CARGO_BIN_EXE_kaas-join")))
        .args(&args)
        .env_remove("KAAS_JOIN_TOKEN")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !joined.status.success() {
        return Err(format!(
            "kaas-join join {node}: {}\n{}",
            joined.status,
            tail(&String::from_utf8_lossy(&joined.stderr))
        ));
    }
    let argv = kaas_join::node::supervisor::kubelet_command_line(
        &kaas_join::host::paths::Paths::new(host.root()),
        &[node_host::KUBELET_VERBOSITY.to_string()],
    )
    .map_err(|e| e.to_string())?;
    let kubelet_at = SystemTime::now()
        .duration_since(started)
        .unwrap_or_default();
    let log_path = host.scratch().join("kubelet.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let kubelet = host
        .enter(&assets.join("kubelet"))
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("kubelet: {e}"))?;
    let mut kubelet = KillOnDrop(kubelet);
    wait_registered(runtime, cp, &node, || {
        kubelet.0.try_wait().ok().flatten().map(|s| {
            format!(
                "kubelet exited with {s}: {}",
                tail(&std::fs::read_to_string(&log_path).unwrap_or_default())
            )
        })
    })?;
    Ok((
        registered_since(runtime, cp, offset, &node, started)?,
        kubelet_at,
    ))
}

/// A child killed and reaped when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls (every 20 ms, at most [`REGISTER_GUARD`]) until the Node exists; `exited` says why
/// the process that should register it is gone.
fn wait_registered(
    runtime: &tokio::runtime::Runtime,
    cp: &RealControlPlane,
    node: &str,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<(), String> {
    let deadline = Instant::now() + REGISTER_GUARD;
    let path = format!("/api/v1/nodes/{node}");
    while runtime.block_on(cp.admin.get(&path)).status != 200 {
        if let Some(why) = exited() {
            return Err(why);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "Node {node} not registered within {REGISTER_GUARD:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// From `started` to kubelet's creation of the Node, by the audit log since `offset`.
fn registered_since(
    runtime: &tokio::runtime::Runtime,
    cp: &RealControlPlane,
    offset: u64,
    node: &str,
    started: SystemTime,
) -> Result<Duration, String> {
    // The create's ResponseComplete event is logged after its handler returns, which can be
    // after the Node is readable (and after the audit sentinel): look again, briefly.
    for _ in 0..50 {
        let events = runtime.block_on(cp.audit_since(offset));
        if let Some(at) = node_host::node_created_at(&events, node) {
            return at.duration_since(started).map_err(|e| e.to_string());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "no create of Node {node} by system:node:{node} in the audit log"
    ))
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

struct LoadResult {
    elapsed: Duration,
    requests: u64,
    error: Option<String>,
}

/// CPU seconds (user + system) of each control-plane process and of this one.
fn cpu_seconds(cp: &RealControlPlane) -> BTreeMap<String, f64> {
    let tick = common::bench::clock_ticks() as f64;
    let of = |pid: &str| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command.
        let get = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (get(11) + get(12)) / tick
    };
    let mut m: BTreeMap<String, f64> = cp
        .pids()
        .into_iter()
        .map(|(name, pid)| (name, of(&pid.to_string())))
        .collect();
    m.insert("the joins (this process)".into(), of("self"));
    m
}

/// (busy, total) jiffies of the whole machine, from /proc/stat.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = cpu.iter().sum();
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

async fn load_join(cfg: kaas_join::config::JoinConfig) -> LoadResult {
    let counter = Arc::new(RequestCounter::default());
    let t = Instant::now();
    let result = tokio::time::timeout(
        LOAD_GUARD,
        kaas_join::cmd::join::join_with_counter(&cfg, vec![], counter.clone()),
    )
    .await;
    let error = match result {
        Err(_) => Some(format!("no result within {LOAD_GUARD:?}")),
        Ok(Err(e)) => Some(e.to_string()),
        Ok(Ok(r)) if r.outcome != Outcome::Joined => Some(format!("outcome {:?}", r.outcome)),
        Ok(Ok(_)) => None,
    };
    LoadResult {
        elapsed: t.elapsed(),
        requests: counter.get(),
        error,
    }
}

fn load(runtime: &tokio::runtime::Runtime, cp: &RealControlPlane, joins: usize, out: &mut String) {
    if joins == 0 {
        return;
    }
    let token = runtime.block_on(cp.token());
    let parent = tempfile::tempdir().expect("temp dir");
    let cpu_before = cpu_seconds(cp);
    let machine_before = machine_jiffies();
    let offset = cp.audit.offset();
    let wall = Instant::now();
    let results: Vec<LoadResult> = runtime.block_on(async {
        let tasks: Vec<_> = (0..joins)
            .map(|i| {
                let root = parent.path().join(format!("node-{i}"));
                std::fs::create_dir(&root).expect("node root");
                let cfg = cp.join_config(
                    &token.full(),
                    &format!("load-node-{i:04}"),
                    &root,
                    LOAD_PHASE_TIMEOUT,
                );
                tokio::spawn(load_join(cfg))
            })
            .collect();
        let mut results = Vec::with_capacity(joins);
        for t in tasks {
            results.push(t.await.unwrap_or_else(|e| LoadResult {
                elapsed: Duration::ZERO,
                requests: 0,
                error: Some(format!("task: {e}")),
            }));
        }
        results
    });
    let wall = wall.elapsed();
    let cpu_after = cpu_seconds(cp);
    let machine_after = machine_jiffies();
    let events = runtime.block_on(cp.audit_since(offset));
    write_load(
        out,
        &results,
        wall,
        &cpu_before,
        &cpu_after,
        (machine_before, machine_after),
        &events,
    );
}

/// The approver's floor for `n` CSRs: its clientset's token bucket (burst, then qps) over the
/// writes each approval needs.
fn approver_floor(n: usize) -> Duration {
    let writes = APPROVER_WRITES_PER_CSR * n as f64;
    Duration::from_secs_f64(((writes - KCM_BURST) / KCM_QPS).max(0.0))
}

/// The load run's table (long: one line per figure, each with how it is made).
fn write_load(
    out: &mut String,
    results: &[LoadResult],
    wall: Duration,
    cpu_before: &BTreeMap<String, f64>,
    cpu_after: &BTreeMap<String, f64>,
    machine: ((u64, u64), (u64, u64)),
    events: &[Event],
) {
    let joins = results.len();
    let ok: Vec<&LoadResult> = results.iter().filter(|r| r.error.is_none()).collect();
    let mut latencies: Vec<Duration> = ok.iter().map(|r| r.elapsed).collect();
    latencies.sort();
    let _ = writeln!(out, "\n## Load: {joins} concurrent joins\n");
    let _ = writeln!(out, "| measure | value |");
    let _ = writeln!(out, "|---|---|");
    let _ = writeln!(out, "| successful joins | {}/{joins} |", ok.len());
    if !latencies.is_empty() {
        let _ = writeln!(
            out,
            "| join latency (all started at once) | p50 {:.1} s, p99 {:.1} s, max {:.1} s, min {:.1} s |",
            secs(common::bench::percentile(&latencies, 50.0)),
            secs(common::bench::percentile(&latencies, 99.0)),
            secs(*latencies.last().unwrap()),
            secs(latencies[0]),
        );
    }
    let _ = writeln!(
        out,
        "| wall time, first join started to last finished | {:.1} s ({:.1} joins/s) |",
        secs(wall),
        ok.len() as f64 / secs(wall)
    );
    let requests: Vec<u64> = results.iter().map(|r| r.requests).collect();
    let (rmin, rmax, rmean) = common::bench::stats(&requests);
    let _ = writeln!(
        out,
        "| HTTP requests per join (RequestCounter) | min {rmin}, mean {rmean:.2}, max {rmax} |"
    );
    write_load_audit(out, events);
    let floor = approver_floor(joins);
    let _ = writeln!(
        out,
        "| approver's floor: {joins} CSRs x {APPROVER_WRITES_PER_CSR} writes at --kube-api-qps {KCM_QPS} (burst {KCM_BURST}) | {:.1} s; the wall time is {:.2}x it |",
        secs(floor),
        secs(wall) / secs(floor).max(f64::EPSILON)
    );
    let mut total_cpu = 0.0;
    let mut parts = Vec::new();
    for (name, after) in cpu_after {
        let used = after - cpu_before.get(name).copied().unwrap_or(0.0);
        total_cpu += used;
        parts.push(format!("{name} {used:.1} s"));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let cpu_floor = total_cpu / cores;
    let ((busy0, total0), (busy1, total1)) = machine;
    let machine_busy = (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64;
    let _ = writeln!(
        out,
        "| CPU used during the run (user + system) | {} = {total_cpu:.1} s |",
        parts.join(", ")
    );
    let _ = writeln!(
        out,
        "| CPU's floor: that CPU time / {cores} cores | {cpu_floor:.1} s; the wall time is {:.2}x it; the whole machine was {:.0}% busy (/proc/stat, other users included) |",
        secs(wall) / cpu_floor.max(f64::EPSILON),
        100.0 * machine_busy
    );
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for r in results {
        if let Some(e) = &r.error {
            *errors.entry(e.chars().take(200).collect()).or_default() += 1;
        }
    }
    for (e, n) in &errors {
        let _ = writeln!(out, "| failed ({n}x) | {e} |");
    }
}

/// What the API server saw during the load run: the joiners' requests by kind and status, and
/// the approvals' rate.
fn write_load_audit(out: &mut String, events: &[Event]) {
    let requests = audit::requests(events);
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for e in requests
        .iter()
        .filter(|e| e.user == "system:anonymous" || e.user.starts_with("system:bootstrap:"))
    {
        let kind = object_kind(e.uri.split('?').next().unwrap_or_default());
        *by_kind
            .entry(format!("{} {kind} {}", e.verb, e.code))
            .or_default() += 1;
    }
    let _ = writeln!(
        out,
        "| joiners' requests the API server logged, by verb, object and status | {} |",
        by_kind
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for e in requests.iter().filter(|e| e.code >= 500) {
        let message = e.raw["responseStatus"]["message"]
            .as_str()
            .unwrap_or("(no message)");
        *failures
            .entry(format!(
                "{} {} {}: {message}",
                e.verb,
                object_kind(&e.uri),
                e.code
            ))
            .or_default() += 1;
    }
    for (what, n) in &failures {
        let _ = writeln!(
            out,
            "| server errors the audit log gives a reason for ({n}x) | {what} |"
        );
    }
    let approvals: Vec<SystemTime> = requests
        .iter()
        .filter(|e| e.verb == "update" && e.uri.contains("/approval"))
        .filter_map(|e| received_at(e))
        .collect();
    if let (Some(first), Some(last)) = (approvals.iter().min(), approvals.iter().max()) {
        let span = last.duration_since(*first).unwrap_or_default();
        let _ = writeln!(
            out,
            "| approvals (CSR approval updates in the audit log) | {} in {:.1} s = {:.1}/s (the floor's rate: {:.1}/s) |",
            approvals.len(),
            secs(span),
            approvals.len() as f64 / secs(span).max(f64::EPSILON),
            KCM_QPS / APPROVER_WRITES_PER_CSR
        );
    }
}

/// What a joiner's request is about: the ConfigMap by name, else the resource.
fn object_kind(path: &str) -> &str {
    let segments: Vec<&str> = path.split('/').collect();
    match segments.iter().position(|s| *s == "configmaps") {
        Some(at) => segments.get(at + 1).copied().unwrap_or("configmaps"),
        None if path.contains("/nodes") => "nodes",
        None if path.contains("certificatesigningrequests") => "certificatesigningrequests",
        None => path,
    }
}

fn received_at(e: &Event) -> Option<SystemTime> {
    let text = e.raw["requestReceivedTimestamp"].as_str()?;
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_nanos(u64::try_from(t.unix_timestamp_nanos()).ok()?),
    )
}

/// A count from `var`, else `default`.
fn from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// `median X ms, min, max` of unsorted durations.
fn summary(v: &[Duration]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mut v = v.to_vec();
    v.sort();
    format!(
        "median {:.0} ms, min {:.0} ms, max {:.0} ms",
        ms(common::bench::percentile(&v, 50.0)),
        ms(v[0]),
        ms(*v.last().unwrap())
    )
}

/// The machine and the versions, from the binaries themselves.
fn write_versions(out: &mut String, assets: &Path) {
    let first_line = |bin: &str, args: &[&str]| -> String {
        Command::new(assets.join(bin))
            .args(args)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_string))
            .unwrap_or_else(|| format!("{bin}: unknown"))
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "machine: {cpu}, {} CPUs; {}; {}; kubeadm {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        first_line("kube-apiserver", &["--version"]),
        first_line("etcd", &["--version"]),
        first_line("kubeadm", &["version", "-o", "short"]),
    );
}
