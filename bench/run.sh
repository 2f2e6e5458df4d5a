#!/usr/bin/env bash
# bench/run.sh — benchmarks: each suite measures our path and its baseline in
# the same run, on the same throw-away cluster, and prints ratios.
#
#   bash bench/run.sh [suite ...]        (default: every bench/suites/*.sh)
#   BENCH_SECONDS=10 per pgbench run (default 10)
#   BENCH_DIR=/tmp where the throw-away cluster goes (the scale suite needs
#   several GB there: see bench/suites/scale.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. test/lib/cluster.sh

scripts/install-deps.sh --test valgrind bc curl
pcr_use_pgbin
scripts/build-install.sh || exit 1

WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/pcr-bench.XXXXXX")
chmod 755 "$WORK"
DATA=$WORK/data
PORT=$(pcr_free_port)
cleanup() { [ -n "${PCR_KEEP:-}" ] && return; pcr_cluster_stop "$DATA" fast; rm -rf "$WORK"; }
trap cleanup EXIT

# fsync stays on here (unlike the tests): both paths pay the same commit cost
# pg_stat_statements: shared buffers per statement, deterministic where throughput is noisy
pcr_cluster_init "$DATA" "$PORT" "paperclip.database = 'pcr_bench'" "fsync = on" "synchronous_commit = on" \
  "shared_buffers = 256MB" "max_connections = 100" "max_wal_size = 4GB" \
  "shared_preload_libraries = 'paperclip_runtime, paperclip_bwrap, pg_stat_statements'" || exit 1
pcr_cluster_start "$DATA" || exit 1
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=pcr_bench BENCH_SECONDS=${BENCH_SECONDS:-10} BENCH_WORK=$WORK PCR_DATA=$DATA
psql -XAtq -d postgres -c "CREATE DATABASE pcr_bench" >/dev/null
psql -XAtq -c "CREATE EXTENSION paperclip_runtime" -c "CREATE EXTENSION pg_stat_statements" >/dev/null

if [ $# -gt 0 ]; then
  SUITES=()
  for s in "$@"; do SUITES+=("bench/suites/$s.sh"); done
else
  SUITES=(bench/suites/*.sh)
fi

: >"$WORK/ratios"
for suite in "${SUITES[@]}"; do
  name=$(basename "$suite" .sh)
  echo "== $name"
  bash "$suite" 2>&1 | tee "$WORK/$name.log"
  grep '^RATIO' "$WORK/$name.log" >>"$WORK/ratios"
done
echo
echo "== ratios (ours / baseline; higher is better unless the label says otherwise)"
cat "$WORK/ratios"
