#!/usr/bin/env bash
# The reconciler never waits on a tenant's lock: while company C1's agent tries
# to lock a shared table and holds what it still can (its rows, share locks),
# and even while the owner holds an exclusive table lock, company C2's overdue
# lease expires.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/recon.sh

recon_cluster recon34 "paperclip.database = 'pcr'" "paperclip.reconcile_interval = '200ms'"

C1=00000000-0000-0000-0000-0000000000c1
C2=00000000-0000-0000-0000-0000000000c2
R1=00000000-0000-0000-0000-0000000000f1
R9=00000000-0000-0000-0000-0000000000f9
E_REUSE=00000000-0000-0000-0000-0000000000e3
E9=00000000-0000-0000-0000-0000000000e9
OUT=$RDATA.out
mkdir -p "$OUT"

psql_bg() {  # SQL... : a session of its own, in the background
  local args=()
  for c in "$@"; do args+=(-c "$c"); done
  "$PCR_PGBIN/psql" -X -qAt -h 127.0.0.1 -p "$RPORT" -U postgres -d "$RDB" "${args[@]}"
}
session_running() {  # a session runs a statement containing $1
  wait_until 30 "SELECT count(*) >= 1 FROM pg_stat_activity WHERE state = 'active'
                   AND query LIKE '%$1%' AND pid <> pg_backend_pid()"
}
stop_session() {
  sql "SELECT count(pg_cancel_backend(pid)) >= 0 FROM pg_stat_activity
        WHERE query LIKE '%$1%' AND pid <> pg_backend_pid()" >/dev/null
}
overdue_lease_of_c2() {  # an active lease of C2 that expires in 2 s
  sql "INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, provider, expires_at)
       VALUES ('$C2', '$E9', '$R9', 'local', now() + interval '2 seconds') RETURNING id"
}

sql "CREATE DATABASE pcr" postgres
sql "CREATE EXTENSION paperclip_runtime" >/dev/null
sql_file test/fixtures/seed.sql >/dev/null
ok "the reconciler works on the database" \
  wait_until 15 "SELECT state IN ('idle', 'reconciling') AND passes > 0 FROM paperclip.reconciler_status()"
PID=$(reconciler_pid)

# ------------------------------------------------ what a tenant tries, and what it can hold
L1=$(overdue_lease_of_c2)
psql_bg "BEGIN" "SET ROLE pcr_c1_agent" "SET paperclip.company_id = '$C1'" \
  "LOCK TABLE paperclip.heartbeat_runs IN ACCESS EXCLUSIVE MODE" \
  "SELECT pg_sleep(60) /* tenant table lock */" "COMMIT" >"$OUT/lock.out" 2>&1 &
locker=$!
psql_bg "BEGIN" "SET ROLE pcr_c1_agent" "SET paperclip.company_id = '$C1'" \
  "LOCK TABLE paperclip.heartbeat_runs, paperclip.environments, paperclip.environment_leases IN ACCESS SHARE MODE" \
  "SELECT id FROM paperclip.heartbeat_runs FOR UPDATE" \
  "SELECT count(*) FROM paperclip.acquire_run_lease('$C1', '$E_REUSE', '$R1')" \
  "SELECT pg_sleep(60) /* tenant row locks */" "COMMIT" >/dev/null 2>&1 &
holder=$!
ok "company C1's agent holds its rows, share locks and a new lease in an open transaction" \
  session_running "tenant row locks"
ok "meanwhile company C2's lease expires when it is due" \
  wait_until 20 "SELECT status = 'expired' FROM paperclip.environment_leases WHERE id = '$L1'"
stop_session "tenant table lock"
stop_session "tenant row locks"
wait $locker $holder
ok "the agent's LOCK TABLE was refused" grep -q 'permission denied for table heartbeat_runs' "$OUT/lock.out"

# ------------------------------------------------ a table lock the reconciler cannot get
L2=$(overdue_lease_of_c2)
psql_bg "BEGIN" "LOCK TABLE paperclip.heartbeat_runs IN ACCESS EXCLUSIVE MODE" \
  "SELECT pg_sleep(60) /* owner table lock */" "COMMIT" >/dev/null 2>&1 &
owner=$!
ok "the owner holds an exclusive lock on heartbeat_runs" session_running "owner table lock"
ok "C2's next lease still expires: the step that needs the table gives up after its lock_timeout" \
  wait_until 20 "SELECT status = 'expired' FROM paperclip.environment_leases WHERE id = '$L2'"
ok "the skipped step is reported as a lock timeout" \
  wait_until 10 "SELECT last_error LIKE '%release leases of finished runs%lock timeout%' FROM paperclip.reconciler_status()"
stop_session "owner table lock"
wait $owner
is "$(reconciler_pid)" "$PID" "the reconciler is the same process throughout"
P=$(sql "SELECT passes FROM paperclip.reconciler_status()")
ok "once the lock is gone it passes as before" \
  wait_until 10 "SELECT passes > $P + 1 AND last_pass_errors = 0 FROM paperclip.reconciler_status()"

done_testing
