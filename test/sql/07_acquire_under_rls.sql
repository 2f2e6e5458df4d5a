\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(13);

-- A role subject to row-level security, entitled to its company, acquires
-- through the SECURITY DEFINER function: the same contract must hold for it.
UPDATE paperclip.heartbeat_runs SET status = 'cancelled' WHERE id = '00000000-0000-0000-0000-0000000000f4';
SET LOCAL paperclip.company_id = '00000000-0000-0000-0000-0000000000c1';
SET LOCAL ROLE pcr_c1_agent;

SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-00000000dead', '00000000-0000-0000-0000-0000000000f1')$$,
                 '42704', 'environment 00000000-0000-0000-0000-00000000dead does not exist in company 00000000-0000-0000-0000-0000000000c1',
                 'agent: unknown environment → 42704');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e9', '00000000-0000-0000-0000-0000000000f1')$$,
                 '42704', NULL, 'agent: environment of another company → 42704');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000ea', '00000000-0000-0000-0000-0000000000f1')$$,
                 '55000', 'environment "archived fake" is not active', 'agent: archived environment → 55000');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000ea', '00000000-0000-0000-0000-00000000dead')$$,
                 '55000', 'environment "archived fake" is not active', 'agent: an archived environment is reported before a missing run');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-00000000dead')$$,
                 '42704', 'heartbeat run 00000000-0000-0000-0000-00000000dead does not exist in company 00000000-0000-0000-0000-0000000000c1',
                 'agent: unknown run → 42704');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f9')$$,
                 '42704', NULL, 'agent: run of another company → 42704');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f4')$$,
                 '55000', 'heartbeat run 00000000-0000-0000-0000-0000000000f4 is cancelled', 'agent: terminal run → 55000');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e4', '00000000-0000-0000-0000-0000000000f1')$$,
                 '22023', 'invalid ssh environment config: "privateKeySecretRef" is required to connect',
                 'agent: ssh without a privateKeySecretRef → 22023');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases), 0, 'agent: failed acquisitions wrote nothing');

CREATE TEMP TABLE a1 AS SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3', '00000000-0000-0000-0000-0000000000f1');
SELECT is((SELECT (status, provider, provider_lease_id)::text FROM a1),
          '(active,fake,sandbox://fake/00000000-0000-0000-0000-0000000000e3)', 'agent: acquires the reusable sandbox');
SELECT is((SELECT id FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3', '00000000-0000-0000-0000-0000000000f1')),
          (SELECT id FROM a1), 'agent: acquiring again returns the same lease');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3', '00000000-0000-0000-0000-0000000000f2')$$,
                 '55P03', 'environment "fake reuse" is held by heartbeat run 00000000-0000-0000-0000-0000000000f1',
                 'agent: a held reusable sandbox → 55P03');
SELECT is((SELECT count(*)::int FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f1')), 1, 'agent: release');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
