\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(78);

-- the SQL surface of docs/execute.md, exactly
SELECT has_function('paperclip', 'lease_execute',
                    ARRAY['uuid', 'text', 'text[]', 'text', 'jsonb', 'text', 'integer', 'integer'],
                    'paperclip.lease_execute(uuid, text, text[], text, jsonb, text, integer, integer) exists');
SELECT is(pg_get_function_arguments('paperclip.lease_execute(uuid,text,text[],text,jsonb,text,integer,integer)'::regprocedure),
          'lease_id uuid, command text, args text[] DEFAULT ''{}''::text[], cwd text DEFAULT NULL::text, env jsonb DEFAULT ''{}''::jsonb, stdin text DEFAULT NULL::text, timeout_ms integer DEFAULT NULL::integer, max_output_bytes integer DEFAULT NULL::integer',
          'lease_execute: argument names and defaults as documented');
SELECT is(pg_get_function_result('paperclip.lease_execute(uuid,text,text[],text,jsonb,text,integer,integer)'::regprocedure),
          'TABLE(execution_id uuid, exit_code integer, signal text, timed_out boolean, stdout text, stderr text, stdout_truncated boolean, stderr_truncated boolean, duration_ms integer)',
          'lease_execute: result columns as documented');
SELECT ok(NOT prosecdef AND proconfig = ARRAY['search_path=pg_catalog, pg_temp'],
          'lease_execute is SECURITY INVOKER (it checks the calling role) with a pinned search_path')
  FROM pg_proc WHERE oid = 'paperclip.lease_execute(uuid,text,text[],text,jsonb,text,integer,integer)'::regprocedure;
SELECT columns_are('paperclip', 'lease_executions',
                   ARRAY['id', 'company_id', 'lease_id', 'heartbeat_run_id', 'command', 'cwd', 'started_at',
                         'finished_at', 'exit_code', 'signal', 'timed_out', 'stdout_bytes', 'stderr_bytes',
                         'truncated', 'error_sqlstate'],
                   'lease_executions has exactly the documented columns');
SELECT col_type_is('paperclip', 'lease_executions', c, ty, format('lease_executions.%s is %s', c, ty))
  FROM (VALUES ('id', 'uuid'), ('company_id', 'uuid'), ('lease_id', 'uuid'), ('heartbeat_run_id', 'uuid'),
               ('command', 'text'), ('cwd', 'text'), ('started_at', 'timestamp with time zone'),
               ('finished_at', 'timestamp with time zone'), ('exit_code', 'integer'), ('signal', 'text'),
               ('timed_out', 'boolean'), ('stdout_bytes', 'bigint'), ('stderr_bytes', 'bigint'),
               ('truncated', 'boolean'), ('error_sqlstate', 'text')) AS t(c, ty);
SELECT is((SELECT string_agg(pg_get_constraintdef(oid), '; ' ORDER BY conname)  -- search_path has paperclip: names unqualified
             FROM pg_constraint WHERE conrelid = 'paperclip.lease_executions'::regclass AND contype = 'f'),
          'FOREIGN KEY (company_id) REFERENCES companies(id) ON DELETE CASCADE; '
          'FOREIGN KEY (company_id, heartbeat_run_id) REFERENCES heartbeat_runs(company_id, id) ON DELETE SET NULL (heartbeat_run_id); '
          'FOREIGN KEY (company_id, lease_id) REFERENCES environment_leases(company_id, id) ON DELETE SET NULL (lease_id)',
          'lease_executions: company foreign keys include company_id; deleting a lease or run keeps the record');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'paperclip.lease_executions'::regclass),
          'lease_executions has row-level security');

-- privileges: PUBLIC nothing, both roles execute and read, nobody writes the records
SELECT ok(NOT has_function_privilege('public', 'paperclip.lease_execute(uuid,text,text[],text,jsonb,text,integer,integer)', 'EXECUTE'),
          'PUBLIC cannot run lease_execute');
SELECT ok(has_function_privilege(r, 'paperclip.lease_execute(uuid,text,text[],text,jsonb,text,integer,integer)', 'EXECUTE'),
          r || ' may run lease_execute')
  FROM unnest(ARRAY['paperclip_agent', 'paperclip_admin']) AS r;
SELECT ok(has_table_privilege(r, 'paperclip.lease_executions', 'SELECT')
          AND NOT has_table_privilege(r, 'paperclip.lease_executions', 'INSERT')
          AND NOT has_table_privilege(r, 'paperclip.lease_executions', 'UPDATE')
          AND NOT has_table_privilege(r, 'paperclip.lease_executions', 'DELETE'),
          r || ' reads lease_executions and cannot write it')
  FROM unnest(ARRAY['paperclip_agent', 'paperclip_admin']) AS r;
