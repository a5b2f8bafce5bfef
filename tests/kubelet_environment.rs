//! The kubelet `kaas-join run` starts inherits none of kaas-join's own variables: not the
//! bootstrap token (`KAAS_JOIN_TOKEN`), which would reach everything kubelet starts
//! (credential providers, exec plugins), nor any other `KAAS_JOIN_*`, nor systemd's notify
//! socket. (Issue 11, item 1: before, `/proc/<kubelet>/environ` held the token.)

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::machine::{Machine, BIN};
use kaas_sandbox::SandboxConfig;

/// `/proc/<pid>/environ` as `NAME=value` strings.
fn environment_of(pid: u64) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_never_sees_the_token_or_our_variables() {
    let sb = common::sandbox(SandboxConfig::default()).await;
    let token = sb.create_token();
    let m = Machine::builder(&sb, "env-node").token(&token).build();
    let mut daemon = Command::new(BIN)
        .args(m.run_args())
        .env("KAAS_JOIN_TOKEN", &token)
        .env("KAAS_JOIN_SOMETHING_ELSE", "x")
        .env("NOTIFY_SOCKET", "/nonexistent/notify")
        .env("KEPT_FOR_KUBELET", "yes")
        .env_remove("RUST_LOG")
        .envs(m.fake_kubelet_env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status_file = m.host(kaas_join::node::run_status::RUN_STATUS_FILE);
    let deadline = Instant::now() + Duration::from_secs(30);
    let kubelet = loop {
        let status: Option<serde_json::Value> = std::fs::read(&status_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let pid = status.and_then(|s| s["kubelet"]["pid"].as_u64());
        if let Some(pid) = pid.filter(|p| !environment_of(*p).is_empty()) {
            break pid;
        }
        assert!(
            Instant::now() < deadline && daemon.try_wait().unwrap().is_none(),
            "kubelet did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let env = environment_of(kubelet);
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        env.iter().any(|v| v == "KEPT_FOR_KUBELET=yes"),
        "the rest of the environment is kubelet's: {env:?}"
    );
    for v in &env {
        assert!(!v.starts_with("KAAS_JOIN_"), "kubelet inherited {v:?}");
        assert!(!v.starts_with("NOTIFY_SOCKET="), "kubelet inherited {v:?}");
        assert!(!v.contains(&token), "kubelet's environment holds the token");
    }
}
