#!/usr/bin/env bash
# 74_exec_bwrap — paperclip.lease_execute on bwrap sandbox leases, in a cluster of
# its own (docs/execute.md): streams, exit codes, a signal, 127, the exact
# environment (the config's env defaults, a secret ref among them, the call's
# env winning), the config's timeoutMs, cwd, caps with a fast writer, timeouts of
# a process tree that ignores SIGTERM; confinement seen through lease_execute (a
# read-only root, no /etc/shadow, data directory, master key file or planted
# server variable, loopback only, the server's port unreachable); the roles, a
# released lease, another company's lease; secrets nowhere in the log at debug5
# or in a table; cancel and statement_timeout mid-command; 8 concurrent executes
# on one lease and 16 across four; the driver worker SIGKILLed mid-command.  No
# bwrap process is left.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/recon.sh
. test/lib/bwrap.sh

bwrap_skip_unless_usable
tap_plan 52
KEY=$PCR_WORK/k74.key
scripts/pcr-keygen "$KEY" >/dev/null || exit 1
[ "$(id -u)" -eq 0 ] && chown postgres: "$KEY"
export PCR_PLANTED_74=planted-in-the-postmaster-74
recon_cluster exec74 "shared_preload_libraries = 'paperclip_runtime, paperclip_bwrap'" "paperclip.database = 'pcr'" \
  "paperclip.master_key_file = '$KEY'" "paperclip.driver_workers = 3" "paperclip.driver_workers_per_company = 3"
unset PCR_PLANTED_74
SROOT=$RDATA.sandboxes
trap 'pcr_cluster_stop "$RDATA" immediate' EXIT
sql "CREATE DATABASE pcr" postgres >/dev/null
sql "CREATE EXTENSION paperclip_runtime" >/dev/null
sql_file test/fixtures/seed.sql >/dev/null
C1=00000000-0000-0000-0000-0000000000c1
q() { "$PCR_PGBIN/psql" -X -qAt -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$RPORT" -U postgres -d pcr "$@"; }

SECRET_VALUE="pcr74-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SID=$(q -v v="$SECRET_VALUE" <<<"SELECT id FROM paperclip.secret_create('$C1', 'exec74 token', :'v')")
sql "INSERT INTO paperclip.environments (id, company_id, name, driver, config) VALUES
       ('00000000-0000-0000-0000-0000000000b7', '$C1', 'bwrap defaults', 'sandbox',
        '{\"provider\": \"bwrap\", \"timeoutMs\": 700,
          \"env\": {\"FROM_CONFIG\": \"cfg\", \"OVER\": \"config\",
                    \"TOKEN\": {\"type\": \"secret_ref\", \"secretId\": \"$SID\", \"version\": \"latest\"}}}')" >/dev/null
L=$(acquire e5 f1)
LD=$(acquire b7 f2)

# ex LEASE ARGS-SQL: "exit|signal|timed_out|stdout|stderr|stdout_truncated", newlines as \n
ex() {
  sql "SELECT coalesce(exit_code::text, 'null') || '|' || coalesce(signal, 'null') || '|' || timed_out || '|' ||
              replace(stdout, E'\n', '\n') || '|' || replace(stderr, E'\n', '\n') || '|' || stdout_truncated
         FROM paperclip.lease_execute('$1', $2)"
}
wait_no_sandbox_procs() {
  _end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(bwrap_procs)" -eq 0 ] && return 0; sleep 0.1; done
  return 1
}

tap_is "$(bwrap_procs)" 0 "no sandbox process before"

# ------------------------------------------------------------ the contract
tap_is "$(ex "$L" "'sh', ARRAY['-c', 'echo out; echo err >&2; exit 3']")" "3|null|false|out\n|err\n|false" \
  "stdout and stderr apart, exit code 3"
tap_is "$(ex "$L" "'cat', stdin => E'in\nput'")" "0|null|false|in\nput||false" "stdin reaches the command"
tap_is "$(ex "$L" "'sh', ARRAY['-c', 'kill -9 \$\$']")" "null|SIGKILL|false|||false" "a signal: SIGKILL, exit_code NULL"
tap_is "$(ex "$L" "'sh', ARRAY['-c', 'exit 137']")" "137|null|false|||false" "... apart from exit 137"
tap_like "$(ex "$L" "'no-such-command-74'")" "^127\|null\|false\|\|no-such-command-74: " "not found: exit code 127"
tap_is "$(sql "SELECT replace(stdout, E'\n', ',') FROM paperclip.lease_execute('$L', 'env', env => '{\"A\": \"1\"}')" | tr ',' '\n' | sort | tr '\n' ',')" \
  ",A=1,HOME=/workspace,PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin," \
  "the environment is exactly PATH, HOME (/workspace) and env (not bwrap's PWD)"
tap_is "$(sql "SELECT stdout FROM paperclip.lease_execute('$L', 'printenv', ARRAY['PWD'], env => '{\"PWD\": \"/given\"}')")" \
  "/given" "a PWD of env is the command's (bwrap's is not)"
tap_is "$(ex "$LD" "'sh', ARRAY['-c', 'printf \"%s %s %s\" \"\$FROM_CONFIG\" \"\$OVER\" \"\${#TOKEN}\"'], env => '{\"OVER\": \"call\"}'")" \
  "0|null|false|cfg call ${#SECRET_VALUE}||false" \
  "the config's env comes first (a secret ref among them resolved), the call's env wins"
tap_is "$(ex "$LD" "'sleep', ARRAY['7401']")" "null|SIGTERM|true|||false" "the config's timeoutMs applies without timeout_ms"
tap_is "$(ex "$LD" "'sleep', ARRAY['0.1'], timeout_ms => 5000")" "0|null|false|||false" "... and timeout_ms overrides it"
sql "SELECT 1 FROM paperclip.lease_execute('$L', 'mkdir', ARRAY['-p', 'a/b'])" >/dev/null
tap_is "$(ex "$L" "'pwd', cwd => 'a/./x/../b'")" "0|null|false|/workspace/a/b\n||false" "a relative cwd, normalised, in /workspace"
tap_like "$(psqlv -c "SELECT * FROM paperclip.lease_execute('$L', 'pwd', cwd => 'none')")" \
  "^58030: the environment could not start the command" "a cwd that does not exist: 58030 (the sandbox did not start)"
tap_like "$(psqlv -c "SELECT * FROM paperclip.lease_execute('$L', 'pwd', cwd => '/etc')")" "^22023: invalid cwd" "an absolute cwd: 22023"
tap_like "$(psqlv -c "SELECT * FROM paperclip.lease_execute('$L', 'pwd', cwd => 'a/../..')")" "^22023: invalid cwd" "an escaping cwd: 22023"
tap_is "$(sql "SELECT exit_code || '|' || length(stdout) || '|' || stdout_truncated FROM paperclip.lease_execute('$L', 'head',
               ARRAY['-c', '30000000', '/dev/zero'], max_output_bytes => 2048)")" "0|2048|true" \
  "a command writing 30 MB fast with a 2 KiB cap: cut, flagged, drained, exit 0"
tap_is "$(sql "SELECT exit_code || '|' || length(stdout) || '|' || stdout_truncated || '|' || stderr_truncated
               FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'echo out; echo err >&2'], max_output_bytes => 0)")" \
  "0|0|true|true" "max_output_bytes 0: no output kept, both streams flagged, exit 0"
