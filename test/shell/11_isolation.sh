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
wait_file() {  # wait_file PATH: until it exists (at most wait_secs 30)
  local end=$((SECONDS + $(wait_secs 30)))
  while [ ! -e "$1" ] && [ "$SECONDS" -le "$end" ]; do sleep 0.05; done
  [ -e "$1" ]
}
# psql's \! line that waits (at most a minute) for the file $1: /bin/sh has no SECONDS
hold_until() { echo "\\! i=0; while [ ! -e $1 ] && [ \$i -lt 1200 ]; do sleep 0.05; i=\$((i + 1)); done"; }

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
\! touch $OUT/rr_$who.snapshot
$(hold_until "$OUT/rr_$who.committed")
SELECT 'B won' FROM paperclip.acquire_run_lease('$C1', '$E_REUSE', '$R2');
COMMIT;
SQL
  b=$!
  wait_file "$OUT/rr_$who.snapshot"
  psql -XAtq -c "$prefix SELECT 'A won' FROM paperclip.acquire_run_lease('$C1', '$E_REUSE', '$R1')" >"$OUT/rr_a_$who.out" 2>&1
  touch "$OUT/rr_$who.committed"
  wait $b
  tap_is "$(cat "$OUT/rr_a_$who.out")" "A won" "$who, repeatable read: the first run acquires the reusable sandbox"
  tap_is "$(active "environment_id = '$E_REUSE'")" 1 "$who, repeatable read: the second run does not also hold it"
  tap_ok "$(grep -qE 'ERROR:  (40001|55P03)' "$OUT/rr_$who.err"; echo $?)" \
    "$who, repeatable read: the second run gets a serialization failure or 55P03"
done

# 2. acquire blocked on the run row while the run's lease is released
psql -XAtq -c "SELECT count(*) FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '$R3')" >/dev/null
# the holder releases the lease once the acquire waits for its row lock
psql -XAtq <<SQL >/dev/null 2>&1 &
BEGIN;
SELECT 1 FROM paperclip.heartbeat_runs WHERE id = '$R3' FOR UPDATE;
\! touch $OUT/race.locked
DO \$\$ DECLARE until timestamptz := clock_timestamp() + interval '60 s'; BEGIN
  WHILE clock_timestamp() < until AND NOT EXISTS (
          SELECT 1 FROM pg_stat_activity
           WHERE application_name = 'pcr_race_acquire' AND wait_event_type = 'Lock') LOOP
    PERFORM pg_sleep(0.05);
  END LOOP;
END \$\$;
SELECT count(*) FROM paperclip.release_run_leases('$R3');
COMMIT;
SQL
x=$!
wait_file "$OUT/race.locked"
PGAPPNAME=pcr_race_acquire psql -XAtq -v VERBOSITY=verbose -c "SELECT status FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '$R3')" >"$OUT/race.out" 2>"$OUT/race.err"
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
