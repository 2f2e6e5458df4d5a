\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(49);

-- ---------------------------------------------------------------- local
CREATE TEMP TABLE l_local AS
  SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                                            '00000000-0000-0000-0000-0000000000e1',
                                            '00000000-0000-0000-0000-0000000000f1');
SELECT is((SELECT company_id FROM l_local), '00000000-0000-0000-0000-0000000000c1'::uuid, 'local: lease has the company');
SELECT is((SELECT environment_id FROM l_local), '00000000-0000-0000-0000-0000000000e1'::uuid, 'local: lease has the environment');
SELECT is((SELECT heartbeat_run_id FROM l_local), '00000000-0000-0000-0000-0000000000f1'::uuid, 'local: lease has the run');
SELECT ok((SELECT issue_id IS NULL AND execution_workspace_id IS NULL FROM l_local), 'local: issue and workspace are null');
SELECT is((SELECT status FROM l_local), 'active', 'local: lease is active');
SELECT is((SELECT lease_policy FROM l_local), 'ephemeral', 'local: lease policy is ephemeral');
SELECT is((SELECT provider FROM l_local), 'local', 'local: provider is local');
SELECT ok((SELECT provider_lease_id IS NULL FROM l_local), 'local: provider_lease_id is null');
SELECT is((SELECT metadata->>'driver' FROM l_local), 'local', 'local: metadata.driver is local');
SELECT ok((SELECT metadata ? 'executionWorkspaceMode' FROM l_local), 'local: metadata has executionWorkspaceMode');
SELECT ok((SELECT acquired_at = last_used_at AND acquired_at BETWEEN now() AND clock_timestamp() FROM l_local),
          'local: acquired_at = last_used_at = the time of the insert');
SELECT is((SELECT expires_at - acquired_at FROM l_local), interval '6 hours', 'local: expires after the default lease_ttl');
SELECT ok((SELECT fence > 0 FROM l_local), 'local: lease has a fence');
SELECT ok((SELECT released_at IS NULL AND cleanup_status IS NULL FROM l_local), 'local: not released, no cleanup');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases
            WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f1' AND status = 'active'),
          1, 'local: exactly one active lease is stored');
SELECT results_eq(
  $$SELECT id, status, cleanup_status FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f1')$$,
  $$SELECT id, 'released'::text, NULL::text FROM l_local$$,
  'local: release returns exactly that lease, released, without cleanup');
SELECT ok((SELECT released_at = now() AND last_used_at = now() FROM paperclip.environment_leases
            WHERE id = (SELECT id FROM l_local)), 'local: released_at and last_used_at set');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases WHERE status = 'active'), 0,
          'local: no active lease remains');
SELECT is_empty($$SELECT * FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f1')$$,
                'local: a second release returns nothing');

-- ------------------------------------------------------- fake, no reuse
CREATE TEMP TABLE l_fake AS
  SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                                            '00000000-0000-0000-0000-0000000000e2',
                                            '00000000-0000-0000-0000-0000000000f2',
                                            issue_id => '00000000-0000-0000-0000-00000000001d',
                                            execution_workspace_id => '00000000-0000-0000-0000-00000000005e',
                                            execution_workspace_mode => 'isolated');
SELECT is((SELECT company_id FROM l_fake), '00000000-0000-0000-0000-0000000000c1'::uuid, 'fake: lease has the company');
SELECT is((SELECT environment_id FROM l_fake), '00000000-0000-0000-0000-0000000000e2'::uuid, 'fake: lease has the environment');
SELECT is((SELECT heartbeat_run_id FROM l_fake), '00000000-0000-0000-0000-0000000000f2'::uuid, 'fake: lease has the run');
SELECT is((SELECT issue_id FROM l_fake), '00000000-0000-0000-0000-00000000001d'::uuid, 'fake: lease has the issue');
SELECT is((SELECT execution_workspace_id FROM l_fake), '00000000-0000-0000-0000-00000000005e'::uuid, 'fake: lease has the workspace');
SELECT is((SELECT status FROM l_fake), 'active', 'fake: lease is active');
SELECT is((SELECT provider FROM l_fake), 'fake', 'fake: provider is fake');
SELECT is((SELECT lease_policy FROM l_fake), 'ephemeral', 'fake: lease policy is ephemeral without reuseLease');
SELECT matches((SELECT provider_lease_id FROM l_fake),
               '^sandbox://fake/00000000-0000-0000-0000-0000000000f2/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
               'fake: provider_lease_id is sandbox://fake/<run>/<uuid>');
