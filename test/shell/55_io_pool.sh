#!/usr/bin/env bash
# 55_io_pool — the driver-agnostic I/O pool through a test backend built only
# against the installed io.h (test/fixtures/io_test): payloads inline and in
# DSM, secret ranges, errors re-raised whole, deadlines and cancellation that
# reach the worker, a company's share, callers waiting for a free worker, the
# reconciler's cleanups through the pool (no row lock held while it waits),
# registration refused after start-up, driver_workers clamped.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/recon.sh

tap_plan 31
MOD=test/fixtures/io_test
make -C "$MOD" PCR_DESTDIR="${PCR_DESTDIR:-}" >"$PCR_WORK/io_test.build" 2>&1 &&
  make -C "$MOD" PCR_DESTDIR="${PCR_DESTDIR:-}" install DESTDIR="${PCR_DESTDIR:-}" >>"$PCR_WORK/io_test.build" 2>&1
rc=$?
make -C "$MOD" clean >/dev/null 2>&1
if [ "$rc" -ne 0 ]; then cat "$PCR_WORK/io_test.build" >&2; exit 1; fi
LIBDIR=$("$PCR_PGBIN/pg_config" --pkglibdir 2>/dev/null || echo "${PCR_DESTDIR:-}$(pg_config --pkglibdir)")
[ -f "$LIBDIR/pcr_io_test.so" ] || LIBDIR=${PCR_DESTDIR:-}$(pg_config --pkglibdir)

BG=()
recon_cluster io55 "shared_preload_libraries = 'paperclip_runtime, pcr_io_test'" \
  "max_worker_processes = 4" "paperclip.driver_workers = 3" "paperclip.acquire_timeout = '3s'" \
  "paperclip.database = 'pcr'" "paperclip.reconcile_interval = '1s'"
cleanup55() {
  local pid
  for pid in "${BG[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -f "$LIBDIR/pcr_io_test2.so"
  pcr_cluster_stop "$RDATA" immediate
}
trap cleanup55 EXIT
C1=00000000-0000-0000-0000-0000000000c1
C2=00000000-0000-0000-0000-0000000000c2
sql "CREATE DATABASE pcr" postgres >/dev/null
sql "CREATE EXTENSION paperclip_runtime" >/dev/null
sql_file test/fixtures/seed.sql >/dev/null
sql "CREATE FUNCTION pcr_io_test_call(op text, company uuid, request bytea, secret_from int,
       secret_len int, response_max int, deadline_ms int) RETURNS bytea
     AS 'pcr_io_test', 'pcr_io_test_call' LANGUAGE C" >/dev/null

