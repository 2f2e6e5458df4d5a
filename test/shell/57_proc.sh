#!/usr/bin/env bash
# 57_proc — child processes of driver workers (pcr_proc.h), through a test
# library built only against the installed headers (test/fixtures/proc_test):
# what a child inherits (signal mask and dispositions, descriptors,
# environment, umask, rlimits, oom_score_adj, process group), exit codes,
# signals, exec failures, stdin, output caps that never stall, timeouts with
# SIGTERM then SIGKILL, a cancelled caller, error paths that must kill the
# child, and that nothing survives a SIGKILLed worker or a killed postmaster.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/recon.sh

tap_plan 33
MOD=test/fixtures/proc_test
make -C "$MOD" PCR_DESTDIR="${PCR_DESTDIR:-}" >"$PCR_WORK/proc_test.build" 2>&1 &&
  make -C "$MOD" PCR_DESTDIR="${PCR_DESTDIR:-}" install DESTDIR="${PCR_DESTDIR:-}" >>"$PCR_WORK/proc_test.build" 2>&1
rc=$?
make -C "$MOD" clean >/dev/null 2>&1
if [ "$rc" -ne 0 ]; then cat "$PCR_WORK/proc_test.build" >&2; exit 1; fi

BG=()
# a variable planted in the server's environment must never reach a child
export PCR_PLANTED_SECRET=planted-in-the-postmaster
recon_cluster proc57 "shared_preload_libraries = 'paperclip_runtime, pcr_proc_test'" \
  "paperclip.driver_workers = 2" "paperclip.database = 'pcr'" "paperclip.acquire_timeout = '5s'"
unset PCR_PLANTED_SECRET
cleanup57() {
  local pid
  for pid in "${BG[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  pcr_cluster_stop "$RDATA" immediate
}
trap cleanup57 EXIT
sql "CREATE DATABASE pcr" postgres >/dev/null
sql "CREATE EXTENSION paperclip_runtime" >/dev/null
sql "CREATE FUNCTION pcr_proc_test_run(path text, args text[], env text[], cwd text, stdin text,
       timeout_ms int, max_output int, rlimit_as_mb int, pidfile text, mode text,
       OUT exit_code int, OUT sig int, OUT timed_out bool, OUT stdout bytea, OUT stderr bytea,
       OUT stdout_truncated bool, OUT stderr_truncated bool, OUT duration_ms int, OUT pid int,
       OUT report text)
     AS 'pcr_proc_test' LANGUAGE C" >/dev/null
chmod 777 "$PCR_WORK"

# run COLUMNS PATH ARGS ENV [CWD] [STDIN] [TIMEOUT] [MAXOUT] [AS_MB] [PIDFILE] [MODE]
run() {
  local cols=$1 path=$2 args=$3 env=$4
  sql "SELECT $cols FROM pcr_proc_test_run('$path', $args, $env, ${5:-NULL}, ${6:-NULL}, ${7:-10000},
         ${8:-65536}, ${9:-0}, ${10:-NULL}, ${11:-NULL})"
}
out() { run "convert_from(stdout, 'UTF8')" "$@"; }
sh_out() { out /bin/sh "array['-c', \$q\$$1\$q\$]" "array['PATH=/usr/bin:/bin']"; }
psqlv() {  # psqlv SQL... : "SQLSTATE: message" of the error, or "no error"
  local o
  o=$("$PCR_PGBIN/psql" -X -Atq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$RPORT" -U postgres -d pcr \
        -c '\set VERBOSITY verbose' "$@" 2>&1 >/dev/null)
  o=$(printf '%s\n' "$o" | sed -n 's/^\(psql:[^ ]* \)\{0,1\}ERROR:  \([0-9A-Z]\{5\}\): \(.*\)$/\2: \3/p' | head -n 1)
  echo "${o:-no error}"
}
alive() {  # alive PID: a live process (not a zombie)
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null | tr -d ' ')
  [ -n "$st" ] && [ "${st#Z}" == "$st" ]
}
wait_gone() {  # wait_gone PID [secs]: at least wait_secs (a child left alone lives 100 s or more)
  local end=$(( SECONDS + $(wait_secs "${2:-10}") ))
  while [ "$SECONDS" -le "$end" ]; do alive "$1" || return 0; sleep 0.1; done
  return 1
}
wait_file() {
  local end=$(( SECONDS + $(wait_secs 30) ))
  while [ "$SECONDS" -le "$end" ]; do [ -s "$1" ] && return 0; sleep 0.05; done
  return 1
}
worker_pids() { sql "SELECT string_agg(pid::text, ' ') FROM paperclip.driver_workers_status() WHERE pid IS NOT NULL"; }
wait_until 20 "SELECT count(*) = 2 FROM paperclip.driver_workers_status() WHERE state = 'idle'"

