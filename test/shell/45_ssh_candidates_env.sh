#!/usr/bin/env bash
# 45_ssh_candidates_env — docs/drivers.md: with paperclip.runtime_api_candidates unset, the
# candidates come from the server's environment variable
# PAPERCLIP_RUNTIME_API_CANDIDATES_JSON; the setting, when set, wins — also when
# a session sets it for itself: it is superuser-set, and a role granted
# SET ON PARAMETER (PostgreSQL 15) may set it per session; others may not.
# Runs its own cluster (the variable is read from the server's environment).
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
. test/lib/tap.sh
. test/fixtures/ssh_lab.sh
. test/fixtures/ssh_env.sh

if ! ssh_lab_available; then
  tap_skip_all "sshd is not installed"
  exit 0
fi
tap_plan 6
DIR=$PCR_WORK/ssh45
LAB=$DIR/lab
mkdir -p "$DIR"
chmod 755 "$DIR"
trap 'ssh_lab_stop; pcr_cluster_stop "$DIR/data" immediate' EXIT
ssh_lab_start "$LAB" || exit 1
health_start "$LAB" || exit 1
scripts/pcr-keygen "$DIR/master.key" >/dev/null || exit 1
PORT=$(pcr_free_port)
pcr_cluster_init "$DIR/data" "$PORT" "paperclip.master_key_file = '$DIR/master.key'" || exit 1
PAPERCLIP_RUNTIME_API_CANDIDATES_JSON="[\"http://127.0.0.1:1\", \"$HEALTH_URL\"]" \
  pcr_cluster_start "$DIR/data" || exit 1
export PGPORT=$PORT
ssh_db_create pcr_ssh45 || exit 1

ENV=00000000-0000-0000-0000-000000004501
ssh_env $ENV from-env
tap_is "$(sql -c "SELECT metadata->>'paperclipApiUrl'
                    FROM paperclip.acquire_run_lease('$C1', '$ENV', '$(new_run)')")" "$HEALTH_URL" \
  "setting unset: the first healthy candidate of PAPERCLIP_RUNTIME_API_CANDIDATES_JSON"
set_candidates "[\"http://127.0.0.1:1\"]" || exit 1
tap_is "$(sql_error -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$ENV', '$(new_run)')")" \
  "08001: no paperclip API candidate is reachable from ssh host \"127.0.0.1:$SSH_LAB_PORT\"" \
  "the setting, when set, wins over the environment variable"
set_candidates '' || exit 1

# per session: a control-plane role granted SET on the parameter, and one without (both
# entitled to company c1)
# (the cluster is this test's own: the roles go with it)
sql -c "CREATE ROLE pcr_cp_granted LOGIN IN ROLE paperclip_agent" \
    -c "CREATE ROLE pcr_cp_plain LOGIN IN ROLE paperclip_agent" \
    -c "GRANT SET ON PARAMETER paperclip.runtime_api_candidates TO pcr_cp_granted" \
    -c "INSERT INTO paperclip.company_roles (company_id, role) VALUES ('$C1', 'pcr_cp_granted'), ('$C1', 'pcr_cp_plain')" \
    >/dev/null || exit 1
UNREACHABLE='["http://127.0.0.1:1"]'
tap_is "$(sql -U pcr_cp_granted -c "SET paperclip.runtime_api_candidates = '$UNREACHABLE'" \
              -c "SHOW paperclip.runtime_api_candidates")" "$UNREACHABLE" \
  "a role granted SET ON PARAMETER sets paperclip.runtime_api_candidates for its session"
tap_is "$(sql_error -U pcr_cp_granted -c "SET paperclip.runtime_api_candidates = '$UNREACHABLE'" \
                    -c "SET paperclip.company_id = '$C1'" \
                    -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$ENV', '$(new_run)')")" \
  "08001: no paperclip API candidate is reachable from ssh host \"127.0.0.1:$SSH_LAB_PORT\"" \
  "…and its acquires in that session probe the session's candidates, not the environment variable's"
tap_is "$(sql -U pcr_cp_granted -c "SET paperclip.company_id = '$C1'" \
              -c "SELECT metadata->>'paperclipApiUrl' FROM paperclip.acquire_run_lease('$C1', '$ENV', '$(new_run)')")" \
  "$HEALTH_URL" "another session of that role, without the SET, still gets the environment variable's candidate"
tap_is "$(sql_error -U pcr_cp_plain -c "SET paperclip.runtime_api_candidates = '$UNREACHABLE'")" \
  "42501: permission denied to set parameter \"paperclip.runtime_api_candidates\"" \
  "a role without the grant cannot set it (42501)"
