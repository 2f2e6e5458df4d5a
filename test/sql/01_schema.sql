\set ECHO none
\i test/setup.sql
BEGIN;
SELECT plan(143);

-- tables
SELECT has_table('paperclip', t, 'table paperclip.' || t || ' exists')
  FROM unnest(ARRAY['companies', 'agents', 'environments', 'heartbeat_runs',
                    'environment_leases', 'company_secrets', 'company_secret_versions']) AS t;
SELECT has_sequence('paperclip', 'environment_lease_fence_seq', 'the fence sequence exists');

-- columns and their types
SELECT col_type_is('paperclip', t, c, ty, format('%s.%s is %s', t, c, ty))
  FROM (VALUES
    ('companies', 'id', 'uuid'), ('companies', 'name', 'text'), ('companies', 'status', 'text'),
    ('companies', 'created_at', 'timestamp with time zone'), ('companies', 'updated_at', 'timestamp with time zone'),
    ('agents', 'id', 'uuid'), ('agents', 'company_id', 'uuid'), ('agents', 'name', 'text'),
    ('agents', 'role', 'text'), ('agents', 'status', 'text'), ('agents', 'adapter_type', 'text'),
    ('agents', 'adapter_config', 'jsonb'), ('agents', 'runtime_config', 'jsonb'), ('agents', 'permissions', 'jsonb'),
    ('agents', 'default_environment_id', 'uuid'),
    ('environments', 'id', 'uuid'), ('environments', 'company_id', 'uuid'), ('environments', 'name', 'text'),
    ('environments', 'description', 'text'), ('environments', 'driver', 'text'), ('environments', 'status', 'text'),
    ('environments', 'config', 'jsonb'), ('environments', 'metadata', 'jsonb'),
    ('environments', 'created_at', 'timestamp with time zone'), ('environments', 'updated_at', 'timestamp with time zone'),
    ('heartbeat_runs', 'id', 'uuid'), ('heartbeat_runs', 'company_id', 'uuid'), ('heartbeat_runs', 'agent_id', 'uuid'),
    ('heartbeat_runs', 'invocation_source', 'text'), ('heartbeat_runs', 'status', 'text'),
    ('heartbeat_runs', 'started_at', 'timestamp with time zone'), ('heartbeat_runs', 'finished_at', 'timestamp with time zone'),
    ('heartbeat_runs', 'error', 'text'), ('heartbeat_runs', 'error_code', 'text'),
    ('heartbeat_runs', 'context_snapshot', 'jsonb'),
    ('environment_leases', 'id', 'uuid'), ('environment_leases', 'company_id', 'uuid'),
    ('environment_leases', 'environment_id', 'uuid'), ('environment_leases', 'execution_workspace_id', 'uuid'),
    ('environment_leases', 'issue_id', 'uuid'), ('environment_leases', 'heartbeat_run_id', 'uuid'),
    ('environment_leases', 'status', 'text'), ('environment_leases', 'lease_policy', 'text'),
    ('environment_leases', 'provider', 'text'), ('environment_leases', 'provider_lease_id', 'text'),
    ('environment_leases', 'fence', 'bigint'),
    ('environment_leases', 'acquired_at', 'timestamp with time zone'),
    ('environment_leases', 'last_used_at', 'timestamp with time zone'),
    ('environment_leases', 'expires_at', 'timestamp with time zone'),
    ('environment_leases', 'released_at', 'timestamp with time zone'),
    ('environment_leases', 'failure_reason', 'text'), ('environment_leases', 'cleanup_status', 'text'),
    ('environment_leases', 'cleanup_attempts', 'integer'), ('environment_leases', 'cleanup_error', 'text'),
    ('environment_leases', 'metadata', 'jsonb'),
    ('environment_leases', 'created_at', 'timestamp with time zone'),
    ('environment_leases', 'updated_at', 'timestamp with time zone'),
    ('company_secrets', 'id', 'uuid'), ('company_secrets', 'company_id', 'uuid'), ('company_secrets', 'name', 'text'),
    ('company_secrets', 'provider', 'text'), ('company_secrets', 'external_ref', 'text'),
    ('company_secrets', 'latest_version', 'integer'), ('company_secrets', 'description', 'text'),
    ('company_secrets', 'created_by_agent_id', 'uuid'), ('company_secrets', 'created_by_user_id', 'text'),
    ('company_secret_versions', 'id', 'uuid'), ('company_secret_versions', 'company_id', 'uuid'),
    ('company_secret_versions', 'secret_id', 'uuid'), ('company_secret_versions', 'version', 'integer'),
    ('company_secret_versions', 'material', 'jsonb'), ('company_secret_versions', 'value_fingerprint', 'text'),
    ('company_secret_versions', 'key_id', 'text'), ('company_secret_versions', 'revoked_at', 'timestamp with time zone')
  ) AS v(t, c, ty);

