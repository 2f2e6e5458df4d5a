# test/lib/seeded_db.sh — a fresh database with the extension and the seed of
# test/fixtures/seed.sql, for shell tests on the suite's cluster.
#
#   seeded_db NAME   (re)creates NAME, exports PGDATABASE=NAME and the seed's ids:
#     C1 (company), A1 (agent), E_LOCAL E_FAKE E_REUSE (environments), R1..R4 (runs)
#   agent_role       creates the login role pcr_test_agent (member of pcr_c1_agent, so a
#                    paperclip_agent entitled to C1), subject to row-level security, and
#                    sets AS_AGENT to the SQL that switches a session to it in company C1
seeded_db() {
  export PGDATABASE=$1
  psql -XAtq -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null || return 1
  psql -XAtq -v ON_ERROR_STOP=1 -c "CREATE EXTENSION paperclip_runtime" \
    -f "$(dirname "${BASH_SOURCE[0]}")/../fixtures/seed.sql" >/dev/null || return 1
  C1=00000000-0000-0000-0000-0000000000c1
  A1=00000000-0000-0000-0000-0000000000a1
  E_LOCAL=00000000-0000-0000-0000-0000000000e1
  E_FAKE=00000000-0000-0000-0000-0000000000e2
  E_REUSE=00000000-0000-0000-0000-0000000000e3
  R1=00000000-0000-0000-0000-0000000000f1
  R2=00000000-0000-0000-0000-0000000000f2
  R3=00000000-0000-0000-0000-0000000000f3
  R4=00000000-0000-0000-0000-0000000000f4
}

agent_role() {
  psql -XAtq -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pcr_test_agent') THEN
                   CREATE ROLE pcr_test_agent LOGIN; END IF; END \$\$" \
       -c "SET client_min_messages = warning" -c "GRANT pcr_c1_agent TO pcr_test_agent" >/dev/null
  AS_AGENT="SET ROLE pcr_test_agent; SET paperclip.company_id = '$C1';"
}
