//! The kubelet `kaas-join run` starts inherits none of kaas-join's own variables: not the
//! bootstrap token (`KAAS_JOIN_TOKEN`), which would reach everything kubelet starts
//! (credential providers, exec plugins), nor any other `KAAS_JOIN_*`, nor systemd's notify
//! socket. (Issue 11, item 1: before, `/proc/<kubelet>/environ` held the token.)

mod common;

use std::time::Duration;

use common::machine::Machine;
use common::{Invocation, Wait};
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
    let mut daemon = Invocation::new(m.run_args())
        .env("KAAS_JOIN_TOKEN", &token)
        .env("KAAS_JOIN_SOMETHING_ELSE", "x")
        .env("NOTIFY_SOCKET", "/nonexistent/notify")
        .env("KEPT_FOR_KUBELET", "yes")
        .envs(m.fake_kubelet_env())
        .spawn_quiet();
    let status_file = m.host(kaas_join::node::run_status::RUN_STATUS_FILE);
    let kubelet = Wait::new("kubelet started", Duration::from_secs(30))
        .every(Duration::from_millis(50))
        .until(|| {
            let status: Option<serde_json::Value> = std::fs::read(&status_file)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let pid = status.and_then(|s| s["kubelet"]["pid"].as_u64());
            let started = pid.filter(|p| !environment_of(*p).is_empty());
            assert!(
                started.is_some() || daemon.try_wait().unwrap().is_none(),
                "kubelet did not start"
            );
            started
        })
        .await;
    let env = environment_of(kubelet);
    common::process::kill(&mut daemon);
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
