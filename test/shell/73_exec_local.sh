#!/usr/bin/env bash
# 73_exec_local — paperclip.lease_execute on a local lease (docs/execute.md): only roles
# with the privileges of pg_execute_server_program (42501 otherwise, as for COPY
# ... PROGRAM); the command a child of a driver worker that inherits nothing
# (environment, signal mask and dispositions, descriptors, umask, its own process
# group, oom_score_adj, core limit); streams, exit codes, a signal, 127, caps,
# timeouts with a process tree that ignores SIGTERM, the per-lease workspace.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh
. test/lib/seeded_db.sh

tap_plan 38
ROOT=$PCR_WORK/local63
mkdir -p "$ROOT"
[ "$(id -u)" -eq 0 ] && chown postgres: "$ROOT"
chmod 700 "$ROOT"
cleanup() {
  pcr_setting_reset "$PGPORT" paperclip.local_workspace_root 2>/dev/null
  psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS pcr_exec63 WITH (FORCE)" -c "DROP ROLE IF EXISTS pcr_exec63_ops" >/dev/null 2>&1
  rm -rf "$ROOT"	# its database is not the reconciler's: nobody sweeps it
}
trap cleanup EXIT
seeded_db pcr_exec63 || exit 1
DB=pcr_exec63
pcr_setting "$PGPORT" paperclip.local_workspace_root "$ROOT" || exit 1
L=$(sql -c "SELECT id FROM paperclip.acquire_run_lease('$C1', '$E_LOCAL', '$R1')")
WS="$ROOT/pcr-$(sql -c "SELECT to_hex(system_identifier) FROM pg_control_system()")-db$(sql -c "SELECT oid FROM pg_database WHERE datname = current_database()")-$L"

ex() {
  sql -F '|' -c "SELECT coalesce(exit_code::text, 'null'), coalesce(signal, 'null'), timed_out,
                        replace(stdout, E'\n', '\n'), replace(stderr, E'\n', '\n'),
                        stdout_truncated, stderr_truncated
                   FROM paperclip.lease_execute('$L', $1)"
}
left() { pgrep_ours "^(sh -c .*)?$1"; }
wait_none() {
  _end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(left "$1")" -eq 0 ] && return 0; sleep 0.1; done
  return 1
}

# ------------------------------------------------------------ who may
psql -XAtq -d postgres -c "CREATE ROLE pcr_exec63_ops NOLOGIN IN ROLE pcr_c1_admin, pg_execute_server_program" >/dev/null
tap_is "$(sql_error -c "SET ROLE pcr_c1_agent" -c "SET paperclip.company_id = '$C1'" -c "SELECT * FROM paperclip.lease_execute('$L', 'true')")" \
  "42501: permission denied to run commands on the local host" "an agent without pg_execute_server_program: 42501"
tap_is "$(sql_error -c "SET ROLE pcr_c1_admin" -c "SET paperclip.company_id = '$C1'" -c "SELECT * FROM paperclip.lease_execute('$L', 'true')")" \
  "42501: permission denied to run commands on the local host" "an admin without it: 42501"
tap_is "$(sql -c "SET ROLE pcr_exec63_ops" -c "SET paperclip.company_id = '$C1'" -c "SELECT exit_code FROM paperclip.lease_execute('$L', 'true')")" 0 \
  "a role of the company with pg_execute_server_program runs it"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.lease_executions")" 1 "refused calls leave no record, the run one does"
tap_is "$(sql_error -c "SET ROLE pcr_exec63_ops" -c "SET paperclip.company_id = '00000000-0000-0000-0000-0000000000c2'" -c "SELECT * FROM paperclip.lease_execute('$L', 'true')")" \
  "42501: role \"pcr_exec63_ops\" is not entitled to company 00000000-0000-0000-0000-0000000000c2" \
  "pg_execute_server_program gives no right on another company"

