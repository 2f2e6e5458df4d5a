#!/usr/bin/env bash
# 60_bwrap_lifecycle — sandboxes that leak nothing (docs/providers.md), with the bwrap
# provider: a workspace per lease made before the row, labelled outside it;
# released → destroyed; reusable → kept and resumed, destroyed when its
# environment is archived; a (sub)transaction that rolls back, a backend
# terminated mid-acquire, the losing side of a concurrent acquire, a driver
# worker SIGKILLed mid-create and a crash of the whole server leave nothing
# behind but the objects of active leases; an ABI 1 provider keeps working.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/recon.sh
. test/lib/bwrap.sh

bwrap_skip_unless_usable
tap_plan 41
bwrap_fixtures
# a bwrap that takes its time: acquisitions stay in create long enough to be interrupted
SLOW=$PCR_WORK/slow-bwrap
printf '#!/bin/sh\nsleep 3\nexec /usr/bin/bwrap "$@"\n' >"$SLOW"
chmod 755 "$SLOW"
BG=()
bwrap_cluster bwrap60 "paperclip.reconcile_interval = '1s'" "paperclip.acquire_timeout = '5s'" \
  "paperclip.driver_workers = 3" "paperclip.cleanup_max_attempts = 50" "paperclip.max_pending_sandboxes = 16"
cleanup60() {
  local pid
  for pid in "${BG[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  chmod 700 "$SROOT" 2>/dev/null
  pcr_cluster_stop "$RDATA" immediate
}
trap cleanup60 EXIT
bwrap_db
sql "INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id)
     SELECT ('00000000-0000-0000-0000-0000000000' || i)::uuid,
            '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1'
       FROM generate_series(10, 40) AS i" >/dev/null
set_bwrap() {  # set_bwrap PATH : paperclip_bwrap.bwrap_path, in force for the next request to a worker
  pcr_setting "$RPORT" paperclip_bwrap.bwrap_path "$1" || exit 1
}
bg_acquire() {  # bg_acquire APPNAME ENV RUN OUTFILE
  ( PGAPPNAME=$1 "$PCR_PGBIN/psql" -X -Atq -h 127.0.0.1 -p "$RPORT" -U postgres -d pcr \
      -c "SELECT id FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
            '00000000-0000-0000-0000-0000000000$2', '00000000-0000-0000-0000-0000000000$3')" >"$4" 2>&1 ) &
  BG+=($!)
}
wait_for_dir() {  # wait until a workspace directory exists
  local end=$(( SECONDS + $(wait_secs 30) )) d
  while [ "$SECONDS" -le "$end" ]; do
    for d in "$SROOT"/pcr-*; do [ -d "$d" ] && return 0; done
    sleep 0.05
  done
  return 1
}

# ---------------------------------------------------------------- a lease and its workspace
L1=$(acquire e5 f1)
W1=$SROOT/$(object_of "$L1")
tap_is "$(stat -c '%a %U' "$W1" 2>&1)" "700 postgres" "acquire made the workspace <sandbox_root>/pcr-<cluster>-<lease id>, 0700, the server's"
tap_like "$(cat "$W1.json" 2>&1)" "\"company\": \"00000000-0000-0000-0000-0000000000c1\".*\"lease\": \"$L1\"" \
  "its labels (cluster, company, environment, lease) are outside the workspace"
tap_is "$(bexec "$L1" sh "array['-c', 'echo hello > /workspace/f; cat f; ls -A /workspace']")" "0|hello
f
|" "the workspace is /workspace of the lease's commands, and their cwd"
tap_is "$(cat "$W1/f")" "hello" "what a command writes there is in the workspace"
release f1
wait_cleanup "$L1" success
tap_ok $? "a released lease's cleanup succeeds"
tap_is "$(objects)" "" "...and its workspace and labels are gone"
tap_is "$(psqlv -c "DELETE FROM paperclip.environment_leases WHERE id = '$L1'")" "no error" \
  "a lease whose cleanup is done can be deleted"

