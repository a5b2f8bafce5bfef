//! kaas-sandbox: a faithful fake of the node-facing part of a kubeadm-style control plane
//! (kube-apiserver + the kube-controller-manager's bootstrapsigner, csrapproving and csrsigning
//! controllers), serving real TLS on loopback. Used by kaas-join's tests, benchmarks and demo;
//! not shipped.
//!
//! Responses are modelled on the recordings in `tests/fixtures` (see `tests/fidelity.rs`).
//!
//! Modules: `config` ([`SandboxConfig`] and its knobs), `sandbox` (the [`Sandbox`] handle),
//! `shared` (the state everything shares, request records, the authorization decision),
//! `tokens` (bootstrap tokens: authenticator, bootstrapsigner), `seed` (the initial
//! ConfigMaps), `tls` (CA, certificates, client-cert authentication), `store` (objects,
//! resourceVersion, watch fan-out), `api` (the server: authentication, routing, one handler
//! module per resource), `authz` (the RBAC/Node authorizer table), `rbac` (stored RBAC objects
//! for [`ControlPlaneStyle::Bare`]), `approver` (csrapproving + csrsigning), `faults`, `status`
//! (Status bodies), `jws` (the bootstrapsigner's signature).

mod api;
mod approver;
mod authz;
mod config;
mod faults;
mod jws;
mod rbac;
mod sandbox;
mod seed;
mod shared;
mod status;
mod store;
mod tls;
mod tokens;
mod util;

pub use config::{ApprovalMode, ControlPlaneStyle, SandboxConfig};
pub use faults::{Faults, WatchGarbage};
pub use jws::{cluster_info_kubeconfig, sign_detached_jws};
pub use sandbox::Sandbox;
pub use shared::RequestRecord;
pub use tokens::TokenOptions;

pub(crate) use shared::Shared;
