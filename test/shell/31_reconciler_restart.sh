#!/usr/bin/env bash
# What a restart leaves behind, on a cluster of its own with a one-hour
# interval (so only the start-up sweep and wake-ups act): pg_ctl restart -m
# immediate, pg_terminate_backend on the worker, DROP/CREATE EXTENSION while
# it runs, DROP DATABASE of another database and of its own.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/recon.sh

recon_cluster recon31 "paperclip.database = 'pcr'" "paperclip.reconcile_interval = '1h'"

C1=00000000-0000-0000-0000-0000000000c1
A1=00000000-0000-0000-0000-0000000000a1
E_LOCAL=00000000-0000-0000-0000-0000000000e1
E_FAKE=00000000-0000-0000-0000-0000000000e2
R1=00000000-0000-0000-0000-000000000201
R2=00000000-0000-0000-0000-000000000202
R3=00000000-0000-0000-0000-000000000203
R4=00000000-0000-0000-0000-000000000204

sql "CREATE DATABASE pcr" postgres
sql "CREATE EXTENSION paperclip_runtime" >/dev/null
sql_file test/fixtures/seed.sql >/dev/null
sql "INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status) VALUES
       ('$R1', '$C1', '$A1', 'running'), ('$R2', '$C1', '$A1', 'running'),
       ('$R3', '$C1', '$A1', 'running'), ('$R4', '$C1', '$A1', 'running')"
for r in $R1 $R2 $R3 $R4; do
  sql "SELECT paperclip.acquire_run_lease('$C1', '$E_FAKE', '$r')" >/dev/null
done
ok "the reconciler is connected and has made its start-up sweep" \
  wait_until 20 "SELECT passes >= 1 AND state = 'idle' FROM paperclip.reconciler_status()"

# runs that finish without their trigger: nothing releases their leases yet
finish_behind_trigger() { # run status error_code
  sql_file - <<SQL
ALTER TABLE paperclip.heartbeat_runs DISABLE TRIGGER heartbeat_runs_lease_lifecycle;
UPDATE paperclip.heartbeat_runs SET status = '$2', error_code = NULLIF('$3', '') WHERE id = '$1';
ALTER TABLE paperclip.heartbeat_runs ENABLE TRIGGER heartbeat_runs_lease_lifecycle;
SQL
}
finish_behind_trigger "$R1" succeeded ""
finish_behind_trigger "$R2" timed_out deadline
BEFORE=$(sql "SELECT updated_at FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R3'")
sleep 1
is "$(sql "SELECT count(*) FROM paperclip.environment_leases WHERE status = 'active'")" 4 \
  "before the restart, the leases of runs that finished behind the trigger are still active"

# ---------------------------------------------------------- immediate restart
pcr_cluster_restart "$RDATA" immediate
ok "after pg_ctl restart -m immediate, the start-up sweep ran" \
  wait_until 20 "SELECT passes >= 1 FROM paperclip.reconciler_status()"
is "$(sql "SELECT concat_ws('|', status, failure_reason) FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R1'")" \
  released "the lease of the run that succeeded is released"
is "$(sql "SELECT concat_ws('|', status, failure_reason) FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R2'")" \
  "failed|deadline" "the lease of the run that timed out failed, with the run's error code"
is "$(sql "SELECT status = 'active' AND updated_at = '$BEFORE' FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R3'")" t \
  "the lease of a running run is untouched"
ok "the server log reports the sweep" \
  grep -Eq "paperclip reconciler: start-up sweep expired 0, released 2 leases" "$RDATA/server.log"

# ---------------------------------------------------------- pg_terminate_backend
finish_behind_trigger "$R3" cancelled ""
PID=$(reconciler_pid)
sleep 0.5
is "$(sql "SELECT status FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R3'")" active \
  "a run cancelled behind the trigger keeps its lease while the worker sleeps"
is "$(sql "SELECT pg_terminate_backend($PID)" postgres)" t "pg_terminate_backend on the reconciler"
ok "the reconciler comes back as a new process" \
  wait_until 15 "SELECT count(*) = 1 FROM pg_stat_activity
                  WHERE backend_type = 'paperclip reconciler' AND pid <> $PID"
ok "…and keeps working: its sweep releases the cancelled run's lease" \
  wait_until 10 "SELECT status = 'released' FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R3'"
is "$(sql "SELECT pid = $(reconciler_pid) FROM paperclip.reconciler_status()")" t \
  "the status names the new process"

