//! Node health reporting against the sandbox control plane on loopback: each test starts its own
//! sandbox, issues a node client certificate into its own temporary root (as kubelet's
//! `kubelet-client-current.pem`), runs `health::run_reporter` with short intervals and drives the
//! kubelet state by hand.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::node::{
    events, exited, health_config, install_identity, node_condition, node_identity, node_root,
    running, wait_for, Node, Reporter,
};
use common::sandbox;
use kaas_join::k8s::client::{ApiClient, RequestCounter};
use kaas_join::model::kubelet_process::KubeletPhase;
use kaas_join::node::health::{self, HealthConfig, KUBELET_OWNED, OUR_CONDITIONS};
use kaas_sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};
use tokio::time::Instant;

const NODE: &str = "health-node-1";

/// A certificate for the same user from a CA the API server does not know.
fn foreign_identity(node: &str) -> String {
    let (key, params) = common::node::node_key_and_params(node);
    let cert = params.self_signed(&key).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

fn config(sb: &Sandbox, node: &Node) -> HealthConfig {
    health_config(sb, NODE, sb.url(), node)
}

fn condition(sb: &Sandbox, type_: &str) -> Option<Value> {
    node_condition(sb, NODE, type_)
}

fn status_patches(sb: &Sandbox) -> Vec<kaas_sandbox::RequestRecord> {
    sb.requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path == format!("/api/v1/nodes/{NODE}/status"))
        .collect()
}

#[tokio::test]
async fn writes_our_conditions_and_leaves_kubelets_alone() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.add_node(NODE, true);
    let ready_before = condition(&sb, "Ready").unwrap();
    let node = node_root(&sb, NODE, true);
    let reporter = Reporter::start(config(&sb, &node), running());

    wait_for(Duration::from_secs(5), "our conditions on the Node", || {
        condition(&sb, "LowMemory")
    })
    .await;
    let conditions = sb.node(NODE).unwrap()["status"]["conditions"].clone();
    for type_ in OUR_CONDITIONS {
        let c = conditions
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .unwrap_or_else(|| panic!("{type_} missing: {conditions}"));
        // Without `run` nobody checks kubelet's version: Unknown, not a problem.
        let expected = if type_ == health::KUBELET_VERSION_SKEW {
            "Unknown"
        } else {
            "False"
        };
        assert_eq!(c["status"], expected, "{c}");
        for field in [
            "reason",
            "message",
            "lastHeartbeatTime",
            "lastTransitionTime",
        ] {
            assert!(c[field].as_str().is_some_and(|s| !s.is_empty()), "{c}");
        }
    }
    assert_eq!(
        condition(&sb, "ClockSkew").unwrap()["reason"],
        "ClockSynchronized"
    );
    // kubelet's Ready is untouched, and none of kubelet's conditions were added
    assert_eq!(condition(&sb, "Ready").unwrap(), ready_before);
    for owned in KUBELET_OWNED.iter().filter(|t| **t != "Ready") {
        assert!(condition(&sb, owned).is_none(), "{owned} written");
    }
    let status = wait_for(Duration::from_secs(2), "the write published", || {
        let s = reporter.status();
        s.last_written.is_some().then_some(s)
    })
    .await;
    assert_eq!(status.node_registered, Some(true));
    assert_eq!(status.last_error, None);
    assert_eq!(status.client_loads, 1);
    assert!(status.clock_skew_seconds.unwrap().abs() < 2.0);
    // as the node, and never the Lease
    for r in sb.requests() {
        assert_eq!(r.identity, format!("system:node:{NODE}"), "{r:?}");
        assert!(!r.path.contains("leases"), "{r:?}");
    }
    assert!(status_patches(&sb).iter().all(|r| r.status == 200));
    reporter.stop().await;
}

