#!/usr/bin/env bash
# Runs examples/sled_matrix.rs over a grid of configurations and workloads;
# one line per run: the arguments, write and read seconds, and the results.
# Usage: bash crates/raftwatch-storage-sled/examples/sled_matrix.sh [ARGS...]
# (extra ARGS, e.g. `kind=random`, apply to every run).
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release -q -p raftwatch-storage-sled --example sled_matrix
bin="${CARGO_TARGET_DIR:-target}/release/examples/sled_matrix"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
TIMEFORMAT=%R
run() {
    rm -rf "$dir/db"
    local w r out
    { w=$( { time "$bin" phase=write dir="$dir/db" "$@" > "$dir/out"; } 2>&1 ); }
    # Apparent bytes (what size_on_disk_bytes counts), allocated bytes and
    # files, after the store is closed.
    out="$(cat "$dir/out") du_apparent=$(du -sb "$dir/db" | cut -f1) du_alloc=$(du -sB1 "$dir/db" | cut -f1) files=$(find "$dir/db" -type f | wc -l)"
    { r=$( { time "$bin" phase=read dir="$dir/db" "$@" > /dev/null; } 2>&1 ); }
    echo "$* | write_s=$w read_s=$r | $out"
}
if [ "${GRID:-full}" = quick ]; then
    run "${@}"
    exit
fi
for mode in low-space high-throughput; do run mode=$mode churn=30 "$@"; done
for seg in 262144 1048576 2097152 4194304 8388608; do run seg=$seg churn=30 "$@"; done
for z in 1 3 5 10; do run zstd=$z churn=30 "$@"; done
run order=asc churn=30 "$@"
run batch=60000 flush_every=1 churn=30 "$@"
run batch=100 flush_every=100 churn=30 "$@"