-- defaults that the control plane relies on
SELECT col_default_is('paperclip', 'companies', 'status', 'active', 'companies.status defaults to active');
SELECT col_default_is('paperclip', 'agents', 'role', 'general', 'agents.role defaults to general');
SELECT col_default_is('paperclip', 'agents', 'adapter_type', 'process', 'agents.adapter_type defaults to process');
SELECT col_default_is('paperclip', 'environments', 'driver', 'local', 'environments.driver defaults to local');
SELECT col_default_is('paperclip', 'heartbeat_runs', 'status', 'queued', 'heartbeat_runs.status defaults to queued');
SELECT col_default_is('paperclip', 'heartbeat_runs', 'invocation_source', 'on_demand', 'invocation_source defaults to on_demand');
SELECT col_default_is('paperclip', 'environment_leases', 'status', 'active', 'lease status defaults to active');
SELECT col_default_is('paperclip', 'environment_leases', 'lease_policy', 'ephemeral', 'lease_policy defaults to ephemeral');
SELECT col_default_is('paperclip', 'environment_leases', 'cleanup_attempts', '0', 'cleanup_attempts defaults to 0');
SELECT col_default_is('paperclip', 'company_secrets', 'provider', 'local_encrypted', 'secret provider defaults to local_encrypted');
SELECT col_not_null('paperclip', 'environment_leases', 'fence', 'fence is NOT NULL');
SELECT col_is_null('paperclip', 'environment_leases', 'heartbeat_run_id', 'heartbeat_run_id is nullable (a deleted run leaves history)');

-- primary keys
SELECT col_is_pk('paperclip', t, 'id', t || ' has primary key id')
  FROM unnest(ARRAY['companies', 'agents', 'environments', 'heartbeat_runs',
                    'environment_leases', 'company_secrets', 'company_secret_versions']) AS t;

-- company-scoped foreign keys
SELECT fk_ok('paperclip', 'environment_leases', ARRAY['company_id', 'environment_id'],
             'paperclip', 'environments', ARRAY['company_id', 'id'], 'lease → environment FK includes company_id');
SELECT fk_ok('paperclip', 'environment_leases', ARRAY['company_id', 'heartbeat_run_id'],
             'paperclip', 'heartbeat_runs', ARRAY['company_id', 'id'], 'lease → run FK includes company_id');
SELECT fk_ok('paperclip', 'heartbeat_runs', ARRAY['company_id', 'agent_id'],
             'paperclip', 'agents', ARRAY['company_id', 'id'], 'run → agent FK includes company_id');
SELECT fk_ok('paperclip', 'agents', ARRAY['company_id', 'default_environment_id'],
             'paperclip', 'environments', ARRAY['company_id', 'id'], 'agent → default environment FK includes company_id');
SELECT fk_ok('paperclip', 'company_secret_versions', ARRAY['company_id', 'secret_id'],
             'paperclip', 'company_secrets', ARRAY['company_id', 'id'], 'secret version → secret FK includes company_id');
SELECT fk_ok('paperclip', 'company_secrets', ARRAY['company_id', 'created_by_agent_id'],
             'paperclip', 'agents', ARRAY['company_id', 'id'], 'secret → creating agent FK includes company_id');
SELECT fk_ok('paperclip', t, 'company_id', 'paperclip', 'companies', 'id', t || '.company_id references companies')
  FROM unnest(ARRAY['agents', 'environments', 'heartbeat_runs', 'environment_leases', 'company_secrets']) AS t;

-- status checks
SELECT has_check('paperclip', t, t || ' has CHECK constraints')
  FROM unnest(ARRAY['companies', 'environments', 'heartbeat_runs', 'environment_leases']) AS t;
