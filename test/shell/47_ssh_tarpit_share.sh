#!/usr/bin/env bash
# 47_ssh_tarpit_share — one tenant cannot starve the others of driver workers.
# Company A fires as many concurrent ssh acquires as there are workers at a
# tarpit (a listener that accepts and never speaks, so every handshake hangs
# until the connect timeout, here raised to a minute); company B's acquire
# against the throw-away sshd still succeeds promptly, because A may keep
# at most paperclip.driver_workers_per_company (default: all but one) busy.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh
. test/fixtures/ssh_lab.sh
. test/fixtures/ssh_env.sh

if ! ssh_lab_available; then
  tap_skip_all "sshd is not installed"
  exit 0
fi
tap_plan 6
LAB=$PCR_WORK/ssh47
BG=()
cleanup() {
  local pid
  for pid in "${BG[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  ssh_db_drop
  ssh_lab_stop
}
trap cleanup EXIT
ssh_lab_start "$LAB" || exit 1
hung_listener_start "$LAB" || exit 1
ssh_db_create pcr_ssh47 || exit 1
C2=00000000-0000-0000-0000-0000000000c2

E_TARPIT=00000000-0000-0000-0000-000000004601
ssh_env $E_TARPIT tarpit "{\"port\": $HUNG_PORT}"
KEY2=$(sql -v key="$(cat "$SSH_LAB_KEY")" <<'SQL'
SELECT id FROM paperclip.secret_create('00000000-0000-0000-0000-0000000000c2', 'lab key of c2', :'key');
SQL
)
E_B=00000000-0000-0000-0000-000000004602
sql -v id="$E_B" -v port="$SSH_LAB_PORT" -v user="$SSH_LAB_USER" -v kh="$SSH_LAB_KNOWN_HOSTS" \
    -v ws="$LAB/ws/b" -v sid="$KEY2" <<'SQL'
INSERT INTO paperclip.environments (id, company_id, name, driver, config)
VALUES (:'id', '00000000-0000-0000-0000-0000000000c2', 'neighbour', 'ssh',
        jsonb_build_object('host', '127.0.0.1', 'port', :port, 'username', :'user',
                           'remoteWorkspacePath', :'ws', 'knownHosts', :'kh',
                           'privateKeySecretRef', jsonb_build_object('type', 'secret_ref', 'secretId', :'sid')));
SQL
RUN_B=$(sql -c "INSERT INTO paperclip.heartbeat_runs (company_id, agent_id)
                VALUES ('$C2', '00000000-0000-0000-0000-0000000000a2') RETURNING id")
NWORKERS=$(sql -c "SELECT count(*) FROM paperclip.driver_workers_status()")
busy() {
  sql -c "SELECT count(*) FROM paperclip.driver_workers_status() WHERE company_id = '$C1' AND state = 'running'"
}

# A: one hung acquire per worker, a minute of connect timeout each
for i in $(seq 1 "$NWORKERS"); do
  R=$(new_run)
  ( PGAPPNAME=pcr_tarpit sql_error -c "SET paperclip.ssh_connect_timeout = '60s'" \
      -c "SET paperclip.acquire_timeout = '60s'" \
      -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_TARPIT', '$R')" >"$LAB/a$i.out" ) &
  BG+=($!)
done
end=$((SECONDS + $(wait_secs 30)))
while [ "$(busy)" -lt $((NWORKERS - 1)) ] && [ "$SECONDS" -le "$end" ]; do sleep 0.1; done
tap_is "$(busy)" $((NWORKERS - 1)) "company A holds all but one of the $NWORKERS workers in the tarpit"

t0=$(now_ms)
st=$(sql -c "SELECT status FROM paperclip.acquire_run_lease('$C2', '$E_B', '$RUN_B')")
t1=$(now_ms)
tap_is "$st" active "company B acquires its ssh lease while A's handshakes hang"
[ $((t1 - t0)) -lt 15000 ]
tap_ok $? "B's acquire is served promptly, not after A's connect timeout ($((t1 - t0)) ms)"
tap_is "$(sql -c "SELECT status FROM paperclip.environment_probe('$E_B') p, LATERAL (SELECT p->>'ok' AS status) s")" true \
  "company B's probe works too"

# one more acquire of A waits for A's share only, never for B's worker
tap_is "$(sql_error -c "SET paperclip.acquire_timeout = '1s'" \
                    -c "SELECT * FROM paperclip.acquire_run_lease('$C1', '$E_TARPIT', '$(new_run)')")" \
  "53400: the share of paperclip driver workers of company $C1 is in use" \
  "A's acquires beyond its share get 53400: its company's share is in use"
sql -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'pcr_tarpit'" >/dev/null
for pid in "${BG[@]}"; do wait "$pid" 2>/dev/null; done
BG=()
tap_is "$(sql -c "SELECT count(*) FROM paperclip.environment_leases WHERE environment_id = '$E_TARPIT'")" 0 \
  "the tarpit left no lease"
