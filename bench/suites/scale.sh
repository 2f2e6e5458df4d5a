#!/usr/bin/env bash
# Scale (issue 13): the lease paths at 10^7 historical leases, and with 10^4
# other active leases under stale statistics.  Two databases in the same
# cluster, the same bench fixture in both; one also holds the history:
#
#   history  acquire + release (bench/leases/ours.sql) with BENCH_HISTORY
#            historical leases vs none, 1 and 8 clients, alternating;
#   stale    the same with BENCH_ACTIVE other active leases, under statistics
#            gathered before they existed vs just after an ANALYZE, in both
#            databases, alternating;
#   delete   deleting runs (one per transaction) with the history vs without;
#   upgrade  what the 0.1.0 -> 0.2.0 indexes cost to build on the history,
#            and what deleting a run cost without the run index;
#   retain   the retention statements' rows/s on the history vs one DELETE:
#            execution records first, then leases (as a pass does).
#
# Shared buffers per call come from pg_stat_statements (deterministic where
# throughput is noisy).  Targets: history and stale ratios >= 0.9, run
# deletion <= 2x the empty case.
#
#   BENCH_HISTORY=10000000  historical leases (about 1 kB each on disk with
#                           their indexes and WAL: put the cluster where
#                           there is room, BENCH_DIR=/somewhere)
#   BENCH_ACTIVE=10000      other active leases in the stale part
#   BENCH_EXECUTIONS        execution records of the history (default one
#                           for every tenth lease)
#   BENCH_ROUNDS=3          alternating rounds
#   BENCH_SCALE_SHARED_BUFFERS=2GB  for this suite (reset afterwards): a
#                           database with several GB of leases is given room
#                           for its hot index pages; with the bench's 256MB
#                           every insert into the 10^7-entry primary key
#                           (random uuids) evicts a dirty page
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. bench/lib.sh

HISTORY=${BENCH_HISTORY:-10000000}
ACTIVE=${BENCH_ACTIVE:-10000}
EXECUTIONS=${BENCH_EXECUTIONS:-$((HISTORY / 10))}
ROUNDS=${BENCH_ROUNDS:-3}
EMPTY=pcr_scale_empty
BIG=pcr_scale_big
C=00000000-0000-0000-0000-00000000b0c1
A=00000000-0000-0000-0000-00000000b0a1
E=00000000-0000-0000-0000-00000000b0e1

q() { local db=$1; shift; psql -XAtq -v ON_ERROR_STOP=1 -d "$db" "$@"; }
now_s() { date +%s; }

need_kb=$((HISTORY + 2000000))   # about 1 kB a lease, and room to spare
free_kb=$(df -Pk "$PCR_DATA" | awk 'NR == 2 {print $4}')
echo "history $HISTORY leases, $ACTIVE other active; cluster in $PCR_DATA ($((free_kb / 1048576)) GB free)"
if [ "$free_kb" -lt "$need_kb" ]; then
  echo "not enough room for $HISTORY leases: about $((need_kb / 1048576)) GB needed; set BENCH_DIR or BENCH_HISTORY" >&2
  exit 1
fi

SHARED_BUFFERS=${BENCH_SCALE_SHARED_BUFFERS:-2GB}
q postgres -c "ALTER SYSTEM SET shared_buffers = '$SHARED_BUFFERS'" >/dev/null
pcr_cluster_restart "$PCR_DATA"
restore_cluster() {
  q postgres -c "ALTER SYSTEM RESET shared_buffers" >/dev/null
  pcr_cluster_restart "$PCR_DATA"
}
trap restore_cluster EXIT
echo "shared_buffers $(q postgres -c "SHOW shared_buffers")"

# ---------------------------------------------------------------- set-up
fixture() {  # the bench's company, environment and runs, in database $1
  q postgres -c "CREATE DATABASE $1" >/dev/null
  q "$1" >/dev/null <<SQL
CREATE EXTENSION paperclip_runtime;
INSERT INTO paperclip.companies (id, name) VALUES ('$C', 'bench');
INSERT INTO paperclip.agents (id, company_id, name) VALUES ('$A', '$C', 'bench');
INSERT INTO paperclip.environments (id, company_id, name, driver) VALUES ('$E', '$C', 'bench local', 'local');
-- the pgbench clients' runs (bench/leases/ours.sql), and the other active leases' runs
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status)
SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid, '$C', '$A', 'running'
  FROM generate_series(1, 9000) i;
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status)
SELECT ('00000000-0000-0000-0003-' || lpad(to_hex(i), 12, '0'))::uuid, '$C', '$A', 'running'
  FROM generate_series(1, $ACTIVE) i;
