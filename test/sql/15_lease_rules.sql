\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(47);

-- Lease state cannot be forged: agents have no write right on the lease table,
-- and the database itself keeps every row true, whoever writes it (here: the
-- owner with plain SQL, as a control plane may).
\set c1 '00000000-0000-0000-0000-0000000000c1'
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status) VALUES
  ('00000000-0000-0000-0000-0000000015f1', :'c1', '00000000-0000-0000-0000-0000000000a1', 'running'),
  ('00000000-0000-0000-0000-0000000015f2', :'c1', '00000000-0000-0000-0000-0000000000a1', 'running'),
  ('00000000-0000-0000-0000-0000000015f3', :'c1', '00000000-0000-0000-0000-0000000000a1', 'succeeded');

CREATE FUNCTION pg_temp.as_agent(query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  result text;
BEGIN
  PERFORM set_config('paperclip.company_id', '00000000-0000-0000-0000-0000000000c1', true);
  SET LOCAL ROLE pcr_c1_agent;
  BEGIN
    EXECUTE query INTO result;
  EXCEPTION WHEN OTHERS THEN
    result := 'ERROR ' || SQLSTATE;
  END;
  RESET ROLE;
  PERFORM set_config('paperclip.company_id', '', true);
  RETURN result;
END
$$;

-- ------------------------------------------------------------ agents: functions only
CREATE TEMP TABLE held AS
  SELECT * FROM paperclip.acquire_run_lease(:'c1', '00000000-0000-0000-0000-0000000000e3', '00000000-0000-0000-0000-0000000015f1');
SELECT is(pg_temp.as_agent($$INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, lease_policy)
                             VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3',
                                     '00000000-0000-0000-0000-0000000015f2', 'ephemeral') RETURNING status$$),
          'ERROR 42501', 'an agent cannot insert a lease');
SELECT is(pg_temp.as_agent($$UPDATE paperclip.environment_leases SET expires_at = 'infinity' RETURNING status$$),
          'ERROR 42501', 'an agent cannot update a lease');
SELECT is(pg_temp.as_agent($$UPDATE paperclip.environment_leases SET cleanup_status = 'success' RETURNING status$$),
          'ERROR 42501', 'an agent cannot mark a cleanup done');
SELECT is(pg_temp.as_agent($$DELETE FROM paperclip.environment_leases RETURNING status$$),
          'ERROR 42501', 'an agent cannot delete a lease');
SELECT ok(NOT has_any_column_privilege('paperclip_agent', 'paperclip.environment_leases', 'INSERT')
          AND NOT has_any_column_privilege('paperclip_agent', 'paperclip.environment_leases', 'UPDATE')
          AND NOT has_table_privilege('paperclip_agent', 'paperclip.environment_leases', 'DELETE'),
          'paperclip_agent holds no write privilege on environment_leases, not even on a column');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
            WHERE p.pronamespace = 'paperclip'::regnamespace
              AND p.proname IN ('acquire_run_lease', 'release_run_leases', 'renew_run_lease', 'ensure_local_environment')
              AND NOT (p.prosecdef AND p.proconfig = ARRAY['search_path=pg_catalog, pg_temp'])),
          NULL, 'the lease functions are SECURITY DEFINER with search_path pinned to pg_catalog, pg_temp');

