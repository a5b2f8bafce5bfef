//! The join benchmark: wall time, HTTP requests, peak RSS and binary size of one join against the
//! sandbox control plane on loopback (127.0.0.1 only) with instant CSR approval.
//!
//! Run it (see BENCHMARKS.md):
//!
//! ```text
//! cargo build --release --locked -p kaas-join && cargo bench --locked --bench join
//! ```
//!
//! Bounded: 50 library joins and 5 runs of the binary, each with 10 s discovery and bootstrap
//! timeouts and a hard per-join guard; the whole run takes a few seconds and must stay under
//! 2 minutes. Prints a table and writes it to `target/bench-join.txt`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Invocation;
use kaas_join::cmd::join::report::Outcome;
use kaas_join::config::JoinConfig;
use kaas_join::k8s::client::RequestCounter;
use kaas_sandbox::{RequestRecord, Sandbox};

/// Sequential library joins measured.
const JOINS: usize = 50;
/// Runs of the real binary for peak RSS.
const RSS_RUNS: usize = 5;
/// Discovery and TLS-bootstrap timeouts of every join.
const PHASE_TIMEOUT: Duration = Duration::from_secs(10);
/// Hard guard around one join (both phases plus slack).
const JOIN_GUARD: Duration = Duration::from_secs(25);
/// The whole benchmark must finish within this.
const TOTAL_BUDGET: Duration = Duration::from_secs(120);
/// `kubeadm join` + its kubelet, up to the certificate, on the recorded control plane
/// (`tests/fixtures/kubeadm-join-trace/sequence.txt`).
const KUBEADM_REQUESTS: u64 = 17;
const TARGET_REQUESTS: u64 = 7;

