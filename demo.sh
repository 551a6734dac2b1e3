#!/usr/bin/env bash
# The demo, on a fresh Debian 12 machine as root: installs what is missing,
# builds, starts two throwaway PostgreSQL 15 servers (blue with sample data,
# green empty), then runs examples/demo/copy-and-verify.yaml: plan, a
# rehearsal (dry run), the real run, and its markdown report. Everything it
# starts is stopped at the end; the report stays in $DEMO_DIR.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
scripts/deps.sh
build=$(scripts/build.sh runbook)
runbook="$root/$build/runbook"

export DEMO_DIR=${DEMO_DIR:-/tmp/runbook-demo}
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
chmod 755 "$DEMO_DIR"
export RUNBOOK_STATE="$DEMO_DIR/state.db"
pwfile="$DEMO_DIR/pg-password"
head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$pwfile"
chmod 644 "$pwfile"  # read by initdb as the postgres user

stop_all() {
  for c in blue green; do
    python3 tests/fixtures/pg_cluster.py stop --dir "$DEMO_DIR/$c" >/dev/null 2>&1 || true
  done
}
trap stop_all EXIT

start() {  # prints the port
  python3 tests/fixtures/pg_cluster.py start --dir "$DEMO_DIR/$1" --password-file "$pwfile" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])'
}
echo "== starting two throwaway PostgreSQL servers"
blue=$(start blue)
green=$(start green)
export DEMO_PG_PASSWORD=$(cat "$pwfile")
echo "   blue on 127.0.0.1:$blue, green on 127.0.0.1:$green"
echo "== loading sample data into blue (seed 004's tables plus 200,000 events)"
PGPASSWORD=$DEMO_PG_PASSWORD psql -q -h 127.0.0.1 -p "$blue" -U postgres -c "CREATE DATABASE chronicle_db"
PGPASSWORD=$DEMO_PG_PASSWORD psql -q -h 127.0.0.1 -p "$blue" -U postgres -d chronicle_db \
  -v ON_ERROR_STOP=1 -f examples/demo/sample-data.sql

rb=examples/demo/copy-and-verify.yaml
params=(-p "blue_port=$blue" -p "green_port=$green" -p "workdir=$DEMO_DIR")
echo; echo "== runbook plan (static: connects to nothing)"
"$runbook" plan "$rb" "${params[@]}"
echo; echo "== runbook run --dry-run (rehearsal: connects, checks, changes nothing)"
"$runbook" run --dry-run "$rb" "${params[@]}"
echo; echo "== runbook run --yes (the real run; --yes approves the gate)"
"$runbook" run --yes "$rb" "${params[@]}"
run_id=$("$runbook" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run"])')
report="$DEMO_DIR/report-$run_id.md"
"$runbook" report "$run_id" -o "$report"
echo; echo "== the change record ($report)"
cat "$report"
echo
echo "demo finished: report in $report, state store in $RUNBOOK_STATE"
echo "(the PostgreSQL servers were throwaway and are stopped now)"
