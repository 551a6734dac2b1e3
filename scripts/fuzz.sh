#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/, clang with ASan + UBSan, into
# build-fuzz/) and runs each for SECONDS (default 60) from a seed corpus of
# the repository's runbooks. Exits non-zero, printing the input, on any
# crash, hang (>10 s per input), leak or sanitizer report.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
for p in clang-14 libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ -n "${missing[*]:-}" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DRUNBOOK_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build-fuzz -j"$(nproc)" fuzz_runbook fuzz_template >&2

work=$(mktemp -d /tmp/runbook-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/runbook" "$work/template"
cp runbooks/*.yaml runbooks/lib/*.yaml examples/*.yaml examples/demo/*.yaml "$work/runbook/" 2>/dev/null || true
grep -ho '\${{[^}]*}}' runbooks/*.yaml | sort -u | head -200 | while IFS= read -r t; do
  printf '%s' "$t" > "$work/template/$(printf '%s' "$t" | sha256sum | cut -c1-16)"
done
status=0
for target in runbook template; do
  echo "== fuzz_$target for ${seconds}s" >&2
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
       "build-fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$work/" -print_final_stats=1 "$work/$target" >"$work/$target.log" 2>&1; then
    status=1
    tail -n 60 "$work/$target.log" >&2
    for f in "$work"/crash-* "$work"/timeout-* "$work"/leak-* "$work"/oom-*; do
      [ -e "$f" ] || continue
      echo "== input that failed ($f), base64:" >&2
      base64 -w0 "$f" >&2; echo >&2
    done
  else
    grep -E "stat::number_of_executed_units|cov:" "$work/$target.log" | tail -n 2 >&2 || true
  fi
done
exit $status
