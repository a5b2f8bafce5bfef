//! The step-by-step account of a join, printed on stdout as text or JSON (`--output`).
//!
//! It never holds a secret: files with a private key are listed with their path and mode only.

use tokio::time::Instant;

use serde::Serialize;

use crate::model::output::OutputFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Joined,
    AlreadyJoined,
    DryRun,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub name: &'static str,
    pub detail: String,
    pub millis: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// The path on the node (inside `--root` when one is given).
    pub path: String,
    pub mode: String,
    pub bytes: usize,
    /// Shown in `--dry-run` for files without secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinReport {
    pub outcome: Outcome,
    pub node_name: String,
    pub server: Option<String>,
    pub ca_pin: Option<String>,
    pub steps: Vec<Step>,
    pub files: Vec<FileEntry>,
    pub warnings: Vec<String>,
    pub requests: u64,
    pub millis: u64,
    #[serde(skip)]
    started: Option<Instant>,
}

impl JoinReport {
    pub fn new(node_name: &str, warnings: Vec<String>) -> JoinReport {
        JoinReport {
            outcome: Outcome::Joined,
            node_name: node_name.to_string(),
            server: None,
            ca_pin: None,
            steps: Vec::new(),
            files: Vec::new(),
            warnings,
            requests: 0,
            millis: 0,
            started: Some(Instant::now()),
        }
    }

    pub fn step(&mut self, name: &'static str, detail: impl Into<String>, since: Instant) {
        let detail = detail.into();
        let millis = since.elapsed().as_millis() as u64;
        tracing::info!(step = name, millis, "{detail}");
        self.steps.push(Step {
            name,
            detail,
            millis,
        });
    }

    pub fn warn(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::warn!("{text}");
        self.warnings.push(text);
    }

    pub fn finish(&mut self, outcome: Outcome, requests: u64) {
        self.outcome = outcome;
        self.requests = requests;
        self.millis = self.started.map_or(0, |s| s.elapsed().as_millis() as u64);
    }

    pub fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Json => {
                serde_json::to_string_pretty(self).expect("report serializes") + "\n"
            }
            OutputFormat::Text => self.render_text(),
        }
    }

    fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let total = self.steps.len();
        for (i, step) in self.steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "[{}/{}] {:<10} {:>6} ms  {}",
                i + 1,
                total,
                step.name,
                step.millis,
                step.detail
            );
        }
        if !self.files.is_empty() {
            let verb = if self.outcome == Outcome::DryRun {
                "would write"
            } else {
                "wrote"
            };
            let _ = writeln!(out, "Files ({verb}):");
            for f in &self.files {
                let _ = writeln!(out, "  {} {:>6} B  {}", f.mode, f.bytes, f.path);
            }
            for f in &self.files {
                if let Some(content) = &f.content {
                    let _ = writeln!(out, "--- {} ---\n{}", f.path, content.trim_end());
                }
            }
        }
        for w in &self.warnings {
            let _ = writeln!(out, "WARNING: {w}");
        }
        let _ = match self.outcome {
            Outcome::Joined => writeln!(
                out,
                "Joined: node {} can start kubelet against {} ({} ms, {} API requests).",
                self.node_name,
                self.server.as_deref().unwrap_or("?"),
                self.millis,
                self.requests
            ),
            Outcome::AlreadyJoined => writeln!(
                out,
                "Already joined as node {} (server {}); nothing to do. Use --force to join again.",
                self.node_name,
                self.server.as_deref().unwrap_or("?")
            ),
            Outcome::DryRun => writeln!(
                out,
                "Dry run: nothing was written and no CertificateSigningRequest was created ({} API requests).",
                self.requests
            ),
        };
        out
    }
}
