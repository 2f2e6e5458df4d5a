#!/usr/bin/env bash
# 52_installcheck — PGXS's `make installcheck` as a user runs it against a
# running server that preloads the extension: pg_regress creates its own
# database (contrib_regression), loads pgtap and paperclip_runtime into it
# (REGRESS_OPTS --load-extension) and runs every file of test/sql.  The
# reconciler of this cluster serves pcr_regress, not that database:
# test/sql/30_reconciler.sql then matches expected/30_reconciler_1.out, which
# skips the two checks that need it connected there.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh

OUT=$PCR_WORK/installcheck
rm -rf "$OUT"
mkdir -p "$OUT"
trap '"$PCR_PGBIN/dropdb" --if-exists contrib_regression >/dev/null 2>&1' EXIT
tap_plan 3
make -s installcheck \
  EXTRA_REGRESS_OPTS="--bindir=$PCR_PGBIN --host=$PGHOST --port=$PGPORT --user=$PGUSER --outputdir=$OUT" \
  >"$OUT/log" 2>&1
tap_is "$?" 0 "make installcheck passes in the database pg_regress creates"
[ -f "$OUT/regression.diffs" ] && sed 's/^/# /' "$OUT/regression.diffs" | head -n 60
n=$(ls test/sql/*.sql | wc -l)
tap_like "$(cat "$OUT/log")" "All $n tests passed" "…running all $n files of test/sql"
tap_is "$("$PCR_PGBIN/psql" -X -Atq -d contrib_regression \
           -c "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension WHERE extname <> 'plpgsql'")" \
  "paperclip_runtime,pgtap" "…in a database of its own, with pgtap and paperclip_runtime loaded by pg_regress"