SELECT is((SELECT metadata FROM l_fake),
          '{"driver": "sandbox", "executionWorkspaceMode": "isolated", "provider": "fake", "image": "debian:12", "reuseLease": false}'::jsonb,
          'fake: metadata has driver, mode, provider, trimmed image, reuseLease');
SELECT ok((SELECT fence > (SELECT fence FROM l_local) FROM l_fake), 'fake: a later acquisition has a larger fence');
SELECT results_eq(
  $$SELECT id, status FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f2')$$,
  $$SELECT id, 'released'::text FROM l_fake$$,
  'fake: release returns exactly that lease, released');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases WHERE status = 'active'), 0,
          'fake: no active lease remains');
SELECT is_empty($$SELECT * FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f2')$$,
                'fake: a second release returns nothing');

-- ---------------------------------------------------- fake, reuseLease
CREATE TEMP TABLE l_reuse AS
  SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                                            '00000000-0000-0000-0000-0000000000e3',
                                            '00000000-0000-0000-0000-0000000000f3');
SELECT is((SELECT company_id FROM l_reuse), '00000000-0000-0000-0000-0000000000c1'::uuid, 'reuse: lease has the company');
SELECT is((SELECT heartbeat_run_id FROM l_reuse), '00000000-0000-0000-0000-0000000000f3'::uuid, 'reuse: lease has the run');
SELECT ok((SELECT issue_id IS NULL FROM l_reuse), 'reuse: issue is null');
SELECT is((SELECT status FROM l_reuse), 'active', 'reuse: lease is active');
SELECT is((SELECT provider FROM l_reuse), 'fake', 'reuse: provider is fake');
SELECT is((SELECT lease_policy FROM l_reuse), 'reuse_by_environment', 'reuse: lease policy is reuse_by_environment');
SELECT is((SELECT provider_lease_id FROM l_reuse), 'sandbox://fake/00000000-0000-0000-0000-0000000000e3',
          'reuse: provider_lease_id is sandbox://fake/<environment>');
SELECT is((SELECT metadata FROM l_reuse),
          '{"driver": "sandbox", "executionWorkspaceMode": null, "provider": "fake", "image": "ubuntu:24.04", "reuseLease": true}'::jsonb,
          'reuse: metadata has the default image, reuseLease true, no resumedLease');
SELECT throws_ok(
  $$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e3',
                                       '00000000-0000-0000-0000-0000000000f4')$$,
  '55P03', 'environment "fake reuse" is held by heartbeat run 00000000-0000-0000-0000-0000000000f3',
  'reuse: another run cannot acquire while the sandbox is held');
SELECT results_eq(
  $$SELECT id, status FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f3')$$,
  $$SELECT id, 'released'::text FROM l_reuse$$,
  'reuse: release returns exactly that lease, released');
SELECT is((SELECT count(*)::int FROM paperclip.environment_leases WHERE status = 'active'), 0,
          'reuse: no active lease remains');
SELECT is_empty($$SELECT * FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f3')$$,
                'reuse: a second release returns nothing');
CREATE TEMP TABLE l_resumed AS
  SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                                            '00000000-0000-0000-0000-0000000000e3',
                                            '00000000-0000-0000-0000-0000000000f4');
SELECT is((SELECT provider_lease_id FROM l_resumed), 'sandbox://fake/00000000-0000-0000-0000-0000000000e3',
          'reuse: the next run gets the same sandbox');
SELECT is((SELECT metadata->'resumedLease' FROM l_resumed), 'true'::jsonb,
          'reuse: the next run''s lease says resumedLease');
UPDATE paperclip.environments SET config = '{"reuseLease": true, "image": "alpine:3"}'
 WHERE id = '00000000-0000-0000-0000-0000000000e3';
SELECT is((SELECT count(*)::int FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f4')), 1,
          'reuse: the second run releases');
SELECT ok((SELECT NOT (metadata ? 'resumedLease') FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
              '00000000-0000-0000-0000-0000000000e3', '00000000-0000-0000-0000-0000000000f1')),
          'reuse: a different image is not resumed');

SELECT * FROM finish();
ROLLBACK;
