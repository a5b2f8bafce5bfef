//! One upgrade from its request to its outcome (see the module doc of `node::kubelet_upgrade`),
//! and the task that takes requests from the directory ([`serve_requests`]). Every step is
//! logged and published with the kubelet state (`KubeletState::upgrade`), from which the health
//! reporter makes the Events and `kaas-join status` shows it.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{file_of, swap, take_request, write_result, Taken, POLL, SWAPPED_EXT};
use crate::host::paths::Paths;
use crate::model::kube_version::{skew_problem, Skew, VersionAnswer};
use crate::model::kubelet_process::{KubeletPhase, KubeletState};
use crate::model::kubelet_upgrade::{UpgradePhase, UpgradeRequest, UpgradeState};
use crate::model::time::k8s_time;
use crate::node::supervisor::Control;
use crate::node::version_check::VersionChecker;

/// What an upgrade works with.
#[derive(Clone)]
pub struct Upgrader {
    /// `run --kubelet`: the path the new binary is renamed over.
    pub kubelet: PathBuf,
    pub paths: Paths,
    /// Asks the versions (the new binary's, the old one's, kube-apiserver's).
    pub checker: VersionChecker,
    /// How long the new kubelet (and, after a rollback, the old one) has to pass its healthz.
    pub timeout: Duration,
    /// The kubelet state: watched for the new process, and where the upgrade is published.
    pub state: watch::Sender<KubeletState>,
    /// The running supervision's control channel (`None`: kubelet is not supervised).
    pub control: watch::Receiver<Option<mpsc::Sender<Control>>>,
}

/// Takes requests from the directory every [`POLL`] and carries each out, one at a time,
/// writing its result file. Runs until aborted.
pub async fn serve_requests(u: Upgrader) {
    recover_interrupted(&u).await;
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        poll.tick().await;
        let paths = u.paths.clone();
        let taken = tokio::task::spawn_blocking(move || take_request(&paths)).await;
        let Taken { id, request } = match taken {
            Ok(Ok(Some(taken))) => taken,
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                tracing::warn!("cannot read the kubelet upgrade requests: {e}");
                continue;
            }
            Err(e) => {
                tracing::warn!("the kubelet upgrade request check failed: {e}");
                continue;
            }
        };
        let done = match request {
            Ok(request) => upgrade_kubelet(&u, &id, &request).await,
            Err(why) => {
                let mut st = state(&id, "", UpgradePhase::Refused, why);
                publish(&u, &mut st);
                st
            }
        };
        let paths = u.paths.clone();
        let written = tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_file(file_of(&paths, &done.id, SWAPPED_EXT));
            write_result(&paths, &done)
        })
        .await;
        if let Ok(Err(e)) = written {
            tracing::error!("cannot write the kubelet upgrade's result: {e}");
        }
    }
}

/// An upgrade that a stop of `run` cut after the swap, before the new kubelet was confirmed
/// healthy (its [`SWAPPED_EXT`] marker is there): the old binary is put back and kubelet
/// restarted with it, and the request gets its result (`RolledBack`).
async fn recover_interrupted(u: &Upgrader) {
    let dir = super::upgrade_dir(&u.paths);
    let cut: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| Some(n.strip_suffix(&format!(".{SWAPPED_EXT}"))?.to_owned()))
        .collect();
    for id in cut {
        let mut st = state(
            &id,
            "",
            UpgradePhase::RollingBack,
            "kaas-join run stopped during this upgrade, before the new kubelet was confirmed \
             healthy: putting the old kubelet back"
                .into(),
        );
        publish(u, &mut st);
        let target = u.kubelet.clone();
        let restored = blocking(move || swap::restore(&target)).await;
        // kubelet was started with whatever was in place: restart it with the old binary.
        let mut control = u.control.clone();
        let control = tokio::time::timeout(u.timeout, control.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|seen| seen.ok().and_then(|c| c.clone()));
        let restarted = match (&restored, control) {
            (Ok(()), Some(c)) => restart_and_wait(u, &c).await,
            (Ok(()), _) => Err("was not restarted: kubelet is not supervised".into()),
            (Err(e), _) => Err(format!("cannot be put back: {e}")),
        };
        st.phase = UpgradePhase::RolledBack;
        st.message = match restarted {
            Ok(()) => "rolled back: kaas-join run stopped during this upgrade; the old kubelet \
                       is back in place and passes its healthz"
                .into(),
            Err(why) => format!(
                "rolled back: kaas-join run stopped during this upgrade; the old kubelet {why}"
            ),
        };
        publish(u, &mut st);
        let (paths, done) = (u.paths.clone(), st.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_file(file_of(&paths, &done.id, SWAPPED_EXT));
            write_result(&paths, &done)
        })
        .await;
    }
}

