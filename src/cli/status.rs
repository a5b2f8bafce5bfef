//! Arguments of `kaas-join status`.

use std::path::PathBuf;

use clap::Args;

use crate::model::output::OutputFormat;

/// Arguments of `kaas-join status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Directory that stands for / when reading files.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Format of the result on standard output.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub output: OutputFormat,
}
