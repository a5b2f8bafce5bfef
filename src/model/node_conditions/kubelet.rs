//! `KubeletUnhealthy`, from the supervisor's [`KubeletState`]: its phase, healthz, the last exit
//! and the last lines kubelet printed.

use crate::model::kubelet_process::{ExitInfo, KubeletPhase, KubeletState};
use crate::model::time::k8s_time;

use super::{bound_message, reason, Verdict, MAX_MESSAGE};

/// Status, reason and message of `KubeletUnhealthy` (see `node::health`'s module doc: the
/// phase decides, `NotStarted` is judged on healthz alone).
pub(super) fn kubelet_unhealthy(k: &KubeletState) -> Verdict {
    let pid = k.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    match k.phase {
        KubeletPhase::NotStarted => not_supervised(k),
        KubeletPhase::Running if k.healthz.ok == Some(false) => Verdict::problem(
            reason::KUBELET_HEALTHZ_FAILING,
            format!(
                "kubelet{pid} runs but its healthz check fails: {}",
                healthz_error(k)
            ),
        ),
        KubeletPhase::Running => Verdict::fine(
            reason::KUBELET_HEALTHY,
            format!("kubelet{pid} is running and answers its healthz check"),
        ),
        KubeletPhase::Starting => match &k.last_exit {
            Some(exit) => Verdict::problem(
                reason::KUBELET_RESTARTING,
                with_exit(
                    format!(
                        "kubelet{pid} is starting again after restart {}; waiting for its healthz check",
                        k.restarts
                    ),
                    exit,
                ),
            ),
            None => Verdict::fine(
                reason::KUBELET_STARTING,
                format!("kubelet{pid} is starting; waiting for its healthz check"),
            ),
        },
        KubeletPhase::BackingOff => Verdict::problem(
            reason::KUBELET_NOT_RUNNING,
            match &k.last_exit {
                Some(exit) => with_exit(
                    format!(
                        // `restarts` already counts this exit's restart.
                        "kubelet is not running ({}); kaas-join restarts it (restart {})",
                        exit.description,
                        k.restarts
                    ),
                    exit,
                ),
                None => "kubelet is not running; kaas-join restarts it".into(),
            },
        ),
        KubeletPhase::CrashLooping => Verdict::problem(
            reason::KUBELET_CRASH_LOOPING,
            match &k.last_exit {
                Some(exit) => with_exit(
                    format!(
                        "kubelet is crash-looping ({} restarts); kaas-join keeps restarting it at the longest backoff",
                        k.restarts
                    ),
                    exit,
                ),
                None => format!("kubelet is crash-looping ({} restarts)", k.restarts),
            },
        ),
        KubeletPhase::CannotStart => Verdict::problem(
            reason::KUBELET_CANNOT_START,
            k.problem
                .clone()
                .unwrap_or_else(|| "kubelet cannot be started".into()),
        ),
        KubeletPhase::Conflict => Verdict::problem(
            reason::KUBELET_CONFLICT,
            k.problem
                .clone()
                .unwrap_or_else(|| "another kubelet already runs on this machine".into()),
        ),
        KubeletPhase::Stopped => Verdict::problem(
            reason::KUBELET_NOT_RUNNING,
            "kubelet was stopped: kaas-join is shutting down".into(),
        ),
    }
}

/// kubelet not started yet, or not supervised at all (`run --no-kubelet`): healthz alone.
fn not_supervised(k: &KubeletState) -> Verdict {
    match k.healthz.ok {
        Some(true) => Verdict::fine(
            reason::KUBELET_HEALTHY,
            "kubelet (not started by kaas-join) answers its healthz check".into(),
        ),
        Some(false) => Verdict::problem(
            reason::KUBELET_HEALTHZ_FAILING,
            format!("kubelet's healthz check fails: {}", healthz_error(k)),
        ),
        None => Verdict::unknown(
            reason::KUBELET_NOT_STARTED,
            "kubelet has not been started yet and no healthz check has answered".into(),
        ),
    }
}

fn healthz_error(k: &KubeletState) -> String {
    k.healthz
        .last_error
        .clone()
        .unwrap_or_else(|| "no answer".into())
}

/// `head`, the last exit and as many of the last lines as fit in [`MAX_MESSAGE`] (the newest
/// kept: they say why it ended).
fn with_exit(head: String, exit: &ExitInfo) -> String {
    let mut msg = format!(
        "{head}. Last exit: {} at {}",
        exit.description,
        k8s_time(exit.at)
    );
    if exit.last_lines.is_empty() {
        return bound_message(msg);
    }
    msg.push_str("; last lines:");
    let budget = MAX_MESSAGE.saturating_sub(msg.len());
    let mut tail: Vec<String> = Vec::new();
    let mut used = 0;
    for line in exit.last_lines.iter().rev() {
        let line = line.trim_end();
        let cost = line.len() + 1;
        if used + cost <= budget {
            tail.push(line.to_string());
            used += cost;
            continue;
        }
        if tail.is_empty() && budget > 8 {
            // One line longer than the room left: keep its end, marked as cut.
            let mut start = line.len() - (budget - 4);
            while !line.is_char_boundary(start) {
                start += 1;
            }
            tail.push(format!("…{}", &line[start..]));
        }
        break;
    }
    for line in tail.iter().rev() {
        msg.push('\n');
        msg.push_str(line);
    }
    bound_message(msg)
}
