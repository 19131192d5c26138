#!/usr/bin/env bash
# Alternating A/B of two descent binaries on one workload (descent only, no peers):
# the machine is shared and noisy, so the two run turn about, and the figure to read is
# the ratio of each pair. Usage:
#   scripts/ab_bench.sh BASE_BINARY NEW_BINARY w1|w2 [PAIRS]
# e.g. a base build from another commit:
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release -p descent-cli)
#   cargo build --release -p descent-cli
#   scripts/ab_bench.sh /tmp/base/target/release/descent target/release/descent w1 3
set -euo pipefail
base=$1 new=$2 workload=$3 pairs=${4:-3}
figure() {
  "$1" bench "$workload" --rounds 1 --python /nonexistent --out "$(mktemp -d)" 2>&1 |
    sed -n 's/^| descent | \([0-9]*\) \[.*/\1/p' | head -1
}
for i in $(seq "$pairs"); do
  b=$(figure "$base"); n=$(figure "$new")
  echo "pair $i: base $b, new $n, new/base $(awk -v n="$n" -v b="$b" 'BEGIN { printf "%.3f", n / b }')"
done