SELECT ok(NOT has_table_privilege('public', 'paperclip.lease_executions', 'SELECT'), 'PUBLIC cannot read lease_executions');
SELECT ok(NOT has_function_privilege(r, 'paperclip.lease_executions_backlog(uuid[],integer)', 'EXECUTE'),
          r || ' cannot take the reconciler''s backlog')
  FROM unnest(ARRAY['public', 'paperclip_agent', 'paperclip_admin']) AS r;

-- the settings
SELECT is(current_setting('paperclip.execute_timeout'), '5min', 'paperclip.execute_timeout defaults to 5 minutes');
SELECT is(current_setting('paperclip.execute_max_output'), '256kB', 'paperclip.execute_max_output defaults to 256 KiB');
SELECT throws_ok($$SET paperclip.execute_timeout = '61min'$$, '22023', NULL, 'paperclip.execute_timeout is at most 1 hour');
SELECT throws_ok($$SET paperclip.execute_max_output = '17MB'$$, '22023', NULL, 'paperclip.execute_max_output is at most 16 MiB');
SET LOCAL ROLE paperclip_agent;
SELECT throws_ok($$SET paperclip.execute_timeout = '10min'$$, '42501',
                 'parameter "paperclip.execute_timeout" cannot be raised above 300000 ms',
                 'a role that is not a superuser cannot raise paperclip.execute_timeout (42501)');
SELECT throws_ok($$SET paperclip.execute_max_output = '1MB'$$, '42501',
                 'parameter "paperclip.execute_max_output" cannot be raised above 262144 bytes',
                 'a role that is not a superuser cannot raise paperclip.execute_max_output (42501)');
SELECT lives_ok($$SET LOCAL paperclip.execute_timeout = '1s'$$, 'it may lower paperclip.execute_timeout');
RESET ROLE;

-- a local lease (r1), a fake sandbox lease (r2), a released local lease (r3)
CREATE TEMP TABLE l AS
SELECT 'local' AS k, id FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f1')
UNION ALL
SELECT 'fake', id FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000000f2');
SELECT 1 FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000000f3');
INSERT INTO l SELECT 'released', id FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f3');
GRANT SELECT ON l TO pcr_c1_agent, pcr_c1_admin, pcr_c2_agent;
CREATE FUNCTION pg_temp.lease(k text) RETURNS uuid LANGUAGE sql AS $$SELECT id FROM l WHERE l.k = $1$$;

-- NULLs (22004)
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(NULL, 'true')$$, '22004', 'lease_id must not be null', 'NULL lease_id → 22004');
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(%L, NULL)$$, pg_temp.lease('fake')), '22004',
                 'command must not be null', 'NULL command → 22004');
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(%L, 'echo', ARRAY['a', NULL])$$, pg_temp.lease('fake')), '22004',
                 'args must not contain null elements', 'a NULL argument → 22004');

-- bad arguments (22023, naming them), checked before the lease
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), '')$$, '22023',
                 'invalid command: must not be empty', 'an empty command → 22023');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), repeat('x', 5000))$$, '22023',
                 'invalid command: longer than 4095 bytes', 'a command longer than 4095 bytes → 22023');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'echo', ARRAY[ARRAY['a'], ARRAY['b']])$$, '22023',
                 'invalid args: must be a one-dimensional array', 'a two-dimensional args array → 22023');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', cwd => '/etc')$$, '22023',
                 'invalid cwd: it is absolute', 'an absolute cwd → 22023');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', cwd => 'a/../..')$$, '22023',
                 'invalid cwd: it leads out of the workspace', 'a cwd escaping the workspace after normalisation → 22023');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', cwd => 'a/./b/../../../etc')$$, '22023',
                 'invalid cwd: it leads out of the workspace', 'a cwd escaping through "." and ".." → 22023');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', cwd => E'a\nb')$$, '22023',
                 'invalid cwd: it contains a control character', 'a cwd with a control character → 22023');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', env => '[]')$$, '22023',
                 'invalid env: must be a JSON object of variables', 'env that is not an object → 22023');
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', env => %L)$$, jsonb_build_object(k, 'v')), '22023',
                 format('invalid env: variable name "%s" is not [A-Za-z_][A-Za-z0-9_]*', k),
                 format('env name %s → 22023 naming it', k))
  FROM unnest(ARRAY['1X', 'A-B', 'A B', '', 'Ä', 'X=Y']) AS k;
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', env => '{"HOME": "/tmp"}')$$, '22023',
                 'invalid env: "HOME" cannot be set', 'env cannot set HOME (it is the workspace) → 22023');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', env => '{"N": 1}')$$, '22023',
                 'invalid env: variable "N" must be a string or a secret ref, not number', 'an env value that is a number → 22023');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', env => '{"T": {"type": "secret_ref"}}')$$, '22023',
                 'invalid env: variable "T": "secretId" must be a UUID string', 'a malformed secret ref → 22023 naming the variable');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', timeout_ms => 0)$$, '22023',
                 'invalid timeout_ms: must be between 1 and 3600000 ms', 'timeout_ms 0 → 22023');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', timeout_ms => 3600001)$$, '22023',
                 'invalid timeout_ms: must be between 1 and 3600000 ms', 'timeout_ms over an hour → 22023');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', max_output_bytes => -1)$$, '22023',
                 'invalid max_output_bytes: must be between 0 and 16777216', 'a negative max_output_bytes → 22023');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'true', max_output_bytes => 16777217)$$, '22023',
                 'invalid max_output_bytes: must be between 0 and 16777216', 'max_output_bytes over 16 MiB → 22023');