-- runs to delete, each with one lease of history
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status)
SELECT ('00000000-0000-0000-0004-' || lpad(to_hex(i), 12, '0'))::uuid, '$C', '$A', 'succeeded'
  FROM generate_series(1, 10000) i;
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, status, provider,
                                          released_at, metadata)
SELECT '$C', '$E', ('00000000-0000-0000-0004-' || lpad(to_hex(i), 12, '0'))::uuid, 'released', 'local',
       now(), '{"driver": "local", "executionWorkspaceMode": null}'
  FROM generate_series(1, 10000) i;
CREATE PROCEDURE public.bench_delete_runs(first int, n int) LANGUAGE plpgsql AS \$\$
BEGIN
  SET synchronous_commit = off;
  FOR i IN first .. first + n - 1 LOOP
    DELETE FROM paperclip.heartbeat_runs WHERE id = ('00000000-0000-0000-0004-' || lpad(to_hex(i), 12, '0'))::uuid;
    COMMIT;
  END LOOP;
END
\$\$;
SQL
}

# History as a control plane accumulates it: 100 companies of 10 environments
# (1 local, 9 fake sandboxes), finished runs of 5 leases each over 90 days,
# oldest first; mostly released, some failed or expired.  Plain SQL: the
# foreign keys and the lease trigger run for every row.
seed_history() {
  local db=$1 t0
  t0=$(now_s)
  q "$db" >/dev/null <<SQL
INSERT INTO paperclip.companies (id, name)
SELECT ('00000000-0000-0000-00c0-' || lpad(to_hex(c), 12, '0'))::uuid, 'company ' || c FROM generate_series(1, 100) c;
INSERT INTO paperclip.agents (id, company_id, name)
SELECT ('00000000-0000-0000-00a0-' || lpad(to_hex(c), 12, '0'))::uuid,
       ('00000000-0000-0000-00c0-' || lpad(to_hex(c), 12, '0'))::uuid, 'agent' FROM generate_series(1, 100) c;
INSERT INTO paperclip.environments (id, company_id, name, driver, config)
SELECT ('00000000-0000-00e0-' || lpad(to_hex(c), 4, '0') || '-' || lpad(to_hex(e), 12, '0'))::uuid,
       ('00000000-0000-0000-00c0-' || lpad(to_hex(c), 12, '0'))::uuid, 'env ' || e,
       CASE WHEN e = 0 THEN 'local' ELSE 'sandbox' END,
       CASE WHEN e = 0 THEN '{}' ELSE '{"provider": "fake"}' END::jsonb
  FROM generate_series(1, 100) c, generate_series(0, 9) e;
CREATE PROCEDURE public.seed_history(runs int, chunk int) LANGUAGE plpgsql AS \$\$
BEGIN
  SET synchronous_commit = off;
  FOR lo IN 1 .. runs BY chunk LOOP
    CREATE TEMP TABLE r ON COMMIT DROP AS
      SELECT md5('run ' || i)::uuid AS id, i % 100 + 1 AS c, i,
             now() - interval '90 days' + (i::float8 / runs) * interval '90 days' AS t
        FROM generate_series(lo, least(lo + chunk - 1, runs)) i;
    INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status, started_at, finished_at,
                                          created_at, updated_at)
    SELECT id, ('00000000-0000-0000-00c0-' || lpad(to_hex(c), 12, '0'))::uuid,
           ('00000000-0000-0000-00a0-' || lpad(to_hex(c), 12, '0'))::uuid,
           CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END, t - interval '31 minutes', t,
           t - interval '32 minutes', t
      FROM r;
    INSERT INTO paperclip.environment_leases
      (company_id, environment_id, heartbeat_run_id, status, lease_policy, provider, provider_lease_id,
       acquired_at, last_used_at, expires_at, released_at, failure_reason, cleanup_status, cleanup_attempts,
       metadata, created_at, updated_at)
    SELECT ('00000000-0000-0000-00c0-' || lpad(to_hex(r.c), 12, '0'))::uuid,
           ('00000000-0000-00e0-' || lpad(to_hex(r.c), 4, '0') || '-' || lpad(to_hex(e), 12, '0'))::uuid,
           r.id,
           CASE WHEN i % 20 = 0 THEN 'failed' WHEN i % 50 = 1 THEN 'expired' ELSE 'released' END,
           'ephemeral',
           CASE WHEN e = 0 THEN 'local' ELSE 'fake' END,
           CASE WHEN e = 0 THEN NULL ELSE 'sandbox://fake/' || r.id || '/' || j END,
           t - interval '30 minutes', t, t + interval '330 minutes', t,
           CASE WHEN i % 20 = 0 THEN 'agent crashed' WHEN i % 50 = 1 THEN 'lease expired' END,
           CASE WHEN e <> 0 AND i % 10 = 3 THEN 'success' END,
           CASE WHEN e <> 0 AND i % 10 = 3 THEN 1 ELSE 0 END,
           CASE WHEN e = 0 THEN '{"driver": "local", "executionWorkspaceMode": null}'::jsonb
                ELSE '{"driver": "sandbox", "executionWorkspaceMode": null, "provider": "fake",
                       "image": "ubuntu:24.04", "reuseLease": false}'::jsonb END,
           t - interval '30 minutes', t
      FROM r, generate_series(1, 5) j, LATERAL (SELECT (r.i + j) % 10 AS e) x;
    COMMIT;
  END LOOP;
