#!/usr/bin/env bash
# 44_ssh_without_preload — docs/workers.md: without shared_preload_libraries there are no
# driver workers; an ssh acquire fails with 55000 and a hint, nothing is written,
# and local and fake sandbox leases still work.  Needs no sshd.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/tap.sh

tap_plan 7
DIR=$PCR_WORK/nopreload
PORT=$(pcr_free_port)
trap 'pcr_cluster_stop "$DIR/data" immediate' EXIT
mkdir -p "$DIR"
pcr_cluster_init "$DIR/data" "$PORT" "shared_preload_libraries = ''" || exit 1
pcr_cluster_start "$DIR/data" || exit 1
export PGPORT=$PORT
DB=postgres
sql -c "CREATE EXTENSION paperclip_runtime" -f test/fixtures/seed.sql >/dev/null || exit 1
sql -c "UPDATE paperclip.environments SET config = config || '{\"privateKeySecretRef\":
          {\"type\": \"secret_ref\", \"secretId\": \"00000000-0000-0000-0000-00000000beef\"}}'
         WHERE id = '00000000-0000-0000-0000-0000000000e4'" || exit 1

tap_is "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'paperclip driver'")" 0 \
  "without shared_preload_libraries no driver worker runs"
tap_is "$(sql_error -c "SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                          '00000000-0000-0000-0000-0000000000e4', '00000000-0000-0000-0000-0000000000f1')")" \
  "55000: paperclip driver workers are not running" \
  "an ssh acquire fails with 55000"
hint=$(psql -X -d "$DB" -c "SELECT * FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
          '00000000-0000-0000-0000-0000000000e4', '00000000-0000-0000-0000-0000000000f1')" 2>&1 | grep '^HINT:')
tap_is "$hint" "HINT:  Add paperclip_runtime to shared_preload_libraries and restart the server." \
  "the error hints at shared_preload_libraries"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.environment_leases")" 0 "nothing was written"
tap_is "$(sql -c "SELECT paperclip.environment_probe('00000000-0000-0000-0000-0000000000e4')->'details'->>'sqlstate'")" \
  55000 "environment_probe reports it (55000) instead of raising"
tap_is "$(sql -c "SELECT provider FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                    '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000f1')")" local \
  "local leases still work"
tap_is "$(sql -c "SELECT provider FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                    '00000000-0000-0000-0000-0000000000e2', '00000000-0000-0000-0000-0000000000f2')")" fake \
  "fake sandbox leases still work"
