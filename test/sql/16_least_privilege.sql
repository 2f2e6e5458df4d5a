\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(17);

-- No role but the owner holds a table-level write privilege on a table other
-- companies share, so no tenant can LOCK TABLE one of them (docs/security.md).
CREATE FUNCTION pg_temp.as_role(role_name text, query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  result text;
BEGIN
  PERFORM set_config('paperclip.company_id', '00000000-0000-0000-0000-0000000000c1', true);
  EXECUTE format('SET LOCAL ROLE %I', role_name);
  BEGIN
    EXECUTE query INTO result;
  EXCEPTION WHEN OTHERS THEN
    result := 'ERROR ' || SQLSTATE;
  END;
  RESET ROLE;
  PERFORM set_config('paperclip.company_id', '', true);
  RETURN coalesce(result, 'done');
END
$$;

SELECT is((SELECT array_agg(DISTINCT r || ' ' || priv || ' ' || c.relname ORDER BY r || ' ' || priv || ' ' || c.relname)
             FROM pg_class c,
                  unnest(ARRAY['paperclip_agent', 'paperclip_admin', 'pcr_c1_agent', 'pcr_c1_admin']) AS r,
                  unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS priv
            WHERE c.relnamespace = 'paperclip'::regnamespace AND c.relkind IN ('r', 'S')
              AND has_table_privilege(r, c.oid, priv)),
          NULL, 'no table-level write privilege on any paperclip table for either role');

-- LOCK TABLE needs table-level rights: none of them can take a lock that stops others
SELECT is(pg_temp.as_role('pcr_c1_agent', format('LOCK TABLE paperclip.%I IN ACCESS EXCLUSIVE MODE', t)),
          'ERROR 42501', 'an agent cannot LOCK TABLE paperclip.' || t)
  FROM unnest(ARRAY['heartbeat_runs', 'environment_leases', 'environments']) AS t;
SELECT is(pg_temp.as_role('pcr_c1_admin', format('LOCK TABLE paperclip.%I IN ACCESS EXCLUSIVE MODE', t)),
          'ERROR 42501', 'an admin cannot LOCK TABLE paperclip.' || t)
  FROM unnest(ARRAY['environments', 'company_secrets', 'heartbeat_runs']) AS t;
SELECT is(pg_temp.as_role('pcr_c1_admin', 'LOCK TABLE paperclip.environments IN ROW EXCLUSIVE MODE'),
          'ERROR 42501', 'an admin cannot even take ROW EXCLUSIVE (it has column privileges only)');

-- what the column privileges allow, and what they do not
SELECT is(pg_temp.as_role('pcr_c1_admin',
            $$INSERT INTO paperclip.environments (company_id, name, driver, config)
              VALUES ('00000000-0000-0000-0000-0000000000c1', 'made by admin', 'sandbox', '{"reuseLease": true}') RETURNING name$$),
          'made by admin', 'an admin creates an environment of its company');
SELECT is(pg_temp.as_role('pcr_c1_admin',
            $$INSERT INTO paperclip.environments (id, company_id, name)
              VALUES ('00000000-0000-0000-0000-0000000000e9', '00000000-0000-0000-0000-0000000000c1', 'chosen id') RETURNING name$$),
          'ERROR 42501', 'an admin cannot choose the id of an environment (nor probe other companies'' ids)');
SELECT is(pg_temp.as_role('pcr_c1_admin',
            $$UPDATE paperclip.environments SET status = 'archived' WHERE name = 'made by admin' RETURNING status$$),
          'archived', 'an admin archives an environment');
SELECT is(pg_temp.as_role('pcr_c1_admin', $$DELETE FROM paperclip.environments WHERE name = 'made by admin' RETURNING name$$),
          'ERROR 42501', 'an admin cannot delete an environment (archiving is its way out)');
SELECT is(pg_temp.as_role('pcr_c1_admin', $$DELETE FROM paperclip.company_secrets RETURNING name$$),
          'ERROR 42501', 'an admin cannot delete a secret (revoking is its way out)');
SELECT is(pg_temp.as_role('pcr_c1_agent',
            $$UPDATE paperclip.heartbeat_runs SET agent_id = '00000000-0000-0000-0000-0000000000a1' RETURNING status$$),
          'ERROR 42501', 'an agent updates only the progress columns of a run');

-- reconciler_status: health for administrators, cross-company figures only for pg_read_all_stats
SELECT is(pg_temp.as_role('pcr_c1_admin',
            $$SELECT (state IS NOT NULL AND passes IS NOT NULL AND total_leases_expired IS NULL
                      AND last_pass_errors IS NULL AND total_errors IS NULL AND last_error IS NULL)::text
                FROM paperclip.reconciler_status()$$),
          'true', 'an admin sees the reconciler''s state, not the totals or the last error of every company');
GRANT pg_read_all_stats TO pcr_c1_admin;
SELECT is(pg_temp.as_role('pcr_c1_admin',
            $$SELECT (total_leases_expired IS NOT NULL AND total_errors IS NOT NULL)::text FROM paperclip.reconciler_status()$$),
          'true', 'with pg_read_all_stats it sees them');
SELECT ok((SELECT total_errors IS NOT NULL AND total_leases_expired IS NOT NULL FROM paperclip.reconciler_status()),
          'a superuser sees them');

SELECT * FROM finish();
ROLLBACK;