-- the agent's own path still works: acquire, renew through its run's heartbeat, release through its run's end
SELECT is(pg_temp.as_agent($$SELECT status FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000015f2')$$),
          'active', 'an agent acquires through the function');
UPDATE paperclip.environment_leases SET expires_at = now() + interval '1 minute'
 WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000015f2';
SELECT is(pg_temp.as_agent($$UPDATE paperclip.heartbeat_runs SET context_snapshot = '{"step": 3}'
                              WHERE id = '00000000-0000-0000-0000-0000000015f2' RETURNING status$$),
          'running', 'an agent reports progress on its run');
SELECT ok((SELECT expires_at > now() + interval '5 hours' FROM paperclip.environment_leases
            WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000015f2'),
          '...which renews the run''s lease (the trigger writes what the agent cannot)');
SELECT is(pg_temp.as_agent($$UPDATE paperclip.heartbeat_runs SET status = 'succeeded'
                              WHERE id = '00000000-0000-0000-0000-0000000015f2' RETURNING status$$),
          'succeeded', 'an agent ends its run');
SELECT is((SELECT status FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000015f2'),
          'released', '...which releases the run''s lease');
SELECT is(pg_temp.as_agent($$UPDATE paperclip.heartbeat_runs SET company_id = '00000000-0000-0000-0000-0000000000c2'
                              WHERE id = '00000000-0000-0000-0000-0000000015f2' RETURNING status$$),
          'ERROR 42501', 'an agent cannot move a run to another company');
UPDATE paperclip.heartbeat_runs SET status = 'running' WHERE id = '00000000-0000-0000-0000-0000000015f2';

-- ------------------------------------------------------------ INSERT: the database decides
SELECT throws_ok($$INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, lease_policy, provider)
                   VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3',
                           '00000000-0000-0000-0000-0000000015f2', 'ephemeral', 'fake')$$,
                 '23505', NULL, 'a second holder of a reusable sandbox, written as "ephemeral", is refused');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases
            WHERE environment_id = '00000000-0000-0000-0000-0000000000e3' AND status = 'active'), 1,
          'the reusable sandbox still has one holder');
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, lease_policy, provider)
VALUES (:'c1', '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000015f2', 'reuse_by_environment', 'fake');
SELECT is((SELECT lease_policy FROM paperclip.environment_leases
            WHERE environment_id = '00000000-0000-0000-0000-0000000000e2' AND heartbeat_run_id = '00000000-0000-0000-0000-0000000015f2'),
          'ephemeral', 'a lease of an environment that is not reusable cannot claim it exclusively');
SELECT throws_ok($$INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, expires_at)
                   VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1',
                           '00000000-0000-0000-0000-0000000015f1', 'infinity')$$,
                 '23514', NULL, 'an active lease that never expires is refused');
SELECT throws_ok($$INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, expires_at)
                   VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1',
                           '00000000-0000-0000-0000-0000000015f1', now() + interval '6 hours 1 minute')$$,
                 '23514', NULL, 'an expiry further ahead than the environment''s TTL (6 h) is refused');
SELECT lives_ok($$INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, expires_at)
                  VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1',
                          '00000000-0000-0000-0000-0000000015f1', now() + interval '5 hours')$$,
                'an expiry within the TTL is kept');
SELECT throws_ok($$INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id)
                   VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e2',
                           '00000000-0000-0000-0000-0000000015f3')$$,
                 '55000', 'heartbeat run 00000000-0000-0000-0000-0000000015f3 is succeeded',
                 'no active lease on a terminal run');
SELECT throws_ok($$INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id)
                   VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000ea',
                           '00000000-0000-0000-0000-0000000015f1')$$,
                 '55000', 'environment "archived fake" is not active', 'no active lease on an archived environment');
SELECT throws_ok($$INSERT INTO paperclip.environment_leases (company_id, environment_id)
                   VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e2')$$,
                 '55000', 'an active lease must belong to a heartbeat run', 'no active lease without a run');
SELECT throws_ok($$INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id)
                   VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e9',
                           '00000000-0000-0000-0000-0000000000f9')$$,
                 '23503', NULL, 'a lease cannot point at another company''s environment and run');
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, acquired_at, last_used_at,
                                          provider, metadata)
VALUES (:'c1', '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000015f1', '1999-01-01', '1999-01-01',
        'gone', '{"driver": "sandbox", "provider": "gone"}');
SELECT ok((SELECT acquired_at >= now() AND last_used_at = acquired_at AND expires_at = acquired_at + interval '6 hours'
             FROM paperclip.environment_leases
            WHERE environment_id = '00000000-0000-0000-0000-0000000000e2' AND heartbeat_run_id = '00000000-0000-0000-0000-0000000015f1'),
          'acquired_at is the time of the insert, whatever the row says; expires_at follows from it');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases a JOIN paperclip.environment_leases b
             ON a.fence < b.fence AND a.acquired_at > b.acquired_at),
          0, 'a larger fence never has an earlier acquired_at');

-- ------------------------------------------------------------ UPDATE of an active lease
CREATE TEMP TABLE active_lease AS
  SELECT id FROM paperclip.environment_leases
   WHERE environment_id = '00000000-0000-0000-0000-0000000000e2' AND heartbeat_run_id = '00000000-0000-0000-0000-0000000015f1';
