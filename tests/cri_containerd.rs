//! The CRI client (`host::runtime::cri`) against a real containerd started for the test with its
//! own configuration, root, state and socket in a temporary folder (as `kubeadm join`'s
//! comparison starts it): a containerd started with its own `--config` is exactly the case the
//! configuration files in /etc cannot tell. Ignored without containerd; `.ci/run` installs it
//! and runs this.
//!
//! `KAAS_RECORD_CRI_STATUS=path` writes the verbose Status answer there: that is how
//! tests/fixtures/cri-status-containerd-1.6.pb was recorded.

#[allow(dead_code)]
#[path = "common/real/kubeadm.rs"]
mod kubeadm;

use kaas_join::host::paths::Paths;
use kaas_join::host::runtime::{cri, runtime_cgroup_driver};
use kaas_join::host::LinuxHost;
use kaas_join::model::cgroup_driver::CgroupDriver;

#[test]
#[ignore = "needs containerd on PATH (and root); .ci/run runs it"]
fn a_real_containerd_tells_its_cgroup_driver_over_cri() {
    let containerd = kubeadm::Containerd::start().expect("containerd starts");
    let status = cri::unary(&containerd.socket, cri::STATUS, cri::STATUS_VERBOSE)
        .expect("containerd answers a verbose Status");
    if let Some(path) = std::env::var_os("KAAS_RECORD_CRI_STATUS") {
        std::fs::write(path, &status).expect("the recording is written");
    }
    // Not a well-known socket, so no file can tell: the runtime is asked. Its configuration
    // says SystemdCgroup = false.
    let (driver, how) = runtime_cgroup_driver(&LinuxHost, &Paths::new("/"), &containerd.endpoint())
        .expect("the running containerd tells");
    assert_eq!(driver, CgroupDriver::Cgroupfs, "{how}");
    assert!(how.contains("SystemdCgroup = false"), "{how}");
}
