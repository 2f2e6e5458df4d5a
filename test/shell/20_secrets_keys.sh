#!/usr/bin/env bash
# Master key files: pcr-keygen, refused files, a wrong key, a changed file,
# and key rotation (add a key, re-encrypt, drop the old key).
# Uses its own database on the suite's cluster and its own key files; each
# psql session picks a key file with PGOPTIONS (the GUC is superuser-only).
set -uo pipefail
cd "$(dirname "$0")/../.."
PSQL="$PCR_PGBIN/psql -X -q -A -t -v ON_ERROR_STOP=1"
KEYGEN=scripts/pcr-keygen
DB=pcr_secrets_keys
K=$PCR_WORK/secrets_keys
C1=00000000-0000-0000-0000-0000000000c1
. test/lib/tap.sh
ok() { tap_ok "$@"; }   # ok STATUS DESC
is() { tap_is "$@"; }   # is GOT WANT DESC
# q KEYFILE SQL — one session with that key file; prints the first result line,
# or "ERROR <sqlstate>: <message>"
q() {
  PGOPTIONS="-c paperclip.master_key_file=$1" $PSQL -v VERBOSITY=verbose -d "$DB" -c "$2" 2>&1 |
    sed -E -n '1{s/^(psql:[^ ]* )?ERROR:  ([0-9A-Z]{5}): (.*)$/ERROR \2: \3/;p}'
}
# ref VERSION [SECRET_ID_EXPR] — SQL for a secret_ref
ref() { echo "jsonb_build_object('type', 'secret_ref', 'secretId', ${2:-id}, 'version', $1)"; }

rm -rf "$K"; mkdir -p "$K"; chmod 755 "$K"
trap '$PCR_PGBIN/dropdb --if-exists "$DB" >/dev/null 2>&1' EXIT
$PCR_PGBIN/dropdb --if-exists "$DB" >/dev/null 2>&1
$PCR_PGBIN/createdb "$DB" || exit 1
$PSQL -d "$DB" -c "CREATE EXTENSION paperclip_runtime" \
  -c "INSERT INTO paperclip.companies (id, name) VALUES ('$C1', 'Company One')" || exit 1

# ---------------------------------------------------------------- pcr-keygen
ID_A=$($KEYGEN "$K/a.key")
ok $? "pcr-keygen creates a key file"
is "$(stat -c '%a' "$K/a.key")" "600" "the key file has mode 0600"
if [ "$(id -u)" -eq 0 ]; then
  is "$(stat -c '%U' "$K/a.key")" "postgres" "run as root, the key file belongs to postgres"
else
  is "$(stat -c '%U' "$K/a.key")" "$(id -un)" "the key file belongs to the user who made it"
fi
before=$(md5sum <"$K/a.key")
$KEYGEN "$K/a.key" >/dev/null 2>&1
rc=$?
[ "$rc" -ne 0 ] && [ "$(md5sum <"$K/a.key")" = "$before" ]
ok $? "pcr-keygen refuses to overwrite an existing key file"
is "$($KEYGEN --id "$K/a.key")" "$ID_A" "pcr-keygen --id prints the id it announced"
grep -qi "$ID_A" "$K/a.key"
[ $? -ne 0 ]; ok $? "the key id is not the key (the file does not contain it)"

# ---------------------------------------------------------------- secrets under key A
is "$(q "$K/a.key" "SELECT (paperclip.secret_create('$C1', 's1', 'alpha-one')).latest_version")" "1" "secret s1 created under key A"
is "$(q "$K/a.key" "SELECT (paperclip.secret_create('$C1', 's2', 'bravo-two')).latest_version")" "1" "secret s2 created under key A"
is "$(q "$K/a.key" "SELECT (paperclip.secret_rotate(id, 'bravo-three')).latest_version FROM paperclip.company_secrets WHERE name = 's2'")" \
   "2" "secret s2 rotated under key A"
is "$(q "$K/a.key" "SELECT string_agg(DISTINCT key_id, ',') FROM paperclip.company_secret_versions")" "$ID_A" \
   "every version records key A's id"

# ---------------------------------------------------------------- refused key files
cp -p "$K/a.key" "$K/group.key"; chmod 640 "$K/group.key"
is "$(q "$K/group.key" "SELECT paperclip.secret_resolve('$C1', $(ref 1)) FROM paperclip.company_secrets WHERE name = 's1'")" \
   "ERROR 55000: the master key file is accessible by group or others" "a group-readable key file is refused (55000)"
cp -p "$K/a.key" "$K/other.key"; chmod 604 "$K/other.key"
is "$(q "$K/other.key" "SELECT (paperclip.secret_create('$C1', 'nope', 'x')).name")" \
   "ERROR 55000: the master key file is accessible by group or others" "an others-readable key file is refused for writing too"
cp -p "$K/a.key" "$K/bad.key"; echo "not-a-key" >>"$K/bad.key"
is "$(q "$K/bad.key" "SELECT paperclip.secret_resolve('$C1', $(ref 1)) FROM paperclip.company_secrets WHERE name = 's1'")" \
   "ERROR 55000: line 4 of the master key file is not a key of 64 hex digits" "a malformed key line is refused (55000) without echoing it"
cp -p "$K/a.key" "$K/empty.key"; sed -i '/^[0-9a-f]/d' "$K/empty.key"
is "$(q "$K/empty.key" "SELECT paperclip.secret_resolve('$C1', $(ref 1)) FROM paperclip.company_secrets WHERE name = 's1'")" \
   "ERROR 55000: the master key file holds no key" "a key file without keys is refused (55000)"

