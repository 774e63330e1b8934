// Dashboard benchmark (issue 19 goals 1 and 4): the first frame and the UI thread's work per
// key and per idle tick on a lease of TASKS tasks over 64 nodes (bench_tree.hpp: half done
// with the results index, one running per node, the rest pending). In process: the
// dashboard's own store options, model, update() and view() on a real tree, as
// examples/tui.cpp drives them (a key: update(key) + update(tick) + view, into a 200x50 frame).
//   first frame   the quick store's first scan + update(snapshot) + view (what `leaseq tui`
//                 shows first); next to it the full scan that follows on the load thread, and
//                 what the first frame cost before (the full scan on the way to the frame);
//   keys          j, k, a state filter on and off, and `/` search typed one character at a
//                 time, on the full snapshot: the UI thread's work, and the derive thread's
//                 work for the same key (filtering and sorting a big table happen there);
//   idle tick     update(tick) + view with nothing changed;
// baselines, same run: a bare opendir/readdir of the tree, and one full redraw (view + present
// of a whole frame to an empty terminal).
//
//   leaseq_bench_dashboard [TASKS...] [--dir DIR]    (defaults: 100000 1000000, /dev/shm)
//   leaseq_bench_dashboard --tree-only TASKS HOME    (only writes the lease local:bench under
//                                                     HOME, for bench/dashboard_idle.sh)
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <leaseq/file_io.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/store.hpp>
#include <leaseq/task_file.hpp>
#include <leaseq/tui/screen.hpp>

#include "bench_tree.hpp"
#include "dashboard/derive.hpp"
#include "dashboard/model.hpp"
#include "dashboard/update.hpp"
#include "dashboard/view.hpp"
#include "dashboard/worker.hpp"

using namespace leaseq;
using namespace leaseq_dash;
using clk = std::chrono::steady_clock;

