#!/usr/bin/env bash
# The reconciler's passes, on a cluster of its own with a 200 ms interval:
# expiry without any client call, leases of runs that ended or vanished
# behind the triggers' back, pending cleanups with backoff, a bad row that
# does not stop it, and the wake-up at commit.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/recon.sh

recon_cluster recon30 "paperclip.database = 'pcr'" "paperclip.reconcile_interval = '200ms'" \
  "paperclip.cleanup_max_attempts = 3"

C1=00000000-0000-0000-0000-0000000000c1
A1=00000000-0000-0000-0000-0000000000a1
E_LOCAL=00000000-0000-0000-0000-0000000000e1
E_FAKE=00000000-0000-0000-0000-0000000000e2

# ---------------------------------------------------------------- start
# the status function belongs to the extension: ask from another database
sql "CREATE EXTENSION paperclip_runtime" postgres
RDB=postgres ok "while its database does not exist, the worker waits for it" \
  wait_until 15 "SELECT state = 'waiting for database' FROM paperclip.reconciler_status()"
sql "CREATE DATABASE pcr" postgres
ok "the worker connects once its database exists, named in pg_stat_activity" \
  wait_until 15 "SELECT count(*) = 1 FROM pg_stat_activity
                  WHERE backend_type = 'paperclip reconciler'
                    AND application_name = 'paperclip reconciler' AND datname = 'pcr'"
ok "…having waited quietly: no FATAL (database does not exist) in the server log" \
  bash -c "! grep -Eq 'FATAL|does not exist' '$RDATA/server.log'"
RDB=postgres ok "without the extension in its database it waits for it, quietly: no pass, no error" \
  wait_until 5 "SELECT state = 'waiting for extension' AND passes = 0 AND total_errors = 0
                  FROM paperclip.reconciler_status()"

sql "CREATE EXTENSION paperclip_runtime" >/dev/null
sql_file test/fixtures/seed.sql >/dev/null
ok "after CREATE EXTENSION it reconciles: idle after a pass, no error" \
  wait_until 5 "SELECT state IN ('idle', 'reconciling') AND passes > 0 AND total_errors = 0
                  FROM paperclip.reconciler_status()"

# ---------------------------------------------------------------- expiry
sql "UPDATE paperclip.environments SET config = '{\"leaseTtlSeconds\": 1}' WHERE id = '$E_LOCAL'"
L_SHORT=$(sql "SELECT id FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '00000000-0000-0000-0000-0000000000f1')")
L_LONG=$(sql "SELECT id FROM paperclip.acquire_run_lease('$C1', '$E_FAKE', '00000000-0000-0000-0000-0000000000f4')")
is "$(sql "SELECT status FROM paperclip.environment_leases WHERE id = '$L_SHORT'")" active \
  "a lease with a one-second TTL starts active"
ok "with no client call, it becomes expired" \
  wait_until 10 "SELECT status = 'expired' FROM paperclip.environment_leases WHERE id = '$L_SHORT'"
is "$(sql "SELECT released_at IS NOT NULL AND released_at >= expires_at AND failure_reason = 'lease expired'
             AND last_used_at = acquired_at AND cleanup_status IS NULL
             FROM paperclip.environment_leases WHERE id = '$L_SHORT'")" t \
  "the expired lease has released_at after expires_at, a reason, last_used_at untouched, no cleanup"
is "$(sql "SELECT status FROM paperclip.environment_leases WHERE id = '$L_LONG'")" active \
  "a lease with the default TTL stays active"
ok "the status reports the expiry" \
  wait_until 5 "SELECT total_leases_expired = 1 AND last_pass_finished_at > now() - interval '5 seconds'
                  FROM paperclip.reconciler_status()"

# ------------------------------------------- runs ended behind the trigger's back
sql "INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status) VALUES
       ('00000000-0000-0000-0000-000000000101', '$C1', '$A1', 'running'),
       ('00000000-0000-0000-0000-000000000102', '$C1', '$A1', 'running'),
       ('00000000-0000-0000-0000-000000000103', '$C1', '$A1', 'running'),
       ('00000000-0000-0000-0000-000000000104', '$C1', '$A1', 'running'),
       ('00000000-0000-0000-0000-000000000105', '$C1', '$A1', 'running'),
       ('00000000-0000-0000-0000-000000000106', '$C1', '$A1', 'running')"
