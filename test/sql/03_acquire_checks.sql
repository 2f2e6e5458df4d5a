\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(32);

-- every check of acquire_run_lease (docs/sql-api.md), each with its SQLSTATE
SELECT throws_ok($$SELECT paperclip.acquire_run_lease(NULL, '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f1')$$,
                 '22004', 'company_id must not be null', 'null company_id → 22004');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', NULL, '00000000-0000-0000-0000-0000000000f1')$$,
                 '22004', 'environment_id must not be null', 'null environment_id → 22004');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', NULL)$$,
                 '22004', 'heartbeat_run_id must not be null', 'null heartbeat_run_id → 22004');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-00000000dead', '00000000-0000-0000-0000-0000000000f1')$$,
                 '42704', 'environment 00000000-0000-0000-0000-00000000dead does not exist in company 00000000-0000-0000-0000-0000000000c1',
                 'unknown environment → 42704 naming it');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e9', '00000000-0000-0000-0000-0000000000f1')$$,
                 '42704', 'environment 00000000-0000-0000-0000-0000000000e9 does not exist in company 00000000-0000-0000-0000-0000000000c1',
                 'environment of another company → 42704');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000ea', '00000000-0000-0000-0000-0000000000f1')$$,
                 '55000', 'environment "archived fake" is not active', 'archived environment → 55000');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-00000000dead')$$,
                 '42704', 'heartbeat run 00000000-0000-0000-0000-00000000dead does not exist in company 00000000-0000-0000-0000-0000000000c1',
                 'unknown run → 42704 naming it');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f9')$$,
                 '42704', 'heartbeat run 00000000-0000-0000-0000-0000000000f9 does not exist in company 00000000-0000-0000-0000-0000000000c1',
                 'run of another company → 42704');
UPDATE paperclip.heartbeat_runs SET status = 'succeeded' WHERE id = '00000000-0000-0000-0000-0000000000f4';
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f4')$$,
                 '55000', 'heartbeat run 00000000-0000-0000-0000-0000000000f4 is succeeded', 'terminal run → 55000');
-- a config that slipped past validation (trigger disabled) is refused at acquire
ALTER TABLE paperclip.environments DISABLE TRIGGER environments_config_check;
INSERT INTO paperclip.environments (id, company_id, name, driver, config) VALUES
  ('00000000-0000-0000-0000-0000000000eb', '00000000-0000-0000-0000-0000000000c1', 'broken fake', 'sandbox', '{"reuseLease": "yes"}');
ALTER TABLE paperclip.environments ENABLE TRIGGER environments_config_check;
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000eb', '00000000-0000-0000-0000-0000000000f1')$$,
                 '22023', 'invalid sandbox environment config: "reuseLease" must be a boolean, not string',
                 'invalid stored config → 22023 naming the field');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e4', '00000000-0000-0000-0000-0000000000f1')$$,
                 '22023', 'invalid ssh environment config: "privateKeySecretRef" is required to connect',
                 'ssh without a privateKeySecretRef → 22023 before any connection');
INSERT INTO paperclip.environments (id, company_id, name, driver, config) VALUES
  ('00000000-0000-0000-0000-0000000000ec', '00000000-0000-0000-0000-0000000000c1', 'cloud', 'sandbox', '{"provider": "somecloud", "region": "eu"}');
SELECT is((SELECT config FROM paperclip.environments WHERE id = '00000000-0000-0000-0000-0000000000ec'),
          '{"provider": "somecloud", "region": "eu"}'::jsonb, 'a config of an unloaded provider is stored as given');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000ec', '00000000-0000-0000-0000-0000000000f1')$$,
                 '0A000', 'sandbox provider "somecloud" is not available', 'unknown sandbox provider → 0A000');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases), 0, 'failed acquisitions wrote nothing');

-- idempotent acquire
CREATE TEMP TABLE first AS SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000000f1');
CREATE TEMP TABLE second AS SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000000f1', execution_workspace_mode => 'other');
SELECT is((SELECT id FROM second), (SELECT id FROM first), 'a second acquire returns the same lease');
SELECT is((SELECT (fence, provider_lease_id, metadata) FROM second)::text, (SELECT (fence, provider_lease_id, metadata) FROM first)::text,
          'the returned lease is unchanged (same fence, provider lease and metadata)');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f1'), 1,
          'idempotent acquire wrote one row');
-- the same run may hold leases on several environments
SELECT is((SELECT status FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f1')),
          'active', 'a run can hold leases on two environments');

-- TTL: GUC and config.leaseTtlSeconds
SET LOCAL paperclip.lease_ttl = '2h';
SELECT is((SELECT expires_at - acquired_at FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f2')),
          interval '2 hours', 'TTL follows paperclip.lease_ttl');
UPDATE paperclip.environments SET config = '{"image": "x", "leaseTtlSeconds": 90}' WHERE id = '00000000-0000-0000-0000-0000000000e2';
SELECT is((SELECT expires_at - acquired_at FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000000f2')),
          interval '90 seconds', 'TTL follows config.leaseTtlSeconds');
SELECT is(paperclip.lease_ttl('{}'), interval '2 hours', 'lease_ttl() of a config without leaseTtlSeconds is the GUC');

-- renewal
UPDATE paperclip.environment_leases SET expires_at = now() - interval '1 minute', last_used_at = now() - interval '1 hour'
 WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f2' AND environment_id = '00000000-0000-0000-0000-0000000000e2';
SELECT ok((SELECT expires_at = now() + interval '90 seconds' AND last_used_at = now() FROM paperclip.renew_run_lease(
             (SELECT id FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f2'
                 AND environment_id = '00000000-0000-0000-0000-0000000000e2'))),
          'renew_run_lease extends an active lease by its TTL');
SELECT throws_ok($$SELECT paperclip.renew_run_lease(NULL)$$, '22004', 'lease_id must not be null', 'renew of NULL → 22004');
SELECT throws_ok($$SELECT paperclip.renew_run_lease('00000000-0000-0000-0000-00000000dead')$$, '42704',
                 'lease 00000000-0000-0000-0000-00000000dead does not exist', 'renew of an unknown lease → 42704');
SELECT lives_ok($$SELECT paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f2')$$, 'release run 2');
SELECT throws_like($$SELECT paperclip.renew_run_lease((SELECT id FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f2' LIMIT 1))$$,
                   '% is released and cannot be renewed', 'renew of a released lease fails');
SELECT throws_ok($$SELECT paperclip.renew_run_lease((SELECT id FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f2' LIMIT 1))$$,
                 '55000', NULL, 'renew of a released lease → 55000');

-- release arguments
SELECT throws_ok($$SELECT paperclip.release_run_leases(NULL)$$, '22004', 'heartbeat_run_id must not be null', 'release of NULL run → 22004');
SELECT throws_ok($$SELECT paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f1', 'retained')$$, '22023',
                 'invalid release status "retained"', 'release status outside released/failed/expired → 22023');
SELECT throws_ok($$SELECT paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f1', NULL)$$, '22023',
                 'release status must not be null', 'NULL release status → 22023');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f1' AND status = 'active'),
          2, 'refused releases changed nothing');
SELECT results_eq($$SELECT status, failure_reason FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f1', 'expired', 'ttl') ORDER BY fence$$,
                  $$VALUES ('expired'::text, 'ttl'::text), ('expired', 'ttl')$$, 'release with status expired transitions both leases');

SELECT * FROM finish();
ROLLBACK;
