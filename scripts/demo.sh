#!/usr/bin/env bash
# scripts/demo.sh — the README's main command.
#
# On a fresh Debian 12 machine, as root (or as a user who can run initdb):
# installs what is needed, builds and installs paperclip_runtime, starts a
# throw-away PostgreSQL 15 cluster on 127.0.0.1 with the extension preloaded,
# and walks through a lease lifecycle on the local and fake-sandbox drivers,
# a bwrap sandbox (the provider library paperclip_bwrap) with commands run in
# it by paperclip.lease_execute, and a company secret
# (its master key made by scripts/pcr-keygen), printing
# the rows.  The cluster keeps running so you can connect; the last
# lines say how to connect and how to stop it.
#
#   PCR_DEMO_DIR   where the cluster lives (default /tmp/paperclip-demo; wiped first)
#   PCR_DEMO_PORT  port (default: a free one)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. test/lib/cluster.sh

scripts/install-deps.sh
echo "== building and installing paperclip_runtime"
pcr_use_pgbin
scripts/build-install.sh

DEMO=$(realpath -m "${PCR_DEMO_DIR:-/tmp/paperclip-demo}")
if [ -d "$DEMO/data" ]; then
  pcr_cluster_stop "$DEMO/data" immediate
fi
rm -rf "$DEMO"
mkdir -p "$DEMO"
chmod 755 "$DEMO"
PORT=${PCR_DEMO_PORT:-$(pcr_free_port)}

echo "== creating the secrets master key with scripts/pcr-keygen (mode 0600, never made at start-up)"
KEY_ID=$(scripts/pcr-keygen "$DEMO/master.key")
echo "master key file: $DEMO/master.key"
echo "master key id:   $KEY_ID (an id derived from the key, not the key; every secret version"
echo "                 records the id of the key that encrypted it, in its key_id column)"

echo "== starting a throw-away cluster in $DEMO/data on 127.0.0.1:$PORT"
# the bwrap provider keeps its sandboxes in paperclip_bwrap.sandbox_root: here its
# default, <home of the postgres user>/paperclip_bwrap (created 0700 when first used)
PCR_SANDBOX_ROOT=default pcr_cluster_init "$DEMO/data" "$PORT" "paperclip.database = 'paperclip'" \
  "paperclip.master_key_file = '$DEMO/master.key'" "paperclip.reconcile_interval = '2s'"
pcr_cluster_start "$DEMO/data"
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres
psql -XAtq -d postgres -c "CREATE DATABASE paperclip" >/dev/null

echo "== lease lifecycle"
psql -X -d paperclip -v ON_ERROR_STOP=1 --pset=pager=off <<'SQL'
\set QUIET on
CREATE EXTENSION paperclip_runtime;
-- the reconciler works in the background: wait (up to 30 s) until a query says true
CREATE PROCEDURE pg_temp.wait_for(cond text) LANGUAGE plpgsql AS $$
DECLARE
    done boolean;
BEGIN
    FOR i IN 1..300 LOOP
        EXECUTE cond INTO done;
        EXIT WHEN done;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
\echo '-- a company, an agent and two runs'
INSERT INTO paperclip.companies (id, name) VALUES ('11111111-1111-1111-1111-111111111111', 'Acme');
INSERT INTO paperclip.agents (id, company_id, name) VALUES
  ('22222222-2222-2222-2222-222222222222', '11111111-1111-1111-1111-111111111111', 'builder');
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status) VALUES
  ('33333333-3333-3333-3333-333333333301', '11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222', 'running'),
  ('33333333-3333-3333-3333-333333333302', '11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222', 'running');

\echo '-- the company''s local environment (created on first use)'
SELECT id, name, driver, status, metadata FROM paperclip.ensure_local_environment('11111111-1111-1111-1111-111111111111');

