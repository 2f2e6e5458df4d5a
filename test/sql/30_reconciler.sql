\set ECHO none
\i test/setup.sql
BEGIN;
SELECT plan(14);

-- the SQL surface of the reconciler
SELECT has_function('paperclip', 'reconciler_status', ARRAY[]::text[], 'paperclip.reconciler_status() exists');
SELECT function_returns('paperclip', 'reconciler_status', ARRAY[]::text[], 'record',
                        'reconciler_status() returns a record');
SELECT is(ARRAY(SELECT json_object_keys(row_to_json(s)) FROM paperclip.reconciler_status() AS s),
          ARRAY['state', 'pid', 'database', 'connect_failures', 'started_at', 'passes',
                'last_pass_started_at', 'last_pass_finished_at',
                'last_pass_leases_expired', 'last_pass_leases_released',
                'last_pass_cleanups_succeeded', 'last_pass_cleanup_attempts_failed',
                'last_pass_cleanups_given_up', 'last_pass_errors',
                'total_leases_expired', 'total_leases_released',
                'total_cleanups_succeeded', 'total_cleanup_attempts_failed',
                'total_cleanups_given_up', 'total_errors', 'last_error_at', 'last_error'],
          'reconciler_status() reports state, process, last pass and totals, last error');
SELECT has_function('paperclip', 'reconciler_wake', ARRAY[]::text[], 'paperclip.reconciler_wake() exists');
SELECT function_returns('paperclip', 'reconciler_wake', ARRAY[]::text[], 'boolean',
                        'reconciler_wake() returns boolean');

-- privileges: administrators only, never PUBLIC
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_proc AS p, aclexplode(p.proacl) AS a
                       WHERE p.oid IN ('paperclip.reconciler_status()'::regprocedure,
                                       'paperclip.reconciler_wake()'::regprocedure)
                         AND a.grantee = 0),
          'PUBLIC cannot execute the reconciler functions');
SELECT ok(has_function_privilege('paperclip_admin', 'paperclip.reconciler_status()', 'EXECUTE')
          AND has_function_privilege('paperclip_admin', 'paperclip.reconciler_wake()', 'EXECUTE'),
          'paperclip_admin may read the status and wake the reconciler');
SET LOCAL ROLE paperclip_agent;
SELECT throws_ok('SELECT paperclip.reconciler_status()', '42501',
                 'permission denied for function reconciler_status',
                 'paperclip_agent may not read the reconciler status');
SELECT throws_ok('SELECT paperclip.reconciler_wake()', '42501',
                 'permission denied for function reconciler_wake',
                 'paperclip_agent may not wake the reconciler');
RESET ROLE;

-- this server preloads the library: the reconciler is registered
SELECT isnt((SELECT state FROM paperclip.reconciler_status()), 'not loaded',
            'with shared_preload_libraries the reconciler is loaded');
SELECT is((SELECT database FROM paperclip.reconciler_status()), current_setting('paperclip.database'),
          'the status names paperclip.database');
-- test/run.sh makes this database paperclip.database; under a plain
-- "make installcheck" the reconciler may serve another one (then these two
-- are skipped: expected/30_reconciler_1.out)
SELECT current_setting('paperclip.database') = current_database() AS served \gset
\if :served
-- the suite creates this database just after the server starts: the worker's
-- first try may have found no database; give its restart up to 30 s
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN (SELECT state IN ('idle', 'reconciling') AND passes >= 1 FROM paperclip.reconciler_status());
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT ok((SELECT state IN ('idle', 'reconciling') FROM paperclip.reconciler_status()),
          'the reconciler is connected to this database, where the extension is installed, and working');
SELECT ok((SELECT passes >= 1 AND last_pass_finished_at IS NOT NULL AND total_errors = 0
                  AND total_leases_expired >= 0 AND total_leases_released >= 0 AND connect_failures >= 0
             FROM paperclip.reconciler_status()),
          'its start-up sweep has run, without errors');
\else
SELECT skip('the reconciler serves another database (paperclip.database)', 2);
\endif
SELECT lives_ok('SELECT paperclip.reconciler_wake()', 'an administrator can ask for a pass');

SELECT * FROM finish();
ROLLBACK;