SELECT throws_ok(format($$UPDATE paperclip.environment_leases SET %I = %s WHERE id = (SELECT id FROM active_lease)$$, col, val),
                 '55000', format('column "%s" of lease %s cannot change', col, (SELECT id FROM active_lease)),
                 format('an active lease''s %s cannot change', col))
  FROM (VALUES ('environment_id', '''00000000-0000-0000-0000-0000000000e1'''),
               ('company_id', '''00000000-0000-0000-0000-0000000000c2'''),
               ('lease_policy', '''retain_on_failure'''),
               ('provider', '''ssh'''),
               ('provider_lease_id', '''sandbox://fake/forged'''),
               ('acquired_at', '''1999-01-01''')) AS c(col, val);
SELECT throws_ok($$UPDATE paperclip.environment_leases SET heartbeat_run_id = '00000000-0000-0000-0000-0000000015f2'
                    WHERE id = (SELECT id FROM active_lease)$$,
                 '55000', NULL, 'an active lease cannot move to another run');
SELECT throws_ok($$UPDATE paperclip.environment_leases SET expires_at = 'infinity' WHERE id = (SELECT id FROM active_lease)$$,
                 '23514', NULL, 'an active lease cannot be renewed past its TTL');
SELECT lives_ok($$UPDATE paperclip.environment_leases SET expires_at = now() + interval '1 hour', last_used_at = now()
                   WHERE id = (SELECT id FROM active_lease)$$,
                'an active lease is renewed within its TTL');

-- ------------------------------------------------------------ release and history
UPDATE paperclip.environment_leases SET status = 'released', released_at = now(), cleanup_status = 'success'
 WHERE id = (SELECT id FROM active_lease);
SELECT is((SELECT cleanup_status FROM paperclip.environment_leases WHERE id = (SELECT id FROM active_lease)),
          'pending', 'a release cannot skip its cleanup: the driver says it is pending');
SELECT throws_ok(format($$UPDATE paperclip.environment_leases SET %I = %s WHERE id = (SELECT id FROM active_lease)$$, col, val),
                 '55000', format('lease %s is released: only its cleanup columns can change', (SELECT id FROM active_lease)),
                 format('a released lease''s %s cannot change', col))
  FROM (VALUES ('status', '''failed'''),
               ('released_at', '''1999-01-01'''),
               ('failure_reason', '''rewritten'''),
               ('expires_at', 'now()'),
               ('metadata', '''{"paperclipApiUrl": "http://evil"}''')) AS c(col, val);
SELECT throws_ok($$UPDATE paperclip.environment_leases SET status = 'active' WHERE id = (SELECT id FROM active_lease)$$,
                 '55000', NULL, 'a released lease never becomes active again');
SELECT lives_ok($$UPDATE paperclip.environment_leases SET cleanup_status = 'pending', cleanup_attempts = 1,
                                                         cleanup_error = 'try again', updated_at = now()
                   WHERE id = (SELECT id FROM active_lease)$$,
                'a failed cleanup attempt is recorded (pending → pending, attempts up)');
SELECT throws_ok($$UPDATE paperclip.environment_leases SET cleanup_attempts = 0 WHERE id = (SELECT id FROM active_lease)$$,
                 '55000', NULL, 'cleanup attempts never decrease');
SELECT lives_ok($$UPDATE paperclip.environment_leases SET cleanup_status = 'failed', cleanup_attempts = 2
                   WHERE id = (SELECT id FROM active_lease)$$,
                'a cleanup gives up: pending → failed');
SELECT lives_ok($$UPDATE paperclip.environment_leases SET cleanup_status = 'pending' WHERE id = (SELECT id FROM active_lease)$$,
                'a given-up cleanup may be retried: failed → pending');
SELECT lives_ok($$UPDATE paperclip.environment_leases SET cleanup_status = 'success', cleanup_attempts = 3, cleanup_error = NULL
                   WHERE id = (SELECT id FROM active_lease)$$,
                'a cleanup succeeds: pending → success');
SELECT throws_ok($$UPDATE paperclip.environment_leases SET cleanup_status = 'pending' WHERE id = (SELECT id FROM active_lease)$$,
                 '55000', format('cleanup of lease %s cannot go from success to pending', (SELECT id FROM active_lease)),
                 'a cleanup done stays done');
-- a local lease has no cleanup: it cannot be given one, nor be marked done
SELECT throws_ok($$UPDATE paperclip.environment_leases SET cleanup_status = 'success'
                    WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000015f2' AND status = 'released'$$,
                 '55000', NULL, 'a lease without side effects cannot be given a cleanup status');

SELECT * FROM finish();
ROLLBACK;