for r in 101 102 103 104 105; do
  sql "SELECT paperclip.acquire_run_lease('$C1', '$E_FAKE', '00000000-0000-0000-0000-000000000$r')" >/dev/null
done
sql "INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, lease_policy,
                                               provider, metadata, expires_at)
     VALUES ('$C1', '$E_FAKE', '00000000-0000-0000-0000-000000000106', 'retain_on_failure', 'fake',
             '{\"driver\": \"sandbox\", \"provider\": \"fake\"}', now() + interval '1 hour')"
sql_file - <<SQL
ALTER TABLE paperclip.heartbeat_runs DISABLE TRIGGER heartbeat_runs_lease_lifecycle;
UPDATE paperclip.heartbeat_runs SET status = 'failed', error = 'agent crashed'
 WHERE id = '00000000-0000-0000-0000-000000000101';
UPDATE paperclip.heartbeat_runs SET status = 'succeeded'
 WHERE id = '00000000-0000-0000-0000-000000000102';
UPDATE paperclip.heartbeat_runs SET status = 'timed_out', error_code = 'deadline'
 WHERE id = '00000000-0000-0000-0000-000000000106';
ALTER TABLE paperclip.heartbeat_runs ENABLE TRIGGER heartbeat_runs_lease_lifecycle;
-- deleted without the trigger and without the foreign key's action: a dangling run id
SET session_replication_role = replica;
DELETE FROM paperclip.heartbeat_runs WHERE id = '00000000-0000-0000-0000-000000000103';
RESET session_replication_role;
-- deleted without the trigger: the foreign key sets the run id to NULL
ALTER TABLE paperclip.heartbeat_runs DISABLE TRIGGER heartbeat_runs_release_on_delete;
DELETE FROM paperclip.heartbeat_runs WHERE id = '00000000-0000-0000-0000-000000000104';
ALTER TABLE paperclip.heartbeat_runs ENABLE TRIGGER heartbeat_runs_release_on_delete;
SQL
lease_of() {
  sql "SELECT concat_ws('|', status, failure_reason, cleanup_status) FROM paperclip.environment_leases
        WHERE heartbeat_run_id = '00000000-0000-0000-0000-000000000$1'"
}
# the statements above commit one by one while passes run: wait for all five
# runs' leases, not only the first, before looking at them
ok "runs failed, succeeded, timed out or deleted behind the triggers' back end with no active lease" \
  wait_until 20 "SELECT count(*) = 0 FROM paperclip.environment_leases
                  WHERE status = 'active'
                    AND (heartbeat_run_id IS NULL OR heartbeat_run_id IN
                         ('00000000-0000-0000-0000-000000000101', '00000000-0000-0000-0000-000000000102',
                          '00000000-0000-0000-0000-000000000103', '00000000-0000-0000-0000-000000000106'))"
is "$(lease_of 101)" "failed|agent crashed" "…its lease failed with the run's error, as the trigger would"
is "$(lease_of 102)" "released" "a run succeeded behind the trigger's back: its lease released, no reason"
is "$(lease_of 106)" "retained|deadline" \
  "a timed-out run's retain_on_failure lease is retained with the error code, no cleanup"
is "$(sql "SELECT concat_ws('|', status, failure_reason) FROM paperclip.environment_leases
            WHERE heartbeat_run_id = '00000000-0000-0000-0000-000000000103'")" \
  "released|heartbeat run no longer exists" "a run deleted with a dangling reference: its lease released"
is "$(sql "SELECT count(*) FROM paperclip.environment_leases
            WHERE heartbeat_run_id IS NULL AND status = 'released'
              AND failure_reason = 'heartbeat run no longer exists'")" 1 \
  "a run deleted with the trigger disabled (run id set NULL): its lease released"
is "$(lease_of 105)" "active" "the lease of a running run is untouched"

# ---------------------------------------------------------------- cleanup
L_GONE=$(sql "INSERT INTO paperclip.environment_leases (company_id, environment_id, status, released_at,
                provider, provider_lease_id, metadata, cleanup_status)
              VALUES ('$C1', '$E_FAKE', 'released', now(), 'gone', 'sandbox://gone/1',
                      '{\"driver\": \"sandbox\", \"provider\": \"gone\"}', 'pending') RETURNING id")
