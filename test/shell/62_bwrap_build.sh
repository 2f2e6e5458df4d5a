#!/usr/bin/env bash
# 62_bwrap_build — the bwrap provider builds from a copy of its directory
# against the installed headers of paperclip_runtime alone (as a third party's
# provider would), and every symbol of the core it uses is exported by
# paperclip_runtime.so.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh

tap_plan 4
PGC=${PCR_PGBIN:-$(pg_config --bindir)}/pg_config
[ -x "$PGC" ] || PGC=pg_config
INC=${PCR_DESTDIR:-}$(pg_config --includedir-server)/extension/paperclip_runtime
SRC=$PCR_WORK/bwrap-copy
rm -rf "$SRC"; cp -r providers/bwrap "$SRC"
rm -f "$SRC"/*.o "$SRC"/*.so "$SRC"/*.bc "$SRC/paperclip_bwrap_exec"
tap_is "$(ls "$INC" | xargs)" "io.h jsonb_util.h pcr_exec.h pcr_proc.h pcr_provider.h" \
  "the installed header set: pcr_provider.h and what it includes"
make -C "$SRC" PCR_DESTDIR="${PCR_DESTDIR:-}" >"$PCR_WORK/bwrap-copy.build" 2>&1
tap_ok $? "a copy of providers/bwrap builds against $INC alone"
tap_is "$(grep -ho '#include "[^"]*"' "$SRC"/*.c "$SRC"/*.h | sort -u | grep -v -E '"(bwrap|pcr_provider|postgres|fmgr|miscadmin)\.h"|"(lib|utils|nodes|datatype)/' | xargs)" "" \
  "it includes only its own header, pcr_provider.h and PostgreSQL's"
LIB=$(pg_config --pkglibdir)
missing=$(comm -23 <(nm -D --undefined-only "$SRC/paperclip_bwrap.so" | awk '{print $2}' | grep '^Pcr' | sort -u) \
                   <(nm -D --defined-only "${PCR_DESTDIR:-}$LIB/paperclip_runtime.so" | awk '{print $3}' | sort -u) | xargs)
tap_is "$missing" "" "every Pcr* symbol it needs is exported by paperclip_runtime.so"
