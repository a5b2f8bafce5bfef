//! `kubelet --version` through [`Host::run`], parsed with [`KubeVersion::find`]: one way to ask
//! a kubelet binary its version, for preflight's `KubeletVersion` check, the
//! `KubeletVersionSkew` condition `run` reports and `kaas-join upgrade-kubelet`. Blocking (it
//! waits for the process): async callers run it in `spawn_blocking`.

use std::path::Path;
use std::time::Duration;

use super::Host;
use crate::model::kube_version::KubeVersion;

/// `kubelet --version` must answer within this, or it is killed.
pub const KUBELET_VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a binary gave no version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeletVersionError {
    /// It could not be run, exited non-zero, or a signal ended it.
    #[error("`{binary} --version` failed: {why}")]
    Failed { binary: String, why: String },
    /// It ran, but printed nothing shaped like a Kubernetes version: not kubelet.
    #[error("`{binary} --version` printed no version ({printed:?}): not a kubelet binary")]
    NotKubelet { binary: String, printed: String },
}

/// The version `binary --version` prints (killed after [`KUBELET_VERSION_TIMEOUT`]).
pub fn kubelet_version(host: &dyn Host, binary: &Path) -> Result<KubeVersion, KubeletVersionError> {
    let shown = binary.display().to_string();
    let failed = |why: String| KubeletVersionError::Failed {
        binary: shown.clone(),
        why,
    };
    let out = host
        .run(binary, &["--version"], KUBELET_VERSION_TIMEOUT)
        .map_err(|e| failed(e.to_string()))?;
    match out.code {
        Some(0) => {}
        Some(code) => return Err(failed(format!("it exited with code {code}"))),
        None => return Err(failed("a signal ended it".into())),
    }
    KubeVersion::find(&out.stdout).ok_or_else(|| KubeletVersionError::NotKubelet {
        binary: shown.clone(),
        printed: out.stdout.trim().chars().take(200).collect(),
    })
}
