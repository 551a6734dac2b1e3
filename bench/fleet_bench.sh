#!/usr/bin/env bash
# Fleet benchmark (issue 18): one runbook over $TARGETS databases (default
# 100) of a throwaway PostgreSQL 15 cluster on loopback, wall time of
#   - the same targets run one `runbook run` after another (a shell loop:
#     what a team scripts today),
#   - `runbook fleet` at --max-concurrency 1, 4 and 16,
#   - an Ansible loop over the same targets (one host per target,
#     ansible_connection=local, psql per target; forks 1 and 16),
# in one run, hyperfine, $RUNS runs each (default 3), every run from an
# empty state store. Each target: count a table, update one row, count again
# (3 steps, a connection each, the run lock taken in the store and in the
# server). Prints a markdown table on stdout: median, min-max, per target.
#
#   RUNS=3 TARGETS=100 bench/fleet_bench.sh
#
# Installs hyperfine and ansible if missing (as root), as engine_bench.sh
# does. Uses the built runbook binary ($RUNBOOK_BIN, default build/runbook).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
RUNS=${RUNS:-3}
TARGETS=${TARGETS:-100}
rb=${RUNBOOK_BIN:-$root/build/runbook}
[ -x "$rb" ] || { echo "fleet_bench: no runbook binary at $rb (scripts/build.sh runbook)" >&2; exit 1; }
missing=()
for p in hyperfine ansible; do command -v "${p/ansible/ansible-playbook}" >/dev/null || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH=/usr/lib/postgresql/15/bin:$PATH NO_COLOR=1

. "$root/bench/throwaway_pg.sh"
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
for i in $(seq 0 $((TARGETS - 1))); do
  psql -X -q -d postgres -c "CREATE DATABASE tgt_$i"
  psql -X -q -d "tgt_$i" -c "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)" \
    -c "INSERT INTO items SELECT g, 0 FROM generate_series(1, 1000) g"
done

cat > "$work/rb.yaml" <<'EOF'
format: 1
name: bench-fleet
lock: "bench:${{ params.db }}"
params:
  db: {type: string}
connections:
  db: {postgres: {dsn: "dbname=${{ params.db }}"}}
steps:
  - id: before
    pg.query: {conn: db, sql: "SELECT count(*) AS n FROM items"}
  - id: touch
    pg.exec: {conn: db, sql: "UPDATE items SET v = v + 1 WHERE id = 1"}
  - id: after
    pg.query: {conn: db, sql: "SELECT count(*) AS n FROM items"}
EOF
{ for i in $(seq 0 $((TARGETS - 1))); do echo "- {name: t$i, params: {db: tgt_$i}}"; done; } \
  > "$work/targets.yaml"
cat > "$work/serial.sh" <<EOF
set -e
for i in \$(seq 0 $((TARGETS - 1))); do "$rb" run "$work/rb.yaml" -p db=tgt_\$i >/dev/null; done
EOF
export RUNBOOK_STATE="$work/state.db"
fresh="rm -rf $work/state.db $work/state.db-wal $work/state.db-shm $work/locks"
cmds=(-n "serial runbook run" "bash $work/serial.sh")
for c in 1 4 16; do
  cmds+=(-n "fleet --max-concurrency $c"
         "$rb fleet $work/rb.yaml --targets $work/targets.yaml --max-concurrency $c")
done
{
  { echo "[targets]"
    for i in $(seq 0 $((TARGETS - 1))); do echo "t$i db=tgt_$i ansible_connection=local"; done
  } > "$work/inventory"
  cat > "$work/play.yaml" <<'EOF'
- hosts: targets
  gather_facts: false
  tasks:
    - command: psql -X -qAt -d {{ db }} -c "SELECT count(*) FROM items"
    - command: psql -X -q -d {{ db }} -c "UPDATE items SET v = v + 1 WHERE id = 1"
    - command: psql -X -qAt -d {{ db }} -c "SELECT count(*) FROM items"
EOF
  for f in 1 16; do
    cmds+=(-n "ansible-playbook --forks $f"
           "ansible-playbook -i $work/inventory --forks $f $work/play.yaml")
  done
}
hyperfine --export-json "$work/fleet.json" --style none --runs "$RUNS" --prepare "$fresh" \
  "${cmds[@]}" >/dev/null 2>"$work/hyperfine.err" || { cat "$work/hyperfine.err" >&2; exit 1; }
python3 - "$work/fleet.json" "$TARGETS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
n = int(sys.argv[2])
print("| %d targets, 3 steps each | median | min-max | per target |" % n)
print("|---|---|---|---|")
for x in r:
    print("| %s | %.1f s | %.1f-%.1f s | %.0f ms |" % (
        x["command"], x["median"], min(x["times"]), max(x["times"]), x["median"] / n * 1000))
PY
