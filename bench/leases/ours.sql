-- acquire + release of a local lease through the extension; the client gets the
-- lease rows back, as from the baseline's RETURNING *
\set r random(1, 1000) + 1000 * :client_id
BEGIN;
SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-00000000b0c1', '00000000-0000-0000-0000-00000000b0e1',
                                          ('00000000-0000-0000-0000-' || lpad(to_hex(:r::int), 12, '0'))::uuid);
SELECT * FROM paperclip.release_run_leases(('00000000-0000-0000-0000-' || lpad(to_hex(:r::int), 12, '0'))::uuid);
COMMIT;
