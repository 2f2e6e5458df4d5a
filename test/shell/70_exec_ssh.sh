#!/usr/bin/env bash
# 70_exec_ssh — paperclip.lease_execute on an ssh lease against a throw-away sshd
# (docs/execute.md): stdout, stderr and stdin, exit codes, a signal, 127, the exact
# environment, cwd, arguments full of shell metacharacters, output caps with a
# fast writer, invalid UTF-8, timeouts (also a command that ignores SIGTERM and
# forks), secret refs (their values nowhere in a table or the log at debug5),
# the two roles and PUBLIC, a released lease, another company's lease, the
# records, a host that cannot start the command (58030) and one lost mid-command
# (08006).  Every remote process ends.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh
. test/fixtures/ssh_lab.sh
. test/fixtures/ssh_env.sh

if ! ssh_lab_available; then
  tap_skip_all "sshd is not installed"
  exit 0
fi
tap_plan 62
LAB=$PCR_WORK/exec60
cleanup() {
  pcr_setting_reset "$PGPORT" log_min_messages 2>/dev/null
  pcr_setting_reset "$PGPORT" log_statement 2>/dev/null
  pcr_setting_reset "$PGPORT" paperclip.ssh_allowed_hosts 2>/dev/null
  psql -X -Atq -d postgres -c "DROP ROLE IF EXISTS pcr_exec60_nobody" >/dev/null 2>&1
  ssh_db_drop
  ssh_lab_stop
}
trap cleanup EXIT
ssh_lab_start "$LAB" || exit 1
ssh_db_create pcr_exec60 || exit 1
WHERE="127.0.0.1:$SSH_LAB_PORT"
E=00000000-0000-0000-0000-000000006001
ssh_env $E exec
RUN=$(new_run)
L=$(sql -c "SELECT id FROM paperclip.acquire_run_lease('$C1', '$E', '$RUN')")
WS=$(sql -c "SELECT metadata->>'remoteCwd' FROM paperclip.environment_leases WHERE id = '$L'")

# ex ARGS-SQL: "exit|signal|timed_out|stdout|stderr|stdout_truncated|stderr_truncated", newlines as \n
ex() {
  sql -F '|' -c "SELECT coalesce(exit_code::text, 'null'), coalesce(signal, 'null'), timed_out,
                        replace(stdout, E'\n', '\n'), replace(stderr, E'\n', '\n'),
                        stdout_truncated, stderr_truncated
                   FROM paperclip.lease_execute('$L', $1)"
}
# remote processes running a marked command ("sleep 6001", or a "sh -c ..." around it), anchored so
# that the psql processes of this test, whose command lines hold the same text, do not count
remote_left() { pgrep_ours "^(sh -c .*)?$1"; }
wait_none() {
  _end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(remote_left "$1")" -eq 0 ] && return 0; sleep 0.1; done
  return 1
}

# ------------------------------------------------------------ streams and exit codes
tap_is "$(ex "'true'")" "0|null|f|||f|f" "true: exit 0, no output"
tap_is "$(ex "'sh', ARRAY['-c', 'echo out; echo err >&2; exit 3']")" "3|null|f|out\n|err\n|f|f" \
  "stdout and stderr apart, exit code 3"
tap_is "$(sql -c "SELECT stdout = E'line one\nit''s \"two\"\n\u00e9\u20ac' FROM paperclip.lease_execute('$L', 'cat', stdin => E'line one\nit''s \"two\"\n\u00e9\u20ac')")" t \
  "stdin reaches the command exactly (newlines, quotes, UTF-8)"
tap_is "$(ex "'cat'")" "0|null|f|||f|f" "without stdin the command reads EOF at once"
tap_is "$(ex "'sh', ARRAY['-c', 'read a; if read b; then echo more; else echo \"eof after \$a\"; fi'], stdin => E'one\n'")" \
  "0|null|f|eof after one\n||f|f" "stdin is closed after it is written: the next read sees EOF"
tap_is "$(ex "'sh', ARRAY['-c', 'kill -9 \$\$']")" "null|SIGKILL|f|||f|f" \
  "a command killed by a signal: signal SIGKILL, exit_code NULL"
tap_is "$(ex "'sh', ARRAY['-c', 'exit 137']")" "137|null|f|||f|f" \
  "... told apart from one that exits with 128+9"
tap_like "$(ex "'no-such-command-60'")" "^127\|null\|f\|\|.*command not found" \
  "a command that is not found: exit code 127"