tap_is "$(ex "$L" "'sh', ARRAY['-c', '(trap \"\" TERM; exec sleep 7402) & trap \"\" TERM; echo x; sleep 7403'], timeout_ms => 600")" \
  "null|SIGKILL|true|x\n||false" "a process tree ignoring SIGTERM: SIGKILL 250 ms later, output kept"
wait_no_sandbox_procs
tap_ok $? "... and no sandbox process is left"

# ------------------------------------------------------------ confinement, through lease_execute
sh_in() { ex "$L" "'sh', ARRAY['-c', \$q\$$1\$q\$]"; }
tap_like "$(sh_in 'touch /usr/x; touch /x; touch /etc/x')" "Read-only file system.*Read-only file system.*Read-only file system" \
  "the root, /usr and /etc are read-only"
tap_like "$(sh_in 'cat /etc/shadow')" "No such file or directory" "/etc/shadow is not there"
tap_like "$(sh_in "ls $RDATA")" "No such file or directory" "the data directory is invisible"
tap_like "$(sh_in "cat $KEY")" "No such file or directory" "the master key file is invisible"
tap_is "$(sh_in 'cat /proc/1/environ /proc/self/environ | tr "\0" "\n" | grep -c PCR_PLANTED; true')" "0|null|false|0\n||false" \
  "the variable planted in the server's environment is nowhere in the sandbox"
tap_is "$(sh_in "awk -F: 'NR > 2 { gsub(/ /, \"\", \$1); print \$1 }' /proc/net/dev | xargs")" "0|null|false|lo\n||false" \
  "network none: loopback only"
