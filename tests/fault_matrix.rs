//! The join side of the fault matrix: for each API call of a join (cluster-info, the two config
//! reads, the node check, CSR create, CSR watch) and each fault (HTTP 500, 503, 429 with
//! Retry-After, connection refused, connection closed without an answer, connection reset
//! mid-body, TLS handshake failure, a stall past the client's timeout, a watch cut after N
//! events, a 200 whose body is not JSON), the join either completes when the fault is transient
//! or fails with the documented exit code when it persists, within its timeout, without a panic.
//!
//! Every cell gets its own sandbox on 127.0.0.1 and its own temporary root; all cells run
//! concurrently, each join in its own task under a hard timeout. The test prints the table of
//! outcomes and asserts it equals the expectation table below. `FAULTS.md` at the repository root
//! is this table as markdown; regenerate it with
//!
//! ```text
//! KAAS_WRITE_FAULTS_MD=1 cargo test --test fault_matrix -- --nocapture
//! ```
//!
//! Cells where the code does not do what a mature tool should are findings: `today` pins the
//! current behaviour for them (so any change shows) until they are fixed. F1-F5 were found and
//! fixed this way; `FAULTS.md` lists them.

mod common;

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::faults::{arm_on, Fault, Mode, PERSISTENT, STALL, STALL_FOREVER, TRANSIENT};
use kaas_join::config::JoinConfig;
use kaas_sandbox::{ApprovalMode, Sandbox, SandboxConfig};

const CLUSTER_INFO: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
const KUBEADM_CONFIG: &str = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config";
const KUBELET_CONFIG: &str = "/api/v1/namespaces/kube-system/configmaps/kubelet-config";
const NODES: &str = "/api/v1/nodes/";
const CSR_CREATE: &str = "POST /apis/certificates.k8s.io/v1/certificatesigningrequests";
const CSR_WATCH: &str = "WATCH /apis/certificates.k8s.io/v1/certificatesigningrequests";

/// Short phase timeouts, so persistent faults end quickly.
const DISCOVERY_TIMEOUT: Duration = Duration::from_millis(3000);
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_millis(4000);
/// Stall cells: the client's own request timeout is 10 s (`apiclient::REQUEST_TIMEOUT`), so a
/// transient stall needs phase timeouts longer than that to be survivable.
const STALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Scheduling slack on top of a phase timeout (a hundred joins run at once).
const SLACK: Duration = Duration::from_millis(4000);
/// No cell may take longer than this, whatever happens.
const HARD_TIMEOUT: Duration = Duration::from_secs(20);
/// Cells run at once (the CI machine may have 2 cores; most of a cell's time is waiting).
const CONCURRENCY: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Call {
    ClusterInfo,
    KubeadmConfig,
    KubeletConfig,
    NodeCheck,
    CsrCreate,
    CsrWatch,
}

impl Call {
    const ALL: [Call; 6] = [
        Call::ClusterInfo,
        Call::KubeadmConfig,
        Call::KubeletConfig,
        Call::NodeCheck,
        Call::CsrCreate,
        Call::CsrWatch,
    ];

    fn prefix(self) -> &'static str {
        match self {
            Call::ClusterInfo => CLUSTER_INFO,
            Call::KubeadmConfig => KUBEADM_CONFIG,
            Call::KubeletConfig => KUBELET_CONFIG,
            Call::NodeCheck => NODES,
            Call::CsrCreate => CSR_CREATE,
            Call::CsrWatch => CSR_WATCH,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Call::ClusterInfo => "cluster-info",
            Call::KubeadmConfig => "kubeadm-config",
            Call::KubeletConfig => "kubelet-config",
            Call::NodeCheck => "node check",
            Call::CsrCreate => "CSR create",
            Call::CsrWatch => "CSR watch",
        }
    }
}

