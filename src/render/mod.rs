//! kubelet's files, rendered in memory: KubeletConfiguration and the flags file.
pub mod kubelet_config;
