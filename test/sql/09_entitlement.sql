\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(39);

-- A role acts for the companies paperclip.company_roles entitles it to;
-- paperclip.company_id selects one of them, and selecting any other one gives
-- no rows and no rights.  Company c1's roles try to reach company c2.
\set c1 '00000000-0000-0000-0000-0000000000c1'
\set c2 '00000000-0000-0000-0000-0000000000c2'

-- a control plane entitled to both companies, an agent role entitled to none,
-- and a member of c1's agent role
CREATE ROLE pcr_cp NOLOGIN IN ROLE paperclip_agent, paperclip_admin;
CREATE ROLE pcr_nobody NOLOGIN IN ROLE paperclip_agent;
CREATE ROLE pcr_bot NOLOGIN IN ROLE pcr_c1_agent;
INSERT INTO paperclip.company_roles (company_id, role) VALUES (:'c1', 'pcr_cp'), (:'c2', 'pcr_cp');

-- company c2 holds a lease and a secret
CREATE TEMP TABLE c2_lease AS
  SELECT * FROM paperclip.acquire_run_lease(:'c2', '00000000-0000-0000-0000-0000000000e9', '00000000-0000-0000-0000-0000000000f9');
CREATE TEMP TABLE c2_secret AS SELECT * FROM paperclip.secret_create(:'c2', 'c2-token', 'B-CANARY-31f4');
GRANT SELECT ON c2_lease, c2_secret TO PUBLIC;

-- the result (or "ERROR <sqlstate>") of a query run as a role with a company selected
CREATE FUNCTION pg_temp.as_role(role_name text, company text, query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  result text;
BEGIN
  PERFORM set_config('paperclip.company_id', coalesce(company, ''), true);
  EXECUTE format('SET LOCAL ROLE %I', role_name);
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
-- rows of company c2 visible, over every table
CREATE FUNCTION pg_temp.c2_rows() RETURNS text LANGUAGE sql AS $$
  SELECT 'SELECT ((SELECT count(*) FROM paperclip.companies WHERE id = ''00000000-0000-0000-0000-0000000000c2'')
                + (SELECT count(*) FROM paperclip.agents WHERE company_id = ''00000000-0000-0000-0000-0000000000c2'')
                + (SELECT count(*) FROM paperclip.environments WHERE company_id = ''00000000-0000-0000-0000-0000000000c2'')
                + (SELECT count(*) FROM paperclip.heartbeat_runs WHERE company_id = ''00000000-0000-0000-0000-0000000000c2'')
                + (SELECT count(*) FROM paperclip.environment_leases WHERE company_id = ''00000000-0000-0000-0000-0000000000c2''))::text'
$$;

-- ------------------------------------------------------------ the mapping
SELECT has_table('paperclip', 'company_roles', 'paperclip.company_roles exists');
SELECT col_type_is('paperclip', 'company_roles', 'company_id', 'uuid', 'company_roles.company_id is a uuid');
SELECT col_type_is('paperclip', 'company_roles', 'role', 'regrole', 'company_roles.role is a regrole');
SELECT ok(NOT bool_or(has_table_privilege(r, 'paperclip.company_roles', 'SELECT')
                      OR has_table_privilege(r, 'paperclip.company_roles', 'INSERT')),
          'only the owner reads or writes company_roles')
  FROM unnest(ARRAY['public', 'paperclip_agent', 'paperclip_admin', 'pcr_c1_admin', 'pcr_cp']) AS r;

-- ------------------------------------------------------------ the effective company
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c1', 'SELECT paperclip.current_company_id()::text'), :'c1',
          'an entitled role selecting its company acts for it');
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c2', 'SELECT coalesce(paperclip.current_company_id()::text, ''none'')'), 'none',
          'selecting a company the role is not entitled to selects nothing');
SELECT is(pg_temp.as_role('pcr_c1_agent', NULL, 'SELECT coalesce(paperclip.current_company_id()::text, ''none'')'), 'none',
          'no selection, no company');
SELECT throws_ok($$SET LOCAL paperclip.company_id = 'not-a-company'$$, '22023', NULL,
                 'paperclip.company_id must be a uuid (or empty)');

