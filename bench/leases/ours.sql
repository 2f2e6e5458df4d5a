-- acquire + release of a local lease through the extension
\set r random(1, 1000) + 1000 * :client_id
BEGIN;
SELECT 1 FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-00000000b0c1', '00000000-0000-0000-0000-00000000b0e1',
                                          ('00000000-0000-0000-0000-' || lpad(to_hex(:r::int), 12, '0'))::uuid);
SELECT 1 FROM paperclip.release_run_leases(('00000000-0000-0000-0000-' || lpad(to_hex(:r::int), 12, '0'))::uuid);
COMMIT;
