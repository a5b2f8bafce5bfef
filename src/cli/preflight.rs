//! Arguments of `kaas-join preflight`.

use std::path::PathBuf;

use clap::Args;

use crate::cli::join::JoinArgs;

/// Arguments of `kaas-join preflight`: exactly `join`'s (so a join command line checks as it
/// is, with `preflight` for `join`; the settings that only shape the written files are read and
/// validated but not checked), plus the kubelet binary. Without a server (or ticket) only this
/// machine is checked; with one, the provider's side too.
#[derive(Debug, Clone, Default, Args)]
pub struct PreflightArgs {
    #[command(flatten)]
    pub join: JoinArgs,

    /// The kubelet binary, as a path on this machine (not under --root; as `run --kubelet`).
    /// Default: the first of /usr/bin/kubelet, /usr/local/bin/kubelet, /opt/bin/kubelet under
    /// --root.
    #[arg(long, value_name = "PATH")]
    pub kubelet: Option<PathBuf>,
}
