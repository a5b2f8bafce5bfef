//! Arguments of `kaas-join run`.

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
}
