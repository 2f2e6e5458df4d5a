#!/usr/bin/env bash
# Concurrency (docs/leases.md): 16 sessions at once against the same
# run and environment end with exactly one active lease; 16 concurrent
# releases transition each lease exactly once; 16 concurrent
# ensure_local_environment calls create one row.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/lib/tap.sh"
. "$ROOT/test/lib/seeded_db.sh"

N=16
DB=pcr_concurrency
OUT=$PCR_WORK/concurrency
mkdir -p "$OUT"
seeded_db "$DB" || exit 1


# run N copies of SQL at the same instant: all wait on an advisory lock held
# by a gate session, which is cancelled once all N are queued behind it
storm() {  # storm <name> <sql with %i for the worker index>
  local name=$1 sql=$2 i
  psql -XAtq -c "SELECT pg_advisory_lock(4242)" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
  local gate=$!
  _end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do
    [ "$(psql -XAtq -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted")" = 1 ] && break
    sleep 0.1
  done
  for i in $(seq 1 "$N"); do
    psql -XAtq -v VERBOSITY=verbose -c "SELECT pg_advisory_lock_shared(4242)" -c "${sql//%i/$i}" >"$OUT/$name.$i.out" 2>"$OUT/$name.$i.err" &
  done
  QUEUED=0
  _end=$((SECONDS + $(wait_secs 60))); while [ "$SECONDS" -le "$_end" ]; do
    QUEUED=$(psql -XAtq -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted")
    [ "$QUEUED" = "$N" ] && break
    sleep 0.1
  done
  psql -XAtq -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' AND pid <> pg_backend_pid()" >/dev/null
  wait
  tap_is "$QUEUED" "$N" "$name: all $N sessions were queued at the gate before it opened"
}
errors() { cat "$OUT/$1".*.err | grep -v '^$' | sort | uniq -c; }
results() { cat "$OUT/$1".*.out | grep -v '^$'; }

# 1. the same run and environment, local driver
storm acquire_local "SELECT id FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '$R1')"
tap_is "$(errors acquire_local)" "" "16 concurrent local acquires raise no error"
tap_is "$(results acquire_local | sort -u | wc -l)" 1 "16 concurrent local acquires all return the same lease"
tap_is "$(results acquire_local | wc -l)" "$N" "every local acquirer got a lease back"
tap_is "$(psql -XAtq -c "SELECT count(*) FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R1' AND environment_id = '$E_LOCAL' AND status = 'active'")" 1 \
  "exactly one active local lease exists"

# 2. the same run and environment, fake sandbox (each driver call would mint a new provider lease id)
storm acquire_fake "SELECT provider_lease_id FROM paperclip.acquire_run_lease('$C1', '$E_FAKE', '$R1')"
tap_is "$(errors acquire_fake)" "" "16 concurrent fake acquires raise no error"
tap_is "$(results acquire_fake | sort -u | wc -l)" 1 "16 concurrent fake acquires all return the same sandbox"
tap_is "$(psql -XAtq -c "SELECT count(*) FROM paperclip.environment_leases WHERE environment_id = '$E_FAKE'")" 1 \
  "exactly one fake lease row was written"

# 3. sixteen different runs race for one reusable sandbox: one wins, the others get 55P03
psql -XAtq -c "INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id)
               SELECT ('00000000-0000-0000-0000-0000000010' || lpad(to_hex(i), 2, '0'))::uuid, '$C1', '00000000-0000-0000-0000-0000000000a1'
                 FROM generate_series(1, $N) i" >/dev/null
storm acquire_reuse "SELECT 'won' FROM paperclip.acquire_run_lease('$C1', '$E_REUSE', ('00000000-0000-0000-0000-0000000010' || lpad(to_hex(%i), 2, '0'))::uuid)"
tap_is "$(results acquire_reuse | grep -c won)" 1 "exactly one of 16 runs acquires the reusable sandbox"
tap_is "$(cat "$OUT"/acquire_reuse.*.err | grep -c 'ERROR:  55P03: environment "fake reuse" is held by heartbeat run')" $((N - 1)) "the 15 others fail with 55P03"
tap_is "$(cat "$OUT"/acquire_reuse.*.err | grep '^ERROR' | grep -vc '55P03')" 0 "no other error is raised"
tap_is "$(psql -XAtq -c "SELECT count(*) FROM paperclip.environment_leases WHERE environment_id = '$E_REUSE' AND status = 'active'")" 1 \
  "exactly one active lease holds the reusable sandbox"

# 4. sixteen concurrent releases of the same run: each lease transitions once
tap_is "$(psql -XAtq -c "SELECT count(*) FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R1' AND status = 'active'")" 2 \
  "run 1 holds two active leases before the release storm"
storm release "SELECT id FROM paperclip.release_run_leases('$R1')"
tap_is "$(errors release)" "" "16 concurrent releases raise no error"
tap_is "$(results release | wc -l)" 2 "the 16 releases returned two rows in all"
tap_is "$(results release | sort -u | wc -l)" 2 "each lease was returned by exactly one release"
tap_is "$(psql -XAtq -c "SELECT count(*) FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R1' AND status = 'active'")" 0 \
  "no active lease of run 1 remains"

# 5. sixteen concurrent ensure_local_environment calls for a company without one
psql -XAtq -c "INSERT INTO paperclip.companies (id, name) VALUES ('00000000-0000-0000-0000-0000000000c3', 'Company Three')" >/dev/null
storm ensure "SELECT id FROM paperclip.ensure_local_environment('00000000-0000-0000-0000-0000000000c3')"
tap_is "$(errors ensure)" "" "16 concurrent ensure_local_environment calls raise no error"
tap_is "$(results ensure | sort -u | wc -l)" 1 "they all return the same environment"
tap_is "$(psql -XAtq -c "SELECT count(*) FROM paperclip.environments WHERE company_id = '00000000-0000-0000-0000-0000000000c3'")" 1 \
  "exactly one local environment was created"

# 6. the same storms through the query path: a role under row-level security
agent_role
storm agent_acquire "$AS_AGENT
SELECT id FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '$R2')"
tap_is "$(errors agent_acquire)" "" "16 concurrent acquires under row-level security raise no error"
tap_is "$(results agent_acquire | sort -u | wc -l)" 1 "they all return the same lease"
tap_is "$(psql -XAtq -c "SELECT count(*) FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R2' AND status = 'active'")" 1 \
  "exactly one active lease exists"