# ---------------------------------------------------------------- reusable: kept, resumed, archived
R1=$(acquire e6 f2)
WR=$SROOT/$(object_of 00000000-0000-0000-0000-0000000000e6)
tap_ok "$( [ -d "$WR" ]; echo $? )" "a reusable lease's workspace is named after its environment"
bexec "$R1" sh "array['-c', 'echo kept > /workspace/state']" >/dev/null
release f2
wait_cleanup "$R1" success
tap_is "$(cat "$WR/state" 2>&1)" "kept" "its release keeps the workspace for the next run"
R2=$(acquire e6 f3)
tap_is "$(sql "SELECT metadata->>'resumedLease' FROM paperclip.environment_leases WHERE id = '$R2'")" "true" \
  "the next run resumes it (resumedLease)"
tap_is "$(bexec "$R2" cat "array['/workspace/state']")" "0|kept
|" "...and finds what the previous run left"
release f3
wait_cleanup "$R2" success
sql "UPDATE paperclip.environments SET status = 'archived' WHERE id = '00000000-0000-0000-0000-0000000000e6'" >/dev/null
wait_objects 20 ""
tap_ok $? "archiving the reusable environment destroys its sandbox"
sql "UPDATE paperclip.environments SET status = 'active' WHERE id = '00000000-0000-0000-0000-0000000000e6'" >/dev/null

# ---------------------------------------------------------------- aborted acquisitions
p0=$(passes)
out=$(sql "BEGIN; SELECT id FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
             '00000000-0000-0000-0000-0000000000e5', '00000000-0000-0000-0000-0000000000f4');
           SELECT count(*) FROM pg_ls_dir('$SROOT') AS d WHERE d LIKE 'pcr-%'; ROLLBACK;")
tap_is "$(tail -n 1 <<<"$out")" "2" "inside the transaction the workspace and its labels exist"
wait_objects 20 ""
tap_ok $? "BEGIN; acquire; ROLLBACK: the workspace is destroyed"
tap_ok "$( [ $(( $(passes) - p0 )) -le 2 ]; echo $? )" "...within two reconcile passes ($(( $(passes) - p0 )))"
tap_is "$(sql "SELECT count(*) FROM paperclip.environment_leases WHERE heartbeat_run_id = '00000000-0000-0000-0000-0000000000f4'")" 0 \
  "...and no lease row was written"
p0=$(passes)
out=$(sql "BEGIN; SAVEPOINT s; SELECT paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
       '00000000-0000-0000-0000-0000000000e5', '00000000-0000-0000-0000-0000000000f4');
     ROLLBACK TO SAVEPOINT s;
     DO \$\$ DECLARE until timestamptz := clock_timestamp() + interval '60 s'; BEGIN
       -- until the workspace is gone (60 s only bound the wait on a loaded machine)
       WHILE clock_timestamp() < until
             AND (SELECT count(*) FROM pg_ls_dir('$SROOT') AS d WHERE d LIKE 'pcr-%') > 0 LOOP
         PERFORM pg_sleep(0.1);
       END LOOP;
     END \$\$;
     SELECT count(*) FROM pg_ls_dir('$SROOT') AS d WHERE d LIKE 'pcr-%'; COMMIT;")
tap_is "$(tail -n 1 <<<"$out")" "0" "an acquire in a savepoint rolled back is destroyed while its transaction goes on"
tap_ok "$( [ $(( $(passes) - p0 )) -le 2 ]; echo $? )" "...within two reconcile passes"
L2=$(sql "BEGIN; SAVEPOINT s; SELECT id FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
            '00000000-0000-0000-0000-0000000000e5', '00000000-0000-0000-0000-0000000000f4');
          RELEASE SAVEPOINT s; COMMIT;" | tail -n 1)