tap_like "$(sh_in "bash -c 'exec 3<>/dev/tcp/127.0.0.1/$RPORT' && echo reached")" "^1\|.*Connection refused" \
  "the server's port on 127.0.0.1 is not reachable from the sandbox"

# ------------------------------------------------------------ who may
tap_is "$(sql "SET ROLE pcr_c1_agent; SET paperclip.company_id = '$C1';
               SELECT exit_code FROM paperclip.lease_execute('$L', 'true')")" 0 "an agent of the company runs a command in its sandbox"
tap_is "$(sql "SET ROLE pcr_c1_admin; SET paperclip.company_id = '$C1';
               SELECT exit_code FROM paperclip.lease_execute('$L', 'true')")" 0 "an admin too"
tap_is "$(psqlv -c "SET ROLE pcr_c2_agent" -c "SET paperclip.company_id = '00000000-0000-0000-0000-0000000000c2'" \
              -c "SELECT * FROM paperclip.lease_execute('$L', 'true')")" "42704: lease $L does not exist" \
  "an agent of another company: 42704"
sql "DROP ROLE IF EXISTS pcr_exec74_nobody; CREATE ROLE pcr_exec74_nobody" postgres >/dev/null
tap_like "$(psqlv -c "SET ROLE pcr_exec74_nobody" -c "SELECT * FROM paperclip.lease_execute('$L', 'true')")" \
  "^42501: permission denied" "a role without a grant (PUBLIC): 42501"
LF=$(acquire e2 f4)
tap_is "$(psqlv -c "SELECT * FROM paperclip.lease_execute('$LF', 'true')")" \
  "0A000: sandbox provider \"fake\" cannot execute commands" "a fake sandbox lease: 0A000"

# ------------------------------------------------------------ secrets: nowhere in the log at debug5, nor in a table
pcr_setting "$RPORT" log_min_messages debug5 || exit 1
pcr_setting "$RPORT" log_statement all || exit 1
FROM=$(wc -c <"$RDATA/server.log")
REF="{\"type\": \"secret_ref\", \"secretId\": \"$SID\", \"version\": \"latest\"}"
tap_is "$(sql "SELECT length(stdout) FROM paperclip.lease_execute('$L', 'printenv', ARRAY['T'], env => '{\"T\": $REF}')")" \
  "$(( ${#SECRET_VALUE} + 1 ))" "a secret ref of the call reaches the command"
psqlv -c "SELECT * FROM paperclip.lease_execute('$LD', 'sh', ARRAY['-c', 'echo \$TOKEN >&2; exit 9'], cwd => 'missing')" >/dev/null
sql "SELECT 1 FROM paperclip.lease_execute('$LD', 'printenv', ARRAY['TOKEN'])" >/dev/null
# the statements ran in sessions that began after the settings were in force:
# the log has them (poll: a loaded machine may be slow to write it)
wait_log "$RDATA/server.log" "$FROM" "statement: SELECT 1 FROM paperclip\.lease_execute\('$LD', 'printenv'"
tap_ok $? "control: the log at debug5 has the statements"
pcr_setting_reset "$RPORT" log_min_messages warning || exit 1
pcr_setting_reset "$RPORT" log_statement none || exit 1
tap_ok "$(tail -c +"$((FROM + 1))" "$RDATA/server.log" | grep -qF "$SECRET_VALUE"; [ $? -ne 0 ]; echo $?)" \
  "the secret's value is nowhere in the server log (debug5, log_statement = all)"
tap_is "$(sql "SELECT count(*) FROM (SELECT t::text AS r FROM paperclip.lease_executions t UNION ALL
                 SELECT t::text FROM paperclip.environment_leases t UNION ALL SELECT t::text FROM paperclip.environments t) x
               WHERE r LIKE '%$SECRET_VALUE%'")" 0 "... and in no table"

# ------------------------------------------------------------ cancel, statement_timeout
tap_is "$(psqlv -c "SET statement_timeout = '700ms'" -c "SELECT * FROM paperclip.lease_execute('$L', 'sleep', ARRAY['7404'])")" \
  "57014: canceling statement due to statement timeout" "statement_timeout mid-command: 57014"
wait_no_sandbox_procs
tap_ok $? "... and the sandbox is gone"
PGAPPNAME=pcr74_cancel "$PCR_PGBIN/psql" -X -qAt -h 127.0.0.1 -p "$RPORT" -U postgres -d pcr \
  -c "SELECT * FROM paperclip.lease_execute('$L', 'sleep', ARRAY['7405'])" >/dev/null 2>"$PCR_WORK/c74.err" &
