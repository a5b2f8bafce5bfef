//! The load benchmark: 1,000 concurrent joins (distinct node names) from one process against one
//! sandbox control plane on loopback, whose CSR approver works like kube-controller-manager's:
//! 5 workers, about 10 ms per approval. Reports successes, join latency, requests and retries
//! per join, and the steady API write rate per node extrapolated to 10,000 nodes beside
//! kubelet's own.
//!
//! Run it (see BENCHMARKS.md, "Load"):
//!
//! ```text
//! cargo bench --locked --bench load
//! ```
//!
//! Bounded: every join has 60 s discovery and TLS-bootstrap timeouts and a hard 120 s guard; the
//! whole run must end within 3 minutes (it takes a few seconds). Prints a table and writes it
//! to `target/bench-load.txt`. The open-file limit is raised to the hard limit with `prlimit`
//! (util-linux) when the soft limit is too low; `unsafe` is denied in this workspace, so there
//! is no `setrlimit` call here. Without `prlimit`, run `ulimit -n 65536` first.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kaas_join::cmd::join::report::{JoinReport, Outcome};
use kaas_join::config::JoinConfig;
use kaas_join::k8s::client::RequestCounter;

/// Concurrent joins.
const JOINS: usize = 1_000;
/// kube-controller-manager's csrapproving controller runs 5 workers (`--concurrent-...`
/// default); the sandbox serialises approvals over `kaas_sandbox`'s 5 workers.
const APPROVER_WORKERS: u32 = 5;
/// Time one approval takes a worker (SubjectAccessReview + update, on a real control plane).
const APPROVAL_TIME: Duration = Duration::from_millis(10);
/// Discovery and TLS-bootstrap timeouts of every join.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// Hard guard around one join.
const JOIN_GUARD: Duration = Duration::from_secs(120);
/// The whole benchmark must finish within this.
const TOTAL_BUDGET: Duration = Duration::from_secs(180);
/// Requests of one join without retries (BENCHMARKS.md lists them).
const REQUESTS_WITHOUT_RETRIES: u64 = 7;
/// Open files wanted: each join holds up to 3 connections (both ends are in this process),
/// plus files being written.
const WANTED_OPEN_FILES: u64 = 16 * JOINS as u64;

// Steady write rates. Sources: kubelet defaults (KubeletConfiguration v1beta1) and the design of
// `kaas-join run` (docs/DESIGN.md, `--heartbeat` in src/cli/run.rs).
/// kubelet `nodeLeaseDurationSeconds` default.
const KUBELET_NODE_LEASE_DURATION_SECONDS: u64 = 40;
/// kubelet renews its Lease every `nodeLeaseDurationSeconds * 0.25` (`NodeLeaseRenewIntervalFraction`).
const KUBELET_LEASE_RENEW_FRACTION: f64 = 0.25;
/// kubelet `nodeStatusReportFrequency` default: a status update at least this often, even when
/// nothing changed.
const KUBELET_NODE_STATUS_REPORT_FREQUENCY_SECONDS: u64 = 5 * 60;
/// `kaas-join run --heartbeat` default: node conditions are re-sent this often when nothing
/// changed (otherwise written only on change, plus an Event per transition).
const DAEMON_HEARTBEAT_SECONDS: u64 = 5 * 60;
/// Fleet size to extrapolate to.
const FLEET: u64 = 10_000;

