#!/usr/bin/env bash
# 46_ssh_allowed_hosts — paperclip.ssh_allowed_hosts, the superuser allow-list of ssh
# destinations (issue 11, item 7): refused destinations are 42501 for acquire and
# probe, before any connection (a listener sees none); IP hosts are checked against
# addresses/CIDRs in the caller, names against patterns in the caller and, for
# address entries, by what they resolve to in the worker right before connect; a
# pooled session is not reused under another list; the setting is validated and
# only a superuser changes it.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh
. test/fixtures/ssh_lab.sh
. test/fixtures/ssh_env.sh

if ! ssh_lab_available; then
  tap_skip_all "sshd is not installed"
  exit 0
fi
tap_plan 27
LAB=$PCR_WORK/ssh46
COUNTER_PID=
cleanup() {
  set_setting paperclip.ssh_allowed_hosts '' '*' >/dev/null 2>&1
  [ -z "$COUNTER_PID" ] || { kill "$COUNTER_PID" 2>/dev/null; wait "$COUNTER_PID" 2>/dev/null; }
  ssh_db_drop
  ssh_lab_stop
}
trap cleanup EXIT
ssh_lab_start "$LAB" || exit 1
ssh_db_create pcr_ssh46 || exit 1
allow() { set_setting paperclip.ssh_allowed_hosts "$1" || exit 1; }
allow_nothing() { pcr_setting "$PGPORT" paperclip.ssh_allowed_hosts '' || exit 1; }  # the empty list (set_setting '' resets)

# a listener that writes one line per connection it accepts, then hangs up
rm -f "$LAB/counter.port" "$LAB/counter.log"
python3 - "$LAB/counter.port" "$LAB/counter.log" <<'PY' 2>"$LAB/counter.err" &
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    c, _ = s.accept()
    with open(sys.argv[2], "a") as f:
        f.write("connection\n")
    c.close()
PY
COUNTER_PID=$!
_end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do [ -s "$LAB/counter.port" ] && break; sleep 0.1; done
COUNTER_PORT=$(cat "$LAB/counter.port")
connections() { [ -f "$LAB/counter.log" ] && wc -l <"$LAB/counter.log" | tr -d ' ' || echo 0; }

