#!/usr/bin/env bash
# 00_repository — the repository stands on its own and its docs match its code:
# no file points outside the repository, README's package lists are the ones
# scripts/install-deps.sh installs, the versions agree, every SQL function and
# every setting the code defines is documented, and every relative link of
# the docs resolves.  Needs no server.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh
tap_plan 9

# the files of the repository (a checkout without .git: every file but build output)
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  FILES=$(git ls-files)
else
  FILES=$(find . -type f ! -path './.git/*' ! -name '*.o' ! -name '*.bc' ! -name '*.so' | sed 's|^\./||')
fi
# the frozen 0.1.0 install script is a release artifact: byte-identical to the
# release, comments included (test/shell/50_upgrade.sh checks that)
SELF=test/shell/00_repository.sh
FROZEN=test/fixtures/paperclip_runtime--0.1.0.sql
outside=$(printf '%s\n' $FILES | grep -vxF -e "$SELF" -e "$FROZEN" | while read -r f; do
            [ -f "$f" ] && grep -HnE '\.\./shared|SPEC(\.md| *§)|§' "$f" 2>/dev/null; done)
tap_is "$outside" "" "no file refers to anything outside the repository (../shared, SPEC.md, SPEC §)"

# README's lists of packages are exactly what install-deps.sh installs
readme_list() {  # the backticked package names on README's bullet starting with $1
  awk -v m="$1" 'index($0, m) == 1 { on = 1 } on && /^$/ { on = 0 } on && index($0, m) != 1 && /^- / { on = 0 } on' README.md |
    grep -oE '`[a-z0-9][a-z0-9.+-]*`' | tr -d '`' | sort | tr '\n' ' '
}
tap_is "$(readme_list '- **to build and run**')" "$(bash scripts/install-deps.sh --list | sort | tr '\n' ' ')" \
  "README lists exactly the packages scripts/install-deps.sh installs"
tap_is "$(readme_list '- **to test**')" \
  "$(comm -13 <(bash scripts/install-deps.sh --list | sort) <(bash scripts/install-deps.sh --list --test | sort) | tr '\n' ' ')" \
  "README lists exactly the packages scripts/install-deps.sh --test adds"

# one version everywhere
control=$(sed -n "s/^default_version = '\(.*\)'/\1/p" paperclip_runtime.control)
makefile=$(sed -n 's/^EXTVERSION = //p' Makefile)
meta=$(python3 -c 'import json; m = json.load(open("META.json")); print(m["version"], m["provides"]["paperclip_runtime"]["version"], m["meta-spec"]["version"])' 2>&1)
tap_is "$makefile|$meta" "$control|$control $control 1.0.0" \
  "META.json (valid JSON, PGXN meta-spec 1.0.0), the Makefile and the control file name the same version ($control)"
# (sql/paperclip_runtime--<current>.sql is the build's copy of sql/paperclip_runtime.sql)
tap_is "$(printf '%s\n' $FILES | grep -E '^sql/paperclip_runtime--[^-]+\.sql$' | grep -vxF "sql/paperclip_runtime--$control.sql")" "" \
  "sql/ holds no full install script of an old version (only sql/paperclip_runtime.sql and upgrade scripts)"

# every setting and SQL function the code defines is documented
gucs=$(grep -ohE 'DefineCustom[A-Za-z]+Variable\("paperclip\.[a-z_]+"' src/*.c | grep -oE 'paperclip\.[a-z_]+' | sort -u)
missing=$(for g in $gucs; do grep -qF "\`$g\`" docs/configuration.md || echo "docs/configuration.md:$g";
                               grep -qF "\`$g\`" README.md || echo "README.md:$g"; done)
tap_is "$missing" "" "every paperclip.* setting of the code is in docs/configuration.md and README ($(echo $gucs | wc -w) settings)"
funcs=$(grep -oE '^CREATE FUNCTION paperclip\.[a-z_]+' sql/paperclip_runtime.sql | sed 's/^CREATE FUNCTION //' | sort -u)
missing=$(for f in $funcs; do grep -qF "$f(" docs/sql-api.md || echo "$f"; done)
tap_is "$missing" "" "every SQL function of sql/paperclip_runtime.sql is in docs/sql-api.md ($(echo $funcs | wc -w) functions)"
pages=$(ls docs/*.md | grep -v docs/README.md)
missing=$(for p in $pages; do grep -qF "($(basename "$p"))" docs/README.md || echo "$p"; done)
tap_is "$missing" "" "every page of docs/ is listed in docs/README.md"

# every relative link in README.md and docs/*.md resolves
broken=$(for md in README.md docs/*.md; do
           grep -oE '\]\([^)#:]+(#[^)]*)?\)' "$md" | sed -E 's/^\]\(//; s/\)$//; s/#.*//' | while read -r link; do
             [ -n "$link" ] && [ ! -e "$(dirname "$md")/$link" ] && echo "$md -> $link"
           done
         done)
tap_is "$broken" "" "every relative link of README.md and docs/ points at a file of the repository"
