//! `kaas-join run`'s Prometheus metrics, scraped from the real binary: joined against the
//! in-process sandbox control plane and supervising the stand-in kubelet (`fake-kubelet`), the
//! values follow what happens (the join, kubelet's state and a restart, the node's conditions,
//! the API calls), and each scrape passes `promtool check metrics`. Also: metrics are served
//! while `run` still waits for its configuration, `--no-metrics` and `--metrics-address ""`
//! serve none, a non-loopback address warns, a malformed one is a usage error.
//!
//! promtool (Debian package `prometheus`) is run when installed; with
//! `KAAS_JOIN_REQUIRE_PROMTOOL` set (as `.ci/run` does) a missing promtool fails the test.
//! Loopback only, each daemon on a port of its own; every wait is bounded and every process is
//! killed when its test ends.

mod common;

use std::collections::HashSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::machine::Machine;
use common::{Invocation, Wait};
use kaas_sandbox::{Sandbox, SandboxConfig};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const NODE: &str = "metrics-node-1";
/// The join against the sandbox takes well under a second; kubelet's Running can take up to a
/// healthz interval (10 s) after its start (see tests/run.rs).
const WAIT: Duration = Duration::from_secs(30);

/// Polls `f` every 50 ms until it gives `Some`, for at most `within` (the kit's [`Wait`]).
async fn poll<T>(within: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    Wait::new("a value", within)
        .every(Duration::from_millis(50))
        .poll(f)
        .await
        .ok()
}

/// The value of the sample `series` (`name` or `name{labels}`, exactly as exposed).
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

