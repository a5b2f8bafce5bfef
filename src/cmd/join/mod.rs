//! `kaas-join join`: the phases in order, each safe to re-run.
//!
//! 1. discover  — find and verify the cluster ([`crate::k8s::discovery`]).
//! 2. cluster   — read kubeadm-config and kubelet-config, and check no Ready Node has our name.
//! 3. configure — decide kubelet's settings and render every file in memory (nothing written yet,
//!    so bad settings fail before a CSR exists).
//! 4. bootstrap — node key (kept across crashes), CSR, certificate ([`crate::k8s::bootstrap`]).
//! 5. write     — files in an order where kubelet never reads a half-made node: certificate and
//!    symlink, CA, KubeletConfiguration, flags, and kubelet.conf last; each one atomic.
//!
//! A re-run after success says "already joined" (unless `--force`); a re-run after a crash
//! reuses the saved key, finds its CSR by its deterministic name and finishes.
//!
//! A machine that joined but whose identity is lost (kubelet's client certificate expired, or
//! the API server rejects it: `identity`) joins again as the same node through the same phases:
//! the duplicate-name check takes the Node of that name as its own, a new key is made (and kept
//! across a crash: the state file's `rejoin` names its CSR), and until the new files are written
//! the state file still describes the join kubelet's files are from. [`join_again`] is how
//! `run` asks for it; `kaas-join join` finds out by itself.
//!
//! Each phase is one function in its own file (`discover`, `cluster`, `plan` for configure,
//! `bootstrap`, `write`) that adds its step to the [`report`] and runs in a tracing span named
//! after it (with the node, the server, the CSR name: never the token). File work that blocks
//! (the state file, the node key, the fsync'd writes) runs on tokio's blocking pool
//! (`blocking`), not on the async worker.

mod bootstrap;
mod cluster;
mod discover;
mod identity;
mod plan;

pub use identity::lost_before_start;
pub mod report;
mod write;

use std::io::Write as _;
use std::sync::Arc;

use crate::cmd::error::Error;
use crate::cmd::join::report::{JoinReport, Outcome};
use crate::config::JoinConfig;
use crate::host::paths::{Paths, KUBELET_KUBECONFIG};
use crate::host::LinuxHost;
use crate::k8s::client::RequestCounter;
use crate::model::exit_code::ExitCode;
use crate::model::identity::IdentityLoss;
use crate::node::join_state::{self as state, Phase, State};

/// `kaas-join join`: load and check the configuration, the local preflight checks, the join,
/// the report on stdout.
pub async fn run(args: &crate::cli::JoinArgs) -> Result<ExitCode, Error> {
    let loaded = crate::config::load(args, crate::config::Environment::from_process());
    let (cfg, warnings) = match loaded {
        Err(e) if e.is_missing_token() => {
            return Err(identity::token_needed(args).unwrap_or(Error::Config(e)))
        }
        loaded => loaded?,
    };
    let warnings: Vec<String> = warnings.into_iter().map(|w| w.0).collect();
    for w in &warnings {
        tracing::warn!("{w}");
    }
    // Before any request or write; a no-op on an already joined machine.
    crate::cmd::preflight::before_join(&cfg, crate::cmd::preflight::KubeletBinary::Search).await?;
    let report = join(&cfg, warnings).await?;
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) is not a failed join.
    let _ = stdout.write_all(report.render(cfg.output).as_bytes());
    Ok(ExitCode::Ok)
}

/// Runs the join. `warnings` come from loading the configuration and go into the report.
pub async fn join(cfg: &JoinConfig, warnings: Vec<String>) -> Result<JoinReport, Error> {
    join_with_counter(cfg, warnings, Arc::new(RequestCounter::default())).await
}

/// `run`'s re-identification: joins again as the node this machine joined as, because its
/// identity is lost (`loss`, as `run` saw it), whatever the certificate file says. HTTP
/// requests are counted in `counter` (`run`'s metrics).
pub async fn join_again(
    cfg: &JoinConfig,
    warnings: Vec<String>,
    loss: &IdentityLoss,
    counter: Arc<RequestCounter>,
) -> Result<JoinReport, Error> {
    join_as(cfg, warnings, counter, Some(loss)).await
}

/// As [`join`], counting HTTP requests in `counter` (the benchmark reads it).
pub async fn join_with_counter(
    cfg: &JoinConfig,
    warnings: Vec<String>,
    counter: Arc<RequestCounter>,
) -> Result<JoinReport, Error> {
    join_as(cfg, warnings, counter, None).await
}

