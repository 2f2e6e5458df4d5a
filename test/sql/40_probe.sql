\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(31);

SELECT has_function('paperclip', 'environment_probe', ARRAY['uuid'], 'environment_probe(uuid) exists');
SELECT function_returns('paperclip', 'environment_probe', ARRAY['uuid'], 'jsonb', 'environment_probe returns jsonb');
SELECT ok(NOT has_function_privilege('public', 'paperclip.environment_probe(uuid)', 'EXECUTE'),
          'environment_probe is not executable by PUBLIC');
SELECT ok(has_function_privilege('paperclip_admin', 'paperclip.environment_probe(uuid)', 'EXECUTE'),
          'paperclip_admin may probe environments');

-- arguments
SELECT throws_ok($$SELECT paperclip.environment_probe(NULL)$$, '22004',
                 'environment_id must not be null', 'probe: a null id is refused (22004)');
SELECT throws_ok($$SELECT paperclip.environment_probe('00000000-0000-0000-0000-00000000dead')$$, '42704',
                 'environment 00000000-0000-0000-0000-00000000dead does not exist',
                 'probe: an unknown environment is an error (42704)');

-- local
SELECT is(paperclip.environment_probe('00000000-0000-0000-0000-0000000000e1'),
          '{"ok": true, "driver": "local", "summary": "the local host is always available", "details": {}}'::jsonb,
          'probe local: ok, with driver, summary and details');

-- fake sandbox
SELECT is(paperclip.environment_probe('00000000-0000-0000-0000-0000000000e2') - 'summary',
          '{"ok": true, "driver": "sandbox", "details": {"provider": "fake", "image": "debian:12", "reuseLease": false}}'::jsonb,
          'probe fake sandbox: ok, details from the normalised config');
SELECT is(paperclip.environment_probe('00000000-0000-0000-0000-0000000000e2')->>'summary',
          'sandbox provider "fake" is available', 'probe fake sandbox: the summary names the provider');
SELECT is(paperclip.environment_probe('00000000-0000-0000-0000-0000000000e3')->'details'->>'reuseLease', 'true',
          'probe fake sandbox with reuseLease: reported');
INSERT INTO paperclip.environments (id, company_id, name, driver, config) VALUES
  ('00000000-0000-0000-0000-000000004001', '00000000-0000-0000-0000-0000000000c1', 'nowhere', 'sandbox',
   '{"provider": "nowhere"}');
SELECT is(paperclip.environment_probe('00000000-0000-0000-0000-000000004001'),
          '{"ok": false, "driver": "sandbox", "summary": "sandbox provider \"nowhere\" is not available", "details": {"provider": "nowhere"}}'::jsonb,
          'probe sandbox of a provider that is not loaded: ok is false');

-- ssh without a key: reported, not raised
SELECT is(paperclip.environment_probe('00000000-0000-0000-0000-0000000000e4')->>'ok', 'false',
          'probe ssh without privateKeySecretRef: ok is false');
SELECT is(paperclip.environment_probe('00000000-0000-0000-0000-0000000000e4')->'details'->>'sqlstate', '22023',
          'probe ssh without privateKeySecretRef: 22023 in the details');
SELECT is(paperclip.environment_probe('00000000-0000-0000-0000-0000000000e4')->>'summary',
          'invalid ssh environment config: "privateKeySecretRef" is required to connect',
          'probe ssh without privateKeySecretRef: the summary names the field');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                     '00000000-0000-0000-0000-0000000000e4', '00000000-0000-0000-0000-0000000000f1')$$,
                 '22023', 'invalid ssh environment config: "privateKeySecretRef" is required to connect',
                 'acquire ssh without privateKeySecretRef: 22023');

-- ssh with a key on a port where nothing listens (port 1 on loopback)
CREATE TEMP TABLE k AS
  SELECT id FROM paperclip.secret_create('00000000-0000-0000-0000-0000000000c1', 'probe key',
    E'-----BEGIN OPENSSH PRIVATE KEY-----\nnot really a key\n-----END OPENSSH PRIVATE KEY-----\n');