psqlv() {  # psqlv SQL... : "SQLSTATE: message" of the error, or "no error"
  local out
  out=$("$PCR_PGBIN/psql" -X -Atq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$RPORT" -U postgres -d pcr \
          -c '\set VERBOSITY verbose' "$@" 2>&1 >/dev/null)
  out=$(printf '%s\n' "$out" | sed -n 's/^\(psql:[^ ]* \)\{0,1\}ERROR:  \([0-9A-Z]\{5\}\): \(.*\)$/\2: \3/p' | head -n 1)
  echo "${out:-no error}"
}
call() {   # call OP COMPANY REQUEST [response_max] [deadline_ms] : the answer as text
  sql "SELECT convert_from(pcr_io_test_call('$1', ${2:-NULL}, convert_to('$3', 'UTF8'), 0, 0, ${4:-1024}, ${5:-0}), 'UTF8')"
}
busy() { sql "SELECT count(*) FROM paperclip.driver_workers_status() WHERE state = 'running'"; }
idle() { sql "SELECT count(*) FROM paperclip.driver_workers_status() WHERE state = 'idle'"; }
wait_for() {  # wait_for SECS CMD WANT (SECS: wait_secs)
  local end=$(( $(date +%s) + $(wait_secs "$1") ))
  while [ "$(date +%s)" -le "$end" ]; do [ "$($2)" == "$3" ] && return 0; sleep 0.1; done
  return 1
}
marker() { cat "$1" 2>/dev/null; }
wait_marker() {
  local end=$(( $(date +%s) + $(wait_secs 30) ))
  while [ "$(date +%s)" -le "$end" ]; do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}
sleeper() {  # sleeper APPNAME COMPANY MARKER DEADLINE_MS : a test.sleep call in the background
  ( PGAPPNAME=$1 psqlv -c "SELECT pcr_io_test_call('test.sleep', $2, convert_to('$3', 'UTF8'), 0, 0, 0, $4)" \
      >"$3.err" ) &
  BG+=($!)
}
chmod 777 "$PCR_WORK"

# ---------------------------------------------------------------- start-up
grep -q 'paperclip.driver_workers is 3, but only 2 driver workers can start' "$RDATA/server.log"
tap_ok $? "driver_workers above what max_worker_processes leaves: a WARNING at start-up"
tap_is "$(sql "SELECT count(*) FROM paperclip.driver_workers_status()")" 2 \
  "the pool is clamped to max_worker_processes less the reconciler's and the launcher's slots"
wait_for 20 idle 2
tap_ok $? "both clamped workers start and are idle"

# ---------------------------------------------------------------- payloads
tap_is "$(call test.echo NULL 'hello world')" "hello world" "a small request and answer travel inline"
tap_is "$(sql "SELECT convert_from(pcr_io_test_call('test.echo', NULL, convert_to('key=SECRET;', 'UTF8'), 4, 6, 100, 0), 'UTF8')")" \
  "key=SECRET;" "the worker gets the secret range; the caller's copy is zeroed (checked by the caller)"
tap_is "$(sql "SELECT md5(pcr_io_test_call('test.echo', NULL, r, 1000, 500000, 1048576, 0)) = md5(r)
                 FROM (SELECT convert_to(repeat('0123456789abcdef', 65536), 'UTF8') AS r) s")" t \
  "a 1 MiB request with a secret range and a 1 MiB answer travel through DSM, unchanged"
tap_is "$(sql "SELECT length(pcr_io_test_call('test.big', NULL, convert_to('16777216', 'UTF8'), 0, 0, 16777216, 0))")" \
  16777216 "a 16 MiB answer, sized for the call"
tap_is "$(psqlv -c "SELECT pcr_io_test_call('test.big', NULL, convert_to('2000', 'UTF8'), 0, 0, 1000, 0)")" \
  "54000: driver answer of 2000 bytes does not fit in the 1000 bytes its caller allowed" \
  "an answer larger than the caller allowed is an error, not an overflow"
tap_is "$(call test.pipe NULL '' 64)" readable "PcrIoWait tells which descriptor is ready (a pipe)"

# ---------------------------------------------------------------- errors
out=$("$PCR_PGBIN/psql" -X -Atq -h 127.0.0.1 -p "$RPORT" -U postgres -d pcr -c '\set VERBOSITY verbose' \
        -c "SELECT pcr_io_test_call('test.fail', NULL, convert_to('22P02', 'UTF8'), 0, 0, 0, 0)" 2>&1)
tap_like "$out" "ERROR:  22P02: test operation failed as asked" "the operation's SQLSTATE and message are re-raised"
tap_like "$out" "DETAIL:  the detail of the failure" "... with its detail"
tap_like "$out" "HINT:  the hint of the failure" "... and its hint"
tap_is "$(idle)" 2 "a failed operation leaves its worker idle"

# ---------------------------------------------------------------- giving up
M=$PCR_WORK/m1
t0=$(date +%s%3N)
err=$(psqlv -c "SELECT pcr_io_test_call('test.sleep', NULL, convert_to('$M', 'UTF8'), 0, 0, 0, 1000)")
t1=$(date +%s%3N)
tap_is "$err" "08001: driver request to \"test\" did not finish within its deadline (1000 ms)" \
  "past the call's deadline the caller gives up (08001)"
wait_marker "$M"; tap_is "$(marker "$M")" abandoned "the worker sees the caller gave up (in PcrIoWait)"
M=$PCR_WORK/m2
err=$(psqlv -c "SET statement_timeout = '500ms'" \
            -c "SELECT pcr_io_test_call('test.sleep', NULL, convert_to('$M', 'UTF8'), 0, 0, 0, 60000)")
tap_is "$err" "57014: canceling statement due to statement timeout" "statement_timeout cancels a call (57014)"
wait_marker "$M"; tap_is "$(marker "$M")" abandoned "a cancelled call reaches the worker"
M=$PCR_WORK/m3
sleeper pcr_victim NULL "$M" 60000
wait_for 10 busy 1
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pcr_victim'" postgres >/dev/null
wait_marker "$M"; tap_is "$(marker "$M")" abandoned "a terminated caller reaches the worker"
wait_for 10 idle 2
tap_ok $? "after every way of giving up, both workers are idle again"

# ---------------------------------------------------------------- a company's share
MA=$PCR_WORK/ma
sleeper pcr_a "'$C1'" "$MA" 30000
wait_for 10 busy 1
tap_is "$(sql "SELECT operation || ' ' || company_id FROM paperclip.driver_workers_status() WHERE state = 'running'")" \
  "test.sleep $C1" "driver_workers_status shows the operation and the company a worker serves"
t0=$(date +%s%3N)
err=$(psqlv -c "SET paperclip.acquire_timeout = '1s'" \
            -c "SELECT pcr_io_test_call('test.echo', '$C1', convert_to('x', 'UTF8'), 0, 0, 10, 0)")
tap_is "$err" "53400: the share of paperclip driver workers of company $C1 is in use" \
  "a company at its share (1 of 2 workers) waits, then gets 53400 naming its share"
tap_is "$(call test.echo "'$C2'" 'neighbour')" neighbour "another company still gets the free worker"
MB=$PCR_WORK/mb
sleeper pcr_b "'$C2'" "$MB" 30000
wait_for 10 busy 2
err=$(psqlv -c "SET paperclip.acquire_timeout = '500ms'" \
            -c "SELECT pcr_io_test_call('test.echo', NULL, convert_to('x', 'UTF8'), 0, 0, 10, 0)")
tap_is "$err" "53400: no paperclip driver worker became free within paperclip.acquire_timeout (500 ms)" \
  "every worker busy: 53400 after the acquire timeout"

# the reconciler's cleanups go through the pool too, and hold no lock while they wait
sql "INSERT INTO paperclip.environments (id, company_id, name, driver, config)
     VALUES ('00000000-0000-0000-0000-0000000055e1', '$C1', 'gone provider', 'sandbox', '{\"provider\": \"gone\"}')" >/dev/null
lease() {
  sql "INSERT INTO paperclip.environment_leases (company_id, environment_id, heartbeat_run_id, provider, metadata)
       VALUES ('$C1', '00000000-0000-0000-0000-0000000055e1', '00000000-0000-0000-0000-0000000000f$1', 'gone',
               '{\"driver\": \"sandbox\", \"provider\": \"gone\"}') RETURNING id"
}
L1=$(lease 1)
L2=$(lease 2)
sql "UPDATE paperclip.environment_leases SET status = 'released', released_at = now() WHERE id IN ('$L1', '$L2')"
in_pool() { sql "SELECT state || ' ' || coalesce(wait_event_type, '') FROM pg_stat_activity WHERE backend_type = 'paperclip reconciler'" postgres; }
wait_for 15 in_pool "active Extension"
tap_ok $? "the reconciler waits for a driver worker to clean up (every worker busy)"
err=$(psqlv -c "SET lock_timeout = '2s'" \
            -c "UPDATE paperclip.environment_leases SET cleanup_status = 'failed', cleanup_error = 'given up by hand' WHERE id = '$L2'")
tap_is "$err" "no error" "meanwhile a client changes the lease row at once: the reconciler holds no lock on it"
attempt1() { sql "SELECT cleanup_attempts || ' ' || cleanup_status || ' ' || cleanup_error FROM paperclip.environment_leases WHERE id = '$L1'"; }
wait_for 20 attempt1 "1 pending no paperclip driver worker became free within paperclip.acquire_timeout (3000 ms)"
tap_ok $? "the reconciler's call waited for a worker in the pool, within the acquire timeout (attempt 1: $(attempt1))"
tap_is "$(sql "SELECT cleanup_attempts || ' ' || cleanup_status || ' ' || cleanup_error FROM paperclip.environment_leases WHERE id = '$L2'")" \
  "0 failed given up by hand" "its record is guarded: the client's change is not overwritten"

# a caller waiting for a worker gets one as soon as one frees up
( psqlv -c "SELECT pcr_io_test_call('test.echo', NULL, convert_to('x', 'UTF8'), 0, 0, 10, 0)" >"$PCR_WORK/waiter.err" ) &
W=$!
sleep 0.3
sql "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name IN ('pcr_a', 'pcr_b')" postgres >/dev/null
wait "$W"
tap_is "$(cat "$PCR_WORK/waiter.err")" "no error" "a caller asleep on the pool's condition variable gets the worker that frees up"
for pid in "${BG[@]}"; do wait "$pid" 2>/dev/null; done
BG=()
served0=$(sql "SELECT sum(requests_served) FROM paperclip.driver_workers_status()")
attempt1b() { sql "SELECT cleanup_attempts || ' ' || cleanup_error FROM paperclip.environment_leases WHERE id = '$L1'"; }
wait_for 20 attempt1b '2 sandbox provider "gone" is not registered in this server'
tap_ok $? "the retried cleanup ran in a driver worker: its error comes from the sandbox cleanup operation ($(attempt1b))"
tap_is "$(sql "SELECT sum(requests_served) > $served0 FROM paperclip.driver_workers_status()")" t \
  "the cleanup was a request served by a driver worker"

# ---------------------------------------------------------------- registration
cp "$LIBDIR/pcr_io_test.so" "$LIBDIR/pcr_io_test2.so"
tap_is "$(psqlv -c "LOAD 'pcr_io_test2'")" \
  "55000: paperclip I/O backend \"test\" must be registered while shared_preload_libraries is processed" \
  "a backend that registers after start-up is refused (55000)"
rm -f "$LIBDIR/pcr_io_test2.so"
