#!/usr/bin/env bash
# 43_ssh_workers — the driver worker pool seen from a caller: cancellation
# (statement_timeout, pg_cancel_backend) during a hung connect, the
# paperclip.acquire_timeout bound, a worker terminated mid-acquire, and no
# free worker.  The caller always gets an error promptly and no lease.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh
. test/fixtures/ssh_lab.sh
. test/fixtures/ssh_env.sh

if ! ssh_lab_available; then
  tap_skip_all "sshd is not installed"
  exit 0
fi
tap_plan 22
LAB=$PCR_WORK/ssh43
BG=()
cleanup() {
  local pid
  for pid in "${BG[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  pcr_setting_reset "$PGPORT" paperclip.driver_workers_per_company 2>/dev/null
  ssh_db_drop
  ssh_lab_stop
}
trap cleanup EXIT
ssh_lab_start "$LAB" || exit 1
hung_listener_start "$LAB" || exit 1
ssh_db_create pcr_ssh43 || exit 1

E_GOOD=00000000-0000-0000-0000-000000004301
E_HUNG=00000000-0000-0000-0000-000000004302
ssh_env $E_GOOD good
ssh_env $E_HUNG hung "{\"port\": $HUNG_PORT}"
NWORKERS=$(sql -c "SHOW paperclip.driver_workers")

workers_idle() {
  sql -c "SELECT count(*) FROM pg_stat_activity
           WHERE backend_type = 'paperclip driver' AND state = 'idle'"
}
# wait until N workers are busy (state active), at most wait_secs 30
wait_busy() {
  local end=$((SECONDS + $(wait_secs 30)))
  while [ "$SECONDS" -le "$end" ]; do
    [ "$(sql -c "SELECT count(*) FROM pg_stat_activity
                  WHERE backend_type = 'paperclip driver' AND state = 'active'")" -ge "$1" ] && return 0
    sleep 0.05
  done
  return 1
}
wait_idle() {  # wait_idle N: until N workers are idle, at most wait_secs 30
  local end=$((SECONDS + $(wait_secs 30)))
  while [ "$SECONDS" -le "$end" ]; do
    [ "$(workers_idle)" -ge "$1" ] && return 0
    sleep 0.05
  done
  return 1
}
# "promptly" below: within PROMPT_MS of the event.  What each check rules out
# is a wait of 30 s or more (a hung handshake under a 60 s connect timeout, a
# worker held for as long, the 30 s acquire_timeout), so 10 s is far from it
# yet leaves a loaded machine room for two psql start-ups and the server's work.
PROMPT_MS=10000

tap_is "$(workers_idle)" "$NWORKERS" "paperclip.driver_workers workers run, visible in pg_stat_activity"

