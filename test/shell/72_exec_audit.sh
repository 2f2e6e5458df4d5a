#!/usr/bin/env bash
# 72_exec_audit — every lease_execute call that ran leaves a row in
# paperclip.lease_executions, whatever becomes of the caller's transaction: a
# completed call in a committed transaction (in that transaction), and out of
# band, inserted by the reconciler, the calls whose row did not survive — a
# ROLLBACK, a ROLLBACK TO SAVEPOINT, an exception block, a statement_timeout, a
# command that could not start (58030), a backend terminated mid-command;
# PREPARE TRANSACTION is refused.  Then the local workspaces: removed once their
# lease is released or their acquiring transaction rolled back, kept while that
# transaction runs, and a symbolic link planted in one is not followed.
# Runs in the database the suite's reconciler serves (paperclip.database).
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh

tap_plan 26
DB=pcr_regress
ROOT=$PCR_WORK/local62
OUTSIDE=$PCR_WORK/outside62
mkdir -p "$ROOT" "$OUTSIDE"
echo precious >"$OUTSIDE/keep"
# owned by the server's user: a removal that followed a link could delete them
[ "$(id -u)" -eq 0 ] && chown postgres: "$ROOT" "$OUTSIDE" "$OUTSIDE/keep"
chmod 700 "$ROOT"
CO=00000000-0000-0000-0000-000000006201
AG=00000000-0000-0000-0000-000000006202
EN=00000000-0000-0000-0000-000000006203
cleanup() {
  psql -XAtq -d "$DB" -c "DELETE FROM paperclip.lease_executions WHERE company_id = '$CO'" \
       -c "UPDATE paperclip.heartbeat_runs SET status = 'cancelled' WHERE company_id = '$CO' AND status NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out')" \
       -c "DELETE FROM paperclip.companies WHERE id = '$CO'" >/dev/null 2>&1
  pcr_setting_reset "$PGPORT" paperclip.local_workspace_root 2>/dev/null
}
trap cleanup EXIT
sql -c "INSERT INTO paperclip.companies (id, name) VALUES ('$CO', 'audit 62')" \
    -c "INSERT INTO paperclip.agents (id, company_id, name) VALUES ('$AG', '$CO', 'a62')" \
    -c "INSERT INTO paperclip.environments (id, company_id, name, driver) VALUES ('$EN', '$CO', 'local 62', 'local')" || exit 1
pcr_setting "$PGPORT" paperclip.local_workspace_root "$ROOT" || exit 1
new_run() { sql -c "INSERT INTO paperclip.heartbeat_runs (company_id, agent_id) VALUES ('$CO', '$AG') RETURNING id"; }
acquire() { sql -c "SELECT id FROM paperclip.acquire_run_lease('$CO', '$EN', '$1')"; }
RUN=$(new_run)
L=$(acquire "$RUN")
PREFIX="$ROOT/pcr-$(sql -c "SELECT to_hex(system_identifier) FROM pg_control_system()")-db$(sql -c "SELECT oid FROM pg_database WHERE datname = current_database()")"
rows() { sql -c "SELECT count(*) FROM paperclip.lease_executions WHERE company_id = '$CO' AND command = '$1'"; }
# wake the reconciler and wait (at most 30 s) until the SQL answers t
wait_for() {
  _end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do
    sql -c "SELECT paperclip.reconciler_wake()" >/dev/null
    [ "$(sql -c "$1")" == t ] && return 0
    sleep 0.2
  done
  return 1
}
left() { pgrep_ours "^(sh -c .*)?$1"; }
wait_none() {
  _end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(left "$1")" -eq 0 ] && return 0; sleep 0.1; done
  return 1
}

# ------------------------------------------------------------ in the caller's transaction
X=$(sql -c "SELECT execution_id FROM paperclip.lease_execute('$L', 'echo', ARRAY['one'])")
tap_is "$(sql -F '|' -c "SELECT command, exit_code, stdout_bytes, coalesce(error_sqlstate, 'null') FROM paperclip.lease_executions WHERE id = '$X'")" \
  "echo|0|4|null" "a completed call: its row is there as soon as the transaction commits"

