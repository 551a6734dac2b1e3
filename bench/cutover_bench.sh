#!/usr/bin/env bash
# The write freeze of runbooks/pg-blue-green-upgrade.yaml (issue 7): a writer
# (pgbench, about $RATE transactions a second, bench/cutover_writer.py plays
# the application) runs against blue through the whole upgrade; the freeze is
# the time between the last write blue accepted and the first write green
# accepted after the switch, read from the rows themselves (each carries the
# server that took it and clock_timestamp(); both servers share this clock).
# Measured for sync=copy (final sync by copying every table again) and
# sync=replication (logical replication; the final sync waits for it to catch
# up), on blue databases of two sizes (`pgbench -i -s` 7 and 50: about 100 and
# 750 MiB of tables), each on fresh throwaway PostgreSQL 15 clusters and a
# fresh API simulator. After each run: every row blue accepted is on green,
# once, and the run's own report is kept.
#
# With sync=replication the upgrade leaves blue following green (the
# fallback); the benchmark then lets the application write to green for a
# few seconds and runs `runbook rollback`: the reverse cutover. Its write
# freeze is measured the same way (last write green accepted, first write
# blue accepted after it), and every row green accepted must be on blue.
#
#   bench/cutover_bench.sh     (SCALES="7 50" VARIANTS="copy replication replication/count" RATE=1000)
#
# A variant is sync[/verify]: verify is the runbook's guardrail before the
# switch, checksum (default, $VERIFY) or count.
#
# Progress to stderr; the markdown table for bench/RESULTS.md to stdout.
# Uses the built binary ($RUNBOOK_BIN, default build/runbook).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
root=$(pwd)
SCALES=${SCALES:-"7 50"}
VARIANTS=${VARIANTS:-"copy replication replication/count"}
RATE=${RATE:-1000}
VERIFY=${VERIFY:-checksum}
rb=${RUNBOOK_BIN:-$root/build/runbook}
[ -x "$rb" ] || { echo "cutover_bench: no runbook binary at $rb (scripts/build.sh runbook)" >&2; exit 1; }
[ -x /usr/lib/postgresql/15/bin/pgbench ] ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
export PATH=/usr/lib/postgresql/15/bin:$PATH

work=$(mktemp -d)
logs=$(mktemp -d /tmp/cutover_bench-logs.XXXXXX)  # kept: reports, pgbench and engine output
chmod 755 "$work"
sim_pid="" writer_pid=""
stop_world() {
  [ -n "$writer_pid" ] && { kill "$writer_pid" 2>/dev/null; wait "$writer_pid" 2>/dev/null || true; }
  [ -n "$sim_pid" ] && { kill "$sim_pid" 2>/dev/null; wait "$sim_pid" 2>/dev/null || true; }
  writer_pid="" sim_pid=""
  for c in blue green; do
    python3 "$root/tests/fixtures/pg_cluster.py" stop --dir "$work/$c" --remove >/dev/null 2>&1 || true
  done
  rm -rf "$work/blue" "$work/green"
}
trap 'stop_world; rm -rf "$work"' EXIT
log() { echo "== $(date -u +%H:%M:%S) $*" >&2; }
pwfile="$work/pg-password"
head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$pwfile"
chmod 644 "$pwfile"
export PGPASSWORD=$(cat "$pwfile") PGUSER=postgres PGHOST=127.0.0.1 NO_COLOR=1
export CHRONICLE_DB_PASSWORD=$PGPASSWORD
start() {  # dir wal_level -> port
  python3 "$root/tests/fixtures/pg_cluster.py" start --dir "$work/$1" --password-file "$pwfile" \
      --wal-level "$2" --stop-with-pid $$ | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])'
}
q() { psql -X -qAt -v ON_ERROR_STOP=1 -p "$@"; }

