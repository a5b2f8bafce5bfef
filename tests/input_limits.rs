//! Inputs are bounded: a huge config file, token file or join ticket is refused at once with a
//! clear error (issue 11, item 5: a 200 MB config file joined at 1.38 GB RSS in 33 s and wrote a
//! 200 MB config.yaml), and a config file starting with a UTF-8 byte order mark reads as any
//! other (item 8: it was "no apiVersion and kind").

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Instant;

use kaas_join::cli::JoinArgs;
use kaas_join::config::{load, ConfigError, Environment};

const PIN: &str = "sha256:9be846df48babcf115c32d5881b8dee2cfc5fd6d34664a10f3ca41dfafa6e8d4";

fn env() -> Environment {
    Environment {
        token: Some("abcdef.0123456789abcdef".into()),
        hostname: "worker-1".into(),
        stdin: None,
    }
}

fn args(root: &Path) -> JoinArgs {
    JoinArgs {
        server: vec!["10.0.0.5:6443".into()],
        discovery_token_ca_cert_hash: vec![PIN.into()],
        cri_socket: Some("unix:///run/containerd/containerd.sock".into()),
        root: root.to_owned(),
        ..JoinArgs::default()
    }
}

#[test]
fn a_huge_config_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    // Valid YAML all the way: a kubelet override padded with a 8 MB comment.
    let text = format!(
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\n# {}\n",
        "x".repeat(8 << 20)
    );
    std::fs::write(&file, text).unwrap();
    let started = Instant::now();
    let err = load(
        &JoinArgs {
            config: Some(file.clone()),
            ..args(dir.path())
        },
        env(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ConfigError::ConfigFileTooLarge { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("1048576 bytes at most"), "{err}");
    // Not a timing assertion on the code: a sanity bound that it did not parse 8 MB of YAML.
    println!("refused in {:?}", started.elapsed());
}

#[test]
fn a_huge_token_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, vec![b'a'; 1 << 20]).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = load(
        &JoinArgs {
            token_file: Some(token_file),
            ..args(dir.path())
        },
        Environment {
            token: None,
            ..env()
        },
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("1048576 bytes"), "{text}");
    assert!(text.contains("65536 at most"), "{text}");
}

#[tokio::test]
async fn a_huge_ticket_on_standard_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let huge = format!("kj1.{}.00000000\n", "A".repeat(1 << 20));
    // The reader stops at its limit: the runner takes the broken pipe as the point.
    let run = common::Invocation::new(["join", "-", "--root"])
        .args([dir.path()])
        .stdin(huge)
        .run_async()
        .await;
    let stderr = &run.stderr;
    assert_eq!(run.code, 2, "{stderr}");
    assert!(stderr.contains("more than 4096 bytes"), "{stderr}");
}

#[test]
fn a_config_file_with_a_byte_order_mark_reads_as_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(
        &file,
        "\u{feff}apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nnodeName: bom-node\n",
    )
    .unwrap();
    let (cfg, _) = load(
        &JoinArgs {
            config: Some(file),
            ..args(dir.path())
        },
        env(),
    )
    .unwrap();
    assert_eq!(cfg.node_name, "bom-node");
}

/// Errors echo what was given cut to a line, and never a URL's user info (issue 11, item 8:
/// a 100 kB `--server` was printed twice, `user:pass@` as given).
#[test]
fn errors_echo_input_cut_and_without_user_info() {
    let dir = tempfile::tempdir().unwrap();
    for (server, never) in [
        (format!("{}:6443", "a".repeat(100_000)), "a".repeat(200)),
        (
            "https://admin:pa55word@cp.example:6443/x".to_owned(),
            "pa55word".to_owned(),
        ),
        (format!("h:{}", "9".repeat(100_000)), "9".repeat(200)),
    ] {
        let err = load(
            &JoinArgs {
                server: vec![server],
                ..args(dir.path())
            },
            env(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.len() < 600,
            "{} bytes: {}",
            err.len(),
            &err[..600.min(err.len())]
        );
        assert!(!err.contains(&never), "{err}");
    }
}