impl Fault {
    /// Which calls the fault applies to. Refused is a closed port, which only discovery can
    /// meet (later calls go to cluster-info's server, which answered): for them it is the same
    /// class as "closed, no answer". Watch cuts only exist for the watch.
    fn applies_to(self, call: Call) -> bool {
        match self {
            Fault::Refused => call == Call::ClusterInfo,
            Fault::WatchCut => call == Call::CsrWatch,
            _ => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Joined,
    Exit(i32),
    Panicked,
    HardTimeout,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Joined => f.write_str("joined"),
            Outcome::Exit(code) => write!(f, "exit {code}"),
            Outcome::Panicked => f.write_str("PANIC"),
            Outcome::HardTimeout => f.write_str("HUNG"),
        }
    }
}

/// What a cell must show: the outcome, and whether it came within the join's own timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    outcome: Outcome,
    in_time: bool,
}

const fn ok(outcome: Outcome) -> Verdict {
    Verdict {
        outcome,
        in_time: true,
    }
}

const JOINED: Outcome = Outcome::Joined;
const fn exit(code: i32) -> Outcome {
    Outcome::Exit(code)
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    call: Call,
    fault: Fault,
    mode: Mode,
}

/// What a mature join does (the design: discovery retries what may heal until its timeout and
/// fails 3 when unreachable, 9 when the answer is not Kubernetes; config reads and CSR create
/// retry 5xx/429/unreachable until the bootstrap deadline; the watch resumes and re-reads; the
/// node check is retried until its deadline, then fails).
fn should(cell: Cell) -> Verdict {
    use Call::*;
    use Fault::*;
    if cell.mode == Mode::Transient {
        return ok(JOINED);
    }
    match (cell.call, cell.fault) {
        // The node check is retried until the phase's deadline and never passes unchecked
        // (issue 11, item 9): unreachable at the end, 9 for answers that are not the API. A
        // failing handshake does not touch it: the check runs on the pooled connection.
        (NodeCheck, InvalidJson) => ok(exit(9)),
        (NodeCheck, Tls) => ok(JOINED),
        (NodeCheck, _) => ok(exit(3)),
        (ClusterInfo, InvalidJson) => ok(exit(9)),
        // A handshake_failure alert is not a verification failure: retried, then unreachable.
        (ClusterInfo, _) => ok(exit(3)),
        // After discovery the client holds pooled, established connections: a server that now
        // fails every new handshake still serves the join through them — unless two requests
        // run at once (the config reads) and one needs a new connection: then it is retried
        // until the deadline and fails as unreachable. Both are right; see `also_right`.
        (_, Tls) => ok(JOINED),
        (KubeadmConfig | KubeletConfig | CsrCreate, InvalidJson) => ok(exit(9)),
        (KubeadmConfig | KubeletConfig | CsrCreate, _) => ok(exit(3)),
        // The watch is an optimisation: it re-reads the CSR when a watch fails.
        // A stalled watch cannot tell; a watch that always ends at once is followed by a GET.
        (CsrWatch, Stall) => ok(exit(11)),
        (CsrWatch, _) => ok(JOINED),
    }
}

/// A second correct outcome where timing decides between two: a persistent handshake failure
/// after discovery joins through pooled connections, or, when a concurrent request needed a new
/// connection, fails in time as unreachable (exit 3).
fn also_right(cell: Cell, observed: Verdict) -> bool {
    cell.fault == Fault::Tls
        && cell.mode == Mode::Persistent
        && cell.call != Call::ClusterInfo
        && observed == ok(exit(3))
}

/// Today's behaviour where it differs from [`should`], with the finding's id (see FINDINGS).
/// Empty: every finding so far (F1-F5) was fixed in src/; a new one is pinned here until fixed.
fn today(_cell: Cell) -> Option<(&'static str, Verdict)> {
    None
}

