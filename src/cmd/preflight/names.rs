//! Check names. kubeadm's where kubeadm has the check (`cmd/kubeadm/app/preflight/checks.go`),
//! so an existing `--ignore-preflight-errors` list keeps working.

pub const IS_PRIVILEGED_USER: &str = "IsPrivilegedUser";
/// kubeadm's `InPathCheck` naming (`FileExisting-<executable>`).
pub const KUBELET_BINARY: &str = "FileExisting-kubelet";
pub const KUBELET_VERSION: &str = "KubeletVersion";
pub const CRI: &str = "CRI";
pub const CGROUP_DRIVER: &str = "CgroupDriver";
pub const SWAP: &str = "Swap";
pub const IP_FORWARD: &str = "FileContent--proc-sys-net-ipv4-ip_forward";
pub const BRIDGE_NF: &str = "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables";
/// kubeadm's kernel and OS verification; here the kernel modules kubelet's networking needs.
pub const SYSTEM_VERIFICATION: &str = "SystemVerification";
pub const KUBELET_CONF: &str = "FileAvailable--etc-kubernetes-kubelet.conf";
pub const BOOTSTRAP_KUBELET_CONF: &str = "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf";
pub const CA_CRT: &str = "FileAvailable--etc-kubernetes-pki-ca.crt";
pub const CLOCK_SKEW: &str = "ClockSkew";
/// The token's signature in cluster-info and the CA pin (discovery).
pub const CLUSTER_INFO: &str = "ClusterInfo";
/// The token may create CertificateSigningRequests.
pub const CSR_CREATE: &str = "CSRCreate";
/// The token's node client CSR will be auto-approved.
pub const CSR_AUTO_APPROVE: &str = "CSRAutoApprove";

/// Every name, for the unknown-name warning (the ports as kubelet's defaults).
pub const ALL: &[&str] = &[
    IS_PRIVILEGED_USER,
    KUBELET_BINARY,
    KUBELET_VERSION,
    CRI,
    CGROUP_DRIVER,
    SWAP,
    IP_FORWARD,
    BRIDGE_NF,
    SYSTEM_VERIFICATION,
    "Port-10250",
    "Port-10248",
    KUBELET_CONF,
    BOOTSTRAP_KUBELET_CONF,
    CA_CRT,
    CLOCK_SKEW,
    CLUSTER_INFO,
    CSR_CREATE,
    CSR_AUTO_APPROVE,
];