L_FAKE=$(sql "INSERT INTO paperclip.environment_leases (company_id, environment_id, status, released_at,
                provider, metadata, cleanup_status)
              VALUES ('$C1', '$E_FAKE', 'expired', now(), 'fake',
                      '{\"driver\": \"sandbox\", \"provider\": \"fake\"}', 'pending') RETURNING id")
ok "a pending cleanup of an unregistered provider ends failed" \
  wait_until 15 "SELECT cleanup_status = 'failed' FROM paperclip.environment_leases WHERE id = '$L_GONE'"
is "$(sql "SELECT concat_ws('|', cleanup_attempts, cleanup_error) FROM paperclip.environment_leases WHERE id = '$L_GONE'")" \
  '3|sandbox provider "gone" is not registered in this server' \
  "…after paperclip.cleanup_max_attempts attempts, with a clear cleanup_error"
is "$(sql "SELECT updated_at - released_at >= interval '600 ms' FROM paperclip.environment_leases WHERE id = '$L_GONE'")" t \
  "…with backoff between the attempts (200 ms, then 400 ms)"
is "$(sql "SELECT status FROM paperclip.environment_leases WHERE id = '$L_GONE'")" released \
  "…and the lease itself stays released"
ok "a pending cleanup of a provider without side effects ends success" \
  wait_until 5 "SELECT cleanup_status = 'success' AND cleanup_attempts = 1 AND cleanup_error IS NULL
                  FROM paperclip.environment_leases WHERE id = '$L_FAKE'"
ok "the status counts the cleanups" \
  wait_until 5 "SELECT total_cleanups_succeeded >= 1 AND total_cleanup_attempts_failed >= 3
                       AND total_cleanups_given_up >= 1 FROM paperclip.reconciler_status()"

# ---------------------------------------------------------------- a bad row
PID=$(reconciler_pid)
ERRORS=$(sql "SELECT total_errors FROM paperclip.reconciler_status()")
sql_file - <<'SQL'
CREATE FUNCTION public.refuse_expiry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.heartbeat_run_id = '00000000-0000-0000-0000-0000000000f2' THEN
    RAISE EXCEPTION 'this row refuses to change';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_expiry BEFORE UPDATE ON paperclip.environment_leases
  FOR EACH ROW EXECUTE FUNCTION public.refuse_expiry();
SQL
L_BAD=$(sql "SELECT id FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '00000000-0000-0000-0000-0000000000f2')")
L_GOOD=$(sql "SELECT id FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '00000000-0000-0000-0000-0000000000f3')")
ok "next to a row that raises, another lease still expires" \
  wait_until 10 "SELECT status = 'expired' FROM paperclip.environment_leases WHERE id = '$L_GOOD'"
is "$(sql "SELECT status FROM paperclip.environment_leases WHERE id = '$L_BAD'")" active \
  "the row that raises is skipped, unchanged"
ok "the error is counted and shown, naming the step and the row" \
  wait_until 5 "SELECT total_errors > $ERRORS AND last_error LIKE '%expire leases%$L_BAD%this row refuses to change%'
                  FROM paperclip.reconciler_status()"
is "$(reconciler_pid)" "$PID" "the reconciler is the same process: a bad row did not stop it"
ok "the server log has the skipped row as a warning" \
  grep -q "WARNING:  paperclip reconciler: step \"expire leases\" skipped row $L_BAD" "$RDATA/server.log"
sql "DROP TRIGGER refuse_expiry ON paperclip.environment_leases"
ok "once the row can change, a later pass expires it" \
  wait_until 10 "SELECT status = 'expired' FROM paperclip.environment_leases WHERE id = '$L_BAD'"

