//! kubelet's files, rendered in memory: KubeletConfiguration (`kubelet_config`, printed by
//! `go_yaml` exactly as kubeadm's go-yaml prints it) and the flags file (`flags_env`).
pub mod flags_env;
mod go_yaml;
pub mod kubelet_config;