-- too much input (54000)
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'cat', stdin => repeat('x', 1048577))$$, '54000',
                 NULL, 'stdin over 1 MiB → 54000');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute(gen_random_uuid(), 'echo', ARRAY[repeat('x', 600000)], stdin => repeat('y', 600000))$$,
                 '54000', NULL, 'arguments and stdin together over 1 MiB → 54000');

-- the lease: unknown (42704), not active (55000), a driver that cannot execute (0A000)
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute('00000000-0000-0000-0000-00000000dead', 'true')$$, '42704',
                 'lease 00000000-0000-0000-0000-00000000dead does not exist', 'an unknown lease → 42704');
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(%L, 'true')$$, pg_temp.lease('released')), '55000',
                 format('lease %s is released', pg_temp.lease('released')), 'a released lease → 55000');
INSERT INTO paperclip.environment_leases (id, company_id, environment_id, heartbeat_run_id, status, provider, expires_at, metadata)
VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1',
        '00000000-0000-0000-0000-0000000000f4', 'active', 'local', now() - interval '1 minute', '{"driver": "local"}');
SELECT throws_ok($$SELECT * FROM paperclip.lease_execute('00000000-0000-0000-0000-0000000000b1', 'true')$$, '55000',
                 NULL, 'an active lease past its expiry → 55000');
SELECT throws_like($$SELECT * FROM paperclip.lease_execute('00000000-0000-0000-0000-0000000000b1', 'true')$$,
                   'lease 00000000-0000-0000-0000-0000000000b1 expired at %', '... saying when it expired');
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(%L, 'true')$$, pg_temp.lease('fake')), '0A000',
                 'sandbox provider "fake" cannot execute commands', 'a fake sandbox lease → 0A000');

-- another company's lease does not exist for a role that row-level security restricts
SET LOCAL paperclip.company_id = '00000000-0000-0000-0000-0000000000c2';
SET LOCAL ROLE pcr_c2_agent;
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(%L, 'true')$$, pg_temp.lease('fake')), '42704',
                 format('lease %s does not exist', pg_temp.lease('fake')), 'an agent of another company: 42704');
RESET ROLE;
SET LOCAL ROLE pcr_c1_agent;
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(%L, 'true')$$, pg_temp.lease('fake')), '42501',
                 NULL, 'an agent naming a company it is not entitled to: 42501');
RESET ROLE;
SET LOCAL paperclip.company_id = '';
SET LOCAL ROLE pcr_c1_admin;
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(%L, 'true')$$, pg_temp.lease('fake')), '42501',
                 NULL, 'an admin with no company selected: 42501');
RESET ROLE;
SET LOCAL paperclip.company_id = '00000000-0000-0000-0000-0000000000c1';
SET LOCAL ROLE pcr_c1_agent;
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(%L, 'true')$$, pg_temp.lease('fake')), '0A000',
                 NULL, 'an agent of the lease''s company reaches the driver');
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(%L, 'true')$$, pg_temp.lease('released')), '55000',
                 NULL, 'an agent: its company''s released lease → 55000');
RESET ROLE;
SET LOCAL ROLE pcr_c1_admin;
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(%L, 'true')$$, pg_temp.lease('fake')), '0A000',
                 NULL, 'an admin of the lease''s company reaches the driver');
RESET ROLE;
RESET paperclip.company_id;

-- a read-only transaction cannot record the call
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(%L, 'true')$$, pg_temp.lease('fake')), '0A000', NULL,
                 'control: outside a read-only transaction the fake lease reaches the driver');
SET LOCAL transaction_read_only = on;
SELECT throws_ok(format($$SELECT * FROM paperclip.lease_execute(%L, 'true')$$, pg_temp.lease('fake')), '25006',
                 'cannot execute paperclip.lease_execute() in a read-only transaction', 'a read-only transaction → 25006');

-- nothing was recorded for refused calls
SELECT is((SELECT count(*)::int FROM paperclip.lease_executions), 0, 'calls refused by their checks leave no record');

SELECT * FROM finish();
ROLLBACK;
