//! `kaas-join run`'s `KubeletVersionSkew` condition end to end: the real binary joins the
//! sandbox (kube-apiserver `v1.32.0`) and supervises the stand-in kubelet, which says the
//! version it is given (`FAKE_KUBELET_VERSION`) to `--version`. Too new (`v1.33.0`) and too
//! old (`v1.28.5`) are True with both versions and the policy, and a Warning Event; exactly
//! three minors older (`v1.29.0`) is False with `KubeletVersionSkewAtLimit` and a Warning
//! Event; within (`v1.31.2`) is False with no Event. `kaas-join status` shows the same.
//!
//! The fake kubelet registers no Node: the test creates it once the join is done. Loopback
//! only; every wait is bounded; the daemon is killed when its test ends.

mod common;

use std::process::Command;
use std::time::Duration;

use common::machine::{Machine, BIN};
use common::node::{events, node_condition, poll};
use kaas_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

/// The join, the first version check and the first write take well under this.
const WAIT: Duration = Duration::from_secs(30);

/// (status, reason, message) of the Node's `KubeletVersionSkew`.
fn skew(sb: &Sandbox, node: &str) -> Option<(String, String, String)> {
    let c = node_condition(sb, node, "KubeletVersionSkew")?;
    Some((
        c["status"].as_str()?.to_owned(),
        c["reason"].as_str()?.to_owned(),
        c["message"].as_str()?.to_owned(),
    ))
}

/// `kaas-join status --output json` of the machine.
fn status(m: &Machine) -> Value {
    let out = Command::new(BIN)
        .args(["status", "--output", "json", "--root"])
        .arg(&m.root)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs kubelet `version` against the sandbox; returns the condition once it is judged, and
/// checks the Event and `status`.
async fn judged(node: &str, version: &str, want: (&str, &str), event: bool) -> String {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let m = Machine::new(&sb, node);
    let d = m.spawn_with_env(
        &m.run_args(),
        &[("FAKE_KUBELET_VERSION", version.to_owned())],
    );
    let fail = |what: &str| -> ! {
        panic!(
            "{what}\nrun status: {:?}\nlog:\n{}",
            d.run_status(),
            d.log()
        )
    };
    poll(WAIT, || m.joined().then_some(()))
        .await
        .unwrap_or_else(|| fail("no join"));
    sb.add_node(node, true);
    let (status_, reason, message) =
        poll(WAIT, || skew(&sb, node).filter(|(s, _, _)| s != "Unknown"))
            .await
            .unwrap_or_else(|| fail("no KubeletVersionSkew judged on the Node"));
    assert_eq!((status_.as_str(), reason.as_str()), want, "{message}");
    assert!(
        message.contains(version) && message.contains("v1.32.0"),
        "{message}"
    );
    if event {
        let sent = poll(WAIT, || {
            let e = events(&sb, want.1);
            (!e.is_empty()).then_some(e)
        })
        .await
        .unwrap_or_else(|| fail("no event"));
        assert_eq!(sent[0]["type"], "Warning", "{:?}", sent[0]);
        assert_eq!(sent[0]["involvedObject"]["name"], node);
    }
    // What `status` says: the version check, the condition, and a problem when True.
    let report = poll(WAIT, || {
        let r = status(&m);
        let conditions = r["daemon"]["reported"]["conditions"].as_array()?.clone();
        conditions
            .iter()
            .any(|c| c["type"] == "KubeletVersionSkew" && c["reason"] == want.1)
            .then_some(r)
    })
    .await
    .unwrap_or_else(|| fail("status does not show the condition"));
    let check = &report["daemon"]["kubelet"]["version"];
    assert_eq!(check["kubelet"]["known"]["text"], version, "{check}");
    assert_eq!(check["server"]["known"]["text"], "v1.32.0", "{check}");
    let problems = report["problems"].to_string();
    assert_eq!(
        problems.contains("KubeletVersionSkew"),
        want.0 == "True",
        "{problems}"
    );
    if !event {
        // Wait out a write or two: still no event about the version.
        tokio::time::sleep(Duration::from_secs(3)).await;
        for reason in [
            "KubeletVersionTooNew",
            "KubeletVersionTooOld",
            "KubeletVersionSkewAtLimit",
            "KubeletVersionSkewWithinPolicy",
        ] {
            assert!(events(&sb, reason).is_empty(), "{reason}");
        }
    }
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_newer_than_the_api_server_is_outside_the_policy() {
    let message = judged(
        "skew-new",
        "v1.33.0",
        ("True", "KubeletVersionTooNew"),
        true,
    )
    .await;
    assert!(message.contains("never newer"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_four_minors_older_is_outside_the_policy() {
    let message = judged(
        "skew-old",
        "v1.28.5",
        ("True", "KubeletVersionTooOld"),
        true,
    )
    .await;
    assert!(message.contains("1.29 to 1.32"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_minors_older_is_at_the_limit() {
    let message = judged(
        "skew-limit",
        "v1.29.0",
        ("False", "KubeletVersionSkewAtLimit"),
        true,
    )
    .await;
    assert!(
        message.contains("next control-plane upgrade will put it outside"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_the_policy_is_false_and_quiet() {
    judged(
        "skew-within",
        "v1.31.2",
        ("False", "KubeletVersionSkewWithinPolicy"),
        false,
    )
    .await;
}
