#!/usr/bin/env bash
# Builds the .deb from a build directory (CPack), installs it on this
# machine with apt (so its declared dependencies must resolve), and runs what
# it installed: --version with the commit, the man page, the completion, and
# the plan of a standard runbook from /usr/share/runbook. Prints the .deb.
#   scripts/package.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(cd "${1:-build}" && pwd)
rm -f "$dir"/runbook*.deb "$dir"/runbook*.ddeb
(cd "$dir" && cpack -G DEB >/dev/null)
deb=$(ls "$dir"/runbook_*.deb | grep -v dbgsym | head -1)
dbg=$(ls "$dir"/runbook-dbgsym_* 2>/dev/null | head -1 || true)
fail() { echo "package: $*" >&2; exit 1; }
[ -n "$dbg" ] || fail "no runbook-dbgsym package next to $deb"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libpq5 libssh-4 liblua5.4-0 libyaml-cpp0.7 libsqlite3-0; do
  case "$depends" in *"$lib"*) ;; *) fail "Depends lacks $lib: $depends" ;; esac
done
# --reinstall: a package of the same version may be installed already (an
# earlier build of this version), and apt would then keep its files.
out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall --no-install-recommends \
  "$deb" 2>&1) || fail "apt-get install $deb failed: $out"
installed=/usr/bin/runbook
[ "$(command -v runbook)" = "$installed" ] || fail "runbook is not $installed on PATH"
file -L "$installed" | grep -q ', stripped' || fail "$installed is not stripped"
size=$(stat -c %s "$installed")
[ "$size" -lt 30000000 ] || fail "$installed is $size bytes: not stripped?"
commit=$(git rev-parse --short=12 HEAD)
"$installed" --version | grep -q "($commit" || fail "--version does not name $commit: $("$installed" --version)"
man -w runbook | grep -q '^/usr/share/man/man1/runbook.1' || fail "man runbook finds no page"
MANWIDTH=100 man runbook 2>/dev/null | grep -q 'EXIT STATUS' || fail "man runbook does not render"
[ -s /usr/share/bash-completion/completions/runbook ] || fail "no bash completion"
[ -s /usr/share/runbook/runbook.schema.json ] || fail "no JSON Schema"
[ -s /usr/share/runbook/runbook.lua ] || fail "no Lua stubs"
plan=$("$installed" plan /usr/share/runbook/runbooks/pg-refresh-collation.yaml \
  -p server=postgresql://postgres@db.example/postgres)
echo "$plan" | grep -q 'pg.collation_status' || fail "the standard runbook's plan: $plan"
"$installed" validate /usr/share/runbook/runbooks/*.yaml >/dev/null || fail "standard runbooks do not validate"
echo "$deb ($(stat -c %s "$deb") bytes; $installed $size bytes; debug info in $(basename "$dbg"))"
