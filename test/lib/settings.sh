# test/lib/settings.sh — change a server setting and wait until it is in force
#
# Sourced by test/lib/tap.sh (so every shell test has it).  PORT is the
# cluster's port on 127.0.0.1 ($PGPORT for the suite's cluster, $RPORT for a
# test's own); sessions are the postgres superuser's, in database postgres.
#
#   pcr_setting PORT NAME VALUE [SHOWN]
#       ALTER SYSTEM SET NAME = VALUE, reload, and wait until a new session's
#       SHOW NAME prints SHOWN (default VALUE: give SHOWN where PostgreSQL
#       prints the value otherwise, e.g. 60s as 1min)
#   pcr_setting_reset PORT NAME [SHOWN]
#       ALTER SYSTEM RESET NAME, reload, and wait until a new session's value
#       of NAME no longer comes from postgresql.auto.conf (and, with SHOWN,
#       until SHOW NAME prints SHOWN)
#   pcr_reconciler_passes PORT DB N
#       wake the reconciler (it serves DB, where the extension is) until N more
#       passes have finished
#
# Each waits at most $PCR_SETTING_WAIT seconds (default 60), then says on
# standard error what it saw and returns 1.
#
# Why a new session's SHOW is the moment a reload is in force: on PostgreSQL
# 15 the postmaster re-reads the configuration in its SIGHUP handler and
# signals every child before it forks another backend.  So once a new
# session shows the value, every later session has it and every running
# process has the reload pending.  A driver worker applies it before it takes
# its next request (io_worker.c: ProcessConfigFile between WaitLatch and
# serve_request), so what a caller asks of the pool from then on runs with
# the new value (log_min_messages, paperclip_bwrap.bwrap_path,
# paperclip.runtime_api_candidates, paperclip.ssh_connect_timeout...).  The
# reconciler applies it at the top of its loop, but a pass under way ends
# with the old values and the pass after it was scheduled with the old
# paperclip.reconcile_interval: after a setting it reads (reconcile_interval,
# cleanup_max_attempts...), wait for two more passes with
# pcr_reconciler_passes PORT DB 2 (the second starts after the first has
# ended, so with the reload applied, and schedules the next one with it).
# reconciler_status() does not show the settings a worker runs with; passes
# are what it shows.

PCR_SETTING_WAIT=${PCR_SETTING_WAIT:-60}

_pcr_setting_psql() {  # _pcr_setting_psql PORT [DB] psql-args...
  local port=$1 db=$2
  shift 2
  "${PCR_PGBIN:+$PCR_PGBIN/}psql" -X -Atq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}

# wait until a new session's SHOW NAME prints WANT, or (with WANT unset) until
# its value does not come from postgresql.auto.conf
_pcr_setting_wait() {  # _pcr_setting_wait PORT NAME [WANT]
  local port=$1 name=$2 end=$((SECONDS + PCR_SETTING_WAIT)) seen
  while :; do
    if [ $# -ge 3 ]; then
      seen=$(_pcr_setting_psql "$port" postgres -c "SHOW $name" 2>&1)
      [ "$seen" == "$3" ] && return 0
    else
      seen=$(_pcr_setting_psql "$port" postgres -v n="$name" 2>&1 <<'SQL'
SELECT coalesce(sourcefile, '') || ' ' || setting FROM pg_catalog.pg_settings WHERE name = :'n'
SQL
)
      [[ $seen == /* || $seen == " "* ]] && [[ $seen != */postgresql.auto.conf\ * ]] && return 0
    fi
    if [ "$SECONDS" -ge "$end" ]; then
      echo "pcr_setting: $PCR_SETTING_WAIT s after the reload a new session still sees $name as '$seen'" \
        "(want ${3-a value not from postgresql.auto.conf})" >&2
      return 1
    fi
    sleep 0.1
  done
}

pcr_setting() {  # pcr_setting PORT NAME VALUE [SHOWN]
  local port=$1 name=$2 value=$3 shown=${4-$3}
  _pcr_setting_psql "$port" postgres -v v="$value" >/dev/null <<SQL || return 1
ALTER SYSTEM SET $name = :'v';
SELECT pg_catalog.pg_reload_conf();
SQL
  _pcr_setting_wait "$port" "$name" "$shown"
}

pcr_setting_reset() {  # pcr_setting_reset PORT NAME [SHOWN]
  local port=$1 name=$2
  _pcr_setting_psql "$port" postgres -c "ALTER SYSTEM RESET $name" -c "SELECT pg_catalog.pg_reload_conf()" >/dev/null || return 1
  shift 2
  _pcr_setting_wait "$port" "$name" "$@"
}

pcr_reconciler_passes() {  # pcr_reconciler_passes PORT DB N
  local port=$1 db=$2 n=$3 end=$((SECONDS + PCR_SETTING_WAIT)) before got
  before=$(_pcr_setting_psql "$port" "$db" -c "SELECT passes FROM paperclip.reconciler_status()") || return 1
  while :; do
    _pcr_setting_psql "$port" "$db" -c "SELECT paperclip.reconciler_wake()" >/dev/null
    got=$(_pcr_setting_psql "$port" "$db" -c "SELECT passes FROM paperclip.reconciler_status()")
    [ "${got:-0}" -ge $((before + n)) ] && return 0
    if [ "$SECONDS" -ge "$end" ]; then
      echo "pcr_reconciler_passes: $((got - before)) of $n passes in $PCR_SETTING_WAIT s" \
        "($(_pcr_setting_psql "$port" "$db" -c "SELECT state FROM paperclip.reconciler_status()"))" >&2
      return 1
    fi
    sleep 0.2
  done
}