END
\$\$;
CALL public.seed_history($((HISTORY / 5)), 20000);
SQL
  echo "seeded $HISTORY leases in $(( $(now_s) - t0 )) s"
  # execution records: one a minute before the release of every n-th lease
  local every=$(( EXECUTIONS > 0 && HISTORY / EXECUTIONS > 1 ? HISTORY / EXECUTIONS : 1 ))
  t0=$(now_s)
  q "$db" >/dev/null <<SQL
SET synchronous_commit = off;
INSERT INTO paperclip.lease_executions (company_id, lease_id, heartbeat_run_id, command, started_at, finished_at,
                                        exit_code, stdout_bytes, stderr_bytes)
SELECT company_id, id, heartbeat_run_id, 'make', released_at - interval '2 minutes', released_at - interval '1 minute',
       0, 4096, 0
  FROM paperclip.environment_leases
 WHERE fence % $every = 0 AND heartbeat_run_id IS NOT NULL
 LIMIT $EXECUTIONS;
SQL
  echo "seeded $(q "$db" -c "SELECT count(*) FROM paperclip.lease_executions") execution records in $(( $(now_s) - t0 )) s"
  t0=$(now_s)
  q "$db" -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
  echo "vacuumed in $(( $(now_s) - t0 )) s; $(q "$db" -c "SELECT pg_size_pretty(pg_total_relation_size('paperclip.environment_leases'))") of leases, $(q "$db" -c "SELECT pg_size_pretty(pg_total_relation_size('paperclip.lease_executions'))") of execution records"
  q "$db" -F ' ' -c "SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid)) FROM pg_index AS i
                      JOIN pg_class AS c ON c.oid = i.indexrelid
                     WHERE i.indrelid = 'paperclip.environment_leases'::regclass ORDER BY 1"
}

echo "== set-up"
fixture "$EMPTY"
fixture "$BIG"
seed_history "$BIG"

# ---------------------------------------------------------------- measuring
# Shared buffers per transaction (one acquire + one release) in database $1
# since the last reset: "hits accesses" (accesses = hits + reads).
pgss_reset() { q pcr_bench -c "SELECT pg_stat_statements_reset()" >/dev/null; }
pgss_per_tx() {
  q pcr_bench -F ' ' -c "
    SELECT round(sum(s.shared_blks_hit)::numeric / nullif(max(s.calls) FILTER (WHERE s.query LIKE '%acquire_run_lease%'), 0), 1),
           round(sum(s.shared_blks_hit + s.shared_blks_read)::numeric
                 / nullif(max(s.calls) FILTER (WHERE s.query LIKE '%acquire_run_lease%'), 0), 1)
      FROM pg_stat_statements AS s JOIN pg_database AS d ON d.oid = s.dbid
     WHERE d.datname = '$1' AND (s.query LIKE '%acquire_run_lease%' OR s.query LIKE '%release_run_leases%')"
}
# measure <db> <clients>: "tps cpu_ms_per_tx hits_per_tx accesses_per_tx"
measure() {
  local m
  pgss_reset
  m=$(PGDATABASE=$1 bench_measure bench/leases/ours.sql "$2") || return 1
  echo "$m $(pgss_per_tx "$1")"
}
ratio() { echo "$1 / $2" | bc -l; }
add() { echo "$1 + $2" | bc -l; }

