#!/usr/bin/env bash
# PostgreSQL benchmarks (issue 3), side by side with what users use today, in
# one run on two throwaway PostgreSQL 15 clusters (tests/fixtures/pg_cluster.py):
#   - cloning a database into a fresh, empty database on another server:
#       runbook's `pg.copy {all: true, jobs: 2}`
#       vs `pg_dump | psql`
#       vs `pg_dump -Fd -j 2` + `pg_restore -j 2` (both in the time)
#       vs `pgcopydb clone --table-jobs 2 --index-jobs 2` (Debian's pgcopydb),
#          with and without `--split-tables-larger-than 256MB`
#     (and pg.copy with `split_tables_larger_than: 256MB`, so that what
#     splitting large tables gains or costs is measured in the same run)
#     on `pgbench -i -s $SCALE` plus a less compressible table (random bytea),
#     median of $RUNS runs of each, the tools taking turns within each round;
#     the target database is dropped and created again (and checkpointed)
#     before every run, outside the time. Every clone is then checked (row
#     counts of the 8 tables, number of indexes and constraints, a sequence).
#   - `pg.compare_counts` (mode count) of 8 tables x 2 databases vs a psql loop
#     (one `SELECT count(*)` per table and database) and vs one hand-written
#     query per database, both at once (hyperfine, median of 5).
# Progress goes to stderr; the markdown table for bench/RESULTS.md to stdout.
#
#   SCALE=50 RUNS=3 bench/pg_copy_bench.sh      (defaults; SCALE=50 is ~750 MiB)
#
# Installs what is missing (as root): postgresql-15, pgcopydb, hyperfine. Uses
# the built runbook binary ($RUNBOOK_BIN, default build/runbook; build it with
# scripts/build.sh runbook). Passwords travel in the environment only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
SCALE=${SCALE:-50}
RUNS=${RUNS:-3}
COUNT_RUNS=${COUNT_RUNS:-5}
rb=${RUNBOOK_BIN:-$root/build/runbook}
[ -x "$rb" ] || { echo "pg_copy_bench: no runbook binary at $rb (scripts/build.sh runbook)" >&2; exit 1; }

missing=()
[ -x /usr/lib/postgresql/15/bin/pgbench ] || missing+=(postgresql-15 postgresql-client-15)
command -v pgcopydb >/dev/null || missing+=(pgcopydb)
command -v hyperfine >/dev/null || missing+=(hyperfine)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH=/usr/lib/postgresql/15/bin:$PATH  # the server's own pg_dump, psql, pgbench

work=$(mktemp -d)
logs=$(mktemp -d /tmp/pg_copy_bench-logs.XXXXXX)  # kept: every tool's output
chmod 755 "$work"  # the clusters' directories live in it and postgres must reach them
stop_all() {
  for c in src dst; do
    python3 "$root/tests/fixtures/pg_cluster.py" stop --dir "$work/$c" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap stop_all EXIT
export RUNBOOK_STATE="$work/state.db" NO_COLOR=1
pwfile="$work/pg-password"
head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$pwfile"
chmod 644 "$pwfile"  # read by initdb as the postgres user
start() {  # dir -> port
  python3 "$root/tests/fixtures/pg_cluster.py" start --dir "$work/$1" --password-file "$pwfile" \
      --stop-with-pid $$ | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])'
}
log() { echo "== $(date -u +%H:%M:%S) $*" >&2; }

log "starting two throwaway PostgreSQL 15 clusters"
sp=$(start src)
tp=$(start dst)
PGPASSWORD=$(cat "$pwfile")
export PGPASSWORD BENCH_PG_PASSWORD=$PGPASSWORD PGUSER=postgres PGHOST=127.0.0.1
psql_src() { psql -X -q -v ON_ERROR_STOP=1 -p "$sp" "$@"; }
psql_dst() { psql -X -q -v ON_ERROR_STOP=1 -p "$tp" "$@"; }
log "source on 127.0.0.1:$sp, target on 127.0.0.1:$tp ($work)"

