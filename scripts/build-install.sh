#!/usr/bin/env bash
# Build paperclip_runtime with -Wall -Wextra -Werror and install it into the
# system PostgreSQL 15 (or into $PCR_DESTDIR when set).
set -euo pipefail
cd "$(dirname "$0")/.."
make clean >/dev/null 2>&1 || true
make PCR_WERROR=1 >build.log 2>&1 || { cat build.log >&2; exit 1; }
if [ -n "${PCR_DESTDIR:-}" ]; then
  make install DESTDIR="$PCR_DESTDIR" >>build.log 2>&1 || { cat build.log >&2; exit 1; }
else
  make install >>build.log 2>&1 || { cat build.log >&2; exit 1; }
fi
