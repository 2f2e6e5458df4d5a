#!/usr/bin/env bash
# 41_ssh_contract — the ssh host contract of docs/drivers.md against a throw-away sshd:
# key from a secret, lease row and metadata, canonical workspace, paperclipApiUrl
# from the remote host's point of view, release, session reuse.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh
. test/fixtures/ssh_lab.sh
. test/fixtures/ssh_env.sh

if ! ssh_lab_available; then
  tap_skip_all "sshd is not installed"
  exit 0
fi
tap_plan 25
LAB=$PCR_WORK/ssh41
trap 'ssh_db_drop; ssh_lab_stop' EXIT
ssh_lab_start "$LAB" || exit 1
health_start "$LAB" || exit 1
ssh_db_create pcr_ssh41 || exit 1
set_candidates "[\"$HEALTH_URL\"]" || exit 1

# the workspace goes through a symlink: remoteCwd must be the canonical path
mkdir -p "$LAB/real"
ln -s "$LAB/real" "$LAB/link"
ENV=00000000-0000-0000-0000-000000004101
ssh_env $ENV contract "{\"remoteWorkspacePath\": \"$LAB/link/ws/run one\"}"
RUN=$(new_run)
CANON="$LAB/real/ws/run one"

row=$(sql -F '|' -c "SELECT status, provider, provider_lease_id, lease_policy,
                            metadata->>'driver', metadata->>'host', metadata->>'port',
                            metadata->>'username', metadata->>'remoteWorkspacePath',
                            metadata->>'remoteCwd', metadata->>'paperclipApiUrl'
                       FROM paperclip.acquire_run_lease('$C1', '$ENV', '$RUN')")
IFS='|' read -r st provider plid policy driver host port user rwp cwd api <<<"$row"
tap_is "$st" active "acquire: the lease is active"
tap_is "$provider" ssh "acquire: provider is ssh"
tap_is "$plid" "ssh://$SSH_LAB_USER@127.0.0.1:$SSH_LAB_PORT$CANON" \
  "acquire: provider_lease_id is ssh://<user>@<host>:<port><remoteCwd>"
tap_is "$policy" ephemeral "acquire: lease policy is ephemeral"
tap_is "$driver|$host|$port|$user" "ssh|127.0.0.1|$SSH_LAB_PORT|$SSH_LAB_USER" \
  "acquire: metadata has driver, host, port and username"
tap_is "$rwp" "$LAB/link/ws/run one" "acquire: metadata.remoteWorkspacePath is the configured path"
tap_is "$cwd" "$CANON" "acquire: metadata.remoteCwd is the canonical workspace path"
tap_is "$api" "$HEALTH_URL" "acquire: metadata.paperclipApiUrl is the health server seen from the host"
[ -d "$CANON" ]
tap_ok $? "acquire: the workspace was created on the remote host"
tap_is "$(sql -c "SELECT string_agg(k, ',' ORDER BY k) FROM paperclip.environment_leases l,
                         jsonb_object_keys(l.metadata) k WHERE l.heartbeat_run_id = '$RUN'")" \
  "driver,executionWorkspaceMode,host,paperclipApiUrl,port,remoteCwd,remoteWorkspacePath,username" \
  "acquire: metadata has exactly the documented keys (docs/drivers.md)"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.environment_leases l
                   WHERE l::text LIKE '%PRIVATE KEY%'")" 0 "acquire: no key material in any lease row"
tap_is "$(sql -c "SELECT (expires_at - acquired_at) = interval '6 hours' AND fence > 0
                    FROM paperclip.environment_leases WHERE heartbeat_run_id = '$RUN'")" t \
  "acquire: expires after the lease TTL and has a fence"

# idempotent: the same run gets the same lease back, no driver work
again=$(sql -c "SELECT id FROM paperclip.acquire_run_lease('$C1', '$ENV', '$RUN')")
tap_is "$again" "$(sql -c "SELECT id FROM paperclip.environment_leases WHERE heartbeat_run_id = '$RUN'")" \
  "acquire again: the active lease is returned as it is"

# the session stays open in the worker and is reused after a liveness check
reused=$(sql -c "SELECT paperclip.environment_probe('$ENV')->'details'->>'reusedSession'")
tap_is "$reused" true "the next request to the same host, user and key reuses the session"

tap_is "$(sql -c "SELECT sum(requests_served) > 0 AND sum(pooled_sessions) >= 1
                    FROM paperclip.driver_workers_status()")" t \
  "driver_workers_status shows requests served and the pooled session"

# a request larger than a slot's inline area (32 KiB: knownHosts of more than 32400 bytes, mostly
# comments, plus a key of 400 bytes or more)
# travels in a DSM segment of its own
E_BIG=00000000-0000-0000-0000-000000004102
BIG_KH="$(python3 -c "print('# padding padding padding padding padding padding padding\n' * 558, end='')")"$'\n'"$SSH_LAB_KNOWN_HOSTS"
ssh_env $E_BIG big-known-hosts "$(python3 -c 'import json,sys; print(json.dumps({"knownHosts": sys.argv[1]}))' "$BIG_KH")"
RUN_BIG=$(new_run)
tap_is "$(sql -c "SELECT length(config->>'knownHosts') > 32400 FROM paperclip.environments WHERE id = '$E_BIG'")|$(sql_error -c "SELECT status FROM paperclip.acquire_run_lease('$C1', '$E_BIG', '$RUN_BIG')")|$(sql -c "SELECT status FROM paperclip.environment_leases WHERE heartbeat_run_id = '$RUN_BIG'")" \
  "t|no error|active" "an ssh request larger than a slot (32 KB of knownHosts) goes through DSM and acquires"

# sshd restarted under an open session: the liveness check sees it and reconnects
ssh_lab_restart_sshd "$LAB" || exit 1
RUN5=$(new_run)
tap_is "$(sql -c "SELECT status FROM paperclip.acquire_run_lease('$C1', '$ENV', '$RUN5')")" active \
  "after sshd restarted, a dead pooled session is not used: the acquire reconnects"
tap_is "$(sql -c "SELECT paperclip.environment_probe('$ENV')->'details'->>'reusedSession'")" true \
  "the new session is pooled in turn"

rel=$(sql -F '|' -c "SELECT status, coalesce(cleanup_status, 'null'), released_at = now()
                       FROM paperclip.release_run_leases('$RUN')")
tap_is "$rel" "released|null|t" "release: the lease is released, without cleanup"
tap_is "$(sql -c "SELECT count(*) FROM paperclip.release_run_leases('$RUN')")" 0 \
  "release again: nothing is returned"

# a run finishing releases its ssh lease through the trigger
RUN2=$(new_run)
sql -c "SELECT 1 FROM paperclip.acquire_run_lease('$C1', '$ENV', '$RUN2')" >/dev/null
sql -c "UPDATE paperclip.heartbeat_runs SET status = 'succeeded' WHERE id = '$RUN2'"
tap_is "$(sql -c "SELECT status FROM paperclip.environment_leases WHERE heartbeat_run_id = '$RUN2'")" \
  released "a run that succeeds releases its ssh lease"

# the acquire and the lease commit together: a rolled-back acquire leaves nothing
RUN3=$(new_run)
sql -c "BEGIN" -c "SELECT 1 FROM paperclip.acquire_run_lease('$C1', '$ENV', '$RUN3')" -c "ROLLBACK" >/dev/null
tap_is "$(sql -c "SELECT count(*) FROM paperclip.environment_leases WHERE heartbeat_run_id = '$RUN3'")" 0 \
  "a rolled-back acquire leaves no lease"

# roles: an agent acquires ssh leases of its company; probes see only their company
RUN4=$(new_run)
tap_is "$(sql -c "SET ROLE pcr_c1_agent" -c "SET paperclip.company_id = '$C1'" \
              -c "SELECT provider FROM paperclip.acquire_run_lease('$C1', '$ENV', '$RUN4')")" ssh \
  "paperclip_agent acquires an ssh lease (the key is resolved for it, never shown)"
tap_is "$(sql -c "SET ROLE pcr_c1_admin" -c "SET paperclip.company_id = '$C1'" \
              -c "SELECT paperclip.environment_probe('$ENV')->>'ok'")" true \
  "paperclip_admin probes an ssh environment of its company"
tap_is "$(sql_error -c "SET ROLE pcr_c2_admin" \
                    -c "SET paperclip.company_id = '00000000-0000-0000-0000-0000000000c2'" \
                    -c "SELECT paperclip.environment_probe('$ENV')")" \
  "42704: environment $ENV does not exist" \
  "paperclip_admin of another company cannot probe it (42704)"