# One upgrade: SCALE VARIANT[/VERIFY] -> "ok MiB freeze_s blue_rows copied missing green_rows run_s report" (or "failed exit=N MiB")
measure() {
  local scale=$1 variant=${2%/*} verify=$VERIFY tag="s$1-${2//\//-}"
  [[ $2 == */* ]] && verify=${2#*/}
  trap stop_world EXIT  # this runs in a subshell: its own clean-up
  export RUNBOOK_STATE="$work/state-$tag.db"
  local blue green
  blue=$(start blue logical)
  green=$(start green logical)  # the fallback publishes from green
  q "$blue" -d postgres -c "CREATE DATABASE chronicle_db"
  q "$blue" -d chronicle_db -f examples/demo/sample-data.sql >/dev/null
  pgbench -i -q -s "$scale" -p "$blue" chronicle_db >"$logs/$tag-pgbench-init.log" 2>&1
  q "$blue" -d chronicle_db <<'SQL'
ALTER TABLE pgbench_history REPLICA IDENTITY FULL;  -- no primary key: replicated by whole row
CREATE TABLE writes (id bigserial PRIMARY KEY, port int NOT NULL,
                     at timestamptz NOT NULL DEFAULT clock_timestamp());
VACUUM ANALYZE;
SQL
  local mib
  mib=$(q "$blue" -d chronicle_db -c "SELECT round(sum(pg_table_size(c.oid)) / 1048576.0)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname = 'public'")

  python3 tests/kube_sim/kube_sim.py --port 0 --port-file "$work/sim.port" --log "$logs/$tag-sim.log" &
  sim_pid=$!
  rm -f "$work/sim.port"
  for _ in $(seq 1 100); do [ -s "$work/sim.port" ] && break; sleep 0.1; done
  local sim="http://127.0.0.1:$(cat "$work/sim.port")"
  export KUBECONFIG="$work/kubeconfig" KUBECACHEDIR="$work/kube-cache"
  printf '%s\n' "apiVersion: v1" "kind: Config" \
    "clusters: [{name: sim, cluster: {server: \"$sim\"}}]" "users: [{name: sim, user: {}}]" \
    "contexts: [{name: sim, context: {cluster: sim, user: sim, namespace: dsm}}]" \
    "current-context: sim" > "$KUBECONFIG"
  sed "s/@BLUE_PORT@/$blue/" examples/demo/blue.yaml | kubectl apply -f - >/dev/null
  rm -rf "$work/green-manifest"; mkdir -p "$work/green-manifest"
  sed "s/@GREEN_PORT@/$green/" examples/demo/green.yaml > "$work/green-manifest/green.yaml"
  kubectl rollout status deployment/chronicle-service --timeout=30s >/dev/null

  python3 bench/cutover_writer.py "$sim" "$blue" "$green" chronicle_db "$RATE" "$logs/$tag-writer.log" &
  writer_pid=$!
  sleep 3  # the writer is up to speed on blue before the upgrade starts
  log "$tag: blue ${mib} MiB of tables on :$blue, green on :$green; writer at $RATE tps; upgrading"
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  "$rb" run --yes runbooks/pg-blue-green-upgrade.yaml -p "green_manifest=$work/green-manifest" \
    -p user=postgres -p context=sim -p sync="$variant" -p verify="$verify" \
    -p "replication_source=host=127.0.0.1 port=$blue" \
    -p "reverse_source=host=127.0.0.1 port=$green" >"$logs/$tag-run.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  sleep 3  # a few seconds of writes on green
  local run_id
  run_id=$("$rb" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run"])')
  # The forward cutover, read before the way back (blue then takes writes again,
  # and holds green's through the fallback).
  local last_blue="" first_green="" blue_rows=0 copied=0 green_own=0 lost=0
  if [ "$rc" -eq 0 ]; then
  last_blue=$(q "$blue" -d chronicle_db -c "SELECT extract(epoch FROM max(at)) FROM writes WHERE port = $blue")
  first_green=$(q "$green" -d chronicle_db -c "SELECT extract(epoch FROM min(at)) FROM writes WHERE port = $green")
  blue_rows=$(q "$blue" -d chronicle_db -c "SELECT count(*) FROM writes WHERE port = $blue")
  copied=$(q "$green" -d chronicle_db -c "SELECT count(*) FROM writes WHERE port = $blue")
  green_own=$(q "$green" -d chronicle_db -c "SELECT count(*) FROM writes WHERE port = $green")
  lost=$(q "$green" -d chronicle_db -c "SELECT $blue_rows - count(*) FROM writes WHERE port = $blue")
  fi
  # The way back, under the same writer: the reverse cutover.
  local back="-" back_lost="-" back_rows="-"
  if [ "$rc" -eq 0 ] && [ "$variant" = replication ]; then
    local before_back rrc=0
    before_back=$(date +%s.%N)
    "$rb" rollback "$run_id" >"$logs/$tag-rollback.log" 2>&1 || rrc=$?
    sleep 3  # writes on blue again
    if [ "$rrc" -eq 0 ]; then
      local last_green first_blue
      last_green=$(q "$green" -d chronicle_db -c "SELECT extract(epoch FROM max(at)) FROM writes WHERE port = $green")
      first_blue=$(q "$blue" -d chronicle_db -c "SELECT extract(epoch FROM min(at)) FROM writes WHERE port = $blue AND at > to_timestamp($before_back)")
      back=$(python3 -c "print('%.2f' % (float('${first_blue:-0}' or 0) - float('${last_green:-0}' or 0)))")
      back_rows=$(q "$green" -d chronicle_db -c "SELECT count(*) FROM writes WHERE port = $green")
      back_lost=$(q "$blue" -d chronicle_db -c "SELECT $back_rows - count(*) FROM writes WHERE port = $green")
    else
      back="rollback failed (exit $rrc)"
    fi
  fi
  kill "$writer_pid"; wait "$writer_pid" 2>/dev/null || true; writer_pid=""
  "$rb" report "$run_id" -o "$logs/$tag-report.md" >/dev/null || true
  if [ "$rc" -ne 0 ]; then
    log "$tag: the run FAILED (exit $rc): $(grep -m1 -i 'fail\|error' "$logs/$tag-run.log" || true)"
    echo "failed exit=$rc $mib"
    stop_world
    return
  fi
  local freeze
  freeze=$(python3 -c "print('%.2f' % (float('${first_green:-0}' or 0) - float('${last_blue:-0}' or 0)))")
  [ -z "$first_green" ] && freeze="none"
  log "$tag: freeze ${freeze} s; blue accepted $blue_rows, green has $copied of them (missing $lost) and $green_own of its own; run $(python3 -c "print('%.1f' % ($t1 - $t0))") s; back: freeze $back s, green accepted $back_rows, missing on blue $back_lost"
  echo "ok $mib $freeze $blue_rows $copied $lost $green_own $(python3 -c "print('%.1f' % ($t1 - $t0))") ${back// /_} $back_rows $back_lost $logs/$tag-report.md"
  stop_world
}

declare -A res
for s in $SCALES; do
  for v in $VARIANTS; do
    res[$s-$v]=$(measure "$s" "$v")
  done
done

echo "| blue database (tables) | final sync | write freeze | writes blue accepted / on green / missing | writes on green after | whole run | rollback after the switch: write freeze | writes green accepted / missing on blue |"
echo "|---|---|---|---|---|---|---|---|"
for s in $SCALES; do
  for v in $VARIANTS; do
    read -r st mib freeze brows copied lost gown run back brows2 lost2 report <<<"${res[$s-$v]}"
    label="\`sync=${v%/*}\`"
    [[ $v == */* ]] && label="$label \`verify=${v#*/}\`"
    [ "${v%/*}" = copy ] && label="$label (pg.copy of every table, writers stopped)"
    [ "${v%/*}" = replication ] && label="$label (wait for logical replication, sequences)"
    if [ "$st" != ok ]; then
      echo "| pgbench -s $s ($freeze MiB) | $label | run failed ($mib) | | | | | |"
      continue
    fi
    back=${back//_/ }
    [ "$back" = "-" ] || back="**$back s**"
    echo "| pgbench -s $s ($mib MiB) | $label | **$freeze s** | $brows / $copied / $lost | $gown | $run s | $back | $brows2 / $lost2 |"
  done
done
echo
echo "Command: \`SCALES=\"$SCALES\" VARIANTS=\"$VARIANTS\" RATE=$RATE VERIFY=$VERIFY bench/cutover_bench.sh\`; runbook $("$rb" --version | awk '{print $2}') (main at $(git log -1 --format=%h)); PostgreSQL $(postgres --version | awk '{print $3}') ×2 on one machine (pg_cluster.py: fsync off), the API simulator and the real kubectl $(kubectl version --client -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])'); the engine reaches both servers through kubectl port-forwards (the simulator relays them), the writer and green's subscription directly; machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, load average at the end $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')."
log "done; reports and logs in $logs"