\echo '-- a reusable fake sandbox (config is validated and normalised on insert)'
INSERT INTO paperclip.environments (id, company_id, name, driver, config)
VALUES ('44444444-4444-4444-4444-444444444444', '11111111-1111-1111-1111-111111111111', 'sandbox', 'sandbox',
        '{"image": "  debian:12 ", "reuseLease": true}')
RETURNING name, driver, config;

\echo '-- run 1 acquires the local environment and the sandbox'
SELECT provider, provider_lease_id, status, lease_policy, fence, metadata
  FROM paperclip.acquire_run_lease('11111111-1111-1111-1111-111111111111',
         (SELECT id FROM paperclip.environments WHERE driver = 'local'),
         '33333333-3333-3333-3333-333333333301', execution_workspace_mode => 'shared');
SELECT provider, provider_lease_id, status, lease_policy, fence, metadata
  FROM paperclip.acquire_run_lease('11111111-1111-1111-1111-111111111111',
         '44444444-4444-4444-4444-444444444444', '33333333-3333-3333-3333-333333333301');

\echo '-- run 2 wants the same sandbox while run 1 holds it: it must be refused (SQLSTATE 55P03)'
\set ON_ERROR_STOP off
SELECT * FROM paperclip.acquire_run_lease('11111111-1111-1111-1111-111111111111',
         '44444444-4444-4444-4444-444444444444', '33333333-3333-3333-3333-333333333302');
\set ON_ERROR_STOP on
SELECT :'LAST_ERROR_SQLSTATE' = '55P03' AS refused \gset
\if :refused
\echo '-- refused as expected, with SQLSTATE' :LAST_ERROR_SQLSTATE '(lock_not_available); nothing was written'
\else
DO $$ BEGIN RAISE EXCEPTION 'demo: the second acquire was not refused with SQLSTATE 55P03'; END $$;
\endif

\echo '-- run 1 succeeds: its leases are released in the same transaction'
UPDATE paperclip.heartbeat_runs SET status = 'succeeded', finished_at = now()
 WHERE id = '33333333-3333-3333-3333-333333333301';
SELECT provider, status, released_at IS NOT NULL AS released, cleanup_status FROM paperclip.environment_leases ORDER BY fence;

\echo '-- now run 2 gets the sandbox, resumed'
SELECT provider_lease_id, status, metadata->'resumedLease' AS resumed
  FROM paperclip.acquire_run_lease('11111111-1111-1111-1111-111111111111',
         '44444444-4444-4444-4444-444444444444', '33333333-3333-3333-3333-333333333302');

\echo '-- run 2 fails: its lease ends failed with the run''s error'
UPDATE paperclip.heartbeat_runs SET status = 'failed', error = 'tests failed' WHERE id = '33333333-3333-3333-3333-333333333302';
SELECT heartbeat_run_id, provider, status, failure_reason, fence FROM paperclip.environment_leases ORDER BY fence;

\echo '-- a bwrap sandbox (provider library paperclip_bwrap, preloaded after paperclip_runtime):'
\echo '-- a workspace directory per lease, a bubblewrap sandbox (all namespaces unshared, read-only root) per command'
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status) VALUES
  ('33333333-3333-3333-3333-333333333303', '11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222', 'running'),
  ('33333333-3333-3333-3333-333333333304', '11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222', 'running');
INSERT INTO paperclip.environments (id, company_id, name, driver, config) VALUES
  ('55555555-5555-5555-5555-555555555555', '11111111-1111-1111-1111-111111111111', 'bwrap', 'sandbox',
   '{"provider": "bwrap", "reuseLease": true}'),
  ('66666666-6666-6666-6666-666666666666', '11111111-1111-1111-1111-111111111111', 'bwrap scratch', 'sandbox',
   '{"provider": "bwrap", "network": "none", "memoryLimitMb": 512}')
RETURNING name, config;
SELECT paperclip.environment_probe('55555555-5555-5555-5555-555555555555') AS probe \gset
\echo :probe
SELECT (:'probe'::jsonb->>'ok')::boolean AS bwrap_ok \gset
\if :bwrap_ok

