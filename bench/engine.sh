#!/usr/bin/env bash
# Task engine benchmark, each figure next to a baseline measured in the same run.
#   bench/engine.sh [path/to/leaseq]        (default: build/examples/leaseq; use a Release build)
#   BENCH_DIR=/dev/shm/x bench/engine.sh    run on another filesystem (default: a dir in $TMPDIR)
#   N=5000 M=100000                         task counts
# 1. N `true` tasks through one runner with 2 slots vs `xargs -P2 -n1 true`, task-spooler
#    (`tsp -S 2`, one `tsp` call per task, submits included) and GNU parallel (`parallel -j2`) over the same N;
#    a tool that is not installed is reported as such.
# 2. `leaseq submit --each-line` of M tasks vs creating M empty files with `xargs touch`.
set -euo pipefail
bin=$(realpath "${1:-build/examples/leaseq}")
n=${N:-5000}
m=${M:-100000}
base=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/leaseq-bench.XXXXXX")}
mkdir -p "$base"
runner_pid=
cleanup() {
  if [ -n "$runner_pid" ]; then kill "$runner_pid" 2>/dev/null || true; wait "$runner_pid" 2>/dev/null || true; fi
  if [ -S "$base/tsp/socket" ]; then tspq -K 2>/dev/null || true; fi
  rm -rf "$base/home" "$base/touch" "$base"/lines.* "$base/tsp"
  rmdir "$base" 2>/dev/null || true
}
trap cleanup EXIT
export LEASEQ_HOME=$base/home
lease=local:bench
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
# task-spooler with a server of its own, kept in $base.
tspq() { TS_SOCKET=$base/tsp/socket TMPDIR=$base/tsp tsp "$@"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

echo "filesystem: $(df -PT "$base" | awk 'NR==2 { print $2 }') ($base), $(nproc) cores"

# 1. Throughput of trivial tasks.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# task-spooler: its own server (TS_SOCKET), 2 slots. Timed from the first submit to the last
# task's end: its server queues only about 1000 jobs, and each task is one `tsp` call (which
# returns at once; the tasks run while the rest are submitted).
tsp_line="tsp -S 2: not installed"
if command -v tsp > /dev/null; then
  mkdir -p "$base/tsp"
  tspq -S 2
  t0=$(now)
  for _ in $(seq "$n"); do last=$(tspq -n true); done
  tspq -w "$last" > /dev/null 2>&1 || true
  t1=$(now)
  tspq -K 2>/dev/null || true
  tsp_rate=$(rate "$n" "$t0" "$t1")
  tsp_line="tsp -S 2: $tsp_rate tasks/s ($(secs "$t0" "$t1") s, submits included)"
fi
parallel_line="parallel -j2: not installed"
if command -v parallel > /dev/null; then
  t0=$(now)
  seq "$n" | parallel --will-cite -j2 -N0 true
  t1=$(now)
  parallel_rate=$(rate "$n" "$t0" "$t1")
  parallel_line="parallel -j2: $parallel_rate tasks/s ($(secs "$t0" "$t1") s)"
fi

awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) print "true" }' > "$base/lines.n"
last_id=$("$bin" submit --lease "$lease" --each-line "$base/lines.n" | tail -n 1)
# xargs right before the runner: on a shared machine the load drifts within minutes.
t0=$(now)
seq "$n" | xargs -P2 -n1 true
t1=$(now)
xargs_rate=$(rate "$n" "$t0" "$t1")
xargs_s=$(secs "$t0" "$t1")
done_dir=$LEASEQ_HOME/runs/$lease/done/bench
t0=$(now)
"$bin" runner --lease "$lease" --node bench --slots 2 --gpu-ids none 2> "$base/home/runner.log" &
runner_pid=$!
# Waiting must cost next to nothing, since the runner and its tasks share the CPU with it: a
# builtin test for the last task's result (it is claimed last) every 20 ms, slept in bash's
# `read -t` (an external sleep 100 times a second took 15% of the CPU, listing the directory
# every 50 ms 12%), then the count once.
exec {idle_fd}<> <(:)
while [ ! -e "$done_dir/$last_id.result.json" ]; do read -r -t 0.02 -u "$idle_fd" || true; done
while [ "$(ls "$done_dir" 2>/dev/null | wc -l)" -lt "$n" ]; do read -r -t 0.02 -u "$idle_fd" || true; done
exec {idle_fd}>&-
t1=$(now)
kill "$runner_pid"; wait "$runner_pid"; runner_pid=
leaseq_rate=$(rate "$n" "$t0" "$t1")
failed=$(grep -l '"state": "FAILED"' "$done_dir"/*.json 2>/dev/null | wc -l || true)
echo "runner, $n x true, 2 slots: leaseq $leaseq_rate tasks/s ($(secs "$t0" "$t1") s, $failed failed)" \
  "| xargs -P2 -n1 true: $xargs_rate tasks/s ($xargs_s s) | ratio $(ratio "$leaseq_rate" "$xargs_rate")"
echo "  same $n tasks: $tsp_line | $parallel_line"

# 2. Batch submit.
awk -v n="$m" 'BEGIN { for (i = 0; i < n; i++) print "echo hello" }' > "$base/lines.m"
mkdir -p "$base/touch"
t0=$(now)
(cd "$base/touch" && seq -f 'f%.0f' "$m" | xargs touch)
t1=$(now)
touch_s=$(secs "$t0" "$t1")
t0=$(now)
"$bin" submit --lease "$lease" --each-line "$base/lines.m" > "$base/lines.ids"
t1=$(now)
got=$(wc -l < "$base/lines.ids")
echo "submit --each-line, $m tasks: leaseq $(secs "$t0" "$t1") s ($got ids)" \
  "| xargs touch of $m empty files: $touch_s s"
