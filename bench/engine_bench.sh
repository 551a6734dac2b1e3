#!/usr/bin/env bash
# Engine-core benchmarks (issue 2), side by side with what users use today:
#   - per-step overhead of a 1,000-step runbook of `log` steps, journal on
#     (every transition committed to SQLite/WAL; fsync'd before any step
#     that may act, so log steps ride on the next sync)   goal <= 2 ms/step
#   - `runbook plan` of that runbook                 goal <= 200 ms
#   - `runbook --version` start-up                   goal <= 20 ms
#   - 50 `exec /bin/true` steps: runbook vs ansible-playbook (connection: local)
# Prints a markdown table on stdout. Needs hyperfine and ansible (installed
# here if missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for p in hyperfine ansible; do command -v "${p/ansible/ansible-playbook}" >/dev/null || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
build=$(scripts/build.sh runbook)
rb="$(pwd)/$build/runbook"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RUNBOOK_STATE="$work/state.db" NO_COLOR=1

gen_logs() {  # N -> runbook of N log steps
  { echo "format: 1"; echo "name: bench-log-$1"; echo "steps:"
    for i in $(seq 1 "$1"); do echo "  - id: s$i"; echo "    log: step $i"; done; } > "$work/log-$1.yaml"
}
gen_logs 1
gen_logs 1000
{ echo "format: 1"; echo "name: bench-true"; echo "steps:"
  for i in $(seq 1 50); do echo "  - id: t$i"; echo "    exec: {argv: [/bin/true]}"; done; } > "$work/true.yaml"
{ echo "- hosts: localhost"; echo "  connection: local"; echo "  gather_facts: false"; echo "  tasks:"
  for i in $(seq 1 50); do echo "    - name: t$i"; echo "      command: /bin/true"; done; } > "$work/true-playbook.yml"

json() { hyperfine --export-json "$work/$1.json" --style none "${@:2}" >/dev/null 2>&1; }
median_ms() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(' '.join('%.1f' % (x['median']*1000) for x in r))" "$work/$1.json"; }

json steps --warmup 1 --runs 5 "$rb run $work/log-1.yaml" "$rb run $work/log-1000.yaml"
read -r one thousand < <(median_ms steps)
per_step=$(python3 -c "print('%.3f' % (($thousand - $one) / 999))")
json plan --warmup 2 --runs 10 "$rb plan $work/log-1000.yaml"
plan=$(median_ms plan)
json version --warmup 5 --runs 50 "$rb --version"
version=$(median_ms version)
json exec --warmup 1 --runs 5 "$rb run $work/true.yaml" \
  "ansible-playbook -i localhost, $work/true-playbook.yml"
read -r rb_true ansible_true < <(median_ms exec)
ansible_version=$(ansible-playbook --version 2>/dev/null | sed -n 1p)  # sed reads it all: no SIGPIPE

cat <<TABLE
| benchmark | runbook | anchor (same run) | goal |
|---|---|---|---|
| per-step overhead, 1,000 \`log\` steps, journal on (SQLite WAL; a log step's commits ride on the next fsync) | ${per_step} ms/step (run of 1,000: ${thousand} ms; run of 1: ${one} ms) | — | ≤ 2 ms |
| \`runbook plan\` of the 1,000-step runbook | ${plan} ms | — | ≤ 200 ms |
| \`runbook --version\` start-up | ${version} ms | — | ≤ 20 ms |
| 50 × \`exec /bin/true\` (each step: spawn, wait, fsync'd start) | ${rb_true} ms | ${ansible_true} ms: ${ansible_version}, \`connection: local\` | — |
TABLE
echo
echo "Medians of hyperfine runs; command: \`bench/engine_bench.sh\`; machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r), $(date -u +%Y-%m-%d)."
