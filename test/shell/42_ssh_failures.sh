#!/usr/bin/env bash
# 42_ssh_failures — what an ssh acquire refuses, and with which SQLSTATE: host keys,
# client keys, closed ports, unreachable API candidates; a workspace path full of
# shell metacharacters; environment_probe on a good and a bad ssh environment.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh
. test/fixtures/ssh_lab.sh
. test/fixtures/ssh_env.sh

if ! ssh_lab_available; then
  tap_skip_all "sshd is not installed"
  exit 0
fi
tap_plan 31
LAB=$PCR_WORK/ssh42
trap 'ssh_db_drop; ssh_lab_stop' EXIT
ssh_lab_start "$LAB" || exit 1
health_start "$LAB" || exit 1
ssh_db_create pcr_ssh42 || exit 1
WHERE="127.0.0.1:$SSH_LAB_PORT"

leases_of() {
  sql -c "SELECT count(*) FROM paperclip.environment_leases WHERE heartbeat_run_id = '$1'"
}

# ------------------------------------------------------------------ host keys
E_WRONG_HK=00000000-0000-0000-0000-000000004201
ssh_env $E_WRONG_HK wrong-host-key "{\"knownHosts\": \"$SSH_LAB_WRONG_KNOWN_HOSTS\"}"
RUN=$(new_run)
tap_is "$(sql_error -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_WRONG_HK', '$RUN')")" \
  "08001: host key of \"$WHERE\" does not match knownHosts" \
  "strict, wrong host key in knownHosts: refused (08001) with its own message"
tap_is "$(leases_of "$RUN")" 0 "strict, wrong host key: no lease written"

E_NO_KH=00000000-0000-0000-0000-000000004202
ssh_env $E_NO_KH no-known-hosts '{"knownHosts": null}'
tap_is "$(sql_error -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_NO_KH', '$RUN')")" \
  "08001: host key of \"$WHERE\" cannot be verified: no knownHosts configured" \
  "strict without knownHosts: refused (08001), saying knownHosts is missing"

E_OTHER_HOST=00000000-0000-0000-0000-000000004203
ssh_env $E_OTHER_HOST other-host-entry "{\"knownHosts\": \"[127.0.0.2]:$SSH_LAB_PORT $(cut -d' ' -f1,2 "$LAB/host_ed25519.pub")\"}"
tap_is "$(sql_error -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_OTHER_HOST', '$RUN')")" \
  "08001: host key of \"$WHERE\" is not in knownHosts" \
  "strict, knownHosts lists only other hosts: refused (08001), saying the host is not listed"

E_LAX=00000000-0000-0000-0000-000000004204
ssh_env $E_LAX lax '{"knownHosts": null, "strictHostKeyChecking": false}'
tap_is "$(sql -c "SELECT status FROM paperclip.acquire_run_lease('$C1', '$E_LAX', '$RUN')")" active \
  "strictHostKeyChecking false without knownHosts: accepted"
sql -c "SELECT paperclip.release_run_leases('$RUN')" >/dev/null

# a reused session is verified again against the request's knownHosts
E_REKEY=00000000-0000-0000-0000-000000004205
ssh_env $E_REKEY rekeyed
RUN_A=$(new_run)
sql -c "SELECT 1 FROM paperclip.acquire_run_lease('$C1', '$E_REKEY', '$RUN_A')" >/dev/null
sql -v kh="$SSH_LAB_WRONG_KNOWN_HOSTS" <<SQL
UPDATE paperclip.environments SET config = config || jsonb_build_object('knownHosts', :'kh')
 WHERE id = '$E_REKEY';
SQL
RUN_B=$(new_run)
tap_is "$(sql_error -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_REKEY', '$RUN_B')")" \
  "08001: host key of \"$WHERE\" does not match knownHosts" \
  "an open session is not reused once knownHosts no longer matches its host key"