pcr_reconciler_passes "$RPORT" pcr 2 || exit 1   # the passes that destroyed the one rolled back
tap_is "$(objects)" "$(object_of "$L2") $(object_of "$L2").json" "an acquire in a released savepoint that commits keeps its workspace"
release f4
wait_objects 20 ""

# a transaction's 17th acquisition finds the table of acquisitions in flight full (16)
err=$(psqlv -c "SELECT count(paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                  '00000000-0000-0000-0000-0000000000e5', ('00000000-0000-0000-0000-0000000000' || i)::uuid))
                  FROM generate_series(20, 36) AS i")
tap_is "$err" "53400: too many sandbox acquisitions are waiting for their outcome" \
  "a full table of acquisitions in flight refuses the next acquire (53400) rather than lose track"
wait_objects 20 ""
tap_ok $? "...and the 16 workspaces its transaction made are destroyed"

# a backend terminated while its acquisition runs create
set_bwrap "$SLOW"
bg_acquire pcr_victim e5 10 "$PCR_WORK/victim.out"
wait_for_dir
tap_ok $? "a slow create is under way (its workspace exists)"
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pcr_victim'" postgres >/dev/null
wait "${BG[-1]}"
wait_objects 20 ""
tap_ok $? "a backend terminated during an acquire leaves no workspace"
tap_is "$(bwrap_procs)" 0 "...and no sandbox process"

# two sessions acquire for the same run: one lease, the loser's workspace destroyed
bg_acquire pcr_a e5 11 "$PCR_WORK/a.out"
bg_acquire pcr_b e5 11 "$PCR_WORK/b.out"
wait "${BG[-1]}" "${BG[-2]}"
tap_is "$(sort -u "$PCR_WORK/a.out" "$PCR_WORK/b.out" | wc -l)" 1 "concurrent acquires of one run both return the one lease"
L3=$(cat "$PCR_WORK/a.out")
wait_objects 20 "$(object_of "$L3") $(object_of "$L3").json"
tap_ok $? "...and only the winner's workspace is left"
set_bwrap /usr/bin/bwrap
release 11
wait_objects 20 ""

# ---------------------------------------------------------------- an ABI 1 provider
sql "INSERT INTO paperclip.environments (id, company_id, name, driver, config)
     VALUES ('00000000-0000-0000-0000-0000000000a9', '00000000-0000-0000-0000-0000000000c1', 'abi one', 'sandbox',
             '{\"provider\": \"abi1\"}')" >/dev/null
r=$(sql "SELECT provider || ' ' || provider_lease_id || ' ' || (metadata->>'flavor')
           FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
                '00000000-0000-0000-0000-0000000000a9', '00000000-0000-0000-0000-000000000012')")
tap_is "$r" "abi1 abi1://00000000-0000-0000-0000-000000000012 plain" "an ABI 1 provider (0.1.0 header) acquires as it always did"
tap_is "$(sql "SELECT coalesce(cleanup_status, 'null') FROM paperclip.release_run_leases('00000000-0000-0000-0000-000000000012')")" \
  "null" "...and its leases release without a cleanup"
tap_is "$(sql "SELECT paperclip.environment_probe('00000000-0000-0000-0000-0000000000a9')->>'summary'")" \
  'sandbox provider "abi1" is available' "...and it probes as available"

# ---------------------------------------------------------------- a driver worker SIGKILLed during create
set_bwrap "$SLOW"
bg_acquire pcr_k e5 13 "$PCR_WORK/k.out"
wait_for_dir
victim=$(sql "SELECT pid FROM paperclip.driver_workers_status() WHERE operation = 'bwrap.acquire'")
kill -KILL "$victim"
wait "${BG[-1]}"
tap_like "$(cat "$PCR_WORK/k.out")" "(server closed the connection|terminating connection|ERROR)" \
  "the acquire whose worker was SIGKILLed fails"
wait_until 60 "SELECT count(*) = 3 FROM paperclip.driver_workers_status() WHERE state = 'idle'"
tap_ok $? "the server reinitialises (the postmaster restarts after a SIGKILLed child)"
set_bwrap /usr/bin/bwrap
wait_objects 60 ""
tap_ok $? "the start-up sweep destroys the half-created workspace (its lease does not exist, past the grace)"
tap_is "$(bwrap_procs)" 0 "...and no sandbox process is left"

# ---------------------------------------------------------------- a crash with live objects
# (and an active lease of another database, which this reconciler does not serve)
sql "CREATE DATABASE pcr2" postgres >/dev/null
RDB=pcr2 sql "CREATE EXTENSION paperclip_runtime" >/dev/null
RDB=pcr2 sql_file test/fixtures/seed.sql >/dev/null
L2DB=$(RDB=pcr2 acquire e5 f1)
LA=$(acquire e5 14)
LB=$(acquire e5 15)
# destroys fail from here until the crash (the root is not writable): the objects stay
LC=$("$PCR_PGBIN/psql" -X -Atq -h 127.0.0.1 -p "$RPORT" -U postgres -d pcr -c "BEGIN" \
       -c "SELECT id FROM paperclip.acquire_run_lease('00000000-0000-0000-0000-0000000000c1',
             '00000000-0000-0000-0000-0000000000e5', '00000000-0000-0000-0000-000000000016')" \
       -c "\\! chmod 500 $SROOT" -c "ROLLBACK")
release 15
wait_until 30 "SELECT cleanup_error IS NOT NULL FROM paperclip.environment_leases WHERE id = '$LB'"
tap_is "$(objects)" "$(printf '%s\n' "$(object_of "$LA")" "$(object_of "$LA").json" "$(object_of "$LB")" \
         "$(object_of "$LB").json" "$(object_of "$LC")" "$(object_of "$LC").json" \
         "$(object_of "$L2DB")" "$(object_of "$L2DB").json" | sort | tr '\n' ' ' | sed 's/ $//')" \
  "before the crash: the workspaces of an active, a released and a rolled-back lease (their destroys failing)"
tap_like "$(sql "SELECT cleanup_status || ': ' || cleanup_error FROM paperclip.environment_leases WHERE id = '$LB'")" \
  "^pending: .*could not destroy sandbox" "the failed destroy is retried (cleanup pending, its error kept)"
pcr_cluster_restart "$RDATA" immediate
chmod 700 "$SROOT"
survivors=$(printf '%s\n' "$(object_of "$LA")" "$(object_of "$LA").json" "$(object_of "$L2DB")" "$(object_of "$L2DB").json" |
            sort | tr '\n' ' ' | sed 's/ $//')
wait_objects 60 "$survivors"
tap_ok $? "after pg_ctl restart -m immediate only the active leases' workspaces are left"
pcr_reconciler_passes "$RPORT" pcr 2 || exit 1   # the start-up sweep is behind us, and another pass
tap_is "$(objects)" "$survivors" "...including that of another database's lease (labelled with its database, left to its reconciler)"
tap_is "$(sql "SELECT cleanup_status FROM paperclip.environment_leases WHERE id = '$LB'")" "success" \
  "...the released lease's cleanup completed"
tap_is "$(sql "SELECT count(*) FROM paperclip.environment_leases WHERE id = '$LC'")" 0 \
  "...and the rolled-back lease never existed"
release 14
wait_objects 20 "$(object_of "$L2DB") $(object_of "$L2DB").json"
RDB=pcr2 release f1
sql "ALTER SYSTEM SET paperclip.database = 'pcr2'" postgres >/dev/null
pcr_cluster_restart "$RDATA" fast
wait_objects 30 ""
tap_ok $? "released, each lease's workspace is destroyed by the reconciler of its database: the root is empty"
tap_is "$(bwrap_procs)" 0 "no sandbox process is left"
