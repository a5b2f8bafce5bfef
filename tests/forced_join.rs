//! `join --force` to another cluster that fails leaves the working join as it was (issue 11,
//! item 4): before, state.json said "bootstrapping" with the new cluster while kubelet.conf
//! still named the old one, so `status` said NOT JOINED and `reset` kept the old kubelet.conf
//! and CA as "not ours" while removing the client certificate kubelet.conf uses.

mod common;

use std::time::Duration;

use kaas_join::host::paths::{Paths, KUBELET_KUBECONFIG};
use kaas_join::model::exit_code::ExitCode;
use kaas_join::node::join_state;
use kaas_sandbox::{ApprovalMode, SandboxConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_forced_join_keeps_the_working_one_for_status_and_reset() {
    let a = common::sandbox(SandboxConfig::default()).await;
    let b = common::sandbox(SandboxConfig {
        approval: ApprovalMode::Never,
        ..SandboxConfig::default()
    })
    .await;
    let root = tempfile::tempdir().unwrap();
    let paths = Paths::new(root.path());
    let to_a = common::sandbox_join_config(
        &a,
        &a.create_token(),
        "node-1",
        root.path(),
        Duration::from_secs(10),
    );
    kaas_join::cmd::join::join(&to_a, vec![]).await.unwrap();
    let kubelet_conf = std::fs::read_to_string(paths.host(KUBELET_KUBECONFIG)).unwrap();
    assert!(kubelet_conf.contains(&a.url()));

    let mut to_b = common::sandbox_join_config(
        &b,
        &b.create_token(),
        "node-1",
        root.path(),
        Duration::from_secs(2),
    );
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
    assert_eq!(st.server, a.url());
    let pending = st.replacing.as_ref().expect("the forced join is recorded");
    assert_eq!(pending.server, b.url());

    // status: joined (to A), with the unfinished forced join as a problem (21, not 20).
    let status = common::kaas_join([
        "status",
        "--root",
        root.path().to_str().unwrap(),
        "--output",
        "json",
    ])
    .await;
    assert_eq!(status.code, 21, "{status:#?}");
    let report = status.json();
    assert_eq!(report["joined"], true, "{report}");
    assert_eq!(report["server"], a.url().as_str());
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
        root.path().to_str().unwrap(),
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
    assert_eq!(b.csrs().len(), 1, "{:?}", b.csrs());
}
