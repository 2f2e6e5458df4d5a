-- the same row changes with plain INSERT/UPDATE statements on the same tables,
-- returning the lease rows to the client as ours does (and as the control
-- plane's ORM does with .returning())
\set r random(1, 1000) + 1000 * :client_id
BEGIN;
INSERT INTO paperclip.environment_leases
  (company_id, environment_id, heartbeat_run_id, status, lease_policy, provider,
   acquired_at, last_used_at, expires_at, metadata)
VALUES ('00000000-0000-0000-0000-00000000b0c1', '00000000-0000-0000-0000-00000000b0e1',
        ('00000000-0000-0000-0000-' || lpad(to_hex(:r::int), 12, '0'))::uuid, 'active', 'ephemeral', 'local',
        now(), now(), now() + interval '6 hours', '{"driver": "local", "executionWorkspaceMode": null}')
RETURNING *;
UPDATE paperclip.environment_leases
   SET status = 'released', released_at = now(), last_used_at = now(), updated_at = now()
 WHERE heartbeat_run_id = ('00000000-0000-0000-0000-' || lpad(to_hex(:r::int), 12, '0'))::uuid AND status = 'active'
RETURNING *;
COMMIT;
