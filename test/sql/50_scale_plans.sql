\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(19);

-- The lease paths cost the same with 1 or 8000 other active leases, under
-- statistics gathered before those existed (a burst of runs after a quiet
-- night): each path is measured in shared buffers touched (deterministic,
-- unlike time) before and after the burst, the statistics left as they were;
-- as the owner and as an agent role entitled to the company (pcr_c1_agent,
-- subject to row-level security: its entitlement is checked on every call).

-- shared buffers a statement touches, with all that the functions it calls do
CREATE FUNCTION pg_temp.buffers(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    p json;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ' || q INTO p;
    RETURN coalesce((p->0->'Plan'->>'Shared Hit Blocks')::bigint, 0)
         + coalesce((p->0->'Plan'->>'Shared Read Blocks')::bigint, 0);
END
$$;
CREATE FUNCTION pg_temp.plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || q;
END
$$;
-- a run's renewal and its deletion, through their triggers and foreign keys
CREATE FUNCTION pg_temp.touch_run(r uuid) RETURNS void LANGUAGE sql AS
  $$ UPDATE paperclip.heartbeat_runs SET updated_at = now() WHERE id = r $$;
CREATE FUNCTION pg_temp.delete_run(r uuid) RETURNS void LANGUAGE sql AS
  $$ DELETE FROM paperclip.heartbeat_runs WHERE id = r $$;
CREATE FUNCTION pg_temp.run(i int) RETURNS uuid LANGUAGE sql IMMUTABLE AS
  $$ SELECT ('00000000-0000-0000-0001-' || lpad(to_hex(i), 12, '0'))::uuid $$;

-- the paths measured, on run r: what each costs, in buffers
CREATE TEMP TABLE measured (round text, path text, buffers bigint);
GRANT ALL ON measured TO pcr_c1_agent;
CREATE FUNCTION pg_temp.measure(round text, r int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c uuid := '00000000-0000-0000-0000-0000000000c1';
    e uuid := '00000000-0000-0000-0000-0000000000e1';
    lease uuid;
BEGIN
    INSERT INTO measured VALUES (round, 'acquire', pg_temp.buffers(format(
        'SELECT * FROM paperclip.acquire_run_lease(%L, %L, %L)', c, e, pg_temp.run(r))));
    INSERT INTO measured VALUES (round, 'acquire again (idempotent)', pg_temp.buffers(format(
        'SELECT * FROM paperclip.acquire_run_lease(%L, %L, %L)', c, e, pg_temp.run(r))));
    SELECT id INTO lease FROM paperclip.environment_leases
     WHERE heartbeat_run_id = pg_temp.run(r) AND status = 'active';
    INSERT INTO measured VALUES (round, 'renew_run_lease', pg_temp.buffers(format(
        'SELECT * FROM paperclip.renew_run_lease(%L)', lease)));
    INSERT INTO measured VALUES (round, 'a run update renewing its leases', pg_temp.buffers(format(
        'SELECT pg_temp.touch_run(%L)', pg_temp.run(r))));
    INSERT INTO measured VALUES (round, 'release', pg_temp.buffers(format(
        'SELECT * FROM paperclip.release_run_leases(%L)', pg_temp.run(r))));
    INSERT INTO measured VALUES (round, 'release again (nothing active)', pg_temp.buffers(format(
        'SELECT * FROM paperclip.release_run_leases(%L)', pg_temp.run(r))));
    IF current_user <> 'pcr_c1_agent' THEN
        INSERT INTO measured VALUES (round, 'deleting the run (its history keeps the lease)', pg_temp.buffers(format(
            'SELECT pg_temp.delete_run(%L)', pg_temp.run(r))));
    END IF;
END
$$;

-- 9000 runs, 4000 leases of history, statistics with no lease active
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status)
SELECT pg_temp.run(i), '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1', 'running'
  FROM generate_series(1, 9000) AS i;
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, status, provider,
                                          released_at, metadata)
SELECT '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', pg_temp.run(i % 1000 + 1),
       'released', 'local', now() - interval '1 day', '{"driver": "local"}'
  FROM generate_series(1, 4000) AS i;
ANALYZE paperclip.environment_leases;

-- the first calls of a session prepare plans and fill caches: not measured
DO $$ BEGIN PERFORM pg_temp.measure('warm-up', 8001); PERFORM pg_temp.measure('warm-up', 8002);
          PERFORM pg_temp.measure('quiet', r) FROM generate_series(8010, 8012) AS r; END $$;
SET LOCAL ROLE pcr_c1_agent;
SET LOCAL paperclip.company_id = '00000000-0000-0000-0000-0000000000c1';
DO $$ BEGIN PERFORM pg_temp.measure('warm-up', 8004); PERFORM pg_temp.measure('warm-up', 8005);
          PERFORM pg_temp.measure('quiet, as pcr_c1_agent', r) FROM generate_series(8020, 8022) AS r; END $$;
