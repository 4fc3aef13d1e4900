#!/usr/bin/env bash
# Issue 7's benchmark: raftwatch against Prometheus on the same data.
#
#   crates/raftwatch-bench/compare-prometheus.sh
#   SERIES=2000 ROUNDS=60 QUERIES=5 crates/raftwatch-bench/compare-prometheus.sh
#
# Starts, each in a temporary directory with its own ports:
#   - Prometheus (Debian's 2.42, /usr/bin/prometheus) with the remote-write
#     receiver on and nothing to scrape, so it holds only what is loaded;
#   - `raftwatch dev` (3 nodes, 8 shards, RF 3), release build.
# Loads the same SERIES node_exporter-like series × ROUNDS scrapes 15 s
# apart (default 10,000 × 240 = one hour, ending 5 minutes ago) into both
# through remote write (`raftwatch-bench ingest`, oldest first, 4 requests
# of 1,000 series in flight), then runs `raftwatch-bench suite` (rate, topk,
# histogram_quantile range queries over the hour at 15 s step, one raw
# series, count of every series; QUERIES timed runs each after one untimed)
# against Prometheus and against raftwatch at both consistencies, one after
# another on the same machine, and prints one table. The JSON reports stay
# in OUT_DIR (default: a temporary directory, printed).
#
# Everything here runs on loopback and stops itself; every process it
# starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

SERIES="${SERIES:-10000}"
ROUNDS="${ROUNDS:-240}"
QUERIES="${QUERIES:-20}"
PROMETHEUS="${PROMETHEUS:-/usr/bin/prometheus}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/raftwatch-target}"

[ -x "$PROMETHEUS" ] || { echo "no $PROMETHEUS: apt-get install -y prometheus" >&2; exit 2; }
# BIN_DIR: use raftwatch and raftwatch-bench from there instead of
# building them (release) first.
if [ -n "${BIN_DIR:-}" ]; then
  BIN="$BIN_DIR"
else
  cargo build -q --release --bin raftwatch --bin raftwatch-bench
  BIN="$CARGO_TARGET_DIR/release"
fi

