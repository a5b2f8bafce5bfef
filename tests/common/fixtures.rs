//! The recorded control-plane responses in `tests/fixtures/` (see its INDEX.md): the one way
//! tests, benches, fuzz tests and the sandbox's fidelity tests read them. Self-contained (no
//! crate imports), so other crates of the workspace include it with `#[path]`.
#![allow(dead_code)]

use std::path::PathBuf;

/// `tests/fixtures/` of this repository, wherever the including crate lives.
pub fn fixtures_dir() -> PathBuf {
    // CARGO_MANIFEST_DIR is the including crate's: the repository root, `sandbox/` or `fuzz/`.
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("tests/fixtures/INDEX.md").is_file() {
        assert!(
            dir.pop(),
            "tests/fixtures/INDEX.md not found above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    dir.join("tests/fixtures")
}

/// The bytes of `tests/fixtures/<name>` (`name` may hold a subfolder).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// [`fixture`] as text.
pub fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap_or_else(|_| panic!("fixture {name} is not UTF-8"))
}

/// [`fixture`] parsed as JSON.
pub fn fixture_json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}