RESET ROLE;

-- the burst: 8000 other runs' active leases on the same environment
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, provider, metadata,
                                          expires_at)
SELECT '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', pg_temp.run(i),
       'local', '{"driver": "local"}', now() + interval '1 hour'
  FROM generate_series(1, 8000) AS i;
SELECT ok((SELECT reltuples <= 0 FROM pg_class
            WHERE oid = 'paperclip.environment_leases_active_by_environment'::regclass)
          AND (SELECT count(*) FROM paperclip.environment_leases WHERE status = 'active') >= 8000,
          'the statistics predate the 8000 active leases (the partial indexes on active leases look empty)');
-- what a plan on those statistics does with a run's active lease
SELECT cmp_ok(pg_temp.buffers(format(
         'SELECT * FROM paperclip.environment_leases WHERE heartbeat_run_id = %L AND status = %L',
         pg_temp.run(17), 'active')), '>', 150::bigint,
       'a plain query for a run''s active lease scans the active leases (so the measurements below mean something)');

DO $$ BEGIN PERFORM pg_temp.measure('burst', r) FROM generate_series(8030, 8032) AS r; END $$;
SET LOCAL ROLE pcr_c1_agent;
DO $$ BEGIN PERFORM pg_temp.measure('burst, as pcr_c1_agent', r) FROM generate_series(8040, 8042) AS r; END $$;
RESET ROLE;

-- the least of three runs each: an index page split now and then costs a few more
CREATE TEMP VIEW least_buffers AS
  SELECT round, path, min(buffers) AS buffers FROM measured GROUP BY round, path;
SELECT cmp_ok(b.buffers, '<=', q.buffers + 10,
              b.path || ': the same buffers with 8000 other active leases' ||
              CASE WHEN q.round LIKE '%agent' THEN ', as an entitled agent role' ELSE '' END)
  FROM least_buffers AS q
  JOIN least_buffers AS b ON b.path = q.path AND b.round = replace(q.round, 'quiet', 'burst')
 WHERE q.round LIKE 'quiet%'
 ORDER BY q.round, q.path;
SELECT cmp_ok(max(buffers), '<', 100::bigint, 'every path touches fewer than 100 buffers')
  FROM least_buffers WHERE round LIKE 'burst%';

-- the foreign key's action, on the same statistics
SELECT ok(EXISTS (SELECT 1 FROM pg_temp.plan(
                    $$UPDATE ONLY paperclip.environment_leases SET heartbeat_run_id = NULL
                       WHERE '00000000-0000-0000-0000-0000000000c1' = company_id
                         AND '00000000-0000-0000-0001-000000000017' = heartbeat_run_id$$) AS p
                   WHERE p LIKE '%Index Scan on environment_leases_by_heartbeat_run%'
                      OR p LIKE '%Index Scan using environment_leases_by_heartbeat_run%'),
          'the foreign key''s ON DELETE SET NULL finds a run''s leases by index');

-- execution records: retention finds the oldest by index, and deleting a
-- lease (retention again) finds its records by index for its foreign key
INSERT INTO paperclip.lease_executions (company_id, lease_id, command, started_at, finished_at, exit_code)
SELECT '00000000-0000-0000-0000-0000000000c1', l.ids[i % 4000 + 1], 'true',
       now() - i * interval '1 second' - interval '1 second', now() - i * interval '1 second', 0
  FROM generate_series(1, 20000) AS i,
       (SELECT array_agg(id) AS ids FROM paperclip.environment_leases WHERE status = 'released') AS l;
ANALYZE paperclip.lease_executions;
SELECT ok(EXISTS (SELECT 1 FROM pg_temp.plan(
                    $$SELECT id FROM paperclip.lease_executions
                       WHERE (finished_at IS NOT NULL) AND finished_at < now() - interval '1 hour'
                       ORDER BY finished_at LIMIT 1000 FOR UPDATE SKIP LOCKED$$) AS p
                   WHERE p LIKE '%Index Scan using lease_executions_by_finished_at%'),
          'retention finds the execution records that finished longest ago by index');
SELECT ok(EXISTS (SELECT 1 FROM pg_temp.plan(
                    $$UPDATE ONLY paperclip.lease_executions SET lease_id = NULL
                       WHERE '00000000-0000-0000-0000-0000000000c1' = company_id
                         AND '00000000-0000-0000-0000-000000000017' = lease_id$$) AS p
                   WHERE p LIKE '%Index Scan using lease_executions_by_lease%'
                      OR p LIKE '%Bitmap Index Scan on lease_executions_by_lease%'),
          'deleting a lease finds its execution records by index (the foreign key''s ON DELETE SET NULL)');

SELECT * FROM finish();
ROLLBACK;
