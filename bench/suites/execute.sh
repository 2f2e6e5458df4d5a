#!/usr/bin/env bash
# lease_execute (issue 10), ours against what a control plane does without it,
# in the same run; ratios of median latencies (lower is better) unless the
# label says otherwise.
#   ssh: a warm lease_execute(..., 'true') on an ssh lease
#        vs `ssh -o BatchMode=yes host true` per call (target <= 0.10)
#        vs OpenSSH with a ControlMaster, `ssh -S sock host true` (target <= 0.5)
#   output: 16 MiB of stdout through lease_execute (local lease, and ssh)
#        vs `cat` of the same bytes in a shell (local), and over `ssh` (ssh),
#        each read to the end by another process
#   bwrap: lease_execute(..., 'true') through pgbench vs the same bwrap command
#        line started from a shell per call (target <= 1.3), when the bwrap
#        provider is loaded
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/fixtures/ssh_lab.sh
. bench/lib.sh
N=${BENCH_EXEC_CALLS:-60}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/pcr-bench-exec.XXXXXX)}
chmod 755 "$WORK"
LAB=$WORK/execlab
C=00000000-0000-0000-0000-00000000e0c1
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# median ms of N runs of a shell command line
time_cmd() {
  local i t0 t1
  for i in $(seq 1 "$N"); do
    t0=$(date +%s%N); eval "$1" >/dev/null 2>&1; t1=$(date +%s%N)
    echo "scale=3; ($t1 - $t0) / 1000000" | bc
  done | median
}
# median ms of N runs of one SQL statement in one session (psql's timing)
time_sql() {
  { echo "\\timing on"; for _ in $(seq 0 "$N"); do echo "$1"; done; } |
    psql -XAtq -v ON_ERROR_STOP=1 -o /dev/null 2>&1 | awk '/^Time: / {if (n++) print $2}' | median
}

ROOT=$WORK/local
mkdir -p "$ROOT"
[ "$(id -u)" -eq 0 ] && chown postgres: "$ROOT"
chmod 700 "$ROOT"
CLEAN=(psql -XAtq -c "ALTER SYSTEM RESET paperclip.local_workspace_root" -c "ALTER SYSTEM RESET paperclip.execute_max_output" -c "SELECT pg_reload_conf()")
trap '"${CLEAN[@]}" >/dev/null 2>&1; [ -n "${CM:-}" ] && ssh -S "$LAB/cm.sock" -O exit x >/dev/null 2>&1; ssh_lab_stop' EXIT
psql -XAtq -v r="$ROOT" <<'SQL' >/dev/null
ALTER SYSTEM SET paperclip.local_workspace_root = :'r';
SELECT pg_reload_conf();
SQL
sleep 0.5
psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO paperclip.companies (id, name) VALUES ('$C', 'bench exec');
INSERT INTO paperclip.agents (id, company_id, name) VALUES ('00000000-0000-0000-0000-00000000e0a1', '$C', 'bench');
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status) VALUES
  ('00000000-0000-0000-0000-00000000e0f1', '$C', '00000000-0000-0000-0000-00000000e0a1', 'running');
INSERT INTO paperclip.environments (id, company_id, name, driver) VALUES
  ('00000000-0000-0000-0000-00000000e0e1', '$C', 'bench local', 'local');
SQL
RUN=00000000-0000-0000-0000-00000000e0f1
LOCAL=$(psql -XAtq -c "SELECT id FROM paperclip.acquire_run_lease('$C', '00000000-0000-0000-0000-00000000e0e1', '$RUN')")

# ------------------------------------------------------------------ output: 16 MiB
BIG=$WORK/big16
head -c 12582912 /dev/urandom | base64 -w 100 >"$BIG.b64"   # 16 MiB of text and more
head -c 16777216 "$BIG.b64" >"$BIG"
rm -f "$BIG.b64"
chmod 644 "$BIG"
Q16="SELECT length(stdout) FROM paperclip.lease_execute('$LOCAL', 'cat', ARRAY['$BIG'], max_output_bytes => 16777216)"
[ "$(psql -XAtq -c "$Q16")" -eq 16777216 ] || { echo "16 MiB through lease_execute came back short" >&2; exit 1; }
N_SAVED=$N; N=${BENCH_EXEC_BIG_CALLS:-15}
# ours twice: the output consumed in the server (length), and delivered to a client
# (psql | wc -c); psql's own cost for 16 MiB of text is shown for scale
base=$(time_cmd "sh -c 'cat $BIG' | wc -c")
ours_srv=$(time_cmd "psql -XAtq -c \"$Q16\"")
ours=$(time_cmd "psql -XAtq -c \"SELECT stdout FROM paperclip.lease_execute('$LOCAL', 'cat', ARRAY['$BIG'], max_output_bytes => 16777216)\" | wc -c")
psql16=$(time_cmd "psql -XAtq -c \"SELECT repeat('x', 16777216)\" | wc -c")
base2=$(time_cmd "sh -c 'cat $BIG' | wc -c")
base=$(echo "($base + $base2) / 2" | bc -l)
printf '16 MiB stdout, median over %d: cat in a shell %.1f ms | lease_execute on a local lease, in the server %.1f ms, to psql %.1f ms | (psql receiving 16 MiB of repeat() %.1f ms)\n' \
  "$N" "$base" "$ours_srv" "$ours" "$psql16"
