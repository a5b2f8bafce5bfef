//! Where the benches find `target/` and the release binary they measure.

use std::path::PathBuf;
use std::time::Duration;

use kaas_sandbox::{ApprovalMode, ControlPlaneStyle, Sandbox, SandboxConfig};

/// Starts the sandbox control plane the benches measure against, on `runtime`: kubeadm-style,
/// CSRs approved at once by workers that take `approval_time` each, on loopback (checked).
pub fn start_sandbox(runtime: &tokio::runtime::Runtime, approval_time: Duration) -> Sandbox {
    let sb = runtime.block_on(async {
        Sandbox::start(SandboxConfig {
            style: ControlPlaneStyle::Kubeadm,
            approval: ApprovalMode::Auto {
                delay: Duration::ZERO,
            },
            approval_workers_delay: approval_time,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox starts on 127.0.0.1")
    });
    assert!(
        sb.addr().ip().is_loopback(),
        "the sandbox must be on loopback"
    );
    sb
}

/// `target/` (or `$CARGO_TARGET_DIR`): a bench runs as `target/release/deps/<name>-<hash>`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Where the release binary should be: next to the bench's `deps/` directory.
pub fn expected_kaas_join() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("kaas-join")))
        .unwrap_or_else(|| PathBuf::from("target/release/kaas-join"))
}

/// The release binary next to the bench, else `$KAAS_JOIN_BIN`.
pub fn find_kaas_join() -> Option<PathBuf> {
    let next_to_bench = expected_kaas_join();
    if next_to_bench.is_file() {
        return Some(next_to_bench);
    }
    let from_env = PathBuf::from(std::env::var_os("KAAS_JOIN_BIN")?);
    from_env.is_file().then_some(from_env)
}