\echo '-- run 3 acquires it: a driver worker made the workspace and started a sandbox over it before the row was written'
SELECT provider, provider_lease_id, lease_policy, metadata
  FROM paperclip.acquire_run_lease('11111111-1111-1111-1111-111111111111',
         '55555555-5555-5555-5555-555555555555', '33333333-3333-3333-3333-333333333303');
SELECT current_setting('paperclip_bwrap.sandbox_root') AS sandbox_root,
       array_agg(f ORDER BY f) AS entries
  FROM pg_ls_dir(current_setting('paperclip_bwrap.sandbox_root')) AS f WHERE f LIKE 'pcr-%';

\echo '-- run 3 runs commands in its sandbox: argv (no shell on our side), exactly PATH, HOME and the env given'
SELECT id AS bwrap_lease FROM paperclip.environment_leases
 WHERE environment_id = '55555555-5555-5555-5555-555555555555' AND status = 'active' \gset
SELECT exit_code, stdout, stderr
  FROM paperclip.lease_execute(:'bwrap_lease', 'sh',
         ARRAY['-c', 'echo "built by $AGENT" > notes.txt; cat notes.txt; env | sort'],
         env => '{"AGENT": "builder"}');
\echo '-- the host stays out of sight: /etc/shadow is not there, the root is read-only, no network but loopback'
SELECT exit_code, stdout AS network_interfaces, stderr
  FROM paperclip.lease_execute(:'bwrap_lease', 'sh',
         ARRAY['-c', 'ls /etc/shadow; touch /usr/x; cat /proc/net/dev | tail -n +3 | cut -d: -f1']);
\echo '-- a non-zero exit, a signal and a timeout are results, not errors'
SELECT exit_code, signal, timed_out, duration_ms < 2000 AS stopped_in_time
  FROM paperclip.lease_execute(:'bwrap_lease', 'sh', ARRAY['-c', 'exit 3'])
UNION ALL
SELECT exit_code, signal, timed_out, duration_ms < 2000
  FROM paperclip.lease_execute(:'bwrap_lease', 'sh', ARRAY['-c', 'kill -9 $$'])
UNION ALL
SELECT exit_code, signal, timed_out, duration_ms < 2000
  FROM paperclip.lease_execute(:'bwrap_lease', 'sleep', ARRAY['30'], timeout_ms => 300);
\echo '-- every call is recorded (never its arguments, env or output)'
SELECT command, exit_code, signal, timed_out, stdout_bytes, stderr_bytes
  FROM paperclip.lease_executions WHERE lease_id = :'bwrap_lease' ORDER BY started_at;

\echo '-- an acquire whose transaction rolls back leaves nothing: the reconciler destroys its workspace'
BEGIN;
SELECT provider_lease_id FROM paperclip.acquire_run_lease('11111111-1111-1111-1111-111111111111',
         '66666666-6666-6666-6666-666666666666', '33333333-3333-3333-3333-333333333304');
SELECT count(*) AS its_workspace_inside_the_transaction
  FROM pg_ls_dir(current_setting('paperclip_bwrap.sandbox_root')) AS f
 WHERE f LIKE 'pcr-%' AND f NOT LIKE '%.json' AND f NOT LIKE '%-55555555-%';
ROLLBACK;
CALL pg_temp.wait_for($$SELECT count(*) = 0 FROM pg_ls_dir(current_setting('paperclip_bwrap.sandbox_root')) AS f
                        WHERE f LIKE 'pcr-%' AND f NOT LIKE '%.json' AND f NOT LIKE '%-55555555-%'$$);
SELECT count(*) AS its_workspace_after_the_rollback
  FROM pg_ls_dir(current_setting('paperclip_bwrap.sandbox_root')) AS f
 WHERE f LIKE 'pcr-%' AND f NOT LIKE '%.json' AND f NOT LIKE '%-55555555-%';