# compare <label> <clients> <first> <second> <setup first> <setup second> <ours>:
# for ROUNDS rounds, runs the setup command of each side (the database to
# measure is the last word it prints) and measures it, first then second;
# prints RATIO lines of ours (first or second) against the other.
compare() {
  local label=$1 clients=$2 n1=$3 n2=$4 s1=$5 s2=$6 ours=$7 r db
  local t1 c1 h1 x1 t2 c2 h2 x2 st1=0 st2=0 sc1=0 sc2=0 sx1=0 sx2=0
  for r in $(seq 1 "$ROUNDS"); do
    db=$($s1 | tail -n 1) || return 1
    read -r t1 c1 h1 x1 < <(BENCH_KEEP_STATS=${KEEP_STATS:-} measure "$db" "$clients")
    db=$($s2 | tail -n 1) || return 1
    read -r t2 c2 h2 x2 < <(BENCH_KEEP_STATS=${KEEP_STATS:-} measure "$db" "$clients")
    printf '%s clients=%d round=%d %s: %.0f tps %.3f ms cpu/tx %s buffer hits/tx (%s accessed) | %s: %.0f tps %.3f ms cpu/tx %s buffer hits/tx (%s accessed)\n' \
      "$label" "$clients" "$r" "$n1" "$t1" "$c1" "$h1" "$x1" "$n2" "$t2" "$c2" "$h2" "$x2"
    st1=$(add "$st1" "$t1"); st2=$(add "$st2" "$t2"); sc1=$(add "$sc1" "$c1"); sc2=$(add "$sc2" "$c2")
    sx1=$(add "$sx1" "$x1"); sx2=$(add "$sx2" "$x2")
  done
  if [ "$ours" = second ]; then
    printf 'RATIO %s, %d client(s), throughput %s/%s: %.2f\n' "$label" "$clients" "$n2" "$n1" "$(ratio "$st2" "$st1")"
    printf 'RATIO %s, %d client(s), server CPU per tx %s/%s: %.2f\n' "$label" "$clients" "$n1" "$n2" "$(ratio "$sc1" "$sc2")"
    printf 'RATIO %s, %d client(s), shared buffers accessed per tx %s/%s (pg_stat_statements): %.2f (%.1f vs %.1f)\n' \
      "$label" "$clients" "$n1" "$n2" "$(ratio "$sx1" "$sx2")" "$(ratio "$sx1" "$ROUNDS")" "$(ratio "$sx2" "$ROUNDS")"
  else
    printf 'RATIO %s, %d client(s), throughput %s/%s: %.2f\n' "$label" "$clients" "$n1" "$n2" "$(ratio "$st1" "$st2")"
    printf 'RATIO %s, %d client(s), server CPU per tx %s/%s: %.2f\n' "$label" "$clients" "$n2" "$n1" "$(ratio "$sc2" "$sc1")"
    printf 'RATIO %s, %d client(s), shared buffers accessed per tx %s/%s (pg_stat_statements): %.2f (%.1f vs %.1f)\n' \
      "$label" "$clients" "$n2" "$n1" "$(ratio "$sx2" "$sx1")" "$(ratio "$sx2" "$ROUNDS")" "$(ratio "$sx1" "$ROUNDS")"
  fi
}

# ---------------------------------------------------------------- history
echo "== history: $HISTORY historical leases vs none"
use_empty() { echo "$EMPTY"; }
use_big() { echo "$BIG"; }
for clients in 1 8; do
  compare "scale acquire+release, $HISTORY leases of history" "$clients" empty history use_empty use_big second
done