# ------------------------------------------------------------ the row did not survive: out of band
sql -c "BEGIN" -c "SELECT exit_code FROM paperclip.lease_execute('$L', 'true')" -c "ROLLBACK" >/dev/null
wait_for "SELECT count(*) = 1 FROM paperclip.lease_executions WHERE company_id = '$CO' AND command = 'true'"
tap_ok $? "a call whose transaction rolled back is recorded by the reconciler"
tap_is "$(sql -F '|' -c "SELECT exit_code, coalesce(error_sqlstate, 'null'), lease_id = '$L' FROM paperclip.lease_executions WHERE company_id = '$CO' AND command = 'true'")" \
  "0|null|t" "... with its outcome (it completed) and its lease"

sql -c "BEGIN" -c "SAVEPOINT s" -c "SELECT 1 FROM paperclip.lease_execute('$L', 'printf', ARRAY['sp'])" -c "ROLLBACK TO s" \
    -c "SELECT 1 FROM paperclip.lease_execute('$L', 'printf', ARRAY['kept'])" -c "COMMIT" >/dev/null
wait_for "SELECT count(*) = 2 FROM paperclip.lease_executions WHERE company_id = '$CO' AND command = 'printf'"
tap_ok $? "ROLLBACK TO SAVEPOINT: the rolled-back call is recorded out of band, the kept one in its transaction"
pcr_reconciler_passes "$PGPORT" "$DB" 2 || exit 1   # a pass that recorded a call twice would have run by now
tap_is "$(rows printf)" 2 "... each exactly once"

sql >/dev/null <<SQL
DO \$\$
BEGIN
  PERFORM paperclip.lease_execute('$L', 'uname');
  PERFORM paperclip.lease_execute('$L', 'pwd', cwd => 'missing-62');
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE 'caught %', SQLSTATE;
END
\$\$;
SQL
wait_for "SELECT count(*) = 1 FROM paperclip.lease_executions WHERE company_id = '$CO' AND command = 'pwd' AND error_sqlstate = '58030'"
tap_ok $? "a call that raised inside an exception block is recorded with its SQLSTATE (58030)"
wait_for "SELECT count(*) = 1 FROM paperclip.lease_executions WHERE company_id = '$CO' AND command = 'uname' AND error_sqlstate IS NULL"
tap_ok $? "... and the call before it, rolled back with the block, too"

tap_is "$(sql_error -c "SET statement_timeout = '600ms'" -c "SELECT * FROM paperclip.lease_execute('$L', 'sleep', ARRAY['6201'])")" \
  "57014: canceling statement due to statement timeout" "statement_timeout mid-command: 57014"
wait_for "SELECT count(*) = 1 FROM paperclip.lease_executions WHERE company_id = '$CO' AND command = 'sleep' AND error_sqlstate = '57014' AND exit_code IS NULL"
tap_ok $? "... recorded with 57014"
wait_none "sleep 6201"
tap_ok $? "... and the command is gone"

PGAPPNAME=pcr_exec62_term psql -X -Atq -d "$DB" -c "SELECT * FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'sleep 6202'])" >/dev/null 2>&1 &
bg=$!
_end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(left "sleep 6202")" -gt 0 ] && break; sleep 0.1; done
sql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pcr_exec62_term'" >/dev/null
wait $bg
wait_none "sleep 6202"
tap_ok $? "the caller terminated mid-command (FATAL): the command is killed"
wait_for "SELECT count(*) = 1 FROM paperclip.lease_executions WHERE company_id = '$CO' AND command = 'sh' AND error_sqlstate = '57P01'"
tap_ok $? "... and the call is recorded with 57P01"

