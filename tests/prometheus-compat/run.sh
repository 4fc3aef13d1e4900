#!/usr/bin/env bash
# raftwatch against a real Prometheus (issue 7): see compat.py beside this
# file for what it checks. Needs Debian's prometheus package (2.42:
# /usr/bin/prometheus and /usr/bin/promtool) and python3.
#
#   tests/prometheus-compat/run.sh            # builds what it needs first
#   COMPAT_WAIT_S=120 tests/prometheus-compat/run.sh
#
# The raftwatch binaries come from `cargo build --profile test` (the build
# `cargo nextest run --workspace` leaves in $CARGO_TARGET_DIR/debug, so in
# CI after the tests this is a no-op). The comparisons through raftwatch's
# Prometheus query API run when the node's router declares /api/v1/query;
# until then they run against Prometheus only and say so (COMPAT_QUERY_API
# =require|skip overrides the detection).
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/raftwatch-target}"
cargo build -q --profile test --bin raftwatch --bin raftwatchctl
BIN="$CARGO_TARGET_DIR/debug"

if [ -z "${COMPAT_QUERY_API:-}" ]; then
  if grep -rqF '"/api/v1/query"' crates/raftwatch/src; then
    COMPAT_QUERY_API=require
  else
    COMPAT_QUERY_API=skip
  fi
fi

exec python3 tests/prometheus-compat/compat.py \
  --raftwatch "$BIN/raftwatch" \
  --raftwatchctl "$BIN/raftwatchctl" \
  --wait-s "${COMPAT_WAIT_S:-90}" \
  --query-api "$COMPAT_QUERY_API"
