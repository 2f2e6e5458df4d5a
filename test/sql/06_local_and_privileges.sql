\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(29);

-- ensure_local_environment
DELETE FROM paperclip.environments WHERE id = '00000000-0000-0000-0000-0000000000e9';
CREATE TEMP TABLE loc AS SELECT * FROM paperclip.ensure_local_environment('00000000-0000-0000-0000-0000000000c2');
SELECT is((SELECT (name, driver, status)::text FROM loc), '(Local,local,active)', 'creates Local with the local driver');
SELECT is((SELECT metadata FROM loc), '{"managedByPaperclip": true, "defaultForCompany": true}'::jsonb,
          'the created environment is marked as managed and default');
SELECT is((SELECT id FROM paperclip.ensure_local_environment('00000000-0000-0000-0000-0000000000c2')), (SELECT id FROM loc),
          'a second call returns the same environment');
SELECT is((SELECT count(*)::int FROM paperclip.environments WHERE company_id = '00000000-0000-0000-0000-0000000000c2'), 1,
          'only one local environment exists');
SELECT is((SELECT id FROM paperclip.ensure_local_environment('00000000-0000-0000-0000-0000000000c1')),
          '00000000-0000-0000-0000-0000000000e1'::uuid, 'an existing local environment is returned');
UPDATE paperclip.environments SET status = 'archived' WHERE id = '00000000-0000-0000-0000-0000000000e1';
SELECT is((SELECT (id, status)::text FROM paperclip.ensure_local_environment('00000000-0000-0000-0000-0000000000c1')),
          '(00000000-0000-0000-0000-0000000000e1,archived)', 'an archived local environment is returned untouched');
SELECT throws_ok($$SELECT paperclip.ensure_local_environment(NULL)$$, '22004', 'company_id must not be null', 'NULL company → 22004');
SELECT throws_ok($$SELECT paperclip.ensure_local_environment('00000000-0000-0000-0000-00000000dead')$$, '42704',
                 'company 00000000-0000-0000-0000-00000000dead does not exist', 'unknown company → 42704');
SELECT throws_ok($$INSERT INTO paperclip.environments (company_id, name, driver) VALUES ('00000000-0000-0000-0000-0000000000c1', 'second local', 'local')$$,
                 '23505', NULL, 'a second local environment is refused by the database');
UPDATE paperclip.environments SET status = 'active' WHERE id = '00000000-0000-0000-0000-0000000000e1';

-- nothing is granted to PUBLIC
SELECT ok(NOT has_table_privilege('public', 'paperclip.' || t, 'SELECT'), 'PUBLIC cannot read paperclip.' || t)
  FROM unnest(ARRAY['companies', 'agents', 'environments', 'heartbeat_runs', 'environment_leases',
                    'company_secrets', 'company_secret_versions']) AS t;
SELECT is((SELECT count(*)::int FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
            WHERE p.pronamespace = 'paperclip'::regnamespace AND a.grantee = 0),
          0, 'PUBLIC can execute no paperclip function');
SELECT ok(has_function_privilege('paperclip_agent', 'paperclip.acquire_run_lease(uuid,uuid,uuid,uuid,uuid,text)', 'EXECUTE'),
          'paperclip_agent may acquire');
SELECT ok(has_function_privilege('paperclip_agent', 'paperclip.release_run_leases(uuid,text,text)', 'EXECUTE'),
          'paperclip_agent may release');
SELECT ok(NOT has_table_privilege('paperclip_agent', 'paperclip.environments', 'UPDATE'),
          'paperclip_agent cannot change environments');
SELECT ok(NOT has_column_privilege('paperclip_agent', 'paperclip.environment_leases', 'heartbeat_run_id', 'UPDATE')
          AND NOT has_column_privilege('paperclip_agent', 'paperclip.environment_leases', 'provider_lease_id', 'UPDATE'),
          'paperclip_agent cannot re-point a lease or rewrite its provider lease');
SELECT ok(has_column_privilege('paperclip_admin', 'paperclip.environments', 'config', 'UPDATE')
          AND has_column_privilege('paperclip_admin', 'paperclip.environments', 'config', 'INSERT')
          AND NOT has_table_privilege('paperclip_admin', 'paperclip.environments', 'UPDATE'),
          'paperclip_admin administers environments, through column privileges only');
SELECT ok(NOT rolcanlogin, rolname || ' is NOLOGIN') FROM pg_roles WHERE rolname IN ('paperclip_admin', 'paperclip_agent') ORDER BY rolname;

-- row-level security by company for non-owner roles
GRANT SELECT ON loc TO paperclip_agent;
SET LOCAL paperclip.company_id = '00000000-0000-0000-0000-0000000000c1';
SET LOCAL ROLE pcr_c1_agent;
SELECT is((SELECT count(*)::int FROM paperclip.environments WHERE company_id <> '00000000-0000-0000-0000-0000000000c1'), 0,
          'an agent role sees no environment of another company');
SELECT ok((SELECT count(*) FROM paperclip.environments) > 0, 'an agent role sees its own company''s environments');
SELECT is((SELECT status FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1',
                                                          '00000000-0000-0000-0000-0000000000f1')),
          'active', 'an agent role acquires a lease of its company');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c2', (SELECT id FROM loc), '00000000-0000-0000-0000-0000000000f9')$$,
                 '42501', 'role "pcr_c1_agent" may not act for company 00000000-0000-0000-0000-0000000000c2',
                 'an agent role cannot acquire in another company (42501)');
SELECT is((SELECT count(*)::int FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f1')), 1,
          'an agent role releases its run''s lease');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
