#!/usr/bin/env bash
# Fuzzes every target for a bounded time (default 30 s each) with cargo-fuzz on a nightly
# toolchain. Needs: `rustup toolchain install nightly --profile minimal` and
# `cargo install cargo-fuzz`. Usage: fuzz/run-bounded.sh [seconds-per-target] [target...]
# New corpus entries go to target/fuzz-corpus/<target> (the seeds in corpus/<target> are only
# read); a crash is saved under artifacts/<target>/ and makes this script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(token ca_pin pem_bundle jws kubeconfig join_config watch_event)
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "run-bounded.sh: no nightly toolchain (rustup toolchain install nightly --profile minimal)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "run-bounded.sh: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
  exit 2
fi

failed=()
for t in "${targets[@]}"; do
  work="target/fuzz-corpus/$t"
  mkdir -p "$work"
  echo "== $t: ${secs}s"
  # -max_len 16384: cluster-info kubeconfigs are ~2 KB; larger inputs only slow the search
  # (YAML nesting is quadratic, see tests/properties.rs).
  if ! cargo +nightly fuzz run "$t" "$work" "corpus/$t" -- \
      -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "run-bounded.sh: crashes in: ${failed[*]} (see artifacts/)" >&2
  exit 1
fi
echo "run-bounded.sh: no crash in ${targets[*]} (${secs}s each)"
