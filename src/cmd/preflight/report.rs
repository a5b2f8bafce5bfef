//! What the checks end in and how it is shown: [`CheckResult`] and its [`Status`], the user's
//! [`IgnoreList`], and the [`PreflightReport`] with its text and JSON rendering (stdout of
//! `kaas-join preflight`) and its one-line problems (the log of a join).

use std::collections::BTreeSet;

use serde::Serialize;

use super::names;
use crate::model::exit_code::ExitCode;
use crate::model::output::OutputFormat;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warning,
    Error,
    /// An error the user ignored (`--ignore-preflight-errors`).
    Ignored,
    /// Could not be checked here; the message says why.
    Skipped,
}
impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warning => "warning",
            Status::Error => "error",
            Status::Ignored => "ignored",
            Status::Skipped => "skipped",
        }
    }
}

/// One check's result: what was found, and for a warning or an error the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}
impl CheckResult {
    fn new(name: &str, status: Status, message: String, fix: Option<String>) -> CheckResult {
        CheckResult {
            name: name.to_owned(),
            status,
            message,
            fix,
        }
    }
    pub(super) fn pass(name: &str, message: impl Into<String>) -> CheckResult {
        CheckResult::new(name, Status::Pass, message.into(), None)
    }
    pub(super) fn skipped(name: &str, message: impl Into<String>) -> CheckResult {
        CheckResult::new(name, Status::Skipped, message.into(), None)
    }
    pub(super) fn warning(
        name: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> CheckResult {
        CheckResult::new(name, Status::Warning, message.into(), Some(fix.into()))
    }
    pub(super) fn error(
        name: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> CheckResult {
        CheckResult::new(name, Status::Error, message.into(), Some(fix.into()))
    }
}

/// The checks the user ignores: already normalized by [`crate::config::ignore_list`].
#[derive(Debug, Clone, Default)]
pub struct IgnoreList {
    names: BTreeSet<String>,
}
impl IgnoreList {
    pub fn new(normalized: &[String]) -> IgnoreList {
        IgnoreList {
            names: normalized.iter().map(|n| n.to_lowercase()).collect(),
        }
    }

    /// Whether errors of check `name` are ignored (case-insensitive; `all` ignores every one).
    pub fn ignores(&self, name: &str) -> bool {
        self.names.contains("all") || self.names.contains(&name.to_lowercase())
    }

    /// The names that match no check in `known` (kubeadm accepts these silently; we warn).
    pub fn unknown<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        self.names
            .iter()
            .filter(|n| *n != "all" && !known.iter().any(|k| k.eq_ignore_ascii_case(n)))
            .map(String::as_str)
            .collect()
    }
}

/// Counts of each status, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warning: usize,
    pub error: usize,
    pub ignored: usize,
    pub skipped: usize,
}

/// Every check's result, with the ignore list applied.
#[derive(Debug, Clone, Serialize)]
pub struct PreflightReport {
    pub checks: Vec<CheckResult>,
    pub summary: Summary,
    /// The checks whose errors were not ignored (the exit code is 24 when there is one).
    pub failed: Vec<String>,
    /// Remarks about the run itself (unknown names in the ignore list, what was not checked).
    pub notes: Vec<String>,
}
impl PreflightReport {
    /// Applies `ignore` (errors become `ignored`) and warns about names no check has.
    pub fn new(
        mut checks: Vec<CheckResult>,
        ignore: &IgnoreList,
        mut notes: Vec<String>,
    ) -> PreflightReport {
        for c in &mut checks {
            if c.status == Status::Error && ignore.ignores(&c.name) {
                c.status = Status::Ignored;
            }
        }
        let mut known: Vec<&str> = names::ALL.to_vec();
        known.extend(checks.iter().map(|c| c.name.as_str()));
        let unknown = ignore.unknown(&known);
        if !unknown.is_empty() {
            let mut list: Vec<&str> = names::ALL.to_vec();
            for c in &checks {
                if !list.contains(&c.name.as_str()) {
                    list.push(&c.name);
                }
            }
            notes.insert(
                0,
                format!(
                    "--ignore-preflight-errors names no check kaas-join has: {} (ignored; the \
                     checks are: {})",
                    unknown.join(", "),
                    list.join(", ")
                ),
            );
        }
        let mut summary = Summary::default();
        for c in &checks {
            *match c.status {
                Status::Pass => &mut summary.pass,
                Status::Warning => &mut summary.warning,
                Status::Error => &mut summary.error,
                Status::Ignored => &mut summary.ignored,
                Status::Skipped => &mut summary.skipped,
            } += 1;
        }
        let failed = checks
            .iter()
            .filter(|c| c.status == Status::Error)
            .map(|c| c.name.clone())
            .collect();
        PreflightReport {
            checks,
            summary,
            failed,
            notes,
        }
    }

    /// 0, or [`ExitCode::Preflight`] when an error was not ignored.
    pub fn exit_code(&self) -> ExitCode {
        if self.failed.is_empty() {
            ExitCode::Ok
        } else {
            ExitCode::Preflight
        }
    }