/// `promtool check metrics` on `scrape`, when promtool is there (required with
/// `KAAS_JOIN_REQUIRE_PROMTOOL`).
fn promtool_check(scrape: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if std::env::var_os("KAAS_JOIN_REQUIRE_PROMTOOL").is_none() => {
            eprintln!("note: promtool not run ({e}); install the Debian package `prometheus`");
            return;
        }
        Err(e) => panic!("promtool is required (KAAS_JOIN_REQUIRE_PROMTOOL) but: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{scrape}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// kubelet's (phase, pid) from the run-status file.
fn kubelet(d: &common::machine::Daemon) -> Option<(String, i64)> {
    let rs = d.run_status()?;
    Some((
        rs["kubelet"]["phase"].as_str()?.to_owned(),
        rs["kubelet"]["pid"].as_i64()?,
    ))
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_serves_metrics_that_follow_the_node() {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let m = Machine::new(&sb, NODE);
    let mut args = m.run_args();
    args.push("-v".into());
    let d = m.spawn(&args);
    let fail = |what: &str, d: &common::machine::Daemon| -> ! {
        panic!(
            "{what}\nlast scrape: {:?}\nrun status: {:?}\nlog:\n{}",
            m.scrape(),
            d.run_status(),
            d.log()
        )
    };

    // Joined, the Node registered (as kubelet would), kubelet Running, the condition written.
    poll(WAIT, || m.joined().then_some(()))
        .await
        .unwrap_or_else(|| fail("no join", &d));
    sb.add_node(NODE, true);
    let pid = poll(WAIT, || kubelet(&d).filter(|(p, _)| p == "running"))
        .await
        .unwrap_or_else(|| fail("kubelet not running", &d))
        .1;
    let healthy = "kaas_join_node_condition{type=\"KubeletUnhealthy\",status=\"False\"}";
    let scrape = poll(WAIT, || {
        let s = m.scrape().ok()?;
        (value(&s, healthy) == Some(1.0)
            && value(&s, "kaas_join_node_status_last_write_timestamp_seconds").is_some())
        .then_some(s)
    })
    .await
    .unwrap_or_else(|| fail("no healthy condition written in the metrics", &d));
    promtool_check(&scrape);
    let version = format!(
        "kaas_join_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    for (series, want) in [
        (version.as_str(), 1.0),
        ("kaas_join_join_attempts_total", 1.0),
        ("kaas_join_kubelet_state{state=\"running\"}", 1.0),
        ("kaas_join_kubelet_state{state=\"not-started\"}", 0.0),
        ("kaas_join_kubelet_restarts_total", 0.0),
        ("kaas_join_kubelet_crash_loops_total", 0.0),
        (
            "kaas_join_node_condition{type=\"KubeletUnhealthy\",status=\"True\"}",
            0.0,
        ),
        (
            "kaas_join_node_condition{type=\"ContainerRuntimeUnreachable\",status=\"False\"}",
            1.0,
        ),
        (
            "kaas_join_api_requests_total{call=\"certificatesigningrequest_create\",code=\"201\"}",
            1.0,
        ),
    ] {
        assert_eq!(value(&scrape, series), Some(want), "{series}\n{scrape}");
    }
    let now = now_secs();
    let took = value(&scrape, "kaas_join_join_duration_seconds").expect("join duration");
    assert!(took > 0.0 && took < WAIT.as_secs_f64(), "{took}");
    let started = value(&scrape, "kaas_join_kubelet_start_time_seconds").expect("start time");
    assert!(
        started <= now && started > now - 120.0,
        "{started} vs {now}"
    );
    let written = value(
        &scrape,
        "kaas_join_node_status_last_write_timestamp_seconds",
    )
    .unwrap();
    assert!(
        written <= now + 1.0 && written > now - 120.0,
        "{written} vs {now}"
    );
    let expiry = value(
        &scrape,
        "kaas_join_client_certificate_expiration_timestamp_seconds",
    )
    .unwrap();
    assert!(
        expiry > now + 3600.0,
        "the sandbox's certificate expires at {expiry}"
    );
    let patches = "kaas_join_api_requests_total{call=\"node_status_patch\",code=\"200\"}";
    let patched = value(&scrape, patches).expect("status patches counted");
    assert!(patched >= 1.0, "{scrape}");
    // No node name (nor any other object's) is a label value.
    assert!(!scrape.contains(NODE), "{scrape}");

    // kubelet killed: the condition turns True, the restart is counted, Running again.
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let unhealthy = "kaas_join_node_condition{type=\"KubeletUnhealthy\",status=\"True\"}";
    poll(WAIT, || {
        let s = m.scrape().ok()?;
        (value(&s, unhealthy) == Some(1.0)).then_some(())
    })
    .await
    .unwrap_or_else(|| fail("KubeletUnhealthy never True in the metrics", &d));
    // Healthy again, and both changes written (the conditions are what kaas-join sees now; the
    // writes follow within about a second).
    let scrape = poll(WAIT, || {
        let s = m.scrape().ok()?;
        (value(&s, "kaas_join_kubelet_restarts_total") == Some(1.0)
            && value(&s, "kaas_join_kubelet_state{state=\"running\"}") == Some(1.0)
            && value(&s, healthy) == Some(1.0)
            && value(&s, patches)? >= patched + 2.0)
            .then_some(s)
    })
    .await
    .unwrap_or_else(|| fail("the restart is not in the metrics", &d));
    promtool_check(&scrape);
    let restarted = value(&scrape, "kaas_join_kubelet_start_time_seconds").unwrap();
    assert!(restarted >= started, "{restarted} < {started}");
    let events = "kaas_join_api_requests_total{call=\"event_create\",code=\"201\"}";
    assert!(value(&scrape, events).is_some_and(|n| n >= 1.0), "{scrape}");
    drop(d);
    sb.shutdown().await;
}

/// The socket inodes `pid` listens on over TCP (from its fds and /proc/net/tcp{,6}).
fn listening_tcp(pid: u32) -> Vec<String> {
    let fds: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // `st` 0A is LISTEN; the inode is the tenth field.
            if f.len() > 9 && f[3] == "0A" && fds.contains(f[9]) {
                listening.push(format!("{} (inode {})", f[1], f[9]));
            }
        }
    }
    listening
}

/// `kaas-join run` waiting for a config file that is not there, with `extra` arguments; its
/// stderr goes to a file in `dir`.
struct Waiting {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Waiting {
    fn start(dir: &std::path::Path, name: &str, extra: &[&str]) -> Waiting {
        let log = dir.join(format!("{name}.log"));
        let root = dir.join("root");
        let config = dir.join("absent.yaml");
        let child = Invocation::new(["run", "--root"])
            .args([
                root.as_path(),
                std::path::Path::new("--config"),
                config.as_path(),
            ])
            .args(extra)
            .spawn(&log);
        Waiting { child, log }
    }

    /// Waits until the run-status file says it waits for its configuration.
    async fn until_waiting(&self, dir: &std::path::Path) {
        let status = dir.join("root/run/kaas-join/status.json");
        poll(WAIT, || {
            let text = std::fs::read_to_string(&status).ok()?;
            text.contains("waiting for configuration").then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("not waiting for its config: {}", self.log()));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        common::process::kill(&mut self.child);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_while_waiting_off_and_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    // Off loopback: a warning, and served (reachable on loopback too) while waiting to join.
    let port = common::free_port();
    let address = format!("0.0.0.0:{port}");
    let open = Waiting::start(dir.path(), "open", &["--metrics-address", &address]);
    let scrape = poll(WAIT, || {
        common::http_get(&format!("127.0.0.1:{port}"), "/metrics").ok()
    })
    .await
    .unwrap_or_else(|| panic!("no metrics while waiting: {}", open.log()));
    promtool_check(&scrape);
    assert_eq!(value(&scrape, "kaas_join_join_attempts_total"), Some(0.0));
    assert_eq!(
        value(&scrape, "kaas_join_kubelet_state{state=\"not-started\"}"),
        Some(1.0)
    );
    assert!(
        open.log().contains("non-loopback address") && open.log().contains("no authentication"),
        "{}",
        open.log()
    );
    assert!(common::http_get(&format!("127.0.0.1:{port}"), "/").is_err());
    drop(open);

    // Off: nothing listens at all.
    for (name, extra) in [
        ("no-metrics", &["--no-metrics"][..]),
        ("empty-address", &["--metrics-address", ""][..]),
    ] {
        let off = Waiting::start(dir.path(), name, extra);
        off.until_waiting(dir.path()).await;
        let listening = listening_tcp(off.child.id());
        assert!(listening.is_empty(), "{name}: {listening:?}\n{}", off.log());
    }

    // Malformed, or both ways at once: a usage error before anything runs.
    for extra in [
        &["--metrics-address", "localhost:20258"][..],
        &["--metrics-address", "127.0.0.1:1", "--no-metrics"][..],
    ] {
        let mut args = vec!["run", "--root", "/nonexistent", "--config", "/nonexistent"];
        args.extend_from_slice(extra);
        let run = common::kaas_join(&args).await;
        assert_eq!(run.code, 2, "{extra:?}: {run:#?}");
        assert!(run.stderr.contains("--metrics-address"), "{run:#?}");
    }
}