#[tokio::test]
async fn kubelet_failure_reaches_the_node_within_2s_and_events_aggregate() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.add_node(NODE, true);
    let node = node_root(&sb, NODE, true);
    let reporter = Reporter::start(config(&sb, &node), running());
    wait_for(Duration::from_secs(5), "first write", || {
        condition(&sb, "KubeletUnhealthy").filter(|c| c["status"] == "False")
    })
    .await;

    let changed = Instant::now();
    reporter.kubelet.send_replace(exited(
        0,
        &[
            "I1127 starting kubelet",
            "E1127 failed to run Kubelet: invalid cgroup driver",
        ],
    ));
    let c = wait_for(
        Duration::from_secs(2),
        "KubeletUnhealthy True within 2 s",
        || condition(&sb, "KubeletUnhealthy").filter(|c| c["status"] == "True"),
    )
    .await;
    let latency = changed.elapsed();
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    assert_eq!(c["reason"], "KubeletNotRunning");
    let message = c["message"].as_str().unwrap();
    assert!(message.contains("exited with code 1"), "{message}");
    assert!(message.contains("invalid cgroup driver"), "{message}");

    let first = wait_for(Duration::from_secs(2), "a KubeletRestarted event", || {
        events(&sb, "KubeletRestarted").into_iter().next()
    })
    .await;
    assert_eq!(first["type"], "Warning");
    assert_eq!(first["count"], 1);
    assert_eq!(
        first["involvedObject"],
        json!({"kind": "Node", "name": NODE, "uid": NODE, "apiVersion": "v1"})
    );
    assert_eq!(
        first["source"],
        json!({"component": "kaas-join", "host": NODE})
    );
    assert_eq!(first["reportingComponent"], "kaas-join");
    assert_eq!(first["reportingInstance"], NODE);
    assert_eq!(first["metadata"]["namespace"], "default");
    assert!(first["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{NODE}.")));

    // Two more restarts with the same exit: one event, counted.
    for restart in 1..=2 {
        let mut starting = exited(restart, &[]);
        starting.phase = KubeletPhase::Starting;
        starting.last_exit = reporter.kubelet.borrow().last_exit.clone();
        reporter.kubelet.send_replace(starting);
        tokio::time::sleep(Duration::from_millis(50)).await;
        reporter
            .kubelet
            .send_replace(exited(restart, &["E1127 failed again"]));
        // Each exit counted on the server before the next restart.
        let count = restart + 1;
        wait_for(
            Duration::from_secs(3),
            &format!("the event aggregated to count {count}"),
            || {
                events(&sb, "KubeletRestarted")
                    .into_iter()
                    .find(|e| e["count"] == count)
            },
        )
        .await;
    }
    let aggregated = wait_for(
        Duration::from_secs(3),
        "the event aggregated to count 3",
        || {
            events(&sb, "KubeletRestarted")
                .into_iter()
                .find(|e| e["count"] == 3)
        },
    )
    .await;
    assert_eq!(
        events(&sb, "KubeletRestarted").len(),
        1,
        "aggregated, not repeated"
    );
    assert_eq!(aggregated["metadata"]["name"], first["metadata"]["name"]);
    assert!(sb
        .requests()
        .iter()
        .any(|r| r.method == "PATCH" && r.path.starts_with("/api/v1/namespaces/default/events/")));

    // Recovery: False again, and a KubeletRecovered event.
    reporter.kubelet.send_replace(running());
    wait_for(
        Duration::from_secs(2),
        "KubeletUnhealthy False again",
        || condition(&sb, "KubeletUnhealthy").filter(|c| c["status"] == "False"),
    )
    .await;
    wait_for(Duration::from_secs(2), "a KubeletRecovered event", || {
        events(&sb, "KubeletRecovered").into_iter().next()
    })
    .await;
    reporter.stop().await;
}

