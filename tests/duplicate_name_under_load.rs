//! The duplicate-name check runs even when the API server is slow (issue 11, item 9): in the
//! 1,000-join load benchmark 859 joins skipped it (best effort, 3 s), exactly when duplicate
//! hostnames happen (many VMs booted from one image). Now the join waits for the answer,
//! bounded by the phase's timeout, and says so, or fails instead of passing unchecked.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use kaas_join::cmd::error::Error;
use kaas_join::model::exit_code::ExitCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_still_refuses_a_duplicate() {
    let c = Cluster::builder()
        .node("node-1")
        .timeout(Duration::from_secs(30))
        .start()
        .await;
    let (sb, cfg) = (&c.sb, &c.config);
    sb.add_node("node-1", true);
    // The Node GET takes 4 s, longer than the old check waited.
    sb.faults()
        .stall_next("GET /api/v1/nodes/node-1", Duration::from_secs(4), 1);
    let err = kaas_join::cmd::join::join(cfg, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::DuplicateNode { .. }), "{err}");
    assert_eq!(err.exit_code(), ExitCode::DuplicateNode);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_and_the_report_says_so() {
    let c = Cluster::builder()
        .node("node-2")
        .timeout(Duration::from_secs(30))
        .start()
        .await;
    let (sb, cfg) = (&c.sb, &c.config);
    sb.faults().fail_next("GET /api/v1/nodes/node-2", 503, 2);
    let report = kaas_join::cmd::join::join(cfg, vec![]).await.unwrap();
    let cluster = report.steps.iter().find(|s| s.name == "cluster").unwrap();
    assert!(
        cluster.detail.contains("no Node named node-2 yet")
            && cluster.detail.contains("answered after 2 retries"),
        "{}",
        cluster.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_within_the_timeout_fails_the_join_instead_of_passing() {
    let c = Cluster::builder()
        .node("node-3")
        .timeout(Duration::from_secs(2))
        .start()
        .await;
    let (sb, cfg) = (&c.sb, &c.config);
    sb.faults().fail_next("GET /api/v1/nodes/node-3", 503, 1000);
    let err = kaas_join::cmd::join::join(cfg, vec![]).await.unwrap_err();
    assert!(matches!(err, Error::NodeCheck { .. }), "{err}");
    assert_eq!(err.exit_code(), ExitCode::Unreachable, "{err}");
    assert!(sb.csrs().is_empty(), "no CSR for an unchecked name");
}
