# test/lib/recon.sh — TAP and cluster helpers for the reconciler's shell tests
#
# Source it after test/lib/cluster.sh.  Each test starts its own cluster:
#   recon_cluster NAME [postgresql.conf lines...]   (sets RDATA, RPORT; stops it on exit)
# then
#   sql "SQL" [db]           run SQL, print unaligned tuples (db defaults to $RDB)
#   sql_file FILE            run a file of SQL (- for standard input) in $RDB
#   ok DESC CMD...           TAP line from a command's exit status
#   is GOT WANT DESC         TAP line from a comparison
#   wait_until SECS "SQL"    poll until SQL returns t (0) or the time is up (1);
#                            SECS is at least $PCR_WAIT_MIN (30): a deadline only
#                            bounds a wait for a loaded machine, it is never what
#                            a test asserts
#   done_testing             print the plan
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"
RDB=${RDB:-pcr}

recon_cluster() {
  local name=$1
  shift
  RDATA=$PCR_WORK/$name
  RPORT=$(pcr_free_port)
  pcr_cluster_init "$RDATA" "$RPORT" "$@" || exit 1
  pcr_cluster_start "$RDATA" || exit 1
  trap 'pcr_cluster_stop "$RDATA" immediate' EXIT
}

sql() {
  "$PCR_PGBIN/psql" -X -qAt -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$RPORT" -U postgres \
    -d "${2:-$RDB}" -c "$1"
}

# run a file of SQL (- for standard input) in $RDB
sql_file() {
  "$PCR_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$RPORT" -U postgres -d "$RDB" -f "$1"
}

ok() {
  local desc=$1
  shift
  "$@"
  tap_ok $? "$desc"
}

is() { tap_is "$@"; }

wait_until() {
  local deadline=$((SECONDS + $(wait_secs "$1"))) got
  while [ "$SECONDS" -le "$deadline" ]; do
    got=$(sql "$2" 2>/dev/null)
    [ "$got" = "t" ] && return 0
    sleep 0.1
  done
  return 1
}

# the reconciler's pid as pg_stat_activity shows it (empty when not running)
reconciler_pid() {
  sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'paperclip reconciler'" postgres
}

done_testing() { tap_done; }
