#!/usr/bin/env bash
# 71_exec_kill — lease_execute under concurrency and when its callers or workers
# go away: 8 concurrent executes on one ssh lease and 16 across four leases, all
# answered and recorded, no process left; pg_cancel_backend, pg_terminate_backend
# and a client killed mid-command kill the remote command; a driver worker
# SIGKILLed mid-command (the postmaster then reinitialises everything) leaves the
# caller with an error and no process behind, on ssh (the remote watchdog) and
# on the local host (the supervisor kills the command's group).  Process counts before and after.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh
. test/fixtures/ssh_lab.sh
. test/fixtures/ssh_env.sh

if ! ssh_lab_available; then
  tap_skip_all "sshd is not installed"
  exit 0
fi
tap_plan 26
LAB=$PCR_WORK/exec61
ROOT=$PCR_WORK/local61
mkdir -p "$ROOT"
[ "$(id -u)" -eq 0 ] && chown postgres: "$ROOT"
chmod 700 "$ROOT"
cleanup() {
  pcr_setting_reset "$PGPORT" paperclip.driver_workers_per_company 2>/dev/null
  pcr_setting_reset "$PGPORT" paperclip.local_workspace_root 2>/dev/null
  ssh_db_drop
  ssh_lab_stop
  rm -rf "$ROOT"	# its database is not the reconciler's: nobody sweeps it
}
trap cleanup EXIT
ssh_lab_start "$LAB" || exit 1
ssh_db_create pcr_exec61 || exit 1
pcr_setting "$PGPORT" paperclip.driver_workers_per_company 2 || exit 1
pcr_setting "$PGPORT" paperclip.local_workspace_root "$ROOT" || exit 1
# the driver workers may still pool sessions to an earlier test's lab (an idle
# one lasts a minute): restart them, so that every session they pool is this lab's
OLD=$(sql -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'paperclip driver'")
sql -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'paperclip driver'" >/dev/null
_end=$((SECONDS + $(wait_secs 60))); while [ "$SECONDS" -le "$_end" ]; do
  [ "$(sql -c "SELECT count(*) FILTER (WHERE pid IN (${OLD:-0})) = 0 AND count(*) = current_setting('paperclip.driver_workers')::int
                 FROM pg_stat_activity WHERE backend_type = 'paperclip driver'")" == t ] && break
  sleep 0.2
done
E=00000000-0000-0000-0000-000000006101
ssh_env $E kill61
LEASES=()
for _ in 1 2 3 4; do
  LEASES+=("$(sql -c "SELECT id FROM paperclip.acquire_run_lease('$C1', '$E', '$(new_run)')")")
done
L=${LEASES[0]}
LOCAL=$(sql -c "SELECT id FROM paperclip.acquire_run_lease('$C1', '00000000-0000-0000-0000-0000000000e1', '$(new_run)')")

remote() { pgrep_ours "^(sh -c .*)?$1"; }
wrappers() { pgrep_ours '^/bin/sh -c nl='; }   # the watchdogs (the wrapper runs in the workspace)
wait_none() {
  _end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(remote "$1")" -eq 0 ] && return 0; sleep 0.1; done
  return 1
}
wait_wrappers_gone() {
  _end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(wrappers)" -eq 0 ] && return 0; sleep 0.1; done
  return 1
}
wait_started() {
  _end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(remote "$1")" -gt 0 ] && return 0; sleep 0.1; done
  return 1
}
server_up() {
  _end=$((SECONDS + $(wait_secs 60))); while [ "$SECONDS" -le "$_end" ]; do
    [ "$(psql -X -Atq -d "$DB" -c "SELECT count(*) >= 1 FROM pg_stat_activity WHERE backend_type = 'paperclip driver'" 2>/dev/null)" == t ] && return 0
    sleep 0.2
  done
  return 1
}

sql -c "SELECT 1 FROM paperclip.lease_execute('$L', 'true')" >/dev/null	# a warm session
wait_wrappers_gone
tap_is "$(wrappers)|$(remote 'sleep 61[0-9][0-9]')" "0|0" "before: no wrapper, watchdog or command of ours on the remote host"
# every sshd session on the lab host is one a driver worker keeps in its pool
sessions_match() {
  _end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do
    [ "$(ssh_lab_sessions)" -eq "$(sql -c "SELECT sum(pooled_sessions) FROM paperclip.driver_workers_status()")" ] && return 0
    sleep 0.1
  done
  return 1
}

# ------------------------------------------------------------ 8 concurrent on one lease
pids=()
for i in $(seq 1 8); do
  sql -c "SELECT exit_code || ':' || stdout FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'sleep 0.3; printf %s \$0', 'one-$i'])" \
    >"$LAB/c8.$i" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
got=$(for i in $(seq 1 8); do cat "$LAB/c8.$i"; done | sort | tr '\n' ' ')
tap_is "$got" "$(for i in $(seq 1 8); do echo "0:one-$i"; done | sort | tr '\n' ' ')" \
  "8 concurrent executes on one lease: each gets its own answer"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.lease_executions WHERE lease_id = '$L' AND command = 'sh'")" 8 "... and each is recorded once"

# ------------------------------------------------------------ 16 across four leases
pids=()
for i in $(seq 1 16); do
  lease=${LEASES[$((i % 4))]}
  sql -c "SELECT exit_code || ':' || stdout FROM paperclip.lease_execute('$lease', 'sh', ARRAY['-c', 'sleep 0.2; printf %s \$0', 'many-$i'])" \
    >"$LAB/c16.$i" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
got=$(for i in $(seq 1 16); do cat "$LAB/c16.$i"; done | sort | tr '\n' ' ')
tap_is "$got" "$(for i in $(seq 1 16); do echo "0:many-$i"; done | sort | tr '\n' ' ')" \
  "16 concurrent executes across four leases: each gets its own answer"
tap_is "$(sql -c "SELECT count(DISTINCT lease_id) || '|' || count(*) FROM paperclip.lease_executions WHERE command = 'sh'")" "4|24" \
  "... recorded on their four leases"
wait_wrappers_gone
tap_ok $? "no wrapper or watchdog is left on the remote host"
tap_is "$(wrappers)|$(remote 'sleep 61[0-9][0-9]')" "0|0" "after: none either"
sessions_match
tap_is "$(ssh_lab_sessions)" "$(sql -c "SELECT sum(pooled_sessions) FROM paperclip.driver_workers_status()")" \
  "... and the sshd sessions on the host are exactly the sessions the driver workers pool"

# ------------------------------------------------------------ the caller goes away
tap_is "$(sql_error -c "SET statement_timeout = '800ms'" -c "SELECT * FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'sleep 6109 & sleep 6110'])")" \
  "57014: canceling statement due to statement timeout" "statement_timeout mid-command: 57014"