mkdir -p "$WS" && printf 'echo hi\n' >"$WS/not-executable" && chmod 644 "$WS/not-executable"
tap_like "$(ex "'./not-executable'")" "^127\|" "a file that is not executable: exit code 127"

# ------------------------------------------------------------ environment and cwd
tap_is "$(sql -c "SELECT replace(stdout, E'\n', ',') FROM paperclip.lease_execute('$L', 'env', env => '{\"ZED\": \"z\", \"A_1\": \"a b\"}')" | tr ',' '\n' | sort | tr '\n' ',')" \
  ",A_1=a b,HOME=$WS,PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,ZED=z," \
  "the environment is exactly PATH, HOME (the workspace) and env: nothing of the remote login"
tap_is "$(ex "'sh', ARRAY['-c', 'echo \$PATH'], env => '{\"PATH\": \"/bin:/usr/bin\"}'")" "0|null|f|/bin:/usr/bin\n||f|f" \
  "env may set PATH"
tap_is "$(ex "'pwd'")" "0|null|f|$WS\n||f|f" "the command runs in the workspace (remoteCwd)"
mkdir -p "$WS/sub/dir"
tap_is "$(ex "'pwd', cwd => 'sub/./x/../dir/'")" "0|null|f|$WS/sub/dir\n||f|f" "a relative cwd, normalised"
tap_like "$(sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'pwd', cwd => 'missing')")" \
  "^58030: the environment could not start the command" "a cwd that does not exist: 58030"
tap_like "$(sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'pwd', cwd => '/tmp')")" "^22023: invalid cwd: it is absolute" \
  "an absolute cwd: 22023"
tap_like "$(sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'pwd', cwd => 'sub/../../..')")" \
  "^22023: invalid cwd: it leads out of the workspace" "a cwd escaping the workspace: 22023"

# ------------------------------------------------------------ no argument is ever interpreted
rm -f "$LAB/pwned"
ARGS=("a b" "\$(touch $LAB/pwned)" "\`touch $LAB/pwned\`" "*" "'" '"' $'new\nline' "; touch $LAB/pwned" "\$HOME" '\' "&&" "|" ">x" "-n" "" "%s" $'tab\there')
out=$(sql -v a="$(printf '%s\0' "${ARGS[@]}" | python3 -c 'import sys,json; print(json.dumps(sys.stdin.read().split("\0")[:-1]))')" <<SQL
SELECT stdout FROM paperclip.lease_execute('$L', 'printf',
         ARRAY['[%s]'] || ARRAY(SELECT jsonb_array_elements_text(:'a'::jsonb)));
SQL
)
want=$(printf '[%s]' "${ARGS[@]}")
tap_is "$out" "$want" "arguments full of shell metacharacters, quotes, newlines, \$(...), globs reach printf as they are"
[ ! -e "$LAB/pwned" ]
tap_ok $? "... and nothing of them ran"
tap_is "$(sql -v c="echo \$(id)" <<SQL
SELECT exit_code FROM paperclip.lease_execute('$L', :'c');
SQL
)" 127 "a command name with metacharacters is a name, never a shell line (127)"

# ------------------------------------------------------------ output caps, drained, and invalid UTF-8
t0=$(now_ms)
tap_is "$(sql -F '|' -c "SELECT exit_code, length(stdout), stdout_truncated, length(stderr), stderr_truncated
                          FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'head -c 20000000 /dev/zero | tr \"\\\\000\" x; head -c 3000 /dev/zero | tr \"\\\\000\" y >&2'],
                                                       max_output_bytes => 1000)")" "0|1000|t|1000|t" \
  "a command writing 20 MB to stdout and 3 kB to stderr with a 1000-byte cap: both cut, both flagged, exit 0"
t1=$(now_ms)
tap_ok $([ $((t1 - t0)) -lt 30000 ]; echo $?) "... and it is drained to the end, never stalled ($((t1 - t0)) ms)"
tap_is "$(sql -F '|' -c "SELECT length(stdout), stdout_truncated FROM paperclip.lease_execute('$L', 'head', ARRAY['-c', '1000', '/dev/zero'], max_output_bytes => 1000)")" \
  "1000|f" "exactly the cap is not truncated"
tap_is "$(sql -c "SELECT stdout = E'\uFFFD\uFFFDA\uFFFDB\u00e9' FROM paperclip.lease_execute('$L', 'printf', ARRAY['\\377\\376A\\000B\\303\\251'])")" t \
  "invalid UTF-8 and NUL bytes become U+FFFD; valid UTF-8 is kept"
