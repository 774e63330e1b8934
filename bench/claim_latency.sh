#!/usr/bin/env bash
# Idle runner: how long a task submitted to an idle runner waits for its claim (claimed -
# created, from the result files), with inotify (the default) and, as the same-run baseline,
# with LEASEQ_NO_INOTIFY=1 (the idle poll that backs off to 1 s).
#   bench/claim_latency.sh [path/to/leaseq]   (default: build/examples/leaseq)
#   BENCH_DIR=/dev/shm/x  K=20                filesystem; submits per mode
set -euo pipefail
bin=$(realpath "${1:-build/examples/leaseq}")
k=${K:-20}
base=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/leaseq-claim.XXXXXX")}
mkdir -p "$base"
runner_pid=
cleanup() {
  if [ -n "$runner_pid" ]; then kill "$runner_pid" 2>/dev/null || true; wait "$runner_pid" 2>/dev/null || true; fi
  rm -rf "$base/home"
  rmdir "$base" 2>/dev/null || true
}
trap cleanup EXIT
echo "filesystem: $(df -PT "$base" | awk 'NR==2 { print $2 }') ($base), $(nproc) cores"

measure() {  # $1: label; runs with the current environment
  rm -rf "$base/home"
  export LEASEQ_HOME=$base/home
  local lease=local:bench
  "$bin" submit --lease "$lease" --force -- true > /dev/null  # creates the tree
  "$bin" runner --lease "$lease" --node bench --slots 1 --gpu-ids none 2> "$base/runner.log" &
  runner_pid=$!
  local ids=() published=()
  for _ in $(seq "$k"); do
    sleep 1.3  # past the idle back-off's 1 s ceiling
    ids+=("$("$bin" submit --lease "$lease" -- true)")
    published+=("$(date +%s.%N)")  # the submit has returned: its task is visible
  done
  "$bin" wait --lease "$lease" --timeout 60s "${ids[@]}" > /dev/null
  kill "$runner_pid"; wait "$runner_pid" 2>/dev/null || true; runner_pid=
  local pairs=()
  for i in "${!ids[@]}"; do
    pairs+=("$LEASEQ_HOME/runs/$lease/done/bench/${ids[$i]}.result.json" "${published[$i]}")
  done
  # From the submit's return (its task visible) to the claim; at most 0 when the runner was
  # quicker than the submitting shell.
  python3 -c '
import json, sys
a = sys.argv[2:]
rs = [(json.load(open(a[i])), float(a[i + 1])) for i in range(0, len(a), 2)]
def stats(v):
    v = sorted(v); n = len(v)
    return "median %.1f ms, p90 %.1f ms, max %.1f ms" % (v[n // 2], v[max(0, int(n * 0.9) - 1)], v[-1])
print("%s %d submits" % (sys.argv[1], len(rs)))
print("  submit returned -> claimed: " + stats([max(0.0, r["claimed"] - t) * 1000 for r, t in rs]))
print("  submit started  -> claimed: " + stats([(r["claimed"] - r["created"]) * 1000 for r, t in rs]))' "$1" "${pairs[@]}"
}

measure "idle runner, inotify:"
LEASEQ_NO_INOTIFY=1 measure "idle runner, polling only:"
