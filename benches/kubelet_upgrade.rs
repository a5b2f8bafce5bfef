//! The kubelet upgrade benchmark: how long `kaas-join upgrade-kubelet` takes, from the request
//! to the outcome, when the new kubelet crash-loops (until the old one is healthy again: the
//! rollback) and when it works (until the new one is healthy). The real binary (`cargo bench`
//! builds it in the release profile) runs `kaas-join run --upgrade-timeout 20s` with a copy of
//! the stand-in kubelet (`fake-kubelet`) against the sandbox control plane on loopback.
//!
//! ```text
//! cargo bench --locked --bench kubelet_upgrade
//! ```
//!
//! One daemon, [`TRIALS`] rounds of a failing upgrade (a script that says `v1.32.1` and exits
//! with code 1) then a working one (a script that says `v1.32.1` and runs the stand-in kubelet).
//! Each is `upgrade-kubelet --binary ...` timed from its spawn to its exit: it exits once `run`
//! wrote the outcome, which is after the kubelet in place answered its healthz; the run-status
//! file is checked to say so. Bounded: `upgrade-kubelet --wait 120s`, every other wait has a
//! deadline, the daemon (and its kubelet) is killed at the end. Prints a table and writes it to
//! `target/bench-kubelet-upgrade.txt`; the daemon's log goes to
//! `target/bench-kubelet-upgrade-daemon.log`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::machine::{Daemon, Machine, BIN};
use kaas_sandbox::{Sandbox, SandboxConfig};

const NODE: &str = "bench-upgrade-node";
const TRIALS: usize = 3;
/// The join and kubelet's first Running (a healthz interval of 10 s), with slack.
const START_DEADLINE: Duration = Duration::from_secs(60);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sandbox")
        .enable_all()
        .build()
        .expect("tokio runtime");
    let sb: Sandbox = runtime.block_on(async {
        Sandbox::start(SandboxConfig::default())
            .await
            .expect("sandbox starts")
    });
    assert!(
        sb.addr().ip().is_loopback(),
        "the sandbox must be on loopback"
    );
    let m = Machine::new(&sb, NODE);
    let kubelet = m.own_kubelet();
    let mut args = m.args("run");
    args.extend([
        "--kubelet".into(),
        kubelet.display().to_string(),
        "--upgrade-timeout".into(),
        "20s".into(),
    ]);
    args.extend(m.metrics_args());
    let mut d = m.spawn(&args);
    let log_path = common::bench::target_dir().join("bench-kubelet-upgrade-daemon.log");
    let crashes = script(&m, "kubelet-crashes", "exit 1");
    let works = script(
        &m,
        "kubelet-works",
        &format!("exec {} \"$@\"", common::fake_kubelet().display()),
    );

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait(&mut d, "the join", || m.joined().then_some(()));
        sb.add_node(NODE, true);
        wait(&mut d, "kubelet running", || running(&d_status(&m)));
        (0..TRIALS)
            .map(|_| {
                let back = upgrade(&m, &crashes, 26, "rolled-back");
                let up = upgrade(&m, &works, 0, "upgraded");
                (back, up)
            })
            .collect::<Vec<_>>()
    }));
    let _ = std::fs::write(&log_path, d.log());
    drop(d);
    let samples = match result {
        Ok(samples) => samples,
        Err(panic) => {
            eprintln!("the daemon's log: {}", log_path.display());
            std::panic::resume_unwind(panic)
        }
    };
    let (rollback, upgraded): (Vec<Duration>, Vec<Duration>) = samples.into_iter().unzip();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "kaas-join upgrade-kubelet ({TRIALS} trials each, run --upgrade-timeout 20s)"
    );
    let _ = writeln!(table, "| from the request to | min | median | max |");
    let _ = writeln!(table, "|---|---|---|---|");
    common::bench::min_median_max_rows(
        &mut table,
        vec![
            (
                "a crash-looping kubelet rolled back, the old one healthy",
                rollback,
            ),
            ("a working kubelet upgraded and healthy", upgraded),
        ],
    );
    print!("{table}");
    let _ = std::fs::write(
        common::bench::target_dir().join("bench-kubelet-upgrade.txt"),
        table,
    );
}

/// The run-status file, as `status` reads it.
fn d_status(m: &Machine) -> Option<serde_json::Value> {
    let bytes = std::fs::read(m.host(kaas_join::node::run_status::RUN_STATUS_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn running(rs: &Option<serde_json::Value>) -> Option<()> {
    (rs.as_ref()?["kubelet"]["phase"] == "running").then_some(())
}

/// A new "kubelet": says `v1.32.1` to `--version`, then runs `body`.
fn script(m: &Machine, name: &str, body: &str) -> PathBuf {
    let path = m.files.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo \"Kubernetes v1.32.1\"; exit 0; fi\n{body}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `upgrade-kubelet --binary <binary>`, timed; checks its exit code and the outcome.
fn upgrade(m: &Machine, binary: &Path, code: i32, phase: &str) -> Duration {
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["upgrade-kubelet", "--wait", "120s", "--binary"])
        .arg(binary)
        .arg("--root")
        .arg(&m.root)
        .output()
        .expect("upgrade-kubelet runs");
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The status file is written by its own thread: it may be a moment behind the result.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let rs = d_status(m).expect("a run-status file");
        if rs["kubelet"]["upgrade"]["phase"] == phase && rs["kubelet"]["phase"] == "running" {
            break;
        }
        assert!(Instant::now() < until, "the status file says {rs}");
        std::thread::sleep(Duration::from_millis(10));
    }
    took
}

/// Polls `f` every 10 ms until it gives a value; panics after the deadline or if the daemon
/// exits.
fn wait<T>(d: &mut Daemon, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + START_DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(!d.exited(), "the daemon exited while waiting for {what}");
        assert!(
            Instant::now() < until,
            "no {what} within {START_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
