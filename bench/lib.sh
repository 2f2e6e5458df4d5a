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

bench_measure() {
  local script=$1 clients=$2 before after out tx tps hz
  hz=$(getconf CLK_TCK)
  psql -XAtq -c "VACUUM ANALYZE" >/dev/null
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
