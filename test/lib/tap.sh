# test/lib/tap.sh — TAP output (and psql helpers) for test/shell/*.sh
#
#   tap_ok STATUS DESC        ok when STATUS is 0
#   tap_is GOT WANT DESC      ok when the strings are equal (shows both otherwise)
#   tap_like GOT PATTERN DESC ok when GOT matches the extended regex
#   tap_skip REASON           a skipped test
#   tap_plan N                the plan line 1..N, printed first (test/run.sh checks it)
#   tap_skip_all REASON       plan 1..1 and one skipped test, for a file that cannot run
#   tap_done                  the plan line 1..<tests run>, printed last; fails if any test did
#   sql [psql args...]        psql -Atq against $DB, stops on the first error
#   sql_error SQL             runs SQL, prints "SQLSTATE: message" of its error (or "no error")
#   now_ms                    wall clock in milliseconds
#   wait_secs SECS            SECS, at least $PCR_WAIT_MIN (30): the deadline of a wait for a
#                             condition (a loaded machine is slow; a deadline is never the assertion)
#   wait_log FILE OFFSET ERE [SECS]
#                             poll (wait_secs SECS, default 30) until FILE past its first OFFSET
#                             bytes has a line matching ERE; 1 when the time is up
#   pgrep_ours ERE            how many processes whose command line matches ERE are this
#                             suite's: their working directory, or a mount of their (sandbox's)
#                             namespace, is under $PCR_WORK.  Other checkouts run the same tests
#                             on this machine at the same time: a bare pgrep counts theirs too
# and test/lib/settings.sh: pcr_setting, pcr_setting_reset, pcr_reconciler_passes
. "$(dirname "${BASH_SOURCE[0]}")/settings.sh"
TAP_N=0
TAP_FAILED=0

tap_ok() {
  TAP_N=$((TAP_N + 1))
  if [ "$1" -eq 0 ]; then echo "ok $TAP_N - $2"
  else echo "not ok $TAP_N - $2"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}

tap_is() {
  if [ "$1" == "$2" ]; then tap_ok 0 "$3"; else
    tap_ok 1 "$3"
    echo "#   got:      '$1'"
    echo "#   expected: '$2'"
  fi
}

tap_like() {
  if [[ $1 =~ $2 ]]; then tap_ok 0 "$3"; else
    tap_ok 1 "$3"
    echo "#   got:          '$1'"
    echo "#   expected like '$2'"
  fi
}

tap_skip() {
  TAP_N=$((TAP_N + 1))
  echo "ok $TAP_N # skip $1"
}

tap_plan() {
  echo "1..$1"
}

tap_skip_all() {
  tap_plan 1
  tap_skip "$1"
}

tap_done() {
  echo "1..$TAP_N"
  [ "$TAP_FAILED" -eq 0 ]
}

sql() {
  psql -X -Atq -v ON_ERROR_STOP=1 -d "$DB" "$@"
}

sql_error() {
  local out
  out=$(psql -X -Atq -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d "$DB" -c '\set VERBOSITY verbose' "$@" 2>&1 >/dev/null)
  out=$(printf '%s\n' "$out" | sed -n 's/^\(psql:[^ ]* \)\{0,1\}ERROR:  \([0-9A-Z]\{5\}\): \(.*\)$/\2: \3/p' | head -n 1)
  echo "${out:-no error}"
}

now_ms() {
  date +%s%3N
}

PCR_WAIT_MIN=${PCR_WAIT_MIN:-30}
wait_secs() {
  if [ "$1" -ge "$PCR_WAIT_MIN" ]; then echo "$1"; else echo "$PCR_WAIT_MIN"; fi
}

wait_log() {
  local end=$((SECONDS + $(wait_secs "${4:-30}")))
  while :; do
    tail -c +"$(($2 + 1))" "$1" | grep -qE -- "$3" && return 0
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.2
  done
}

pgrep_ours() {
  local n=0 p
  for p in $(pgrep -f -- "$1"); do
    case $(readlink "/proc/$p/cwd" 2>/dev/null) in
      "$PCR_WORK"/*) n=$((n + 1)) ;;
      *) grep -qF "$PCR_WORK/" "/proc/$p/mountinfo" 2>/dev/null && n=$((n + 1)) ;;
    esac
  done
  echo "$n"
}
