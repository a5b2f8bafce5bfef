//! Where the benches find `target/` and the release binary they measure.

use std::path::PathBuf;

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