# ---------------------------------------------------------- DROP / CREATE EXTENSION
pcr_setting "$RPORT" paperclip.reconcile_interval 100ms || exit 1
pcr_reconciler_passes "$RPORT" "$RDB" 2 || exit 1   # passes are 100 ms apart from now on
PID=$(reconciler_pid)
# release R4's lease first: DROP EXTENSION drops the tables whatever they hold
sql "SELECT count(*) FROM paperclip.release_run_leases('$R4')" >/dev/null
sql "CREATE EXTENSION paperclip_runtime" postgres
sql "DROP EXTENSION paperclip_runtime"
RDB=postgres ok "after DROP EXTENSION the reconciler waits for the extension" \
  wait_until 5 "SELECT state = 'waiting for extension' FROM paperclip.reconciler_status()"
ERRORS=$(RDB=postgres sql "SELECT total_errors FROM paperclip.reconciler_status()")
for i in 1 2 3 4 5 6; do
  sql "CREATE EXTENSION paperclip_runtime"
  sleep 0.15
  sql "DROP EXTENSION paperclip_runtime"
done
sql "BEGIN; CREATE EXTENSION paperclip_runtime; SELECT pg_sleep(0.5); ROLLBACK" >/dev/null
sleep 0.3
is "$(RDB=postgres sql "SELECT state || '|' || (total_errors = $ERRORS) FROM paperclip.reconciler_status()")" \
  "waiting for extension|true" \
  "while the extension is created and dropped over and over, or created and rolled back, no pass fails"
is "$(reconciler_pid)" "$PID" "…and the worker is the same process"
sql "CREATE EXTENSION paperclip_runtime"
ok "after CREATE EXTENSION again it reconciles" \
  wait_until 5 "SELECT state IN ('idle', 'reconciling') FROM paperclip.reconciler_status()"
sql_file test/fixtures/seed.sql >/dev/null
sql "UPDATE paperclip.environments SET config = '{\"leaseTtlSeconds\": 1}' WHERE id = '$E_LOCAL'"
L=$(sql "SELECT id FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '00000000-0000-0000-0000-0000000000f1')")
ok "…and expires leases of the new extension's tables" \
  wait_until 10 "SELECT status = 'expired' FROM paperclip.environment_leases WHERE id = '$L'"

# ---------------------------------------------------------- DROP DATABASE
# with a one-hour interval the worker sleeps on its latch between passes: a
# worker that did not serve the barrier of DROP DATABASE would hold it up until
# its next pass, an hour away.  Served, it ends at once; 60 s only bounds the
# wait on a loaded machine.
pcr_setting "$RPORT" paperclip.reconcile_interval 1h || exit 1
pcr_reconciler_passes "$RPORT" "$RDB" 2 || exit 1   # the next pass is an hour away
sql "CREATE DATABASE scratch" postgres
START=$SECONDS
timeout 60 "$PCR_PGBIN/psql" -X -qAt -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$RPORT" -U postgres -d postgres \
  -c "DROP DATABASE scratch"
ok "DROP DATABASE of another database is not held up by the reconciler sleeping an hour (barrier served, $((SECONDS - START)) s)" \
  test "$(sql "SELECT count(*) FROM pg_database WHERE datname = 'scratch'" postgres)" = 0
pcr_setting "$RPORT" paperclip.reconcile_interval 100ms || exit 1
pcr_reconciler_passes "$RPORT" "$RDB" 2 || exit 1
PID=$(reconciler_pid)
sql "DROP DATABASE pcr WITH (FORCE)" postgres
RDB=postgres ok "DROP DATABASE WITH (FORCE) of its own database ends the worker" \
  wait_until 10 "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $PID"
sql "CREATE DATABASE pcr" postgres
sql "CREATE EXTENSION paperclip_runtime" >/dev/null
sql_file test/fixtures/seed.sql >/dev/null
sql "UPDATE paperclip.environments SET config = '{\"leaseTtlSeconds\": 1}' WHERE id = '$E_LOCAL'"
L=$(sql "SELECT id FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '00000000-0000-0000-0000-0000000000f1')")
ok "once the database is back, the reconciler reconnects and expires its leases" \
  wait_until 40 "SELECT status = 'expired' FROM paperclip.environment_leases WHERE id = '$L'"

ok "no PANIC, crash or SPI statement text in the server log" \
  bash -c "! grep -Eq 'PANIC|terminated by signal|SQL statement' '$RDATA/server.log'"

done_testing