fn main() {
    let started = Instant::now();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kaas-join load benchmark: {JOINS} concurrent joins, approver {APPROVER_WORKERS} workers x {} ms",
        APPROVAL_TIME.as_millis()
    );
    let _ = writeln!(
        out,
        "{}",
        common::bench::raise_open_file_limit(WANTED_OPEN_FILES)
    );

    // The sandbox gets its own runtime (its own 2 threads), the joins another: both share the
    // machine's cores, as a control plane and its clients would not.
    let sandbox_rt = common::bench::sandbox_runtime();
    let sb = common::bench::start_sandbox(&sandbox_rt, APPROVAL_TIME);
    let _ = writeln!(out, "sandbox on {}", sb.url());

    let token = sb.create_token();
    let pin = sb.ca_cert_hash();
    let parent = tempfile::TempDir::new().expect("temp dir");
    let records_before = sb.requests().len();

    let joins_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("joins")
        .enable_all()
        .build()
        .expect("joins runtime");
    let wall = Instant::now();
    let results: Vec<JoinResult> = joins_rt.block_on(async {
        let mut tasks = Vec::with_capacity(JOINS);
        for i in 0..JOINS {
            let root = parent.path().join(format!("node-{i}"));
            std::fs::create_dir(&root).expect("node root");
            let cfg = config(&sb.url(), &token, &pin, &root, &format!("load-node-{i:04}"));
            tasks.push(tokio::spawn(one_join(cfg)));
        }
        let mut results = Vec::with_capacity(JOINS);
        for t in tasks {
            results.push(t.await.unwrap_or_else(|e| JoinResult {
                elapsed: Duration::ZERO,
                node_check_retried: false,
                steps: vec![],
                requests: 0,
                discovery_retries: 0,
                error: Some(format!("task: {e}")),
            }));
        }
        results
    });
    let wall = wall.elapsed();
    let records = sb.requests();
    let records = &records[records_before.min(records.len())..];

    // Results.
    let ok: Vec<&JoinResult> = results.iter().filter(|r| r.error.is_none()).collect();
    let mut latencies: Vec<Duration> = ok.iter().map(|r| r.elapsed).collect();
    latencies.sort();
    let requests: Vec<u64> = results.iter().map(|r| r.requests).collect();
    let extra: u64 = requests
        .iter()
        .map(|&n| n.saturating_sub(REQUESTS_WITHOUT_RETRIES))
        .sum();
    let discovery_retries: u64 = results.iter().map(|r| u64::from(r.discovery_retries)).sum();
    let with_extra = requests
        .iter()
        .filter(|&&n| n > REQUESTS_WITHOUT_RETRIES)
        .count();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        let kind = if r.path.ends_with("/cluster-info") {
            "cluster-info"
        } else if r.path.contains("/configmaps/") {
            "cluster ConfigMaps"
        } else if r.path.starts_with("/api/v1/nodes/") {
            "node"
        } else if r.path.contains("certificatesigningrequests") {
            if r.method == "POST" {
                "CSR create"
            } else if r.query.contains("watch=true") {
                "CSR watch"
            } else {
                "CSR get"
            }
        } else {
            "other"
        };
        *statuses
            .entry(format!("{kind} {} {}", r.method, r.status))
            .or_default() += 1;
    }
    let mut steps: Vec<(&'static str, Vec<u64>)> = Vec::new();
    for r in &ok {
        for &(name, millis) in &r.steps {
            match steps.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(millis),
                None => steps.push((name, vec![millis])),
            }
        }
    }
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);

    let _ = writeln!(out);
    let _ = writeln!(out, "| measure | value |");
    let _ = writeln!(out, "|---|---|");
    let _ = writeln!(out, "| successful joins | {}/{JOINS} |", ok.len());
    if !latencies.is_empty() {
        let _ = writeln!(
            out,
            "| join latency (all started at once) | p50 {}, p99 {}, max {}, min {} |",
            ms(common::bench::percentile(&latencies, 50.0)),
            ms(common::bench::percentile(&latencies, 99.0)),
            ms(*latencies.last().unwrap()),
            ms(latencies[0]),
        );
    }
    let retried = ok.iter().filter(|r| r.node_check_retried).count();
    let _ = writeln!(
        out,
        "| duplicate-name check retried before it answered (it never passes unchecked) | {retried} joins |"
    );
    let (rmin, rmax, rmean) = common::bench::stats(&requests);
    let _ = writeln!(
        out,
        "| HTTP requests per join | min {rmin}, mean {rmean:.2}, max {rmax} ({} in all; the sandbox saw {}) |",
        requests.iter().sum::<u64>(),
        records.len()
    );
    let _ = writeln!(
        out,
        "| retries | {extra} requests beyond {REQUESTS_WITHOUT_RETRIES} per join, in {with_extra} joins; discovery retries reported: {discovery_retries} |"
    );
    let _ = writeln!(
        out,
        "| requests the sandbox answered, by kind, method and status | {} |",
        statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (name, v) in &mut steps {
        v.sort_unstable();
        let at = |p: f64| v[(((p / 100.0) * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        let _ = writeln!(
            out,
            "| phase `{name}` (from the reports) | p50 {} ms, p99 {} ms, max {} ms |",
            at(50.0),
            at(99.0),
            v[v.len() - 1]
        );
    }
    let _ = writeln!(
        out,
        "| wall time, first join started to last finished | {} ({:.0} joins/s) |",
        ms(wall),
        ok.len() as f64 / wall.as_secs_f64()
    );
    let floor = APPROVAL_TIME * JOINS as u32 / APPROVER_WORKERS;
    let _ = writeln!(
        out,
        "| approver floor ({JOINS} approvals / {APPROVER_WORKERS} workers x {} ms) | {} |",
        APPROVAL_TIME.as_millis(),
        ms(floor)
    );
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for r in &results {
        if let Some(e) = &r.error {
            *errors.entry(e.chars().take(160).collect()).or_default() += 1;
        }
    }
    for (e, n) in &errors {
        let _ = writeln!(out, "| failed ({n}x) | {e} |");
    }

    let _ = writeln!(out);
    write_rate_table(&mut out);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "total benchmark time: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    print!("{out}");
    let report_path = common::bench::target_dir().join("bench-load.txt");
    match std::fs::write(&report_path, &out) {
        Ok(()) => println!("written to {}", report_path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", report_path.display()),
    }

    drop(joins_rt);
    sandbox_rt.block_on(sb.shutdown());
    assert!(
        started.elapsed() < TOTAL_BUDGET,
        "the benchmark took {:?}, over its {TOTAL_BUDGET:?} budget",
        started.elapsed()
    );
    assert_eq!(ok.len(), JOINS, "not every join succeeded: {errors:?}");
}

struct JoinResult {
    elapsed: Duration,
    /// The duplicate-name check needed retries before the API server answered it.
    node_check_retried: bool,
    /// (step name, whole milliseconds) from the join's report.
    steps: Vec<(&'static str, u64)>,
    requests: u64,
    discovery_retries: u32,
    error: Option<String>,
}

async fn one_join(cfg: JoinConfig) -> JoinResult {
    let counter = Arc::new(RequestCounter::default());
    let t = Instant::now();
    let result = tokio::time::timeout(
        JOIN_GUARD,
        kaas_join::cmd::join::join_with_counter(&cfg, vec![], counter.clone()),
    )
    .await;
    let elapsed = t.elapsed();
    let requests = counter.get();
    match result {
        Err(_) => JoinResult {
            elapsed,
            node_check_retried: false,
            steps: vec![],
            requests,
            discovery_retries: 0,
            error: Some(format!("no result within {JOIN_GUARD:?}")),
        },
        Ok(Err(e)) => JoinResult {
            elapsed,
            node_check_retried: false,
            steps: vec![],
            requests,
            discovery_retries: 0,
            error: Some(e.to_string()),
        },
        Ok(Ok(report)) => JoinResult {
            elapsed,
            node_check_retried: report.steps.iter().any(|s| {
                s.name == "cluster" && s.detail.contains("duplicate-name check answered after")
            }),
            steps: report.steps.iter().map(|s| (s.name, s.millis)).collect(),
            requests,
            discovery_retries: discovery_retries(&report),
            error: (report.outcome != Outcome::Joined)
                .then(|| format!("outcome {:?}", report.outcome)),
        },
    }
}

/// The discover step says "(after N retries)" when it retried.
fn discovery_retries(report: &JoinReport) -> u32 {
    report
        .steps
        .iter()
        .find(|s| s.name == "discover")
        .and_then(|s| {
            let rest = s.detail.rsplit_once("(after ")?.1;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

fn config(server: &str, token: &str, pin: &str, root: &Path, node_name: &str) -> JoinConfig {
    let pin = pin.parse().expect("sandbox pin");
    common::join_config(server, token, pin, node_name, root, PHASE_TIMEOUT)
}

/// Writes per node per hour, and per second for [`FLEET`] nodes, in steady state (no changes).
fn write_rate_table(out: &mut String) {
    let lease_renew_seconds =
        KUBELET_NODE_LEASE_DURATION_SECONDS as f64 * KUBELET_LEASE_RENEW_FRACTION;
    let rows: [(&str, f64, &str); 3] = [
        (
            "kubelet: node Lease renewals",
            3600.0 / lease_renew_seconds,
            "nodeLeaseDurationSeconds 40 x 0.25 = every 10 s",
        ),
        (
            "kubelet: node status updates when nothing changes",
            3600.0 / KUBELET_NODE_STATUS_REPORT_FREQUENCY_SECONDS as f64,
            "nodeStatusReportFrequency 5m",
        ),
        (
            "kaas-join run: node conditions (design value)",
            3600.0 / DAEMON_HEARTBEAT_SECONDS as f64,
            "written on change only, plus one heartbeat per --heartbeat 5m (and an Event per transition, none in steady state)",
        ),
    ];
    let _ = writeln!(
        out,
        "Steady API write rate (no changes on the node), per node and for {FLEET} nodes:"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| writer | writes/node/hour | writes/hour, {FLEET} nodes | writes/s, {FLEET} nodes | from |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (who, per_hour, from) in rows {
        let fleet_hour = per_hour * FLEET as f64;
        let _ = writeln!(
            out,
            "| {who} | {per_hour:.0} | {} | {:.1} | {from} |",
            thousands(fleet_hour.round() as u64),
            fleet_hour / 3600.0
        );
    }
    let daemon = 3600.0 / DAEMON_HEARTBEAT_SECONDS as f64;
    let kubelet =
        3600.0 / lease_renew_seconds + 3600.0 / KUBELET_NODE_STATUS_REPORT_FREQUENCY_SECONDS as f64;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "The daemon adds {:.1}% to kubelet's own steady writes. Its figure is the design value \
         (writes on change + one heartbeat per 5 minutes), not a measurement: it stays so until \
         `kaas-join run`'s own benchmark measures it.",
        100.0 * daemon / kubelet
    );
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