INSERT INTO paperclip.environments (id, company_id, name, driver, config)
  SELECT '00000000-0000-0000-0000-000000004002', '00000000-0000-0000-0000-0000000000c1', 'closed', 'ssh',
         jsonb_build_object('host', '127.0.0.1', 'port', 1, 'username', 'agent',
                            'remoteWorkspacePath', '/srv/work',
                            'privateKeySecretRef', jsonb_build_object('type', 'secret_ref', 'secretId', k.id)) FROM k;
SELECT is(paperclip.environment_probe('00000000-0000-0000-0000-000000004002')->>'ok', 'false',
          'probe ssh on a closed port: ok is false');
SELECT is(paperclip.environment_probe('00000000-0000-0000-0000-000000004002')->>'summary',
          'could not connect to ssh host "127.0.0.1:1"', 'probe ssh on a closed port: the summary says why');
SELECT is(paperclip.environment_probe('00000000-0000-0000-0000-000000004002')->'details',
          '{"sqlstate": "08001", "detail": "Connection refused", "hint": null}'::jsonb,
          'probe ssh on a closed port: 08001 and the cause in the details');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                     '00000000-0000-0000-0000-000000004002', '00000000-0000-0000-0000-0000000000f1')$$,
                 '08001', 'could not connect to ssh host "127.0.0.1:1"', 'acquire ssh on a closed port: 08001');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases
            WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f1'), 0,
          'acquire ssh on a closed port: nothing written');

-- a secret that does not exist: the secret's own SQLSTATE
INSERT INTO paperclip.environments (id, company_id, name, driver, config) VALUES
  ('00000000-0000-0000-0000-000000004003', '00000000-0000-0000-0000-0000000000c1', 'no such secret', 'ssh',
   '{"host": "127.0.0.1", "port": 1, "username": "agent", "remoteWorkspacePath": "/srv/work",
     "privateKeySecretRef": {"type": "secret_ref", "secretId": "00000000-0000-0000-0000-00000000beef"}}');
SELECT is(paperclip.environment_probe('00000000-0000-0000-0000-000000004003')->'details'->>'sqlstate', '42704',
          'probe ssh whose key secret does not exist: 42704 in the details');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                     '00000000-0000-0000-0000-000000004003', '00000000-0000-0000-0000-0000000000f1')$$,
                 '42704', NULL, 'acquire ssh whose key secret does not exist: 42704');

-- the probe writes nothing and leaves the transaction usable
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases), 0, 'probes write no lease');
SELECT lives_ok($$SELECT 1$$, 'the transaction is still usable after failed probes');

-- the worker pool is visible to operators
SELECT is((SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'paperclip driver'),
          current_setting('paperclip.driver_workers')::int,
          'one "paperclip driver" per paperclip.driver_workers in pg_stat_activity');
SELECT is((SELECT count(*)::int FROM pg_stat_activity
            WHERE backend_type = 'paperclip driver' AND application_name LIKE 'paperclip driver %'), 
          current_setting('paperclip.driver_workers')::int,
          'driver workers report an application name');
SELECT is((SELECT count(*)::int FROM pg_stat_activity
            WHERE backend_type = 'paperclip driver' AND datname IS NOT NULL), 0,
          'driver workers hold no database connection (DROP DATABASE is never blocked)');

SELECT is((SELECT count(*)::int FROM paperclip.driver_workers_status()),
          current_setting('paperclip.driver_workers')::int,
          'driver_workers_status: one row per driver worker');
SELECT results_eq($$SELECT pid FROM paperclip.driver_workers_status() ORDER BY pid$$,
                  $$SELECT pid FROM pg_stat_activity WHERE backend_type = 'paperclip driver' ORDER BY pid$$,
                  'driver_workers_status: the pids of the running workers');
SELECT ok((SELECT bool_and(state = 'idle') FROM paperclip.driver_workers_status()),
          'driver_workers_status: between requests every worker is idle');
SELECT ok(NOT has_function_privilege('public', 'paperclip.driver_workers_status()', 'EXECUTE')
          AND has_function_privilege('paperclip_admin', 'paperclip.driver_workers_status()', 'EXECUTE'),
          'driver_workers_status: for paperclip_admin, not PUBLIC');

SELECT * FROM finish();
ROLLBACK;