tap_is "$(sql -c "SELECT stdout FROM paperclip.lease_execute('$L', 'echo', ARRAY['capped'], max_output_bytes => 0)")" "" \
  "max_output_bytes 0 keeps nothing"

# ------------------------------------------------------------ timeouts
t0=$(now_ms)
tap_is "$(ex "'sh', ARRAY['-c', 'echo before; sleep 6001'], timeout_ms => 700")" "null|SIGTERM|t|before\n||f|f" \
  "timeout: timed_out, exit_code NULL, the output so far kept, the command ended by SIGTERM"
t1=$(now_ms)
tap_ok $([ $((t1 - t0)) -lt 10000 ]; echo $?) "... the call returns soon after the timeout ($((t1 - t0)) ms)"
wait_none "sleep 6001"
tap_ok $? "... and the command is gone"
tap_is "$(ex "'sh', ARRAY['-c', '(trap \"\" TERM; exec sleep 6002) & (sleep 6003 </dev/null >/dev/null 2>&1 &); trap \"\" TERM; echo forked; sleep 6004'], timeout_ms => 700")" \
  "null|SIGKILL|t|forked\n||f|f" "a command that ignores SIGTERM and forks: SIGKILL 250 ms later"
wait_none "sleep 600[234]"
tap_ok $? "... and nothing of its process tree survives (children that ignore SIGTERM, a detached grandchild)"
tap_is "$(sql -F '|' -c "SET paperclip.execute_timeout = '600ms'" \
              -c "SELECT timed_out, exit_code IS NULL FROM paperclip.lease_execute('$L', 'sleep', ARRAY['6005'])")" "t|t" \
  "without timeout_ms, paperclip.execute_timeout applies"
wait_none "sleep 6005"
tap_ok $? "... and that command is gone too"
tap_is "$(ex "'sh', ARRAY['-c', 'sleep 6006 >/dev/null 2>&1 & echo done']")" "0|null|f|done\n||f|f" \
  "a command that leaves a background process behind returns at once"
wait_none "sleep 6006"
tap_ok $? "... and what it left in its process group is killed after it ended"

# ------------------------------------------------------------ secrets in the environment
SECRET_VALUE="pcr60-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PLAIN_VALUE="plain60-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SID=$(sql -v v="$SECRET_VALUE" <<<"SELECT id FROM paperclip.secret_create('$C1', 'exec60 token', :'v')")
REF="{\"type\": \"secret_ref\", \"secretId\": \"$SID\", \"version\": \"latest\"}"
pcr_setting "$PGPORT" log_min_messages debug5 || exit 1
pcr_setting "$PGPORT" log_statement all || exit 1
LOG_FROM=$(wc -c <"$PCR_DATA/server.log")
tap_is "$(sql -c "SELECT stdout FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'printf %s \"\$TOKEN\" | wc -c; printf %s \"\$PLAIN\"'],
                                                       env => jsonb_build_object('TOKEN', '$REF'::jsonb, 'PLAIN', '$PLAIN_VALUE'))" | head -n 1 | tr -d ' ')" \
  "${#SECRET_VALUE}" "a secret ref in env is resolved for the lease's company and reaches the command"
sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'true', cwd => 'missing', env => jsonb_build_object('TOKEN', '$REF'::jsonb))" >/dev/null
sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'sleep', ARRAY['6007'], timeout_ms => 300, env => jsonb_build_object('TOKEN', '$REF'::jsonb))" >/dev/null
OTHER_SID=$(sql -v v="other" <<<"SELECT id FROM paperclip.secret_create('00000000-0000-0000-0000-0000000000c2', 'exec60 other', :'v')")
tap_like "$(sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'true', env => '{\"T\": {\"type\": \"secret_ref\", \"secretId\": \"$OTHER_SID\", \"version\": \"latest\"}}')")" \
  "^(42501|42704): " "a secret of another company is refused (like secret_resolve does)"
tap_like "$(sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'true', env => '{\"T\": {\"type\": \"secret_ref\", \"secretId\": \"00000000-0000-0000-0000-00000000dead\", \"version\": \"latest\"}}')")" \
  "^42704: " "an unknown secret: 42704"