storm agent_release "$AS_AGENT
SELECT id FROM paperclip.release_run_leases('$R2')"
tap_is "$(errors agent_release)" "" "16 concurrent releases under row-level security raise no error"
tap_is "$(results agent_release | wc -l)" 1 "16 concurrent releases under row-level security return the lease once"

# 7. a run finishing while an acquire is in flight: the status change waits
#    for the acquire (the run row is locked FOR SHARE), then its trigger
#    releases the new lease — through both paths (owner, agent under RLS).
#    No clock is involved: two acquires are held open behind an advisory lock
#    the test holds, the test sees the UPDATE waiting on a lock, then opens it.
#    Sessions are told apart by application_name.
waiting() {  # waiting <application_name prefix>: how many such sessions wait on a lock
  psql -XAtq -c "SELECT count(*) FROM pg_stat_activity
                  WHERE application_name LIKE '$1%' AND wait_event_type = 'Lock'"
}
wait_for_waiting() {  # wait_for_waiting <prefix> <count>: up to 60 s
  _end=$((SECONDS + $(wait_secs 60))); while [ "$SECONDS" -le "$_end" ]; do
    [ "$(waiting "$1")" = "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
for who in owner agent; do
  R=$R3
  [ "$who" = agent ] && R=$R4
  prefix=""
  [ "$who" = agent ] && prefix=$AS_AGENT
  : >"$OUT/race_$who.err"
  PGAPPNAME=race_gate psql -XAtq -c "SELECT pg_advisory_lock(4343)" -c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
  gate=$!
  _end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do
    [ "$(psql -XAtq -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4343 AND granted")" = 1 ] && break
    sleep 0.1
  done
  for i in 1 2; do
    PGAPPNAME=race_acquire_$who psql -XAtq -c "BEGIN" -c "$prefix SELECT 1 FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '$R')" \
         -c "SELECT pg_advisory_xact_lock_shared(4343)" -c "COMMIT" >/dev/null 2>>"$OUT/race_$who.err" &
  done
  # both acquires are in flight: one holds the new lease behind the gate, the other waits for it or for the gate
  wait_for_waiting "race_acquire_$who" 2
  tap_ok $? "$who: two acquires of the run are in flight, held open behind the gate"
  PGAPPNAME=race_update_$who psql -XAtq -c "UPDATE paperclip.heartbeat_runs SET status = 'succeeded' WHERE id = '$R'" \
       >/dev/null 2>>"$OUT/race_$who.err" &
  update=$!
  wait_for_waiting "race_update_$who" 1
  tap_ok $? "$who: the run's status change waits for the in-flight acquire (on a row lock)"
  psql -XAtq -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'race_gate'" >/dev/null
  wait $gate
  wait $update
  tap_is "$?" 0 "$who: once the acquire commits, the status change goes through"
  wait
  tap_is "$(cat "$OUT/race_$who.err")" "" "$who: neither the acquires nor the status change raised an error"
  tap_is "$(psql -XAtq -c "SELECT count(*) FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R' AND status = 'active'")" 0 \
    "$who: no active lease is left on the finished run"
  tap_is "$(psql -XAtq -c "SELECT count(*) FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R' AND status = 'released'")" 1 \
    "$who: the acquired lease was released by the run's trigger"
done

psql -XAtq -d postgres -c "DROP DATABASE $DB" >/dev/null
tap_done