printf 'RATIO 16 MiB stdout, local lease_execute (consumed in the server)/cat in a shell (lower is better): %.2f\n' "$(echo "$ours_srv / $base" | bc -l)"
printf 'RATIO 16 MiB stdout, local lease_execute (to psql)/cat in a shell (lower is better): %.2f\n' "$(echo "$ours / $base" | bc -l)"
N=$N_SAVED

# ------------------------------------------------------------------ ssh
if ! ssh_lab_available; then
  echo "ssh part skipped: sshd is not installed"
else
  # as in the ssh suite: a login user whose shell is /bin/sh and who has no
  # home, so that neither path pays for this machine's rc files
  if [ "$(id -u)" -eq 0 ]; then
    id pcr_bench_ssh >/dev/null 2>&1 ||
      useradd --system --no-create-home --home-dir /nonexistent --shell /bin/sh pcr_bench_ssh
    usermod -p '*' pcr_bench_ssh
    export SSH_LAB_LOGIN=pcr_bench_ssh
  fi
  ssh_lab_start "$LAB"
  mkdir -p "$LAB/ws"
  chown "$SSH_LAB_USER" "$LAB/ws"
  if [ -z "$(psql -XAtq -c "SHOW paperclip.master_key_file")" ]; then
    scripts/pcr-keygen "$LAB/master.key" >/dev/null
    export PGOPTIONS="-c paperclip.master_key_file=$LAB/master.key"
  fi
  SID=$(psql -XAtq -v key="$(cat "$SSH_LAB_KEY")" <<<"SELECT id FROM paperclip.secret_create('$C', 'bench exec key', :'key')")
  psql -XAtq -v ON_ERROR_STOP=1 -v kh="$SSH_LAB_KNOWN_HOSTS" >/dev/null <<SQL
INSERT INTO paperclip.environments (id, company_id, name, driver, config) VALUES
  ('00000000-0000-0000-0000-00000000e0e2', '$C', 'bench ssh', 'ssh',
   jsonb_build_object('host', '127.0.0.1', 'port', $SSH_LAB_PORT, 'username', '$SSH_LAB_USER',
                      'remoteWorkspacePath', '$LAB/ws/ours',
                      'privateKeySecretRef', jsonb_build_object('type', 'secret_ref', 'secretId', '$SID'),
                      'knownHosts', :'kh'));
SQL
  SSHL=$(psql -XAtq -c "SELECT id FROM paperclip.acquire_run_lease('$C', '00000000-0000-0000-0000-00000000e0e2', '$RUN')")
  SSHO="-o BatchMode=yes -o UserKnownHostsFile=$LAB/known_hosts -o StrictHostKeyChecking=yes -o LogLevel=ERROR -i $SSH_LAB_KEY -p $SSH_LAB_PORT"
  ssh $SSHO "$SSH_LAB_USER@127.0.0.1" true   # warm the page cache
  base=$(time_cmd "ssh $SSHO $SSH_LAB_USER@127.0.0.1 true")
  ours=$(time_sql "SELECT 1 FROM paperclip.lease_execute('$SSHL', 'true');")
  ssh $SSHO -o ControlMaster=yes -o ControlPath="$LAB/cm.sock" -o ControlPersist=600 -fN "$SSH_LAB_USER@127.0.0.1"
  CM=1
  cm=$(time_cmd "ssh $SSHO -o ControlPath=$LAB/cm.sock $SSH_LAB_USER@127.0.0.1 true")
  base2=$(time_cmd "ssh $SSHO $SSH_LAB_USER@127.0.0.1 true")
  ours2=$(time_sql "SELECT 1 FROM paperclip.lease_execute('$SSHL', 'true');")
  cm2=$(time_cmd "ssh $SSHO -o ControlPath=$LAB/cm.sock $SSH_LAB_USER@127.0.0.1 true")
  base=$(echo "($base + $base2) / 2" | bc -l); ours=$(echo "($ours + $ours2) / 2" | bc -l); cm=$(echo "($cm + $cm2) / 2" | bc -l)
  printf 'ssh true, median over %d: ssh -o BatchMode=yes %.2f ms | ssh with a ControlMaster %.2f ms | lease_execute, warm pool %.2f ms\n' \
    "$N" "$base" "$cm" "$ours"
  printf 'RATIO ssh lease_execute true, warm, ours/ssh BatchMode per call (lower is better, target <= 0.10): %.3f\n' \
    "$(echo "$ours / $base" | bc -l)"
  printf 'RATIO ssh lease_execute true, warm, ours/ssh ControlMaster (lower is better, target <= 0.5): %.3f\n' \
    "$(echo "$ours / $cm" | bc -l)"

  N_SAVED=$N; N=${BENCH_EXEC_BIG_CALLS:-15}
  base=$(time_cmd "ssh $SSHO -o ControlPath=$LAB/cm.sock $SSH_LAB_USER@127.0.0.1 cat $BIG | wc -c")
  ours=$(time_cmd "psql -XAtq -c \"SELECT stdout FROM paperclip.lease_execute('$SSHL', 'cat', ARRAY['$BIG'], max_output_bytes => 16777216)\" | wc -c")
  printf '16 MiB stdout over ssh, median over %d: ssh (ControlMaster) cat %.1f ms | lease_execute %.1f ms\n' "$N" "$base" "$ours"
  printf 'RATIO 16 MiB stdout, ssh lease_execute/ssh cat (lower is better): %.2f\n' "$(echo "$ours / $base" | bc -l)"
  N=$N_SAVED