# the statements ran in sessions that began after the settings were in force:
# the log has them, the last one too (poll: a loaded machine may be slow to write it)
wait_log "$PCR_DATA/server.log" "$LOG_FROM" "statement: SELECT \* FROM paperclip\.lease_execute\('$L', 'true', env => .*00000000dead"
tap_ok $? "control: the server log at debug5 shows the statements"
pcr_setting_reset "$PGPORT" log_min_messages warning || exit 1
pcr_setting_reset "$PGPORT" log_statement none || exit 1
tap_ok $(tail -c +"$((LOG_FROM + 1))" "$PCR_DATA/server.log" | grep -qF "$SECRET_VALUE"; [ $? -ne 0 ]; echo $?) \
  "the secret's value is nowhere in the server log at debug5, log_statement = all"
tap_is "$(sql -c "SELECT count(*) FROM (
                    SELECT t::text AS r FROM paperclip.lease_executions t UNION ALL
                    SELECT t::text FROM paperclip.environment_leases t UNION ALL
                    SELECT t::text FROM paperclip.environments t UNION ALL
                    SELECT t::text FROM paperclip.company_secret_versions t UNION ALL
                    SELECT t::text FROM paperclip.company_secrets t) x
                   WHERE r LIKE '%$SECRET_VALUE%' OR r LIKE '%$PLAIN_VALUE%'")" 0 \
  "neither the secret nor a plain env value is in any table"

# ------------------------------------------------------------ the records
XID=$(sql -c "SELECT execution_id FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'echo 12345; echo ab >&2'], cwd => 'sub/dir')")
tap_is "$(sql -F '|' -c "SELECT company_id, lease_id, heartbeat_run_id, command, coalesce(cwd, 'null'), exit_code, timed_out, stdout_bytes, stderr_bytes, truncated, coalesce(error_sqlstate, 'null')
                           FROM paperclip.lease_executions WHERE id = '$XID'")" \
  "$C1|$L|$RUN|sh|sub/dir|0|f|6|3|f|null" "each call is recorded with its lease, run, command, cwd, exit code and byte counts"
tap_is "$(sql -F '|' -c "SELECT coalesce(exit_code::text, 'null'), signal, timed_out, truncated FROM paperclip.lease_executions
                           WHERE command = 'sh' AND signal IS NOT NULL ORDER BY started_at LIMIT 1")" "null|SIGKILL|f|f" \
  "a killed command is recorded with its signal"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.lease_executions WHERE timed_out AND exit_code IS NULL")" 4 \
  "the timed-out calls are recorded as such"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.lease_executions x WHERE (to_jsonb(x) - 'id' - 'company_id' - 'lease_id' - 'heartbeat_run_id' - 'started_at' - 'finished_at')::text ~ '(6001|before|12345)'")" 0 \
  "no record holds arguments or output"

# ------------------------------------------------------------ who may run commands
agent_role() {
  psql -XAtq -d postgres -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pcr_exec60_nobody') THEN
                   CREATE ROLE pcr_exec60_nobody LOGIN; END IF; END \$\$" >/dev/null
}
agent_role
tap_is "$(sql -c "SET ROLE pcr_c1_agent" -c "SET paperclip.company_id = '$C1'" \
              -c "SELECT exit_code FROM paperclip.lease_execute('$L', 'true')")" 0 "an agent (paperclip_agent, entitled to the company) runs a command in its lease"
tap_is "$(sql -c "SET ROLE pcr_c1_admin" -c "SET paperclip.company_id = '$C1'" \
              -c "SELECT exit_code FROM paperclip.lease_execute('$L', 'true')")" 0 "an admin (paperclip_admin) too"
tap_is "$(sql -c "SET ROLE pcr_c1_agent" -c "SET paperclip.company_id = '$C1'" \
              -c "SELECT count(*) > 0 FROM paperclip.lease_executions")" t "the agent reads its company's records"
tap_is "$(sql -c "SET ROLE pcr_c2_agent" -c "SET paperclip.company_id = '00000000-0000-0000-0000-0000000000c2'" \
              -c "SELECT count(*) FROM paperclip.lease_executions")" 0 "an agent of another company reads none of them"
tap_is "$(sql_error -c "SET ROLE pcr_c2_agent" -c "SET paperclip.company_id = '00000000-0000-0000-0000-0000000000c2'" \
                    -c "SELECT * FROM paperclip.lease_execute('$L', 'true')")" "42704: lease $L does not exist" \
  "an agent of another company: the lease does not exist for it (42704)"
tap_like "$(PGUSER=pcr_exec60_nobody sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'true')")" \
  "^42501: permission denied for (function lease_execute|schema paperclip)" "a role with no grant (PUBLIC) cannot run commands"
