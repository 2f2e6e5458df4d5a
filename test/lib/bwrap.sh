# test/lib/bwrap.sh — helpers for the shell tests of the bwrap provider
#
# Source it after test/lib/cluster.sh and test/lib/recon.sh.
#   bwrap_fixtures              build and install the test-only libraries (pcr_bwrap_test, pcr_abi1_provider)
#   bwrap_cluster NAME [conf]   recon_cluster with both preloaded after paperclip_bwrap; sets SROOT
#   bwrap_db                    database pcr: the extension, the seed, pcr_bwrap_test_exec()
#   objects                     the entries of the sandbox root (sorted, one line)
#   bwrap_procs                 how many processes hold a mount of the sandbox root (sandboxes alive)
#   wait_objects SECS WANT      poll until objects prints WANT (SECS: wait_secs, tap.sh)
#   object_of LEASE_ID|ENV_ID   pcr-<cluster>-<id>
#   bexec LEASE CMD [ARGS]      run a command in a lease's sandbox, calling the provider's execute
#                               directly in a driver worker (pcr_bwrap_test_exec())
#   psqlv SQL...                "SQLSTATE: message" of the error, or "no error"
#   bwrap_skip_unless_usable    plan one skipped test and exit 0 when bubblewrap is not
#                               installed, or when the kernel refuses it the namespaces
#                               it needs (a chroot, a container without unprivileged
#                               user namespaces); any other failure of bwrap is left to
#                               the tests to see

bwrap_skip_unless_usable() {
  local out
  if ! command -v bwrap >/dev/null 2>&1; then
    tap_skip_all "bubblewrap is not installed"
    exit 0
  fi
  # what the provider runs, reduced: new namespaces of every kind, as the
  # server's user (bwrap's messages: "No permissions to create new namespace",
  # "Creating new namespace failed")
  out=$(pcr_as_pg bwrap --unshare-all --die-with-parent --ro-bind / / true 2>&1) && return 0
  case $out in
    *"create new namespace"* | *"new namespace failed"*)
      tap_skip_all "bwrap cannot create namespaces here (${out%%,*})"
      exit 0 ;;
  esac
}

bwrap_fixtures() {
  local mod rc=0
  for mod in test/fixtures/bwrap_test test/fixtures/abi1_provider; do
    { make -C "$mod" PCR_DESTDIR="${PCR_DESTDIR:-}" &&
      make -C "$mod" PCR_DESTDIR="${PCR_DESTDIR:-}" install DESTDIR="${PCR_DESTDIR:-}"; } \
      >>"$PCR_WORK/bwrap_fixtures.build" 2>&1 || rc=1
    make -C "$mod" clean >/dev/null 2>&1
  done
  [ "$rc" -eq 0 ] || { cat "$PCR_WORK/bwrap_fixtures.build" >&2; exit 1; }
}

bwrap_cluster() {
  local name=$1
  shift
  recon_cluster "$name" "shared_preload_libraries = 'paperclip_runtime, paperclip_bwrap, pcr_bwrap_test, pcr_abi1_provider'" \
    "paperclip.database = 'pcr'" "$@"
  SROOT=$RDATA.sandboxes
}

bwrap_db() {
  sql "CREATE DATABASE pcr" postgres >/dev/null
  sql "CREATE EXTENSION paperclip_runtime" >/dev/null
  sql_file test/fixtures/seed.sql >/dev/null
  sql "CREATE FUNCTION pcr_bwrap_test_exec(object text, metadata jsonb, command text, args text[], env text[],
         cwd text, stdin text, timeout_ms int, max_output int, config jsonb DEFAULT '{}',
         OUT status int, OUT message text, OUT started bool, OUT exit_code int, OUT sig int,
         OUT timed_out bool, OUT stdout text, OUT stderr text, OUT duration_ms int)
       AS 'pcr_bwrap_test' LANGUAGE C" >/dev/null
  CLUSTER_ID=$(sql "SELECT lpad(to_hex(system_identifier), 16, '0') FROM pg_control_system()")
}

objects() { ls -A "$SROOT" 2>/dev/null | sort | tr '\n' ' ' | sed 's/ $//'; }

bwrap_procs() {
  local n=0 p
  for p in $(pgrep -x bwrap); do
    grep -qF "$SROOT" "/proc/$p/mountinfo" 2>/dev/null && n=$((n + 1))
  done
  echo "$n"
}

wait_objects() {
  local end=$(( SECONDS + $(wait_secs "$1") ))
  while [ "$SECONDS" -le "$end" ]; do [ "$(objects)" == "$2" ] && return 0; sleep 0.2; done
  return 1
}

object_of() { echo "pcr-$CLUSTER_ID-$1"; }

# bexec LEASE 'cmd' "array[...]" [cwd] [timeout_ms]: exit code (or sig<N>)|stdout|stderr
# (the lease's metadata and its environment's config go to execute, as lease_execute passes them)
bexec() {
  sql "SELECT coalesce(exit_code::text, 'sig' || sig) || '|' || stdout || '|' || stderr
         FROM pcr_bwrap_test_exec(
                (SELECT 'pcr-$CLUSTER_ID-' || CASE WHEN lease_policy = 'reuse_by_environment'
                                                   THEN environment_id ELSE id END
                   FROM paperclip.environment_leases WHERE id = '$1'),
                (SELECT metadata FROM paperclip.environment_leases WHERE id = '$1'),
                '$2', ${3:-NULL}, array['PATH=/usr/bin:/bin', 'HOME=/workspace'], ${4:-NULL}, NULL,
                ${5:-10000}, 65536,
                (SELECT e.config FROM paperclip.environment_leases AS l JOIN paperclip.environments AS e
                     ON e.id = l.environment_id WHERE l.id = '$1'))"
}

psqlv() {
  local o
  o=$("$PCR_PGBIN/psql" -X -Atq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$RPORT" -U postgres -d "${RDB:-pcr}" \
        -c '\set VERBOSITY verbose' "$@" 2>&1 >/dev/null)
  o=$(printf '%s\n' "$o" | sed -n 's/^\(psql:[^ ]* \)\{0,1\}ERROR:  \([0-9A-Z]\{5\}\): \(.*\)$/\2: \3/p' | head -n 1)
  echo "${o:-no error}"
}

acquire() {  # acquire ENV RUN : the new lease's id
  sql "SELECT id FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
         '00000000-0000-0000-0000-0000000000$1', '00000000-0000-0000-0000-0000000000$2')"
}

release() { sql "SELECT count(*) FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000$1')" >/dev/null; }

cleanup_of() { sql "SELECT coalesce(cleanup_status, 'null') FROM paperclip.environment_leases WHERE id = '$1'"; }

wait_cleanup() {  # wait_cleanup LEASE WANT [secs]
  local end=$(( SECONDS + $(wait_secs "${3:-60}") ))
  while [ "$SECONDS" -le "$end" ]; do [ "$(cleanup_of "$1")" == "$2" ] && return 0; sleep 0.2; done
  return 1
}

passes() { sql "SELECT passes FROM paperclip.reconciler_status()"; }
