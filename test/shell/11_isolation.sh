#!/usr/bin/env bash
# Isolation and races the concurrency storms do not reach:
# - REPEATABLE READ: two runs racing for one reusable sandbox never both hold it;
# - an acquire that waits on its run's row lock while the run's lease is
#   released meanwhile gets a fresh lease, not an internal error;
# - a config refused for carrying a private key does not reach the server log.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/lib/tap.sh"
. "$ROOT/test/lib/seeded_db.sh"

DB=pcr_isolation
OUT=$PCR_WORK/isolation
mkdir -p "$OUT"
seeded_db "$DB" || exit 1

active() { psql -XAtq -c "SELECT count(*) FROM paperclip.environment_leases WHERE status = 'active' AND $1"; }

# 1. REPEATABLE READ: B's snapshot predates A's commit
for who in owner agent; do
  prefix=""
  if [ "$who" = agent ]; then
    agent_role
    prefix=$AS_AGENT
    psql -XAtq -c "SELECT count(*) FROM paperclip.release_run_leases('$R1')" >/dev/null
  fi
  psql -XAtq -v VERBOSITY=verbose >"$OUT/rr_$who.out" 2>"$OUT/rr_$who.err" <<SQL &
BEGIN ISOLATION LEVEL REPEATABLE READ;
$prefix
SELECT count(*) FROM paperclip.environments;   -- takes the snapshot
SELECT pg_sleep(1.5);
SELECT 'B won' FROM paperclip.acquire_run_lease('$C1', '$E_REUSE', '$R2');
COMMIT;
SQL
  b=$!
  sleep 0.5
  psql -XAtq -c "$prefix SELECT 'A won' FROM paperclip.acquire_run_lease('$C1', '$E_REUSE', '$R1')" >"$OUT/rr_a_$who.out" 2>&1
  wait $b
  tap_is "$(cat "$OUT/rr_a_$who.out")" "A won" "$who, repeatable read: the first run acquires the reusable sandbox"
  tap_is "$(active "environment_id = '$E_REUSE'")" 1 "$who, repeatable read: the second run does not also hold it"
  tap_ok "$(grep -qE 'ERROR:  (40001|55P03)' "$OUT/rr_$who.err"; echo $?)" \
    "$who, repeatable read: the second run gets a serialization failure or 55P03"
done

# 2. acquire blocked on the run row while the run's lease is released
psql -XAtq -c "SELECT count(*) FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '$R3')" >/dev/null
psql -XAtq <<SQL >/dev/null 2>&1 &
BEGIN;
SELECT 1 FROM paperclip.heartbeat_runs WHERE id = '$R3' FOR UPDATE;
SELECT pg_sleep(1.5);
SELECT count(*) FROM paperclip.release_run_leases('$R3');
COMMIT;
SQL
x=$!
sleep 0.5
psql -XAtq -v VERBOSITY=verbose -c "SELECT status FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '$R3')" >"$OUT/race.out" 2>"$OUT/race.err"
wait $x
tap_is "$(cat "$OUT/race.err")" "" "an acquire that waited while the run's lease was released raises nothing"
tap_is "$(cat "$OUT/race.out")" "active" "it returns a fresh active lease"
tap_is "$(active "heartbeat_run_id = '$R3'")" 1 "the run holds exactly one active lease"

# 3. a private key in a refused config stays out of the server log
psql -XAtq -c "INSERT INTO paperclip.environments (company_id, name, driver, config) VALUES ('$C1', 'leaky', 'ssh',
  '{\"host\": \"h\", \"username\": \"u\", \"remoteWorkspacePath\": \"/w\", \"privateKey\": \"CANARY-KEY-7f3a9\"}')" >/dev/null 2>"$OUT/leak.err"
tap_ok "$(grep -q '22023\|privateKey' "$OUT/leak.err"; echo $?)" "the config with a private key is refused"
sleep 0.3
tap_ok "$(grep -q 'CANARY-KEY-7f3a9' "$PCR_DATA/server.log"; [ $? -ne 0 ]; echo $?)" "the server log does not contain the key"

psql -XAtq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE $DB WITH (FORCE)" >/dev/null
tap_done