#[tokio::test]
async fn steady_node_is_written_only_on_heartbeat() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.add_node(NODE, true);
    let node = node_root(&sb, NODE, true);
    let reporter = Reporter::start(config(&sb, &node), running());
    wait_for(Duration::from_secs(5), "first write", || {
        condition(&sb, "LowMemory")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = status_patches(&sb).len();
    let first = condition(&sb, "LowMemory").unwrap();
    let (first_heartbeat, first_transition) = (
        first["lastHeartbeatTime"].clone(),
        first["lastTransitionTime"].clone(),
    );
    let window = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let writes = status_patches(&sb).len() - before;
    // Only heartbeats: at most one per started second of the window (the sleep may overrun on a
    // loaded machine, so count from the measured window), and at least one.
    let most = window.elapsed().as_secs() as usize + 1;
    assert!(
        (1..=most).contains(&writes),
        "{writes} writes in {:?} with a 1 s heartbeat (at most {most})",
        window.elapsed()
    );
    let c = condition(&sb, "LowMemory").unwrap();
    assert_ne!(c["lastHeartbeatTime"], first_heartbeat);
    assert_eq!(
        c["lastTransitionTime"], first_transition,
        "no flip, no transition"
    );
    assert!(
        sb.events("default").is_empty(),
        "a healthy steady node posts no events"
    );
    reporter.stop().await;
}

#[tokio::test]
async fn unregistered_node_reports_through_events_until_it_exists() {
    let sb = sandbox(SandboxConfig::default()).await;
    // No runtime socket: a problem to report while the Node does not exist.
    let node = node_root(&sb, NODE, false);
    let reporter = Reporter::start(config(&sb, &node), running());
    wait_for(
        Duration::from_secs(5),
        "NodeNotRegistered and the problem as events",
        || {
            (!events(&sb, "NodeNotRegistered").is_empty()
                && !events(&sb, "ContainerRuntimeUnreachable").is_empty())
            .then_some(())
        },
    )
    .await;
    let problem = &events(&sb, "ContainerRuntimeUnreachable")[0];
    assert_eq!(problem["type"], "Warning");
    assert!(problem["message"]
        .as_str()
        .unwrap()
        .contains("containerd.sock"));
    assert_eq!(reporter.status().node_registered, Some(false));
    assert!(reporter
        .status()
        .last_error
        .unwrap()
        .contains("not registered"));
    // the patch keeps being retried
    wait_for(Duration::from_secs(5), "two 404 patches", || {
        (status_patches(&sb)
            .iter()
            .filter(|r| r.status == 404)
            .count()
            >= 2)
            .then_some(())
    })
    .await;

    sb.add_node(NODE, false);
    let c = wait_for(
        Duration::from_secs(5),
        "the conditions once the Node exists",
        || condition(&sb, "ContainerRuntimeUnreachable"),
    )
    .await;
    assert_eq!(c["status"], "True");
    assert_eq!(
        condition(&sb, "Ready").unwrap()["status"],
        "False",
        "kubelet's, untouched"
    );
    wait_for(Duration::from_secs(2), "registered in the status", || {
        (reporter.status().node_registered == Some(true)).then_some(())
    })
    .await;
    // repeated 404s aggregated the events instead of repeating them
    assert_eq!(events(&sb, "NodeNotRegistered").len(), 1);
    assert_eq!(events(&sb, "ContainerRuntimeUnreachable").len(), 1);
    reporter.stop().await;
}

#[tokio::test]
async fn api_outage_backs_off_and_recovers() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.add_node(NODE, true);
    let node = node_root(&sb, NODE, true);
    let reporter = Reporter::start(config(&sb, &node), running());
    wait_for(Duration::from_secs(5), "first write", || {
        condition(&sb, "LowMemory")
    })
    .await;

    let path = format!("/api/v1/nodes/{NODE}/status");
    sb.faults().fail_next(&path, 503, 3);
    reporter.kubelet.send_replace(exited(0, &["E1127 boom"]));
    let err = wait_for(Duration::from_secs(3), "the failure published", || {
        reporter.status().last_error
    })
    .await;
    assert!(
        err.contains("503") || err.contains("ServiceUnavailable"),
        "{err}"
    );
    wait_for(
        Duration::from_secs(12),
        "the change after the outage",
        || condition(&sb, "KubeletUnhealthy").filter(|c| c["status"] == "True"),
    )
    .await;
    let patches = status_patches(&sb);
    let failed: Vec<_> = patches.iter().filter(|r| r.status == 503).collect();
    assert_eq!(failed.len(), 3);
    // three failures, then the fourth try lands (api_outage_timing checks the spacing)
    let tries = patches.len() - patches.iter().position(|r| r.status == 503).unwrap();
    assert_eq!(tries, 4, "{patches:?}");
    wait_for(Duration::from_secs(2), "the error cleared", || {
        reporter.status().last_error.is_none().then_some(())
    })
    .await;
    reporter.stop().await;
}

