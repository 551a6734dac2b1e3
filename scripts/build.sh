#!/usr/bin/env bash
# Configures and builds into build/ (build-asan/ with --sanitize); prints the
# build directory. Extra arguments are ninja targets (default: everything).
#   scripts/build.sh [--sanitize] [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
flags=()
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  flags=(-DRUNBOOK_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  shift
fi
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
ninja -C "$dir" -j"$(nproc)" "$@" >&2
echo "$dir"