fn state(id: &str, binary: &str, phase: UpgradePhase, message: String) -> UpgradeState {
    UpgradeState {
        id: id.into(),
        binary: binary.into(),
        from: None,
        to: None,
        phase,
        message,
        at: k8s_time(std::time::SystemTime::now()),
    }
}

/// Logs the step and publishes it with the kubelet state.
fn publish(u: &Upgrader, st: &mut UpgradeState) {
    st.at = k8s_time(std::time::SystemTime::now());
    match st.phase {
        UpgradePhase::Started | UpgradePhase::Upgraded => {
            tracing::info!(id = %st.id, phase = ?st.phase, "kubelet upgrade: {}", st.message)
        }
        _ => tracing::warn!(id = %st.id, phase = ?st.phase, "kubelet upgrade: {}", st.message),
    }
    let published = st.clone();
    u.state.send_modify(|s| s.upgrade = Some(published));
}

/// Carries out `request` (see the module doc); returns its final state.
pub async fn upgrade_kubelet(u: &Upgrader, id: &str, request: &UpgradeRequest) -> UpgradeState {
    let binary = request.binary.display().to_string();
    let mut st = state(id, &binary, UpgradePhase::Refused, String::new());
    let refuse = |st: &mut UpgradeState, why: String| {
        st.phase = UpgradePhase::Refused;
        st.message = format!("not upgrading kubelet to {binary}: {why}; nothing was changed");
        publish(u, st);
        st.clone()
    };
    let Some(control) = u.control.borrow().clone() else {
        return refuse(
            &mut st,
            "kaas-join does not supervise kubelet here (run --no-kubelet, or kubelet's command \
             line is not usable)"
                .into(),
        );
    };
    if !request.binary.is_absolute() {
        return refuse(&mut st, "the binary must be an absolute path".into());
    }
    let new = match u.checker.kubelet(&request.binary).await {
        VersionAnswer::Known(v) => v,
        VersionAnswer::Unknown(why) => return refuse(&mut st, why),
        VersionAnswer::Pending => return refuse(&mut st, why_of_pending()),
    };
    st.to = Some(new.text.clone());
    let server = match u.checker.server().await {
        VersionAnswer::Known(v) => v,
        VersionAnswer::Unknown(why) => {
            return refuse(
                &mut st,
                format!("kube-apiserver's version is unknown ({why})"),
            )
        }
        VersionAnswer::Pending => return refuse(&mut st, why_of_pending()),
    };
    if !Skew::of(&new, &server).is_supported() {
        return refuse(&mut st, skew_problem(&new, &server).unwrap_or_default());
    }
    if let VersionAnswer::Known(old) = u.checker.kubelet(&u.kubelet).await {
        st.from = Some(old.text);
    }
    swap_and_wait(u, &control, st, &request.binary).await
}

fn why_of_pending() -> String {
    "its version could not be asked".into()
}