# ---------------------------------------------------------------- what a child inherits
tap_is "$(out /usr/bin/env NULL "array['A=1', 'B=two words']")" "A=1
B=two words" "the child's environment is exactly the spec's"
tap_is "$(out /usr/bin/env NULL "array[]::text[]")" "" \
  "an empty environment stays empty (nothing of the postmaster's, not even the planted variable)"
tap_is "$(out /bin/grep "array['-E', '^Sig(Blk|Ign):', '/proc/self/status']" "array[]::text[]")" \
  "SigBlk:	0000000000000000
SigIgn:	0000000000000000" "empty signal mask and no ignored signal (the worker ignores and blocks several)"
tap_is "$(sh_out 'ls /proc/$$/fd' | xargs)" "0 1 2" \
  "only descriptors 0, 1 and 2 are inherited (not the postmaster-death pipe nor the worker's sockets)"
tap_is "$(out /bin/grep "array['^Umask:', '/proc/self/status']" "array[]::text[]")" "Umask:	0022" \
  "umask 022 (the server's is 077)"
tap_is "$(out /bin/cat "array['/proc/self/oom_score_adj']" "array[]::text[]")" "1000" \
  "oom_score_adj 1000: the kernel kills the child before a backend"
limits=$(run "convert_from(stdout, 'UTF8')" /bin/cat "array['/proc/self/limits']" "array[]::text[]" NULL NULL 10000 65536 256)
tap_like "$limits" "Max address space +268435456 +268435456" "RLIMIT_AS from the spec, soft = hard"
tap_like "$limits" "Max core file size +0 +0" "no core files"
tap_like "$limits" "Max open files +1024 +1024" "RLIMIT_NOFILE a fixed default"
wpid=$(worker_pids | cut -d' ' -f1)
tap_is "$(grep 'Max processes' <<<"$limits")" "$(grep 'Max processes' "/proc/$wpid/limits")" \
  "RLIMIT_NPROC left as the worker has it (it counts every process of the OS user)"
tap_is "$(sh_out 'read _ _ _ _ pgrp _ < /proc/$$/stat; [ "$pgrp" = "$$" ] && echo own group')" "own group" \
  "the child leads its own process group"
tap_is "$(out /bin/pwd NULL "array[]::text[]" "'/tmp'")" "/tmp" "the child starts in the spec's cwd"

# ---------------------------------------------------------------- results
tap_is "$(run "exit_code || ' ' || sig || ' ' || convert_from(stdout, 'UTF8') || '|' || convert_from(stderr, 'UTF8')" \
            /bin/sh "array['-c', 'echo out; echo err >&2; exit 3']" "array[]::text[]")" "3 0 out
|err" "exit code, stdout and stderr apart"
tap_is "$(run "coalesce(exit_code::text, 'null') || ' ' || sig" /bin/sh "array['-c', 'kill -KILL \$\$']" "array[]::text[]")" \
  "null 9" "a child killed by a signal: the signal, no exit code"
tap_is "$(run "exit_code || ' ' || convert_from(stderr, 'UTF8')" /nonexistent/program NULL "array[]::text[]")" \
  "127 /nonexistent/program: No such file or directory" "a program that cannot be executed: 127 and the reason, not an error"
tap_is "$(psqlv -c "SELECT * FROM pcr_proc_test_run('/bin/true', NULL, NULL, '/nonexistent', NULL, 1000, 100, 0, NULL, NULL)")" \
  "58030: could not start \"/bin/true\"" "a child that cannot chdir to its cwd: 58030"
tap_is "$(out /bin/cat NULL "array[]::text[]" NULL "'fed through stdin'")" "fed through stdin" "stdin is fed and closed"
tap_is "$(run "report || '|' || convert_from(stdout, 'UTF8')" /bin/sh \
            "array['-c', 'echo first >&3; echo out; echo second >&3']" "array[]::text[]" NULL NULL 10000 100 0 NULL "'report'")" \
  "first
second
|out" "a report pipe is descriptor 3 of the child, read apart from stdout"

# ---------------------------------------------------------------- caps and timeouts
r=$(run "length(stdout) || ' ' || stdout_truncated || ' ' || exit_code || ' ' || timed_out" \
      /usr/bin/head "array['-c', '200000000', '/dev/zero']" "array[]::text[]" NULL NULL 60000 1024)
