//! What runs on the node over time: the kubelet supervisor, the health reporter, systemd
//! notification, the state files, `run`'s Prometheus metrics and its kubelet version check.
pub mod health;
pub mod join_state;
pub mod kubelet_upgrade;
pub mod metrics;
pub mod notify;
pub mod run_status;
pub mod supervisor;
pub mod version_check;
