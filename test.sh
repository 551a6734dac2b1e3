#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root: installs what
# is missing, builds, runs the unit, integration and end-to-end tests (real
# PostgreSQL 13, 15 and 17, sshd, kubectl against the API simulator).
#   ./test.sh              the suite, then the fuzz targets for a minute each
#   ./test.sh --sanitize   then the same suite again under AddressSanitizer +
#                          UndefinedBehaviorSanitizer (a second build, build-asan/)
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh
# PostgreSQL 13 and 17 in Debian roots (other majors, other glibc versions):
# built once into /var/cache/runbook/roots (about 3 minutes), then reused.
scripts/pg_roots.sh >/dev/null

run_suite() {
  local dir=$1
  (cd "$dir" && ctest --output-on-failure --timeout 1500)
}

dir=$(scripts/build.sh)
run_suite "$dir"
# The .deb, installed on this machine and run from what it installed.
scripts/package.sh "$dir"
# The runbook parser and the template engine under libFuzzer (clang, ASan +
# UBSan), a minute each from the repository's runbooks: nothing may crash.
scripts/fuzz.sh 60
if [ "${1:-}" = "--sanitize" ]; then
  echo "== the same suite under ASan + UBSan" >&2
  asan=$(scripts/build.sh --sanitize)
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 run_suite "$asan"
fi
