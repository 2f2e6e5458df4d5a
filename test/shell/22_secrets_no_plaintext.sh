#!/usr/bin/env bash
# No plaintext at rest or in the log: after creating, rotating, resolving,
# revoking and re-encrypting secrets with distinctive values — and a few
# failing calls that carry values in their statement text — no file of the
# data directory (heap pages with their dead tuples, WAL, everything) and no
# line of the server log (log_min_messages = debug1) contains a value.
# A control value written to a plain table and into a failing statement is
# found by the same scans, so they can fail.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/cluster.sh
PSQL="$PCR_PGBIN/psql -X -q -A -t -v ON_ERROR_STOP=1"
W=$PCR_WORK/secrets_no_plaintext
DATA=$W/data
C1=00000000-0000-0000-0000-0000000000c1
. test/lib/tap.sh
ok() { tap_ok "$@"; }   # ok STATUS DESC
is() { tap_is "$@"; }   # is GOT WANT DESC

rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"
scripts/pcr-keygen "$W/master.key" >/dev/null || exit 1
PORT=$(pcr_free_port)
pcr_cluster_init "$DATA" "$PORT" "paperclip.master_key_file = '$W/master.key'" "log_min_messages = debug1" || exit 1
pcr_cluster_start "$DATA" || exit 1
trap 'pcr_cluster_stop "$DATA" immediate' EXIT
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres

TAG=$(python3 -c 'import secrets; print(secrets.token_hex(6))')
V=("pcrcanary${TAG}one" "pcrcanary${TAG}two" "pcrcanary${TAG}three" "pcrcanary${TAG}four" "pcrcanary${TAG}five" "pcrcanary${TAG}six")
CONTROL="pcrcontrol${TAG}"

$PSQL -c "CREATE EXTENSION paperclip_runtime" \
  -c "INSERT INTO paperclip.companies (id, name) VALUES ('$C1', 'Company One')" || exit 1
$PSQL >"$W/work.out" 2>&1 <<SQL
SELECT (paperclip.secret_create('$C1', 'a', '${V[0]}')).name;
SELECT (paperclip.secret_create('$C1', 'b', '${V[1]}')).name;
SELECT (paperclip.secret_rotate(id, '${V[2]}')).name FROM paperclip.company_secrets WHERE name = 'a';
SELECT (paperclip.secret_rotate(id, '${V[3]}')).name FROM paperclip.company_secrets WHERE name = 'a';
SELECT paperclip.secret_resolve('$C1', jsonb_build_object('type', 'secret_ref', 'secretId', id, 'version', v))
  FROM paperclip.company_secrets, generate_series(1, 3) AS v WHERE name = 'a';
SELECT (paperclip.secret_revoke(id, 3)).name FROM paperclip.company_secrets WHERE name = 'a';
SELECT (paperclip.secret_rotate(id, '${V[4]}')).name FROM paperclip.company_secrets WHERE name = 'b';
DELETE FROM paperclip.company_secret_versions WHERE version = 2 AND secret_id = (SELECT id FROM paperclip.company_secrets WHERE name = 'b');
CREATE TABLE public.control (t text);
INSERT INTO public.control VALUES ('$CONTROL');
\\set ON_ERROR_STOP 0
-- failing calls with values in the statement text
SELECT paperclip.secret_create('$C1', 'a', '${V[5]}');
SELECT paperclip.secret_rotate('00000000-0000-0000-0000-00000000dead', '${V[5]}');
SET paperclip.master_key_file = '';
SELECT paperclip.secret_create('$C1', 'c', '${V[5]}');
RESET paperclip.master_key_file;
SELECT 1 / 0, '$CONTROL';
SQL
grep -c "^pcrcanary" "$W/work.out" | grep -qx 3
ok $? "the values resolve (the work really ran)"
grep -q "already exists" "$W/work.out" && grep -q "does not exist" "$W/work.out" && grep -q "no master key is configured" "$W/work.out"
ok $? "the failing calls failed as intended"

# key rotation too: add a key, re-encrypt everything
scripts/pcr-keygen --add "$W/master.key" >/dev/null
is "$($PSQL -c "SELECT paperclip.secret_reencrypt_all()")" "4" "every remaining version re-encrypted under a new key"

# every table, read through SQL
hits=$($PSQL -c "SELECT count(*) FROM (
    SELECT to_jsonb(s)::text AS t FROM paperclip.company_secrets s
    UNION ALL SELECT to_jsonb(v)::text FROM paperclip.company_secret_versions v) AS x
  WHERE t LIKE '%pcrcanary${TAG}%'")
is "$hits" "0" "no secret table row contains a value"

$PSQL -c "CHECKPOINT" || exit 1
pcr_cluster_stop "$DATA" fast

files=$(grep -r -a -l -F "pcrcanary${TAG}" "$DATA" --exclude=server.log 2>/dev/null)
is "$files" "" "no file of the data directory (tables, dead tuples, WAL) contains a value"
wal=$(grep -r -a -l -F "$CONTROL" "$DATA/pg_wal" 2>/dev/null | head -n 1)
heap=$(grep -r -a -l -F "$CONTROL" "$DATA/base" 2>/dev/null | head -n 1)
[ -n "$wal" ] && [ -n "$heap" ]
ok $? "control: the same scan finds a plain value in WAL and in a heap file"
lines=$(grep -c -F "pcrcanary${TAG}" "$DATA/server.log")
is "$lines" "0" "no line of the server log contains a value"
grep -q "DEBUG:" "$DATA/server.log"
ok $? "control: the server log was written at debug level"
grep -q -F "$CONTROL" "$DATA/server.log"
ok $? "control: a failing statement's text does reach the log"

tap_done
