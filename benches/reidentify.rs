//! The re-identification benchmark: how long a node whose client certificate expired takes,
//! from the new bootstrap token appearing in its token file, to have its new certificate written
//! and to have kubelet running again. The real binary (`cargo bench` builds it in the release
//! profile) runs `kaas-join run` with the stand-in kubelet (`fake-kubelet`) against the sandbox
//! control plane on loopback, whose signer issues certificates that live [`LIFETIME`].
//!
//! ```text
//! cargo bench --locked --bench reidentify
//! ```
//!
//! One daemon, [`TRIALS`] times: the token file is removed, the certificate expires, `run` stops
//! kubelet and waits (`identityLost` in the run-status file); then a new token is written into
//! the token file (atomically) and the clock starts. "certificate" stops when
//! `kubelet-client-current.pem` holds another certificate, "kubelet running" when the run-status
//! file says kubelet runs again (a new pid, phase `running`, no `identityLost`). Both include
//! the wait for `run`'s next look at the token file (every 2 s), which is most of it.
//!
//! Bounded: every wait has a deadline, the daemon (and its kubelet) is killed at the end or on
//! any failure. Prints a table and writes it to `target/bench-reidentify.txt`; the daemon's log
//! goes to `target/bench-reidentify-daemon.log`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::machine::{Daemon, Machine};
use common::Wait;
use kaas_join::host::paths::KUBELET_CLIENT_CURRENT;
use kaas_sandbox::{Sandbox, SandboxConfig};

const NODE: &str = "bench-reidentify-node";
/// How long the signer's certificates live: the join and kubelet's start fit well within it.
const LIFETIME: Duration = Duration::from_secs(6);
const TRIALS: usize = 5;
/// Expiry (6 s) + the identity check (every 5 s) + slack.
const LOST_DEADLINE: Duration = Duration::from_secs(40);
/// The 2 s poll + the join + kubelet's first healthz, with slack.
const BACK_DEADLINE: Duration = Duration::from_secs(40);

fn main() {
    let runtime = common::bench::sandbox_runtime();
    let sb = common::bench::start_sandbox_with(
        &runtime,
        SandboxConfig {
            certificate_lifetime: Some(LIFETIME),
            ..SandboxConfig::default()
        },
    );
    let m = Machine::new(&sb, NODE);
    let mut d = m.spawn(&m.run_args());
    let log_path = common::bench::target_dir().join("bench-reidentify-daemon.log");

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait(&mut d, "the first join", LOST_DEADLINE, |_| {
            m.joined().then_some(())
        });
        sb.add_node(NODE, true);
        (0..TRIALS)
            .map(|_| trial(&sb, &m, &mut d))
            .collect::<Vec<_>>()
    }));
    let _ = std::fs::write(&log_path, d.log());
    let samples = match result {
        Ok(samples) => samples,
        Err(panic) => {
            eprintln!("the daemon's log: {}", log_path.display());
            std::panic::resume_unwind(panic)
        }
    };
    drop(d);

    let (certificate, running): (Vec<Duration>, Vec<Duration>) = samples.into_iter().unzip();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "kaas-join run: re-identification after an expired client certificate ({TRIALS} trials)"
    );
    let _ = writeln!(table, "| from the token written to | min | median | max |");
    let _ = writeln!(table, "|---|---|---|---|");
    common::bench::min_median_max_rows(
        &mut table,
        vec![
            ("the new certificate written", certificate),
            ("kubelet running again", running),
        ],
    );
    print!("{table}");
    let _ = std::fs::write(
        common::bench::target_dir().join("bench-reidentify.txt"),
        table,
    );
}

/// One trial: the identity is lost, a new token is written; (certificate written, kubelet running).
fn trial(sb: &Sandbox, m: &Machine, d: &mut Daemon) -> (Duration, Duration) {
    let _ = std::fs::remove_file(&m.token_file);
    wait(d, "identityLost", LOST_DEADLINE, |d| {
        d.run_status()
            .filter(|rs| rs["identityLost"].is_object())
            .map(|_| ())
    });
    let old_certificate = std::fs::read(m.host(KUBELET_CLIENT_CURRENT)).unwrap();
    let token = sb.create_token();
    let tmp = m.files.join("token.tmp");
    std::fs::write(&tmp, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let written = Instant::now();
    std::fs::rename(&tmp, &m.token_file).unwrap();
    let mut certificate = None;
    wait(d, "kubelet running again", BACK_DEADLINE, |d| {
        if certificate.is_none()
            && std::fs::read(m.host(KUBELET_CLIENT_CURRENT)).is_ok_and(|c| c != old_certificate)
        {
            certificate = Some(written.elapsed());
        }
        d.run_status()
            .filter(|rs| rs["kubelet"]["phase"] == "running" && rs["identityLost"].is_null())
            .map(|_| ())
    });
    let running = written.elapsed();
    (certificate.unwrap_or(running), running)
}

/// Polls `f` every 10 ms until it gives a value (the kit's [`Wait`]); panics after `deadline`
/// or if the daemon exits.
fn wait<T>(
    d: &mut Daemon,
    what: &str,
    deadline: Duration,
    mut f: impl FnMut(&Daemon) -> Option<T>,
) -> T {
    Wait::new(what, deadline)
        .every(Duration::from_millis(10))
        .until_blocking(|| {
            let found = f(d);
            assert!(
                found.is_some() || !d.exited(),
                "the daemon exited while waiting for {what}"
            );
            found
        })
}