fn main() {
    // Arguments (`cargo bench` passes `--bench`) are ignored: there is one benchmark, run once.
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let sb = common::bench::start_sandbox(&runtime, Duration::ZERO);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "kaas-join join benchmark (sandbox on {}, instant approval)",
        sb.url()
    );
    let _ = writeln!(out);

    // 1 + 2: library joins, wall time and requests.
    let lib = runtime.block_on(library_joins(&sb));
    let first_seq = lib.first_sequence.clone();

    // 3 + 4: the real binary.
    let bin = common::bench::find_kaas_join();
    let rss = match &bin {
        Some(bin) => rss_runs(&sb, bin, started),
        None => Err(format!(
            "release binary not found at {} (or $KAAS_JOIN_BIN): run `cargo build --release --locked -p kaas-join` first",
            common::bench::expected_kaas_join().display()
        )),
    };
    let size = bin
        .as_ref()
        .and_then(|b| std::fs::metadata(b).ok())
        .map(|m| m.len());

    // The table.
    let _ = writeln!(out, "| measure | value |");
    let _ = writeln!(out, "|---|---|");
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let _ = writeln!(
        out,
        "| library join wall time, {} sequential joins | median {} ms, p99 {} ms, min {} ms, max {} ms, mean {} ms |",
        lib.times.len(),
        ms(common::bench::percentile(&lib.times, 50.0)),
        ms(common::bench::percentile(&lib.times, 99.0)),
        ms(lib.times[0]),
        ms(*lib.times.last().unwrap()),
        ms(lib.times.iter().sum::<Duration>() / lib.times.len() as u32),
    );
    let (cmin, cmax, cmean) = common::bench::stats(&lib.counted);
    let (smin, smax, smean) = common::bench::stats(&lib.seen);
    let _ = writeln!(
        out,
        "| HTTP requests per join (RequestCounter) | min {cmin}, max {cmax}, mean {cmean:.2} (target <= {TARGET_REQUESTS}; kubeadm join + kubelet: {KUBEADM_REQUESTS}) |"
    );
    let _ = writeln!(
        out,
        "| HTTP requests per join (seen by the sandbox) | min {smin}, max {smax}, mean {smean:.2} |"
    );
    for (name, millis) in &lib.steps {
        let (min, max, mean) = common::bench::stats(millis);
        let _ = writeln!(
            out,
            "| library join phase `{name}` (whole ms, from the report) | median {} ms, mean {mean:.2} ms, min {min} ms, max {max} ms |",
            median_u64(millis)
        );
    }
    match &rss {
        Ok(r) => {
            let _ = writeln!(
                out,
                "| peak RSS of one `kaas-join join` (binary, {} runs) | max {}, median {} |",
                r.kib.len(),
                kib(*r.kib.iter().max().unwrap()),
                kib(median_u64(&r.kib)),
            );
            let _ = writeln!(
                out,
                "| binary join wall time incl. process start ({} runs) | median {} ms, max {} ms |",
                r.wall.len(),
                ms(common::bench::percentile(&r.wall, 50.0)),
                ms(*r.wall.last().unwrap()),
            );
        }
        Err(why) => {
            let _ = writeln!(
                out,
                "| peak RSS of one `kaas-join join` (binary) | not measured: {why} |"
            );
        }
    }
    match (size, &bin) {
        (Some(bytes), Some(path)) => {
            let _ = writeln!(
                out,
                "| release binary size ({}) | {:.2} MiB ({bytes} bytes) |",
                path.display(),
                bytes as f64 / (1024.0 * 1024.0)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "| release binary size | not measured: run `cargo build --release --locked -p kaas-join` first |"
            );
        }
    }

    let _ = writeln!(out);
    let _ = writeln!(out, "Requests of the first join, as the sandbox saw them:");
    for (i, r) in first_seq.iter().enumerate() {
        let query = if r.query.is_empty() {
            String::new()
        } else {
            format!("?{}", r.query)
        };
        let _ = writeln!(
            out,
            "  {:>2}. {} {}{} -> {} ({})",
            i + 1,
            r.method,
            r.path,
            query,
            r.status,
            r.identity
        );
    }
    if cmax > TARGET_REQUESTS || smax > TARGET_REQUESTS {
        let _ = writeln!(
            out,
            "WARNING: a join made more than {TARGET_REQUESTS} requests (counter max {cmax}, sandbox max {smax})"
        );
    }
    if lib.counted != lib.seen {
        let _ = writeln!(
            out,
            "NOTE: RequestCounter and the sandbox's record differ for some joins: counter {:?} vs sandbox {:?}",
            lib.counted, lib.seen
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "total benchmark time: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    print!("{out}");
    let report_path = common::bench::target_dir().join("bench-join.txt");
    match std::fs::write(&report_path, &out) {
        Ok(()) => println!("written to {}", report_path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", report_path.display()),
    }

    runtime.block_on(sb.shutdown());
    assert!(
        started.elapsed() < TOTAL_BUDGET,
        "the benchmark took {:?}, over its {TOTAL_BUDGET:?} budget",
        started.elapsed()
    );
}

struct LibraryResults {
    /// Wall times, sorted.
    times: Vec<Duration>,
    /// Requests per join from the `RequestCounter`.
    counted: Vec<u64>,
    /// Requests per join as recorded by the sandbox (`sb.requests()` delta).
    seen: Vec<u64>,
    /// Per phase (in join order): the phase's whole-millisecond times from the report.
    steps: Vec<(&'static str, Vec<u64>)>,
    first_sequence: Vec<RequestRecord>,
}

async fn library_joins(sb: &Sandbox) -> LibraryResults {
    let mut times = Vec::with_capacity(JOINS);
    let mut counted = Vec::with_capacity(JOINS);
    let mut seen = Vec::with_capacity(JOINS);
    let mut first_sequence = Vec::new();
    let mut steps: Vec<(&'static str, Vec<u64>)> = Vec::new();
    for i in 0..JOINS {
        let token = sb.create_token();
        let root = tempfile::TempDir::new().expect("temp root");
        let cfg = config(sb, &token, root.path(), &format!("bench-node-{i}"));
        let before = sb.requests().len();
        let counter = Arc::new(RequestCounter::default());
        let t = Instant::now();
        let report = tokio::time::timeout(
            JOIN_GUARD,
            kaas_join::cmd::join::join_with_counter(&cfg, vec![], counter.clone()),
        )
        .await
        .unwrap_or_else(|_| panic!("join {i} did not finish within {JOIN_GUARD:?}"))
        .unwrap_or_else(|e| panic!("join {i} failed: {e}"));
        times.push(t.elapsed());
        assert_eq!(report.outcome, Outcome::Joined, "join {i}");
        for step in &report.steps {
            match steps.iter_mut().find(|(name, _)| *name == step.name) {
                Some((_, v)) => v.push(step.millis),
                None => steps.push((step.name, vec![step.millis])),
            }
        }
        let records = sb.requests();
        if i == 0 {
            first_sequence = records[before..].to_vec();
        }
        counted.push(counter.get());
        seen.push((records.len() - before) as u64);
    }
    times.sort();
    LibraryResults {
        times,
        counted,
        seen,
        steps,
        first_sequence,
    }
}

fn config(sb: &Sandbox, token: &str, root: &Path, node_name: &str) -> JoinConfig {
    common::sandbox_join_config(sb, token, node_name, root, PHASE_TIMEOUT)
}

struct RssResults {
    /// Peak RSS per run in KiB (`/usr/bin/time -f %M`).
    kib: Vec<u64>,
    /// Wall time per run including process start, sorted.
    wall: Vec<Duration>,
}

const TIME_BIN: &str = "/usr/bin/time";

/// Runs the real binary `RSS_RUNS` times under `/usr/bin/time -f %M` (the sandbox keeps serving
/// on the runtime's worker threads meanwhile).
fn rss_runs(sb: &Sandbox, bin: &Path, started: Instant) -> Result<RssResults, String> {
    if !Path::new(TIME_BIN).exists() {
        return Err(
            "peak RSS: install the `time` package (`apt-get install -y time`) for /usr/bin/time"
                .into(),
        );
    }
    let mut kib = Vec::with_capacity(RSS_RUNS);
    let mut wall = Vec::with_capacity(RSS_RUNS);
    for i in 0..RSS_RUNS {
        if started.elapsed() > TOTAL_BUDGET - JOIN_GUARD {
            return Err(format!("out of time budget after {i} runs"));
        }
        let dir = tempfile::TempDir::new().map_err(|e| e.to_string())?;
        let token_file = dir.path().join("token");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&token_file)
            .map_err(|e| format!("token file: {e}"))?;
        writeln!(f, "{}", sb.create_token()).map_err(|e| e.to_string())?;
        drop(f);
        let root = dir.path().join("root");
        std::fs::create_dir(&root).map_err(|e| e.to_string())?;
        let timeout = format!("{}s", PHASE_TIMEOUT.as_secs());

        let t = Instant::now();
        let root_arg = root.display().to_string();
        let token_arg = token_file.display().to_string();
        let node = format!("bench-rss-{i}");
        let run = Invocation::of(TIME_BIN, ["-f", "%M"])
            .args([bin.as_os_str()])
            .args([
                "join",
                "--server",
                &sb.url(),
                "--token-file",
                &token_arg,
                "--discovery-token-ca-cert-hash",
                &sb.ca_cert_hash(),
                "--root",
                &root_arg,
                "--node-name",
                &node,
                "--cri-socket",
                "unix:///run/containerd/containerd.sock",
                "--cgroup-driver",
                "systemd",
                // No kubelet and no runtime under the temporary root.
                "--ignore-preflight-errors=FileExisting-kubelet,CRI",
                "--discovery-timeout",
                &timeout,
                "--tls-bootstrap-timeout",
                &timeout,
            ])
            // The kit's runner: a bounded wait, polled every 2 ms; killed on the guard.
            .start()
            .try_finish(JOIN_GUARD)
            .map_err(|why| format!("binary run {i} exceeded {JOIN_GUARD:?}: {why}"))?;
        let elapsed = t.elapsed();
        let stderr = run.stderr;
        if run.code != 0 {
            return Err(format!(
                "binary run {i} failed (exit code {}): {}",
                run.code,
                stderr.trim()
            ));
        }
        let peak = stderr
            .lines()
            .rev()
            .find_map(|l| l.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("no %M in /usr/bin/time output: {stderr:?}"))?;
        if !root.join("etc/kubernetes/kubelet.conf").exists() {
            return Err(format!("binary run {i} wrote no kubelet.conf"));
        }
        kib.push(peak);
        wall.push(elapsed);
    }
    wall.sort();
    Ok(RssResults { kib, wall })
}

fn median_u64(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    s[(s.len() - 1) / 2]
}

fn kib(k: u64) -> String {
    format!("{k} KiB ({:.1} MiB)", k as f64 / 1024.0)
}