-- ------------------------------------------------------------ switching by the setting
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c2', pg_temp.c2_rows()), '0',
          'agent c1: SET paperclip.company_id to c2 shows no row of c2 in any table');
SELECT is(pg_temp.as_role('pcr_c1_admin', :'c2', pg_temp.c2_rows()), '0',
          'admin c1: SET paperclip.company_id to c2 shows no row of c2 in any table');
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c1',
            $$SELECT (SELECT count(*) FROM paperclip.environments WHERE company_id = '00000000-0000-0000-0000-0000000000c2')::text
                FROM (SELECT set_config('paperclip.company_id', '00000000-0000-0000-0000-0000000000c2', true)) AS s$$),
          '0', 'agent c1: set_config() inside a query shows no row of c2 either');
SELECT is(pg_temp.as_role('pcr_c1_admin', :'c2',
            $$SELECT (SELECT count(*) FROM paperclip.company_secrets WHERE company_id = '00000000-0000-0000-0000-0000000000c2')::text$$),
          '0', 'admin c1 selecting c2 sees none of its secrets');

-- ------------------------------------------------------------ no rights in another company
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c2',
            $$SELECT status FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-0000000000e9', '00000000-0000-0000-0000-0000000000f9')$$),
          'ERROR 42501', 'agent c1 selecting c2 cannot acquire in c2');
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c1',
            $$SELECT status FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-0000000000e9', '00000000-0000-0000-0000-0000000000f9')$$),
          'ERROR 42501', 'agent c1 acting for c1 cannot acquire in c2');
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c1',
            $$SELECT count(*)::text FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f9')$$),
          '0', 'agent c1 releasing a run of c2 releases nothing');
SELECT is((SELECT status FROM paperclip.environment_leases WHERE id = (SELECT id FROM c2_lease)), 'active',
          '...and the lease of c2 is still active');
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c2',
            $$SELECT count(*)::text FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f9')$$),
          'ERROR 42501', 'agent c1 selecting c2 cannot release at all');
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c1',
            format('SELECT status FROM paperclip.renew_run_lease(%L)', (SELECT id FROM c2_lease))),
          'ERROR 42704', 'agent c1 cannot renew a lease of c2: it does not exist for it');
SELECT is(pg_temp.as_role('pcr_c1_admin', :'c2',
            format('SELECT paperclip.secret_resolve(%L, jsonb_build_object(''type'', ''secret_ref'', ''secretId'', %L, ''version'', ''latest''))',
                   :'c2', (SELECT id FROM c2_secret))),
          'ERROR 42501', 'admin c1 selecting c2 cannot resolve a secret of c2');
SELECT is(pg_temp.as_role('pcr_c1_admin', :'c1',
            format('SELECT paperclip.secret_resolve(%L, jsonb_build_object(''type'', ''secret_ref'', ''secretId'', %L, ''version'', ''latest''))',
                   :'c2', (SELECT id FROM c2_secret))),
          'ERROR 42501', 'admin c1 acting for c1 cannot resolve a secret of c2');
SELECT is(pg_temp.as_role('pcr_c1_admin', :'c2',
            $$WITH u AS (UPDATE paperclip.environments SET description = 'taken' WHERE company_id = '00000000-0000-0000-0000-0000000000c2' RETURNING 1)
              SELECT count(*)::text FROM u$$),
          '0', 'admin c1 selecting c2 changes no environment of c2');
SELECT is(pg_temp.as_role('pcr_c1_admin', :'c1',
            $$INSERT INTO paperclip.environments (company_id, name) VALUES ('00000000-0000-0000-0000-0000000000c2', 'planted') RETURNING name$$),
          'ERROR 42501', 'admin c1 cannot create an environment in c2');
SELECT is(pg_temp.as_role('pcr_c1_admin', :'c2',
            $$SELECT (paperclip.ensure_local_environment('00000000-0000-0000-0000-0000000000c2')).name$$),
          'ERROR 42501', 'admin c1 selecting c2 cannot ensure c2''s local environment');

-- ------------------------------------------------------------ a role entitled to several companies
SELECT is(pg_temp.as_role('pcr_cp', :'c1',
            $$SELECT string_agg(DISTINCT company_id::text, ',') FROM paperclip.environments$$),
          :'c1', 'a control plane entitled to c1 and c2, selecting c1, sees c1 only');