# ---------------------------------------------------------------- a wrong key
ID_B=$($KEYGEN "$K/b.key")
out=$(q "$K/b.key" "SELECT paperclip.secret_resolve('$C1', $(ref 1)) FROM paperclip.company_secrets WHERE name = 's1'")
is "$out" "ERROR XX001: could not decrypt secret \"s1\" version 1: master key \"$ID_A\" is not loaded (wrong key)" \
   "a wrong master key fails with the wrong-key error (XX001), not as tampering"

# ---------------------------------------------------------------- a changed file is re-read
cp -p "$K/a.key" "$K/live.key"
out=$(PGOPTIONS="-c paperclip.master_key_file=$K/live.key" $PSQL -d "$DB" 2>&1 <<SQL
SELECT paperclip.secret_resolve('$C1', $(ref 1)) FROM paperclip.company_secrets WHERE name = 's1';
\\! cp -p "$K/b.key" "$K/live.key.new" && mv "$K/live.key.new" "$K/live.key"
SELECT pg_sleep(0.6);
\\set ON_ERROR_STOP 0
SELECT paperclip.secret_resolve('$C1', $(ref 1)) FROM paperclip.company_secrets WHERE name = 's1';
SQL
)
echo "$out" | head -n 1 | grep -qx "alpha-one" && echo "$out" | grep -q "master key \"$ID_A\" is not loaded"
ok $? "a backend re-reads the key file when it changes (replaced by another key: wrong-key error)"
out=$(PGOPTIONS="-c paperclip.master_key_file=$K/b.key" $PSQL -d "$DB" 2>&1 <<SQL
\\set ON_ERROR_STOP 0
SELECT paperclip.secret_resolve('$C1', $(ref 1)) FROM paperclip.company_secrets WHERE name = 's1';
SET paperclip.master_key_file = '$K/a.key';
SELECT paperclip.secret_resolve('$C1', $(ref 1)) FROM paperclip.company_secrets WHERE name = 's1';
SQL
)
echo "$out" | grep -q "is not loaded" && echo "$out" | tail -n 1 | grep -qx "alpha-one"
ok $? "a backend switches keys when the GUC changes"

# ---------------------------------------------------------------- rotation: add, re-encrypt, prune
cp -p "$K/a.key" "$K/rot.key"
ID_N=$($KEYGEN --add "$K/rot.key")
ok $? "pcr-keygen --add adds a key"
is "$($KEYGEN --id "$K/rot.key" | tr '\n' ' ')" "$ID_N $ID_A " "the new key comes first (current), the old one stays"
is "$(stat -c '%a' "$K/rot.key")" "600" "the rotated key file keeps mode 0600"
is "$(q "$K/rot.key" "SELECT paperclip.secret_resolve('$C1', $(ref 1)) FROM paperclip.company_secrets WHERE name = 's1'")" \
   "alpha-one" "with both keys, a version under the old key still resolves"
is "$(q "$K/rot.key" "SELECT (paperclip.secret_create('$C1', 's3', 'charlie-four')).latest_version")" "1" \
   "a secret created after the rotation"
is "$(q "$K/rot.key" "SELECT key_id FROM paperclip.company_secret_versions v JOIN paperclip.company_secrets s ON s.id = v.secret_id WHERE s.name = 's3'")" \
   "$ID_N" "a new version is encrypted under the new key"
fp_before=$(q "$K/rot.key" "SELECT string_agg(value_fingerprint, ',' ORDER BY v.id) FROM paperclip.company_secret_versions v")
is "$(q "$K/rot.key" "SELECT paperclip.secret_reencrypt_all()")" "3" "secret_reencrypt_all re-encrypts the 3 versions under the old key"
is "$(q "$K/rot.key" "SELECT count(*) FROM paperclip.company_secret_versions WHERE key_id IS DISTINCT FROM '$ID_N'")" "0" \
   "no version uses the old key id any more"
is "$(q "$K/rot.key" "SELECT count(*) FROM paperclip.company_secret_versions WHERE key_id = '$ID_A'")" "0" \
   "in particular none uses key A"
fp_after=$(q "$K/rot.key" "SELECT string_agg(value_fingerprint, ',' ORDER BY v.id) FROM paperclip.company_secret_versions v")
[ "$fp_before" != "$fp_after" ]; ok $? "re-encryption re-keys the fingerprints too"
is "$(q "$K/rot.key" "SELECT paperclip.secret_reencrypt_all()")" "0" "a second re-encryption has nothing to do"
$KEYGEN --prune "$K/rot.key" >/dev/null
is "$($KEYGEN --id "$K/rot.key")" "$ID_N" "pcr-keygen --prune keeps only the current key"
all="SELECT string_agg(paperclip.secret_resolve('$C1', $(ref v.version s.id)), ',' ORDER BY s.name, v.version)
       FROM paperclip.company_secrets s JOIN paperclip.company_secret_versions v ON v.secret_id = s.id"
is "$(q "$K/rot.key" "$all")" "alpha-one,bravo-two,bravo-three,charlie-four" \
   "without the old key, every version still resolves to its value"
out=$(q "$K/a.key" "SELECT paperclip.secret_resolve('$C1', $(ref 1)) FROM paperclip.company_secrets WHERE name = 's1'")
is "$out" "ERROR XX001: could not decrypt secret \"s1\" version 1: master key \"$ID_N\" is not loaded (wrong key)" \
   "the old key alone no longer decrypts anything"
is "$(q "$K/rot.key" "SET ROLE paperclip_admin; SELECT paperclip.secret_reencrypt_all()")" \
   "ERROR 42501: permission denied for function secret_reencrypt_all" "re-encryption is not for paperclip_admin"

tap_done
