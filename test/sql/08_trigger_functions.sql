\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(28);

-- The trigger functions fire on the extension's tables only.  Nobody but the
-- owner may attach them anywhere; attached by the owner to a table of the
-- wrong shape, each raises 39P01 and the server stays up (this session runs on).
SELECT pg_postmaster_start_time() AS started \gset

-- ------------------------------------------------------------ no EXECUTE on a trigger function
SELECT is((SELECT count(*)::int FROM pg_proc p
            WHERE p.pronamespace = 'paperclip'::regnamespace AND p.prorettype = 'trigger'::regtype
              AND has_function_privilege(r, p.oid, 'EXECUTE')),
          0, r || ' may execute no paperclip trigger function')
  FROM unnest(ARRAY['public', 'paperclip_agent', 'paperclip_admin', 'pcr_c1_agent', 'pcr_c1_admin']) AS r;
SELECT is((SELECT count(*)::int FROM pg_proc
            WHERE pronamespace = 'paperclip'::regnamespace AND prorettype = 'trigger'::regtype),
          6, 'the extension has six trigger functions');

-- a tenant cannot attach them to a table of its own
SET LOCAL ROLE pcr_c1_agent;
CREATE TEMP TABLE mine (id int, status int, fence int, name int, driver int, config int);
SELECT throws_ok(format($$CREATE TRIGGER t BEFORE UPDATE ON mine FOR EACH ROW EXECUTE FUNCTION paperclip.%I()$$, f),
                 '42501', format('permission denied for function paperclip.%s', f),
                 format('an agent cannot attach %s to a table', f))
  FROM unnest(ARRAY['environment_leases_guard', 'environments_config_trigger', 'environments_delete_guard',
                    'heartbeat_runs_after_update', 'heartbeat_runs_before_delete',
                    'environments_sandbox_sweep']) AS f;
RESET ROLE;

-- ------------------------------------------------------------ attached anyway: an error, not a crash
CREATE TEMP TABLE hostile (id int, status int, fence int, name int, driver int, config int,
                           company_id int, environment_id int, metadata int, provider int);
INSERT INTO hostile VALUES (1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
CREATE FUNCTION pg_temp.attach(fn text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DROP TRIGGER IF EXISTS t ON hostile;
  EXECUTE format('CREATE TRIGGER t BEFORE INSERT OR UPDATE OR DELETE ON hostile FOR EACH ROW EXECUTE FUNCTION paperclip.%I()', fn);
END $$;

SELECT pg_temp.attach('environment_leases_guard');
SELECT throws_ok('UPDATE hostile SET id = 2', '39P01',
                 'trigger function "environment_leases_guard" fires only on paperclip.environment_leases, not on "hostile"',
                 'environment_leases_guard on another table: UPDATE → 39P01');
SELECT throws_ok('DELETE FROM hostile', '39P01', NULL, 'environment_leases_guard on another table: DELETE → 39P01');
SELECT throws_ok('INSERT INTO hostile VALUES (1)', '39P01', NULL, 'environment_leases_guard on another table: INSERT → 39P01');

SELECT pg_temp.attach('environments_config_trigger');
SELECT throws_ok('UPDATE hostile SET id = 2', '39P01',
                 'trigger function "environments_config_trigger" fires only on paperclip.environments, not on "hostile"',
                 'environments_config_trigger on another table: UPDATE → 39P01');
SELECT throws_ok('DELETE FROM hostile', '39P01', NULL, 'environments_config_trigger on another table: DELETE → 39P01');

SELECT pg_temp.attach('environments_delete_guard');
SELECT throws_ok('UPDATE hostile SET id = 2', '39P01', NULL, 'environments_delete_guard on another table: UPDATE → 39P01');
SELECT throws_ok('DELETE FROM hostile', '39P01',
                 'trigger function "environments_delete_guard" fires only on paperclip.environments, not on "hostile"',
                 'environments_delete_guard on another table: DELETE → 39P01');

DROP TRIGGER t ON hostile;
CREATE TRIGGER t AFTER UPDATE OR DELETE ON hostile FOR EACH ROW EXECUTE FUNCTION paperclip.environments_sandbox_sweep();
SELECT throws_ok('UPDATE hostile SET id = 2', '39P01',
                 'trigger function "environments_sandbox_sweep" fires only on paperclip.environments, not on "hostile"',
                 'environments_sandbox_sweep on another table: UPDATE → 39P01');
SELECT throws_ok('DELETE FROM hostile', '39P01', NULL, 'environments_sandbox_sweep on another table: DELETE → 39P01');
DROP TRIGGER t ON hostile;
CREATE TRIGGER t AFTER UPDATE ON hostile FOR EACH ROW EXECUTE FUNCTION paperclip.heartbeat_runs_after_update();
SELECT throws_ok('UPDATE hostile SET id = 2', '39P01', NULL,
                 'heartbeat_runs_after_update (SECURITY DEFINER) on another table: 39P01, nothing released');
DROP TRIGGER t ON hostile;
CREATE TRIGGER t BEFORE DELETE ON hostile FOR EACH ROW EXECUTE FUNCTION paperclip.heartbeat_runs_before_delete();
SELECT throws_ok('DELETE FROM hostile', '39P01', NULL,
                 'heartbeat_runs_before_delete (SECURITY DEFINER) on another table: 39P01');
DROP TRIGGER t ON hostile;

-- on the right table, but fired for the wrong event
CREATE TRIGGER wrong_event AFTER UPDATE ON paperclip.environments
    FOR EACH ROW EXECUTE FUNCTION paperclip.environments_delete_guard();
SELECT throws_ok($$UPDATE paperclip.environments SET description = 'x' WHERE id = '00000000-0000-0000-0000-0000000000e1'$$,
                 '39P01', 'trigger function "environments_delete_guard" fired for an event it does not handle',
                 'environments_delete_guard fired AFTER UPDATE → 39P01');
DROP TRIGGER wrong_event ON paperclip.environments;
CREATE TRIGGER wrong_event BEFORE UPDATE ON paperclip.environments
    FOR EACH ROW EXECUTE FUNCTION paperclip.environments_sandbox_sweep();
SELECT throws_ok($$UPDATE paperclip.environments SET description = 'x' WHERE id = '00000000-0000-0000-0000-0000000000e1'$$,
                 '39P01', 'trigger function "environments_sandbox_sweep" fired for an event it does not handle',
                 'environments_sandbox_sweep fired BEFORE UPDATE → 39P01');
DROP TRIGGER wrong_event ON paperclip.environments;

-- on the right table whose column has another type: the type is checked, not assumed
ALTER TABLE paperclip.environments ALTER COLUMN name TYPE varchar(64);
SELECT throws_ok($$DELETE FROM paperclip.environments WHERE id = '00000000-0000-0000-0000-0000000000e9'$$,
                 '42804', 'column "name" of relation "environments" has type character varying, not text',
                 'a column of an unexpected type → 42804 naming it');

SELECT is(pg_postmaster_start_time(), :'started'::timestamptz, 'the server was not restarted');
SELECT ok(pg_backend_pid() > 0, 'this session survived every variant');

SELECT * FROM finish();
ROLLBACK;
