#!/usr/bin/env bash
# The demo, on a fresh Debian 12 machine as root: installs what is missing,
# builds, starts two throwaway PostgreSQL 15 servers (blue with sample data
# shaped like seed 004's chronicle_db, green empty) and the Kubernetes API
# simulator (blue's Deployment and Service, the application), then runs
# runbooks/pg-blue-green-upgrade.yaml: plan, a rehearsal (dry run), the real
# run, and its markdown report. Everything it starts is stopped at the end;
# the report stays in $DEMO_DIR.
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

sim_pid=""
stop_all() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
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
export CHRONICLE_DB_PASSWORD=$(cat "$pwfile")
echo "   blue on 127.0.0.1:$blue, green on 127.0.0.1:$green"
echo "== loading sample data into blue (seed 004's tables plus 200,000 events)"
PGPASSWORD=$CHRONICLE_DB_PASSWORD psql -q -h 127.0.0.1 -p "$blue" -U postgres -c "CREATE DATABASE chronicle_db"
PGPASSWORD=$CHRONICLE_DB_PASSWORD psql -q -h 127.0.0.1 -p "$blue" -U postgres -d chronicle_db \
  -v ON_ERROR_STOP=1 -f examples/demo/sample-data.sql

echo "== starting the Kubernetes API simulator (the real kubectl talks to it)"
python3 tests/kube_sim/kube_sim.py --port 0 --port-file "$DEMO_DIR/sim.port" \
  --log "$DEMO_DIR/sim.log" &
sim_pid=$!
for _ in $(seq 1 100); do [ -s "$DEMO_DIR/sim.port" ] && break; sleep 0.1; done
sim_port=$(cat "$DEMO_DIR/sim.port")
export KUBECONFIG="$DEMO_DIR/kubeconfig" KUBECACHEDIR="$DEMO_DIR/kube-cache"
cat > "$KUBECONFIG" <<KCFG
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
  context: {cluster: sim, user: sim, namespace: dsm}
current-context: sim
KCFG
# Blue as seed 004 had it: the chronicle-db Deployment and Service, and the
# application. The simulator forwards port 5432 of a pod to the local
# server named by its sim.runbook/forward-to annotation.
sed "s/@BLUE_PORT@/$blue/" examples/demo/blue.yaml | kubectl apply -f - >/dev/null
mkdir -p "$DEMO_DIR/postgres-chronicle-17"
sed "s/@GREEN_PORT@/$green/" examples/demo/green.yaml > "$DEMO_DIR/postgres-chronicle-17/chronicle-db-v17.yaml"
kubectl rollout status deployment/chronicle-db --timeout=30s >/dev/null
kubectl rollout status deployment/chronicle-service --timeout=30s >/dev/null
echo "   namespace dsm: deployment chronicle-db (blue), service chronicle-db -> app=chronicle-db,"
echo "   deployment chronicle-service (2 replicas); green's manifest: $DEMO_DIR/postgres-chronicle-17/"

rb=runbooks/pg-blue-green-upgrade.yaml
params=(-p "green_manifest=$DEMO_DIR/postgres-chronicle-17" -p user=postgres -p context=sim)
echo; echo "== runbook plan (static: connects to nothing)"
"$runbook" plan "$rb" "${params[@]}"
echo; echo "== runbook run --dry-run (rehearsal: connects, checks, changes nothing)"
"$runbook" run --dry-run "$rb" "${params[@]}"
echo; echo "== runbook run --yes (the real run; --yes approves the cutover gate)"
"$runbook" run --yes "$rb" "${params[@]}"
run_id=$("$runbook" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run"])')
report="$DEMO_DIR/report-$run_id.md"
"$runbook" report "$run_id" -o "$report"
echo; echo "== after the run"
kubectl get service chronicle-db -o jsonpath='service chronicle-db selector: {.spec.selector}{"\n"}'
kubectl get deployment chronicle-service -o jsonpath='chronicle-service replicas: {.spec.replicas}{"\n"}'
echo; echo "== the change record ($report)"
cat "$report"
echo
echo "demo finished: report in $report, state store in $RUNBOOK_STATE"
echo "(the PostgreSQL servers and the simulator were throwaway and are stopped now)"
