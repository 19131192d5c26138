#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for SECONDS each (default 10), seeded
# from the committed corpora in fuzz/corpus/<target>/; new inputs go to a scratch
# folder, so the committed seeds stay as they are. A crash, a hang (> 10 s on one
# input) or an allocation over 2 GB stops with the input that caused it, under
# fuzz/artifacts/<target>/. Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). Usage: scripts/fuzz_all.sh [SECONDS] [TARGET…]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(csv npy npz idx safetensors_weights checkpoint experiment_toml study_toml model_json text)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  echo "fuzz $t for ${seconds}s"
  cargo +nightly fuzz run -O "$t" "$work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)|cov:" | tail -4
done
