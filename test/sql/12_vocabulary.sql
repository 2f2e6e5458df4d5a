\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(8);

-- the words of a CHECK constraint: its quoted literals
CREATE FUNCTION pg_temp.check_words(con text) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT m[1] FROM pg_constraint c, regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g') m
   WHERE c.conname = con AND c.connamespace = 'paperclip'::regnamespace $$;
CREATE FUNCTION pg_temp.words(k text) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT name FROM paperclip.vocabulary() WHERE kind = k $$;

SELECT set_eq($$SELECT pg_temp.words('driver')$$, $$SELECT pg_temp.check_words('environments_driver_check')$$,
              'the driver registry matches the environments.driver CHECK list');
SELECT set_eq($$SELECT pg_temp.words('run_status')$$, $$SELECT pg_temp.check_words('heartbeat_runs_status_check')$$,
              'C''s run statuses match the heartbeat_runs.status CHECK list');
SELECT set_eq($$SELECT pg_temp.words('lease_status')$$, $$SELECT pg_temp.check_words('environment_leases_status_check')$$,
              'C''s lease statuses match the environment_leases.status CHECK list');
SELECT set_eq($$SELECT pg_temp.words('lease_policy')$$, $$SELECT pg_temp.check_words('environment_leases_lease_policy_check')$$,
              'C''s lease policies match the lease_policy CHECK list');
SELECT set_eq($$SELECT pg_temp.words('cleanup_status')$$, $$SELECT pg_temp.check_words('environment_leases_cleanup_status_check')$$,
              'C''s cleanup statuses match the cleanup_status CHECK list');
SELECT is_empty($$SELECT pg_temp.words('release_status') EXCEPT SELECT pg_temp.words('lease_status')$$,
                'every status a release may set is a lease status');
SELECT set_eq($$SELECT name FROM paperclip.vocabulary() WHERE kind = 'run_status' AND terminal$$,
              ARRAY['succeeded', 'failed', 'cancelled', 'timed_out'],
              'the terminal run statuses are those of docs/data-model.md');

-- the heartbeat_runs trigger (SQL) releases a run's leases exactly for the statuses C calls terminal
CREATE TEMP TABLE outcome (run_status text, terminal boolean, lease_status text);
DO $$
DECLARE
  w record;
  run uuid;
BEGIN
  FOR w IN SELECT name, terminal FROM paperclip.vocabulary() WHERE kind = 'run_status' AND name <> 'queued' LOOP
    INSERT INTO paperclip.heartbeat_runs (company_id, agent_id)
    VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1') RETURNING id INTO run;
    PERFORM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', run);
    UPDATE paperclip.heartbeat_runs SET status = w.name WHERE id = run;
    INSERT INTO outcome SELECT w.name, w.terminal, status FROM paperclip.environment_leases WHERE heartbeat_run_id = run;
  END LOOP;
END $$;
SELECT is_empty($$SELECT * FROM outcome WHERE terminal = (lease_status = 'active')$$,
                'the run trigger releases leases exactly for the run statuses C calls terminal');

SELECT * FROM finish();
ROLLBACK;