# ------------------------------------------------------------ streams and exit codes (as the superuser)
tap_is "$(ex "'sh', ARRAY['-c', 'echo out; echo err >&2; exit 3']")" "3|null|f|out\n|err\n|f|f" "stdout and stderr apart, exit code 3"
tap_is "$(ex "'cat', stdin => E'a\nb\n'")" "0|null|f|a\nb\n||f|f" "stdin reaches the command"
tap_is "$(ex "'cat'")" "0|null|f|||f|f" "without stdin the command reads EOF"
tap_is "$(ex "'sh', ARRAY['-c', 'kill -9 \$\$']")" "null|SIGKILL|f|||f|f" "a signal: SIGKILL, exit_code NULL"
tap_is "$(ex "'sh', ARRAY['-c', 'exit 137']")" "137|null|f|||f|f" "... apart from exit 137"
tap_is "$(ex "'no-such-command-63'")" "127|null|f||no-such-command-63: command not found\n|f|f" "not found: 127"
tap_like "$(ex "'/etc/passwd'")" "^127\|null\|f\|\|/etc/passwd: Permission denied" "not executable: 127"
tap_is "$(sql -c "SELECT stdout = E'\uFFFD\uFFFDA\uFFFDB' FROM paperclip.lease_execute('$L', 'printf', ARRAY['\\377\\376A\\000B'])")" t \
  "invalid UTF-8 and NUL become U+FFFD"

# ------------------------------------------------------------ nothing inherited
tap_is "$(sql -c "SELECT replace(stdout, E'\n', ',') FROM paperclip.lease_execute('$L', 'env', env => '{\"B\": \"2\", \"A\": \"1\"}')" | tr ',' '\n' | sort | tr '\n' ',')" \
  ",A=1,B=2,HOME=$WS,PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin," \
  "the environment is exactly PATH, HOME and env: nothing of the server's (no PGDATA, no PG*)"
tap_is "$(ex "'pwd'")" "0|null|f|$WS\n||f|f" "the command runs in the lease's workspace"
tap_is "$(stat -c %a "$WS")" 700 "the workspace is private (0700)"
tap_is "$(ex "'sh', ARRAY['-c', 'grep -E \"^Sig(Blk|Ign):\" /proc/self/status | awk \"{print \\\$1 \\\$2}\"']")" \
  "0|null|f|SigBlk:0000000000000000\nSigIgn:0000000000000000\n||f|f" "no signal blocked or ignored"
tap_is "$(ex "'ls', ARRAY['/proc/self/fd']")" "0|null|f|0\n1\n2\n3\n||f|f" \
  "no descriptor inherited but stdin, stdout and stderr (3 is ls reading the directory)"
tap_is "$(ex "'sh', ARRAY['-c', 'umask; ulimit -c; cat /proc/self/oom_score_adj']")" "0|null|f|0022\n0\n1000\n||f|f" \
  "umask 022, no core dumps, oom_score_adj 1000"
tap_is "$(ex "'sh', ARRAY['-c', 'test \$(ps -o pgid= -p \$\$) -eq \$(ps -o ppid= -p \$\$) && echo supervised']")" \
  "0|null|f|supervised\n||f|f" "the command is in a process group of its own, led by its supervisor (its parent)"
tap_like "$(sql -c "SELECT stdout FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 's=\$(ps -o ppid= -p \$\$); ps -o comm=,ppid= -p \$s'])" | tr -s ' ')" \
  "^pcr-supervisor ($(sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'paperclip driver'" | tr '\n' '|' | sed 's/|$//'))$" \
  "the supervisor's parent is a driver worker, not a backend"

# ------------------------------------------------------------ cwd
mkdir -p "$WS/a/b"
tap_is "$(ex "'pwd', cwd => 'a/./c/../b'")" "0|null|f|$WS/a/b\n||f|f" "a relative cwd, normalised"
tap_like "$(sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'pwd', cwd => 'nope')")" "^58030: could not start" \
  "a cwd that does not exist: 58030"
