// Log pane benchmark (issue 19, goal 3): the dashboard's worker (examples/dashboard) follows a
// task's log while this program appends numbered lines to it a few ms apart; a line's latency
// is the time from its write() to the worker's message holding it, taken the way the UI loop
// takes it (poll on the worker's wake descriptor, then take()). Cases: inotify, and
// LEASEQ_NO_INOTIFY=1 (the 250 ms poll) as the same-run baseline.
//
//   leaseq_bench_log_pane [LINES] [DIR]      (defaults: 300 lines, $TMPDIR or /tmp)
#include <poll.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "dashboard/worker.hpp"
#include "latency_stats.hpp"

using clk = std::chrono::steady_clock;
using namespace leaseq_dash;
using bench_stats::summarize;

namespace {

bool holds(const std::vector<message>& msgs, const std::string& line) {
  for (const auto& m : msgs)
    if (const auto* l = std::get_if<msg_log>(&m))
      if (!l->lines.empty() && l->lines.back() == line) return true;
  return false;
}

// Latencies (ms) of `lines` lines appended to a followed log.
std::vector<double> run_case(const std::filesystem::path& dir, int lines) {
  std::filesystem::remove_all(dir);
  auto home = dir / "home";
  leaseq::lease_paths lp(leaseq::home_paths(home.string()), "local:bench");
  leaseq::ensure_dir(lp.logs("n1"));
  std::string log = lp.stdout_log("n1", "T001").string();
  std::ofstream(log) << "start\n";
  leaseq::config cfg;
  worker w(home.string(), cfg, "/nonexistent/leaseq");
  follow_target ft;
  ft.id = 1;
  ft.tasks.push_back({"T001", "n1", log, lp.stderr_log("n1", "T001").string()});
  w.send(req_follow{ft});
  auto wait_for = [&](const std::string& line) {
    for (;;) {
      struct pollfd p {
        w.wake_fd(), POLLIN, 0
      };
      ::poll(&p, 1, 1000);
      if (holds(w.take(), line)) return;
    }
  };
  wait_for("start");
  std::vector<double> out;
  std::ofstream f(log, std::ios::app);
  for (int i = 0; i < lines; ++i) {
    std::string line = "line " + std::to_string(i);
    auto t0 = clk::now();
    f << line << '\n' << std::flush;
    wait_for(line);
    out.push_back(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
    std::this_thread::sleep_for(std::chrono::milliseconds(3 + i % 7));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int lines = argc > 1 ? std::atoi(argv[1]) : 300;
  const char* tmp = std::getenv("TMPDIR");
  std::filesystem::path base =
      std::filesystem::path(argc > 2 ? argv[2] : (tmp && *tmp ? tmp : "/tmp")) /
      ("leaseq-bench-pane-" + std::to_string(::getpid()));
  auto inotify = summarize(run_case(base / "inotify", lines));
  ::setenv("LEASEQ_NO_INOTIFY", "1", 1);
  auto polled = summarize(run_case(base / "polled", std::max(20, lines / 10)));
  std::filesystem::remove_all(base);
  std::printf("log pane, write -> worker message, %d lines\n", lines);
  std::printf("  inotify:            mean %.2f ms  p50 %.2f  p99 %.2f  max %.2f\n", inotify.mean,
              inotify.p50, inotify.p99, inotify.max);
  std::printf("  LEASEQ_NO_INOTIFY:  mean %.2f ms  p50 %.2f  p99 %.2f  max %.2f  (baseline)\n",
              polled.mean, polled.p50, polled.p99, polled.max);
  return 0;
}