    /// The report for stdout: a table (text) or one JSON object.
    pub fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Json => {
                let mut s = serde_json::to_string_pretty(self).expect("the report serializes");
                s.push('\n');
                s
            }
            OutputFormat::Text => {
                let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
                let mut out = String::new();
                for c in &self.checks {
                    out.push_str(&format!(
                        "[{:<7}] {:<width$}  {}\n",
                        c.status.label(),
                        c.name,
                        c.message
                    ));
                    if let Some(fix) = c.fix.as_ref().filter(|_| c.status != Status::Pass) {
                        out.push_str(&format!("{:9} {:<width$}  fix: {fix}\n", "", ""));
                    }
                }
                for n in &self.notes {
                    out.push_str(&format!("note: {n}\n"));
                }
                let s = &self.summary;
                out.push_str(&format!(
                    "preflight: {} passed, {} warning{}, {} error{}{}, {} ignored, {} skipped\n",
                    s.pass,
                    s.warning,
                    plural(s.warning),
                    s.error,
                    plural(s.error),
                    if self.failed.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", self.failed.join(", "))
                    },
                    s.ignored,
                    s.skipped
                ));
                out
            }
        }
    }

    /// One line per warning, error and ignored error, for the log of a join.
    pub fn problems(&self) -> Vec<(Status, String)> {
        self.checks
            .iter()
            .filter(|c| matches!(c.status, Status::Warning | Status::Error | Status::Ignored))
            .map(|c| {
                let fix = c
                    .fix
                    .as_ref()
                    .map(|f| format!("; fix: {f}"))
                    .unwrap_or_default();
                (
                    c.status,
                    format!(
                        "preflight [{} {}]: {}{fix}",
                        c.status.label().to_uppercase(),
                        c.name,
                        c.message
                    ),
                )
            })
            .collect()
    }
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn ignore_list_parsing_and_report() {
        let list = config::ignore_list(
            &["CRI, swap".into(), "Port-10250".into()],
            &["cri".into(), "NoSuchCheck".into()],
        )
        .unwrap();
        assert_eq!(list, ["cri", "swap", "port-10250", "nosuchcheck"]);
        assert!(config::ignore_list(&["all,CRI".into()], &[]).is_err());
        assert_eq!(config::ignore_list(&["ALL".into()], &[]).unwrap(), ["all"]);

        let ignore = IgnoreList::new(&list);
        assert!(ignore.ignores("CRI") && ignore.ignores("Swap") && !ignore.ignores("ClockSkew"));
        let checks = vec![
            CheckResult::error(names::CRI, "no socket", "start it"),
            CheckResult::warning(names::SWAP, "swap on", "swapoff -a"),
            CheckResult::error(names::IP_FORWARD, "0", "sysctl"),
            CheckResult::pass(names::CLOCK_SKEW, "ok"),
            CheckResult::skipped(names::CLUSTER_INFO, "no server"),
        ];
        let report = PreflightReport::new(checks, &ignore, vec![]);
        assert_eq!(report.checks[0].status, Status::Ignored, "still shown");
        assert_eq!(report.checks[1].status, Status::Warning, "warnings stay");
        assert_eq!(report.failed, [names::IP_FORWARD]);
        assert_eq!(report.exit_code(), ExitCode::Preflight);
        assert!(
            report.notes[0].contains("nosuchcheck"),
            "{:?}",
            report.notes
        );
        assert!(
            report.notes[0].contains("CSRAutoApprove"),
            "{:?}",
            report.notes
        );
        let text = report.render(OutputFormat::Text);
        assert!(text.contains("[ignored] CRI"), "{text}");
        assert!(text.contains("fix: sysctl"), "{text}");
        assert!(
            text.contains("1 error (FileContent--proc-sys-net-ipv4-ip_forward)"),
            "{text}"
        );
        let problems = report.problems();
        assert_eq!(problems.len(), 3);
        assert!(problems[0]
            .1
            .starts_with("preflight [IGNORED CRI]: no socket; fix: start it"));

        let all = PreflightReport::new(
            vec![CheckResult::error(names::CRI, "x", "y")],
            &IgnoreList::new(&["all".into()]),
            vec![],
        );
        assert_eq!(all.exit_code(), ExitCode::Ok);
        assert!(all.notes.is_empty());
    }

    #[test]
    fn json_shape() {
        let report = PreflightReport::new(
            vec![
                CheckResult::pass(names::SWAP, "swap is off"),
                CheckResult::error(names::CRI, "no socket", "start it"),
            ],
            &IgnoreList::default(),
            vec!["a note".into()],
        );
        let v: serde_json::Value =
            serde_json::from_str(&report.render(OutputFormat::Json)).unwrap();
        assert_eq!(v["checks"][0]["name"], "Swap");
        assert_eq!(v["checks"][0]["status"], "pass");
        assert!(v["checks"][0].get("fix").is_none());
        assert_eq!(v["checks"][1]["status"], "error");
        assert_eq!(v["checks"][1]["fix"], "start it");
        assert_eq!(v["summary"]["error"], 1);
        assert_eq!(v["summary"]["pass"], 1);
        assert_eq!(v["failed"], serde_json::json!(["CRI"]));
        assert_eq!(v["notes"], serde_json::json!(["a note"]));
    }
}
