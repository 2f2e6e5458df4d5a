#!/usr/bin/env bash
# Expiry throughput of the reconciler (issues 4, 13) vs. the same row changes
# done by one bulk UPDATE in one transaction (the fastest anything could do
# it).  The reconciler works in batches of 1000 rows per transaction, each
# batch one statement in a subtransaction (the leases a probe of the expiry
# index found, locked SKIP LOCKED and changed), redone row by row only if it
# raises (so that a bad row cannot stop it).  Reports rows/s ours / rows/s
# baseline.  Target (issue 13): >= 0.8.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${RECONCILER_BENCH_ROWS:-20000}
C=00000000-0000-0000-0000-00000000b1c1
E=00000000-0000-0000-0000-00000000b1e1

q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
INSERT INTO paperclip.companies (id, name) VALUES ('$C', 'bench reconciler');
INSERT INTO paperclip.agents (id, company_id, name) VALUES ('00000000-0000-0000-0000-00000000b1a1', '$C', 'bench');
INSERT INTO paperclip.environments (id, company_id, name, driver) VALUES ('$E', '$C', 'bench reconciler local', 'local');
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status)
SELECT ('00000000-0000-0000-0000-1' || lpad(to_hex(i), 11, '0'))::uuid, '$C',
       '00000000-0000-0000-0000-00000000b1a1', 'running'
  FROM generate_series(1, $ROWS) i;
SQL

# the timer must not touch the rows of the baseline
q "ALTER SYSTEM SET paperclip.reconcile_interval = '1h'" && q "SELECT pg_reload_conf()" >/dev/null
sleep 1

expired_leases() {  # ROWS active leases of running runs, all past expires_at
  psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
DELETE FROM paperclip.environment_leases WHERE company_id = '$C';
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, provider, metadata,
                                          acquired_at, last_used_at, expires_at)
SELECT '$C', '$E', id, 'local', '{"driver": "local", "executionWorkspaceMode": null}',
       now() - interval '2 hours', now() - interval '2 hours', now() - interval '1 hour'
  FROM paperclip.heartbeat_runs WHERE company_id = '$C';
VACUUM ANALYZE paperclip.environment_leases;
SQL
}

# Both are timed by the server's clock, so that neither pays for psql starting
# or for polling: the bulk UPDATE from just before it to just after it, the
# reconciler from the commit that wakes it to the end of the pass that
# expired the leases (read from reconciler_status()).
baseline() {
  expired_leases
  psql -XAtq -v ON_ERROR_STOP=1 <<SQL
SELECT clock_timestamp() AS t0 \\gset
UPDATE paperclip.environment_leases
   SET status = 'expired', released_at = now(), updated_at = now(),
       failure_reason = 'lease expired', cleanup_status = NULL
 WHERE status = 'active' AND expires_at <= now() AND company_id = '$C';
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000);
SQL
}

ours() {
  expired_leases
  local passes t0
  sleep 1.1   # woken passes are at least a second apart: let this one start at once
  passes=$(q "SELECT passes FROM paperclip.reconciler_status()")
  t0=$(q "SELECT paperclip.reconciler_wake(), clock_timestamp()" | cut -d'|' -f2)
  while [ "$(q "SELECT count(*) FROM paperclip.environment_leases WHERE company_id = '$C' AND status = 'active'")" != 0 ] ||
        [ "$(q "SELECT passes > $passes FROM paperclip.reconciler_status()")" != t ]; do
    sleep 0.05
  done
  q "SELECT round(extract(epoch FROM last_pass_finished_at - '$t0'::timestamptz) * 1000)
       FROM paperclip.reconciler_status()"
}

base_ms=0; ours_ms=0
for round in $(seq 1 "${BENCH_ROUNDS:-5}"); do
  b=$(baseline)
  o=$(ours)
  echo "reconciler expiry rows=$ROWS round=$round baseline_ms=$b ours_ms=$o"
  base_ms=$((base_ms + b)); ours_ms=$((ours_ms + o))
done
q "ALTER SYSTEM RESET paperclip.reconcile_interval" && q "SELECT pg_reload_conf()" >/dev/null

printf 'RATIO reconciler expiry of %d leases, rows/s ours/baseline (bulk UPDATE): %.2f\n' \
  "$ROWS" "$(echo "$base_ms / $ours_ms" | bc -l)"
