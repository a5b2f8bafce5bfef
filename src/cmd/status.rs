//! `kaas-join status`: the node's state at a glance, for an operator at 3 a.m.
//!
//! Reads only local files, so it answers even when the control plane is down: the phase state
//! (`state.json`), kubelet's client certificate, and the run-status file that `kaas-join run`
//! keeps current. The exit code says healthy (0), not joined ([`ExitCode::NotJoined`]) or joined but
//! unhealthy ([`ExitCode::Unhealthy`]).

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::cli::StatusArgs;
use crate::cmd::error::Error;
use crate::host::paths::{Paths, KUBELET_CLIENT_CURRENT, KUBELET_KUBECONFIG};
use crate::host::{Host, LinuxHost};
use crate::model::exit_code::ExitCode;
use crate::model::kubelet_process::{KubeletPhase, KubeletState};
use crate::model::output::OutputFormat;
use crate::node::join_state::{self as state, Phase};
use crate::node::run_status::{self, LostIdentity};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub healthy: bool,
    /// Why not healthy, one line each.
    pub problems: Vec<String>,
    pub joined: bool,
    pub phase: Option<Phase>,
    pub node_name: Option<String>,
    pub server: Option<String>,
    pub ca_pin: Option<String>,
    pub client_certificate: Option<CertificateStatus>,
    /// The `kaas-join run` daemon, if its status file says it is alive.
    pub daemon: Option<DaemonStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    pub not_after: String,
    pub expires_in_hours: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonStatus {
    pub running: bool,
    pub pid: u32,
    pub activity: String,
    pub updated_at: String,
    pub supervising: bool,
    pub kubelet: KubeletState,
    pub kubelet_uptime_seconds: Option<u64>,
    pub reported: crate::node::health::ReportedStatus,
    /// When it ended (stopped, or failed: `activity` says which), as it wrote last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exited_at: Option<String>,
    /// The node's identity is lost: kubelet is stopped until the node joins again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_lost: Option<LostIdentity>,
}

pub fn status(args: &StatusArgs) -> Result<ExitCode, Error> {
    let report = collect(&Paths::new(&args.root), &LinuxHost)?;
    let text = match args.output {
        OutputFormat::Json => serde_json::to_string_pretty(&report).expect("serializes") + "\n",
        OutputFormat::Text => render_text(&report),
    };
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(if !report.joined {
        ExitCode::NotJoined
    } else if report.healthy {
        ExitCode::Ok
    } else {
        ExitCode::Unhealthy
    })
}

/// What `status` says about the machine under `paths`; processes and the clock are `host`'s.
pub fn collect(paths: &Paths, host: &dyn Host) -> Result<StatusReport, Error> {
    let now = host.now();
    let state = state::load(paths)?;
    let joined = state.as_ref().is_some_and(|s| s.phase == Phase::Joined)
        && paths.host(KUBELET_KUBECONFIG).exists();
    let mut problems = Vec::new();
    if !joined {
        problems.push(match &state {
            None => "not joined: run `kaas-join join` (or enable kaas-join.service)".to_string(),
            Some(s) => format!(
                "join not finished (phase {:?}, CSR {}): run `kaas-join join` again to finish it",
                s.phase,
                s.csr_name.as_deref().unwrap_or("-")
            ),
        });
    }
    if let Some(r) = state.as_ref().and_then(|s| s.replacing.as_ref()) {
        problems.push(format!(
            "a `kaas-join join --force` to {} did not finish (CSR {}, since {}): this node \
             keeps its join to {}, which kubelet uses; run the forced join again to finish it",
            r.server,
            r.csr_name,
            r.started_at,
            state.as_ref().map_or("-", |s| s.server.as_str())
        ));
    }

    let client_certificate = client_certificate(paths, now, &mut problems);
    let daemon = daemon_status(paths, host, now);
    daemon_problems(daemon.as_ref(), joined, &mut problems);

    Ok(StatusReport {
        healthy: joined && problems.is_empty(),
        problems,
        joined,
        phase: state.as_ref().map(|s| s.phase),
        node_name: state.as_ref().map(|s| s.node_name.clone()),
        server: state.as_ref().map(|s| s.server.clone()),
        ca_pin: state.as_ref().and_then(|s| s.ca_pin.clone()),
        client_certificate,
        daemon,
    })
}

