#!/usr/bin/env bash
# Retention (paperclip.lease_retention): off by default; when set, the
# reconciler deletes lease history that is done and older than that — never
# an active lease, one whose cleanup is pending or failed, or a retained one
# — and execution records that finished longer ago than that, in bounded
# batches, also while clients acquire, record executions and release all
# along.  Every deletion is recorded by an audit trigger and checked
# afterwards: nothing recent, nothing still in use.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/recon.sh

# cleanups of provider "gone" fail and stay pending for the whole test
recon_cluster recon35 "paperclip.database = 'pcr'" "paperclip.reconcile_interval = '200ms'" \
  "paperclip.cleanup_max_attempts = 1000"

C1=00000000-0000-0000-0000-0000000000c1
A1=00000000-0000-0000-0000-0000000000a1
E_LOCAL=00000000-0000-0000-0000-0000000000e1
E_FAKE=00000000-0000-0000-0000-0000000000e2

sql "CREATE DATABASE pcr" postgres
sql "CREATE EXTENSION paperclip_runtime" >/dev/null
sql_file test/fixtures/seed.sql >/dev/null
sql_file - <<'SQL' >/dev/null
CREATE TABLE public.deleted_leases AS
  SELECT l.*, now() AS deleted_at, interval '0' AS retention FROM paperclip.environment_leases AS l WITH NO DATA;
CREATE FUNCTION public.audit_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.deleted_leases
  SELECT OLD.*, now(), current_setting('paperclip.lease_retention')::interval;
  RETURN OLD;
END $$;
CREATE TRIGGER audit_delete AFTER DELETE ON paperclip.environment_leases
  FOR EACH ROW EXECUTE FUNCTION public.audit_delete();
CREATE TABLE public.deleted_executions AS
  SELECT x.*, now() AS deleted_at, interval '0' AS retention FROM paperclip.lease_executions AS x WITH NO DATA;
CREATE FUNCTION public.audit_delete_execution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.deleted_executions
  SELECT OLD.*, now(), current_setting('paperclip.lease_retention')::interval;
  RETURN OLD;
END $$;
CREATE TRIGGER audit_delete AFTER DELETE ON paperclip.lease_executions
  FOR EACH ROW EXECUTE FUNCTION public.audit_delete_execution();
SQL
ok "the reconciler runs on the database" \
  wait_until 15 "SELECT state IN ('idle', 'reconciling') AND passes > 0 FROM paperclip.reconciler_status()"

# ---------------------------------------------------------------- the setting
is "$(sql "SHOW paperclip.lease_retention")" 0 "paperclip.lease_retention is off (0) by default"
is "$(sql "SELECT context FROM pg_settings WHERE name = 'paperclip.lease_retention'")" superuser \
  "only a superuser may change it"
tap_like "$(sql_file - <<'SQL' 2>&1
SET ROLE paperclip_admin;
SET paperclip.lease_retention = '1h';
SQL
)" "permission denied to set parameter \"paperclip.lease_retention\"" "paperclip_admin may not set it"

# leases of every kind, released two hours ago unless said otherwise
lease() {  # lease <status> <cleanup_status|NULL> <provider> <released_at>
  sql "INSERT INTO paperclip.environment_leases (company_id, environment_id, status, released_at, provider,
                                                 metadata, cleanup_status, acquired_at)
       VALUES ('$C1', '$E_FAKE', '$1', $4, '$3', '{\"driver\": \"sandbox\", \"provider\": \"$3\"}',
               $2, $4 - interval '1 minute') RETURNING id"
}
OLD="now() - interval '2 hours'"
L_RELEASED=$(lease released NULL fake "$OLD")
L_EXPIRED=$(lease expired "'success'" fake "$OLD")
L_FAILED=$(lease failed NULL fake "$OLD")
L_RECENT=$(lease released NULL fake "now() - interval '10 minutes'")
L_PENDING=$(lease released "'pending'" gone "$OLD")
L_GAVE_UP=$(lease released "'failed'" gone "$OLD")
L_RETAINED=$(lease retained NULL fake "$OLD")
L_ACTIVE=$(sql "INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, provider,
                       metadata, acquired_at, last_used_at, expires_at)
                VALUES ('$C1', '$E_LOCAL', '00000000-0000-0000-0000-0000000000f1', 'local', '{\"driver\": \"local\"}',
                        now() - interval '3 hours', now() - interval '3 hours', now() + interval '1 hour')
                RETURNING id")
