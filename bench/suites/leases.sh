#!/usr/bin/env bash
# Lease acquire + release on the local driver vs. the same row changes done
# with plain INSERT/UPDATE (issue 2). Runs A/B/A/B per client count and
# reports sum(ours tps) / sum(baseline tps), and the server CPU per
# transaction (baseline/ours), which other jobs on the machine disturb less.
# Target: >= 0.85.
set -euo pipefail
cd "$(dirname "$0")/../.."

psql -XAtq -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
INSERT INTO paperclip.companies (id, name) VALUES ('00000000-0000-0000-0000-00000000b0c1', 'bench');
INSERT INTO paperclip.agents (id, company_id, name) VALUES ('00000000-0000-0000-0000-00000000b0a1', '00000000-0000-0000-0000-00000000b0c1', 'bench');
INSERT INTO paperclip.environments (id, company_id, name, driver) VALUES ('00000000-0000-0000-0000-00000000b0e1', '00000000-0000-0000-0000-00000000b0c1', 'bench local', 'local');
INSERT INTO paperclip.heartbeat_runs (id, company_id, agent_id, status)
SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(i), 12, '0'))::uuid, '00000000-0000-0000-0000-00000000b0c1',
       '00000000-0000-0000-0000-00000000b0a1', 'running'
  FROM generate_series(1, 9000) i;
SQL

. test/lib/cluster.sh
. bench/lib.sh
for clients in 1 8; do
  bench_compare "leases acquire+release" bench/leases/ours.sql bench/leases/baseline.sql "$clients" 3
done
bench_instructions "leases acquire+release" bench/leases/ours.sql bench/leases/baseline.sql 600
