#!/usr/bin/env bash
# scripts/install-deps.sh — the Debian 12 packages paperclip_runtime needs.
#
#   scripts/install-deps.sh                what building and running it needs (scripts/demo.sh)
#   scripts/install-deps.sh --test         that, plus what the test suite needs (test/run.sh)
#   scripts/install-deps.sh [--test] PKG…  extra packages too (bench/run.sh adds valgrind, bc, curl)
#   scripts/install-deps.sh --list [--test]  print the package names, one a line, and exit
#
# Installs only what is missing (as root), after saying what and why.  It
# starts no system service: apt-get runs with a policy-rc.d that refuses
# service starts, and Debian's PostgreSQL packages are told to create no
# cluster (their postgresql service stays enabled but has nothing to run).
# When this script installs openssh-server (the tests start its sshd binary
# themselves, on a loopback port) it also disables the package's ssh service
# and checks that no sshd runs.  An openssh-server that was installed before
# is left as it was.
set -euo pipefail

RUNTIME=(
  "build-essential|gcc, make: the extension is C, built with PGXS"
  "postgresql-15|the server"
  "postgresql-server-dev-15|PGXS and the server headers"
  "libssh2-1-dev|the ssh driver's client"
  "libsodium-dev|secrets encryption"
  "bubblewrap|the bwrap sandbox provider"
  "python3|scripts/pcr-keygen (master keys), free-port lookup"
)
TEST=(
  "postgresql-15-pgtap|pgTAP, the SQL test framework"
  "libtap-parser-sourcehandler-pgtap-perl|pg_prove, to run one pgTAP file by hand"
  "openssh-server|sshd binary for the throw-away test sshd"
  "openssh-client|ssh-keygen for its keys"
  "procps|ps, used by the sshd lab"
)

with_test=false
list=false
extra=()
for arg in "$@"; do
  case $arg in
    --test) with_test=true ;;
    --list) list=true ;;
    *) extra+=("$arg") ;;
  esac
done
ENTRIES=("${RUNTIME[@]}")
$with_test && ENTRIES+=("${TEST[@]}")
for p in "${extra[@]}"; do ENTRIES+=("$p|asked for by the caller"); done
PACKAGES=()
declare -A WHY
for e in "${ENTRIES[@]}"; do PACKAGES+=("${e%%|*}"); WHY[${e%%|*}]=${e#*|}; done

if $list; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ "${#missing[@]}" -gt 0 ] || exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run scripts/install-deps.sh$($with_test && echo ' --test') as root to install them)" >&2
  exit 1
fi

installs_sshd=false
for p in "${missing[@]}"; do [ "$p" = openssh-server ] && installs_sshd=true; done

echo "== installing ${#missing[@]} Debian packages with apt-get (with what they pull in; this may take a few minutes):"
for p in "${missing[@]}"; do printf '   %-40s %s\n' "$p" "${WHY[$p]}"; done
LOG=$(mktemp /tmp/paperclip-install-deps.XXXXXX.log)
export DEBIAN_FRONTEND=noninteractive

# Debian's postgresql-common creates a "main" cluster on install; we never use it
mkdir -p /etc/postgresql-common
if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
  echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
fi

# no service starts while apt-get runs (policy-rc.d answers "forbidden" to
# invoke-rc.d and deb-systemd-invoke); a policy-rc.d already there is put back
POLICY=/usr/sbin/policy-rc.d
SAVED_POLICY=
if [ -e "$POLICY" ]; then
  SAVED_POLICY=$(mktemp /tmp/paperclip-policy-rc.d.XXXXXX)
  cp -p "$POLICY" "$SAVED_POLICY"
fi
restore_policy() {
  if [ -n "$SAVED_POLICY" ]; then mv -f "$SAVED_POLICY" "$POLICY"; else rm -f "$POLICY"; fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# paperclip_runtime scripts/install-deps.sh: no service starts during its apt-get run\nexit 101\n' >"$POLICY"
chmod 755 "$POLICY"

if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$LOG" 2>&1; then
  tail -n 30 "$LOG" >&2
  echo "install-deps: apt-get failed (full log: $LOG)" >&2
  exit 1
fi
restore_policy
trap - EXIT

if $installs_sshd; then
  # the package enables its ssh service for the next boot: undo that (both
  # calls only edit links; they work without a running init as well)
  if command -v systemctl >/dev/null; then
    systemctl disable ssh.service ssh.socket >>"$LOG" 2>&1 || true
    [ -d /run/systemd/system ] && { systemctl stop ssh.service ssh.socket >>"$LOG" 2>&1 || true; }
  fi
  if [ -x /etc/init.d/ssh ] && command -v update-rc.d >/dev/null; then
    update-rc.d ssh disable >>"$LOG" 2>&1 || true
  fi
  # verify: nothing enabled, no sshd running
  if ls /etc/systemd/system/*.wants/ssh.service /etc/systemd/system/*.wants/ssh.socket \
        /etc/rc[2-5].d/S*ssh >/dev/null 2>&1; then
    echo "install-deps: the ssh service is still enabled after installing openssh-server" >&2
    exit 1
  fi
  for exe in /proc/[0-9]*/exe; do
    if [ "$(readlink "$exe" 2>/dev/null)" = /usr/sbin/sshd ]; then
      echo "install-deps: an sshd runs after installing openssh-server (${exe%/exe})" >&2
      exit 1
    fi
  done
  echo "   openssh-server: installed for its sshd binary only; its ssh service is disabled and not running"
  # port 22 (hex 0016) in state LISTEN (0A): not ours, but worth saying
  if awk 'NR > 1 && $2 ~ /:0016$/ && $4 == "0A" { found = 1 } END { exit !found }' \
       /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
    echo "   (something else listens on port 22 here; it was not started by this script)"
  fi
fi
echo "   done (apt-get log: $LOG)"