/// The phases in order; `known_loss`: `run` says this machine's identity is lost.
async fn join_as(
    cfg: &JoinConfig,
    warnings: Vec<String>,
    counter: Arc<RequestCounter>,
    known_loss: Option<&IdentityLoss>,
) -> Result<JoinReport, Error> {
    let paths = Paths::new(&cfg.root);
    let mut report = JoinReport::new(&cfg.node_name, warnings);
    let earlier = blocking({
        let (paths, force, known) = (paths.clone(), cfg.force, known_loss.cloned());
        move || earlier_run(&paths, force, known.as_ref())
    })
    .await?;
    let (previous, rejoin) = match earlier {
        Earlier::AlreadyJoined(prev) => {
            report.node_name = prev.node_name.clone();
            report.server = Some(prev.server.clone());
            report.ca_pin = prev.ca_pin.clone();
            report.finish(Outcome::AlreadyJoined, 0);
            return Ok(report);
        }
        Earlier::IdentityLost(prev, loss) => {
            report.warn(identity::joining_again_note(&prev.node_name, &loss));
            (Some(prev.clone()), Some((prev, loss)))
        }
        Earlier::Unfinished(previous) => (previous, None),
    };
    let renamed = rejoin
        .as_ref()
        .and_then(|(prev, _)| same_node(cfg, prev, &mut report));
    let cfg = renamed.as_ref().unwrap_or(cfg);
    let rejoining_same_node = previous
        .as_ref()
        .is_some_and(|p| p.node_name == cfg.node_name && p.phase == Phase::Joined);

    let found = discover::discover(cfg, counter.clone(), &mut report).await?;
    let client = found.client.with_bearer(&cfg.token);
    let facts = cluster::cluster(cfg, &client, rejoining_same_node, &mut report).await?;
    let runtime = {
        let (given, socket, paths) = (cfg.cgroup_driver, cfg.cri_socket.clone(), paths.clone());
        blocking(move || Ok(plan::runtime_driver(given, &socket, &LinuxHost, &paths))).await?
    };
    let files = plan::configure(
        cfg,
        &LinuxHost,
        &paths,
        &facts,
        &found,
        runtime,
        &mut report,
    )?;
    if cfg.dry_run {
        report.files = plan::dry_run_entries(&files);
        report.finish(Outcome::DryRun, counter.get());
        return Ok(report);
    }
    // A forced join on a machine whose join kubelet uses: that join stays in the state file
    // until this one has written its files.
    let replaced = previous.as_ref().filter(|p| {
        rejoin.is_none()
            && cfg.force
            && p.phase == Phase::Joined
            && paths.host(KUBELET_KUBECONFIG).exists()
    });
    // A new identity gets a new key, unless a try cut short (crash, refusal) left one.
    let key = match (&rejoin, replaced) {
        (Some((prev, _)), _) if prev.rejoin.is_some() => bootstrap::KeyChoice::Kept,
        (Some(_), _) => bootstrap::KeyChoice::Fresh,
        (None, Some(prev)) if prev.replacing.is_some() => bootstrap::KeyChoice::Kept,
        (None, _) if cfg.force && rejoining_same_node => bootstrap::KeyChoice::Fresh,
        (None, _) => bootstrap::KeyChoice::Kept,
    };
    let earlier = match (&rejoin, replaced) {
        (Some((prev, loss)), _) => bootstrap::Earlier::IdentityLost(prev, loss),
        (None, Some(prev)) => bootstrap::Earlier::Replaced(prev),
        (None, None) => bootstrap::Earlier::None,
    };
    let done = bootstrap::bootstrap(
        cfg,
        &paths,
        &client,
        &found.server,
        key,
        earlier,
        &mut report,
    )
    .await?;
    write::write(cfg, &paths, files, done, &mut report).await?;
    report.finish(Outcome::Joined, counter.get());
    Ok(report)
}

/// Joining again is for the same node name, whatever the configuration says now: the
/// configuration renamed to the node this machine joined as, when it names another (`None` when
/// it names the same).
fn same_node(cfg: &JoinConfig, previous: &State, report: &mut JoinReport) -> Option<JoinConfig> {
    if previous.node_name == cfg.node_name {
        return None;
    }
    report.warn(format!(
        "the configuration names node {}, but this machine joined as {}: joining again as {}",
        cfg.node_name, previous.node_name, previous.node_name
    ));
    report.node_name = previous.node_name.clone();
    Some(JoinConfig {
        node_name: previous.node_name.clone(),
        ..cfg.clone()
    })
}

/// What an earlier run left.
enum Earlier {
    /// A finished join (kubelet.conf is there, no `--force`) with its identity intact: nothing
    /// to do.
    AlreadyJoined(State),
    /// A finished join whose identity is lost: join again as that node.
    IdentityLost(State, IdentityLoss),
    /// Nothing, or a join to finish or redo.
    Unfinished(Option<State>),
}

/// What an earlier run left (blocking); `known_loss`: `run` says the identity is lost.
fn earlier_run(
    paths: &Paths,
    force: bool,
    known_loss: Option<&IdentityLoss>,
) -> Result<Earlier, Error> {
    let previous = state::load(paths)?;
    let finished = previous.as_ref().is_some_and(|prev| {
        prev.phase == Phase::Joined && paths.host(KUBELET_KUBECONFIG).exists() && !force
    });
    let prev = match previous {
        Some(prev) if finished => prev,
        unfinished => return Ok(Earlier::Unfinished(unfinished)),
    };
    if let Some(loss) = identity::lost_identity(paths, &prev, known_loss) {
        return Ok(Earlier::IdentityLost(prev, loss));
    }
    // A kill between saving "joined" and removing the pending key leaves it behind.
    remove_if_exists(&paths.host(state::NODE_KEY))?;
    Ok(Earlier::AlreadyJoined(prev))
}

/// Runs blocking file work on tokio's blocking pool, in the caller's tracing span: atomic writes
/// fsync, and a slow disk must not stall the async worker (and the requests on it).
async fn blocking<T, F>(work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(work)).await {
        Ok(result) => result,
        // A panic in the work is the same panic here, as if it had run inline.
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(Error::Internal(format!("file work did not finish: {err}"))),
    }
}

fn remove_if_exists(path: &std::path::Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Internal(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    }
}
