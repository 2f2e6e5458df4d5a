#!/usr/bin/env bash
# ssh lease acquire + release latency (issue 5), median over N acquires, against
# the command-line path the control plane uses today (bench/ssh/cli_baseline.py:
# one `ssh -o BatchMode=yes` running mkdir -p/cd/pwd and curl <candidate>/api/health),
# on the same throw-away sshd and /api/health server, in the same run.
#   warm:  every acquire on the same host, user and key (the worker's session is reused)
#   fresh: every acquire with another client key, so every acquire opens a new session
# Ratios are ours/baseline of the median latency: lower is better.
# Targets: warm <= 0.10, fresh <= 0.75.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/fixtures/ssh_lab.sh
N=${BENCH_SSH_ACQUIRES:-60}

if ! ssh_lab_available; then
  echo "ssh suite skipped: sshd is not installed"
  exit 0
fi
WORK=${BENCH_WORK:-$(mktemp -d /tmp/pcr-bench-ssh.XXXXXX)}
LAB=$WORK/sshlab
trap 'psql -XAtq -c "ALTER SYSTEM RESET paperclip.runtime_api_candidates" >/dev/null 2>&1;
      psql -XAtq -c "SELECT pg_reload_conf()" >/dev/null 2>&1; ssh_lab_stop' EXIT
# The CLI runs its commands through the login shell, which reads the user's rc
# files (here root's .bashrc starts pyenv, hundreds of ms).  So that the baseline
# is not inflated by this machine, both paths log in, as root, as a throw-away
# system user whose shell is /bin/sh and who has no home: the CLI's best case.
if [ "$(id -u)" -eq 0 ]; then
  id pcr_bench_ssh >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /bin/sh pcr_bench_ssh
  usermod -p '*' pcr_bench_ssh   # no password, but not locked (sshd refuses locked accounts)
  export SSH_LAB_LOGIN=pcr_bench_ssh
fi
ssh_lab_start "$LAB"
mkdir -p "$LAB/ws"
chown "$SSH_LAB_USER" "$LAB/ws"
health_start "$LAB"

# one client key per fresh acquire, all accepted by sshd
for i in $(seq 1 "$N"); do
  ssh-keygen -q -t ed25519 -N '' -C "bench-$i" -f "$LAB/k$i" </dev/null >/dev/null
  cat "$LAB/k$i.pub" >>"$LAB/authorized_keys"
done

# the secrets need a master key; this session-level setting needs no restart
if [ -z "$(psql -XAtq -c "SHOW paperclip.master_key_file")" ]; then
  scripts/pcr-keygen "$LAB/master.key" >/dev/null
  export PGOPTIONS="-c paperclip.master_key_file=$LAB/master.key"
fi
psql -XAtq -v cand="[\"$HEALTH_URL\"]" <<'SQL' >/dev/null
ALTER SYSTEM SET paperclip.runtime_api_candidates = :'cand';
SELECT pg_reload_conf();
SQL
sleep 0.5

# company, agent, one run, a warm environment and N fresh ones (key i each)
{
  cat <<SQL
INSERT INTO paperclip.companies (id, name) VALUES ('00000000-0000-0000-0000-00000000b6c1', 'bench ssh');
INSERT INTO paperclip.agents (id, company_id, name) VALUES ('00000000-0000-0000-0000-00000000b6a1', '00000000-0000-0000-0000-00000000b6c1', 'bench');
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status) VALUES
  ('00000000-0000-0000-0000-00000000b6f1', '00000000-0000-0000-0000-00000000b6c1', '00000000-0000-0000-0000-00000000b6a1', 'running');
CREATE TEMP TABLE k (i int, id uuid);
SQL
  for i in 0 $(seq 1 "$N"); do
    f=$LAB/client_ed25519; [ "$i" -gt 0 ] && f=$LAB/k$i
    echo "\\set key \`cat $f\`"
    echo "INSERT INTO k SELECT $i, id FROM paperclip.secret_create('00000000-0000-0000-0000-00000000b6c1', 'bench key $i', :'key');"
  done
  cat <<SQL
INSERT INTO paperclip.environments (id, company_id, name, driver, config)
SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(46080 + i), 12, '0'))::uuid, '00000000-0000-0000-0000-00000000b6c1',
       'bench ssh ' || i, 'ssh',
       jsonb_build_object('host', '127.0.0.1', 'port', $SSH_LAB_PORT, 'username', '$SSH_LAB_USER',
                          'remoteWorkspacePath', '$LAB/ws/ours-' || i,
                          'privateKeySecretRef', jsonb_build_object('type', 'secret_ref', 'secretId', k.id),
                          'knownHosts', '$SSH_LAB_KNOWN_HOSTS')
  FROM k;
SQL
} | psql -XAtq -v ON_ERROR_STOP=1 >/dev/null

env_id() { printf '00000000-0000-0000-0000-%012x' $((46080 + $1)); }
RUN=00000000-0000-0000-0000-00000000b6f1
C=00000000-0000-0000-0000-00000000b6c1

# ours: N acquire+release pairs in one session, timed by psql (client side)
ours() {   # ours <warm|fresh>
  {
    echo "\\timing on"
    for i in $(seq 0 "$N"); do
      e=$(env_id 0); [ "$1" == fresh ] && [ "$i" -gt 0 ] && e=$(env_id "$i")
      echo "SELECT 1 FROM paperclip.acquire_run_lease('$C', '$e', '$RUN');"
      echo "SELECT 1 FROM paperclip.release_run_leases('$RUN');"
    done
  } | psql -XAtq -v ON_ERROR_STOP=1 | awk '/^Time: / {t[n++] = $2} END {for (i = 2; i < n; i += 2) print t[i] + t[i + 1]}'
  # the first pair (i = 0) warms the pool and is left out
}
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

python3 bench/ssh/cli_baseline.py 3 "$LAB/client_ed25519" "$SSH_LAB_PORT" "$SSH_LAB_USER" \
  "$LAB/known_hosts" "$LAB/ws" "$HEALTH_URL" >/dev/null   # warm the page cache
base=$(python3 bench/ssh/cli_baseline.py "$N" "$LAB/client_ed25519" "$SSH_LAB_PORT" "$SSH_LAB_USER" \
  "$LAB/known_hosts" "$LAB/ws" "$HEALTH_URL" | median)
warm=$(ours warm | median)
fresh=$(ours fresh | median)
base2=$(python3 bench/ssh/cli_baseline.py "$N" "$LAB/client_ed25519" "$SSH_LAB_PORT" "$SSH_LAB_USER" \
  "$LAB/known_hosts" "$LAB/ws" "$HEALTH_URL" | median)
base=$(echo "($base + $base2) / 2" | bc -l)

printf 'ssh acquire+release median over %d: ssh CLI %.2f ms | ours, warm pool %.2f ms | ours, fresh connection %.2f ms\n' \
  "$N" "$base" "$warm" "$fresh"
printf 'RATIO ssh acquire+release latency, warm pool, ours/CLI (lower is better, target <= 0.10): %.3f\n' \
  "$(echo "$warm / $base" | bc -l)"
printf 'RATIO ssh acquire+release latency, fresh connection, ours/CLI (lower is better, target <= 0.75): %.3f\n' \
  "$(echo "$fresh / $base" | bc -l)"
