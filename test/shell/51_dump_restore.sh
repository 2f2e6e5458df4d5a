#!/usr/bin/env bash
# 51_dump_restore — pg_dump / pg_restore of a database using the extension
# round-trips: companies, agents, environments, runs, leases with their
# fences, secrets (which resolve in the restored database with the same master
# key), and the next acquire draws a larger fence than every restored one.
#
# paperclip.database names one database: this test's own cluster points it at
# the restore target, pcr_restored, which does not exist while the source is
# filled (the reconciler waits for it, so nothing reconciles the source: an
# expired lease and a pending cleanup stay as they are there).  pg_restore
# then runs while the reconciler connects to the new database and makes its
# passes, as it would in production; once restored, the reconciler expires
# the expired lease and finishes the pending cleanup there.  A plain-format
# dump restored with psql (pcr_restored_plain) keeps the fences as well.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/recon.sh

recon_cluster dump51 "paperclip.database = 'pcr_restored'" "paperclip.reconcile_interval = '200ms'" \
  "paperclip.master_key_file = '$PCR_KEYFILE'"
OUT=$PCR_WORK/dump51
mkdir -p "$OUT"
chmod 755 "$OUT"
tap_plan 17

C1=00000000-0000-0000-0000-0000000000c1
E_LOCAL=00000000-0000-0000-0000-0000000000e1
E_FAKE=00000000-0000-0000-0000-0000000000e2
E_REUSE=00000000-0000-0000-0000-0000000000e3
SRC=pcr_source

# ------------------------------------------------------------- the source
sql "CREATE DATABASE $SRC" postgres
RDB=$SRC
sql "CREATE EXTENSION paperclip_runtime" >/dev/null
sql_file test/fixtures/seed.sql >/dev/null
sql_file - >/dev/null <<SQL
-- rolled-back acquires leave gaps in the fences (as they do in production)
BEGIN;
SELECT paperclip.acquire_run_lease('$C1', '$E_LOCAL', '00000000-0000-0000-0000-0000000000f1');
SELECT paperclip.acquire_run_lease('$C1', '$E_FAKE', '00000000-0000-0000-0000-0000000000f2');
ROLLBACK;
-- active leases, a released one, a reusable sandbox held, an expired-but-active one
SELECT paperclip.acquire_run_lease('$C1', '$E_LOCAL', '00000000-0000-0000-0000-0000000000f1');
SELECT paperclip.acquire_run_lease('$C1', '$E_FAKE', '00000000-0000-0000-0000-0000000000f1');
SELECT paperclip.acquire_run_lease('$C1', '$E_REUSE', '00000000-0000-0000-0000-0000000000f2');
SELECT paperclip.acquire_run_lease('$C1', '$E_FAKE', '00000000-0000-0000-0000-0000000000f3');
SELECT paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f3', 'failed', 'tests failed');
SELECT paperclip.acquire_run_lease('$C1', '$E_LOCAL', '00000000-0000-0000-0000-0000000000f4');
UPDATE paperclip.environment_leases SET expires_at = now() - interval '1 minute'
 WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f4';
-- a released sandbox lease whose cleanup is still pending
INSERT INTO paperclip.environment_leases (company_id, environment_id, status, released_at, provider, metadata, cleanup_status)
VALUES ('$C1', '$E_FAKE', 'released', now(), 'fake', '{"driver": "sandbox", "provider": "fake"}', 'pending');
-- secrets: two, one rotated, one of its versions revoked
SELECT paperclip.secret_create('$C1', 'deploy-token', 'tok-v1');
SELECT paperclip.secret_rotate((SELECT id FROM paperclip.company_secrets WHERE name = 'deploy-token'), 'tok-v2');
SELECT paperclip.secret_create('$C1', 'ssh key', 'not really a key');
SELECT paperclip.secret_revoke((SELECT id FROM paperclip.company_secrets WHERE name = 'deploy-token'), 1);
SQL
# what must come back: every column of the tables the reconciler leaves alone,
# and of every lease what the reconciler never changes
TABLES="SELECT 'companies', md5(string_agg(t::text, '|' ORDER BY t.id)) FROM paperclip.companies t
  UNION ALL SELECT 'agents', md5(string_agg(t::text, '|' ORDER BY t.id)) FROM paperclip.agents t
  UNION ALL SELECT 'environments', md5(string_agg(t::text, '|' ORDER BY t.id)) FROM paperclip.environments t
  UNION ALL SELECT 'heartbeat_runs', md5(string_agg(t::text, '|' ORDER BY t.id)) FROM paperclip.heartbeat_runs t
  UNION ALL SELECT 'company_secrets', md5(string_agg(t::text, '|' ORDER BY t.id)) FROM paperclip.company_secrets t
  UNION ALL SELECT 'company_secret_versions', md5(string_agg(t::text, '|' ORDER BY t.id)) FROM paperclip.company_secret_versions t"
LEASES="SELECT string_agg(concat_ws(' ', id, fence, company_id, environment_id, heartbeat_run_id, lease_policy,
                                     provider, provider_lease_id, acquired_at, metadata), E'\n' ORDER BY fence)
          FROM paperclip.environment_leases"
