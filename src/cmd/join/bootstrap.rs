//! Phase 4, bootstrap: the node key (kept in the state directory across crashes), the state
//! "bootstrapping" naming its CSR (when joining again: the earlier join's state, with the new
//! CSR as its `rejoin`), then the CSR and its certificate ([`crate::k8s::bootstrap`]).
//! The key and the state file are read and written on the blocking pool ([`super::blocking`]).

use tokio::time::Instant;

use crate::cmd::error::Error;
use crate::cmd::join::blocking;
use crate::cmd::join::report::JoinReport;
use crate::config::JoinConfig;
use crate::host::files;
use crate::host::paths::{Paths, STATE_DIR};
use crate::k8s::bootstrap::{self, Issued, NodeKey};
use crate::k8s::client::ApiClient;
use crate::model::identity::IdentityLoss;
use crate::node::join_state::{self as state, Phase, Rejoin, State};

/// Which key the CSR is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyChoice {
    /// The key an interrupted run saved, or a new one when there is none.
    Kept,
    /// A new key, whatever is saved (`--force`, or a new identity for a node that lost its own).
    Fresh,
}

/// What the bootstrap hands to the write phase.
pub(super) struct Bootstrapped {
    pub key: NodeKey,
    pub issued: Issued,
    /// The state as saved ("bootstrapping"), to be saved again as "joined".
    pub state: State,
}

/// Makes (or reuses) the key, records the CSR it will make, and waits for the certificate.
/// `rejoin`: the finished join whose identity is lost, and why; its state stays in force (with
/// the new CSR recorded) until the write phase replaces it.
#[tracing::instrument(
    name = "bootstrap",
    skip_all,
    fields(node = %cfg.node_name, server = %server, csr = tracing::field::Empty)
)]
pub(super) async fn bootstrap(
    cfg: &JoinConfig,
    paths: &Paths,
    client: &ApiClient,
    server: &str,
    key: KeyChoice,
    earlier: Earlier<'_>,
    report: &mut JoinReport,
) -> Result<Bootstrapped, Error> {
    // The timeout counts from here, whatever the reads before took.
    let t = Instant::now();
    let deadline = t + cfg.tls_bootstrap_timeout;
    let key = blocking({
        let paths = paths.clone();
        move || prepare_key(&paths, key == KeyChoice::Fresh)
    })
    .await?;
    let csr_name = bootstrap::csr_name(&key.public_key_der(), &cfg.node_name);
    tracing::Span::current().record("csr", tracing::field::display(&csr_name));
    let st = State {
        version: 1,
        phase: Phase::Bootstrapping,
        node_name: cfg.node_name.clone(),
        server: server.to_string(),
        ca_pin: report.ca_pin.clone(),
        csr_name: Some(csr_name.clone()),
        certificate_not_after: None,
        rejoin: None,
        replacing: None,
        updated_at: state::now_rfc3339(),
    };
    let saved_now = match earlier {
        Earlier::None => st.clone(),
        Earlier::IdentityLost(earlier, reason) => rejoin_state(earlier, reason, &csr_name),
        Earlier::Replaced(earlier) => replacing_state(earlier, &st, &csr_name),
    };
    blocking({
        let paths = paths.clone();
        move || Ok(state::save(&paths, &saved_now)?)
    })
    .await?;
    let issued = bootstrap::request_certificate(client, &key, &cfg.node_name, deadline).await?;
    report.step(
        "bootstrap",
        format!(
            "CertificateSigningRequest {} {}approved; client certificate for system:node:{} valid until {}",
            issued.csr_name,
            if issued.reused { "(from an earlier run) " } else { "" },
            cfg.node_name,
            issued.not_after
        ),
        t,
    );
    Ok(Bootstrapped {
        key,
        issued,
        state: st,
    })
}

/// The finished join that kubelet's files are from, when this join runs beside it until the
/// write phase replaces it.
#[derive(Clone, Copy)]
pub(super) enum Earlier<'a> {
    /// No finished join: this one's state stands from the start.
    None,
    /// Joining again as the same node, its identity lost.
    IdentityLost(&'a State, &'a IdentityLoss),
    /// `join --force` on a joined machine.
    Replaced(&'a State),
}

/// The earlier join's state, with the forced join under way recorded (its start kept when a
/// crash or a failure cut an earlier try at the same CSR short).
fn replacing_state(earlier: &State, new: &State, csr_name: &str) -> State {
    let now = state::now_rfc3339();
    let started_at = earlier
        .replacing
        .as_ref()
        .filter(|r| r.csr_name == csr_name)
        .map_or_else(|| now.clone(), |r| r.started_at.clone());
    State {
        replacing: Some(state::Replacement {
            server: new.server.clone(),
            ca_pin: new.ca_pin.clone(),
            csr_name: csr_name.to_string(),
            started_at,
        }),
        updated_at: now,
        ..earlier.clone()
    }
}

/// The earlier join's state, with the re-identification under way recorded (its start kept
/// when a crash cut an earlier try short).
fn rejoin_state(earlier: &State, reason: &IdentityLoss, csr_name: &str) -> State {
    let now = state::now_rfc3339();
    let started_at = earlier
        .rejoin
        .as_ref()
        .filter(|r| r.csr_name == csr_name)
        .map_or_else(|| now.clone(), |r| r.started_at.clone());
    State {
        rejoin: Some(Rejoin {
            csr_name: csr_name.to_string(),
            reason: reason.clone(),
            started_at,
        }),
        updated_at: now,
        ..earlier.clone()
    }
}

/// The state directory, cleaned of an interrupted write's temporary files, and the key in it.
fn prepare_key(paths: &Paths, fresh: bool) -> Result<NodeKey, Error> {
    files::ensure_dir(&paths.host(STATE_DIR), 0o700)?;
    files::remove_stale_temp_files(&paths.host(STATE_DIR))?;
    load_or_create_key(paths, fresh)
}

/// The saved key of an interrupted run, or a new one saved before any CSR refers to it.
fn load_or_create_key(paths: &Paths, fresh: bool) -> Result<NodeKey, Error> {
    let path = paths.host(state::NODE_KEY);
    if !fresh && path.exists() {
        let pem = files::read_private_file(&path, "node key")?;
        let text = String::from_utf8_lossy(&pem);
        return Ok(NodeKey::from_pem(&text, &path.display().to_string())?);
    }
    let key = NodeKey::generate()?;
    files::write_atomic(&path, key.pem().as_bytes(), 0o600)?;
    Ok(key)
}