tap_is "$r" "1024 true 0 false" "a child writing 200 MB past a 1 KiB cap is drained to the end: it exits, never stalls"
r=$(run "coalesce(exit_code::text, 'null') || ' ' || sig || ' ' || timed_out" /bin/sleep "array['30']" "array[]::text[]" NULL NULL 500)
tap_is "$r" "null 15 true" "past its timeout a child gets SIGTERM"
r=$(run "sig || ' ' || timed_out || ' ' || (duration_ms >= 700)" /bin/sh \
      "array['-c', 'trap \"\" TERM; while :; do sleep 0.05; done']" "array['PATH=/bin:/usr/bin']" NULL NULL 500)
tap_is "$r" "9 true true" "a child ignoring SIGTERM gets SIGKILL after the grace"
bgpid=$(run "convert_from(stdout, 'UTF8')" /bin/sh "array['-c', 'sleep 100 & echo \$!; sleep 100 & wait']" \
          "array['PATH=/bin:/usr/bin']" NULL NULL 300)
wait_gone "$bgpid" 5
tap_ok $? "a timeout kills the child's whole process group (grandchild $bgpid gone)"
bgpid=$(sh_out 'sleep 100 & echo $!')
wait_gone "$bgpid" 5
tap_ok $? "a child that exits leaves nothing of its group running (background $bgpid gone)"

# ---------------------------------------------------------------- error paths
pf=$PCR_WORK/pid.cancel
t0=$(now_ms)
err=$(psqlv -c "SET statement_timeout = '300ms'" \
            -c "SELECT * FROM pcr_proc_test_run('/bin/sleep', array['100'], NULL, NULL, NULL, 60000, 100, 0, '$pf', NULL)")
tap_is "$err" "57014: canceling statement due to statement timeout" "a cancelled caller gets 57014"
wait_file "$pf"; wait_gone "$(cat "$pf")" 5
tap_ok $? "... and its child is killed at once"
for mode in leak raise; do
  pf=$PCR_WORK/pid.$mode
  psqlv -c "SELECT * FROM pcr_proc_test_run('/bin/sleep', array['100'], NULL, NULL, NULL, 60000, 100, 0, '$pf', '$mode')" >/dev/null
  wait_file "$pf"; wait_gone "$(cat "$pf")" 5
  tap_ok $? "an operation that $( [ $mode = leak ] && echo returns without waiting || echo raises ) leaves no child"
done
kids=0
for w in $(worker_pids); do kids=$((kids + $(pgrep -P "$w" | wc -l))); done
tap_is "$kids" 0 "every child was reaped: the driver workers have no child process left (not even a zombie)"

# ---------------------------------------------------------------- the worker or the postmaster dies
pf=$PCR_WORK/pid.worker
( "$PCR_PGBIN/psql" -X -Atq -h 127.0.0.1 -p "$RPORT" -U postgres -d pcr \
    -c "SELECT * FROM pcr_proc_test_run('/bin/sleep', array['1000'], NULL, NULL, NULL, 600000, 100, 0, '$pf', NULL)" \
    >"$PCR_WORK/worker.err" 2>&1 ) &
BG+=($!)
wait_file "$pf"; child=$(cat "$pf")
victim=$(sql "SELECT pid FROM paperclip.driver_workers_status() WHERE state = 'running'")
kill -KILL "$victim"
wait_gone "$child" 10
tap_ok $? "a SIGKILLed driver worker takes its child with it (parent-death signal)"
wait "${BG[0]}"; BG=()
tap_like "$(cat "$PCR_WORK/worker.err")" "(ERROR|server closed the connection|terminating connection)" \
  "the caller of the killed worker gets an error, not a hang"
# SIGKILL of a postmaster child makes the postmaster reinitialise: wait for it
wait_until 60 "SELECT count(*) = 2 FROM paperclip.driver_workers_status() WHERE state = 'idle'"
tap_ok $? "the server reinitialises and its driver workers come back"

pf=$PCR_WORK/pid.postmaster
( psqlv -c "SELECT * FROM pcr_proc_test_run('/bin/sleep', array['1000'], NULL, NULL, NULL, 600000, 100, 0, '$pf', NULL)" \
    >/dev/null ) &
BG+=($!)
wait_file "$pf"; child=$(cat "$pf")
pm=$(head -n 1 "$RDATA/postmaster.pid")
server=$(pgrep -P "$pm" | tr '\n' ' ')
kill -KILL "$pm"
wait_gone "$child" 20
tap_ok $? "a killed postmaster takes the children of its driver workers with it"
left=1
end=$(( SECONDS + 20 ))
while [ "$left" -gt 0 ] && [ "$SECONDS" -le "$end" ]; do
  left=0
  for p in $server; do alive "$p" && left=$((left + 1)); done
  [ "$left" -gt 0 ] && sleep 0.2
done
tap_is "$left" 0 "... and none of the server's processes is left running"
rm -f "$RDATA/postmaster.pid"
