//! kaas-join: joins a VM to a kubeadm-style Kubernetes control plane.
//!
//! The join runs in phases (`Discover → Bootstrap → Configure`), each resumable from a small state
//! file. Modules, one responsibility each:
//! - [`cli`]: command-line definitions; [`config`]: flags, env and files → one validated [`config::JoinConfig`].
//! - [`token`], [`pin`], [`jws`]: the bootstrap token, CA public-key pins, detached JWS signatures.
//! - [`kubeconfig`]: kubeconfig files (read cluster-info's, write kubelet's).
//! - [`apiclient`]: the few API calls we make, TLS set-up, Status errors, response size caps.
//! - [`discovery`]: finds and verifies the cluster (cluster-info, JWS, pin, second verified fetch).
//! - [`cluster_config`]: reads kubeadm-config and kubelet-config, with loud fallbacks.
//! - [`bootstrap`]: node key, CertificateSigningRequest, waiting for the certificate.
//! - [`kubelet_config`]: merges cluster config, user overrides and secure defaults; flags file.
//! - [`fs`]: `--root`-aware paths and the one atomic-write function; [`state`]: the phase file.
//! - [`host`]: hostname, container runtime socket and cgroup driver detection.
//! - [`join`]: runs the phases and produces the step-by-step report.
//! - [`preflight`]: `kaas-join preflight`, and the same local checks before `join` and `run`'s join.
//! - [`run`]: `kaas-join run`: join if needed, then [`supervisor`] (kubelet as a child, healthz,
//!   restarts), [`health`] (node conditions and events as the node) and [`notify`] (systemd).
//! - [`status`]: `kaas-join status`; [`reset`]: `kaas-join reset` (undo the join).
//! - [`kubelet_state`]: what the kubelet supervisor publishes for health reporting and status.
//! - [`error`]: the top-level error and its documented exit codes.
//! - The provider's side: [`admin`] (admin kubeconfig → client), [`tokens`] (`token
//!   create|list|delete`), [`ticket`] (the join ticket), [`prepare`] (`cluster prepare`).

pub mod admin;
pub mod apiclient;
pub mod backoff;
pub mod bootstrap;
pub mod cli;
pub mod cluster_config;
pub mod config;
pub mod discovery;
pub mod error;
pub mod fs;
pub mod health;
pub mod host;
pub mod join;
pub mod jws;
pub mod kubeconfig;
pub mod kubelet_config;
pub mod kubelet_state;
pub mod labels;
pub mod notify;
pub mod pin;
pub mod preflight;
pub mod prepare;
pub mod report;
pub mod reset;
pub mod run;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod ticket;
pub mod token;
pub mod tokens;
pub mod yaml;

/// The recorded control-plane responses (`tests/fixtures/`), for unit tests.
#[cfg(test)]
#[path = "../tests/common/fixtures.rs"]
pub(crate) mod fixtures;
