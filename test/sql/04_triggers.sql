\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(33);

CREATE TEMP TABLE held AS
  SELECT r.id AS run_id, (paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                                                      '00000000-0000-0000-0000-0000000000e2', r.id)).id AS lease_id
    FROM paperclip.heartbeat_runs r WHERE r.company_id = '00000000-0000-0000-0000-0000000000c1';
SELECT is((SELECT count(*)::int FROM held), 4, 'four runs hold a fake lease each');

-- a run entering a terminal status releases its leases in the same transaction
UPDATE paperclip.heartbeat_runs SET status = 'succeeded' WHERE id = '00000000-0000-0000-0000-0000000000f1';
SELECT is((SELECT status FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f1'),
          'released', 'succeeded → lease released');
UPDATE paperclip.heartbeat_runs SET status = 'failed', error = 'agent crashed', error_code = 'E_CRASH'
 WHERE id = '00000000-0000-0000-0000-0000000000f2';
SELECT is((SELECT (status, failure_reason)::text FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f2'),
          '(failed,"agent crashed")', 'failed → lease failed with the run''s error');
UPDATE paperclip.heartbeat_runs SET status = 'timed_out', error_code = 'E_TIMEOUT' WHERE id = '00000000-0000-0000-0000-0000000000f3';
SELECT is((SELECT (status, failure_reason)::text FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f3'),
          '(failed,E_TIMEOUT)', 'timed_out → lease failed with the run''s error_code');
UPDATE paperclip.heartbeat_runs SET status = 'cancelled' WHERE id = '00000000-0000-0000-0000-0000000000f4';
SELECT is((SELECT status FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f4'),
          'released', 'cancelled → lease released');
SELECT ok((SELECT bool_and(released_at = now()) FROM paperclip.environment_leases), 'released_at set by the trigger');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases WHERE status = 'active'), 0, 'no active lease left');

-- terminal leases never become active again; fences never change; active leases are never deleted
SELECT throws_ok($$UPDATE paperclip.environment_leases SET status = 'active' WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f1'$$,
                 '55000', NULL, 'released → active refused');
SELECT throws_ok($$UPDATE paperclip.environment_leases SET status = 'active', released_at = NULL WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f2'$$,
                 '55000', NULL, 'failed → active refused');

-- new runs for the rest of the tests
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status) VALUES
  ('00000000-0000-0000-0000-0000000001f1', '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1', 'running'),
  ('00000000-0000-0000-0000-0000000001f2', '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1', 'running'),
  ('00000000-0000-0000-0000-0000000001f3', '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1', 'running');
SELECT lives_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000001f1')$$,
                'run 1f1 acquires the local environment');
SELECT throws_ok($$UPDATE paperclip.environment_leases SET fence = fence + 1 WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000001f1'$$,
                 '55000', NULL, 'a fence cannot change');
SELECT throws_ok($$DELETE FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000001f1'$$,
                 '55000', NULL, 'an active lease cannot be deleted');
SELECT throws_ok($$INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, status)
                   VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000001f1', 'active')$$,
                 '23505', NULL, 'a second active lease of the same run and environment is refused by the database');
SELECT throws_ok($$INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id)
                   VALUES ('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000001f2')$$,
                 '23503', NULL, 'a lease cannot point at another company''s environment');

-- any other update of a non-terminal run renews its leases
UPDATE paperclip.environment_leases SET expires_at = now() - interval '5 minutes', last_used_at = now() - interval '1 hour'
 WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000001f1';
UPDATE paperclip.heartbeat_runs SET context_snapshot = '{"step": 2}' WHERE id = '00000000-0000-0000-0000-0000000001f1';
SELECT ok((SELECT expires_at = now() + interval '6 hours' AND last_used_at = now() FROM paperclip.environment_leases
            WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000001f1'),
          'an update of a running run renews its lease');

-- retain_on_failure: a failed release becomes retained
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, lease_policy, provider)
VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000001f2', 'retain_on_failure', 'fake');
UPDATE paperclip.heartbeat_runs SET status = 'failed', error = 'tests failed' WHERE id = '00000000-0000-0000-0000-0000000001f2';
SELECT is((SELECT (status, failure_reason)::text FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000001f2'),
          '(retained,"tests failed")', 'retain_on_failure + failed → retained');

-- a lease whose provider is not loaded leaves its cleanup pending; a retained one keeps its resource
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status) VALUES
  ('00000000-0000-0000-0000-0000000001f4', '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1', 'running');
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, lease_policy, provider, metadata)
VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000001f4', 'retain_on_failure', 'gone',
        '{"driver": "sandbox", "provider": "gone"}'),
       ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3', '00000000-0000-0000-0000-0000000001f4', 'ephemeral', 'gone',
        '{"driver": "sandbox", "provider": "gone"}');
SELECT results_eq($$SELECT lease_policy, status, cleanup_status FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000001f4', 'failed', 'x') ORDER BY lease_policy$$,
                  $$VALUES ('retain_on_failure'::text, 'retained'::text, NULL::text), ('reuse_by_environment', 'failed', 'pending')$$,
                  'a released sandbox lease awaits cleanup; a retained one has none (the lease on the reusable sandbox is reuse_by_environment, whatever the INSERT said)');

-- rows written by hand: the database draws the fence, fills in an expiry, and marks cleanups
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status) VALUES
  ('00000000-0000-0000-0000-0000000001f5', '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1', 'running');
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, provider, fence, metadata)
VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000001f5', 'gone', 9000000000000,
        '{"driver": "sandbox", "provider": "gone"}');