work=$(mktemp -d /tmp/raftwatch-compare.XXXXXX)
OUT_DIR="${OUT_DIR:-$work/reports}"
mkdir -p "$OUT_DIR"
pgids=()
cleanup() {
  for g in "${pgids[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for g in "${pgids[@]}"; do kill -0 -- "-$g" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for g in "${pgids[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
  rm -rf "$work/raftwatch-data" "$work/prometheus-data"
  echo "reports and logs: $work" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Seven free consecutive ports: raftwatch's six, then Prometheus'.
BASE=$(python3 - <<'EOF'
import socket
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); base = s.getsockname()[1]; s.close()
    if base + 7 >= 65536:
        continue
    socks = []
    try:
        for i in range(7):
            t = socket.socket(); socks.append(t); t.bind(("127.0.0.1", base + i))
        print(base); break
    except OSError:
        pass
    finally:
        for t in socks: t.close()
EOF
)
RW_HTTP="127.0.0.1:$((BASE + 1))"
PROM="127.0.0.1:$((BASE + 6))"

# setsid: each in its own process group, stopped as one by cleanup.
setsid "$BIN/raftwatch" dev --data-dir "$work/raftwatch-data" --base-port "$BASE" \
  >"$work/raftwatch.out" 2>"$work/raftwatch.log" </dev/null &
pgids+=($!)
cat >"$work/prometheus.yml" <<EOF
# Nothing to scrape: Prometheus holds only what the bench writes.
global:
  scrape_interval: 15s
EOF
setsid "$PROMETHEUS" --config.file="$work/prometheus.yml" \
  --storage.tsdb.path="$work/prometheus-data" --web.listen-address="$PROM" \
  --web.enable-remote-write-receiver >"$work/prometheus.log" 2>&1 </dev/null &
pgids+=($!)

for _ in $(seq 360); do
  grep -qx ready "$work/raftwatch.out" 2>/dev/null && break
  sleep 0.5
done
grep -qx ready "$work/raftwatch.out" || { echo "raftwatch dev not ready; see $work/raftwatch.log" >&2; exit 2; }
for _ in $(seq 120); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen('http://$PROM/-/ready', timeout=2)" 2>/dev/null && break
  sleep 0.5
done

# One hour (by default) ending 5 minutes ago, on 15 s boundaries.
START_MS=$(( ($(date +%s) - 300 - ROUNDS * 15) / 15 * 15 * 1000 ))
END_MS=$(( START_MS + ROUNDS * 15000 ))
echo "loading $SERIES series × $ROUNDS rounds, [$START_MS, $END_MS) ms" >&2

load() { # name url
  "$BIN/raftwatch-bench" ingest --target "$2" --series "$SERIES" --rounds "$ROUNDS" \
    --start-ms "$START_MS" --concurrency 4 --batch-series 1000 --retries 5 \
    >"$OUT_DIR/ingest-$1.json" 2>"$work/ingest-$1.log"
}
load prometheus "http://$PROM/api/v1/write"
load raftwatch "http://$RW_HTTP/api/v1/write"

suite() { # name url consistency [extra flags]
  "$BIN/raftwatch-bench" suite --target "$2" --end-ms "$END_MS" --queries "$QUERIES" \
    --consistency "$3" "${@:4}" >"$OUT_DIR/suite-$1.json" 2>"$work/suite-$1.log"
}
suite prometheus "http://$PROM" linearizable
suite raftwatch-linearizable "http://$RW_HTTP" linearizable
suite raftwatch-stale "http://$RW_HTTP" stale
# The same at linearizable with raw samples shipped to the querying node:
# what push-down gains.
suite raftwatch-no-pushdown "http://$RW_HTTP" linearizable --no-pushdown

python3 - "$OUT_DIR" "$SERIES" "$ROUNDS" "$QUERIES" <<'EOF'
import json, sys
out, series, rounds, queries = sys.argv[1:]
def load(name):
    with open(f"{out}/{name}.json") as f:
        return json.load(f)
print(f"\n{series} series × {rounds} rounds (15 s apart) loaded into each by remote write; "
      f"{queries} timed runs per query; p50 / p99 ms\n")
print("| load (remote write) | samples/s | request p50 / p99 ms | server CPU s per M samples | errors |")
print("|---|---|---|---|---|")
for name in ("prometheus", "raftwatch"):
    r = load(f"ingest-{name}")
    cpu = r.get("cpu_s_per_million_samples")
    print(f"| {name} | {r['samples_per_sec']:,.0f} | {r['p50_ms']:.0f} / {r['p99_ms']:.0f} | "
          f"{'-' if cpu is None else f'{cpu:.1f}'} | {r['errors'] or 0} |")
cols = [("prometheus", "Prometheus 2.42"), ("raftwatch-linearizable", "raftwatch linearizable"),
        ("raftwatch-stale", "raftwatch stale"),
        ("raftwatch-no-pushdown", "raftwatch linearizable, no push-down")]
suites = {c: load(f"suite-{c}") for c, _ in cols}
print("\n| query | " + " | ".join(t for _, t in cols) + " | series (P / R) |")
print("|---|" + "---|" * (len(cols) + 1))
for i, q in enumerate(suites["prometheus"]["queries"]):
    cells = []
    for c, _ in cols:
        r = suites[c]["queries"][i]
        if r["errors"]:
            kind, n = next(iter(r["errors"].items()))
            cells.append(f"{n} × {kind}")
        else:
            cells.append(f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}")
    rw = suites["raftwatch-linearizable"]["queries"][i]
    print(f"| `{q['name']}` | " + " | ".join(cells) + f" | {q['series']} / {rw['series']} |")
print()
for c, _ in cols:
    for r in suites[c]["queries"]:
        for kind, example in r["error_examples"].items():
            print(f"{c} {r['name']}: {kind}: {example}")
EOF
