#!/usr/bin/env bash
# test/run.sh — the whole test suite (README's test command; .ci/run calls it)
#
# Installs what it needs (Debian packages: scripts/install-deps.sh --test),
# builds with -Wall -Wextra -Werror (always: scripts/build-install.sh),
# installs the extension, starts a throw-away cluster on a free loopback port
# with the extension preloaded, runs the pgTAP files through pg_regress and the
# shell tests of test/shell/, stops everything, and ends with a line
# "N passed, N failed".
#
#   PCR_DESTDIR=DIR  install into (and run) a private copy of PostgreSQL under DIR
#   PCR_TESTS=REGEX  run only the tests whose name (e.g. 30_reconciler_passes) matches
#   PCR_KEEP=1       keep the scratch directory (cluster, logs) under /tmp/pcr-test.*
#   PCR_VALGRIND=1   run every server under valgrind memcheck; errors in our code fail (slow)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=test/lib/cluster.sh
. test/lib/cluster.sh

scripts/install-deps.sh --test ${PCR_VALGRIND:+valgrind} || { echo "0 passed, 1 failed"; exit 1; }
pcr_use_pgbin

echo "== build"
scripts/build-install.sh || { echo "0 passed, 1 failed"; exit 1; }

WORK=$(mktemp -d /tmp/pcr-test.XXXXXX)
chmod 755 "$WORK"
export PCR_WORK=$WORK
PORT=$(pcr_free_port)
DATA=$WORK/data
cleanup() {
  pcr_cluster_stop "$DATA" immediate
  [ -n "${PCR_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# the master key of company secrets, made by the explicit key command (never at start-up)
PCR_KEYFILE=$WORK/master.key
scripts/pcr-keygen "$PCR_KEYFILE" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
export PCR_KEYFILE
pcr_cluster_init "$DATA" "$PORT" "paperclip.database = 'pcr_regress'" \
  "paperclip.master_key_file = '$PCR_KEYFILE'" \
  "paperclip.check_lookup_paths = on" || { echo "0 passed, 1 failed"; exit 1; }
pcr_cluster_start "$DATA" || { echo "0 passed, 1 failed"; exit 1; }
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PCR_DATA=$DATA

echo "== pgTAP (pg_regress, through make installcheck)"
# PCR_TESTS=REGEX runs only the pgTAP files and shell tests whose names match (while iterating)
TESTS=$(cd test/sql && ls ./*.sql | sed 's|^\./||; s|\.sql$||' | sort | grep -E "${PCR_TESTS:-.}")
rm -rf results regression.diffs regression.out
# The reconciler connects to paperclip.database (pcr_regress) as soon as it
# exists, and a connected worker makes DROP DATABASE fail: so the database is
# created here, once, and pg_regress uses it as it is (--use-existing) instead
# of dropping and creating it.  These are the settings pg_regress would give it.
"$PCR_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres >/dev/null <<'SQL' || { echo "0 passed, 1 failed"; exit 1; }
CREATE DATABASE pcr_regress TEMPLATE template0;
ALTER DATABASE pcr_regress SET lc_messages TO 'C';
ALTER DATABASE pcr_regress SET lc_monetary TO 'C';
ALTER DATABASE pcr_regress SET lc_numeric TO 'C';
ALTER DATABASE pcr_regress SET lc_time TO 'C';
ALTER DATABASE pcr_regress SET bytea_output TO 'hex';
ALTER DATABASE pcr_regress SET timezone_abbreviations TO 'Default';
\c pcr_regress
CREATE EXTENSION pgtap;
CREATE EXTENSION paperclip_runtime;
SQL
# make installcheck is PGXS's pg_regress run (Makefile: REGRESS, REGRESS_OPTS);
# here against pcr_regress as it is, on this cluster.  PG15's pg_regress reads
# <inputdir>/expected: test/expected links to ../expected.
: >"$WORK/regress.log"
if [ -n "$TESTS" ]; then
  make -s installcheck CONTRIB_TESTDB=pcr_regress REGRESS="$(echo $TESTS)" \
    EXTRA_REGRESS_OPTS="--use-existing --bindir=$PCR_PGBIN --host=127.0.0.1 --port=$PORT --user=postgres --outputdir=$ROOT" \
    2>&1 | tee "$WORK/regress.log"
fi

passed=0
failed=0
for t in $TESTS; do
  out=results/$t.out
  ok=0; notok=0
  if [ -f "$out" ]; then
    ok=$(grep -cE '^ok [0-9]+' "$out" || true)
    notok=$(grep -cE '^not ok [0-9]+' "$out" || true)
  fi
  if ! grep -qE "^(test)? +$t +\.\.\. ok" "$WORK/regress.log"; then
    [ "$notok" -gt 0 ] || notok=1
    echo "FAILED: $t (see regression.diffs)"
  fi
  passed=$((passed + ok)); failed=$((failed + notok))
done
[ -f regression.diffs ] && head -n 200 regression.diffs

echo "== shell tests"
for t in test/shell/*.sh; do
  [ -e "$t" ] || continue
  name=$(basename "$t" .sh)
  [[ $name =~ ${PCR_TESTS:-.} ]] || continue
  echo "# $name"
  bash "$t" >"$WORK/$name.tap" 2>"$WORK/$name.err"
  rc=$?
  cat "$WORK/$name.tap"
  ok=$(grep -cE '^ok [0-9]+' "$WORK/$name.tap" || true)
  notok=$(grep -cE '^not ok [0-9]+' "$WORK/$name.tap" || true)
  planned=$(grep -oE '^1\.\.[0-9]+' "$WORK/$name.tap" | tail -n 1 | cut -c4-)
  if [ -z "$planned" ] || [ "$planned" -ne $((ok + notok)) ]; then
    echo "not ok - $name: planned ${planned:-no} tests, ran $((ok + notok))"
    notok=$((notok + 1))
  fi
  if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
    notok=1
    echo "not ok - $name exited with status $rc"
    tail -n 30 "$WORK/$name.err"
  fi
  [ "$notok" -eq 0 ] || tail -n 30 "$WORK/$name.err"
  passed=$((passed + ok)); failed=$((failed + notok))
done

if [ -n "${PCR_VALGRIND:-}" ]; then
  echo "== valgrind"
  pcr_valgrind_report "$WORK" || failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