/// Findings this matrix made, all fixed (kept for FAULTS.md's history).
const FINDINGS: &[(&str, &str)] = &[
    ("F1", "A 200 whose body is not JSON (a truncated answer, e.g. from a proxy) ends the join at once (exit 9) even when the next answer would be fine, instead of being retried until the phase deadline like other transient faults (discovery: `fetch_cluster_info` maps it to `NotKubernetes`, which `may_heal` excludes; config reads and CSR create: `ApiError::NotKubernetes` is not `is_transient`). Persisting, 9 is right."),
    ("F2", "A server that answers 5xx/429 until the deadline exits 9 (\"not a Kubernetes API\") from the config reads and 10 (\"CSR refused\") from CSR create, where discovery says 3 (unreachable) for the same thing: `error::api_code` maps any status to 9 and `exit_code` maps any CSR-create status to 10."),
    ("F3", "A request that stalls is only cut by the fixed 10 s `REQUEST_TIMEOUT`, not by the phase deadline: with a 3 s discovery / 4 s bootstrap timeout the join fails only after 10 s. A stalled node check (best effort) eats the whole bootstrap budget, so the CSR wait starts at its deadline and the join fails 11 \"not approved within 0s\" although approval is instant."),
    ("F4", "A watch request whose answer stalls is not bounded at all (`ApiClient::watch` sets no timeout and `watch_until_decided` awaits `client.watch()` outside its deadline `select!`): the join hangs past `--tls-bootstrap-timeout` until the server answers."),
    ("F5", "A watch that ends cleanly without any event is re-opened (after a backoff) but the CSR is never re-read (`WatchOutcome::Ended` does not GET): behind a proxy that closes every watch at once the join never sees the approval and fails 11 \"not approved\" although the CSR was approved and signed at once (only 410/ERROR/broken streams lead to a GET)."),
];

fn cells() -> Vec<Cell> {
    let mut out = Vec::new();
    for call in Call::ALL {
        for fault in Fault::ALL {
            if !fault.applies_to(call) {
                continue;
            }
            for mode in Mode::ALL {
                out.push(Cell { call, fault, mode });
            }
        }
    }
    out
}

fn config(sb: &Sandbox, token: &str, root: &Path) -> JoinConfig {
    let mut cfg = common::sandbox_join_config(sb, token, "node-1", root, DISCOVERY_TIMEOUT);
    cfg.tls_bootstrap_timeout = BOOTSTRAP_TIMEOUT;
    cfg
}

/// A loopback port nothing listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("https://127.0.0.1:{port}")
}

/// Arms the cell's fault in the sandbox (and, for refused, in the endpoints).
fn arm(sb: &Sandbox, cfg: &mut JoinConfig, cell: Cell) {
    let f = sb.faults();
    match (cell.fault, cell.mode) {
        (Fault::Refused, mode) => {
            // Transient: the first endpoint is closed, the next one answers; persistent: the
            // only endpoint is closed.
            let closed = closed_port_url();
            cfg.servers = match mode {
                Mode::Transient => vec![closed, sb.url()],
                Mode::Persistent => vec![closed],
            };
        }
        // Discovery's TLS failure is the handshake's: no request of it is seen.
        (Fault::Tls, mode) if cell.call == Call::ClusterInfo => f.tls_fail_next(mode.hits()),
        (Fault::WatchCut, mode) => f.cut_watches_after_events(match mode {
            Mode::Transient => 1,
            Mode::Persistent => 0,
        }),
        (fault, mode) => {
            if (fault, mode) == (Fault::Stall, Mode::Transient) {
                // Phase timeouts longer than the client's request timeout, to be survivable.
                cfg.discovery_timeout = STALL_TIMEOUT;
                cfg.tls_bootstrap_timeout = STALL_TIMEOUT;
            }
            arm_on(&f, cell.call.prefix(), fault, mode);
        }
    }
}

#[derive(Debug, Clone)]
struct Observed {
    cell: Cell,
    verdict: Verdict,
    took: Duration,
    csrs: usize,
    detail: String,
}

