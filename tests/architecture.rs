//! The crate's layering, checked: every `crate::…` path in `src/` points to the same layer or a
//! layer below it (README "Layout"), and nothing outside `cmd` (but `main.rs`) uses `cmd`.
//! A new import that breaks the rule fails here, naming the file, the line and the rule.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each layer and the layers it may use (besides itself). Order = bottom to top.
const LAYERS: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("host", &["model"]),
    ("cli", &["model"]),
    ("config", &["model", "host", "cli"]),
    ("render", &["model"]),
    ("k8s", &["model", "host", "config"]),
    ("node", &["model", "host", "config", "render", "k8s"]),
    (
        "cmd",
        &["model", "host", "cli", "config", "render", "k8s", "node"],
    ),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line without its `//` comment (doc links name other layers freely). Good
/// enough for this crate: no `//` inside the string literals that hold a `crate::` path.
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The top-level modules a line names through `prefix` (`crate::` or `kaas_join::`), including
/// grouped imports (`crate::{a::X, b}`).
fn modules_named(code: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

fn layer_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src_dir()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    rel.components().nth(1).map(|_| first)
}

#[test]
fn every_import_points_down_the_layers() {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files.sort();
    let mut broken = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src_dir()).unwrap().display().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        let layer = layer_of(file);
        for (n, line) in text.lines().enumerate() {
            let code = code_of(line);
            if code.contains("super::super") {
                broken.push(format!(
                    "src/{rel}:{}: `super::super` leaves the module; name the path from crate::",
                    n + 1
                ));
            }
            let (names, from) = match (&layer, rel.as_str()) {
                (Some(layer), _) => (modules_named(code, "crate::"), layer.as_str()),
                (None, "main.rs") => (modules_named(code, "kaas_join::"), "main"),
                (None, _) => (modules_named(code, "crate::"), "lib"),
            };
            for name in names {
                let ok = match from {
                    // main parses, dispatches and maps the exit code; lib.rs only declares.
                    "main" => ["cli", "cmd", "model"].contains(&name.as_str()),
                    "lib" => name == "fixtures",
                    layer => {
                        name == layer
                            || allowed
                                .get(layer)
                                .is_some_and(|below| below.contains(&name.as_str()))
                            || (name == "fixtures" && is_test_code(&rel, &text, n))
                    }
                };
                if !ok {
                    broken.push(format!(
                        "src/{rel}:{}: layer `{from}` uses `{name}`; it may use only {:?}",
                        n + 1,
                        allowed.get(from).copied().unwrap_or(&[])
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports that break the layering (README, Layout):\n{}",
        broken.join("\n")
    );
}

/// `crate::fixtures` (the recorded responses) exists only in unit tests: allowed below a
/// `#[cfg(test)]` line.
/// Whether line `line` of `rel` is test code: after a `#[cfg(test)]` in the file, or in a test
/// module's own file (`foo/tests.rs`, `foo/tests/bar.rs`).
fn is_test_code(rel: &str, text: &str, line: usize) -> bool {
    let in_test_file = Path::new(rel)
        .components()
        .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "tests.rs");
    in_test_file || text.lines().take(line).any(|l| l.trim() == "#[cfg(test)]")
}

#[test]
fn every_folder_is_a_known_layer() {
    let known: Vec<&str> = LAYERS.iter().map(|(l, _)| *l).collect();
    for entry in std::fs::read_dir(src_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            assert!(
                known.contains(&name.as_str()),
                "src/{name}/ is not a layer of tests/architecture.rs: add it there, with what it may use"
            );
        } else {
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(
                ["lib.rs", "main.rs"].contains(&name),
                "src/{name}: every module lives in a layer's folder"
            );
        }
    }
}

#[test]
fn the_checker_sees_grouped_and_plain_imports() {
    assert_eq!(
        modules_named("use crate::{model::pin::CaPin, host};", "crate::"),
        ["model", "host"]
    );
    assert_eq!(
        modules_named("let x = crate::k8s::client::X; a_crate::b", "crate::"),
        ["k8s"]
    );
    assert_eq!(
        code_of("use crate::model; // crate::cmd"),
        "use crate::model; "
    );
}

/// A `src/` file's module path (`cmd::join::plan`; `mod.rs` is its folder's module); `None` for
/// the crate root and for test modules' own files.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src_dir()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.iter().any(|p| p == "tests") {
        return None;
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    (parts.len() > 1 || !matches!(parts[0].as_str(), "lib" | "main")).then(|| parts.join("::"))
}

/// Every full path a `crate::` use-tree starting at `code` names: `a::{b::C, d::{e, f}}` gives
/// `a::b::C`, `a::d::e` and `a::d::f`. Stops at the first character that is not part of it.
fn use_tree(code: &str, base: &str, out: &mut Vec<String>) -> usize {
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    let head: String = code.chars().take_while(|&c| ident(c)).collect();
    let mut at = head.len();
    let path = format!("{base}{head}");
    if code[at..].starts_with('{') {
        at += 1;
        loop {
            let rest = &code[at..];
            let skipped = rest.len() - rest.trim_start_matches([' ', ',']).len();
            at += skipped;
            if code[at..].starts_with('}') || at >= code.len() {
                return at + 1;
            }
            at += use_tree(&code[at..], &path, out).max(1);
        }
    }
    out.push(path.trim_end_matches(':').to_string());
    at
}

/// No two modules of `src/` import each other, directly or around a longer loop: a layer's
/// modules point one way too (issue 10 found a cycle of 15 files).
#[test]
fn no_import_cycle_between_modules() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files.sort();
    let modules: BTreeMap<String, PathBuf> = files
        .iter()
        .filter_map(|f| module_of(f).map(|m| (m, f.clone())))
        .collect();
    let resolve = |path: &str| {
        let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        while !parts.is_empty() {
            let name = parts.join("::");
            if modules.contains_key(&name) {
                return Some(name);
            }
            parts.pop();
        }
        None
    };
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        let production = text.split("#[cfg(test)]").next().unwrap_or("");
        let code: String = production
            .lines()
            .map(code_of)
            .collect::<Vec<_>>()
            .join(" ");
        let code = code.split_whitespace().collect::<Vec<_>>().join(" ");
        let code = code
            .replace(":: ", "::")
            .replace(" ::", "::")
            .replace("{ ", "{");
        let mut paths = Vec::new();
        let mut rest = code.as_str();
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().last();
            rest = &rest[i + "crate::".len()..];
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                use_tree(rest, "", &mut paths);
            }
        }
        let mut to: Vec<String> = paths
            .iter()
            .filter_map(|p| resolve(p))
            .filter(|t| t != module)
            .collect();
        to.sort();
        to.dedup();
        edges.insert(module.clone(), to);
    }
    // Depth-first search; a module met again on the current path closes a cycle.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!(
                "import cycle: {} (move the shared item down, or make one side pass it in)",
                cycle.join(" -> ")
            );
        }
    }
    let count: usize = edges.values().map(Vec::len).sum();
    assert!(
        count > 300,
        "the checker saw only {count} imports: is it reading src/?"
    );
}

#[test]
fn the_cycle_checker_expands_use_trees() {
    let mut out = Vec::new();
    use_tree("host::{paths::{Paths, CA}, LinuxHost};", "", &mut out);
    assert_eq!(
        out,
        ["host::paths::Paths", "host::paths::CA", "host::LinuxHost"]
    );
}
