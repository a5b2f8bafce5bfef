//! What runs on the node over time: the kubelet supervisor, the health reporter, systemd
//! notification and the state files.
pub mod health;
pub mod join_state;
pub mod notify;
pub mod run_status;
pub mod supervisor;
