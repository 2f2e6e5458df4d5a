#!/usr/bin/env bash
# 8 concurrent rotations of one secret produce versions 2..9 and no error.
# A ninth session holds the secret's row lock until all 8 are queued behind
# it, so the rotations really do run at the same time.
set -uo pipefail
cd "$(dirname "$0")/../.."
PSQL="$PCR_PGBIN/psql -X -q -A -t -v ON_ERROR_STOP=1"
DB=pcr_secrets_concurrency
C1=00000000-0000-0000-0000-0000000000c1
W=$PCR_WORK/secrets_concurrency
. test/lib/tap.sh
ok() { tap_ok "$@"; }   # ok STATUS DESC
is() { tap_is "$@"; }   # is GOT WANT DESC

rm -rf "$W"; mkdir -p "$W"
trap '$PCR_PGBIN/dropdb --if-exists "$DB" >/dev/null 2>&1' EXIT
$PCR_PGBIN/dropdb --if-exists "$DB" >/dev/null 2>&1
$PCR_PGBIN/createdb "$DB" || exit 1
SID=$($PSQL -d "$DB" -c "CREATE EXTENSION paperclip_runtime" \
  -c "INSERT INTO paperclip.companies (id, name) VALUES ('$C1', 'Company One')" \
  -c "SELECT id FROM paperclip.secret_create('$C1', 'contended', 'value-1')") || exit 1

# the lock holder: keeps the row locked until told to go (the file appears)
$PSQL -d "$DB" >"$W/holder.out" 2>&1 <<SQL &
BEGIN;
SELECT 1 FROM paperclip.company_secrets WHERE id = '$SID' FOR UPDATE;
\\! touch $W/locked
DO \$\$ BEGIN
  WHILE pg_stat_file('$W/go', true) IS NULL LOOP PERFORM pg_sleep(0.05); END LOOP;
END \$\$;
COMMIT;
SQL
holder=$!
end=$((SECONDS + $(wait_secs 30)))
while [ ! -e "$W/locked" ] && [ "$SECONDS" -le "$end" ]; do sleep 0.05; done

pids=()
for i in $(seq 2 9); do
  $PSQL -d "$DB" -c "SELECT latest_version FROM paperclip.secret_rotate('$SID', 'value-from-session-$i')" \
    >"$W/rot.$i.out" 2>"$W/rot.$i.err" &
  pids+=($!)
done

waiting=0
_end=$((SECONDS + $(wait_secs 30))); while [ "$SECONDS" -le "$_end" ]; do
  waiting=$($PSQL -d "$DB" -c "SELECT count(*) FROM pg_stat_activity
                                 WHERE datname = '$DB' AND wait_event_type = 'Lock'
                                   AND query LIKE '%secret_rotate%'")
  [ "$waiting" -ge 8 ] && break
  sleep 0.05
done
is "$waiting" "8" "all 8 rotations wait on the secret at the same time"
touch "$W/go"

errors=0
for p in "${pids[@]}"; do wait "$p" || errors=$((errors + 1)); done
wait "$holder"
is "$errors" "0" "no rotation failed"
is "$(cat "$W"/rot.*.err)" "" "no rotation printed an error"
is "$(cat "$W"/rot.*.out | sort -n | tr '\n' ' ')" "2 3 4 5 6 7 8 9 " "the 8 rotations returned versions 2..9, each once"
is "$($PSQL -d "$DB" -c "SELECT string_agg(version::text, ' ' ORDER BY version) FROM paperclip.company_secret_versions WHERE secret_id = '$SID'")" \
   "1 2 3 4 5 6 7 8 9" "versions 1..9 are stored, without gaps"
is "$($PSQL -d "$DB" -c "SELECT latest_version FROM paperclip.company_secrets WHERE id = '$SID'")" "9" "latest_version is 9"

# each rotation's version decrypts to that rotation's value
mismatch=0
for i in $(seq 2 9); do
  v=$(cat "$W/rot.$i.out")
  got=$($PSQL -d "$DB" -c "SELECT paperclip.secret_resolve('$C1', jsonb_build_object('type', 'secret_ref', 'secretId', '$SID', 'version', $v))")
  [ "$got" = "value-from-session-$i" ] || mismatch=$((mismatch + 1))
done
is "$mismatch" "0" "every version resolves to the value of the rotation that created it"

tap_done