#[tokio::test]
async fn api_outage_timing() {
    // The same outage, timed: retries are spaced by the backoff.
    let sb = sandbox(SandboxConfig::default()).await;
    sb.add_node(NODE, true);
    let node = node_root(&sb, NODE, true);
    let reporter = Reporter::start(config(&sb, &node), running());
    wait_for(Duration::from_secs(5), "first write", || {
        condition(&sb, "LowMemory")
    })
    .await;
    sb.faults()
        .fail_next(&format!("/api/v1/nodes/{NODE}/status"), 503, 2);
    let started = Instant::now();
    reporter.kubelet.send_replace(exited(0, &[]));
    wait_for(
        Duration::from_secs(8),
        "the change after two failures",
        || condition(&sb, "KubeletUnhealthy").filter(|c| c["status"] == "True"),
    )
    .await;
    let took = started.elapsed();
    // 200 ms coalescing + 1 s + 2 s, each ±20 %
    assert!(
        took >= Duration::from_millis(2500),
        "{took:?}: retried too fast"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    reporter.stop().await;
}

#[tokio::test]
async fn clock_skew_from_the_api_servers_date() {
    let sb = sandbox(SandboxConfig {
        clock_offset_seconds: 3600,
        ..SandboxConfig::default()
    })
    .await;
    sb.add_node(NODE, true);
    let node = node_root(&sb, NODE, true);
    let reporter = Reporter::start(config(&sb, &node), running());
    let c = wait_for(Duration::from_secs(5), "ClockSkew on the Node", || {
        condition(&sb, "ClockSkew")
    })
    .await;
    assert_eq!(c["status"], "True", "{c}");
    assert_eq!(c["reason"], "ClockSkewed");
    let message = c["message"].as_str().unwrap();
    assert!(message.contains("behind"), "{message}");
    let skew = reporter.status().clock_skew_seconds.unwrap();
    assert!((skew - 3600.0).abs() < 2.0, "{skew}");
    wait_for(Duration::from_secs(2), "a ClockSkewed event", || {
        events(&sb, "ClockSkewed").into_iter().next()
    })
    .await;
    reporter.stop().await;
}

/// F9 (FAULTS.md): answers without a `Date` header (a proxy strips it) once made the reporter ask
/// `GET /version` (now: the Node) again and again at once, never writing the conditions.
#[tokio::test]
async fn answers_without_a_date_header_neither_loop_nor_block_the_conditions() {
    let sb = sandbox(SandboxConfig {
        omit_date_header: true,
        ..SandboxConfig::default()
    })
    .await;
    sb.add_node(NODE, true);
    let node = node_root(&sb, NODE, true);
    let reporter = Reporter::start(config(&sb, &node), running());
    let c = wait_for(
        Duration::from_secs(5),
        "KubeletUnhealthy on the Node",
        || condition(&sb, "KubeletUnhealthy"),
    )
    .await;
    assert_eq!(c["status"], "False", "{c}");
    // Settle a little longer than a heartbeat: a hot loop would have sent thousands by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let node_gets = sb
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == format!("/api/v1/nodes/{NODE}"))
        .count();
    assert_eq!(
        node_gets, 1,
        "the first exchange is made once, not in a loop"
    );
    assert_eq!(reporter.status().clock_skew_seconds, None);
    reporter.stop().await;
}

/// A restart of kaas-join is not a transition: the second reporter reads the Node first and
/// keeps the `lastTransitionTime` the first one wrote for every condition whose status is the
/// same, and moves it only where the status changed.
#[tokio::test]
async fn a_restart_keeps_the_transition_times_on_the_node() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.add_node(NODE, true);
    let node = node_root(&sb, NODE, true);
    let first = Reporter::start(config(&sb, &node), exited(1, &["boom"]));
    let before = wait_for(Duration::from_secs(5), "KubeletUnhealthy=True", || {
        condition(&sb, "KubeletUnhealthy").filter(|c| c["status"] == "True")
    })
    .await;
    let memory_before = condition(&sb, "LowMemory").expect("LowMemory written");
    first.stop().await;
    // Timestamps have a resolution of one second: a moved one would show.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = Reporter::start(config(&sb, &node), running());
    let after = wait_for(Duration::from_secs(5), "KubeletUnhealthy=False", || {
        condition(&sb, "KubeletUnhealthy").filter(|c| c["status"] == "False")
    })
    .await;
    let memory_after = condition(&sb, "LowMemory").unwrap();
    assert_eq!(memory_after["status"], memory_before["status"]);
    assert_ne!(
        memory_after["lastHeartbeatTime"], memory_before["lastHeartbeatTime"],
        "the second reporter wrote: {memory_after}"
    );
    assert_eq!(
        memory_after["lastTransitionTime"], memory_before["lastTransitionTime"],
        "same status across the restart: same transition time"
    );
    assert_ne!(
        after["lastTransitionTime"], before["lastTransitionTime"],
        "KubeletUnhealthy changed status: a new transition time"
    );
    second.stop().await;
}

