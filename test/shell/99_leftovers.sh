#!/usr/bin/env bash
# 99_leftovers — runs last: the suite's own cluster, whose pgTAP files acquired
# bwrap sandboxes inside transactions they rolled back, is left with no
# sandbox on disk and no sandbox process (the reconciler destroyed them).
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib/tap.sh

tap_plan 2
SROOT=${PCR_DATA:?}.sandboxes
end=$(( SECONDS + 30 ))
while [ -n "$(ls -A "$SROOT" 2>/dev/null)" ] && [ "$SECONDS" -le "$end" ]; do sleep 0.2; done
tap_is "$(ls -A "$SROOT" 2>&1)" "" "the suite cluster's sandbox root is empty at the end"
n=0
for p in $(pgrep -x bwrap); do grep -qF "$SROOT" "/proc/$p/mountinfo" 2>/dev/null && n=$((n + 1)); done
tap_is "$n" 0 "no bwrap process of the suite cluster is left"