SELECT is(pg_temp.as_role('pcr_cp', :'c2',
            $$SELECT string_agg(DISTINCT company_id::text, ',') FROM paperclip.environments$$),
          :'c2', '...selecting c2, sees c2 only');
SELECT is(pg_temp.as_role('pcr_cp', :'c2',
            $$SELECT status FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-0000000000e9', '00000000-0000-0000-0000-0000000000f9')$$),
          'active', '...and acts for c2 when it selects c2');
SELECT is(pg_temp.as_role('pcr_cp', :'c2',
            $$SELECT status FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f1')$$),
          'ERROR 42501', '...but not for c1 while c2 is selected');

-- ------------------------------------------------------------ roles, membership, SET ROLE, definers
SELECT is(pg_temp.as_role('pcr_nobody', :'c1', 'SELECT count(*)::text FROM paperclip.environments'), '0',
          'a paperclip_agent entitled to no company sees nothing');
SELECT is(pg_temp.as_role('pcr_nobody', :'c1',
            $$SELECT status FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f1')$$),
          'ERROR 42501', '...and can do nothing');
SELECT is(pg_temp.as_role('pcr_bot', :'c1', 'SELECT paperclip.current_company_id()::text'), :'c1',
          'a member of an entitled role is entitled (its privileges count, as for tables)');

-- a SECURITY DEFINER function owned by the control plane does not lend its entitlements
CREATE FUNCTION public.cp_view() RETURNS text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT coalesce(paperclip.current_company_id()::text, 'none') || '/' ||
         (SELECT count(*) FROM paperclip.environments)::text
$$;
ALTER FUNCTION public.cp_view() OWNER TO pcr_cp;
SELECT is(pg_temp.as_role('pcr_cp', :'c2', 'SELECT public.cp_view()'), :'c2' || '/1',
          'the control plane''s own definer function, called by it, acts for c2');
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c2', 'SELECT public.cp_view()'), 'none/0',
          'called by agent c1 selecting c2, it acts for no company: entitlements follow the session''s role');
-- nor does one owned by a superuser, around the lease functions
CREATE FUNCTION public.su_acquire() RETURNS text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT status FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-0000000000e9', '00000000-0000-0000-0000-0000000000f9')
$$;
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c2', 'SELECT public.su_acquire()'), 'ERROR 42501',
          'a superuser''s definer function calling acquire_run_lease acts for its caller, not for the superuser');
SELECT lives_ok($$SELECT public.su_acquire()$$, 'called by a superuser, it acts for any company');

-- ------------------------------------------------------------ the owner and the policies
SELECT set_config('paperclip.company_id', :'c2', true) IS NOT NULL AS selected \gset
SELECT is((SELECT status FROM paperclip.acquire_run_lease(:'c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f1')),
          'active', 'the owner (not restricted by row-level security) acts for any company, whatever it selects');
SELECT set_config('paperclip.company_id', '', true) IS NOT NULL AS reset \gset
SELECT is((SELECT count(*)::int FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
            WHERE c.relnamespace = 'paperclip'::regnamespace
              AND pg_get_expr(p.polqual, p.polrelid) NOT LIKE '%= ( SELECT %current_company_id() AS current_company_id)%'),
          0, 'every policy compares with the effective company, evaluated once per statement');
SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
            WHERE c.relnamespace = 'paperclip'::regnamespace AND c.relkind = 'r' AND NOT c.relrowsecurity),
          NULL, 'every table of the schema has row-level security enabled');

-- ------------------------------------------------------------ entitlements change at once
DELETE FROM paperclip.company_roles WHERE role = 'pcr_c1_agent'::regrole;
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c1', 'SELECT count(*)::text FROM paperclip.environments'), '0',
          'once its mapping is deleted, a role sees nothing of the company');
SELECT is(pg_temp.as_role('pcr_c1_agent', :'c1',
            $$SELECT status FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000000f2')$$),
          'ERROR 42501', '...and can do nothing in it');

SELECT * FROM finish();
ROLLBACK;