bg=$!
_end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(bwrap_procs)" -gt 0 ] && break; sleep 0.1; done
sql "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'pcr74_cancel'" >/dev/null
wait $bg
tap_like "$(cat "$PCR_WORK/c74.err")" "canceling statement due to user request" "pg_cancel_backend mid-command: 57014"
wait_no_sandbox_procs
tap_ok $? "... and the sandbox is gone"

# ------------------------------------------------------------ concurrency
LEASES=("$L" "$(acquire e5 f3)" "$LD")
LEASES+=("$(acquire e5 f4)")
pids=()
for i in $(seq 1 8); do
  sql "SELECT exit_code || ':' || stdout FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'sleep 0.2; printf %s \$0', 'one-$i'])" \
    >"$PCR_WORK/b8.$i" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
tap_is "$(cat "$PCR_WORK"/b8.* | sort | tr '\n' ' ')" "$(for i in $(seq 1 8); do echo "0:one-$i"; done | sort | tr '\n' ' ')" \
  "8 concurrent executes on one sandbox lease: each its own answer"
pids=()
for i in $(seq 1 16); do
  sql "SELECT exit_code || ':' || stdout FROM paperclip.lease_execute('${LEASES[$((i % 4))]}', 'sh', ARRAY['-c', 'sleep 0.1; printf %s \$0', 'many-$i'])" \
    >"$PCR_WORK/b16.$i" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
tap_is "$(cat "$PCR_WORK"/b16.* | sort | tr '\n' ' ')" "$(for i in $(seq 1 16); do echo "0:many-$i"; done | sort | tr '\n' ' ')" \
  "16 concurrent executes across four sandbox leases: each its own answer"
wait_no_sandbox_procs
tap_ok $? "no sandbox process is left after them"
tap_is "$(sql "SELECT count(*) FROM paperclip.lease_executions WHERE command = 'sh' AND stdout_bytes IN (5, 6, 7)")" 24 \
  "... and all 24 are recorded"

# ------------------------------------------------------------ the driver worker SIGKILLed mid-command
"$PCR_PGBIN/psql" -X -qAt -h 127.0.0.1 -p "$RPORT" -U postgres -d pcr \
  -c "SELECT * FROM paperclip.lease_execute('$L', 'sh', ARRAY['-c', 'sleep 7406 & sleep 7407'])" >/dev/null 2>"$PCR_WORK/k74.err" &
bg=$!
_end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ "$(bwrap_procs)" -gt 0 ] && break; sleep 0.1; done
WPID=$(sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'paperclip driver' AND state = 'active' AND query = 'bwrap.execute' LIMIT 1")
tap_like "$WPID" "^[0-9]+$" "a driver worker runs the sandbox"
kill -9 "$WPID"
wait $bg
tap_ok "$([ $? -ne 0 ]; echo $?)" "the worker SIGKILLed mid-command: the caller gets an error"
wait_no_sandbox_procs
tap_ok $? "... and the sandbox and everything in it die with the worker (--die-with-parent, PID namespace)"
tap_is "$(pgrep_ours '^sleep 740[67]')" 0 "... the command's own children too"
_end=$((SECONDS + $(wait_secs 60))); while [ "$SECONDS" -le "$_end" ]; do
  [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'paperclip driver'" 2>/dev/null)" == 3 ] && break
  sleep 0.2
done
tap_is "$(sql "SELECT exit_code FROM paperclip.lease_execute('$L', 'true')")" 0 "the server is back and the lease runs commands again"

# ------------------------------------------------------------ a lease no longer active
release f1
tap_is "$(psqlv -c "SELECT * FROM paperclip.lease_execute('$L', 'true')")" "55000: lease $L is released" "a released lease: 55000"
tap_is "$(sql "SELECT count(*) FROM paperclip.lease_executions x WHERE (to_jsonb(x) - 'id' - 'company_id' - 'lease_id' - 'heartbeat_run_id' - 'started_at' - 'finished_at')::text ~ '(7401|one-1|FROM_CONFIG|cfg)'")" 0 \
  "no record holds arguments, output or variables"
for r in f2 f3 f4; do release $r; done
wait_no_sandbox_procs
tap_ok $? "at the end no sandbox process is left"
wait_objects 30 ""
tap_ok $? "... and, the leases released, the sandbox root is empty"