# the host is re-keyed (sshd reloads, old sessions live on) and knownHosts follows:
# the pooled session, still on the old key, is replaced rather than refused
E_ROT=00000000-0000-0000-0000-000000004213
ssh_env $E_ROT rotated
sql -c "SELECT 1 FROM paperclip.acquire_run_lease('$C1', '$E_ROT', '$(new_run)')" >/dev/null
ssh-keygen -q -t ed25519 -N '' -C lab-host-2 -f "$LAB/host2_ed25519" </dev/null >/dev/null
cp -p "$LAB/host_ed25519" "$LAB/host1_ed25519"
cp -p "$LAB/host_ed25519.pub" "$LAB/host1_ed25519.pub"
rekey() {   # rekey <key file>: sshd serves that host key from now on
  cp -p "$1" "$LAB/host_ed25519"
  cp -p "$1.pub" "$LAB/host_ed25519.pub"
  kill -HUP "$SSH_LAB_SSHD_PID"
  # sshd re-executes itself on SIGHUP: wait until it serves the new key
  local want end=$((SECONDS + $(wait_secs 30)))
  want=$(cut -d' ' -f2 "$1.pub")
  until ssh-keyscan -T 5 -t ed25519 -p "$SSH_LAB_PORT" 127.0.0.1 2>/dev/null | grep -qF "$want"; do
    [ "$SECONDS" -le "$end" ] || break
    sleep 0.1
  done
}
rekey "$LAB/host2_ed25519"
sql -v kh="[127.0.0.1]:$SSH_LAB_PORT $(cut -d' ' -f1,2 "$LAB/host2_ed25519.pub")" <<SQL
UPDATE paperclip.environments SET config = config || jsonb_build_object('knownHosts', :'kh')
 WHERE id = '$E_ROT';
SQL
tap_is "$(sql -c "SELECT status FROM paperclip.acquire_run_lease('$C1', '$E_ROT', '$(new_run)')")" active \
  "host re-keyed and knownHosts updated: the pooled session on the old key is replaced"
tap_is "$(sql -c "SELECT paperclip.environment_probe('$E_ROT')->'details'->>'hostKeyFingerprint'")" \
  "$(ssh-keygen -lf "$LAB/host2_ed25519.pub" | cut -d' ' -f2)" "the session now presents the new host key"
rekey "$LAB/host1_ed25519"

# ---------------------------------------------------------------- client key
E_BAD_KEY=00000000-0000-0000-0000-000000004206
ssh_env $E_BAD_KEY bad-client-key '{}' "$BAD_KEY_SECRET"
tap_is "$(sql_error -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_BAD_KEY', '$RUN')")" \
  "28000: ssh authentication of user \"$SSH_LAB_USER\" on \"$WHERE\" failed" \
  "a client key sshd does not accept: authentication error (28000)"
tap_is "$(leases_of "$RUN")" 1 "authentication error: no new lease written"

# ---------------------------------------------------------------- closed port
CLOSED=$(ssh_lab_free_port)
E_CLOSED=00000000-0000-0000-0000-000000004207
ssh_env $E_CLOSED closed-port "{\"port\": $CLOSED}"
t0=$(now_ms)
err=$(sql_error -c "SET paperclip.ssh_connect_timeout = '30s'" \
                -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_CLOSED', '$RUN')")
t1=$(now_ms)
tap_is "$err" "08001: could not connect to ssh host \"127.0.0.1:$CLOSED\"" "a closed port: 08001"
# refused at once: well before the 30 s connect timeout (10 s leaves a loaded machine room)
[ $((t1 - t0)) -lt 10000 ]
tap_ok $? "a closed port fails at once, not after paperclip.ssh_connect_timeout ($((t1 - t0)) ms)"

# ------------------------------------------------------ paperclip API candidates
E_API=00000000-0000-0000-0000-000000004208
ssh_env $E_API api
set_candidates "[\"http://127.0.0.1:$CLOSED\", \"$HEALTH_URL/not-the-api\"]" || exit 1
RUN_C=$(new_run)
tap_is "$(sql_error -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_API', '$RUN_C')")" \
  "08001: no paperclip API candidate is reachable from ssh host \"$WHERE\"" \
  "candidates configured, none healthy: 08001"
tap_is "$(leases_of "$RUN_C")" 0 "candidates configured, none healthy: nothing written"
set_candidates "[\"http://127.0.0.1:$CLOSED\", \"$HEALTH_URL\"]" || exit 1
tap_is "$(sql -c "SELECT metadata->>'paperclipApiUrl' FROM paperclip.acquire_run_lease('$C1', '$E_API', '$RUN_C')")" \
  "$HEALTH_URL" "the first healthy candidate is chosen"