\echo '-- run 3 succeeds; the reusable sandbox is kept (cleanup: release), and run 4 resumes it'
UPDATE paperclip.heartbeat_runs SET status = 'succeeded' WHERE id = '33333333-3333-3333-3333-333333333303';
CALL pg_temp.wait_for($$SELECT cleanup_status = 'success' FROM paperclip.environment_leases
                        WHERE heartbeat_run_id = '33333333-3333-3333-3333-333333333303'$$);
SELECT heartbeat_run_id, status, cleanup_status FROM paperclip.environment_leases
 WHERE environment_id = '55555555-5555-5555-5555-555555555555';
SELECT provider_lease_id, metadata->'resumedLease' AS resumed
  FROM paperclip.acquire_run_lease('11111111-1111-1111-1111-111111111111',
         '55555555-5555-5555-5555-555555555555', '33333333-3333-3333-3333-333333333304');
\echo '-- the resumed sandbox kept its workspace: the file run 3 wrote is there'
SELECT stdout FROM paperclip.lease_execute(
         (SELECT id FROM paperclip.environment_leases
           WHERE environment_id = '55555555-5555-5555-5555-555555555555' AND status = 'active'),
         'cat', ARRAY['notes.txt']);

\echo '-- run 4 succeeds and the environment is archived: its sandbox is destroyed'
UPDATE paperclip.heartbeat_runs SET status = 'succeeded' WHERE id = '33333333-3333-3333-3333-333333333304';
UPDATE paperclip.environments SET status = 'archived' WHERE id = '55555555-5555-5555-5555-555555555555';
CALL pg_temp.wait_for($$SELECT count(*) = 0 FROM pg_ls_dir(current_setting('paperclip_bwrap.sandbox_root')) AS f
                        WHERE f LIKE 'pcr-%'$$);
SELECT count(*) AS sandboxes_left
  FROM pg_ls_dir(current_setting('paperclip_bwrap.sandbox_root')) AS f WHERE f LIKE 'pcr-%';

\else
\echo '-- bwrap cannot start a sandbox here (the probe says why: in a chroot or a container'
\echo '-- without unprivileged user namespaces the kernel refuses them): the sandbox steps are left out'
\endif

\echo '-- a company secret: encrypted before it is stored, rotated, resolved by reference'
SELECT name, latest_version FROM paperclip.secret_create('11111111-1111-1111-1111-111111111111', 'deploy-token', 'tok-v1');
SELECT name, latest_version FROM paperclip.secret_rotate(
         (SELECT id FROM paperclip.company_secrets WHERE name = 'deploy-token'), 'tok-v2');
SELECT version, key_id, material->>'alg' AS alg, length(material->>'ciphertext') AS ciphertext_chars
  FROM paperclip.company_secret_versions ORDER BY version;
SELECT paperclip.secret_resolve('11111111-1111-1111-1111-111111111111',
         jsonb_build_object('type', 'secret_ref', 'secretId', id, 'version', 'latest')) AS latest
  FROM paperclip.company_secrets WHERE name = 'deploy-token';

\echo '-- the background workers: the reconciler (it waited quietly for this database) and the driver workers'
CALL pg_temp.wait_for('SELECT passes >= 1 FROM paperclip.reconciler_status()');
SELECT state, database, passes, total_errors FROM paperclip.reconciler_status();
SELECT worker, state, requests_served FROM paperclip.driver_workers_status();
SQL

if [ "$(id -u)" -eq 0 ]; then
  STOP="(cd / && runuser -u postgres -- $PCR_PGBIN/pg_ctl -D $DEMO/data stop)"
else
  STOP="$PCR_PGBIN/pg_ctl -D $DEMO/data stop"
fi
cat <<END

== the cluster is running
connect:  psql -h 127.0.0.1 -p $PORT -U postgres paperclip
log:      $DEMO/data/server.log
stop:     $STOP
END