async fn run_cell(cell: Cell) -> Observed {
    let sb = Sandbox::start(SandboxConfig {
        approval: ApprovalMode::Auto {
            delay: Duration::from_millis(100),
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts");
    let token = sb.create_token();
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config(&sb, &token, root.path());
    arm(&sb, &mut cfg, cell);
    let budget = if cell.call == Call::ClusterInfo {
        cfg.discovery_timeout
    } else {
        cfg.discovery_timeout + cfg.tls_bootstrap_timeout
    } + SLACK;

    let started = Instant::now();
    let handle = tokio::spawn(async move {
        kaas_join::cmd::join::join(&cfg, vec![])
            .await
            .map(|_| ())
            .map_err(|e| (e.exit_code(), e.to_string()))
    });
    let abort = handle.abort_handle();
    let (outcome, detail) = match tokio::time::timeout(HARD_TIMEOUT, handle).await {
        Err(_) => {
            abort.abort();
            (
                Outcome::HardTimeout,
                format!("still running after {HARD_TIMEOUT:?}"),
            )
        }
        Ok(Err(e)) => (Outcome::Panicked, e.to_string()),
        Ok(Ok(Ok(()))) => (Outcome::Joined, String::new()),
        Ok(Ok(Err((code, text)))) => (Outcome::Exit(i32::from(code.code())), text),
    };
    let took = started.elapsed();
    let csrs = sb.csrs().len();
    sb.shutdown().await;
    Observed {
        cell,
        verdict: Verdict {
            outcome,
            in_time: took <= budget,
        },
        took,
        csrs,
        detail,
    }
}

async fn run_all(cells: Vec<Cell>) -> Vec<Observed> {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    // The long ones (stalls) first, so they overlap with everything else.
    let (stalls, others): (Vec<Cell>, Vec<Cell>) =
        cells.into_iter().partition(|c| c.fault == Fault::Stall);
    for cell in stalls.into_iter().chain(others) {
        let permits = permits.clone();
        set.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore open");
            run_cell(cell).await
        });
    }
    let mut out = Vec::new();
    while let Some(result) = set.join_next().await {
        out.push(result.expect("a matrix cell's harness panicked"));
    }
    out.sort_by_key(|o| (o.cell.call, o.cell.fault, o.cell.mode));
    out
}

fn verdict_text(v: Verdict) -> String {
    if v.in_time {
        format!("{}", v.outcome)
    } else {
        format!("{} (late)", v.outcome)
    }
}

/// The expectation of the main test: [`should`], or today's behaviour for a finding.
fn expected(cell: Cell) -> (Verdict, Option<&'static str>) {
    match today(cell) {
        Some((id, v)) => (v, Some(id)),
        None => (should(cell), None),
    }
}

fn markdown(observed: &[Observed]) -> String {
    let mut md = String::new();
    md.push_str("# Fault matrix: the join side\n\n");
    md.push_str("Generated by `tests/fault_matrix.rs` (`KAAS_WRITE_FAULTS_MD=1 cargo test --test fault_matrix -- --nocapture`); the test asserts the observed column equals the expected one.\n\n");
    md.push_str(&format!(
        "Each cell joins against its own sandbox with `--discovery-timeout {}ms --tls-bootstrap-timeout {}ms` (stall cells, transient: {}s both, as the client's own request timeout is 10 s). \
A transient fault hits {TRANSIENT} times (a stall: once, {}s; a watch cut: every watch after 1 event); a persistent one {PERSISTENT} times (a stall: {}s each; a watch cut: every watch after 0 events). \
\"late\" means the outcome came after the phase timeouts plus {}ms of slack; HUNG means still running after {}s. No cell may panic.\n\n",
        DISCOVERY_TIMEOUT.as_millis(),
        BOOTSTRAP_TIMEOUT.as_millis(),
        STALL_TIMEOUT.as_secs(),
        STALL.as_secs(),
        STALL_FOREVER.as_secs(),
        SLACK.as_millis(),
        HARD_TIMEOUT.as_secs(),
    ));
    md.push_str("How each fault is made (`sandbox/src/faults.rs`): 500/503/429 `fail_next` (503/429 with `Retry-After: 1` and `retryAfterSeconds`); connection refused: a closed port as the first `--server` (transient: a working one after it) — later calls go to cluster-info's server, so for them refused is the class of \"closed, no answer\" (`drop_connections`); reset mid-body `reset_mid_body` (full `Content-Length`, half the body, close; a watch: its first event, close); TLS handshake failure: a fatal `handshake_failure` alert after the ClientHello (`tls_fail_next` for cluster-info, `tls_fail_after` for later calls: their connection is closed and every new handshake fails, while the connections the join already holds keep working, so later calls join through them); stall `stall_next`; watch cut `cut_watches_after_events`; invalid JSON `invalid_json` (200, JSON cut half-way). CSR create and watch are told apart by the `POST `/`WATCH ` verb prefix.\n\n");
    md.push_str("| call | fault | mode | expected | observed | time | finding |\n|---|---|---|---|---|---|---|\n");
    for o in observed {
        let (want, finding) = expected(o.cell);
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1}s | {} |\n",
            o.cell.call.name(),
            o.cell.fault.name(),
            o.cell.mode.name(),
            verdict_text(want),
            verdict_text(o.verdict),
            o.took.as_secs_f64(),
            finding.map_or(String::new(), |id| format!(
                "{id}: should be {}",
                verdict_text(should(o.cell))
            )),
        ));
    }
    md.push_str("\n## Findings (all fixed)\n\n");
    for (id, text) in FINDINGS {
        md.push_str(&format!("- **{id}**: {text}\n"));
    }
    md.push_str("\nExit codes: 3 unreachable, 4 TLS, 9 not a Kubernetes API / unusable answer, 10 CSR refused, 11 not approved in time (README).\n");
    md
}