for bad in 'not json' '{"url": "http://x"}' '[1, 2]'; do
  set_candidates "$bad" || exit 1
  tap_is "$(sql_error -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_API', '$(new_run)')")" \
    "22023: invalid paperclip.runtime_api_candidates: must be a JSON array of URLs" \
    "candidates $bad: 22023 before any connection"
done
set_candidates '' || exit 1
RUN_D=$(new_run)
tap_is "$(sql -c "SELECT jsonb_typeof(metadata->'paperclipApiUrl') FROM paperclip.acquire_run_lease('$C1', '$E_API', '$RUN_D')")" \
  null "no candidates configured: paperclipApiUrl is null"

# ------------------------------------------------- shell metacharacters in the path
rm -f /tmp/pwned
EVIL="$LAB/ws/x; \$(touch /tmp/pwned) '\""
E_EVIL=00000000-0000-0000-0000-000000004209
sql -v id=$E_EVIL -v p="$EVIL" <<SQL
INSERT INTO paperclip.environments (id, company_id, name, driver, config)
SELECT :'id', company_id, 'evil path', 'ssh', config || jsonb_build_object('remoteWorkspacePath', :'p')
  FROM paperclip.environments WHERE id = '$E_API';
SQL
RUN_E=$(new_run)
cwd=$(sql -c "SELECT metadata->>'remoteCwd' FROM paperclip.acquire_run_lease('$C1', '$E_EVIL', '$RUN_E')")
tap_is "$cwd" "$EVIL" "a path with shell metacharacters is the workspace, literally"
[ -d "$EVIL" ]
tap_ok $? "the directory with that literal name exists on the host"
[ ! -e /tmp/pwned ]
tap_ok $? "no command ran (/tmp/pwned does not exist)"

# a workspace under a plain file, and one the login user may not create
touch "$LAB/ws/a-file"
E_FILE=00000000-0000-0000-0000-000000004211
ssh_env $E_FILE under-a-file "{\"remoteWorkspacePath\": \"$LAB/ws/a-file/work\"}"
tap_is "$(sql_error -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_FILE', '$RUN')")" \
  "58030: remote workspace path \"$LAB/ws/a-file\" on \"$WHERE\" is not a directory" \
  "a workspace path through a plain file: 58030 naming the component"
E_PROC=00000000-0000-0000-0000-000000004212
ssh_env $E_PROC under-proc '{"remoteWorkspacePath": "/proc/pcr-no-such-dir/work"}'
tap_like "$(sql_error -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_PROC', '$RUN')")" \
  "^58030: could not create remote workspace path \"/proc/pcr-no-such-dir\" on \"$WHERE\"$" \
  "a workspace the server cannot create: 58030 naming the component"

# --------------------------------------------------------------------- probe
probe() {
  sql -F '|' -c "SELECT p->>'ok', p->>'driver', p->>'summary', coalesce(p->'details'->>'sqlstate', '')
                   FROM paperclip.environment_probe('$1') p"
}
IFS='|' read -r ok driver summary state <<<"$(probe $E_API)"
tap_is "$ok|$driver|$state" "true|ssh|" "probe, good ssh environment: ok"
tap_like "$summary" "^connected to $SSH_LAB_USER@127.0.0.1:$SSH_LAB_PORT; workspace .* is ready$" \
  "probe, good ssh environment: the summary names the host and the workspace"
IFS='|' read -r ok driver summary state <<<"$(probe $E_WRONG_HK)"
tap_is "$ok|$driver|$state" "false|ssh|08001" "probe, wrong host key: ok is false, 08001 in the details"
tap_is "$summary" "host key of \"$WHERE\" does not match knownHosts" "probe, wrong host key: the summary says why"
IFS='|' read -r ok driver summary state <<<"$(probe $E_BAD_KEY)"
tap_is "$ok|$state" "false|28000" "probe, refused client key: ok is false, 28000 in the details"
E_MISSING=00000000-0000-0000-0000-000000004210
ssh_env $E_MISSING not-yet-created
tap_is "$(sql -c "SELECT p->>'ok' || '|' || (p->'details'->>'workspaceExists') FROM paperclip.environment_probe('$E_MISSING') p")" \
  "true|false" "probe: a workspace not created yet is reported, not created"
[ ! -e "$LAB/ws/not-yet-created" ]
tap_ok $? "probe: creates nothing"