/// The swap, the restart, the wait; the rollback when the new kubelet is not healthy in time.
async fn swap_and_wait(
    u: &Upgrader,
    control: &mpsc::Sender<Control>,
    mut st: UpgradeState,
    new: &std::path::Path,
) -> UpgradeState {
    let kubelet = u.kubelet.clone();
    let from = st.from.clone().unwrap_or_else(|| "?".into());
    let to = st.to.clone().unwrap_or_else(|| "?".into());
    let (source, target) = (new.to_owned(), kubelet.clone());
    // The marker says "swapped, not confirmed": a stop of `run` before the outcome leaves it,
    // and the next `run` puts the old binary back (`recover_interrupted`).
    let marker = file_of(&u.paths, &st.id, SWAPPED_EXT);
    let installed = blocking(move || {
        std::fs::write(&marker, b"")?;
        swap::install(&source, &target).inspect_err(|_| {
            let _ = std::fs::remove_file(&marker);
        })
    });
    match installed.await {
        Ok(()) => {}
        Err(e) => {
            st.phase = UpgradePhase::Failed;
            st.message = format!(
                "cannot put {} in place of {}: {e}; the old kubelet is still in place",
                new.display(),
                kubelet.display()
            );
            publish(u, &mut st);
            return st;
        }
    }
    st.phase = UpgradePhase::Started;
    st.message = format!(
        "kubelet {from} → {to}: {} is in place (the old binary kept as {}), restarting kubelet; \
         it has {}s to pass its healthz. Pods are not evicted (drain first with `kubectl drain` \
         if they must move)",
        kubelet.display(),
        swap::previous_path(&kubelet).display(),
        u.timeout.as_secs()
    );
    publish(u, &mut st);
    let new_kubelet = restart_and_wait(u, control).await;
    let why = match new_kubelet {
        Ok(()) => {
            st.phase = UpgradePhase::Upgraded;
            st.message = format!(
                "kubelet upgraded from {from} to {to}: the new kubelet passes its healthz; the \
                 old binary is kept as {}",
                swap::previous_path(&kubelet).display()
            );
            publish(u, &mut st);
            return st;
        }
        Err(why) => why,
    };
    st.phase = UpgradePhase::RollingBack;
    st.message = format!("the new kubelet {to} {why}: putting kubelet {from} back");
    publish(u, &mut st);
    let target = kubelet.clone();
    if let Err(e) = blocking(move || swap::restore(&target)).await {
        st.phase = UpgradePhase::Failed;
        st.message = format!(
            "the new kubelet {to} {why}, and the old binary cannot be put back: {e}; copy {} \
             over {} by hand",
            swap::previous_path(&kubelet).display(),
            kubelet.display()
        );
        publish(u, &mut st);
        return st;
    }
    let old_kubelet = restart_and_wait(u, control).await;
    st.phase = UpgradePhase::RolledBack;
    st.message = match old_kubelet {
        Ok(()) => format!(
            "rolled back: the new kubelet {to} {why}; kubelet {from} is back in place and passes \
             its healthz"
        ),
        Err(again) => format!(
            "rolled back: the new kubelet {to} {why}; kubelet {from} is back in place, but it \
             {again}"
        ),
    };
    publish(u, &mut st);
    st
}

/// Restarts kubelet and waits (at most `u.timeout`) until a new process is Running (its healthz
/// passed); an error says why not (crash-looping, cannot start, no healthz in time).
async fn restart_and_wait(u: &Upgrader, control: &mpsc::Sender<Control>) -> Result<(), String> {
    let mut rx = u.state.subscribe();
    let old_pid = rx.borrow_and_update().pid;
    if control.send(Control::Restart).await.is_err() {
        return Err("could not be started: kubelet's supervision has ended".into());
    }
    let mut started_new = false;
    let waited = tokio::time::timeout(
        u.timeout,
        rx.wait_for(|s| {
            started_new |= s.pid.is_some() && s.pid != old_pid;
            started_new
                && ((s.phase == KubeletPhase::Running && s.pid != old_pid)
                    || matches!(
                        s.phase,
                        KubeletPhase::CrashLooping | KubeletPhase::CannotStart
                    ))
        }),
    )
    .await;
    let last = u.state.borrow().clone();
    let last_exit = last.last_exit.as_ref().map_or(String::new(), |e| {
        format!(" (last exit: {})", e.description)
    });
    match waited {
        Ok(Ok(s)) if s.phase == KubeletPhase::Running => Ok(()),
        Ok(Ok(s)) => Err(format!(
            "is {}{last_exit}",
            match s.phase {
                KubeletPhase::CannotStart => "unable to start",
                _ => "crash-looping",
            }
        )),
        Ok(Err(_)) => Err("could not be watched: kubelet's supervision has ended".into()),
        Err(_) => Err(format!(
            "did not pass its healthz within {}s{last_exit}",
            u.timeout.as_secs()
        )),
    }
}

async fn blocking(
    work: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> std::io::Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}
