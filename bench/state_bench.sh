#!/usr/bin/env bash
# State store benchmark (issue 18): the engine's per-step overhead with the
# journal in PostgreSQL (RUNBOOK_STATE=postgresql://..., a throwaway
# PostgreSQL 15 cluster on loopback, tests/fixtures/pg_cluster.py) beside the
# default SQLite file, in one run, the two taking turns:
#   - 1,000 `log` steps (transitions that no side effect follows: committed
#     without waiting for the disk, made durable by the next durable commit)
#   - 200 `exec /bin/true` steps (each may act: its "running" transition is
#     durable before the command starts)
# per step = (median of the N-step run - median of the 1-step run) / (N - 1),
# hyperfine, $RUNS runs each (default 5); the spread is the min-max of the
# N-step runs over the same difference. Goal: <= 3 ms per step on loopback.
# Prints a markdown table on stdout.
#
#   RUNS=5 bench/state_bench.sh
#
# Installs hyperfine if missing (as root). Uses the built runbook binary
# ($RUNBOOK_BIN, default build/runbook).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
RUNS=${RUNS:-5}
rb=${RUNBOOK_BIN:-$root/build/runbook}
[ -x "$rb" ] || { echo "state_bench: no runbook binary at $rb (scripts/build.sh runbook)" >&2; exit 1; }
command -v hyperfine >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends hyperfine >/dev/null
export PATH=/usr/lib/postgresql/15/bin:$PATH NO_COLOR=1

. "$root/bench/throwaway_pg.sh"
# The test clusters run without fsync; a state store is measured as it runs
# in the field: durable (fsync, full_page_writes, synchronous_commit on).
psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
  -c "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET full_page_writes = on" \
  -c "ALTER SYSTEM SET synchronous_commit = on" -c "SELECT pg_reload_conf()" \
  -c "CREATE DATABASE runbook_state"
[ "$(psql -X -qAt -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "SHOW fsync")" = on ] ||
  { echo "state_bench: fsync did not take" >&2; exit 1; }
pg_state="postgresql://postgres@127.0.0.1:$port/runbook_state"  # the password from PGPASSWORD
sqlite_state="$work/state.db"

gen() {  # name N step-yaml -> runbook of N steps
  { echo "format: 1"; echo "name: bench-$1-$2"; echo "steps:"
    for i in $(seq 1 "$2"); do echo "  - id: s$i"; echo "    $3"; done; } > "$work/$1-$2.yaml"
}
gen log 1 "log: step"
gen log 1000 "log: step"
gen exec 1 "exec: {argv: [/bin/true]}"
gen exec 200 "exec: {argv: [/bin/true]}"
# Both stores created (and PostgreSQL's schema migrated) before timing.
RUNBOOK_STATE=$sqlite_state "$rb" run "$work/log-1.yaml" >/dev/null
RUNBOOK_STATE=$pg_state "$rb" run "$work/log-1.yaml" >/dev/null

json() {  # name commands...
  hyperfine --export-json "$work/$1.json" --style none --warmup 1 --runs "$RUNS" "${@:2}" \
    >/dev/null 2>&1
}
# per-step ms and the spread, from the 1-step (first) and N-step (second) results
per_step() {  # json N
  python3 - "$work/$1.json" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
n = int(sys.argv[2])
one, many = r[0], r[1]
per = (many["median"] - one["median"]) / (n - 1) * 1000
lo = (min(many["times"]) - one["median"]) / (n - 1) * 1000
hi = (max(many["times"]) - one["median"]) / (n - 1) * 1000
print("%.2f ms (%.2f-%.2f)" % (per, lo, hi))
PY
}
rows=()
for kind in "log 1000" "exec 200"; do
  set -- $kind
  for store in sqlite pg; do
    state=$sqlite_state
    [ "$store" = pg ] && state=$pg_state
    export RUNBOOK_STATE=$state
    json "$1-$store" "$rb run $work/$1-1.yaml" "$rb run $work/$1-$2.yaml"
  done
  rows+=("| $2 \`$1\` steps | $(per_step "$1-sqlite" "$2") | $(per_step "$1-pg" "$2") |")
done
echo "| per step, median (min-max) | SQLite file | PostgreSQL 15 on loopback |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
