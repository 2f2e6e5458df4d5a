#!/usr/bin/env bash
# The bwrap provider (issue 9).
#
# 1. A bwrap lease's whole life through the extension — acquire (a driver
#    worker makes the workspace and starts `true` in a sandbox to check it
#    comes up), release, and the cleanup (the reconciler has a worker destroy
#    the workspace) — versus the same work done from a shell in the same
#    run: mkdir of a workspace, `bwrap <the same options> true`, rm -rf.
#    Time per lease, ours / baseline (lower is better; target <= 1.5).
# 2. The orphan sweep: N acquisitions whose transactions roll back, one
#    after the other; how many reconciler passes and how many seconds after
#    the last ROLLBACK until nothing is left on disk.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${BWRAP_BENCH_LEASES:-300}
ORPHANS=${BWRAP_BENCH_ORPHANS:-1000}
C=00000000-0000-0000-0000-00000000b2c1
E=00000000-0000-0000-0000-00000000b2e1
R=00000000-0000-0000-0000-00000000b2f1
SROOT=$PCR_DATA.sandboxes
# what other suites left in the sandbox root (the execute suite's active lease):
# "nothing left on disk" means nothing but that
BEFORE=$(ls -A "$SROOT" 2>/dev/null)
left_on_disk() { [ "$(ls -A "$SROOT")" != "$BEFORE" ]; }

q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
now_ms() { date +%s%3N; }

psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
INSERT INTO paperclip.companies (id, name) VALUES ('$C', 'bench bwrap');
INSERT INTO paperclip.agents (id, company_id, name) VALUES ('00000000-0000-0000-0000-00000000b2a1', '$C', 'bench');
INSERT INTO paperclip.environments (id, company_id, name, driver, config)
VALUES ('$E', '$C', 'bench bwrap', 'sandbox', '{"provider": "bwrap"}');
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status)
VALUES ('$R', '$C', '00000000-0000-0000-0000-00000000b2a1', 'running');
SQL
q "ALTER SYSTEM SET paperclip.reconcile_interval = '1s'" >/dev/null && q "SELECT pg_reload_conf()" >/dev/null

LEASE_SQL=$BENCH_WORK/bwrap_lease.sql
cat >"$LEASE_SQL" <<SQL
SELECT id FROM paperclip.acquire_run_lease('$C', '$E', '$R');
SELECT count(*) FROM paperclip.release_run_leases('$R');
SQL
ORPHAN_SQL=$BENCH_WORK/bwrap_orphan.sql
cat >"$ORPHAN_SQL" <<SQL
BEGIN;
SELECT id FROM paperclip.acquire_run_lease('$C', '$E', '$R');
ROLLBACK;
SQL

# the sandbox of the baseline: the mounts and namespaces bwrap_run.c gives a host
# image (not its bookkeeping: the JSON status, the exec helper, the labels)
BASE_SH=$BENCH_WORK/bwrap_baseline.sh
cat >"$BASE_SH" <<'SH'
#!/bin/bash
set -e
root=$1; n=$2
for i in $(seq 1 "$n"); do
  ws=$root/baseline-$i
  mkdir -m 700 "$ws"
  bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --hostname sandbox --clearenv \
    --setenv PATH /usr/bin:/bin --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
    --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin --dir /etc \
    --ro-bind-try /etc/ld.so.cache /etc/ld.so.cache --ro-bind-try /etc/ld.so.conf /etc/ld.so.conf \
    --ro-bind-try /etc/ld.so.conf.d /etc/ld.so.conf.d --ro-bind-try /etc/alternatives /etc/alternatives \
    --ro-bind-try /etc/nsswitch.conf /etc/nsswitch.conf --ro-bind-try /etc/localtime /etc/localtime \
    --proc /proc --dev /dev --tmpfs /tmp --bind "$ws" /workspace --remount-ro / --chdir /workspace -- true
  rm -rf "$ws"
done
SH
chmod 755 "$BASE_SH"

baseline() {
  local t0 t1
  t0=$(now_ms)
  pcr_as_pg "$BASE_SH" "$SROOT" "$N"
  t1=$(now_ms)
  echo $((t1 - t0))
}

pending() { q "SELECT count(*) FROM paperclip.environment_leases WHERE company_id = '$C' AND cleanup_status = 'pending'"; }

ours() {
  local t0 t1
  t0=$(now_ms)
  pgbench -n -c 1 -j 1 -t "$N" -f "$LEASE_SQL" >"$BENCH_WORK/bwrap_pgbench.out" 2>&1 ||
    { cat "$BENCH_WORK/bwrap_pgbench.out" >&2; return 1; }
  while [ "$(pending)" != 0 ] || left_on_disk; do sleep 0.01; done
  t1=$(now_ms)
  [ "$(q "SELECT count(*) FROM paperclip.environment_leases WHERE company_id = '$C' AND cleanup_status = 'success'")" -ge "$N" ]
  echo $((t1 - t0))
}

pcr_as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

base_ms=0; ours_ms=0
for round in 1 2 3; do
  b=$(baseline)
  o=$(ours)
  q "DELETE FROM paperclip.environment_leases WHERE company_id = '$C'" >/dev/null
  echo "bwrap lease life: leases=$N round=$round baseline_ms=$b ($(echo "$b / $N" | bc -l | cut -c1-5) ms each) ours_ms=$o ($(echo "$o / $N" | bc -l | cut -c1-5) ms each)"
  base_ms=$((base_ms + b)); ours_ms=$((ours_ms + o))
done
printf 'RATIO bwrap lease acquire+release+cleanup vs mkdir+bwrap true+rm -rf from a shell, time ours/baseline (lower is better; target <= 1.5): %.2f\n' \
  "$(echo "$ours_ms / $base_ms" | bc -l)"

# ---------------------------------------------------------------- the orphan sweep
p0=$(q "SELECT passes FROM paperclip.reconciler_status()")
t0=$(now_ms)
pgbench -n -c 1 -j 1 -t "$ORPHANS" -f "$ORPHAN_SQL" >"$BENCH_WORK/bwrap_orphans.out" 2>&1 ||
  { cat "$BENCH_WORK/bwrap_orphans.out" >&2; exit 1; }
t1=$(now_ms)
p1=$(q "SELECT passes FROM paperclip.reconciler_status()")
while left_on_disk; do sleep 0.01; done
t2=$(now_ms)
p2=$(q "SELECT passes FROM paperclip.reconciler_status()")
echo "orphan sweep: $ORPHANS rolled-back acquires in $(( (t1 - t0) / 1000 )).$(( (t1 - t0) % 1000 / 100 )) s" \
     "($(( p1 - p0 )) reconciler passes meanwhile); nothing left on disk $(( (t2 - t1) / 1000 )).$(( (t2 - t1) % 1000 / 100 )) s" \
     "and $(( p2 - p1 )) passes after the last ROLLBACK ($(( p2 - p0 )) passes in all)"
printf 'RATIO bwrap orphan sweep, %d rolled-back acquires: passes after the last rollback until none is left on disk (lower is better): %d\n' \
  "$ORPHANS" "$(( p2 - p1 ))"
q "ALTER SYSTEM RESET paperclip.reconcile_interval" >/dev/null && q "SELECT pg_reload_conf()" >/dev/null