tap_like "$(sql_error -c "SET ROLE pcr_c1_agent" -c "SET paperclip.company_id = '$C1'" \
                      -c "SELECT * FROM paperclip.lease_execute('$L', 'true', timeout_ms => 600000)")" \
  "^42501: timeout_ms \(600000 ms\) is above the server's paperclip.execute_timeout" \
  "a role that is not a superuser cannot ask for a timeout above the server's setting (42501)"
tap_like "$(sql_error -c "SET ROLE pcr_c1_agent" -c "SET paperclip.company_id = '$C1'" \
                      -c "SELECT * FROM paperclip.lease_execute('$L', 'true', max_output_bytes => 1048576)")" \
  "^42501: max_output_bytes \(1048576 bytes\) is above the server's paperclip.execute_max_output" \
  "... nor a larger output cap"
tap_is "$(sql -c "SELECT timed_out FROM paperclip.lease_execute('$L', 'true', timeout_ms => 600000, max_output_bytes => 1048576)")" f \
  "a superuser may"

# ------------------------------------------------------------ the environment cannot start it: 58030
sql -v kh="$SSH_LAB_WRONG_KNOWN_HOSTS" <<SQL >/dev/null
UPDATE paperclip.environments SET config = config || jsonb_build_object('knownHosts', :'kh') WHERE id = '$E';
SQL
err=$(psql -X -Atq -d "$DB" -c '\set VERBOSITY verbose' -c "SELECT * FROM paperclip.lease_execute('$L', 'true')" 2>&1)
tap_like "$err" "ERROR:  58030: the environment could not start the command|ERROR:  58030: could not start the command on ssh host" \
  "the host key no longer matches knownHosts (a pooled session is checked again): 58030, not the command's failure"
tap_like "$err" "does not match knownHosts" "... with the cause in errdetail"
sql -v kh="$SSH_LAB_KNOWN_HOSTS" <<SQL >/dev/null
UPDATE paperclip.environments SET config = config || jsonb_build_object('knownHosts', :'kh') WHERE id = '$E';
SQL
tap_is "$(ex "'true'")" "0|null|f|||f|f" "with the host key fixed, the lease runs commands again"

# ------------------------------------------------------------ the connection lost mid-command: 08006
( sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'echo started; sleep 6008'], timeout_ms => 30000)" >"$LAB/lost.out" ) &
bg=$!
_end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(remote_left "sleep 6008")" -gt 0 ] && break; sleep 0.1; done
# the sessions' sshd processes die without a word (SIGKILL): the TCP connection just ends
for pid in $(ps -o pid= --ppid "$SSH_LAB_SSHD_PID"); do
  for child in $(ps -o pid=,comm= --ppid "$pid" | awk '$2 == "sshd" {print $1}'); do kill -9 "$child" 2>/dev/null; done
  kill -9 "$pid" 2>/dev/null
done
wait $bg
tap_like "$(cat "$LAB/lost.out")" "^08006: the connection to the environment was lost while the command ran" \
  "sshd gone mid-command: 08006"
wait_none "sleep 6008"
tap_ok $? "... and the remote command is gone: its watchdog killed the group when sshd went"
tap_is "$(ex "'true'")" "0|null|f|||f|f" "the next call opens a new session"

# ------------------------------------------------------------ paperclip.ssh_allowed_hosts
pcr_setting "$PGPORT" paperclip.ssh_allowed_hosts 192.0.2.1 || exit 1
tap_like "$(sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'true')")" "^42501: " \
  "a host paperclip.ssh_allowed_hosts does not admit: 42501, nothing run"
pcr_setting_reset "$PGPORT" paperclip.ssh_allowed_hosts '*' || exit 1

# ------------------------------------------------------------ a lease no longer active
sql -c "SELECT 1 FROM paperclip.release_run_leases('$RUN')" >/dev/null
tap_is "$(sql_error -c "SELECT * FROM paperclip.lease_execute('$L', 'true')")" "55000: lease $L is released" \
  "a released lease: 55000"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.lease_executions WHERE lease_id = '$L'")" \
  "$(sql -c "SELECT count(*) FROM paperclip.lease_executions")" "every record points at the lease"
_end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(pgrep_ours '^/bin/sh -c nl=')" -eq 0 ] && break; sleep 0.1; done
tap_is "$(pgrep_ours '^/bin/sh -c nl=')" 0 "no wrapper or watchdog is left on the remote host"
