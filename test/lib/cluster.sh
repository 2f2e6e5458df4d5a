# test/lib/cluster.sh — start and stop throw-away PostgreSQL 15 clusters
#
# Source it, then:
#   pcr_cluster_init DIR PORT [extra postgresql.conf lines...]
#   pcr_cluster_start DIR ; pcr_cluster_stop DIR [mode] ; pcr_cluster_restart DIR [mode]
# Clusters listen on 127.0.0.1 only.  As root they run as the postgres OS user
# (PostgreSQL refuses to run as root), from "/": the caller's directory (a
# checkout under /root, say) is usually one postgres may not enter, and
# PostgreSQL's programs complain when they cannot change back to it.  DIR may
# be relative: it is made absolute first.  The bwrap provider is preloaded
# with the extension; its sandboxes live in DIR.sandboxes (0700, the
# server's), or in the provider's default sandbox_root with
# PCR_SANDBOX_ROOT=default.

PCR_PGBIN=${PCR_PGBIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}

pcr_as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && exec runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

pcr_free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

pcr_cluster_init() {
  local dir=$1 port=$2
  dir=$(realpath -m "$dir")
  shift 2
  mkdir -p "$dir" "$dir.sandboxes"
  chmod 755 "$(dirname "$dir")" 2>/dev/null || true
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir" "$dir.sandboxes"; fi
  chmod 700 "$dir" "$dir.sandboxes"
  pcr_as_pg "$PCR_PGBIN/initdb" -D "$dir" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 ||
    { cat "$dir.initdb.log" >&2; return 1; }
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    echo "shared_preload_libraries = 'paperclip_runtime, paperclip_bwrap'"
    [ "${PCR_SANDBOX_ROOT:-}" = default ] || echo "paperclip_bwrap.sandbox_root = '$dir.sandboxes'"
    echo "fsync = off"
    echo "synchronous_commit = off"
    echo "full_page_writes = off"
    echo "max_connections = 60"
    echo "logging_collector = off"
    for line in "$@"; do echo "$line"; done
  } >>"$dir/postgresql.conf"
}

# PCR_VALGRIND=1: every server runs under valgrind memcheck, one report per process in
# DIR/valgrind.PID.log (test/run.sh lists the errors with a frame of ours; keep them with
# PCR_KEEP=1).  Backends, workers and the local execute supervisor are forks and clones of
# the postmaster, followed as they are; programs exec'd from /usr and /bin (bwrap, the
# commands) run without valgrind: rlimits and sandboxes are theirs.  Slow: timed checks fail.
_pcr_postgres() {
  local dir=$1
  if [ -z "${PCR_VALGRIND:-}" ]; then return 0; fi
  local supp
  supp=$(realpath "$(dirname "${BASH_SOURCE[0]}")/valgrind.supp")
  cp "$supp" "$dir.valgrind.supp" && chmod 644 "$dir.valgrind.supp"
  printf '#!/bin/sh\nexec valgrind --quiet --error-limit=no --num-callers=30 --leak-check=no --track-origins=yes --trace-children=yes --trace-children-skip=%s --suppressions=%s --log-file=%s/valgrind.%%p.log %s "$@"\n' \
    "'/usr/bin/*,/bin/*,/usr/sbin/*,/sbin/*'" "$dir.valgrind.supp" "$dir" "$PCR_PGBIN/postgres" >"$dir.valgrind.sh"
  chmod 755 "$dir.valgrind.sh"
  echo "-p $dir.valgrind.sh -t 600"
}

# pcr_valgrind_report DIR: print each memcheck error under DIR whose stack has a frame in
# our libraries (paperclip_*.so, the test modules pcr_*.so), then a count; fails if any
pcr_valgrind_report() {
  find "$1" -name 'valgrind.*.log' -print0 2>/dev/null | xargs -0 -r cat /dev/null | awk '
    function flush() { if (blk ~ /paperclip_[a-z_]*\.so|pcr_[a-z0-9_]*\.so/) { print pid ":" blk; n++ } blk = "" }
    /^==[0-9]+== *$/ { flush(); next }
    $1 != pid { flush() }
    { pid = $1; sub(/^==[0-9]+== /, ""); blk = blk "\n  " $0 }
    END { flush(); print "valgrind: " n + 0 " error(s) with a frame of ours"; exit n > 0 }'
}

pcr_cluster_start() {
  local dir=$1
  dir=$(realpath -m "$dir")
  # shellcheck disable=SC2046
  pcr_as_pg "$PCR_PGBIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 $(_pcr_postgres "$dir") start >/dev/null ||
    { tail -n 50 "$dir/server.log" >&2; return 1; }
}

pcr_cluster_stop() {
  local dir=$1 mode=${2:-fast}
  dir=$(realpath -m "$dir")
  pcr_as_pg "$PCR_PGBIN/pg_ctl" -D "$dir" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
}

pcr_cluster_restart() {
  local dir=$1 mode=${2:-fast}
  dir=$(realpath -m "$dir")
  # shellcheck disable=SC2046
  pcr_as_pg "$PCR_PGBIN/pg_ctl" -D "$dir" -l "$dir/server.log" -m "$mode" -w -t 60 $(_pcr_postgres "$dir") restart >/dev/null ||
    { tail -n 50 "$dir/server.log" >&2; return 1; }
}

# pcr_use_pgbin: set and export PCR_PGBIN for the build's PostgreSQL.  With
# PCR_DESTDIR=/some/dir, a private copy of the installation is made there
# (once) and used, so several checkouts can be tested or benched at once
# without sharing /usr/lib/postgresql: PostgreSQL finds its lib and share
# dirs relative to its binaries, so a copied tree works as it is.
# scripts/build-install.sh installs into the same place.
pcr_use_pgbin() {
  PCR_PGBIN=$(pg_config --bindir)
  if [ -n "${PCR_DESTDIR:-}" ]; then
    if [ ! -x "$PCR_DESTDIR$PCR_PGBIN/postgres" ]; then
      mkdir -p "$PCR_DESTDIR/usr/lib/postgresql" "$PCR_DESTDIR/usr/share/postgresql"
      cp -a "$(dirname "$PCR_PGBIN")" "$PCR_DESTDIR/usr/lib/postgresql/"
      cp -a "$(pg_config --sharedir)" "$PCR_DESTDIR/usr/share/postgresql/"
      chmod -R a+rX "$PCR_DESTDIR"
    fi
    PCR_PGBIN=$PCR_DESTDIR$PCR_PGBIN
  fi
  export PCR_PGBIN
}