#[tokio::test]
async fn rotated_certificate_is_picked_up() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.add_node(NODE, true);
    let node = node_root(&sb, NODE, true);
    let reporter = Reporter::start(config(&sb, &node), running());
    wait_for(Duration::from_secs(5), "first write", || {
        condition(&sb, "LowMemory")
    })
    .await;

    // A certificate the API server does not accept: the reporter uses it (it re-read the
    // file), gets 401, and says why.
    install_identity(&node.paths, &foreign_identity(NODE), 1);
    reporter.kubelet.send_replace(exited(0, &[]));
    let err = wait_for(Duration::from_secs(3), "401 reported", || {
        reporter
            .status()
            .last_error
            .filter(|e| e.contains("not accepted"))
    })
    .await;
    assert!(err.contains("Unauthorized"), "{err}");
    assert_eq!(reporter.status().client_loads, 2);
    assert!(sb.requests().iter().any(|r| r.status == 401));

    // kubelet rotates to a good certificate with a new key: picked up, writes resume at once
    // (not after the slow 401 retry interval).
    install_identity(&node.paths, &node_identity(&sb, NODE), 2);
    wait_for(
        Duration::from_secs(3),
        "the change written with the new certificate",
        || condition(&sb, "KubeletUnhealthy").filter(|c| c["status"] == "True"),
    )
    .await;
    let status = reporter.status();
    assert_eq!(status.client_loads, 3);
    wait_for(Duration::from_secs(2), "the error cleared", || {
        reporter.status().last_error.is_none().then_some(())
    })
    .await;
    reporter.stop().await;
}

#[tokio::test]
async fn unreadable_certificate_is_reported_not_fatal() {
    let sb = sandbox(SandboxConfig::default()).await;
    sb.add_node(NODE, true);
    let node = Node::bare();
    let reporter = Reporter::start(config(&sb, &node), running());
    let err = wait_for(Duration::from_secs(3), "the certificate error", || {
        reporter.status().last_error
    })
    .await;
    assert!(err.contains("kubelet-client-current.pem"), "{err}");
    let conditions = reporter.status().conditions;
    let cert = conditions
        .iter()
        .find(|c| c.type_ == "ClientCertificateExpiring")
        .unwrap();
    assert_eq!(
        (cert.status.as_str(), cert.reason.as_str()),
        ("True", "ClientCertificateUnreadable")
    );
    // once kubelet has a certificate, reporting starts
    install_identity(&node.paths, &node_identity(&sb, NODE), 0);
    wait_for(Duration::from_secs(5), "the conditions written", || {
        condition(&sb, "LowMemory")
    })
    .await;
    reporter.stop().await;
}

/// The sandbox's event PATCH (kubelet's correlator) and `Date` header, against the recording.
#[tokio::test]
async fn sandbox_event_patch_matches_recording() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = ApiClient::with_client_certificate(
        &sb.url(),
        sb.ca_pem().as_bytes(),
        node_identity(&sb, "kubelet-real-2").as_bytes(),
        Arc::new(RequestCounter::default()),
    )
    .unwrap();
    let read = |name: &str| -> Value {
        common::fixtures::fixture_json(&format!("kubelet-real-trace/{name}"))
    };
    let mut create = read("events-create-request.json");
    create["metadata"] = json!({"name": "kubelet-real-2.18ebd1c0e87afa15", "namespace": "default"});
    let _: Value = client
        .post_json("/api/v1/namespaces/default/events", &create)
        .await
        .unwrap();
    let patched: Value = client
        .patch_json(
            "/api/v1/namespaces/default/events/kubelet-real-2.18ebd1c0e87afa15",
            "application/strategic-merge-patch+json",
            &read("events-patch-request.json"),
        )
        .await
        .unwrap();
    let recorded = read("events-patch-response.json");
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(keys(&patched), keys(&recorded));
    for k in ["count", "lastTimestamp", "message"] {
        assert_eq!(patched[k], recorded[k], "{k}");
    }
    assert_eq!(patched["firstTimestamp"], create["firstTimestamp"]);
    let err = client
        .patch_json::<_, Value>(
            "/api/v1/namespaces/default/events/nope",
            "application/strategic-merge-patch+json",
            &json!({"count": 2}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), Some(404));
    let date = client.last_server_date().expect("a Date header");
    let server = health::parse_http_date(&date.header).expect("an HTTP date");
    assert!(health::clock_skew(server, date.received_at).abs() < 2.0);
}