/// kubelet's client certificate's expiry; an expired or soon expiring one (or one that cannot
/// be read) is a problem.
fn client_certificate(
    paths: &Paths,
    now: SystemTime,
    problems: &mut Vec<String>,
) -> Option<CertificateStatus> {
    match certificate_expiry(paths, now) {
        Ok(Some((not_after, left))) => {
            let hours = left.as_secs() as i64 / 3600 * if not_after < now { -1 } else { 1 };
            if hours < 0 {
                problems.push(format!(
                    "kubelet's client certificate expired at {}: the node must join again; mint a new bootstrap token with {} and give it to `kaas-join join` (or put it where `kaas-join run` reads it)",
                    rfc3339(not_after),
                    crate::model::identity::MINT_COMMAND
                ));
            } else if hours < 24 * 7 {
                problems.push(format!(
                    "kubelet's client certificate expires in {hours} h ({}); kubelet should have rotated it",
                    rfc3339(not_after)
                ));
            }
            Some(CertificateStatus {
                not_after: rfc3339(not_after),
                expires_in_hours: hours,
            })
        }
        Ok(None) => None,
        Err(e) => {
            problems.push(e);
            None
        }
    }
}

/// The `kaas-join run` daemon as its status file tells, and whether it still runs.
fn daemon_status(paths: &Paths, host: &dyn Host, now: SystemTime) -> Option<DaemonStatus> {
    run_status::read(paths).map(|run| {
        let running = run_status::daemon_running(host, &run, paths.root());
        let uptime = run
            .kubelet
            .started_at
            .and_then(|t| now.duration_since(t).ok())
            .map(|d| d.as_secs());
        DaemonStatus {
            running,
            pid: run.pid,
            activity: run.activity,
            updated_at: run.updated_at,
            supervising: run.supervising,
            kubelet: run.kubelet,
            kubelet_uptime_seconds: uptime,
            reported: run.reported,
            exited_at: run.exited_at,
            identity_lost: run.identity_lost,
        }
    })
}

/// What is wrong with the daemon (not running, kubelet not running, a condition it reports).
fn daemon_problems(daemon: Option<&DaemonStatus>, joined: bool, problems: &mut Vec<String>) {
    match daemon {
        None if joined => problems
            .push("kaas-join run is not running (no status file): start kaas-join.service".into()),
        Some(d) if !d.running => problems.push(match &d.exited_at {
            Some(at) => format!(
                "kaas-join run is not running: it ended at {at} ({}); start kaas-join.service",
                d.activity
            ),
            None => format!(
                "kaas-join run (pid {}) is not running; its last status is from {}",
                d.pid, d.updated_at
            ),
        }),
        Some(DaemonStatus {
            identity_lost: Some(lost),
            ..
        }) => {
            problems.push(format!(
                "the node must join again: {}; kubelet is stopped until it has{}: {}",
                lost.loss.what(),
                lost.token_problem
                    .as_ref()
                    .map_or(String::new(), |p| format!(" ({p})")),
                lost.advice
            ));
        }
        Some(d) => {
            if d.supervising && d.kubelet.phase != KubeletPhase::Running {
                problems.push(format!("kubelet: {}", d.activity));
            }
            for c in d.reported.conditions.iter().filter(|c| c.status == "True") {
                problems.push(format!("{}: {} ({})", c.type_, c.message, c.reason));
            }
        }
        None => {}
    }
}