# ---- the source database ----------------------------------------------------
blob_rows=$((2000 * SCALE))  # 100,000 at SCALE=50
log "building the source: pgbench -i -s $SCALE, $blob_rows rows of random bytea, 3 small tables"
psql_src -d postgres -c "CREATE DATABASE bench"
pgbench -i -q -s "$SCALE" -p "$sp" bench >"$logs/pgbench.log" 2>&1 || { cat "$logs/pgbench.log" >&2; exit 1; }
psql_src -d bench <<SQL
CREATE TABLE bench_blobs (id bigint PRIMARY KEY, note text NOT NULL, payload bytea NOT NULL);
-- 1 KiB of random bytes a row: stored inline and uncompressed (below the TOAST threshold)
INSERT INTO bench_blobs
SELECT g, md5(random()::text),
       decode((SELECT string_agg(md5(random()::text || i), '') FROM generate_series(1, 64 + 0 * g) i), 'hex')
  FROM generate_series(1, $blob_rows) g;
CREATE TABLE bench_small_1 (id serial PRIMARY KEY, name text NOT NULL, created timestamptz DEFAULT now());
CREATE TABLE bench_small_2 (id bigint PRIMARY KEY, small_1 int REFERENCES bench_small_1, score numeric(10, 2));
CREATE TABLE bench_small_3 (k text PRIMARY KEY, v jsonb);
INSERT INTO bench_small_1 (name) SELECT 'name ' || g FROM generate_series(1, 1000) g;
INSERT INTO bench_small_2 SELECT g, 1 + g % 1000, g / 7.0 FROM generate_series(1, 2000) g;
INSERT INTO bench_small_3 SELECT 'key' || g, jsonb_build_object('g', g, 's', md5(g::text)) FROM generate_series(1, 500) g;
CREATE INDEX ON bench_blobs (note);
SQL
psql_src -d bench -c "VACUUM ANALYZE"
tables=(pgbench_accounts pgbench_branches pgbench_tellers pgbench_history bench_blobs bench_small_1 bench_small_2 bench_small_3)
read -r table_bytes total_bytes db_bytes < <(psql_src -d bench -At -F ' ' -c "
  SELECT sum(pg_table_size(c.oid)), sum(pg_total_relation_size(c.oid)), pg_database_size(current_database())
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind = 'r' AND n.nspname = 'public'")
mib() { python3 -c "print('%.1f' % ($1 / 1048576))"; }
table_mib=$(mib "$table_bytes"); total_mib=$(mib "$total_bytes"); db_mib=$(mib "$db_bytes")
log "source database: $db_mib MiB (pg_database_size); tables $table_mib MiB without indexes (sum of pg_table_size), $total_mib MiB with them"

# What a correct clone must show: row counts, indexes, constraints, a sequence.
sig_sql="SELECT concat_ws(' ',
  $(for t in "${tables[@]}"; do printf "'%s=' || (SELECT count(*) FROM %s), " "$t" "$t"; done)
  'indexes=' || (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'),
  'constraints=' || (SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'),
  'seq=' || (SELECT last_value FROM bench_small_1_id_seq))"
src_sig=$(psql_src -d bench -At -c "$sig_sql")
log "source: $src_sig"

# ---- the clone commands (each a small script; none shows a password) ---------
src_conn="host=127.0.0.1 port=$sp user=postgres dbname=bench"
dst_conn="host=127.0.0.1 port=$tp user=postgres dbname=bench"
cat > "$work/copy.yaml" <<'YAML'
format: 1
name: bench-pg-copy
params:
  source: {type: string, required: true}
  target: {type: string, required: true}
  password: {type: string, secret: true, env: BENCH_PG_PASSWORD, default: ""}
  split: {type: string, default: "0"}
connections:
  src: {postgres: {dsn: "${{ params.source }}", password: "${{ params.password }}"}}
  dst: {postgres: {dsn: "${{ params.target }}", password: "${{ params.password }}"}}
steps:
  - id: copy
    pg.copy: {source: src, target: dst, all: true, jobs: 2, split_tables_larger_than: "${{ params.split }}"}
    timeout: 4h
YAML
{ echo "format: 1"; echo "name: bench-compare-counts"
  sed -n '/^params:/,/^  dst:/p' "$work/copy.yaml"
  echo "steps:"; echo "  - id: compare"
  echo "    pg.compare_counts: {source: src, target: dst, mode: count, tables: [$(IFS=,; echo "${tables[*]}")]}"
} > "$work/counts.yaml"

tools=(pgcopydb pgcopydb_split dump_restore dump_psql pg_copy_split pg_copy)
declare -A label=(
  [pg_copy]="runbook \`pg.copy {all: true, jobs: 2}\`"
  [pg_copy_split]="runbook \`pg.copy {all: true, jobs: 2, split_tables_larger_than: 256MB}\`"
  [dump_psql]="\`pg_dump \\| psql\`"
  [dump_restore]="\`pg_dump -Fd -j 2\` + \`pg_restore -j 2\`"
  [pgcopydb]="\`pgcopydb clone --table-jobs 2 --index-jobs 2\`"
  [pgcopydb_split]="\`pgcopydb clone --table-jobs 2 --index-jobs 2 --split-tables-larger-than 256MB\`"
)
cat > "$work/pg_copy.sh" <<EOF
exec "$rb" run "$work/copy.yaml" -p source="$src_conn" -p target="$dst_conn"
EOF
cat > "$work/pg_copy_split.sh" <<EOF
exec "$rb" run "$work/copy.yaml" -p source="$src_conn" -p target="$dst_conn" -p split=256MB
EOF
cat > "$work/dump_psql.sh" <<EOF
set -o pipefail
pg_dump -p $sp -d bench | psql -X -q -v ON_ERROR_STOP=1 -p $tp -d bench >/dev/null
EOF
cat > "$work/dump_restore.sh" <<EOF
set -e
pg_dump -p $sp -d bench -Fd -j 2 -f "$work/dump"
pg_restore -p $tp -d bench -j 2 --exit-on-error "$work/dump"
EOF
cat > "$work/pgcopydb.sh" <<EOF
exec pgcopydb clone --source "postgres://postgres@127.0.0.1:$sp/bench" \\
  --target "postgres://postgres@127.0.0.1:$tp/bench" --dir "$work/pgcopydb" \\
  --table-jobs 2 --index-jobs 2 --no-owner --no-acl
EOF
cat > "$work/pgcopydb_split.sh" <<EOF
exec pgcopydb clone --source "postgres://postgres@127.0.0.1:$sp/bench" \\
  --target "postgres://postgres@127.0.0.1:$tp/bench" --dir "$work/pgcopydb" \\
  --table-jobs 2 --index-jobs 2 --no-owner --no-acl --split-tables-larger-than 256MB
EOF
cat > "$work/timeit.py" <<'PY'
# timeit.py LOG SCRIPT -> "seconds exit_code peak_rss_kib" (largest descendant)
import resource, subprocess, sys, time
with open(sys.argv[1], "ab") as log:
    t0 = time.perf_counter()
    rc = subprocess.call(["bash", sys.argv[2]], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    t = time.perf_counter() - t0
print("%.3f %d %d" % (t, rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
PY

fresh_target() {
  PGOPTIONS="-c client_min_messages=warning" psql_dst -d postgres -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench TEMPLATE template0" -c "CHECKPOINT"
  rm -rf "$work/dump" "$work/pgcopydb"
}

declare -A times rss fail
for r in $(seq 1 "$RUNS"); do
  for t in "${tools[@]}"; do
    [ -n "${fail[$t]:-}" ] && continue
    fresh_target
    read -r secs rc kib < <(python3 "$work/timeit.py" "$logs/$t.log" "$work/$t.sh")
    if [ "$rc" -ne 0 ]; then
      reason=$(grep -m1 -iE 'error|fatal|failed' "$logs/$t.log" || tail -n1 "$logs/$t.log")
      fail[$t]="exit $rc: $(echo "$reason" | cut -c1-200 | tr '|' '/')"
      log "$t run $r FAILED (${fail[$t]}); log: $logs/$t.log"
      continue
    fi
    sig=$(psql_dst -d bench -At -c "$sig_sql" 2>&1 || true)
    if [ "$sig" != "$src_sig" ]; then
      fail[$t]="incomplete clone: target has '$sig'"
      log "$t run $r: ${fail[$t]}"
      continue
    fi
    times[$t]="${times[$t]:-} $secs"
    rss[$t]=$(( kib > ${rss[$t]:-0} ? kib : ${rss[$t]:-0} ))
    log "$t run $r: ${secs} s, peak RSS $((kib / 1024)) MiB, clone verified"
  done
done
# The last clone in each round is pg.copy's: the counts below compare it with the source.

median() {  # "secs secs ..." -> median
  local -a v; read -ra v <<<"$1"
  python3 -c "import statistics,sys; print('%.1f' % statistics.median(map(float, sys.argv[1:])))" "${v[@]}"
}
best_other="" best_other_t=""
for t in dump_psql dump_restore pgcopydb pgcopydb_split; do
  [ -z "${fail[$t]:-}" ] || continue
  m=$(median "${times[$t]}")
  if [ -z "$best_other_t" ] || python3 -c "import sys; sys.exit(0 if $m < $best_other_t else 1)"; then
    best_other=$t best_other_t=$m
  fi
done

# ---- counts -------------------------------------------------------------------
log "counts: pg.compare_counts vs a psql loop vs one query per database (median of $COUNT_RUNS)"
loop="for p in $sp $tp; do for t in ${tables[*]}; do psql -X -qAt -p \$p -d bench -c \"SELECT count(*) FROM \$t\" >/dev/null; done; done"
one_query="SELECT $(for t in "${tables[@]}"; do printf "(SELECT count(*) FROM %s), " "$t"; done | sed 's/, $//')"
echo "$one_query" > "$work/one-query.sql"
both="psql -X -qAt -p $sp -d bench -f $work/one-query.sql >/dev/null & psql -X -qAt -p $tp -d bench -f $work/one-query.sql >/dev/null & wait"
hyperfine --export-json "$work/counts.json" --style none --warmup 1 --runs "$COUNT_RUNS" \
  "$rb run $work/counts.yaml -p source='$src_conn' -p target='$dst_conn'" "$loop" "$both" >"$logs/hyperfine.log" 2>&1 ||
  { cat "$logs/hyperfine.log" >&2; exit 1; }
read -r c_rb c_loop c_both < <(python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(' '.join('%.1f' % (x['median']*1000) for x in r))" "$work/counts.json")

# ---- the table ----------------------------------------------------------------
row() {  # tool
  local t=$1
  if [ -n "${fail[$t]:-}" ]; then
    echo "| ${label[$t]} | n/a | n/a | n/a | ${fail[$t]} |"
    return
  fi
  local m; m=$(median "${times[$t]}")
  local rate; rate=$(python3 -c "print('%.1f' % ($table_bytes / 1048576 / $m))")
  local -a runs; read -ra runs <<<"${times[$t]}"
  local note; note="runs: $(python3 -c "import sys; print(' '.join('%.1f' % float(x) for x in sys.argv[1:]))" "${runs[@]}") s"
  [[ "$t" = pgcopydb* ]] && note="$note; $(pgcopydb --version 2>/dev/null | sed -n 's/^pgcopydb version /pgcopydb /p')"
  [ "$t" = pg_copy ] && [ -n "$best_other" ] &&
    note="$note; **$(python3 -c "print('%.2f' % ($best_other_t / $m))")× the best other tool** (${label[$best_other]}, goal ≥ 1.4×)"
  echo "| ${label[$t]} | $m s | $rate MiB/s | $((rss[$t] / 1024)) MiB | $note |"
}
echo "Source: \`pgbench -i -s $SCALE\` + \`bench_blobs\` ($blob_rows rows of 1 KiB random bytea) + 3 small tables, \`VACUUM ANALYZE\`d: database $db_mib MiB (\`pg_database_size\`), table data $table_mib MiB (sum of \`pg_table_size\`: heap + TOAST, no indexes; MiB/s below is this over the median time), $total_mib MiB with indexes."
echo
echo "| clone into a fresh database (median of $RUNS) | time | table data MiB/s | peak RSS (largest client process) | notes |"
echo "|---|---|---|---|---|"
for t in pg_copy pg_copy_split dump_psql dump_restore pgcopydb pgcopydb_split; do row "$t"; done
echo
echo "| 8 tables × 2 databases, exact counts (median of $COUNT_RUNS) | time | anchors (same run) | goal |"
echo "|---|---|---|---|"
echo "| runbook \`pg.compare_counts {mode: count}\` (whole \`runbook run\`: start-up, state store, 2 connections) | ${c_rb} ms | psql loop, one \`SELECT count(*)\` per table and database (16 psql): ${c_loop} ms; one hand-written query per database, both at once (2 psql): ${c_both} ms | no slower than one query per database, both at once |"
echo
echo "Command: \`SCALE=$SCALE RUNS=$RUNS bench/pg_copy_bench.sh\`; runbook $("$rb" --version | awk '{print $2}') (binary built $(date -u -r "$rb" '+%Y-%m-%d %H:%M UTC'), main at $(git log -1 --format=%h)), PostgreSQL $(postgres --version | awk '{print $3}') ×2 on one machine (pg_cluster.py: fsync off, shared_buffers 32MB), loopback TCP; each clone checked (row counts, indexes, constraints, sequence); tools took turns in each round (pgcopydb, pgcopydb split, pg_dump -Fd, pg_dump | psql, pg.copy split, pg.copy); machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r), load average at the end $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')."
log "done; every tool's output is in $logs"
