//! A machine that has joined, but whose identity (kubelet's client certificate) is lost: the
//! join then joins again as the same node instead of saying "already joined". What tells it:
//! `run`'s word (it saw the notAfter pass or the 401 answers, [`crate::model::identity`]), a
//! re-identification the state file says is under way (a crash in the middle of one), the
//! certificate file's notAfter, or the run-status file where `run` said so.

use std::time::SystemTime;

use crate::cmd::error::Error;
use crate::host::paths::{Paths, KUBELET_CLIENT_CURRENT};
use crate::model::identity::{self, IdentityLoss};
use crate::node::join_state::{self as state, Phase, State};
use crate::node::run_status;

/// Why the finished join in `previous` must be done again, if it must (blocking: reads files).
/// `known`: `run` says so.
pub(super) fn lost_identity(
    paths: &Paths,
    previous: &State,
    known: Option<&IdentityLoss>,
) -> Option<IdentityLoss> {
    known
        .cloned()
        .or_else(|| lost_on_disk(paths, previous))
        .or_else(|| run_status::read(paths).and_then(|run| run.identity_lost.map(|l| l.loss)))
}

/// What the files alone say: a re-identification under way, or an expired certificate.
fn lost_on_disk(paths: &Paths, previous: &State) -> Option<IdentityLoss> {
    if let Some(rejoin) = &previous.rejoin {
        return Some(rejoin.reason.clone());
    }
    let not_after = std::fs::read(paths.host(KUBELET_CLIENT_CURRENT))
        .ok()
        .and_then(|pem| identity::certificate_not_after(&pem).ok())?;
    identity::IdentitySeen {
        not_after: Some(not_after),
        unauthorized: None,
    }
    .judge(SystemTime::now())
}

/// For `run` before it starts kubelet on a joined machine (blocking): whether the files say its
/// identity is lost already (the certificate expired while the machine was off, or a crash cut
/// a re-identification short). Not the run-status file: an earlier `run`'s 401 answers may
/// have passed.
pub fn lost_before_start(paths: &Paths) -> Result<Option<IdentityLoss>, Error> {
    Ok(state::load(paths)?
        .filter(|s| s.phase == Phase::Joined)
        .and_then(|s| lost_on_disk(paths, &s)))
}

/// `kaas-join join` without a token: on a joined machine whose identity is lost, the error that
/// says which command mints a token and where it goes (exit 13); `None` anywhere else.
pub(super) fn token_needed(args: &crate::cli::JoinArgs) -> Option<Error> {
    let root = if args.root.as_os_str().is_empty() {
        std::path::PathBuf::from("/")
    } else {
        args.root.clone()
    };
    let paths = Paths::new(root);
    let previous = state::load(&paths).ok().flatten()?;
    if previous.phase != Phase::Joined {
        return None;
    }
    let loss = lost_identity(&paths, &previous, None)?;
    Some(Error::IdentityLost {
        node: previous.node_name,
        what: loss.what(),
        advice: identity::advice(&crate::config::token_place(args)),
    })
}

/// What `join` says before it joins again: "already joined as <node>, but <what>: joining
/// again as the same node with the given token".
pub(super) fn joining_again_note(node: &str, loss: &IdentityLoss) -> String {
    format!(
        "already joined as {node}, but {}: joining again as the same node with the given token",
        loss.what()
    )
}
