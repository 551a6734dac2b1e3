#!/usr/bin/env bash
# Approval latency benchmark (issue 18, item 5): how long after `runbook
# approve` (on another machine, in the field: another process here) a run
# waiting at a gate with --wait-for-approval goes on, with the state in
# SQLite (the wait reads the store 5 times a second) and in PostgreSQL (the
# wait LISTENs; approve NOTIFYs at commit; and with RUNBOOK_STATE_LISTEN=off,
# as behind a transaction pooler: it reads once a second), in one run, the
# three taking turns.
# Latency = the time the gated step's command (`date +%s%N`) printed minus
# the approval's time as the store recorded it (both this machine's clock);
# it includes the engine starting the step and the command. The approval
# comes 300-500 ms (at random) into the wait, so that it does not keep one
# phase of SQLite's reads. $RUNS approvals per
# store (default 10); prints median and min-max as a markdown table.
#
#   RUNS=10 bench/approval_bench.sh
#
# Uses the built runbook binary ($RUNBOOK_BIN, default build/runbook).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
RUNS=${RUNS:-10}
rb=${RUNBOOK_BIN:-$root/build/runbook}
[ -x "$rb" ] || { echo "approval_bench: no runbook binary at $rb (scripts/build.sh runbook)" >&2; exit 1; }
export PATH=/usr/lib/postgresql/15/bin:$PATH NO_COLOR=1

. "$root/bench/throwaway_pg.sh"
psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE runbook_state"
pg_state="postgresql://postgres@127.0.0.1:$port/runbook_state"  # the password from PGPASSWORD
sqlite_state="$work/state.db"
cat > "$work/gated.yaml" <<YAML
format: 1
name: gated
steps:
  - id: gate
    approve: go on?
    exec: {argv: [date, "+%s%N"]}
YAML

# One approval: start the run, wait until it waits, approve, read the times.
one() {  # state -> latency in ms
  local state=$1
  RUNBOOK_STATE=$state "$rb" run "$work/gated.yaml" --wait-for-approval 2m \
    > "$work/run.out" 2>&1 < /dev/null &
  local pid=$! id=""
  for _ in $(seq 1 400); do
    id=$(head -1 "$work/run.out" 2>/dev/null | awk '/^run /{print $2}')
    if [ -n "$id" ] && RUNBOOK_STATE=$state "$rb" status "$id" --json 2>/dev/null |
        grep -q '"status": "waiting"'; then
      break
    fi
    sleep 0.05
  done
  sleep "0.$((300 + RANDOM % 200))"  # inside the wait, not at its first read
  RUNBOOK_STATE=$state "$rb" approve "$id" gate --by bench > /dev/null
  wait "$pid"
  python3 - "$state" "$id" "$rb" <<'PY'
import json, os, subprocess, sys
state, run, rb = sys.argv[1:4]
env = dict(os.environ, RUNBOOK_STATE=state)
report = json.loads(subprocess.run([rb, "report", run, "--format", "json"], env=env,
                                   capture_output=True, text=True, check=True).stdout)
acted_ns = int(report["steps"][0]["result"]["stdout"].strip())
# The approval's at_ms as the store has it (a report's "at" has seconds only).
if state.startswith("postgresql://"):
    out = subprocess.run(["psql", "-XqAt", state, "-c",
                          "SELECT at_ms FROM runbook.approvals WHERE run_id = '%s'" % run],
                         capture_output=True, text=True, check=True).stdout
else:
    import sqlite3
    out = str(sqlite3.connect(state).execute(
        "SELECT at_ms FROM approvals WHERE run_id = ?", (run,)).fetchone()[0])
at_ms = int(out.strip())
print("%.1f" % (acted_ns / 1e6 - at_ms))
PY
}

declare -A lat=([sqlite]="" [pg]="" [pg_poll]="")
for i in $(seq 1 "$RUNS"); do
  lat[sqlite]+=" $(one "$sqlite_state")"
  lat[pg]+=" $(one "$pg_state")"
  lat[pg_poll]+=" $(RUNBOOK_STATE_LISTEN=off one "$pg_state")"
done
summary() {
  python3 -c 'import statistics,sys; v=sorted(map(float,sys.argv[1:])); print("%.0f ms (%.0f-%.0f)" % (statistics.median(v), v[0], v[-1]))' $1
}
echo "| store | approve -> the gated step acts: median (min-max), $RUNS approvals |"
echo "|---|---|"
echo "| SQLite (reads the store every 200 ms) | $(summary "${lat[sqlite]}") |"
echo "| PostgreSQL (LISTEN/NOTIFY) | $(summary "${lat[pg]}") |"
echo "| PostgreSQL, RUNBOOK_STATE_LISTEN=off (reads once a second) | $(summary "${lat[pg_poll]}") |"