tap_like "$(sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'pwd', cwd => '../x')")" "^22023: invalid cwd" "a cwd escaping: 22023"

# ------------------------------------------------------------ caps and timeouts
t0=$(now_ms)
tap_is "$(sql -F '|' -c "SELECT exit_code, length(stdout), stdout_truncated, stderr_truncated FROM paperclip.lease_execute('$L', 'sh',
               ARRAY['-c', 'head -c 50000000 /dev/zero; head -c 100 /dev/zero >&2'], max_output_bytes => 4096)")" "0|4096|t|f" \
  "a command writing 50 MB fast with a 4 KiB cap: cut, flagged, drained, exit 0"
t1=$(now_ms)
tap_ok $([ $((t1 - t0)) -lt 30000 ]; echo $?) "... without stalling ($((t1 - t0)) ms)"
tap_is "$(ex "'sh', ARRAY['-c', 'echo before; exec sleep 6301'], timeout_ms => 500")" "null|SIGTERM|t|before\n||f|f" \
  "timeout: SIGTERM, timed_out, exit_code NULL, output kept"
tap_is "$(ex "'sh', ARRAY['-c', '(trap \"\" TERM; exec sleep 6302) & trap \"\" TERM; echo x; sleep 6303'], timeout_ms => 500")" "null|SIGKILL|t|x\n||f|f" \
  "a process tree that ignores SIGTERM: SIGKILL 250 ms later"
wait_none "sleep 630[123]"
tap_ok $? "... and nothing of it is left"
tap_is "$(ex "'sh', ARRAY['-c', 'sleep 6304 >/dev/null 2>&1 & echo bg']")" "0|null|f|bg\n||f|f" "a command that leaves a process behind in its group"
wait_none "sleep 6304"
tap_ok $? "... which is killed when the command ends"
tap_is "$(sql -F '|' -c "SET paperclip.execute_timeout = '400ms'" -c "SELECT timed_out FROM paperclip.lease_execute('$L', 'sleep', ARRAY['6305'])")" t \
  "paperclip.execute_timeout applies without timeout_ms"

# ------------------------------------------------------------ cancel
( sql_error -c "SET statement_timeout = '700ms'" -c "SELECT * FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'sleep 6306 & sleep 6307'])" >"$ROOT/../cancel63.out" ) &
wait $!
tap_is "$(cat "$ROOT/../cancel63.out")" "57014: canceling statement due to statement timeout" "statement_timeout mid-command: 57014"
wait_none "sleep 630[67]"
tap_ok $? "... and the command and its child are killed"
( PGAPPNAME=pcr_exec63_cancel sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'sleep', ARRAY['6308'])" >"$ROOT/../cancel63b.out" ) &
bg=$!
_end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(left "sleep 6308")" -gt 0 ] && break; sleep 0.1; done
psql -XAtq -d postgres -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'pcr_exec63_cancel'" >/dev/null
wait $bg
tap_is "$(cat "$ROOT/../cancel63b.out")" "57014: canceling statement due to user request" "pg_cancel_backend mid-command: 57014"
wait_none "sleep 6308"
tap_ok $? "... and the command is killed"

# ------------------------------------------------------------ the records
tap_is "$(sql -F '|' -c "SELECT count(*), count(*) FILTER (WHERE timed_out), count(*) FILTER (WHERE signal = 'SIGKILL' AND NOT timed_out),
                                count(*) FILTER (WHERE truncated)
                           FROM paperclip.lease_executions WHERE lease_id = '$L'")" "22|3|1|1" \
  "every completed call is recorded once, with its timeouts, signal and truncation"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.lease_executions x WHERE (to_jsonb(x) - 'id' - 'company_id' - 'lease_id' - 'heartbeat_run_id' - 'started_at' - 'finished_at')::text ~ '(6301|before|SigBlk)'")" 0 \
  "no record holds arguments or output"
