#!/usr/bin/env bash
# The reconciler starts only once recovery has finished: none on a hot
# standby, one after promotion, whose start-up sweep releases what the old
# primary left behind.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/recon.sh

recon_cluster recon33p "paperclip.database = 'pcr'" "paperclip.reconcile_interval = '1h'"
PRIMARY=$RDATA
PPORT=$RPORT
STANDBY=$PCR_WORK/recon33s
SPORT=$(pcr_free_port)
trap 'pcr_cluster_stop "$STANDBY" immediate; pcr_cluster_stop "$PRIMARY" immediate' EXIT

C1=00000000-0000-0000-0000-0000000000c1
A1=00000000-0000-0000-0000-0000000000a1
R1=00000000-0000-0000-0000-000000000301
R2=00000000-0000-0000-0000-000000000302

sql "CREATE DATABASE pcr" postgres
sql "CREATE EXTENSION paperclip_runtime" >/dev/null
sql_file test/fixtures/seed.sql >/dev/null
sql "INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status)
     VALUES ('$R1', '$C1', '$A1', 'running'), ('$R2', '$C1', '$A1', 'running')"
for r in $R1 $R2; do
  sql "SELECT paperclip.acquire_run_lease('$C1', '00000000-0000-0000-0000-0000000000e2', '$r')" >/dev/null
done
ok "the primary runs a reconciler" \
  wait_until 20 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'paperclip reconciler'"

mkdir -p "$STANDBY"
chmod 700 "$STANDBY"
[ "$(id -u)" -ne 0 ] || chown postgres: "$STANDBY"
pcr_as_pg "$PCR_PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PPORT" -U postgres -D "$STANDBY" -R -X stream -c fast \
  >"$PCR_WORK/basebackup.log" 2>&1 || cat "$PCR_WORK/basebackup.log" >&2
{
  echo "port = $SPORT"
  echo "unix_socket_directories = '$STANDBY'"
} >>"$STANDBY/postgresql.conf"
rm -f "$STANDBY/server.log"
pcr_cluster_start "$STANDBY" || exit 1

RPORT=$SPORT
ok "the standby is in recovery" wait_until 10 "SELECT pg_is_in_recovery()"

# behind the trigger, on the primary: a finished run keeps its active lease
RPORT=$PPORT
sql_file - <<SQL
ALTER TABLE paperclip.heartbeat_runs DISABLE TRIGGER heartbeat_runs_lease_lifecycle;
UPDATE paperclip.heartbeat_runs SET status = 'succeeded' WHERE id = '$R1';
ALTER TABLE paperclip.heartbeat_runs ENABLE TRIGGER heartbeat_runs_lease_lifecycle;
SQL
RPORT=$SPORT
ok "the standby replays it: the succeeded run's lease is still active there" \
  wait_until 10 "SELECT r.status = 'succeeded' AND l.status = 'active'
                   FROM paperclip.heartbeat_runs r JOIN paperclip.environment_leases l ON l.heartbeat_run_id = r.id
                  WHERE r.id = '$R1'"
sleep 2
is "$(sql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'paperclip reconciler'")" 0 \
  "no reconciler runs on the standby"
is "$(sql "SELECT state FROM paperclip.reconciler_status()")" stopped \
  "the standby's reconciler_status() says stopped"

pcr_cluster_stop "$PRIMARY" fast
pcr_as_pg "$PCR_PGBIN/pg_ctl" -D "$STANDBY" -w -t 60 promote >/dev/null
ok "after promotion a reconciler starts" \
  wait_until 20 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'paperclip reconciler'"
ok "its start-up sweep releases the lease of the run that succeeded" \
  wait_until 10 "SELECT status = 'released' FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R1'"
is "$(sql "SELECT status FROM paperclip.environment_leases WHERE heartbeat_run_id = '$R2'")" active \
  "the lease of the running run stays active"

done_testing