# ---------------------------------------------------------------- stale statistics
# The other active leases come after the statistics: released and deleted,
# VACUUM ANALYZE (statistics of a quiet night), then inserted again; autovacuum
# is kept off the table so that nothing refreshes the statistics meanwhile.
stale() {  # stale <db>: prints <db>
  q "$1" >/dev/null <<SQL
ALTER TABLE paperclip.environment_leases SET (autovacuum_enabled = off);
UPDATE paperclip.environment_leases SET status = 'released', released_at = now()
 WHERE status = 'active' AND heartbeat_run_id::text LIKE '00000000-0000-0000-0003-%';
DELETE FROM paperclip.environment_leases WHERE heartbeat_run_id::text LIKE '00000000-0000-0000-0003-%';
VACUUM ANALYZE paperclip.environment_leases;
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, provider, metadata, expires_at)
SELECT '$C', '$E', ('00000000-0000-0000-0003-' || lpad(to_hex(i), 12, '0'))::uuid, 'local',
       '{"driver": "local", "executionWorkspaceMode": null}', now() + interval '1 hour'
  FROM generate_series(1, $ACTIVE) i;
SQL
  [ "$(q "$1" -c "SELECT count(*) FROM paperclip.environment_leases WHERE status = 'active'")" -ge "$ACTIVE" ] || return 1
  echo "$1"
}
fresh() {  # fresh <db>: the same leases, statistics gathered now
  q "$1" -c "ANALYZE paperclip.environment_leases" >/dev/null
  echo "$1"
}
for STALE_DB in "$EMPTY" "$BIG"; do
  echo "== stale statistics in $STALE_DB: $ACTIVE other active leases, statistics from before them vs after ANALYZE"
  stale_db() { stale "$STALE_DB"; }
  fresh_db() { fresh "$STALE_DB"; }
  for clients in 1 8; do
    KEEP_STATS=1 compare "scale acquire+release, $ACTIVE other active leases, $STALE_DB" "$clients" \
      stale-stats analyzed stale_db fresh_db first
  done
  q "$STALE_DB" -c "ALTER TABLE paperclip.environment_leases RESET (autovacuum_enabled)" >/dev/null
done

# ---------------------------------------------------------------- run deletion
# ms per run deleted (one per transaction: its trigger releases nothing, its
# foreign key sets heartbeat_run_id NULL in its lease of history)
delete_ms() {  # delete_ms <db> <first> <n>
  q "$1" <<SQL
SELECT clock_timestamp() AS t0 \gset
CALL public.bench_delete_runs($2, $3);
SELECT extract(epoch FROM clock_timestamp() - :'t0') * 1000 / $3;
SQL
}
echo "== run deletion: $HISTORY leases of history vs none"
se=0; sb=0
for r in $(seq 1 "$ROUNDS"); do
  first=$(( (r - 1) * 1000 + 1 ))   # runs 1-9000 (at most 9 rounds); 9001-10000 for below
  me=$(delete_ms "$EMPTY" "$first" 1000)
  mb=$(delete_ms "$BIG" "$first" 1000)
  printf 'scale run deletion round=%d empty: %.3f ms/run | history: %.3f ms/run\n' "$r" "$me" "$mb"
  se=$(add "$se" "$me"); sb=$(add "$sb" "$mb")
done
printf 'RATIO scale run deletion, time per run with %d leases of history / none (lower is better, target <= 2): %.2f\n' \
  "$HISTORY" "$(ratio "$sb" "$se")"

# ---------------------------------------------------------------- upgrade cost
# What ALTER EXTENSION UPDATE from 0.1.0 builds on this history, and what a
# run's deletion cost without the run index (the foreign key scanned the table).
echo "== upgrade: the 0.2.0 indexes on $HISTORY leases"
index_def() { q "$BIG" -c "SELECT pg_get_indexdef('paperclip.$1'::regclass)"; }
for idx in environment_leases_by_heartbeat_run environment_leases_done_by_released_at; do
  def=$(index_def "$idx")
  q "$BIG" -c "DROP INDEX paperclip.$idx" >/dev/null
  if [ "$idx" = environment_leases_by_heartbeat_run ]; then
    mb=$(delete_ms "$BIG" 9001 3)
    printf 'scale run deletion without %s: %.0f ms/run (%d leases of history)\n' "$idx" "$mb" "$HISTORY"
  fi
  t0=$(date +%s%3N)
  q "$BIG" -c "$def" >/dev/null
  printf 'scale upgrade: CREATE INDEX %s on %d leases: %.1f s (SHARE lock: writes wait)\n' \
    "$idx" "$HISTORY" "$(echo "($(date +%s%3N) - $t0) / 1000" | bc -l)"
done

