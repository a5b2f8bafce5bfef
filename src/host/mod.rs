//! The seam to the machine: paths under `--root`, atomic file writes, and what the container
//! runtime is.
pub mod files;
pub mod runtime;
