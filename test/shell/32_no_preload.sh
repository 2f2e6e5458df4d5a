#!/usr/bin/env bash
# Without shared_preload_libraries: the extension installs, local and fake
# leases work, and there is no reconciler (it says so instead of failing).
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/recon.sh

# the last setting wins over the preload line that pcr_cluster_init writes
recon_cluster recon32 "shared_preload_libraries = ''" "paperclip.database = 'pcr'"

C1=00000000-0000-0000-0000-0000000000c1

is "$(sql "SHOW shared_preload_libraries" postgres)" "" "the server runs without shared_preload_libraries"
sql "CREATE DATABASE pcr" postgres
ok "CREATE EXTENSION works" sql "CREATE EXTENSION paperclip_runtime"
sql_file test/fixtures/seed.sql >/dev/null
is "$(sql "SELECT provider || '|' || status FROM paperclip.acquire_run_lease('$C1',
             '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f1')")" \
  "local|active" "a local lease can be acquired"
is "$(sql "SELECT provider || '|' || status FROM paperclip.acquire_run_lease('$C1',
             '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000000f2')")" \
  "fake|active" "a fake sandbox lease can be acquired"
is "$(sql "SELECT string_agg(status, ',') FROM (
             SELECT status FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f1')
             UNION ALL
             SELECT status FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f2', 'failed', 'x')) s")" \
  "released,failed" "both are released"
is "$(sql "UPDATE paperclip.heartbeat_runs SET status = 'succeeded'
            WHERE id = '00000000-0000-0000-0000-0000000000f3' RETURNING status")" succeeded \
  "a run can finish (its trigger releases nothing and wakes nobody)"
is "$(sql "SELECT state || '|' || database || '|' || (pid IS NULL) || '|' || (passes IS NULL)
             FROM paperclip.reconciler_status()")" "not loaded|pcr|true|true" \
  "reconciler_status() says the reconciler is not loaded"
is "$(sql "SELECT paperclip.reconciler_wake()")" f "reconciler_wake() answers false: nobody to wake"
is "$(sql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'paperclip reconciler'")" 0 \
  "no reconciler process runs"

done_testing
