# Sourced by the benchmarks: a throwaway PostgreSQL 15 cluster on loopback
# (tests/fixtures/pg_cluster.py) in a fresh directory $work, removed on exit.
# Sets work, port and PGPASSWORD; needs root set to the checkout. A script that
# sets its own EXIT trap calls throwaway_pg_cleanup last in it.
work=$(mktemp -d)
chmod 755 "$work"  # the cluster's directory lives in it and postgres must reach it
throwaway_pg_cleanup() {
  python3 "$root/tests/fixtures/pg_cluster.py" stop --dir "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap throwaway_pg_cleanup EXIT
pwfile="$work/pg-password"
head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$pwfile"
chmod 644 "$pwfile"
port=$(python3 "$root/tests/fixtures/pg_cluster.py" start --dir "$work/pg" --password-file "$pwfile" \
         --stop-with-pid $$ | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
export PGPASSWORD=$(cat "$pwfile")