RESOLVE="SELECT string_agg(coalesce(paperclip.secret_resolve('$C1', jsonb_build_object('type', 'secret_ref',
                             'secretId', s.id, 'version', v.version)), '?'), ',' ORDER BY s.name, v.version)
           FROM paperclip.company_secrets s JOIN paperclip.company_secret_versions v ON v.secret_id = s.id
          WHERE v.revoked_at IS NULL"
sql "$TABLES" >"$OUT/tables.src"
sql "$LEASES" >"$OUT/leases.src"
SRC_RESOLVED=$(sql "$RESOLVE")
MAX_FENCE=$(sql "SELECT max(fence) FROM paperclip.environment_leases")
EXPIRED=$(sql "SELECT id FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f4'")
PENDING=$(sql "SELECT id FROM paperclip.environment_leases WHERE cleanup_status = 'pending'")
tap_is "$(sql "SELECT count(*) FILTER (WHERE status = 'active') || ' active, ' ||
                      count(*) FILTER (WHERE status <> 'active') || ' ended, ' ||
                      count(*) FILTER (WHERE cleanup_status = 'pending') || ' pending cleanup'
                 FROM paperclip.environment_leases")" "4 active, 2 ended, 1 pending cleanup" \
  "the source has active, expired-but-active, ended and cleanup-pending leases (no reconciler serves it)"

# ------------------------------------------------------------- dump, restore
"$PCR_PGBIN/pg_dump" -h 127.0.0.1 -p "$RPORT" -U postgres -Fc -f "$OUT/source.dump" "$SRC"
tap_is "$?" 0 "pg_dump -Fc of the source succeeds"
sql "CREATE DATABASE pcr_restored" postgres
"$PCR_PGBIN/pg_restore" -h 127.0.0.1 -p "$RPORT" -U postgres -d pcr_restored "$OUT/source.dump" 2>"$OUT/restore.err"
tap_is "$?|$(cat "$OUT/restore.err")" "0|" "pg_restore into the reconciler's database succeeds without an error or warning"

RDB=pcr_restored
tap_is "$(sql "$TABLES")" "$(cat "$OUT/tables.src")" \
  "companies, agents, environments, runs, secrets and secret versions come back unchanged"
tap_is "$(sql "$LEASES")" "$(cat "$OUT/leases.src")" \
  "every lease comes back with its id, fence, run, environment, provider and metadata"
tap_is "$(sql "$RESOLVE")" "$SRC_RESOLVED" "every secret version not revoked resolves to the same value (same master key)"
tap_is "$(sql "$RESOLVE")" "tok-v2,not really a key" "…which are the values stored"
tap_is "$(sql "SELECT fence > $MAX_FENCE FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL',
                                                                         '00000000-0000-0000-0000-0000000000f2')")" t \
  "the next acquire draws a fence larger than every restored one"
tap_is "$(sql "SELECT count(*) FROM (SELECT fence FROM paperclip.environment_leases GROUP BY fence HAVING count(*) > 1) d")" 0 \
  "no two leases share a fence"

# ------------------------------------------------------------- the reconciler on the restored database
ok "the reconciler serves the restored database" \
  wait_until 30 "SELECT database = 'pcr_restored' AND state IN ('idle', 'reconciling') AND passes >= 1
                   FROM paperclip.reconciler_status()"
ok "…and expires the lease that was past its expiry" \
  wait_until 30 "SELECT status = 'expired' AND failure_reason = 'lease expired'
                   FROM paperclip.environment_leases WHERE id = '$EXPIRED'"
ok "…and finishes the pending cleanup" \
  wait_until 30 "SELECT cleanup_status = 'success' FROM paperclip.environment_leases WHERE id = '$PENDING'"
tap_is "$(sql "SELECT count(*) FROM paperclip.environment_leases WHERE status = 'active'")" 4 \
  "the other restored active leases stay active (3 restored, 1 acquired since)"
tap_is "$(sql "SELECT total_errors FROM paperclip.reconciler_status()")" 0 \
  "the reconciler raised no error during or after the restore"

# ------------------------------------------------------------- plain format, through psql
"$PCR_PGBIN/pg_dump" -h 127.0.0.1 -p "$RPORT" -U postgres -f "$OUT/source.sql" "$SRC" &&
  sql "CREATE DATABASE pcr_restored_plain" postgres &&
  "$PCR_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$RPORT" -U postgres -d pcr_restored_plain \
    -f "$OUT/source.sql" >/dev/null 2>"$OUT/plain.err"
tap_is "$?|$(cat "$OUT/plain.err")" "0|" "a plain-format dump restores with psql without an error"
RDB=pcr_restored_plain
tap_is "$(sql "$LEASES")" "$(cat "$OUT/leases.src")" "…with every lease and fence as it was"
tap_is "$(sql "SELECT fence > $MAX_FENCE FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL',
                                                                         '00000000-0000-0000-0000-0000000000f2')")" t \
  "…and the next acquire there draws a larger fence too"
