#!/usr/bin/env bash
# One tenant's locks never stop another tenant, and fences tell time:
# - a reusable sandbox of company C2 whose id was minted to collide with C1's
#   (under the old folded advisory-lock key) does not block C1's acquire;
# - an agent's or an admin's LOCK TABLE is refused, and while they try,
#   company C2 acquires as usual;
# - a transaction that started earlier but acquires later gets the larger
#   fence and the later acquired_at.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/lib/tap.sh"
. "$ROOT/test/lib/seeded_db.sh"

DB=pcr_tenant_locks
OUT=$PCR_WORK/tenant_locks
mkdir -p "$OUT"
seeded_db "$DB" || exit 1
C2=00000000-0000-0000-0000-0000000000c2
R9=00000000-0000-0000-0000-0000000000f9
E9=00000000-0000-0000-0000-0000000000e9

q() { psql -XAtq -v ON_ERROR_STOP=1 "$@"; }
# wait (up to 30 s) until a session of this database runs a statement containing $1
wait_for_statement() {
  local deadline=$((SECONDS + 30))
  while [ "$SECONDS" -le "$deadline" ]; do
    [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                  AND state = 'active' AND query LIKE '%$1%' AND pid <> pg_backend_pid()")" -ge 1 ] && return 0
    sleep 0.1
  done
  return 1
}
stop_statement() {
  q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = current_database()
          AND query LIKE '%$1%' AND pid <> pg_backend_pid()" >/dev/null
}

# 1. a colliding environment id of another company does not block.  The old key
#    folded the uuid to 64 bits: 00000000-e300-0000-0000-000000000000 folded like C1's
#    reusable sandbox ...00e3.
MINTED=00000000-e300-0000-0000-000000000000
q -c "INSERT INTO paperclip.environments (id, company_id, name, driver, config)
      VALUES ('$MINTED', '$C2', 'minted', 'sandbox', '{\"reuseLease\": true}')" >/dev/null
q -c "BEGIN" -c "SELECT count(*) FROM paperclip.acquire_run_lease('$C2', '$MINTED', '$R9')" \
  -c "SELECT pg_sleep(60) /* holds the minted sandbox */" -c "COMMIT" >/dev/null 2>&1 &
holder=$!
wait_for_statement "holds the minted sandbox"
tap_ok $? "company C2 holds its reusable sandbox in an open transaction"
agent_role
got=$(q -c "$AS_AGENT SET statement_timeout = '20s';" \
        -c "SELECT 'won' FROM paperclip.acquire_run_lease('$C1', '$E_REUSE', '$R1')" 2>&1)
tap_is "$got" "won" "company C1 acquires its reusable sandbox meanwhile: the ids do not collide"
tap_is "$(q -c "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                 WHERE l.locktype = 'advisory' AND a.datname = current_database()")" 0 \
  "no advisory lock (readable by anyone in pg_locks) is taken for it"
stop_statement "holds the minted sandbox"
wait $holder
q -c "SELECT count(*) FROM paperclip.release_run_leases('$R1')" >/dev/null

# 2. LOCK TABLE by a tenant is refused; the other company goes on meanwhile
c2_acquires() {
  q -c "SET ROLE pcr_c2_agent" -c "SET paperclip.company_id = '$C2'" -c "SET statement_timeout = '20s'" \
    -c "SELECT status FROM paperclip.acquire_run_lease('$C2', '$E9', '$R9')" \
    -c "SELECT count(*) FROM paperclip.release_run_leases('$R9')" 2>&1
}
q -c "BEGIN" -c "SET ROLE pcr_c1_agent" -c "SET paperclip.company_id = '$C1'" \
  -c "LOCK TABLE paperclip.heartbeat_runs IN ACCESS EXCLUSIVE MODE" \
  -c "SELECT pg_sleep(60) /* agent lock */" -c "COMMIT" >"$OUT/agent_lock.out" 2>&1 &
