#!/usr/bin/env bash
# 56_guc_ceilings — paperclip.acquire_timeout and paperclip.ssh_connect_timeout
# hold shared driver workers, so the server's values are ceilings: a role that
# is not a superuser may lower them for itself, never raise them — not by SET,
# set_config(), its own ALTER ROLE ... SET, a role setting a superuser stored,
# or the options of its connection.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh
. test/lib/seeded_db.sh

tap_plan 14
seeded_db pcr_ceilings || exit 1
DB=pcr_ceilings
trap 'pcr_setting_reset "$PGPORT" paperclip.ssh_connect_timeout 2>/dev/null
      psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS pcr_ceilings WITH (FORCE)" -c "DROP ROLE IF EXISTS pcr_ceiling" >/dev/null 2>&1' EXIT
psql -XAtq -d postgres -c "DROP ROLE IF EXISTS pcr_ceiling" -c "CREATE ROLE pcr_ceiling LOGIN IN ROLE paperclip_agent" >/dev/null
as_role() { PGUSER=pcr_ceiling sql_error "$@"; }
as_role_show() { PGUSER=pcr_ceiling psql -X -Atq -d "$DB" "$@" 2>&1; }

tap_is "$(as_role -c "SET paperclip.acquire_timeout = '1d'")" \
  "42501: parameter \"paperclip.acquire_timeout\" cannot be raised above 30000 ms" \
  "SET above the server's acquire_timeout: refused (42501)"
tap_is "$(as_role -c "SET paperclip.ssh_connect_timeout = '1d'")" \
  "42501: parameter \"paperclip.ssh_connect_timeout\" cannot be raised above 10000 ms" \
  "SET above the server's ssh_connect_timeout: refused (42501)"
tap_is "$(as_role_show -c "SET paperclip.acquire_timeout = '5s'" -c "SHOW paperclip.acquire_timeout")" 5s \
  "a lower acquire_timeout is accepted"
tap_is "$(as_role -c "SELECT set_config('paperclip.ssh_connect_timeout', '86400000', false)")" \
  "42501: parameter \"paperclip.ssh_connect_timeout\" cannot be raised above 10000 ms" \
  "set_config() above the ceiling: refused"
tap_is "$(as_role_show -c "SELECT set_config('paperclip.ssh_connect_timeout', '2000', true)")" 2s \
  "set_config() to a lower value is accepted"
tap_is "$(as_role -c "SET paperclip.acquire_timeout = '1s'" -c "SET paperclip.acquire_timeout = '30s'")" "no error" \
  "lowered, then raised back up to the ceiling: accepted"
tap_is "$(as_role -c "ALTER ROLE pcr_ceiling SET paperclip.acquire_timeout = '1d'")" \
  "42501: parameter \"paperclip.acquire_timeout\" cannot be raised above 30000 ms" \
  "ALTER ROLE ... SET of its own setting above the ceiling: refused"

# a role setting above the ceiling, stored by a superuser, is not applied at login
psql -XAtq -d postgres -c "ALTER ROLE pcr_ceiling SET paperclip.ssh_connect_timeout = '1d'" >/dev/null
out=$(as_role_show -c "SHOW paperclip.ssh_connect_timeout")
tap_like "$out" "WARNING:.*cannot be raised above 10000 ms" "a stored role setting above the ceiling: a WARNING at login"
tap_like "$out" "10s$" "... and the server's value applies"
psql -XAtq -d postgres -c "ALTER ROLE pcr_ceiling RESET ALL" >/dev/null

out=$(PGOPTIONS="-c paperclip.acquire_timeout=86400000" as_role_show -c "SHOW paperclip.acquire_timeout")
tap_like "$out" "cannot be raised above 30000 ms" "connection options above the ceiling: refused"

# superusers are not bound by it; the server-wide value moves it
tap_is "$(sql -c "SET paperclip.acquire_timeout = '1d'" -c "SHOW paperclip.acquire_timeout")" 1d \
  "a superuser may set it above the server's value"
pcr_setting "$PGPORT" paperclip.ssh_connect_timeout 60s 1min || exit 1
tap_is "$(as_role_show -c "SET paperclip.ssh_connect_timeout = '45s'" -c "SHOW paperclip.ssh_connect_timeout")" 45s \
  "once a superuser raised the server-wide value, a role may set up to it"
tap_is "$(as_role -c "SET paperclip.ssh_connect_timeout = '61s'")" \
  "42501: parameter \"paperclip.ssh_connect_timeout\" cannot be raised above 60000 ms" \
  "... but not above it"
pcr_setting_reset "$PGPORT" paperclip.ssh_connect_timeout 10s || exit 1
tap_is "$(as_role -c "SET paperclip.ssh_connect_timeout = '45s'")" \
  "42501: parameter \"paperclip.ssh_connect_timeout\" cannot be raised above 10000 ms" \
  "lowered server-wide again, the ceiling follows"
