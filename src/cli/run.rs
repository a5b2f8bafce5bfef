//! Arguments of `kaas-join run`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::cli::join::JoinArgs;

/// Arguments of `kaas-join run`: everything `join` takes, plus how to run kubelet.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub join: JoinArgs,

    /// The kubelet binary to supervise.
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/kubelet")]
    pub kubelet: PathBuf,

    /// An extra kubelet argument (e.g. --kubelet-arg=--v=2). Repeatable; appended after the
    /// arguments from the flags files.
    #[arg(long = "kubelet-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub kubelet_args: Vec<String>,

    /// Consecutive failed kubelet health checks (healthz) before kubelet is restarted.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub liveness_failures: u32,

    /// How often the node's conditions are re-sent when nothing changes (heartbeat).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub heartbeat: String,

    /// Do not supervise kubelet: only join (if needed) and report the node's health. For nodes
    /// whose kubelet runs as its own systemd unit.
    #[arg(long)]
    pub no_kubelet: bool,

    /// Where to serve Prometheus metrics (GET /metrics), as IP:PORT; "" serves none. Not
    /// authenticated: an address other than loopback is allowed, with a warning.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = DEFAULT_METRICS_ADDRESS,
        value_parser = parse_metrics_address,
    )]
    pub metrics_address: MetricsAddress,

    /// Serve no Prometheus metrics (as --metrics-address "").
    #[arg(long, conflicts_with = "metrics_address")]
    pub no_metrics: bool,

    /// How often kubelet's version is checked against kube-apiserver's (the KubeletVersionSkew
    /// condition) when nothing else asks for a check.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub version_check_interval: String,

    /// How long a kubelet upgrade (`kaas-join upgrade-kubelet`) waits for the new kubelet to
    /// pass its healthz before the old binary is put back.
    #[arg(long, value_name = "DURATION", default_value = "2m")]
    pub upgrade_timeout: String,
}

/// Loopback, beside node-problem-detector's 20256/20257 (the README says why this port).
pub const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:20258";

/// `--metrics-address`: where to listen, `None` for "".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddress(pub Option<SocketAddr>);

impl RunArgs {
    /// Where to serve metrics; `None` when they are off (`--no-metrics`, `--metrics-address ""`).
    pub fn metrics_listen(&self) -> Option<SocketAddr> {
        if self.no_metrics {
            None
        } else {
            self.metrics_address.0
        }
    }
}

fn parse_metrics_address(text: &str) -> Result<MetricsAddress, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(MetricsAddress(None));
    }
    text.parse::<SocketAddr>()
        .map(|a| MetricsAddress(Some(a)))
        .map_err(|_| {
            "give an IP address and a port, e.g. 127.0.0.1:20258 or [::1]:20258 (or \"\" for no metrics)"
                .to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_addresses() {
        let at = |s: &str| parse_metrics_address(s).map(|a| a.0.map(|a| a.to_string()));
        assert_eq!(at("127.0.0.1:20258"), Ok(Some("127.0.0.1:20258".into())));
        assert_eq!(at(" [::1]:9 "), Ok(Some("[::1]:9".into())));
        assert_eq!(at("0.0.0.0:20258"), Ok(Some("0.0.0.0:20258".into())));
        assert_eq!(at(""), Ok(None));
        for bad in [
            "localhost:20258",
            "127.0.0.1",
            ":20258",
            "127.0.0.1:70000",
            "::1:20258",
        ] {
            assert!(at(bad).is_err(), "{bad}");
        }
        assert!(parse_metrics_address(DEFAULT_METRICS_ADDRESS).is_ok());
    }
}