fn print_table(observed: &[Observed]) {
    println!(
        "{:<15} {:<25} {:<10} {:<18} {:<18} {:>6}  detail",
        "call", "fault", "mode", "expected", "observed", "time"
    );
    for o in observed {
        let (want, finding) = expected(o.cell);
        let first_line: String = o.detail.chars().take(110).collect();
        println!(
            "{:<15} {:<25} {:<10} {:<18} {:<18} {:>5.1}s  {}{}",
            o.cell.call.name(),
            o.cell.fault.name(),
            o.cell.mode.name(),
            verdict_text(want),
            verdict_text(o.verdict),
            o.took.as_secs_f64(),
            finding.map_or(String::new(), |id| format!("[{id}] ")),
            first_line
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_matrix() {
    let started = Instant::now();
    let observed = run_all(cells()).await;
    print_table(&observed);
    println!(
        "{} cells in {:.1}s",
        observed.len(),
        started.elapsed().as_secs_f64()
    );

    if std::env::var_os("KAAS_WRITE_FAULTS_MD").is_some_and(|v| v == "1") {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("FAULTS.md");
        // The run side's section (tests/fault_matrix_run.rs writes it) follows; keep it.
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let run_side = old
            .find("# Fault matrix: the run side")
            .map_or("", |i| &old[i..]);
        let mut text = markdown(&observed);
        if !run_side.is_empty() {
            text = format!("{}\n\n{run_side}", text.trim_end());
        }
        std::fs::write(&path, text).unwrap();
        println!("wrote {}", path.display());
    }

    let mut mismatches = Vec::new();
    for o in &observed {
        assert_ne!(
            o.verdict.outcome,
            Outcome::Panicked,
            "{:?}: {}",
            o.cell,
            o.detail
        );
        let (want, _) = expected(o.cell);
        if o.verdict != want && !also_right(o.cell, o.verdict) {
            mismatches.push(format!(
                "{} / {} / {:?}: expected {}, observed {} in {:.1}s ({})",
                o.cell.call.name(),
                o.cell.fault.name(),
                o.cell.mode,
                verdict_text(want),
                verdict_text(o.verdict),
                o.took.as_secs_f64(),
                o.detail
            ));
        }
        if o.verdict.outcome == Outcome::Joined {
            assert_eq!(o.csrs, 1, "{:?} joined with {} CSRs", o.cell, o.csrs);
        }
    }
    assert!(
        mismatches.is_empty(),
        "the fault matrix differs from its expectation:\n{}",
        mismatches.join("\n")
    );
}