/// The expiry of the first certificate in kubelet's current client certificate file.
fn certificate_expiry(
    paths: &Paths,
    now: SystemTime,
) -> Result<Option<(SystemTime, Duration)>, String> {
    let path = paths.host(KUBELET_CLIENT_CURRENT);
    let pem = match std::fs::read(&path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let ders = crate::model::pin::certificates_from_pem(&pem)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&ders[0])
        .map_err(|e| format!("{}: not a certificate: {e}", path.display()))?;
    let not_after = SystemTime::UNIX_EPOCH
        + Duration::from_secs(cert.validity().not_after.timestamp().max(0) as u64);
    let left = match not_after.duration_since(now) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    Ok(Some((not_after, left)))
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Multi-line text (condition messages carry kubelet's last lines) on one line: " | " between
/// the lines, so each problem and condition stays one line of the report.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The report for a person: the verdict, one line per problem, then the facts.
fn render_text(r: &StatusReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let verdict = if r.healthy {
        "healthy"
    } else if r.joined {
        "UNHEALTHY"
    } else {
        "NOT JOINED"
    };
    let _ = writeln!(out, "{verdict}");
    for p in &r.problems {
        let _ = writeln!(out, "  ! {}", one_line(p));
    }
    field(&mut out, "node", r.node_name.as_deref().unwrap_or("-"));
    field(&mut out, "server", r.server.as_deref().unwrap_or("-"));
    field(&mut out, "CA pin", r.ca_pin.as_deref().unwrap_or("-"));
    if let Some(c) = &r.client_certificate {
        field(
            &mut out,
            "client certificate",
            &format!(
                "valid until {} ({} h left)",
                c.not_after, c.expires_in_hours
            ),
        );
    }
    match &r.daemon {
        None => field(&mut out, "kaas-join run", "no status (not started)"),
        Some(d) => render_daemon(&mut out, d),
    }
    out
}

/// kubelet's and kube-apiserver's versions as `run` checked them last, and the verdict.
fn version_line(check: &crate::model::kube_version::VersionCheck) -> String {
    use crate::model::kube_version::{skew_problem, VersionAnswer};
    let shown = |a: &VersionAnswer| match a {
        VersionAnswer::Pending => "not checked yet".to_string(),
        VersionAnswer::Known(v) => v.text.clone(),
        VersionAnswer::Unknown(why) => format!("unknown ({why})"),
    };
    let verdict = match check.known() {
        Some((k, s)) => skew_problem(k, s).unwrap_or_else(|| "within the skew policy".into()),
        None => "skew not judged".into(),
    };
    format!(
        "{}, kube-apiserver {}: {verdict}",
        shown(&check.kubelet),
        shown(&check.server)
    )
}

/// One `key value` line of the text report, the values aligned.
fn field(out: &mut String, k: &str, v: &str) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "{k:<20} {v}");
}