SELECT ok((SELECT fence < 9000000000000 AND fence = (SELECT max(fence) FROM paperclip.environment_leases)
             FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000001f5'),
          'an INSERT cannot choose its fence: the sequence draws it');
SELECT ok((SELECT expires_at = acquired_at + interval '6 hours' FROM paperclip.environment_leases
            WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000001f5'),
          'an active lease inserted without expires_at gets the default TTL');
UPDATE paperclip.environment_leases SET status = 'released', released_at = now()
 WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000001f5';
SELECT is((SELECT cleanup_status FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000001f5'),
          'pending', 'a plain UPDATE releasing a sandbox lease still leaves its cleanup pending');
SELECT throws_ok($$INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, lease_policy, provider)
                   SELECT '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3', id, 'reuse_by_environment', 'fake'
                     FROM paperclip.heartbeat_runs WHERE id IN ('00000000-0000-0000-0000-0000000001f3', '00000000-0000-0000-0000-0000000001f5')$$,
                 '23505', NULL, 'two active reusable leases of one environment are refused by the database');

-- deleting an environment with active leases is refused
SELECT throws_ok($$DELETE FROM paperclip.environments WHERE id = '00000000-0000-0000-0000-0000000000e1'$$,
                 '55000', 'environment "local one" has 1 active lease', 'deleting an environment with an active lease → 55000');
SELECT is((SELECT count(*)::int FROM paperclip.environments WHERE id = '00000000-0000-0000-0000-0000000000e1'), 1,
          'the environment is still there');
SELECT throws_ok($$DELETE FROM paperclip.companies WHERE id = '00000000-0000-0000-0000-0000000000c1'$$,
                 '55000', NULL, 'deleting a company with active leases is refused too');

-- deleting a run releases its active leases first
DELETE FROM paperclip.heartbeat_runs WHERE id = '00000000-0000-0000-0000-0000000001f1';
SELECT is((SELECT (status, heartbeat_run_id IS NULL, released_at = now())::text FROM paperclip.environment_leases
            WHERE environment_id = '00000000-0000-0000-0000-0000000000e1'),
          '(released,t,t)', 'deleting a run released its lease and kept the history');
SELECT lives_ok($$DELETE FROM paperclip.environments WHERE id = '00000000-0000-0000-0000-0000000000e1'$$,
                'an environment without active leases can be deleted');

-- the lease's driver is the one recorded at acquire time
SELECT lives_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3', '00000000-0000-0000-0000-0000000001f3')$$,
                'run 1f3 acquires the reusable fake sandbox');
UPDATE paperclip.environments SET driver = 'local', config = '{}' WHERE id = '00000000-0000-0000-0000-0000000000e3';
SELECT results_eq($$SELECT provider, metadata->>'driver', status FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000001f3')$$,
                  $$VALUES ('fake'::text, 'sandbox'::text, 'released'::text)$$,
                  'release after the environment changed driver uses the lease''s own driver');
-- ...which decides the cleanup: a sandbox lease (of a provider that is not loaded) on an
-- environment that is local by now still awaits its cleanup
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, provider, metadata)
VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3', '00000000-0000-0000-0000-0000000001f3', 'gone',
        '{"driver": "sandbox", "provider": "gone"}');
SELECT is((SELECT cleanup_status FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000001f3')),
          'pending', 'the cleanup follows the lease''s driver (sandbox), not the environment''s (local)');
-- a lease written by hand without expires_at gets its environment's leaseTtlSeconds
UPDATE paperclip.environments SET config = '{"leaseTtlSeconds": 120}' WHERE id = '00000000-0000-0000-0000-0000000000e3';
INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, provider)
VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3', '00000000-0000-0000-0000-0000000001f3', 'local');
SELECT ok((SELECT expires_at = acquired_at + interval '120 seconds' FROM paperclip.environment_leases
            WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000001f3' AND status = 'active'),
          'an active lease inserted without expires_at gets the environment''s leaseTtlSeconds');

-- a restore keeps the fences it writes back: pg_dump's scripts and pg_restore
-- set row_security = off, in which only roles that bypass row-level security
-- can write these tables at all
SELECT max(fence) + 1000 AS restored_fence FROM paperclip.environment_leases \gset
SET LOCAL row_security = off;
INSERT INTO paperclip.environment_leases (company_id, environment_id, status, released_at, provider, fence)
VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3', 'released', now(), 'local',
        :restored_fence);
SET LOCAL row_security = on;
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases WHERE fence = :restored_fence), 1,
          'with row_security = off (a restore), an INSERT keeps the fence it gives');
SELECT ok((SELECT fence > :restored_fence
             FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3',
                                              '00000000-0000-0000-0000-0000000001f4')),
          'the sequence was moved past the kept fence: the next acquisition draws a larger one');
SET LOCAL ROLE paperclip_agent;
SET LOCAL paperclip.company_id = '00000000-0000-0000-0000-0000000000c1';
SET LOCAL row_security = off;
SELECT throws_ok(format($$INSERT INTO paperclip.environment_leases (company_id, environment_id, status, released_at, provider, fence)
                          VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3', 'released', now(),
                                  'local', %s)$$, :restored_fence + 1),
                 '42501', 'query would be affected by row-level security policy for table "environment_leases"',
                 'a role under row-level security cannot write with row_security = off, so it never chooses a fence');
SET LOCAL row_security = on;
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