# ------------------------------------------------------------ statement_timeout
RUN=$(new_run)
t0=$(now_ms)
err=$(sql_error -c "SET paperclip.ssh_connect_timeout = '60s'" -c "SET statement_timeout = '1s'" \
                -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_HUNG', '$RUN')")
t1=$(now_ms)
tap_is "$err" "57014: canceling statement due to statement timeout" \
  "statement_timeout during a hung ssh handshake cancels the acquire (57014)"
[ $((t1 - t0)) -lt "$PROMPT_MS" ]
tap_ok $? "the cancelled acquire returns promptly ($((t1 - t0)) ms for a 1 s timeout)"
wait_idle "$NWORKERS"
tap_ok $? "the worker gives the abandoned request up and is idle again"
st=$(sql -c "SELECT status FROM paperclip.acquire_run_lease('$C1', '$E_GOOD', '$RUN')")
tap_is "$st" active "after the cancel, the same run acquires a good environment"
sql -c "SELECT paperclip.release_run_leases('$RUN')" >/dev/null

# ------------------------------------------------------------ pg_cancel_backend
RUN=$(new_run)
( PGAPPNAME=pcr_cancel_me sql_error -c "SET paperclip.ssh_connect_timeout = '60s'" \
    -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_HUNG', '$RUN')" >"$LAB/cancel.out" ) &
BG+=($!)
wait_busy 1
t0=$(now_ms)
sql -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'pcr_cancel_me'" >/dev/null
wait "${BG[-1]}"
t1=$(now_ms)
tap_is "$(cat "$LAB/cancel.out")" "57014: canceling statement due to user request" \
  "pg_cancel_backend cancels an acquire waiting on its worker (57014)"
[ $((t1 - t0)) -lt "$PROMPT_MS" ]
tap_ok $? "the cancel is served promptly ($((t1 - t0)) ms)"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.environment_leases WHERE heartbeat_run_id = '$RUN'")" 0 \
  "cancelled acquires leave no lease"

# ------------------------------------------------------------ caller terminated
RUN=$(new_run)
( PGAPPNAME=pcr_kill_me sql_error -c "SET paperclip.ssh_connect_timeout = '60s'" \
    -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_HUNG', '$RUN')" >/dev/null ) &
BG+=($!)
wait_busy 1
sql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pcr_kill_me'" >/dev/null
wait "${BG[-1]}"
wait_idle "$NWORKERS"
tap_ok $? "a caller terminated while its worker connects: the worker frees its slot"
tap_is "$(sql -c "SELECT status FROM paperclip.acquire_run_lease('$C1', '$E_GOOD', '$RUN')")" active \
  "after a terminated caller, every worker serves acquires again"
sql -c "SELECT paperclip.release_run_leases('$RUN')" >/dev/null

# ------------------------------------------------------------ acquire_timeout
wait_idle "$NWORKERS"
t0=$(now_ms)
err=$(sql_error -c "SET paperclip.ssh_connect_timeout = '60s'" -c "SET paperclip.acquire_timeout = '1s'" \
                -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_HUNG', '$RUN')")
t1=$(now_ms)
tap_is "$err" "08001: driver request to \"127.0.0.1\" did not finish within paperclip.acquire_timeout (1000 ms)" \
  "paperclip.acquire_timeout bounds an acquire whose handshake hangs (08001)"
[ $((t1 - t0)) -lt "$PROMPT_MS" ]
tap_ok $? "the acquire_timeout error comes promptly ($((t1 - t0)) ms for 1 s)"

# ------------------------------------------------------------ ssh_connect_timeout
wait_idle "$NWORKERS"
t0=$(now_ms)
err=$(sql_error -c "SET paperclip.ssh_connect_timeout = '1s'" \
                -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_HUNG', '$RUN')")
t1=$(now_ms)
tap_is "$err" "08001: ssh handshake with \"127.0.0.1:$HUNG_PORT\" timed out" \
  "paperclip.ssh_connect_timeout bounds a handshake that never starts (08001)"
[ $((t1 - t0)) -lt "$PROMPT_MS" ]
tap_ok $? "the connect timeout error comes promptly ($((t1 - t0)) ms for 1 s)"

# ------------------------------------------------------------ no free worker
# one company may keep every worker busy only when its share allows it
# (paperclip.driver_workers_per_company; 56_io_company_share.sh tests the share)
wait_idle "$NWORKERS"
pcr_setting "$PGPORT" paperclip.driver_workers_per_company "$NWORKERS" || exit 1
for i in $(seq 1 "$NWORKERS"); do
  R=$(new_run)
  ( PGAPPNAME=pcr_hog sql_error -c "SET paperclip.ssh_connect_timeout = '60s'" \
      -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_HUNG', '$R')" >/dev/null ) &
  BG+=($!)
done
wait_busy "$NWORKERS"
tap_ok $? "every worker can be claimed at once (no slot was left behind by a cancelled or terminated caller)"
RUN=$(new_run)
t0=$(now_ms)
err=$(sql_error -c "SET paperclip.acquire_timeout = '500ms'" \
                -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_GOOD', '$RUN')")
t1=$(now_ms)
tap_is "$err" "53400: no paperclip driver worker became free within paperclip.acquire_timeout (500 ms)" \
  "all workers busy: a clear error (53400), not a hang"
[ $((t1 - t0)) -lt "$PROMPT_MS" ]
tap_ok $? "all workers busy: the error comes within acquire_timeout ($((t1 - t0)) ms)"
sql -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'pcr_hog'" >/dev/null
for pid in "${BG[@]}"; do wait "$pid" 2>/dev/null; done
BG=()
pcr_setting_reset "$PGPORT" paperclip.driver_workers_per_company || exit 1

# ------------------------------------------------------------ worker terminated
wait_idle "$NWORKERS"
RUN=$(new_run)
( sql_error -c "SET paperclip.ssh_connect_timeout = '60s'" \
    -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_HUNG', '$RUN')" >"$LAB/terminated.out" ) &
BG+=($!)
wait_busy 1
WPID=$(sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'paperclip driver' AND state = 'active' LIMIT 1")
t0=$(now_ms)
sql -c "SELECT pg_terminate_backend($WPID)" >/dev/null
wait "${BG[-1]}"
t1=$(now_ms)
BG=()
tap_like "$(cat "$LAB/terminated.out")" "^08001: paperclip driver worker [0-9]+ exited during the request$" \
  "a driver worker terminated mid-acquire: the caller gets an error"
[ $((t1 - t0)) -lt "$PROMPT_MS" ]
tap_ok $? "the caller learns of it promptly ($((t1 - t0)) ms)"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.environment_leases WHERE heartbeat_run_id = '$RUN'")" 0 \
  "a terminated worker leaves no lease"
wait_idle "$NWORKERS"
tap_ok $? "the terminated worker is restarted"
tap_is "$(sql -c "SELECT status FROM paperclip.acquire_run_lease('$C1', '$E_GOOD', '$RUN')")" active \
  "after the restart, acquires work again"