# ---------------------------------------------------------------- retention
# The retention steps' statements (reconcile_retention.c), batch after batch
# of 1000 in transactions of their own, vs one DELETE of as many rows: rows/s.
# Execution records first, as in a pass (they reference the leases).
echo "== retention on $EXECUTIONS execution records"
NX=$(( EXECUTIONS / 10 ))
q "$BIG" >/dev/null <<'SQL'
CREATE PROCEDURE public.bench_retention_executions(n int) LANGUAGE plpgsql AS $$
DECLARE
  done bigint := 0;
  k bigint;
BEGIN
  SET synchronous_commit = off;
  WHILE done < n LOOP
    DELETE FROM paperclip.lease_executions WHERE ctid = ANY (ARRAY(
      SELECT ctid FROM paperclip.lease_executions
       WHERE (finished_at IS NOT NULL) AND finished_at < now() - interval '1 day'
       ORDER BY finished_at LIMIT 1000 FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS k = ROW_COUNT;
    EXIT WHEN k = 0;
    done := done + k;
    COMMIT;
  END LOOP;
END
$$;
SQL
if [ "$NX" -gt 0 ]; then
  rt=$(q "$BIG" <<SQL
SELECT clock_timestamp() AS t0 \gset
CALL public.bench_retention_executions($NX);
SELECT extract(epoch FROM clock_timestamp() - :'t0');
SQL
)
  bt=$(q "$BIG" <<SQL
SET synchronous_commit = off;
SELECT clock_timestamp() AS t0 \gset
DELETE FROM paperclip.lease_executions WHERE id IN (
  SELECT id FROM paperclip.lease_executions
   WHERE finished_at < now() - interval '1 day' ORDER BY finished_at LIMIT $NX);
SELECT extract(epoch FROM clock_timestamp() - :'t0');
SQL
)
  printf 'scale retention: %d execution records in batches of 1000: %.3f s (%.0f rows/s) | one DELETE: %.3f s (%.0f rows/s)\n' \
    "$NX" "$rt" "$(ratio "$NX" "$rt")" "$bt" "$(ratio "$NX" "$bt")"
  printf 'RATIO scale retention of execution records, rows/s in batches of 1000 / one DELETE: %.2f\n' "$(ratio "$bt" "$rt")"
fi

echo "== retention on $HISTORY leases"
N=$(( HISTORY / 100 ))
q "$BIG" >/dev/null <<'SQL'
CREATE PROCEDURE public.bench_retention(n int) LANGUAGE plpgsql AS $$
DECLARE
  done bigint := 0;
  k bigint;
BEGIN
  SET synchronous_commit = off;
  WHILE done < n LOOP
    DELETE FROM paperclip.environment_leases WHERE ctid = ANY (ARRAY(
      SELECT ctid FROM paperclip.environment_leases
       WHERE (status IN ('released', 'expired', 'failed') AND (cleanup_status IS NULL OR cleanup_status = 'success'))
         AND released_at < now() - interval '1 day'
       ORDER BY released_at LIMIT 1000 FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS k = ROW_COUNT;
    EXIT WHEN k = 0;
    done := done + k;
    COMMIT;
  END LOOP;
END
$$;
SQL
rt=$(q "$BIG" <<SQL
SELECT clock_timestamp() AS t0 \gset
CALL public.bench_retention($N);
SELECT extract(epoch FROM clock_timestamp() - :'t0');
SQL
)
bt=$(q "$BIG" <<SQL
SET synchronous_commit = off;
SELECT clock_timestamp() AS t0 \gset
DELETE FROM paperclip.environment_leases WHERE id IN (
  SELECT id FROM paperclip.environment_leases
   WHERE (status IN ('released', 'expired', 'failed') AND (cleanup_status IS NULL OR cleanup_status = 'success'))
     AND released_at < now() - interval '1 day'
   ORDER BY released_at LIMIT $N);
SELECT extract(epoch FROM clock_timestamp() - :'t0');
SQL
)
printf 'scale retention: %d rows in batches of 1000: %.3f s (%.0f rows/s) | one DELETE: %.3f s (%.0f rows/s)\n' \
  "$N" "$rt" "$(ratio "$N" "$rt")" "$bt" "$(ratio "$N" "$bt")"
printf 'RATIO scale retention, rows/s in batches of 1000 / one DELETE: %.2f\n' "$(ratio "$bt" "$rt")"
