//! Runs every fuzz target's body on its seed corpus (`corpus/<target>/`) on stable Rust:
//! `cargo test` in this directory. Also replays files given in `FUZZ_REPLAY` (`target:path`,
//! comma-separated), e.g. a crash libFuzzer wrote to `artifacts/`.

use std::path::Path;

#[test]
fn every_target_runs_its_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, run) in kaas_join_fuzz::TARGETS {
        let dir = root.join(name);
        let mut seeds = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            println!("{name}: {}", path.display());
            run(&data);
            seeds += 1;
        }
        assert!(
            seeds >= 2,
            "{name} has {seeds} seeds; add some to {}",
            dir.display()
        );
    }
}

#[test]
fn replay() {
    let Ok(list) = std::env::var("FUZZ_REPLAY") else {
        return;
    };
    for item in list.split(',').filter(|s| !s.is_empty()) {
        let (name, path) = item.split_once(':').expect("FUZZ_REPLAY=target:path[,...]");
        let run = kaas_join_fuzz::TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no target {name}"))
            .1;
        run(&std::fs::read(path).unwrap());
    }
}
