#!/usr/bin/env bash
# Fleet benchmark (issue 18): one runbook over $TARGETS databases (default
# 100) of a throwaway PostgreSQL 15 cluster on loopback, wall time of
#   - the same targets run one `runbook run` after another (a shell loop:
#     what a team scripts today),
#   - `runbook fleet` at --max-concurrency 1, 4 and 16,
#   - `runbook fleet --executor kube` at --max-concurrency 4 and 16: each
#     target a Kubernetes Job whose pod runs this binary against a PostgreSQL
#     state store (a database of the same cluster). There is no cluster here:
#     the Jobs go, through the real kubectl, to the tests' Kubernetes API
#     simulator (tests/kube_sim/kube_sim.py), which runs each pod's command as
#     a local process. So these rows measure the engine's Job path (kubectl +
#     API simulator + pods as local processes), not a real cluster's
#     scheduling, image pulls or pod start-up. Their runbook is the same but
#     for its connection: a pod gets none of our PG* variables, so host, port
#     and user are in its DSN and the password a secret param (env:
#     PGPASSWORD, passed by the fleet in each target's params Secret),
#   - an Ansible loop over the same targets (one host per target,
#     ansible_connection=local, psql per target; forks 1 and 16),
# in one run, hyperfine, $RUNS runs each (default 3), every run from an
# empty state store (kube rows: a new state database, the simulator reset, so
# no Job, pod or Secret of the run before is left, and the state Secret made
# again). Each target: count a table, update one row, count again
# (3 steps, a connection each, the run lock taken in the store and in the
# server). Prints a markdown table on stdout: median, min-max, per target.
#
#   RUNS=3 TARGETS=100 bench/fleet_bench.sh
#
# Installs hyperfine and ansible if missing (as root), as engine_bench.sh
# does. Uses the built runbook binary ($RUNBOOK_BIN, default build/runbook)
# and kubectl (scripts/deps.sh installs it). The simulator is started once the
# other rows are measured, and stopped on exit with the pods it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
RUNS=${RUNS:-3}
TARGETS=${TARGETS:-100}
rb=${RUNBOOK_BIN:-$root/build/runbook}
[ -x "$rb" ] || { echo "fleet_bench: no runbook binary at $rb (scripts/build.sh runbook)" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "fleet_bench: no kubectl (scripts/deps.sh)" >&2; exit 1; }
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

# The kube rows. The API simulator (its pods' logs under $kube/tmp), stopped
# on exit, with its pods, before the cluster they talk to; then the runbook
# the pods laid out (/tmp/runbook-fleet/<hash>, fixed by the engine: ours is
# the one holding our rb-kube.yaml, whose port no other has).
kube=$work/kube
mkdir -p "$kube/tmp" "$kube/cache"
TMPDIR=$kube/tmp python3 "$root/tests/kube_sim/kube_sim.py" --port 0 --port-file "$kube/port" \
  --log "$kube/sim.log" --controller-delay 0.05 </dev/null >"$kube/sim.out" 2>&1 &
sim_pid=$!
stop_kube_sim() {
  kill -TERM "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
  local d
  for d in /tmp/runbook-fleet/*/; do
    if [ -f "$work/rb-kube.yaml" ] && cmp -s "$d/rb-kube.yaml" "$work/rb-kube.yaml"; then rm -rf "$d"; fi
  done
}
trap 'stop_kube_sim; throwaway_pg_cleanup' EXIT
for _ in $(seq 200); do
  if [ -s "$kube/port" ] || ! kill -0 "$sim_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
[ -s "$kube/port" ] || { echo "fleet_bench: kube_sim.py did not start:" >&2; cat "$kube/sim.out" >&2; exit 1; }
sim_port=$(cat "$kube/port")
cat > "$kube/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sim
  cluster: {server: "http://127.0.0.1:$sim_port"}
users:
- name: sim
  user: {}
contexts:
- name: sim
  context: {cluster: sim, user: sim, namespace: default}
current-context: sim
EOF
export KUBECONFIG=$kube/kubeconfig KUBECACHEDIR=$kube/cache
# The state store: the pods' URI (with the password) in the Secret, from a
# file so that it is on no command line; the fleet's own URI takes PGPASSWORD.
printf '%s' "postgresql://postgres:$PGPASSWORD@127.0.0.1:$port/fleet_state" > "$kube/state-uri"
cat > "$kube/fresh.sh" <<EOF
set -euo pipefail
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS fleet_state WITH (FORCE)" -c "CREATE DATABASE fleet_state"
python3 -c 'import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], method="POST"), timeout=30).read()' \
  "http://127.0.0.1:$sim_port/_sim/reset"
kubectl --context=sim create secret generic runbook-state --from-file=uri="$kube/state-uri" >/dev/null
EOF
cat > "$work/rb-kube.yaml" <<EOF
format: 1
name: bench-fleet
lock: "bench:\${{ params.db }}"
params:
  db: {type: string}
  pgpassword: {type: string, secret: true, env: PGPASSWORD}
connections:
  db:
    postgres:
      dsn: "host=127.0.0.1 port=$port user=postgres dbname=\${{ params.db }}"
      password: "\${{ params.pgpassword }}"
steps:
  - id: before
    pg.query: {conn: db, sql: "SELECT count(*) AS n FROM items"}
  - id: touch
    pg.exec: {conn: db, sql: "UPDATE items SET v = v + 1 WHERE id = 1"}
  - id: after
    pg.query: {conn: db, sql: "SELECT count(*) AS n FROM items"}
EOF
kcmds=()
for c in 4 16; do
  kcmds+=(-n "fleet --executor kube --max-concurrency $c (kube_sim)"
          "$rb --state postgresql://postgres@127.0.0.1:$port/fleet_state fleet $work/rb-kube.yaml --targets $work/targets.yaml --max-concurrency $c --executor kube --image example.org/runbook:bench --pod-command $rb --kube-context sim --state-secret runbook-state --pod-annotation sim.runbook/run=local")
done
hyperfine --export-json "$work/kube.json" --style none --runs "$RUNS" --prepare "bash $kube/fresh.sh" \
  "${kcmds[@]}" >/dev/null 2>"$work/hyperfine-kube.err" || {
  cat "$work/hyperfine-kube.err" >&2
  echo "fleet_bench: the simulator's last requests:" >&2
  tail -n 20 "$kube/sim.log" >&2
  exit 1
}

python3 - "$work/fleet.json" "$work/kube.json" "$TARGETS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
k = json.load(open(sys.argv[2]))["results"]
n = int(sys.argv[3])
at = max(i for i, x in enumerate(r) if x["command"].startswith("fleet ")) + 1
r[at:at] = k  # the kube rows after the local fleet rows
print("| %d targets, 3 steps each | median | min-max | per target |" % n)
print("|---|---|---|---|")
for x in r:
    print("| %s | %.1f s | %.1f-%.1f s | %.0f ms |" % (
        x["command"], x["median"], min(x["times"]), max(x["times"]), x["median"] / n * 1000))
print()
print("kube_sim rows: each target a Job of the tests' Kubernetes API simulator (tests/kube_sim)"
      " through the real kubectl, its pod this binary as a local process, the state in"
      " PostgreSQL: the engine's Job path, not a real cluster's scheduling, image pulls or"
      " pod start-up.")
PY