# execution records: <started> <finished> <lease>
execution() {
  sql "INSERT INTO paperclip.lease_executions (company_id, lease_id, command, started_at, finished_at, exit_code)
       VALUES ('$C1', $3, 'true', $1, $2, 0) RETURNING id"
}
X_OLD=$(execution "$OLD - interval '1 minute'" "$OLD" "'$L_RELEASED'")
X_OLD_ACTIVE=$(execution "$OLD - interval '1 minute'" "$OLD" "'$L_ACTIVE'")
X_LONG=$(execution "$OLD" "now() - interval '10 minutes'" "'$L_RELEASED'")
X_RECENT=$(execution "now() - interval '11 minutes'" "now() - interval '10 minutes'" "'$L_RECENT'")
P0=$(sql "SELECT passes FROM paperclip.reconciler_status()")
ok "with retention off, passes go by…" wait_until 10 "SELECT passes >= $P0 + 3 FROM paperclip.reconciler_status()"
is "$(sql "SELECT count(*) FROM public.deleted_leases")|$(sql "SELECT count(*) FROM public.deleted_executions")" "0|0" \
  "…and nothing is deleted, neither leases nor execution records"

# ---------------------------------------------------------------- one hour
pcr_setting "$RPORT" paperclip.lease_retention 1h || exit 1
ok "with retention 1h, a done lease released two hours ago is deleted" \
  wait_until 10 "SELECT NOT EXISTS (SELECT 1 FROM paperclip.environment_leases WHERE id = '$L_RELEASED')"
gone() { sql "SELECT count(*) FROM paperclip.environment_leases WHERE id = '$1'"; }
is "$(gone "$L_EXPIRED")|$(gone "$L_FAILED")" "0|0" "…so are an expired one whose cleanup succeeded, and a failed one"
P1=$(sql "SELECT passes FROM paperclip.reconciler_status()")
ok "more passes go by" wait_until 10 "SELECT passes >= $P1 + 3 FROM paperclip.reconciler_status()"
is "$(gone "$L_RECENT")" 1 "a lease released ten minutes ago is kept"
is "$(gone "$L_PENDING")" 1 "a lease whose cleanup is pending is kept"
is "$(sql "SELECT cleanup_status = 'pending' AND cleanup_attempts > 0 FROM paperclip.environment_leases
            WHERE id = '$L_PENDING'")" t "…while the reconciler still tries its cleanup"
is "$(gone "$L_GAVE_UP")" 1 "a lease whose cleanup failed for good is kept (an operator must look)"
is "$(gone "$L_RETAINED")" 1 "a retained lease is kept (its environment was kept on purpose)"
is "$(sql "SELECT status FROM paperclip.environment_leases WHERE id = '$L_ACTIVE'")" active \
  "an active lease acquired three hours ago is kept, and stays active"
xgone() { sql "SELECT count(*) FROM paperclip.lease_executions WHERE id = '$1'"; }
is "$(xgone "$X_OLD")|$(xgone "$X_OLD_ACTIVE")" "0|0" \
  "execution records that finished two hours ago are deleted, whether their lease is gone or still active"
is "$(xgone "$X_LONG")|$(xgone "$X_RECENT")" "1|1" \
  "records that finished ten minutes ago are kept, also one of a call that started two hours ago"
is "$(sql "SELECT lease_id IS NULL FROM paperclip.lease_executions WHERE id = '$X_LONG'")|$(sql "SELECT lease_id
      FROM paperclip.lease_executions WHERE id = '$X_RECENT'")" "t|$L_RECENT" \
  "a kept record of a deleted lease lost only its lease id; one of a kept lease still names it"
ok "the server log counts the deleted rows (3 leases, 2 execution records)" \
  grep -q "paperclip reconciler: pass .* deleted 5 history rows" "$RDATA/server.log"

# ---------------------------------------------------------------- bounded batches
# (counted by the log; the audit would only slow this part down)
sql "ALTER TABLE paperclip.environment_leases DISABLE TRIGGER audit_delete"
sql "INSERT INTO paperclip.environment_leases (company_id, environment_id, status, released_at, provider, metadata,
                                               acquired_at)
     SELECT '$C1', '$E_LOCAL', 'released', now() - interval '3 hours', 'local', '{\"driver\": \"local\"}',
            now() - interval '4 hours'
       FROM generate_series(1, 120000)" >/dev/null
ok "a backlog of 120000 rows is deleted" \
  wait_until 120 "SELECT count(*) = 0 FROM paperclip.environment_leases WHERE status = 'released' AND provider = 'local'"
DELETED=$(grep -o "deleted [0-9]* history rows" "$RDATA/server.log" | awk '{print $2}')
is "$(echo "$DELETED" | sort -n | tail -n 1)" 100000 "…at most 100000 rows a pass (100 batches of 1000)"
is "$(echo "$DELETED" | awk '{s += $1} END {print s}')" 120005 "…and every deleted row was counted once"
sql "ALTER TABLE paperclip.environment_leases ENABLE TRIGGER audit_delete"

# ---------------------------------------------------------------- under concurrency
pcr_setting "$RPORT" paperclip.lease_retention 1s || exit 1
sql "INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status)
     SELECT ('00000000-0000-0000-0002-' || lpad(to_hex(i), 12, '0'))::uuid, '$C1', '$A1', 'running'
       FROM generate_series(1, 600) i" >/dev/null