/// The `kaas-join run` daemon's lines of the text report: its activity, its kubelet, what it
/// reported last.
fn render_daemon(out: &mut String, d: &DaemonStatus) {
    use std::fmt::Write as _;
    field(
        out,
        "kaas-join run",
        &format!(
            "{} (pid {}), {}",
            if d.running { "running" } else { "NOT running" },
            d.pid,
            d.activity
        ),
    );
    if d.supervising {
        let k = &d.kubelet;
        field(
            out,
            "kubelet",
            &format!(
                "{:?}, pid {}, up {}, {} restarts",
                k.phase,
                k.pid.map_or("-".to_string(), |p| p.to_string()),
                d.kubelet_uptime_seconds
                    .map_or("-".to_string(), |s| format!("{s}s")),
                k.restarts
            ),
        );
        if let Some(e) = &k.last_exit {
            field(out, "last exit", &e.description);
            for line in e.last_lines.iter().rev().take(5).rev() {
                let _ = writeln!(out, "{:<20}   | {line}", "");
            }
        }
    }
    if let Some(check) = &d.kubelet.version {
        field(out, "kubelet version", &version_line(check));
    }
    if let Some(u) = &d.kubelet.upgrade {
        field(
            out,
            "kubelet upgrade",
            &format!("{:?} at {}: {}", u.phase, u.at, one_line(&u.message)),
        );
    }
    let rep = &d.reported;
    field(
        out,
        "last reported",
        rep.last_written
            .as_ref()
            .map_or("never", |w| w.written_at.as_str()),
    );
    if let Some(e) = &rep.last_error {
        field(out, "last report error", e);
    }
    if let Some(e) = &rep.last_event_error {
        field(out, "last event error", e);
    }
    for c in &rep.conditions {
        let _ = writeln!(
            out,
            "{:<20} {:<28} {:<5} {} {}",
            "condition",
            c.type_,
            c.status,
            c.reason,
            one_line(&c.message)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FakeHost;
    use crate::node::run_status::{RunStatus, RUN_STATUS_FILE};
    use std::path::Path;

    fn write_run_status(paths: &Paths, run: &RunStatus) {
        let path = paths.host(RUN_STATUS_FILE);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_vec(run).unwrap()).unwrap();
    }

    /// A root with a run-status file written by `pid`, and a host on which `argv` runs as it.
    fn daemon(pid: u32, argv: Option<&[&str]>) -> (tempfile::TempDir, Paths, FakeHost, RunStatus) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let host = FakeHost::new();
        if let Some(argv) = argv {
            host.add_process(pid, "kaas-join", argv);
        }
        let run = RunStatus {
            pid,
            activity: "kubelet running (pid 7, 0 restarts)".into(),
            ..RunStatus::default()
        };
        write_run_status(&paths, &run);
        (dir, paths, host, run)
    }

    #[test]
    fn a_daemon_that_wrote_its_end_is_not_running() {
        let (dir, paths, host, mut run) = daemon(40, None);
        let root = dir.path().display().to_string();
        host.add_process(
            40,
            "kaas-join",
            &["/usr/bin/kaas-join", "run", "--root", &root],
        );
        assert!(collect(&paths, &host).unwrap().daemon.unwrap().running);

        run.activity = "stopped".into();
        run.exited_at = Some("2026-11-27T07:30:00Z".into());
        write_run_status(&paths, &run);
        let report = collect(&paths, &host).unwrap();
        let daemon = report.daemon.unwrap();
        assert!(
            !daemon.running,
            "its pid still runs, but it wrote that it ended"
        );
        assert_eq!(daemon.exited_at.as_deref(), Some("2026-11-27T07:30:00Z"));
        assert!(
            report.problems.iter().any(|p| p
                == "kaas-join run is not running: it ended at 2026-11-27T07:30:00Z (stopped); \
                    start kaas-join.service"),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn a_killed_daemon_is_not_running_under_any_root() {
        // kill -9: no end written, and its pid is gone (or reused by something else).
        let (_dir, paths, host, _) = daemon(41, None);
        let report = collect(&paths, &host).unwrap();
        assert!(!report.daemon.as_ref().unwrap().running);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("(pid 41) is not running")),
            "{:?}",
            report.problems
        );
        host.add_process(41, "sshd", &["/usr/sbin/sshd", "-D"]);
        assert!(!collect(&paths, &host).unwrap().daemon.unwrap().running);
    }

    #[test]
    fn a_daemon_of_another_root_is_not_this_roots() {
        let (_dir, paths, host, _) =
            daemon(42, Some(&["kaas-join", "run", "--root", "/elsewhere"]));
        assert!(!collect(&paths, &host).unwrap().daemon.unwrap().running);
    }

    #[test]
    fn on_the_real_machine_this_process_is_alive_and_a_huge_pid_is_not() {
        let me = RunStatus {
            pid: std::process::id(),
            ..RunStatus::default()
        };
        // The test binary is not `kaas-join run`: alive, but not our daemon.
        assert!(!run_status::daemon_running(&LinuxHost, &me, Path::new("/")));
        assert!(LinuxHost.process(std::process::id()).is_some());
        // A pid above the kernel's maximum (4194304) never exists.
        assert!(LinuxHost.process(4_194_305).is_none());
    }
}
