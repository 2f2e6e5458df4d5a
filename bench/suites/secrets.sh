#!/usr/bin/env bash
# secret_resolve (issue 3), all in one run:
#  - against pgcrypto's pgp_sym_decrypt (default options: what a user would
#    otherwise pick) over the same 16 values, both looked up in a table;
#    target >= 5x;
#  - against a SELECT 1 round trip (the floor), resolving a literal ref;
#    target >= 0.7x: the crypto should cost next to nothing beside the query.
# 1 and 8 clients; A/B alternated by bench_compare (bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
C=00000000-0000-0000-0000-00000000b5c1
W=${BENCH_WORK:-$(mktemp -d)}

# a master key made by the explicit command, for this throw-away cluster only
rm -f "$W/secrets-bench.key"
scripts/pcr-keygen "$W/secrets-bench.key" >/dev/null
psql -XAtq -v ON_ERROR_STOP=1 -c "ALTER SYSTEM SET paperclip.master_key_file = '$W/secrets-bench.key'" \
  -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5

psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION IF NOT EXISTS pgcrypto;
INSERT INTO paperclip.companies (id, name) VALUES ('$C', 'secrets bench');
-- 16 values of 32 to 512 bytes (tokens up to an SSH private key)
CREATE TABLE bench_values AS
  SELECT i, left(repeat(md5('bench value ' || i), 16), 32 * i) AS value FROM generate_series(1, 16) AS i;
CREATE TABLE bench_secret_refs AS
  SELECT i, jsonb_build_object('type', 'secret_ref', 'secretId',
                               (paperclip.secret_create('$C', 'bench-' || i, value)).id, 'version', 'latest') AS ref
    FROM bench_values;
CREATE UNIQUE INDEX ON bench_secret_refs (i);
CREATE TABLE bench_pgp AS
  SELECT i, pgp_sym_encrypt(value, 'bench-passphrase-0123456789') AS data FROM bench_values;
CREATE UNIQUE INDEX ON bench_pgp (i);
SQL
# both paths must return the same values
diff <(psql -XAtq -c "SELECT paperclip.secret_resolve('$C', ref) FROM bench_secret_refs ORDER BY i") \
     <(psql -XAtq -c "SELECT pgp_sym_decrypt(data, 'bench-passphrase-0123456789') FROM bench_pgp ORDER BY i") >/dev/null ||
  { echo "secret_resolve and pgp_sym_decrypt disagree" >&2; exit 1; }
ref=$(psql -XAtq -c "SELECT ref FROM bench_secret_refs WHERE i = 8")
echo "SELECT paperclip.secret_resolve('$C', '$ref');" >"$W/secrets_resolve_literal.sql"

. bench/lib.sh
for clients in 1 8; do
  bench_compare "secret_resolve vs pgp_sym_decrypt" bench/secrets/resolve_table.sql bench/secrets/pgcrypto_table.sql "$clients" 3
  bench_compare "secret_resolve vs SELECT 1" "$W/secrets_resolve_literal.sql" bench/secrets/select1.sql "$clients" 3
done
