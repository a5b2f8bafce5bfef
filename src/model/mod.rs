//! Pure types and parsers: what the rest of kaas-join says things in. Nothing here does I/O or
//! uses another part of the crate.
pub mod backoff;
pub mod cgroup_driver;
pub mod duration;
pub mod endpoint;
pub mod exit_code;
pub mod identity;
pub mod jws;
pub mod kube_version;
pub mod kubeconfig;
pub mod kubelet_process;
pub mod kubelet_schema;
pub mod kubelet_upgrade;
pub mod labels;
pub mod node_conditions;
pub mod node_name;
pub mod output;
pub mod pin;
pub mod resources;
pub mod shown;
pub mod ticket;
pub mod time;
pub mod token;
pub mod yaml_guard;
