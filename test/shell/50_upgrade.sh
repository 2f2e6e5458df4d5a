#!/usr/bin/env bash
# 50_upgrade — 0.1.0 (released) upgrades to the current version, and the
# upgraded catalog equals a fresh install's.
#
# test/fixtures/paperclip_runtime--0.1.0.sql is the released install script,
# frozen (a shallow clone has no history; where the history is there, the
# copy is checked against it).  It is installed into the server's extension
# directory for this test only (make install ships no old full script) and
# removed afterwards.  One database gets CREATE EXTENSION ... VERSION '0.1.0'
# with rows in its tables, then ALTER EXTENSION ... UPDATE; another a fresh
# CREATE EXTENSION; their catalogs (test/lib/catalog.sh) must be equal.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh
. test/lib/catalog.sh

RELEASED=9ee3054
FIXTURE=test/fixtures/paperclip_runtime--0.1.0.sql
OUT=$PCR_WORK/upgrade
rm -rf "$OUT"
mkdir -p "$OUT"
OLD=pcr_upgrade_old
NEW=pcr_upgrade_new
CURRENT=$(sed -n "s/^default_version = '\(.*\)'/\1/p" paperclip_runtime.control)
q() { "$PCR_PGBIN/psql" -X -Atq -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

SHAREDIR=$(q postgres "SELECT setting FROM pg_config WHERE name = 'SHAREDIR'")
TARGET=$SHAREDIR/extension/paperclip_runtime--0.1.0.sql
SAVED=
[ -e "$TARGET" ] && { SAVED=$OUT/saved--0.1.0.sql; cp -p "$TARGET" "$SAVED"; }
cleanup() {
  if [ -n "$SAVED" ]; then cp -p "$SAVED" "$TARGET"; else rm -f "$TARGET"; fi
  for db in $OLD $NEW; do "$PCR_PGBIN/dropdb" --if-exists "$db" >/dev/null 2>&1; done
}
trap cleanup EXIT
tap_plan 11

# ------------------------------------------------------------- the frozen script
if git rev-parse -q --verify "$RELEASED^{commit}" >/dev/null 2>&1; then
  git show "$RELEASED:sql/paperclip_runtime.sql" | cmp -s - "$FIXTURE"
  tap_ok $? "$FIXTURE is byte-identical to sql/paperclip_runtime.sql of the 0.1.0 release ($RELEASED)"
else
  tap_skip "no git history here (shallow clone): $FIXTURE cannot be compared with $RELEASED"
fi
cp "$FIXTURE" "$TARGET" && chmod 644 "$TARGET"
tap_ok $? "the 0.1.0 script is installed next to the current ones for this test"

# ------------------------------------------------------------- 0.1.0 with data, then UPDATE
for db in $OLD $NEW; do
  "$PCR_PGBIN/dropdb" --if-exists "$db" >/dev/null 2>&1
  "$PCR_PGBIN/createdb" "$db" || exit 1
done
tap_is "$(q $OLD "CREATE EXTENSION paperclip_runtime VERSION '0.1.0'" 2>&1 &&
          q $OLD "SELECT extversion FROM pg_extension WHERE extname = 'paperclip_runtime'")" "0.1.0" \
  "CREATE EXTENSION paperclip_runtime VERSION '0.1.0' works with the current library"
"$PCR_PGBIN/psql" -X -Atq -v ON_ERROR_STOP=1 -d $OLD -f test/fixtures/seed.sql >/dev/null || exit 1
C1=00000000-0000-0000-0000-0000000000c1
LEASE=$(q $OLD "SELECT id FROM paperclip.acquire_run_lease('$C1', '00000000-0000-0000-0000-0000000000e2',
                                                          '00000000-0000-0000-0000-0000000000f1')")
SECRET=$(q $OLD "SELECT id FROM paperclip.secret_create('$C1', 'made under 0.1.0', 'old-value')")
FENCE=$(q $OLD "SELECT fence FROM paperclip.environment_leases WHERE id = '$LEASE'")

tap_is "$(q $OLD "ALTER EXTENSION paperclip_runtime UPDATE" 2>&1 &&
          q $OLD "SELECT extversion FROM pg_extension WHERE extname = 'paperclip_runtime'")" "$CURRENT" \
  "ALTER EXTENSION paperclip_runtime UPDATE goes from 0.1.0 to $CURRENT, with rows in the tables"
tap_is "$(q $OLD "SELECT paperclip.secret_resolve('$C1', jsonb_build_object('type', 'secret_ref', 'secretId', '$SECRET'))")" \
  "old-value" "a secret stored under 0.1.0 resolves after the upgrade"
tap_is "$(q $OLD "SELECT status || ' ' || (fence = $FENCE) FROM paperclip.release_run_leases('00000000-0000-0000-0000-0000000000f1')")" \
  "released true" "a lease acquired under 0.1.0 is released after the upgrade, its fence unchanged"
tap_is "$(q $OLD "SELECT fence > $FENCE FROM paperclip.acquire_run_lease('$C1', '00000000-0000-0000-0000-0000000000e1',
                                                                         '00000000-0000-0000-0000-0000000000f2')")" \
  "t" "the next acquire after the upgrade has a larger fence"

# ------------------------------------------------------------- the catalogs
q $NEW "CREATE EXTENSION paperclip_runtime" || exit 1
catalog_dump $OLD "$OUT/upgraded.sql" && catalog_dump $NEW "$OUT/fresh.sql" || exit 1
tap_ok "$(grep -cE '^CREATE (TABLE paperclip\.environment_leases|FUNCTION paperclip\.acquire_run_lease|TRIGGER|POLICY)' \
           "$OUT/fresh.sql" | awk '{ print ($1 >= 10 ? 0 : 1) }')" \
  "the compared catalog lists the extension's tables, functions, triggers and policies"
if diff -u --label "after ALTER EXTENSION UPDATE from 0.1.0" --label "fresh CREATE EXTENSION ($CURRENT)" \
     "$OUT/upgraded.sql" "$OUT/fresh.sql" >"$OUT/catalog.diff"; then
  tap_ok 0 "the upgraded catalog equals a fresh $CURRENT install's"
else
  tap_ok 1 "the upgraded catalog equals a fresh $CURRENT install's"
  echo "# sql/paperclip_runtime--0.1.0--$CURRENT.sql does not bring a 0.1.0 database to what"
  echo "# sql/paperclip_runtime.sql creates: every SQL change must go into both files (same"
  echo "# definitions; a column added by the upgrade script comes last, so add it last in the"
  echo "# full script too).  '-' lines exist only after the upgrade, '+' lines only in a fresh install:"
  sed 's/^/#   /' "$OUT/catalog.diff" | head -n 120
fi
# the comparison can fail: a changed comment shows up
q $OLD "COMMENT ON TABLE paperclip.companies IS 'changed by the test'" &&
  catalog_dump $OLD "$OUT/changed.sql" || exit 1
! diff -q "$OUT/changed.sql" "$OUT/fresh.sql" >/dev/null
tap_ok $? "…and the comparison sees a difference as small as a changed comment"
tap_like "$(q $NEW "ALTER EXTENSION paperclip_runtime UPDATE" 2>&1)" \
  "NOTICE:  version \"$CURRENT\" of extension \"paperclip_runtime\" is already installed" \
  "ALTER EXTENSION UPDATE of a fresh $CURRENT install has nothing to do"