namespace {

double ms_since(clk::time_point t0) {
  return std::chrono::duration<double, std::milli>(clk::now() - t0).count();
}

// The UI and derive figures are this thread's CPU time: on a shared machine wall time also
// counts the time other processes ran.
double cpu_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

constexpr int width = 200, height = 50;

// What the loop does for one event: update, a tick, then the frame.
double ui_step(model& m, const tui::event& ev, tui::buffer& buf) {
  double t0 = cpu_ms();
  update(m, ev);
  update(m, message{msg_tick{m.now}});
  view(m, buf);
  return cpu_ms() - t0;
}

struct key_figure {
  double ui_ms = 0;      // the UI thread: update + view
  double derive_ms = 0;  // the derive thread, for the req_derive the key posted (0: none)
  std::size_t rows = 0;
};

// One key as the program handles it: the UI step, then (as the worker would) the derive
// request it posted, whose rows come back as a message and one more frame (counted as UI).
key_figure press_key(model& m, tui::key k, tui::buffer& buf) {
  key_figure f;
  f.ui_ms = ui_step(m, tui::key_event{k}, buf);
  std::vector<request> out = std::exchange(m.outbox, {});
  for (auto& r : out) {
    auto* d = std::get_if<req_derive>(&r);
    if (!d) continue;
    double t0 = cpu_ms();
    auto rows = derive_rows(d->from, d->stderr_ids);
    f.derive_ms += cpu_ms() - t0;
    t0 = cpu_ms();
    update(m, message{msg_rows{d->from, std::move(*rows)}});
    view(m, buf);
    f.ui_ms += cpu_ms() - t0;
  }
  f.rows = m.visible_total;
  return f;
}

model dashboard_model(const std::string& lease) {
  model m;
  m.width = width;
  m.height = height;
  m.now = unix_now();
  open_lease(m, lease);
  m.outbox.clear();
  return m;
}

void run_size(int tasks, const fs::path& base) {
  fs::path root = base / ("leaseq-bench-dashboard-" + std::to_string(::getpid()));
  home_paths home(root / "home");
  ensure_dir(home.root(), 0700);
  std::string lease = "local:bench";
  lease_paths lp(home, lease);
  std::printf("\n== %d tasks over %d nodes (%s) ==\n", tasks, bench_tree::nodes, root.c_str());
  auto t0 = clk::now();
  bench_tree::build_tree(lp, lease, tasks);
  bench_tree::write_results_index(lp, tasks);
  std::printf("  tree and results index written in %.1f s\n", ms_since(t0) / 1e3);

  double readdir_ms = 1e18;
  long entries = 0;
  for (int i = 0; i < 3; ++i) {
    t0 = clk::now();
    entries = bench_tree::bare_readdir(lp);
    readdir_ms = std::min(readdir_ms, ms_since(t0));
  }
  ui_config ui;
  tui::buffer buf(width, height);

  // First frame, as `leaseq tui` opens a big lease: the quick scan, then the frame.
  t0 = clk::now();
  snapshot_store<> quick(lp, lease, dashboard_store_options(ui, true));
  auto first = quick.refresh();
  double quick_scan_ms = ms_since(t0);
  model m = dashboard_model(lease);
  update(m, message{msg_snapshot{first, true}});
  for (auto& r : std::exchange(m.outbox, {}))
    if (auto* d = std::get_if<req_derive>(&r))
      update(m, message{msg_rows{d->from, *derive_rows(d->from, d->stderr_ids)}});
  view(m, buf);
  double first_frame_ms = ms_since(t0);

  // Rows the quick scan left unread, read when they come on screen (the first page shows the
  // RUNNING tasks, whose files it read): End, then the scan thread's answer to req_read_rows
  // and the frame that shows it.
  update(m, tui::event{tui::key_event{tui::key::of(tui::key_code::end)}});
  t0 = clk::now();
  std::size_t rows_read = 0;
  for (auto& r : std::exchange(m.outbox, {}))
    if (auto* a = std::get_if<req_read_rows>(&r)) {
      msg_rows_read out{a->lease_id, {}};
      for (const auto& t : a->rows)
        if (auto v = read_view_in_full(lp, t)) out.rows.push_back(std::move(*v));
      rows_read += out.rows.size();
      update(m, message{std::move(out)});
    }
  view(m, buf);
  double rows_read_ms = ms_since(t0);

  // The full scan the load thread then runs (and what the first frame waited for before).
  t0 = clk::now();
  snapshot_store<> full(lp, lease, dashboard_store_options(ui, false));
  auto whole = full.refresh();
  double full_scan_ms = ms_since(t0);
  t0 = clk::now();
  model old = dashboard_model(lease);
  old.derive_inline_max = SIZE_MAX;  // the whole derivation on the UI thread, as before
  update(old, message{msg_snapshot{whole}});
  view(old, buf);
  double old_frame_ms = full_scan_ms + ms_since(t0);

  // Baseline: one full redraw of the dashboard, to an empty terminal.
  update(m, message{msg_snapshot{whole}});
  for (auto& r : std::exchange(m.outbox, {}))
    if (auto* d = std::get_if<req_derive>(&r))
      update(m, message{msg_rows{d->from, *derive_rows(d->from, d->stderr_ids)}});
  double redraw_ms = 1e18;
  for (int i = 0; i < 5; ++i) {
    double c0 = cpu_ms();
    tui::buffer back(width, height);
    view(m, back);
    std::string bytes = tui::present(tui::buffer(width, height), back);
    redraw_ms = std::min(redraw_ms, cpu_ms() - c0);
  }

  std::printf("  baseline: bare readdir of the tree       %8.1f ms  (%ld entries)\n", readdir_ms,
              entries);
  std::printf("  baseline: one full redraw (view+present) %8.2f ms\n", redraw_ms);
  std::printf("  first frame (quick scan %.0f ms + frame)  %8.1f ms  %.1fx readdir\n",
              quick_scan_ms, first_frame_ms, first_frame_ms / readdir_ms);
  std::printf("  rows on screen read in full (%3zu files)  %8.1f ms\n", rows_read, rows_read_ms);
  std::printf("  full scan that follows (load thread)     %8.1f ms\n", full_scan_ms);
  std::printf("  first frame before (full scan + frame)   %8.1f ms\n", old_frame_ms);

  // Keys on the full snapshot: the median and the worst of a few presses (the worst on a busy
  // machine includes being descheduled).
  std::printf("  %-34s %16s %10s %10s %16s\n", "key", "UI ms med/max", "derive ms", "matches",
              "old UI med/max");
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  auto report = [&](const char* name, std::vector<tui::key> keys) {
    std::vector<double> ui_ms, old_ms;
    double derive_ms = 0;
    std::size_t rows = 0;
    for (const auto& k : keys) {
      key_figure f = press_key(m, k, buf);
      key_figure o = press_key(old, k, buf);
      ui_ms.push_back(f.ui_ms);
      old_ms.push_back(o.ui_ms);
      derive_ms = std::max(derive_ms, f.derive_ms);
      rows = f.rows;
    }
    std::printf("  %-34s %7.2f/%7.2f %10.1f %10zu %7.1f/%7.1f\n", name, median(ui_ms),
                *std::max_element(ui_ms.begin(), ui_ms.end()), derive_ms, rows, median(old_ms),
                *std::max_element(old_ms.begin(), old_ms.end()));
  };
  using tui::key;
  update(old, message{msg_tick{m.now}});
  report("j x20", std::vector<key>(20, key::ch('j')));
  report("k x20", std::vector<key>(20, key::ch('k')));
  report("1 (PEND filter on, off) x2", {key::ch('1'), key::ch('1'), key::ch('1'), key::ch('1')});
  report("4 (DONE filter on, off) x2", {key::ch('4'), key::ch('4'), key::ch('4'), key::ch('4')});
  press_key(m, key::ch('/'), buf);
  press_key(old, key::ch('/'), buf);
  std::vector<key> typed;
  for (char c : std::string("cfg12")) typed.push_back(key::ch(static_cast<char32_t>(c)));
  report("/ search: c f g 1 2, one at a time", typed);
  report("backspace x5", std::vector<key>(5, key::of(tui::key_code::backspace)));
  press_key(m, key::of(tui::key_code::escape), buf);
  press_key(old, key::of(tui::key_code::escape), buf);

  // Idle: ticks with nothing changed.
  double tick_total = 0, tick_worst = 0;
  const int ticks = 40;
  for (int i = 0; i < ticks; ++i) {
    m.now += 0.25;
    double c0 = cpu_ms();
    update(m, message{msg_tick{m.now}});
    view(m, buf);
    double ms = cpu_ms() - c0;
    tick_total += ms;
    tick_worst = std::max(tick_worst, ms);
  }
  std::printf("  idle tick (update(tick) + view)          %8.3f ms mean, %.3f ms worst\n",
              tick_total / ticks, tick_worst);
  fs::remove_all(root);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--tree-only") {
    home_paths home{fs::path(argv[3])};
    ensure_dir(home.root(), 0700);
    lease_paths lp(home, "local:bench");
    bench_tree::build_tree(lp, "local:bench", std::atoi(argv[2]));
    bench_tree::write_results_index(lp, std::atoi(argv[2]));
    return 0;
  }
  std::vector<int> sizes;
  fs::path base = "/dev/shm";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc)
      base = argv[++i];
    else
      sizes.push_back(std::atoi(a.c_str()));
  }
  if (sizes.empty()) sizes = {100000, 1000000};
  std::printf("dashboard benchmark: %dx%d frame, key = update(key) + update(tick) + view\n", width,
              height);
  for (int n : sizes) run_size(n, base);
  return 0;
}
