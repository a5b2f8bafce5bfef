//! What a reset did (or, with `--dry-run`, would do): [`ResetReport`], shown as text (also the
//! preview before the confirmation) or JSON.

use serde::Serialize;

use crate::model::output::OutputFormat;

/// What reset did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResetReport {
    pub dry_run: bool,
    pub node_name: Option<String>,
    /// Processes and units stopped, in order.
    pub stopped: Vec<String>,
    /// Node paths removed, in order.
    pub removed: Vec<String>,
    /// Files left in place on purpose, with the reason.
    pub kept: Vec<Kept>,
    pub node: NodeResult,
    /// What reset leaves alone in general (directories, the rest of /var/lib/kubelet).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Kept {
    pub path: String,
    pub reason: String,
}

/// What happened to the Node object.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NodeOutcome {
    /// No `--kubeconfig`: the Node stays.
    NotRequested,
    WouldDelete,
    Deleted,
    /// 404: someone deleted it already.
    AlreadyGone,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeResult {
    pub outcome: NodeOutcome,
    pub message: String,
}

/// The report for stdout: one JSON object, or the text of [`render_text`].
pub(super) fn render(r: &ResetReport, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(r).expect("serializes") + "\n",
        OutputFormat::Text => render_text(r),
    }
}

/// The report as text: one line per unit or process stopped, file removed or kept, and the Node.
pub fn render_text(r: &ResetReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}node {}",
        if r.dry_run {
            "dry run, nothing changed: reset of "
        } else {
            "reset "
        },
        r.node_name.as_deref().unwrap_or("(name unknown)")
    );
    let (stopped, removed) = if r.dry_run {
        ("would stop", "would remove")
    } else {
        ("stopped", "removed")
    };
    if r.stopped.is_empty() {
        let _ = writeln!(
            out,
            "{stopped:<12} nothing (no kaas-join run or kubelet of this node was running)"
        );
    }
    for s in &r.stopped {
        let _ = writeln!(out, "{stopped:<12} {s}");
    }
    for p in &r.removed {
        let _ = writeln!(out, "{removed:<12} {p}");
    }
    for k in &r.kept {
        let _ = writeln!(out, "{:<12} {}: {}", "kept", k.path, k.reason);
    }
    for n in &r.notes {
        let _ = writeln!(out, "{:<12} {n}", "note");
    }
    let _ = writeln!(out, "{:<12} {}", "node", r.node.message);
    out
}
