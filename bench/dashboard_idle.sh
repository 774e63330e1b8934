#!/usr/bin/env bash
# Dashboard idle CPU: the real `leaseq tui`, in tmux, left alone on a lease of N PENDING tasks
# for S seconds once its first scan is shown; CPU time (utime + stime of /proc/<pid>/stat) per
# second of wall time, in % of one core. Baseline, same run: the same at 11 tasks.
#   bench/dashboard_idle.sh [path/to/leaseq]     (default: build/examples/leaseq; Release build)
#   N="11 100000 1000000" S=20 BENCH_DIR=/dev/shm/x bench/dashboard_idle.sh ...
#   TREE=build-rel/bench/leaseq_bench_dashboard ...: the lease is written directly (bench_tree.hpp:
#   64 nodes, half done with the results index, one running per node, the rest pending)
#   instead of submitted, which takes too long for a million tasks.
set -euo pipefail
bin=$(realpath "${1:-build/examples/leaseq}")
counts=${N:-"11 100000"}
secs=${S:-20}
base=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/leaseq-idle.XXXXXX")}
mkdir -p "$base"
sock=leaseq-idle-$$
cleanup() {
  tmux -L "$sock" kill-server 2>/dev/null || true
  rm -rf "$base"/home-*
  rmdir "$base" 2>/dev/null || true
}
trap cleanup EXIT
lease=local:bench
hz=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

echo "filesystem: $(df -PT "$base" | awk 'NR==2 { print $2 }') ($base), $(nproc) cores, ${secs} s each"
for n in $counts; do
  home=$base/home-$n
  mkdir -p "$home"
  if [ -n "${TREE:-}" ]; then
    "$TREE" --tree-only "$n" "$home"
  else
    LEASEQ_HOME=$home "$bin" submit --lease "$lease" --array "1-$n" -- true > /dev/null
  fi
  tmux -L "$sock" new-session -d -x 200 -y 50 \
    "exec env LEASEQ_HOME=$home $bin tui --lease $lease"
  pid=$(tmux -L "$sock" list-panes -F '#{pane_pid}')
  # Wait for the first full scan on screen (the title counts every task, and no longer says
  # it is reading task files after a quick first scan), then let it settle.
  for _ in $(seq 6000); do
    screen=$(tmux -L "$sock" capture-pane -p)
    grep -q "tasks [0-9]*/$n " <<< "$screen" && ! grep -q "reading task files" <<< "$screen" &&
      break
    sleep 0.1
  done
  sleep 3
  t0=$(ticks "$pid")
  sleep "$secs"
  t1=$(ticks "$pid")
  rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
  tmux -L "$sock" kill-server
  awk -v n="$n" -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$secs" -v rss="$rss" 'BEGIN {
    printf "%8d tasks: %.2f%% of a core (%d ticks of 1/%d s in %d s), RSS %.0f MB\n",
           n, 100 * (b - a) / hz / s, b - a, hz, s, rss / 1024 }'
  rm -rf "$home"
done
