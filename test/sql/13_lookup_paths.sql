\set ECHO none
\i test/setup.sql
BEGIN;
\i test/fixtures/seed.sql
SELECT plan(6);

-- The acquire's lookup has a direct path (index probes, for callers without
-- row-level security) and an SPI path.  With paperclip.check_lookup_paths,
-- as test/run.sh's cluster sets it, every direct lookup is repeated through
-- SPI under the same snapshot: a difference raises XX000, so every acquire
-- of the suite (storms included) proves the paths equal.
SELECT is(current_setting('paperclip.check_lookup_paths'), 'on', 'the suite cross-checks the two lookup paths');
SET LOCAL paperclip.check_lookup_paths = on;
SELECT is((paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1',
                                       '00000000-0000-0000-0000-0000000000f1')).status, 'active',
          'a new lease: both paths agree');
SELECT is((paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1',
                                       '00000000-0000-0000-0000-0000000000f1')).status, 'active',
          'the run already holds a lease: both paths agree');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-0000000000e1',
                                                      '00000000-0000-0000-0000-0000000000f1')$$, '42704', NULL,
                 'another company''s environment: both paths agree it is not found');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1',
                                                      '00000000-0000-0000-0000-00000000dead')$$, '42704', NULL,
                 'an unknown run: both paths agree');
SELECT throws_ok($$SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000ea',
                                                      '00000000-0000-0000-0000-0000000000f2')$$, '55000', NULL,
                 'an archived environment: both paths agree');

SELECT * FROM finish();
ROLLBACK;