E=00000000-0000-0000-0000-000000004601          # the lab sshd at 127.0.0.1
E_NAME=00000000-0000-0000-0000-000000004602     # the lab sshd as "localhost"
E_COUNT=00000000-0000-0000-0000-000000004603    # the counting listener
ssh_env $E allowed
ssh_env $E_NAME by-name '{"host": "localhost", "knownHosts": null, "strictHostKeyChecking": false}'
ssh_env $E_COUNT counted "{\"port\": $COUNTER_PORT}"
acquire() { sql -c "SELECT status FROM paperclip.acquire_run_lease('$C1', '$1', '$(new_run)')" 2>&1; }
acquire_error() { sql_error -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$1', '$(new_run)')"; }
probe() { sql -F '|' -c "SELECT p->>'ok', p->'details'->>'sqlstate', p->>'summary' FROM paperclip.environment_probe('$1') p"; }
NOT_ALLOWED="42501: ssh destination \"127.0.0.1:$SSH_LAB_PORT\" is not allowed by paperclip.ssh_allowed_hosts"

# ------------------------------------------------------------------ the default
tap_is "$(sql -c "SHOW paperclip.ssh_allowed_hosts")" "*" "the default admits any host"
tap_is "$(acquire $E)" active "default: an ssh acquire works"

# --------------------------------------------- an IP host checked in the caller
allow '10.0.0.0/8'
tap_is "$(acquire_error $E)" "$NOT_ALLOWED" "127.0.0.1 outside 10.0.0.0/8: acquire refused with 42501"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.environment_leases WHERE environment_id = '$E' AND status = 'active'")" 1 \
  "the refused acquire wrote no lease (only the default one is active)"
rm -rf "$LAB/ws/refused"
ssh_env 00000000-0000-0000-0000-000000004604 refused
acquire_error 00000000-0000-0000-0000-000000004604 >/dev/null
[ ! -e "$LAB/ws/refused" ]
tap_ok $? "the refused acquire created no workspace"
tap_is "$(probe $E)" "false|42501|ssh destination \"127.0.0.1:$SSH_LAB_PORT\" is not allowed by paperclip.ssh_allowed_hosts" \
  "probe of a refused destination: ok false, 42501 in the details"
before=$(connections)
tap_is "$(probe $E_COUNT | cut -d'|' -f1,2)" "false|42501" "probe of the listener, refused: 42501"
tap_is "$(acquire_error $E_COUNT | cut -c1-5)" "42501" "acquire on the listener, refused: 42501"
tap_is "$(connections)" "$before" "refused probe and acquire made no connection at all (no port scan)"
allow "127.0.0.1:$COUNTER_PORT"
tap_is "$(probe $E_COUNT | cut -d'|' -f1,2)" "false|08001" "control: the listener admitted, the probe connects and fails the handshake (08001)"
[ "$(connections)" -gt "$before" ]
tap_ok $? "control: the listener counted that connection"

# ------------------------------------------------------------ ports and CIDRs
allow "127.0.0.1:$SSH_LAB_PORT"
tap_is "$(acquire $E)" active "127.0.0.1:<sshd port> admits the lab sshd"
allow "127.0.0.1:1, 192.0.2.0/24"
tap_is "$(acquire_error $E)" "$NOT_ALLOWED" "an entry for another port does not admit it"
allow "192.0.2.0/24 127.0.0.0/8"
tap_is "$(acquire $E)" active "an IP host inside a CIDR entry is admitted"
allow_nothing
tap_is "$(acquire_error $E)" "$NOT_ALLOWED" "an empty list admits nothing"

# -------------------------- a host name: patterns in the caller, addresses in the worker
allow "*.example.org"
tap_is "$(acquire_error $E_NAME)" \
  "42501: ssh destination \"localhost:$SSH_LAB_PORT\" is not allowed by paperclip.ssh_allowed_hosts" \
  "a name no pattern matches, no address entries: refused in the caller"
allow "LOCAL*"
tap_is "$(acquire $E_NAME)" active "a name matching a pattern (case-insensitively) is admitted"
allow "127.0.0.0/8, ::1"
tap_is "$(acquire $E_NAME)" active "a name whose every address lies in the address entries is admitted"
allow "10.0.0.0/8"
err=$(sql_error -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_NAME', '$(new_run)')")
tap_is "$err" "42501: ssh destination \"localhost:$SSH_LAB_PORT\" is not allowed by paperclip.ssh_allowed_hosts" \
  "a name resolving outside the address entries: refused by the worker before connecting, although a session to it is pooled"
detail=$(psql -X -q -d "$DB" -v VERBOSITY=verbose -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_NAME', '$(new_run)')" 2>&1 | grep DETAIL)
tap_like "$detail" "resolves to an address that no entry admits" "the refusal says it was the resolved address"
grep -q "ssh destination \"localhost:$SSH_LAB_PORT\" refused: it resolved to " "$PCR_DATA/server.log"
tap_ok $? "the server log tells the operator which address was refused"
tap_is "$(probe $E_NAME | cut -d'|' -f1,2)" "false|42501" "probe by name, resolved outside the list: 42501"

# ------------------------------------------------------------ the setting itself
tap_is "$(sql_error -c "ALTER SYSTEM SET paperclip.ssh_allowed_hosts = '10.1.2.3/8'")" \
  "22023: invalid value for parameter \"paperclip.ssh_allowed_hosts\": \"10.1.2.3/8\"" \
  "a CIDR with host bits set is refused when set"
tap_is "$(sql_error -c "ALTER SYSTEM SET paperclip.ssh_allowed_hosts = '10.0.*'")" \
  "22023: invalid value for parameter \"paperclip.ssh_allowed_hosts\": \"10.0.*\"" \
  "a partial address as a pattern is refused (use a CIDR)"
tap_is "$(sql_error -c "ALTER SYSTEM SET paperclip.ssh_allowed_hosts = 'h:99999'")" \
  "22023: invalid value for parameter \"paperclip.ssh_allowed_hosts\": \"h:99999\"" \
  "a port out of range is refused"
tap_is "$(sql_error -c "SET paperclip.ssh_allowed_hosts = '*'")" \
  "55P02: parameter \"paperclip.ssh_allowed_hosts\" cannot be changed now" \
  "no session can change it, not even a superuser's (server-wide, reloaded)"
tap_is "$(sql_error -c "SET ROLE paperclip_admin" -c "ALTER SYSTEM SET paperclip.ssh_allowed_hosts = '*'")" \
  "42501: permission denied to set parameter \"paperclip.ssh_allowed_hosts\"" \
  "paperclip_admin cannot change it with ALTER SYSTEM"
