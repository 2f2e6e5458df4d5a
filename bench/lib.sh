# bench/lib.sh — measuring helpers for bench suites
#
# bench_measure <script> <clients> prints "tps cpu_ms_per_tx": pgbench
# throughput, and the CPU time the whole server (postmaster, backends,
# background processes) spent per transaction.  CPU per transaction is far
# less sensitive than tps to other jobs on a shared machine, so suites print
# both ratios.

_server_cpu_ticks() {
  local pm pid sum=0 f
  pm=$(head -n 1 "$PCR_DATA/postmaster.pid")
  # postmaster itself, plus children it has reaped (cutime, cstime)
  f=($(sed 's/^.*) //' "/proc/$pm/stat"))
  sum=$((f[11] + f[12] + f[13] + f[14]))
  for pid in $(ps -o pid= --ppid "$pm"); do
    [ -r "/proc/$pid/stat" ] || continue
    f=($(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null)) || continue
    [ "${#f[@]}" -gt 14 ] && sum=$((sum + f[11] + f[12]))
  done
  echo "$sum"
}

# BENCH_KEEP_STATS=1: no VACUUM ANALYZE first, so that the planner's
# statistics (pg_statistic and reltuples, which VACUUM updates too) stay as
# they are.
bench_measure() {
  local script=$1 clients=$2 before after out tx tps hz
  hz=$(getconf CLK_TCK)
  [ -n "${BENCH_KEEP_STATS:-}" ] || psql -XAtq -c "VACUUM ANALYZE" >/dev/null
  psql -XAtq -c "CHECKPOINT" >/dev/null
  before=$(_server_cpu_ticks)
  out=$(pgbench -n -M prepared -c "$clients" -j "$clients" -T "${BENCH_SECONDS:-10}" -f "$script" 2>&1)
  sleep 0.2   # let the backends exit and be reaped into the postmaster's cutime
  after=$(_server_cpu_ticks)
  tps=$(awk '/^tps = / {print $3; exit}' <<<"$out")
  tx=$(awk -F': ' '/number of transactions actually processed/ {print $2; exit}' <<<"$out" | cut -d/ -f1)
  if [ -z "$tps" ] || [ -z "$tx" ] || [ "$tx" -eq 0 ]; then
    echo "pgbench failed for $script:" >&2; echo "$out" >&2; return 1
  fi
  echo "$tps $(echo "($after - $before) * 1000 / $hz / $tx" | bc -l)"
}

# bench_compare <label> <ours.sql> <baseline.sql> <clients> [rounds]
# alternates baseline and ours, prints per-round numbers and two RATIO lines.
bench_compare() {
  local label=$1 ours=$2 base=$3 clients=$4 rounds=${5:-3} r b o
  local bt=0 ot=0 bc=0 oc=0
  for r in $(seq 1 "$rounds"); do
    read -r btps bcpu < <(bench_measure "$base" "$clients") || return 1
    read -r otps ocpu < <(bench_measure "$ours" "$clients") || return 1
    printf '%s clients=%d round=%d baseline: %.0f tps %.3f ms cpu/tx | ours: %.0f tps %.3f ms cpu/tx\n' \
      "$label" "$clients" "$r" "$btps" "$bcpu" "$otps" "$ocpu"
    bt=$(echo "$bt + $btps" | bc -l); ot=$(echo "$ot + $otps" | bc -l)
    bc=$(echo "$bc + $bcpu" | bc -l); oc=$(echo "$oc + $ocpu" | bc -l)
  done
  printf 'RATIO %s, %d client(s), throughput ours/baseline: %.2f\n' "$label" "$clients" "$(echo "$ot / $bt" | bc -l)"
  printf 'RATIO %s, %d client(s), server CPU per tx baseline/ours: %.2f\n' "$label" "$clients" "$(echo "$bc / $oc" | bc -l)"
}

# bench_instructions <label> <ours.sql> <baseline.sql> [transactions]
# Restarts the cluster under valgrind (callgrind), runs each script for a
# fixed number of transactions on one connection, and compares the
# instructions its backend executed per transaction: a deterministic figure
# that other jobs on the machine cannot disturb.  Restarts the cluster
# normally afterwards.
bench_instructions() {
  local label=$1 ours=$2 base=$3 n=${4:-600} dir w f best
  command -v valgrind >/dev/null || { echo "valgrind missing: no instruction count for $label"; return 0; }
  dir=$(mktemp -d "$BENCH_WORK/cg.XXXXXX"); chmod 777 "$dir"
  pcr_as_pg "$PCR_PGBIN/pg_ctl" -D "$PCR_DATA" -m fast -w stop >/dev/null
  pcr_as_pg bash -c "valgrind --tool=callgrind --trace-children=yes --callgrind-out-file='$dir/cg.%p' \
      '$PCR_PGBIN/postgres' -D '$PCR_DATA' >'$dir/server.log' 2>&1 &"
  for _ in $(seq 1 120); do psql -XAtq -c "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
  declare -A ir
  for w in base ours; do
    f=$base; [ "$w" = ours ] && f=$ours
    pgbench -n -M prepared -c 1 -j 1 -t "$n" -f "$f" >"$dir/$w.pgbench" 2>&1
    sleep 3
    # the backend that served pgbench has exited and written the biggest profile
    # (earlier winners were moved away; live processes have not written theirs)
    best=$(for c in "$dir"/cg.*; do
             echo "$(awk '/^summary:/ {print $2}' "$c") $c"; done | sort -n | tail -n 1 | cut -d' ' -f2)
    ir[$w]=$(awk '/^summary:/ {print $2}' "$best")
    mv "$best" "$dir/done.$w"
  done
  pcr_as_pg "$PCR_PGBIN/pg_ctl" -D "$PCR_DATA" -m fast -w stop >/dev/null 2>&1 ||
    kill "$(head -n 1 "$PCR_DATA/postmaster.pid")" 2>/dev/null || true
  sleep 2
  pcr_as_pg "$PCR_PGBIN/pg_ctl" -D "$PCR_DATA" -l "$PCR_DATA/server.log" -w start >/dev/null
  printf '%s: backend instructions per tx: baseline %d, ours %d\n' "$label" "$((ir[base] / n))" "$((ir[ours] / n))"
  printf 'RATIO %s, backend instructions per tx baseline/ours (callgrind): %.2f\n' "$label" "$(echo "${ir[base]} / ${ir[ours]}" | bc -l)"
}
