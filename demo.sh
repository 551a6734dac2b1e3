#!/usr/bin/env bash
# The demo, on a fresh Debian 12 machine as root: installs what is missing,
# builds, starts two throwaway PostgreSQL servers of the versions seed 004
# upgraded between (blue: PostgreSQL 13 on Debian 11's glibc 2.31, with
# sample data shaped like seed 004's chronicle_db; green: PostgreSQL 17 on
# Debian 13's glibc 2.41, empty; each in a Debian root that
# scripts/pg_roots.sh builds once, about 3 minutes, and caches) and the
# Kubernetes API simulator (blue's Deployment and Service, the application),
# then runs runbooks/pg-blue-green-upgrade.yaml: plan, a rehearsal (dry run),
# the real run, and its markdown report. Everything it starts is stopped at
# the end; the report stays in $DEMO_DIR.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
scripts/deps.sh
roots=$(scripts/pg_roots.sh)
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

# Each server's directory lies inside its root (the server runs chroot'ed).
blue_dir="$roots/bullseye/tmp/runbook-demo/blue"
green_dir="$roots/trixie/tmp/runbook-demo/green"
sim_pid=""
stop_all() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  for d in "$blue_dir" "$green_dir"; do
    python3 tests/fixtures/pg_cluster.py stop --dir "$d" --remove >/dev/null 2>&1 || true
    rmdir "$(dirname "$d")" 2>/dev/null || true
  done
}
trap stop_all EXIT

start() {  # DIR ROOT MAJOR; prints the port
  rm -rf "$1" && mkdir -p "$(dirname "$1")" && chmod 755 "$(dirname "$1")"
  python3 tests/fixtures/pg_cluster.py start --dir "$1" --root "$2" --major "$3" \
    --locale en_US.UTF-8 --wal-level logical --password-file "$pwfile" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])'
}
echo "== starting two throwaway PostgreSQL servers: 13 (Debian 11) and 17 (Debian 13)"
blue=$(start "$blue_dir" "$roots/bullseye" 13)
green=$(start "$green_dir" "$roots/trixie" 17)
export CHRONICLE_DB_PASSWORD=$(cat "$pwfile")
echo "   blue: PostgreSQL 13 on 127.0.0.1:$blue, green: PostgreSQL 17 on 127.0.0.1:$green"
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
# bin_dir: PostgreSQL 17's client programs (a 17 server needs 17's pg_dump).
# owners=keep: blue's public schema has PostgreSQL 13's owner and grants
# (CREATE for everyone), which 15 changed; keep carries them as they were.
params=(-p "green_manifest=$DEMO_DIR/postgres-chronicle-17" -p user=postgres -p context=sim
        -p "bin_dir=$roots/trixie/hostbin" -p owners=keep)
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
