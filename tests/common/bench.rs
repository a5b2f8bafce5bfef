//! What the benches share: where they find `target/` and the release binary they measure, the
//! sandbox they measure against, percentiles, the open-file limit, the clock tick.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use kaas_sandbox::{ApprovalMode, ControlPlaneStyle, Sandbox, SandboxConfig};

/// The runtime the sandbox serves on in a bench: its own 2 worker threads, named "sandbox".
pub fn sandbox_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sandbox")
        .enable_all()
        .build()
        .expect("sandbox runtime")
}

/// Starts the sandbox control plane the benches measure against, on `runtime`: kubeadm-style,
/// CSRs approved at once by workers that take `approval_time` each, on loopback (checked).
pub fn start_sandbox(runtime: &tokio::runtime::Runtime, approval_time: Duration) -> Sandbox {
    start_sandbox_with(
        runtime,
        SandboxConfig {
            style: ControlPlaneStyle::Kubeadm,
            approval: ApprovalMode::Auto {
                delay: Duration::ZERO,
            },
            approval_workers_delay: approval_time,
            ..SandboxConfig::default()
        },
    )
}

/// Starts a sandbox with `config` on `runtime`, on loopback (checked).
pub fn start_sandbox_with(runtime: &tokio::runtime::Runtime, config: SandboxConfig) -> Sandbox {
    let sb = runtime.block_on(async {
        Sandbox::start(config)
            .await
            .expect("sandbox starts on 127.0.0.1")
    });
    assert!(
        sb.addr().ip().is_loopback(),
        "the sandbox must be on loopback"
    );
    sb
}

/// `target/` (or `$CARGO_TARGET_DIR`): a bench runs as `target/release/deps/<name>-<hash>`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Where the release binary should be: next to the bench's `deps/` directory.
pub fn expected_kaas_join() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("kaas-join")))
        .unwrap_or_else(|| PathBuf::from("target/release/kaas-join"))
}

/// The release binary next to the bench, else `$KAAS_JOIN_BIN`.
pub fn find_kaas_join() -> Option<PathBuf> {
    let next_to_bench = expected_kaas_join();
    if next_to_bench.is_file() {
        return Some(next_to_bench);
    }
    let from_env = PathBuf::from(std::env::var_os("KAAS_JOIN_BIN")?);
    from_env.is_file().then_some(from_env)
}

/// Nearest-rank percentile of sorted `v`.
pub fn percentile(v: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// (min, max, mean).
pub fn stats(v: &[u64]) -> (u64, u64, f64) {
    let min = v.iter().copied().min().unwrap_or(0);
    let max = v.iter().copied().max().unwrap_or(0);
    let mean = v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    (min, max, mean)
}

/// Raises the soft open-file limit to the hard limit (with `prlimit`, no `unsafe`) when it is
/// below `wanted`; says what it found and did.
pub fn raise_open_file_limit(wanted: u64) -> String {
    let Some((soft, hard)) = open_file_limits() else {
        return "open files: limit unknown (/proc/self/limits unreadable); if joins fail with \
                'Too many open files', run `ulimit -n 65536` first"
            .into();
    };
    if soft >= wanted {
        return format!("open files: soft limit {soft} (hard {hard}), enough for {wanted}");
    }
    let target = hard.max(soft);
    let pid = std::process::id().to_string();
    let status = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={target}:{hard}")])
        .status();
    match (status, open_file_limits()) {
        (Ok(s), Some((now, _))) if s.success() && now > soft => format!(
            "open files: soft limit raised from {soft} to {now} with prlimit (hard {hard}){}",
            if now < wanted {
                format!("; below the {wanted} wanted: run `ulimit -Hn 65536` as root first")
            } else {
                String::new()
            }
        ),
        _ => format!(
            "open files: soft limit {soft} (hard {hard}) is below the {wanted} wanted and prlimit \
             could not raise it: run `ulimit -n 65536` first"
        ),
    }
}

/// (soft, hard) "Max open files" from /proc/self/limits; "unlimited" counts as u64::MAX.
pub fn open_file_limits() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut nums = line["Max open files".len()..].split_whitespace().map(|v| {
        if v == "unlimited" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    });
    Some((nums.next()??, nums.next()??))
}

/// `getconf CLK_TCK` (100 on Linux), the unit of utime and stime.
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// A duration in whole milliseconds, for the benches' tables.
#[allow(dead_code)]
pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// One `| what | min | median | max |` row per measure (each list non-empty), in milliseconds.
#[allow(dead_code)]
pub fn min_median_max_rows(table: &mut String, measures: Vec<(&str, Vec<Duration>)>) {
    use std::fmt::Write as _;
    for (what, mut values) in measures {
        values.sort();
        let _ = writeln!(
            table,
            "| {what} | {} | {} | {} |",
            ms(values[0]),
            ms(values[values.len() / 2]),
            ms(values[values.len() - 1])
        );
    }
}
