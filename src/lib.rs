//! kaas-join: joins a VM to a kubeadm-style Kubernetes control plane and runs its kubelet.
//!
//! The crate is laid out in layers; each uses only the layers above it in this list (checked
//! by `tests/architecture.rs`):
//!
//! - [`model`]: pure types and parsers (token, pin, JWS, ticket, labels, kubeconfig, exit codes,
//!   what is known about the kubelet process, the node conditions judged on it, API times,
//!   backoff). Uses nothing of the crate.
//! - [`host`]: the seam to the machine: paths under `--root`, atomic writes, the container runtime.
//! - [`cli`]: clap definitions only, one file per subcommand's arguments.
//! - [`config`]: arguments + environment + files → one validated [`config::JoinConfig`].
//! - [`render`]: kubelet's files, rendered in memory (KubeletConfiguration, flags file).
//! - [`k8s`]: the API client and everything said to the API server (discovery, TLS bootstrap,
//!   cluster configuration, the provider's admin calls).
//! - [`node`]: what runs on the node over time (kubelet supervisor, health reporter, systemd
//!   notification, state files, `run`'s Prometheus metrics).
//! - [`cmd`]: one module per subcommand and [`cmd::dispatch`]; the only top-level error.
//!
//! `main.rs` parses the command line, sets up logging, calls [`cmd::dispatch`] and turns the
//! result into the documented exit code ([`model::exit_code::ExitCode`]).

pub mod cli;
pub mod cmd;
pub mod config;
pub mod host;
pub mod k8s;
pub mod model;
pub mod node;
pub mod render;

/// The recorded control-plane responses (`tests/fixtures/`), for unit tests.
#[cfg(test)]
#[path = "../tests/common/fixtures.rs"]
pub(crate) mod fixtures;
