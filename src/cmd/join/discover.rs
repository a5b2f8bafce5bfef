//! Phase 1, discover: find and verify the cluster ([`crate::k8s::discovery`]) and say in the
//! report how it was proven (the token's signature, the CA pin) and which API server it names.

use std::sync::Arc;

use tokio::time::Instant;

use crate::cmd::error::Error;
use crate::cmd::join::report::JoinReport;
use crate::config::JoinConfig;
use crate::k8s::client::RequestCounter;
use crate::k8s::discovery::{self, Discovered, DiscoveryRequest};

/// Discovers the cluster; the report gets its server and the pin that matched.
#[tracing::instrument(
    name = "discover",
    skip_all,
    fields(
        node = %cfg.node_name,
        servers = ?cfg.servers,
        token_id = %cfg.token.id(),
        server = tracing::field::Empty,
    )
)]
pub(super) async fn discover(
    cfg: &JoinConfig,
    counter: Arc<RequestCounter>,
    report: &mut JoinReport,
) -> Result<Discovered, Error> {
    let t = Instant::now();
    let found = discovery::discover(&DiscoveryRequest::of(cfg, counter)).await?;
    tracing::Span::current().record("server", tracing::field::display(&found.server));
    report.server = Some(found.server.clone());
    report.ca_pin = found.matched_pin.as_ref().map(|p| p.to_string());
    report.step("discover", summary(cfg, &found), t);
    Ok(found)
}

fn summary(cfg: &JoinConfig, found: &Discovered) -> String {
    format!(
        "cluster-info from {} signed for token id {}, {}; API server {}{}",
        found.endpoint,
        cfg.token.id(),
        match &found.matched_pin {
            Some(pin) => format!("CA pin {pin} matched"),
            None => "CA NOT verified (--discovery-token-unsafe-skip-ca-verification)".into(),
        },
        found.server,
        if found.retries > 0 {
            format!(" (after {} retries)", found.retries)
        } else {
            String::new()
        }
    )
}
