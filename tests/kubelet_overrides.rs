//! The config file's `kubelet:` block is checked against KubeletConfiguration v1beta1 (issue 11,
//! item 3): a misspelled field, a wrong type or an out-of-range value is an error naming the
//! field, its line and the nearest known name, before anything is sent or written; an override
//! that weakens a secure default is named in a warning by `join` (stderr and the report) and
//! `preflight`. Before, all of these passed silently and kubelet failed at its start.

mod common;

use common::machine::Machine;
use kaas_sandbox::SandboxConfig;

/// `kaas-join <subcommand>` for a machine whose config file has `kubelet_lines` (indented).
async fn run_with(subcommand: &str, kubelet_lines: &str, extra: &[&str]) -> common::Run {
    let sb = common::sandbox(SandboxConfig::default()).await;
    let m = Machine::new(&sb, "override-node");
    // The machine's config file ends with `kubelet:` and its healthz port: add to that block.
    let config = m.dir().join("files/config.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(kubelet_lines);
    std::fs::write(&config, text).unwrap();
    let mut args = m.args(subcommand);
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = common::kaas_join(&args).await;
    drop(sb);
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelled_field_is_refused_with_its_line_and_the_known_name() {
    let run = run_with("join", "  maxPod: 50\n", &["--dry-run"]).await;
    assert_eq!(run.code, 2, "{run:#?}");
    let err = run.stderr.lines().last().unwrap_or_default();
    assert!(err.contains("`maxPod`"), "{err}");
    assert!(err.contains("did you mean `maxPods`"), "{err}");
    assert!(err.contains("(line "), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_and_ranges_are_refused_before_any_request() {
    for (lines, want) in [
        ("  maxPods: fifty\n", "expected an integer"),
        ("  readOnlyPort: 99999\n", "65535"),
        ("  authorization: {mode: Sometimes}\n", "is not one of"),
    ] {
        let run = run_with("join", lines, &[]).await;
        assert_eq!(run.code, 2, "{lines}: {run:#?}");
        assert!(run.stderr.contains(want), "{lines}: {}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weakened_defaults_are_named_by_join_its_report_and_preflight() {
    let weak = "  authentication: {anonymous: {enabled: true}}\n  authorization: {mode: AlwaysAllow}\n  readOnlyPort: 10255\n";
    let join = run_with("join", weak, &["--dry-run", "--output", "json"]).await;
    assert_eq!(join.code, 0, "{join:#?}");
    let report = join.json();
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    for field in [
        "authentication.anonymous.enabled",
        "authorization.mode",
        "readOnlyPort",
    ] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(field) && w.contains("weakens a secure default")),
            "{field} not in the report's warnings: {warnings:#?}"
        );
        assert!(
            join.stderr.contains(field),
            "{field} not on stderr: {}",
            join.stderr
        );
    }
    let preflight = run_with("preflight", weak, &["--output", "json"]).await;
    let notes = preflight.json()["notes"].to_string();
    for field in [
        "authentication.anonymous.enabled",
        "authorization.mode",
        "readOnlyPort",
    ] {
        assert!(
            notes.contains(field),
            "{field} not in preflight's notes: {notes}"
        );
    }
}