wait_none "sleep 61(09|10)"
tap_ok $? "... and the remote command and its child are killed"
PGAPPNAME=pcr_exec61_cancel sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'sleep', ARRAY['6101'])" >"$LAB/cancel.out" &
bg=$!
wait_started "sleep 6101"
sql -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'pcr_exec61_cancel'" >/dev/null
wait $bg
tap_is "$(cat "$LAB/cancel.out")" "57014: canceling statement due to user request" "pg_cancel_backend mid-command: 57014"
wait_none "sleep 6101"
tap_ok $? "... and the remote command is killed"

PGAPPNAME=pcr_exec61_term psql -X -Atq -d "$DB" -c "SELECT * FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'sleep 6102 & sleep 6103'])" >/dev/null 2>&1 &
bg=$!
wait_started "sleep 6103"
sql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pcr_exec61_term'" >/dev/null
wait $bg
tap_ok $([ $? -ne 0 ]; echo $?) "pg_terminate_backend mid-command: the caller gets an error"
wait_none "sleep 610[23]"
tap_ok $? "... and the remote command and its child are killed"

psql -X -Atq -d "$DB" -c "SELECT * FROM paperclip.lease_execute('$L', 'sleep', ARRAY['6104'])" >/dev/null 2>&1 &
bg=$!
wait_started "sleep 6104"
kill -9 "$bg"
wait "$bg" 2>/dev/null
wait_none "sleep 6104"
tap_ok $? "a client killed mid-command: its backend notices within a second or so, and the remote command is killed"

# ------------------------------------------------------------ the driver worker SIGKILLed mid-command
psql -X -Atq -d "$DB" -c "SELECT * FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'sleep 6105 & sleep 6106'])" >"$LAB/wk.out" 2>&1 &
bg=$!
wait_started "sleep 6106"
WPID=$(sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'paperclip driver' AND state = 'active' AND query = 'ssh.execute' LIMIT 1")
tap_like "$WPID" "^[0-9]+$" "a driver worker runs the ssh command"
kill -9 "$WPID"
wait "$bg"
tap_ok $([ $? -ne 0 ]; echo $?) "the worker SIGKILLed mid-command: the caller gets an error"
tap_like "$(cat "$LAB/wk.out")" "terminat|closed the connection|crash" "... (the postmaster reinitialised the server)"
wait_none "sleep 610[56]"
tap_ok $? "... and the remote command and its child are killed by the watchdog once the session is gone"
server_up
tap_ok $? "the server and its driver workers are back"
tap_is "$(sql -c "SELECT exit_code FROM paperclip.lease_execute('$L', 'true')")" 0 "the lease runs commands again"

# a local command that started a child of its own: the supervisor kills its group
psql -X -Atq -d "$DB" -c "SELECT * FROM paperclip.lease_execute('$LOCAL', 'sh', ARRAY['-c', 'sleep 6107 & sleep 6108'])" >"$LAB/wk2.out" 2>&1 &
bg=$!
wait_started "sleep 6107" && wait_started "sleep 6108"
WPID=$(sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'paperclip driver' AND state = 'active' AND query = 'local.execute' LIMIT 1")
tap_like "$WPID" "^[0-9]+$" "a driver worker runs the local command"
kill -9 "$WPID"
wait "$bg"
tap_ok $([ $? -ne 0 ]; echo $?) "that worker SIGKILLed mid-command: the caller gets an error"
wait_none "sleep 610[78]"
tap_ok $? "... and the local command and its child are gone (its supervisor killed their group)"
server_up
tap_ok $? "the server is back again"
wait_wrappers_gone
tap_ok $? "in the end, nothing of ours runs on the remote host"
