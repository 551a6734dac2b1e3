#!/usr/bin/env bash
# Builds the Debian roots that hold the other PostgreSQL majors the tests and
# the demo upgrade across (../shared/TESTING.md, "Other PostgreSQL majors"):
#
#   bullseye  Debian 11: PostgreSQL 13, glibc 2.31
#   trixie    Debian 13: PostgreSQL 17, glibc 2.41 (+ this machine's
#             PostgreSQL 15 binaries, to open a 15 data directory made under
#             glibc 2.36 with glibc 2.41: seed 000 for real)
#
# Each root is built once into a cache outside the clone and reused; a new
# machine builds it from nothing (about 5 minutes for both, ~1.3 GB). A root
# is built in DIR.partial and renamed when complete, so an interrupted build
# is started again rather than used.
#
#   scripts/pg_roots.sh            build what is missing; print the cache dir
#   scripts/pg_roots.sh --check    exit 0 when both roots are complete
#
# Also writes, per root, hostbin/: the root's client programs (pg_dump,
# pg_restore, psql, vacuumdb, pg_dumpall) started through the root's own
# dynamic loader, so they run on this machine without chroot and without
# root (a PostgreSQL 17 server needs 17's pg_dump). Test fixtures put a
# hostbin/ first on PATH where a test needs those versions.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${RUNBOOK_ROOTS:-/var/cache/runbook/roots}
# Bump when the recipe changes: roots of an older recipe are rebuilt.
recipe=4

complete() { [ -f "$cache/$1/.runbook-root" ] && [ "$(cat "$cache/$1/.runbook-root")" = "$recipe" ]; }

if [ "${1:-}" = "--check" ]; then
  complete bullseye && complete trixie
  exit
fi

mirror() {
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1)
  [ -n "$m" ] || m=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -n1)
  echo "${m:-http://deb.debian.org/debian}"
}

# The client programs, started through the root's loader with the root's libraries.
write_hostbin() {
  local root=$1 major=$2 dir=$1/hostbin
  local libs="$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu"
  mkdir -p "$dir"
  for tool in pg_dump pg_restore psql vacuumdb pg_dumpall pg_isready; do
    cat > "$dir/$tool" <<EOF
#!/bin/sh
# PostgreSQL $major's $tool from $root, on this machine's kernel (scripts/pg_roots.sh).
exec "$root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$libs" "$root/usr/lib/postgresql/$major/bin/$tool" "\$@"
EOF
    chmod 0755 "$dir/$tool"
  done
}

# This machine's PostgreSQL 15 inside the trixie root (TESTING.md's recipe):
# the same binaries on a newer glibc.
add_pg15() {
  local root=$1
  mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql" "$root/opt/pg15libs"
  cp -a /usr/lib/postgresql/15 "$root/usr/lib/postgresql/"
  cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/"
  local bin
  for bin in postgres initdb pg_ctl; do
    ldd "/usr/lib/postgresql/15/bin/$bin" | awk '/=> \//{print $3}'
  done | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so.*|libm.so.*|ld-linux*) ;;
      *) cp -L "$lib" "$root/opt/pg15libs/" ;;
    esac
  done
}

build() {
  local name=$1 suite=$2 major=$3
  complete "$name" && return 0
  local dir=$cache/$name
  echo "pg_roots: building $name (Debian $suite, PostgreSQL $major) in $dir" >&2
  rm -rf "$dir.partial" "$dir"
  mkdir -p "$cache"
  local start=$SECONDS
  debootstrap --variant=minbase --include="postgresql-$major,locales" "$suite" "$dir.partial" \
    "$(mirror)" > "$cache/$name.log" 2>&1 || {
    echo "pg_roots: debootstrap $suite failed; last lines of $cache/$name.log:" >&2
    tail -n 20 "$cache/$name.log" >&2
    exit 1
  }
  echo "en_US.UTF-8 UTF-8" > "$dir.partial/etc/locale.gen"
  chroot "$dir.partial" locale-gen >> "$cache/$name.log" 2>&1
  chmod 1777 "$dir.partial/dev/shm" "$dir.partial/tmp"
  # apt's package cache is not needed at run time.
  rm -rf "$dir.partial"/var/cache/apt/archives/*.deb
  [ "$name" = trixie ] && add_pg15 "$dir.partial"
  write_hostbin "$dir.partial" "$major"
  # hostbin points at the final path.
  sed -i "s#$dir.partial#$dir#g" "$dir.partial"/hostbin/*
  echo "$recipe" > "$dir.partial/.runbook-root"
  mv "$dir.partial" "$dir"
  echo "pg_roots: $name ready in $((SECONDS - start)) s" >&2
}

if [ "$(id -u)" -ne 0 ]; then
  if complete bullseye && complete trixie; then echo "$cache"; exit 0; fi
  echo "pg_roots: the roots are missing in $cache and building them needs root" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
# The two roots download and unpack at once (each mostly waits on the network).
build bullseye bullseye 13 &
b1=$!
build trixie trixie 17 &
b2=$!
rc=0
wait $b1 || rc=1
wait $b2 || rc=1
[ $rc -eq 0 ] || exit 1
echo "$cache"