fi

# ------------------------------------------------------------------ bwrap
if ! command -v bwrap >/dev/null 2>&1 || [[ $(psql -XAtq -c "SHOW shared_preload_libraries") != *paperclip_bwrap* ]]; then
  echo "bwrap part skipped: bubblewrap or the provider is not there"
else
  NB=${BENCH_EXEC_BWRAP_CALLS:-300}
  psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO paperclip.environments (id, company_id, name, driver, config) VALUES
  ('00000000-0000-0000-0000-00000000e0e3', '$C', 'bench bwrap', 'sandbox', '{"provider": "bwrap"}');
SQL
  BL=$(psql -XAtq -c "SELECT id FROM paperclip.acquire_run_lease('$C', '00000000-0000-0000-0000-00000000e0e3', '$RUN')")
  echo "SELECT 1 FROM paperclip.lease_execute('$BL', 'true');" >"$WORK/bwrap_exec.sql"
  # the baseline: the mounts and namespaces the provider gives a host image, per call, from a shell
  WS=$WORK/bwrap_ws
  mkdir -p "$WS"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$WS"
  cat >"$WORK/bwrap_base.sh" <<'SH'
#!/bin/bash
set -e
ws=$1; n=$2
for i in $(seq 1 "$n"); do
  bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --hostname sandbox --clearenv \
    --setenv PATH /usr/bin:/bin --setenv HOME /workspace --ro-bind /usr /usr --symlink usr/bin /bin \
    --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin --dir /etc \
    --ro-bind-try /etc/ld.so.cache /etc/ld.so.cache --ro-bind-try /etc/ld.so.conf /etc/ld.so.conf \
    --ro-bind-try /etc/ld.so.conf.d /etc/ld.so.conf.d --ro-bind-try /etc/alternatives /etc/alternatives \
    --ro-bind-try /etc/nsswitch.conf /etc/nsswitch.conf --ro-bind-try /etc/localtime /etc/localtime \
    --proc /proc --dev /dev --tmpfs /tmp --bind "$ws" /workspace --remount-ro / --chdir /workspace -- true
done
SH
  chmod 755 "$WORK/bwrap_base.sh"
  as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  base_ms() {
    local t0 t1
    t0=$(date +%s%N); as_pg "$WORK/bwrap_base.sh" "$WS" "$NB"; t1=$(date +%s%N)
    echo "scale=4; ($t1 - $t0) / 1000000 / $NB" | bc
  }
  ours_ms() {
    pgbench -n -c 1 -t "$NB" -f "$WORK/bwrap_exec.sql" 2>&1 | awk '/^latency average/ {print $4}'
  }
  b1=$(base_ms); o1=$(ours_ms); b2=$(base_ms); o2=$(ours_ms)
  b=$(echo "($b1 + $b2) / 2" | bc -l); o=$(echo "($o1 + $o2) / 2" | bc -l)
  printf 'bwrap true, %d calls x 2 rounds: the bwrap command line from a shell %.2f ms | lease_execute through pgbench %.2f ms\n' \
    "$NB" "$b" "$o"
  printf 'RATIO bwrap lease_execute true latency, ours/bwrap from a shell (lower is better, target <= 1.3): %.2f\n' \
    "$(echo "$o / $b" | bc -l)"
fi