# ------------------------------------------------ reload, and wake-up at commit
pcr_setting "$RPORT" paperclip.reconcile_interval 1h || exit 1
# a new session sees it: the worker has the reload pending.  It has applied it
# once its 200 ms passes stop (the pass it had scheduled still runs): wait
# until no pass has started for two seconds, ten of the old intervals (a
# loaded machine may take a while)
passes_settle() {  # passes_settle: wait (up to 60 s) until passes stays put for 2 s
  local deadline=$((SECONDS + 60)) before after
  while [ "$SECONDS" -le "$deadline" ]; do
    before=$(sql "SELECT passes FROM paperclip.reconciler_status()")
    sleep 2
    after=$(sql "SELECT passes FROM paperclip.reconciler_status()")
    [ "$before" = "$after" ] && return 0
  done
  return 1
}
ok "after SIGHUP with a one-hour interval, the timed passes stop" passes_settle
P0=$(sql "SELECT passes FROM paperclip.reconciler_status()")
sleep 1.5
is "$(sql "SELECT passes FROM paperclip.reconciler_status()")" "$P0" \
  "after SIGHUP with a one-hour interval, no timed pass runs"
is "$(reconciler_pid)" "$PID" "the reload kept the same worker"

# (expires_at is the environment's one-second TTL, at most: with the timer at an hour and
# nothing waking the reconciler, the lease stays active until the release below)
sql "INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, provider, metadata)
     VALUES ('$C1', '$E_LOCAL', '00000000-0000-0000-0000-000000000105', 'gone',
             '{\"driver\": \"sandbox\", \"provider\": \"gone\"}')"
sql_file - <<'SQL' >/dev/null
BEGIN;
SELECT * FROM paperclip.release_run_leases('00000000-0000-0000-0000-000000000105');
ROLLBACK;
SQL
sleep 1.5
is "$(sql "SELECT passes FROM paperclip.reconciler_status()")" "$P0" \
  "a release that rolls back does not wake the reconciler"
is "$(sql "SELECT cleanup_status FROM paperclip.release_run_leases('00000000-0000-0000-0000-000000000105')
            WHERE provider = 'gone'")" pending \
  "a release whose driver has side effects leaves cleanup pending"
ok "its commit wakes the reconciler, which attempts the cleanup at once" \
  wait_until 5 "SELECT cleanup_attempts = 1 AND cleanup_status = 'pending'
                  FROM paperclip.environment_leases
                 WHERE heartbeat_run_id = '00000000-0000-0000-0000-000000000105' AND provider = 'gone'"
is "$(sql "SELECT passes = $P0 + 1 FROM paperclip.reconciler_status()")" t "…in exactly one more pass"

# any committed release wakes it; a burst of releases is coalesced into few passes
sql "INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status)
     SELECT ('00000000-0000-0000-0000-0000000002' || lpad(i::text, 2, '0'))::uuid, '$C1', '$A1', 'running'
       FROM generate_series(10, 40) i" >/dev/null
is "$(sql "SELECT count(*) FROM paperclip.heartbeat_runs r, LATERAL paperclip.acquire_run_lease('$C1', '$E_LOCAL', r.id) l
          WHERE r.id::text LIKE '00000000-0000-0000-0000-0000000002%'")" 31 "31 runs acquire the local environment"
sleep 0.5
P1=$(sql "SELECT passes FROM paperclip.reconciler_status()")
sql "SELECT count(*) FROM paperclip.release_run_leases('00000000-0000-0000-0000-000000000210')" >/dev/null
ok "a committed release of a lease without side effects wakes the reconciler too" \
  wait_until 5 "SELECT passes = $P1 + 1 FROM paperclip.reconciler_status()"
sleep 0.5
P2=$(sql "SELECT passes FROM paperclip.reconciler_status()")
burst_start=$SECONDS
for i in $(seq 11 40); do
  sql "SELECT count(*) FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000002$i')" >/dev/null
done
burst_seconds=$((SECONDS - burst_start + 1))
ok "30 releases in a row wake it..." wait_until 10 "SELECT passes > $P2 FROM paperclip.reconciler_status()"
passes_settle
P3=$(sql "SELECT passes FROM paperclip.reconciler_status()")
# woken passes are a second apart: at most one per second of the burst, plus
# the one serving its last commits (the burst took about $burst_seconds s)
ok "...but coalesced: $((P3 - P2)) passes for a burst of about $burst_seconds s (at most $((burst_seconds + 1)))" \
  test $((P3 - P2)) -le $((burst_seconds + 1))

ok "no PANIC, crash or SPI statement text in the server log" \
  bash -c "! grep -Eq 'PANIC|terminated by signal|SQL statement' '$RDATA/server.log'"

done_testing