ERRORS0=$(sql "SELECT total_errors FROM paperclip.reconciler_status()")
W=$PCR_WORK/recon35.bench
mkdir -p "$W"
# acquire local leases (runs 1-400), record an execution on each, release:
# lease and record done at once, deletable a second later
cat >"$W/local.sql" <<SQL
\set r random(1, 100) + 100 * :client_id
BEGIN;
SELECT id AS lease FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL',
         ('00000000-0000-0000-0002-' || lpad(to_hex(:r), 12, '0'))::uuid) \\gset
INSERT INTO paperclip.lease_executions (company_id, lease_id, heartbeat_run_id, command, started_at, finished_at,
                                        exit_code)
VALUES ('$C1', ':lease'::uuid, ('00000000-0000-0000-0002-' || lpad(to_hex(:r), 12, '0'))::uuid, 'true',
        clock_timestamp() - interval '5 milliseconds', clock_timestamp(), 0);
SELECT id FROM paperclip.release_run_leases(('00000000-0000-0000-0002-' || lpad(to_hex(:r), 12, '0'))::uuid);
COMMIT;
SQL
# leases of provider "gone" (runs 401-600): their release leaves a cleanup pending for good
cat >"$W/pending.sql" <<SQL
\set r random(401, 600)
BEGIN;
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, provider, metadata,
                                          expires_at)
VALUES ('$C1', '$E_FAKE', ('00000000-0000-0000-0002-' || lpad(to_hex(:r), 12, '0'))::uuid, 'gone',
        '{"driver": "sandbox", "provider": "gone"}', now() + interval '1 hour')
ON CONFLICT DO NOTHING;
SELECT id FROM paperclip.release_run_leases(('00000000-0000-0000-0002-' || lpad(to_hex(:r), 12, '0'))::uuid);
COMMIT;
SQL
PGB=(-h 127.0.0.1 -p "$RPORT" -U postgres -n -T 6)
"$PCR_PGBIN/pgbench" "${PGB[@]}" -c 4 -j 2 -f "$W/local.sql" pcr >"$W/local.out" 2>&1 &
B1=$!
"$PCR_PGBIN/pgbench" "${PGB[@]}" -c 2 -j 1 -f "$W/pending.sql" pcr >"$W/pending.out" 2>&1 &
B2=$!
wait "$B1"; R1=$?
wait "$B2"; R2=$?
is "$R1|$R2" "0|0" "clients acquired and released for six seconds while retention ran"
is "$(grep -h "number of failed transactions" "$W/local.out" "$W/pending.out" | awk '{s += $5} END {print s + 0}')" 0 \
  "…without a failed transaction"
PENDING=$(sql "SELECT count(*) FROM paperclip.environment_leases WHERE provider = 'gone' AND cleanup_status = 'pending'")
ok "the released local leases are deleted a second after their release" \
  wait_until 15 "SELECT count(*) = 0 FROM paperclip.environment_leases
                  WHERE provider = 'local' AND status = 'released' AND released_at < now() - interval '3 seconds'"
is "$(sql "SELECT count(*) > 100 FROM public.deleted_leases WHERE retention = interval '1 second'")" t \
  "retention deleted leases while the clients were at work"
ok "the execution records of the clients are deleted a second after they finished" \
  wait_until 15 "SELECT count(*) = 0 FROM paperclip.lease_executions WHERE finished_at < now() - interval '3 seconds'"
is "$(sql "SELECT count(*) > 100 FROM public.deleted_executions WHERE retention = interval '1 second'")" t \
  "…deleted while the clients were at work"
is "$(sql "SELECT count(*) FROM public.deleted_executions WHERE finished_at >= deleted_at - retention")" 0 \
  "every execution record retention deleted had finished longer ago than the retention"
is "$(sql "SELECT count(*) FROM public.deleted_leases
            WHERE status NOT IN ('released', 'expired', 'failed')
               OR cleanup_status IS NOT NULL AND cleanup_status <> 'success'
               OR released_at IS NULL OR released_at >= deleted_at - retention")" 0 \
  "every row retention deleted was terminal, done, not retained, and older than the retention"
is "$(sql "SELECT count(*) >= 1 FROM paperclip.environment_leases WHERE provider = 'gone' AND cleanup_status = 'pending'
              AND released_at < now() - interval '3 seconds'")|$(sql "SELECT count(*) FROM paperclip.environment_leases
            WHERE provider = 'gone' AND cleanup_status = 'pending'")" "t|$PENDING" \
  "every lease whose cleanup is pending is still there, long past the retention"
is "$(sql "SELECT count(*) FROM public.deleted_leases WHERE id IN ('$L_PENDING', '$L_GAVE_UP', '$L_RETAINED', '$L_ACTIVE')")" 0 \
  "…and so are the pending, failed, retained and active leases of before"
is "$(sql "SELECT total_errors FROM paperclip.reconciler_status()")" "$ERRORS0" "the reconciler met no error meanwhile"

pcr_setting_reset "$RPORT" paperclip.lease_retention || exit 1
done_testing
