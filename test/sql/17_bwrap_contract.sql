\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql

-- 17_bwrap_contract: leases of the bwrap provider (a provider library of ABI
-- 2, docs/providers.md) through acquire_run_lease, as a host calls it.
--
-- bwrap needs new user namespaces.  Where the kernel refuses them to the
-- server's user (a chroot, a container without unprivileged user
-- namespaces) the provider's probe says so and this file plans one skipped
-- test (expected/17_bwrap_contract_1.out); any other failure of the probe is
-- a failure here.
SELECT paperclip.environment_probe('00000000-0000-0000-0000-0000000000e5') AS probe \gset
SELECT (:'probe'::jsonb->>'ok')::boolean AS bwrap_ok,
       coalesce(:'probe'::jsonb->>'summary', '') LIKE 'user namespaces are disabled or not permitted here%' AS userns_refused
\gset
\if :bwrap_ok
SELECT plan(15);
SELECT pass('probe: bwrap can start a sandbox here');
SELECT is((:'probe'::jsonb)->'details'->>'status', 'ok', 'probe: the provider''s own probe ran (in a driver worker)');

-- ------------------------------------ bwrap: a provider library of ABI 2
-- (a workspace is made by a driver worker before the row is written; this
-- file's ROLLBACK leaves the reconciler to destroy it: test/shell/99_leftovers)
CREATE TEMP TABLE l_bwrap AS
  SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                                            '00000000-0000-0000-0000-0000000000e5',
                                            '00000000-0000-0000-0000-0000000000f2');
SELECT is((SELECT provider FROM l_bwrap), 'bwrap', 'bwrap: provider is bwrap');
SELECT is((SELECT lease_policy FROM l_bwrap), 'ephemeral', 'bwrap: lease policy is ephemeral without reuseLease');
SELECT is((SELECT provider_lease_id FROM l_bwrap), (SELECT 'sandbox://bwrap/' || id FROM l_bwrap),
          'bwrap: provider_lease_id is sandbox://bwrap/<lease id>: the object is named after the lease');
SELECT is((SELECT metadata FROM l_bwrap),
          '{"driver": "sandbox", "executionWorkspaceMode": null, "provider": "bwrap", "image": "host", "reuseLease": false, "network": "none", "remoteCwd": "/workspace"}'::jsonb,
          'bwrap: metadata has driver, mode, provider, image, reuseLease, network, remoteCwd');
SELECT results_eq(
  $$SELECT id, status, cleanup_status FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f2')$$,
  $$SELECT id, 'released'::text, 'pending'::text FROM l_bwrap$$,
  'bwrap: release leaves the destroy of the workspace pending for the reconciler');
CREATE TEMP TABLE l_breuse AS
  SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                                            '00000000-0000-0000-0000-0000000000e6',
                                            '00000000-0000-0000-0000-0000000000f3');
SELECT is((SELECT lease_policy FROM l_breuse), 'reuse_by_environment', 'bwrap reuse: lease policy is reuse_by_environment');
SELECT is((SELECT provider_lease_id FROM l_breuse), 'sandbox://bwrap/00000000-0000-0000-0000-0000000000e6',
          'bwrap reuse: provider_lease_id is sandbox://bwrap/<environment id>');
SELECT ok((SELECT NOT (metadata ? 'resumedLease') AND metadata->'reuseLease' = 'true' FROM l_breuse),
          'bwrap reuse: the first lease created its sandbox (no resumedLease)');
SELECT throws_ok(
  $$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e6',
                                       '00000000-0000-0000-0000-0000000000f4')$$,
  '55P03', 'environment "bwrap reuse" is held by heartbeat run 00000000-0000-0000-0000-0000000000f3',
  'bwrap reuse: another run cannot acquire while the sandbox is held');
SELECT is((SELECT cleanup_status FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f3')), 'pending',
          'bwrap reuse: release leaves its release (keep) pending for the reconciler');
CREATE TEMP TABLE l_bresumed AS
  SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                                            '00000000-0000-0000-0000-0000000000e6',
                                            '00000000-0000-0000-0000-0000000000f4');
SELECT is((SELECT provider_lease_id FROM l_bresumed), 'sandbox://bwrap/00000000-0000-0000-0000-0000000000e6',
          'bwrap reuse: the next run gets the same sandbox');
SELECT is((SELECT metadata->'resumedLease' FROM l_bresumed), 'true'::jsonb,
          'bwrap reuse: the next run''s lease says resumedLease (its workspace was found)');
SELECT throws_ok(
  $$DELETE FROM paperclip.environment_leases WHERE id = (SELECT id FROM l_bwrap)$$,
  '55000', 'cannot delete lease ' || (SELECT id FROM l_bwrap) || ' while its cleanup is pending',
  'a released lease whose cleanup is pending cannot be deleted');

SELECT * FROM finish();
\elif :userns_refused
SELECT plan(1);
SELECT skip('bwrap cannot create user namespaces here', 1);
SELECT * FROM finish();
\else
SELECT plan(1);
SELECT fail('probe: bwrap can start a sandbox here: ' || (:'probe'::jsonb->>'summary'));
SELECT * FROM finish();
\endif
ROLLBACK;
