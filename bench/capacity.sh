#!/usr/bin/env bash
# Measures what ARCHITECTURE.md's "Capacity and trade-offs" section quotes:
# ingest throughput, latency and CPU at a replication factor, the Raft
# log's bytes per sample and entries per fsync, and read latency at both
# consistency levels. Starts its own local cluster of NODES processes
# (RF replicas per shard, 8 shards) in a temporary directory.
#
#   bench/capacity.sh [NODES] [RF] [SERIES] [ROUNDS]    (defaults 3 3 100000 60)
#
# Prints one JSON object per measurement, then a summary line. Needs the
# release binaries (built first). Not a CI gate: timings depend on the
# machine and its load.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${1:-3}
RF=${2:-3}
SERIES=${3:-100000}
ROUNDS=${4:-60}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --bins -q
BIN="$CARGO_TARGET_DIR/release"
DIR=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

BASE=${BASE_PORT:-17600}
initial=""
for i in $(seq 1 "$NODES"); do
  initial+="${initial:+,}$i=127.0.0.1:$((BASE + 10 * i))"
done
for i in $(seq 1 "$NODES"); do
  "$BIN/raftwatch" server --node-id "$i" --data-dir "$DIR/node-$i" \
    --grpc-addr "127.0.0.1:$((BASE + 10 * i))" --http-addr "127.0.0.1:$((BASE + 10 * i + 1))" \
    --initial-cluster "$initial" --shards 8 --replicas "$RF" \
    >"$DIR/node-$i.log" 2>&1 &
  PIDS+=($!)
done
EP="http://127.0.0.1:$((BASE + 10))"
for _ in $(seq 1 120); do
  if "$BIN/raftwatchctl" --endpoint "$EP" --output json cluster status 2>/dev/null |
    python3 -c 'import json,sys; v=json.load(sys.stdin); s=v.get("shards",[]); sys.exit(0 if s and all(x.get("leader") for x in s) and v.get("control_leader") else 1)'; then
    break
  fi
  sleep 1
done

log_counters() {
  # Sum over nodes of the Raft log's counters: bytes entries fsyncs.
  local bytes=0 entries=0 fsyncs=0
  for i in $(seq 1 "$NODES"); do
    local m
    m=$(curl -s "http://127.0.0.1:$((BASE + 10 * i + 1))/metrics")
    bytes=$((bytes + $(awk '/^raftwatch_log_bytes_written_total/ {print $2}' <<<"$m")))
    entries=$((entries + $(awk '/^raftwatch_log_entries_appended_total/ {print $2}' <<<"$m")))
    fsyncs=$((fsyncs + $(awk '/^raftwatch_log_fsyncs_total/ {print $2}' <<<"$m")))
  done
  echo "$bytes $entries $fsyncs"
}

cpu_ticks() {
  # utime + stime of every node process, in clock ticks.
  local t=0
  for p in "${PIDS[@]}"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}

read -r b0 e0 f0 <<<"$(log_counters)"
c0=$(cpu_ticks)
INGEST=$("$BIN/raftwatch-bench" ingest --target "grpc://127.0.0.1:$((BASE + 10))" \
  --series "$SERIES" --rounds "$ROUNDS" --concurrency 8)
echo "$INGEST"
read -r b1 e1 f1 <<<"$(log_counters)"
c1=$(cpu_ticks)
ACKED=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["samples_acked"])' "$INGEST")
# One host's series (small: the per-shard consistency round dominates)
# and a hundred hosts' (large: reading and merging dominates).
for expr in 'node_cpu_seconds_total{instance="host-00001.example.internal:9100"}' \
  'node_cpu_seconds_total{instance=~"host-000.*"}'; do
  for c in linearizable stale; do
    "$BIN/raftwatch-bench" query --target "grpc://127.0.0.1:$((BASE + 10))" \
      --expr "$expr" --range 1h --queries 200 --concurrency 4 --consistency "$c" |
      python3 -c 'import json,sys; v=json.load(sys.stdin); print(json.dumps({k: v.get(k) for k in ["consistency","series","samples","p50_ms","p99_ms","queries_per_sec","errors"]} | {"expr": sys.argv[1]}))' "$expr"
  done
done
python3 - "$NODES" "$RF" "$ACKED" "$b0" "$b1" "$e0" "$e1" "$f0" "$f1" "$c0" "$c1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
nodes, rf, acked, b0, b1, e0, e1, f0, f1, c0, c1, hz = map(int, sys.argv[1:])
cpu = (c1 - c0) / hz
print(json.dumps({
    "nodes": nodes, "replication_factor": rf, "samples_acked": acked,
    "cluster_cpu_s": round(cpu, 2),
    "cluster_cpu_s_per_million_samples": round(cpu / max(acked, 1) * 1e6, 2),
    "log_bytes_per_sample_per_replica": round((b1 - b0) / max(acked, 1) / rf, 1),
    "log_entries_per_fsync": round((e1 - e0) / max(f1 - f0, 1), 2),
    "log_fsyncs": f1 - f0,
}))
PY
