//! The bootstrapsigner of the sandbox under concurrency: every token created, however many at
//! once, ends up with its signature in cluster-info.

use kaas_sandbox::{Sandbox, SandboxConfig};

/// Regression: tokens created at the same moment from several threads once lost signatures (two
/// re-signings read the tokens, then wrote cluster-info in the other order), so a join with such
/// a token failed "no signature" (exit 6) now and then under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_created_at_once_are_all_signed() {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let sb = std::sync::Arc::new(sb);
    // Bounded: 100 rounds of 4 threads released together, one token each.
    let mut tokens = Vec::new();
    for _ in 0..100 {
        let start = std::sync::Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (sb, start) = (sb.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    sb.create_token()
                })
            })
            .collect();
        tokens.extend(
            threads
                .into_iter()
                .map(|t| t.join().expect("a token thread")),
        );
    }
    let info = sb
        .object("ConfigMap", "kube-public", "cluster-info")
        .expect("cluster-info");
    let missing: Vec<&str> = tokens
        .iter()
        .map(|t| t.split_once('.').expect("id.secret").0)
        .filter(|id| info["data"][format!("jws-kubeconfig-{id}")].is_null())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} tokens have no signature: {missing:?}",
        missing.len(),
        tokens.len()
    );
}