/// The reporter stamps conditions and events with the host's wall clock (`Host::now`), so a
/// test can set it.
#[tokio::test]
async fn conditions_and_events_carry_the_hosts_time() {
    use kaas_join::host::FakeHost;
    use std::time::UNIX_EPOCH;

    let sb = sandbox(SandboxConfig::default()).await;
    sb.add_node(NODE, true);
    let node = node_root(&sb, NODE, true);
    let host = Arc::new(FakeHost::new());
    host.set_now(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let mut cfg = config(&sb, &node);
    cfg.host = host.clone();
    let reporter = Reporter::start(cfg, running());
    let c = wait_for(Duration::from_secs(5), "first write", || {
        condition(&sb, "KubeletUnhealthy").filter(|c| c["status"] == "False")
    })
    .await;
    assert_eq!(c["lastHeartbeatTime"], "2027-01-15T08:00:00Z", "{c}");
    assert_eq!(c["lastTransitionTime"], "2027-01-15T08:00:00Z", "{c}");

    host.set_now(UNIX_EPOCH + Duration::from_secs(1_800_003_600));
    reporter.kubelet.send_replace(exited(0, &[]));
    let c = wait_for(Duration::from_secs(2), "KubeletUnhealthy True", || {
        condition(&sb, "KubeletUnhealthy").filter(|c| c["status"] == "True")
    })
    .await;
    assert_eq!(c["lastTransitionTime"], "2027-01-15T09:00:00Z", "{c}");
    assert_eq!(c["lastHeartbeatTime"], "2027-01-15T09:00:00Z", "{c}");
    let event = wait_for(Duration::from_secs(2), "a KubeletRestarted event", || {
        events(&sb, "KubeletRestarted").into_iter().next()
    })
    .await;
    assert_eq!(event["firstTimestamp"], "2027-01-15T09:00:00Z", "{event}");
    reporter.stop().await;
}

/// 401 answers to the status writes are published as a streak (how many, since when), which is
/// what `run` judges a rejected identity by; an accepted write ends the streak.
#[tokio::test]
async fn a_streak_of_401_answers_is_published_and_an_accepted_write_ends_it() {
    use kaas_join::model::identity::{IdentityLoss, REJECTION_SPAN};
    let sb = sandbox(SandboxConfig::default()).await;
    sb.add_node(NODE, true);
    let node = node_root(&sb, NODE, true);
    let mut cfg = config(&sb, &node);
    // The 401 retry interval is the backoff's cap: short here.
    cfg.backoff_initial = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(100);
    sb.faults()
        .fail_next(&format!("PATCH /api/v1/nodes/{NODE}/status"), 401, 4);
    let reporter = Reporter::start(cfg, running());

    let seen = wait_for(Duration::from_secs(5), "three 401 answers", || {
        let seen = reporter.status().identity;
        seen.unauthorized.filter(|u| u.count >= 3).map(|_| seen)
    })
    .await;
    let streak = seen.unauthorized.unwrap();
    assert!(
        seen.not_after
            .is_some_and(|t| t > std::time::SystemTime::now()),
        "{seen:?}"
    );
    // Not lost while the streak is younger than REJECTION_SPAN; lost after it.
    assert_eq!(seen.judge(streak.since), None);
    assert!(matches!(
        seen.judge(streak.since + REJECTION_SPAN),
        Some(IdentityLoss::Rejected { .. })
    ));

    // The fifth write is accepted: no streak any more.
    wait_for(Duration::from_secs(5), "the streak ended", || {
        reporter
            .status()
            .identity
            .unauthorized
            .is_none()
            .then_some(())
    })
    .await;
    assert!(reporter.status().last_error.is_none());
    reporter.stop().await;
}