psql -X -Atq -d "$DB" -c "SELECT * FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'sleep 6203'])" >/dev/null 2>&1 &
bg=$!
_end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(left "sleep 6203")" -gt 0 ] && break; sleep 0.1; done
kill -9 "$bg"					# the client (psql) goes away without a word
wait $bg 2>/dev/null
wait_none "sleep 6203"
tap_ok $? "the client killed mid-command: its backend notices, and the command is killed"
wait_for "SELECT count(*) = 1 FROM paperclip.lease_executions WHERE company_id = '$CO' AND error_sqlstate = '08006'"
tap_ok $? "... and the call is recorded with 08006"

tap_is "$(sql_error -c "BEGIN" -c "SELECT 1 FROM paperclip.lease_execute('$L', 'id')" -c "PREPARE TRANSACTION 'pcr62'")" \
  "0A000: cannot PREPARE a transaction that ran paperclip.lease_execute()" "PREPARE TRANSACTION after a command: refused"
wait_for "SELECT count(*) = 1 FROM paperclip.lease_executions WHERE company_id = '$CO' AND command = 'id'"
tap_ok $? "... and that call is recorded out of band"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.lease_executions WHERE company_id = '$CO' AND lease_id IS DISTINCT FROM '$L'")" 0 \
  "every out-of-band row points at its lease"

# ------------------------------------------------------------ local workspaces
WS="$PREFIX-$L"
tap_ok $([ -d "$WS" ]; echo $?) "the lease's workspace exists while the lease is active"
sql -c "SELECT 1 FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'mkdir -p d/e && echo x > d/e/f && ln -s $OUTSIDE/keep link && ln -s $OUTSIDE dirlink && mkdir locked && chmod 000 locked'])" >/dev/null
pcr_reconciler_passes "$PGPORT" "$DB" 2 || exit 1
tap_ok $([ -d "$WS" ]; echo $?) "... and stays across reconciler passes"
sql -c "UPDATE paperclip.heartbeat_runs SET status = 'succeeded' WHERE id = '$RUN'" >/dev/null
_end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ -e "$WS" ] || break; sql -c "SELECT paperclip.reconciler_wake()" >/dev/null; sleep 0.2; done
tap_ok $([ ! -e "$WS" ]; echo $?) "once the lease is released, the reconciler removes its workspace"
tap_is "$(cat "$OUTSIDE/keep" 2>&1)" precious "... without following the links planted in it"
tap_is "$(ls "$OUTSIDE")" keep "... to a file or to a directory"

RUN2=$(new_run)
psql -X -Atq -d "$DB" >"$PCR_WORK/open62.out" 2>&1 <<SQL &
BEGIN;
SELECT id FROM paperclip.acquire_run_lease('$CO', '$EN', '$RUN2') \gset
SELECT exit_code FROM paperclip.lease_execute(:'id', 'touch', ARRAY['made']);
\! touch $PCR_WORK/open62.ready; while [ ! -e $PCR_WORK/open62.go ]; do sleep 0.1; done
ROLLBACK;
SQL
bg=$!
_end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ -e "$PCR_WORK/open62.ready" ] && break; sleep 0.1; done
W2=$(ls -d "$PREFIX"-* 2>/dev/null | grep -v '\.xid$' | head -n 1)
pcr_reconciler_passes "$PGPORT" "$DB" 2 || exit 1
tap_ok $([ -n "$W2" ] && [ -e "$W2/made" ]; echo $?) "a workspace of a lease its transaction has not committed yet stays while that transaction runs"
touch "$PCR_WORK/open62.go"
wait $bg
_end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ -n "$W2" ] && [ -e "$W2" ] || break; sql -c "SELECT paperclip.reconciler_wake()" >/dev/null; sleep 0.2; done
tap_ok $([ -n "$W2" ] && [ ! -e "$W2" ] && [ ! -e "$W2.xid" ]; echo $?) "after that transaction rolled back, the workspace is removed"
wait_for "SELECT count(*) = 1 FROM paperclip.lease_executions WHERE company_id = '$CO' AND command = 'touch' AND lease_id IS NULL"
tap_ok $? "... and the call is recorded, its lease (which never existed) NULL"
tap_is "$(ls -A "$ROOT" | wc -l)" 0 "nothing is left in the workspace root"