SELECT throws_ok($$INSERT INTO paperclip.companies (name, status) VALUES ('x', 'gone')$$,
                 '23514', NULL, 'companies.status is checked');

-- indexes
SELECT has_index('paperclip', 'environments', 'environments_one_local_per_company', 'one local environment per company');
SELECT has_index('paperclip', 'environment_leases', 'environment_leases_one_active_per_run_environment',
                 'one active lease per run and environment');
SELECT index_is_unique('paperclip', 'environment_leases', 'environment_leases_one_active_per_run_environment',
                       'the active lease index is unique');
SELECT index_is_unique('paperclip', 'environments', 'environments_one_local_per_company',
                       'the local environment index is unique');
SELECT ok(pg_get_indexdef('paperclip.environment_leases_one_active_per_run_environment'::regclass) ~ 'WHERE \(status = ''active''::text\)',
          'the active lease index is partial on status = active');
SELECT has_unique('paperclip', 'company_secrets', 'company_secrets has a unique constraint');
SELECT has_unique('paperclip', 'company_secret_versions', 'company_secret_versions has a unique constraint');

-- functions: exact signatures and return types (docs/sql-api.md)
SELECT has_function('paperclip', 'acquire_run_lease', ARRAY['uuid', 'uuid', 'uuid', 'uuid', 'uuid', 'text'],
                    'acquire_run_lease(uuid, uuid, uuid, uuid, uuid, text) exists');
SELECT function_returns('paperclip', 'acquire_run_lease', ARRAY['uuid', 'uuid', 'uuid', 'uuid', 'uuid', 'text'],
                        'environment_leases', 'acquire_run_lease returns environment_leases');
SELECT has_function('paperclip', 'release_run_leases', ARRAY['uuid', 'text', 'text'],
                    'release_run_leases(uuid, text, text) exists');
SELECT function_returns('paperclip', 'release_run_leases', ARRAY['uuid', 'text', 'text'],
                        'setof environment_leases', 'release_run_leases returns setof environment_leases');
SELECT has_function('paperclip', 'renew_run_lease', ARRAY['uuid'], 'renew_run_lease(uuid) exists');
SELECT function_returns('paperclip', 'renew_run_lease', ARRAY['uuid'], 'environment_leases',
                        'renew_run_lease returns environment_leases');
SELECT has_function('paperclip', 'ensure_local_environment', ARRAY['uuid'], 'ensure_local_environment(uuid) exists');
SELECT function_returns('paperclip', 'ensure_local_environment', ARRAY['uuid'], 'environments',
                        'ensure_local_environment returns environments');
SELECT function_lang_is('paperclip', 'acquire_run_lease', ARRAY['uuid', 'uuid', 'uuid', 'uuid', 'uuid', 'text'], 'c',
                        'acquire_run_lease is written in C');
SELECT function_lang_is('paperclip', 'release_run_leases', ARRAY['uuid', 'text', 'text'], 'c',
                        'release_run_leases is written in C');
SELECT is((SELECT pronargdefaults FROM pg_proc WHERE oid = 'paperclip.acquire_run_lease(uuid,uuid,uuid,uuid,uuid,text)'::regprocedure),
          3::int2, 'acquire_run_lease has three defaulted arguments');
SELECT is((SELECT pronargdefaults FROM pg_proc WHERE oid = 'paperclip.release_run_leases(uuid,text,text)'::regprocedure),
          2::int2, 'release_run_leases has two defaulted arguments');

-- triggers
SELECT has_trigger('paperclip', 'heartbeat_runs', 'heartbeat_runs_lease_lifecycle', 'runs have the lease lifecycle trigger');
SELECT has_trigger('paperclip', 'heartbeat_runs', 'heartbeat_runs_release_on_delete', 'runs release leases on delete');
SELECT has_trigger('paperclip', 'environments', 'environments_config_check', 'environment configs are validated');
SELECT has_trigger('paperclip', 'environments', 'environments_refuse_delete_with_active_leases', 'environment deletion is guarded');
SELECT has_trigger('paperclip', 'environment_leases', 'environment_leases_state_guard', 'lease transitions are guarded');

-- the extension's control properties
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'paperclip_runtime'), false, 'the extension is not relocatable');
SELECT is((SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'paperclip_runtime'), 'paperclip',
          'the extension lives in schema paperclip');

SELECT * FROM finish();
ROLLBACK;