agent=$!
q -c "BEGIN" -c "SET ROLE pcr_c1_admin" -c "SET paperclip.company_id = '$C1'" \
  -c "LOCK TABLE paperclip.environments IN ACCESS EXCLUSIVE MODE" \
  -c "SELECT pg_sleep(60) /* admin lock */" -c "COMMIT" >"$OUT/admin_lock.out" 2>&1 &
admin=$!
# each attempt either failed at once or holds its lock in pg_sleep
for pid_what in "$agent:agent lock" "$admin:admin lock"; do
  deadline=$((SECONDS + 30))
  while kill -0 "${pid_what%%:*}" 2>/dev/null && [ "$SECONDS" -le "$deadline" ]; do
    wait_for_statement "${pid_what#*:}" >/dev/null 2>&1 && break
  done
done
tap_is "$(c2_acquires)" "active
1" "while C1's agent and admin try to lock shared tables, company C2 acquires and releases"
stop_statement "agent lock"
stop_statement "admin lock"
wait $agent $admin
tap_ok "$(grep -q 'permission denied for table heartbeat_runs' "$OUT/agent_lock.out"; echo $?)" \
  "an agent's LOCK TABLE paperclip.heartbeat_runs is refused"
tap_ok "$(grep -q 'permission denied for table environments' "$OUT/admin_lock.out"; echo $?)" \
  "an admin's LOCK TABLE paperclip.environments is refused"
# what they can still hold: their own rows, share locks
q -c "BEGIN" -c "SET ROLE pcr_c1_agent" -c "SET paperclip.company_id = '$C1'" \
  -c "LOCK TABLE paperclip.heartbeat_runs, paperclip.environments, paperclip.environment_leases IN ACCESS SHARE MODE" \
  -c "SELECT id FROM paperclip.heartbeat_runs FOR UPDATE" \
  -c "SELECT count(*) FROM paperclip.acquire_run_lease('$C1', '$E_REUSE', '$R2')" \
  -c "SELECT pg_sleep(60) /* what an agent can hold */" -c "COMMIT" >/dev/null 2>&1 &
holder=$!
wait_for_statement "what an agent can hold"
tap_ok $? "an agent holds share locks, its runs' rows and a lease in an open transaction"
tap_is "$(c2_acquires)" "active
1" "meanwhile company C2 acquires and releases"
stop_statement "what an agent can hold"
wait $holder

# 3. acquired_at follows the fence: a transaction that began first but acquires
#    second gets the larger fence and the later acquired_at
q <<SQL >"$OUT/early.out" 2>&1 &
BEGIN;
SELECT now() IS NOT NULL;   -- the transaction has begun
DO \$\$ BEGIN   /* waits for the later transaction */
  WHILE NOT EXISTS (SELECT 1 FROM paperclip.environment_leases
                     WHERE heartbeat_run_id = '$R3' AND status = 'active') LOOP
    PERFORM pg_sleep(0.05);
  END LOOP;
END \$\$;
SELECT count(*) FROM paperclip.acquire_run_lease('$C1', '$E_FAKE', '$R2');
COMMIT;
SQL
early=$!
wait_for_statement "waits for the later transaction"
q -c "SELECT count(*) FROM paperclip.acquire_run_lease('$C1', '$E_FAKE', '$R3')" >/dev/null
wait $early
tap_is "$(q -c "SELECT (e.fence > l.fence)::text || ',' || (e.acquired_at > l.acquired_at)::text
                  FROM paperclip.environment_leases e, paperclip.environment_leases l
                 WHERE e.heartbeat_run_id = '$R2' AND e.environment_id = '$E_FAKE'
                   AND l.heartbeat_run_id = '$R3' AND l.environment_id = '$E_FAKE'")" "true,true" \
  "the earlier transaction's later acquire has the larger fence and the later acquired_at"
tap_is "$(q -c "SELECT count(*) FROM paperclip.environment_leases a JOIN paperclip.environment_leases b
                  ON a.fence < b.fence AND a.acquired_at > b.acquired_at")" 0 \
  "no lease of this database has a larger fence with an earlier acquired_at"

psql -XAtq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE $DB WITH (FORCE)" >/dev/null
tap_done
