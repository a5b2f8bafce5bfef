//! `join --force` to another cluster that fails leaves the working join as it was (issue 11,
//! item 4): before, state.json said "bootstrapping" with the new cluster while kubelet.conf
//! still named the old one, so `status` said NOT JOINED and `reset` kept the old kubelet.conf
//! and CA as "not ours" while removing the client certificate kubelet.conf uses.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use kaas_join::host::paths::{Paths, KUBELET_KUBECONFIG};
use kaas_join::model::exit_code::ExitCode;
use kaas_join::node::join_state;
use kaas_sandbox::ApprovalMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_forced_join_keeps_the_working_one_for_status_and_reset() {
    let a = Cluster::start().await;
    let b = Cluster::builder()
        .approval(ApprovalMode::Never)
        .timeout(Duration::from_secs(2))
        .start()
        .await;
    // One machine: the forced join to B goes into A's root.
    let root = a.root();
    let paths = Paths::new(root);
    let to_a = a.config.clone();
    kaas_join::cmd::join::join(&to_a, vec![]).await.unwrap();
    let kubelet_conf = std::fs::read_to_string(paths.host(KUBELET_KUBECONFIG)).unwrap();
    assert!(kubelet_conf.contains(&a.sb.url()));

    let mut to_b = b.config.clone();
    to_b.root = root.to_path_buf();
    to_b.force = true;
    let err = kaas_join::cmd::join::join(&to_b, vec![]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::NotApproved, "{err}");

    // The files and the state still describe the join to A; the state knows B is pending.
    assert_eq!(
        std::fs::read_to_string(paths.host(KUBELET_KUBECONFIG)).unwrap(),
        kubelet_conf
    );
    let st = join_state::load(&paths).unwrap().unwrap();
    assert_eq!(st.phase, join_state::Phase::Joined);
    assert_eq!(st.server, a.sb.url());
    let pending = st.replacing.as_ref().expect("the forced join is recorded");
    assert_eq!(pending.server, b.sb.url());

    // status: joined (to A), with the unfinished forced join as a problem (21, not 20).
    let status = common::kaas_join([
        "status",
        "--root",
        root.to_str().unwrap(),
        "--output",
        "json",
    ])
    .await;
    assert_eq!(status.code, 21, "{status:#?}");
    let report = status.json();
    assert_eq!(report["joined"], true, "{report}");
    assert_eq!(report["server"], a.sb.url().as_str());
    assert!(
        report["problems"].to_string().contains("did not finish"),
        "{report}"
    );

    // reset: A's kubelet.conf and CA are ours, removed with the certificate they use.
    let reset = common::kaas_join([
        "reset",
        "--dry-run",
        "--force",
        "--output",
        "json",
        "--root",
        root.to_str().unwrap(),
    ])
    .await;
    assert_eq!(reset.code, 0, "{reset:#?}");
    let removed = reset.json()["removed"].to_string();
    for f in [
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/pki/ca.crt",
        "kubelet-client-current.pem",
    ] {
        assert!(removed.contains(f), "{f} not removed: {removed}");
    }

    // A second try at B keeps the key: the same CSR, not a second pending one.
    let _ = kaas_join::cmd::join::join(&to_b, vec![]).await.unwrap_err();
    assert_eq!(b.sb.csrs().len(), 1, "{:?}", b.sb.csrs());
}
