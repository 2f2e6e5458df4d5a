#!/usr/bin/env bash
# Should lease history be time-partitioned (issue 13)?  Measures, on two
# plain copies of environment_leases with the same columns and indexes —
# one unpartitioned, one partitioned by month of released_at (active leases,
# released_at NULL, in the default partition) — with BENCH_PART_HISTORY rows
# of history over ten months:
#
#   the hot path: INSERT an active lease, then release it (UPDATE status and
#     released_at: in the partitioned table the row moves from the default
#     partition to this month's), pgbench, alternating, 1 and 8 clients;
#   retention of the oldest month: batched DELETE (the reconciler's
#     statement) vs DETACH + DROP of the partition;
#   a release racing another on the same row.
#
# The decision and the numbers are in docs/scale.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. bench/lib.sh

ROWS=${BENCH_PART_HISTORY:-1000000}
ROUNDS=${BENCH_ROUNDS:-3}
DB=pcr_partitioning
q() { psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
ratio() { echo "$1 / $2" | bc -l; }

psql -XAtq -d postgres -c "CREATE DATABASE $DB" >/dev/null
q >/dev/null <<'SQL'
CREATE SEQUENCE fence_seq;
CREATE FUNCTION make_table(name text, partitioned boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format($t$
    CREATE TABLE %I (
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      company_id uuid NOT NULL, environment_id uuid NOT NULL, execution_workspace_id uuid, issue_id uuid,
      heartbeat_run_id uuid, status text NOT NULL DEFAULT 'active', lease_policy text NOT NULL DEFAULT 'ephemeral',
      provider text, provider_lease_id text, fence bigint NOT NULL DEFAULT nextval('fence_seq'),
      acquired_at timestamptz NOT NULL DEFAULT now(), last_used_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz, released_at timestamptz, failure_reason text, cleanup_status text,
      cleanup_attempts integer NOT NULL DEFAULT 0, cleanup_error text, metadata jsonb,
      created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()) %s$t$,
    name, CASE WHEN partitioned THEN 'PARTITION BY RANGE (released_at)' ELSE '' END);
  -- the primary key cannot be (id) on the partitioned table: a unique index there must
  -- hold the partition key, and released_at is NULL while active (NULLS NOT DISTINCT
  -- makes ids unique among the active only, and within each month)
  IF partitioned THEN
    EXECUTE format('CREATE UNIQUE INDEX ON %I (id, released_at) NULLS NOT DISTINCT', name);
    EXECUTE format($i$CREATE UNIQUE INDEX ON %I (heartbeat_run_id, environment_id, released_at) NULLS NOT DISTINCT
                      WHERE status = 'active'$i$, name);
    EXECUTE format($i$CREATE UNIQUE INDEX ON %I (environment_id, released_at) NULLS NOT DISTINCT
                      WHERE status = 'active' AND lease_policy = 'reuse_by_environment'$i$, name);
  ELSE
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (id)', name);
    EXECUTE format($i$CREATE UNIQUE INDEX ON %I (heartbeat_run_id, environment_id) WHERE status = 'active'$i$, name);
    EXECUTE format($i$CREATE UNIQUE INDEX ON %I (environment_id)
                      WHERE status = 'active' AND lease_policy = 'reuse_by_environment'$i$, name);
  END IF;
  EXECUTE format($i$CREATE INDEX ON %I (environment_id) WHERE status = 'active'$i$, name);
  EXECUTE format($i$CREATE INDEX ON %I (expires_at) WHERE status = 'active'$i$, name);
  EXECUTE format($i$CREATE INDEX ON %I (updated_at) WHERE cleanup_status = 'pending'$i$, name);
  EXECUTE format('CREATE INDEX ON %I (environment_id, provider_lease_id)', name);
  EXECUTE format('CREATE INDEX ON %I (heartbeat_run_id) WHERE heartbeat_run_id IS NOT NULL', name);
  IF NOT partitioned THEN
    EXECUTE format($i$CREATE INDEX ON %I (released_at) WHERE status IN ('released', 'expired', 'failed')
                      AND (cleanup_status IS NULL OR cleanup_status = 'success')$i$, name);
  END IF;
END
$$;
SELECT make_table('plain', false), make_table('parted', true);
CREATE TABLE parted_active PARTITION OF parted DEFAULT;
DO $$
BEGIN
  FOR m IN 0 .. 11 LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF parted FOR VALUES FROM (%L) TO (%L)',
                   'parted_m' || m, date_trunc('month', now()) - (10 - m) * interval '1 month',
                   date_trunc('month', now()) - (9 - m) * interval '1 month');
  END LOOP;
END
$$;
SQL
t0=$(date +%s)
for t in plain parted; do
  q >/dev/null <<SQL
INSERT INTO $t (company_id, environment_id, heartbeat_run_id, status, provider, acquired_at, last_used_at,
                expires_at, released_at, metadata, created_at, updated_at)
SELECT md5('c' || i % 100)::uuid, md5('e' || i % 1000)::uuid, md5('r' || i / 5)::uuid,
       'released', 'local', t - interval '30 minutes', t, t + interval '330 minutes', t,
       '{"driver": "local", "executionWorkspaceMode": null}', t - interval '30 minutes', t
  FROM generate_series(1, $ROWS) i,
       LATERAL (SELECT date_trunc('month', now()) - interval '10 months'
                       + (i::float8 / $ROWS) * (now() - (date_trunc('month', now()) - interval '10 months')) AS t) x;
VACUUM ANALYZE $t;
SQL
done
echo "seeded $ROWS rows of history into each table in $(( $(date +%s) - t0 )) s"

# ---------------------------------------------------------------- the hot path
W=$BENCH_WORK/partitioning
mkdir -p "$W"
for t in plain parted; do
  cat >"$W/$t.sql" <<SQL
\\set r random(1, 1000) + 1000 * :client_id
BEGIN;
INSERT INTO $t (company_id, environment_id, heartbeat_run_id, provider, expires_at, metadata)
VALUES ('00000000-0000-0000-0000-00000000b0c1', '00000000-0000-0000-0000-00000000b0e1',
        ('00000000-0000-0000-0000-' || lpad(to_hex(:r::int), 12, '0'))::uuid, 'local', now() + interval '6 hours',
        '{"driver": "local", "executionWorkspaceMode": null}')
RETURNING *;
UPDATE $t SET status = 'released', released_at = now(), last_used_at = now(), updated_at = now()
 WHERE heartbeat_run_id = ('00000000-0000-0000-0000-' || lpad(to_hex(:r::int), 12, '0'))::uuid AND status = 'active'
RETURNING *;
COMMIT;
SQL
done
for clients in 1 8; do
  PGDATABASE=$DB bench_compare "partitioned by month of released_at (ours) vs one table (baseline): insert + release" \
    "$W/parted.sql" "$W/plain.sql" "$clients" "$ROUNDS"
done

# ---------------------------------------------------------------- retention of a month
month_rows=$(q -c "SELECT count(*) FROM parted_m0")
t0=$(date +%s%3N)
q >/dev/null <<'SQL'
DO $$
DECLARE
  k bigint;
  cutoff timestamptz := date_trunc('month', now()) - interval '9 months';
BEGIN
  LOOP
    DELETE FROM plain WHERE ctid = ANY (ARRAY(
      SELECT ctid FROM plain
       WHERE status IN ('released', 'expired', 'failed') AND (cleanup_status IS NULL OR cleanup_status = 'success')
         AND released_at < cutoff
       ORDER BY released_at LIMIT 1000 FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS k = ROW_COUNT;
    EXIT WHEN k = 0;
    COMMIT;
  END LOOP;
END
$$;
SQL
del_ms=$(( $(date +%s%3N) - t0 ))
t0=$(date +%s%3N)
q -c "ALTER TABLE parted DETACH PARTITION parted_m0" -c "DROP TABLE parted_m0" >/dev/null
drop_ms=$(( $(date +%s%3N) - t0 ))
t0=$(date +%s%3N)
q -c "VACUUM plain" >/dev/null
vac_ms=$(( $(date +%s%3N) - t0 ))
printf 'retention of the oldest month (%d rows): batched DELETE %d ms (%.0f rows/s) + VACUUM %d ms | DETACH + DROP %d ms\n' \
  "$month_rows" "$del_ms" "$(ratio "$month_rows * 1000" "$del_ms")" "$vac_ms" "$drop_ms"

# ---------------------------------------------------------------- a release racing another
race() {  # race <table>: two sessions release the same lease; prints what the second got
  q -c "INSERT INTO $1 (company_id, environment_id, heartbeat_run_id, provider, expires_at)
        VALUES (gen_random_uuid(), gen_random_uuid(), '00000000-0000-0000-0000-0000000000ff', 'local', now() + interval '1 hour')" >/dev/null
  local rel="UPDATE $1 SET status = 'released', released_at = now() WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000ff' AND status = 'active'"
  psql -XAtq -d "$DB" -c "BEGIN" -c "$rel" -c "SELECT pg_sleep(1)" -c "COMMIT" >/dev/null &
  sleep 0.3
  local out
  out=$(psql -XAtq -d "$DB" -c "$rel RETURNING 'released it a second time'" 2>&1 | head -n 1)
  wait
  echo "${out:-no row (the first release won)}"
}
echo "a second release of the same lease, waiting on the first: one table: $(race plain) | partitioned: $(race parted)"
