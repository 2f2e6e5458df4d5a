# test/lib/catalog.sh — the extension's catalog as comparable text
#
#   catalog_dump DB FILE   writes what the extension defines in DB to FILE
#
# A plain `pg_dump --schema-only` shows an extension as one CREATE EXTENSION
# line; `--binary-upgrade` (what pg_upgrade uses) lists every member object:
# tables with their columns in order, constraints, indexes, functions,
# triggers, policies, comments, grants (as the extension's initial
# privileges) and sequence options.  What differs between two databases by
# construction is taken out: OID and relfilenode assignments, the random
# \restrict key, relfrozenxid settings, dropped columns (an upgrade that drops a column keeps a
# placeholder for it; a fresh install has none) with the trailing comma they
# leave, blank lines, the fence sequence's value (data, dumped even with
# --schema-only because the sequence is a configuration table), "missing value" records of columns added with a default, and the
# OIDs of the extension's configuration tables, which are appended by name
# (with their pg_extension_config_dump conditions) instead.
catalog_dump() {
  local db=$1 file=$2
  "$PCR_PGBIN/pg_dump" --schema-only --binary-upgrade -d "$db" |
    awk '
      /^-- For binary upgrade, recreate dropped column\./ { skip = 1; next }
      skip && /DROP COLUMN "\.\.\.\.\.\.\.\.pg\.dropped\./ { skip = 0; next }
      skip { next }
      /^-- For binary upgrade, set .*relfrozenxid/ { frozen = 1; next }
      frozen && /^WHERE oid = / { frozen = 0; next }
      frozen { next }
      /pg\.dropped\./ { next }
      /^\\(un)?restrict / { next }
      /^-- Dumped (from|by) / { next }
      /^SELECT pg_catalog\.binary_upgrade_set_next_/ { next }
      /^SELECT pg_catalog\.binary_upgrade_set_missing_value/ { next }
      /^-- set missing value\.$/ { next }
      /^SELECT pg_catalog\.setval\(/ { next }
      /^$/ { next }
      /^-- For binary upgrade, must preserve / { next }
      /^SELECT pg_catalog\.binary_upgrade_create_empty_extension\(/ {
        sub(/, \x27\{[0-9,]*\}\x27, \x27\{[^}]*\}\x27, /, ", <configuration tables: at the end>, ")
      }
      { sub(/,$/, ""); print }' >"$file" || return 1
  "$PCR_PGBIN/psql" -X -Atq -v ON_ERROR_STOP=1 -d "$db" >>"$file" <<'SQL' || return 1
SELECT '-- extension ' || extname || ' ' || extversion || ', configuration tables (pg_extension_config_dump):'
  FROM pg_catalog.pg_extension WHERE extname = 'paperclip_runtime';
SELECT format('--   %s %L', c.oid::regclass, u.condition)
  FROM pg_catalog.pg_extension e,
       unnest(e.extconfig, e.extcondition) AS u(reloid, condition)
  JOIN pg_catalog.pg_class c ON c.oid = u.reloid
 WHERE e.extname = 'paperclip_runtime'
 ORDER BY 1;
SQL
}
