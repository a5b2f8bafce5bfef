//! The machine's disk and memory figures: what [`crate::host::Host`] measures and the
//! `LowDiskSpace` / `LowMemory` conditions ([`crate::model::node_conditions`]) are judged on.

/// Space on the filesystem holding a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpace {
    pub mount_point: String,
    pub available: u64,
    pub total: u64,
}

/// Memory of the machine, bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    pub available: u64,
    pub total: u64,
}
