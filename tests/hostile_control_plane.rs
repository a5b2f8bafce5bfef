//! A control plane that answers what a real one would not: kaas-join refuses it with the
//! documented exit code and a clear error, instead of going on with what it was told.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use kaas_join::model::exit_code::ExitCode;

/// cluster-info's server gets the rules `--server` gets (issue 11, item 7): before, a published
/// `https://host:port/x?y#z` was accepted and every request went to `GET /x?y...`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_info_server_with_a_query_or_user_info_is_refused() {
    for (published, why) in [
        ("/x?y#z", "query or fragment"),
        ("#frag", "query or fragment"),
    ] {
        let c = Cluster::builder()
            .knobs(|sb| sb.advertised_server = Some(format!("https://127.0.0.1:6443{published}")))
            .timeout(Duration::from_secs(5))
            .start()
            .await;
        let sb = &c.sb;
        let err = kaas_join::cmd::join::join(&c.config, vec![])
            .await
            .unwrap_err();
        assert_eq!(
            err.exit_code(),
            ExitCode::NotKubernetes,
            "{published}: {err}"
        );
        assert!(err.to_string().contains(why), "{published}: {err}");
        assert!(
            sb.csrs().is_empty(),
            "{published}: no CSR after a refused cluster-info"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_in_cluster_infos_server_is_refused_and_never_shown() {
    let c = Cluster::builder()
        .knobs(|sb| {
            sb.advertised_server = Some("https://admin:s3cret-password@127.0.0.1:6443".into())
        })
        .timeout(Duration::from_secs(5))
        .start()
        .await;
    let err = kaas_join::cmd::join::join(&c.config, vec![])
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::NotKubernetes, "{err}");
    assert!(err.to_string().contains("user info"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

/// A CSR watch that carries garbage (lines that are not JSON, or a chunk that never ends its
/// line) is "answered something unusable" (exit 9) after a few tries (issue 11, item 6: it was
/// retried quietly until the TLS bootstrap timeout, then blamed on the approver, exit 11).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_watch_stream_is_an_unusable_answer_not_a_missing_approval() {
    for garbage in [
        kaas_sandbox::WatchGarbage::Lines,
        kaas_sandbox::WatchGarbage::NoNewline,
    ] {
        let c = Cluster::builder()
            .approval(kaas_sandbox::ApprovalMode::Never)
            .timeout(Duration::from_secs(60))
            .start()
            .await;
        c.sb.faults().garbage_watches(garbage);
        let err = kaas_join::cmd::join::join(&c.config, vec![])
            .await
            .unwrap_err();
        assert_eq!(
            err.exit_code(),
            ExitCode::NotKubernetes,
            "{garbage:?}: {err}"
        );
        assert!(err.to_string().contains("watch"), "{garbage:?}: {err}");
    }
}
