//! Arguments of `kaas-join upgrade-kubelet`.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `kaas-join upgrade-kubelet`.
#[derive(Debug, Clone, Args)]
pub struct UpgradeKubeletArgs {
    /// The new kubelet binary (an absolute path on this machine; it is copied into place, the
    /// file given stays).
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,

    /// Directory that stands for / when reading and writing files.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// How long to wait for the outcome (the new kubelet healthy, or the old one back). It
    /// should exceed twice `run --upgrade-timeout`.
    #[arg(long, value_name = "DURATION", default_value = "6m")]
    pub wait: String,
}
