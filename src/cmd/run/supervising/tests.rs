//! The supervising loop's judgement of the node's identity, fed by hand (no kubelet, no API
//! server) on tokio's paused clock; the identity rule's wall clock is the real one.

use std::time::SystemTime;

use clap::Parser as _;

use super::*;
use crate::model::identity::{IdentitySeen, Unauthorized};

fn run_args() -> RunArgs {
    let cli = crate::cli::Cli::try_parse_from(["kaas-join", "run", "--no-kubelet"]).unwrap();
    match cli.command {
        crate::cli::Command::Run(args) => args,
        _ => unreachable!("a run command line"),
    }
}

fn seen(identity: IdentitySeen) -> ReportedStatus {
    ReportedStatus {
        identity,
        ..ReportedStatus::default()
    }
}

/// Three 401 answers, the first `ago` ago.
fn rejected_since(ago: Duration) -> ReportedStatus {
    seen(IdentitySeen {
        not_after: Some(SystemTime::now() + Duration::from_secs(86_400)),
        unauthorized: Some(Unauthorized {
            count: 3,
            since: SystemTime::now() - ago,
        }),
    })
}

#[tokio::test(start_paused = true)]
async fn a_persistent_401_streak_or_an_expired_certificate_ends_supervision() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let args = run_args();
    let notifier = Notifier::disabled();
    let (kubelet_tx, kubelet_rx) = watch::channel(KubeletState::default());
    let (reported_tx, reported_rx) = watch::channel(ReportedStatus::default());
    let mut node = Node::start(
        &args,
        &paths,
        &notifier,
        kubelet_tx,
        kubelet_rx,
        reported_rx,
        Arc::default(),
    )
    .await;
    let (_keep_open, rx) = mpsc::channel(1);
    let mut requests = Requests::new(rx);
    let mut status = StatusFile::new(&paths, false);

    // A streak younger than 30 s: supervision goes on.
    reported_tx.send_replace(rejected_since(Duration::from_secs(5)));
    tokio::select! {
        ended = node.until_stopped(&mut requests, &mut status) => {
            panic!("ended on a young streak: {:?}", ended.map(|_| ()))
        }
        _ = tokio::time::sleep(Duration::from_secs(60)) => {}
    }

    // 30 s of 401 answers: the identity is lost.
    reported_tx.send_replace(rejected_since(Duration::from_secs(31)));
    let ended = node
        .until_stopped(&mut requests, &mut status)
        .await
        .unwrap();
    assert!(
        matches!(
            ended,
            Ended::IdentityLost(IdentityLoss::Rejected { count: 3, .. })
        ),
        "{:?}",
        matches!(ended, Ended::Stopped)
    );

    // An expired certificate: lost at once.
    reported_tx.send_replace(seen(IdentitySeen {
        not_after: Some(SystemTime::now() - Duration::from_secs(1)),
        unauthorized: None,
    }));
    let ended = node
        .until_stopped(&mut requests, &mut status)
        .await
        .unwrap();
    assert!(matches!(
        ended,
        Ended::IdentityLost(IdentityLoss::Expired { .. })
    ));
    status.close().await;
}

/// The flags file as `join` writes it, naming `endpoint`.
fn write_flags_file(paths: &Paths, endpoint: &str) {
    let labels = std::collections::BTreeMap::new();
    let text =
        crate::render::flags_env::render_flags_env(&crate::render::flags_env::KubeletFlags {
            cri_endpoint: endpoint,
            node_ip: None,
            hostname_override: Some("node-a"),
            node_labels: &labels,
            extra_args: &[],
        });
    let path = paths.host(crate::host::paths::KUBELET_FLAGS_ENV);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A node joined with `--cri-socket` elsewhere: the probe checks the socket kubelet is given
/// (the flags file, then `--kubelet-arg`, the last one winning as in kubelet), not containerd's
/// default. Before, the flags file's first word hid the flag and the default was probed, so the
/// Node said ContainerRuntimeUnreachable=True while kubelet ran pods fine.
#[test]
fn the_runtime_probe_checks_the_endpoint_kubelet_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let elsewhere = "unix:///somewhere/else/containerd.sock";
    write_flags_file(&paths, elsewhere);
    assert_eq!(cri_endpoint(&paths, &[]), elsewhere);

    let later = [
        "--container-runtime-endpoint".to_string(),
        "unix:///later.sock".to_string(),
    ];
    assert_eq!(cri_endpoint(&paths, &later), "unix:///later.sock");
    let later = ["--container-runtime-endpoint=unix:///last.sock".to_string()];
    assert_eq!(cri_endpoint(&paths, &later), "unix:///last.sock");

    // No flags file (not joined yet, or removed): containerd's default.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        cri_endpoint(&Paths::new(empty.path()), &[]),
        DEFAULT_CRI_ENDPOINT
    );
}
