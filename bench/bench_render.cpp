// Renderer benchmark: a 200x60 dashboard-like frame over a 5000-row table.
// Per frame: build (view into the back buffer) + diff (present) CPU time, and bytes written,
// when idle, when one row changed, when the selection moved; the baseline is a full redraw
// of the same frame, measured in the same run.
//
//   ./build/bench/leaseq_bench_render [frames]

#include <leaseq/tui/layout.hpp>
#include <leaseq/tui/screen.hpp>
#include <leaseq/tui/widgets.hpp>

#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace tui = leaseq::tui;

namespace {

constexpr int W = 200, H = 60, ROWS = 5000;

struct model {
  std::vector<std::vector<std::string>> rows;
  tui::table_state table;
  std::vector<std::string> log;
  tui::log_view_state log_state;
};

model make_model() {
  model m;
  const char* states[] = {"PEND", "RUN", "DONE", "FAIL", "LOST?"};
  for (int i = 0; i < ROWS; ++i) {
    m.rows.push_back({"t" + std::to_string(100000 + i), states[i % 5],
                      "node" + std::to_string(i % 16), std::to_string(i % 600) + "s",
                      "python train.py --seed " + std::to_string(i) + " --config exp/任务.yaml"});
  }
  for (int i = 0; i < 200; ++i) m.log.push_back("step " + std::to_string(i) + " loss=0.123");
  return m;
}

void view(model& m, tui::buffer& buf) {
  buf.clear();
  auto rows =
      tui::split_rows(buf.area(), {tui::fixed(1), tui::fill(), tui::fixed(12), tui::fixed(1)});
  tui::draw_line(buf, rows[0], 0, "leaseq  lease=l-20261128  nodes=16  tasks=5000", {});
  auto cols = tui::split_cols(rows[1], {tui::percent(20), tui::fill()});
  tui::rect nodes = tui::draw_pane(buf, cols[0], "Nodes", false);
  for (int i = 0; i < nodes.h && i < 16; ++i)
    tui::draw_line(buf, nodes, i, "node" + std::to_string(i) + "  ok  3 running", {});
  tui::rect tin = tui::draw_pane(buf, cols[1], "Tasks", true);
  static const std::vector<tui::table_column> tcols{{"ID", 8, false},
                                                    {"STATE", 6, false},
                                                    {"NODE", 7, false},
                                                    {"AGE", 5, true},
                                                    {"COMMAND", 0, false}};
  auto state_style = [&](int row) {
    tui::style st;
    const std::string& s = m.rows[static_cast<std::size_t>(row)][1];
    if (s == "RUN")
      st.fg = tui::colors::green;
    else if (s == "FAIL")
      st.fg = tui::colors::red;
    else if (s == "LOST?")
      st.fg = tui::color::from_rgb(255, 128, 0);
    return st;
  };
  tui::draw_table(
      buf, tin, tcols, ROWS,
      [&](int row, int col) -> std::string_view {
        return m.rows[static_cast<std::size_t>(row)][static_cast<std::size_t>(col)];
      },
      m.table, state_style);
  tui::rect lin = tui::draw_pane(buf, rows[2], "Log t100000", false);
  tui::draw_log_view(buf, lin, m.log, m.log_state);
  tui::draw_status_bar(buf, rows[3], " lease=l-20261128  filters=none  refresh=2s  fs=ok",
                       "q:quit ?:help ");
}

double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct figure {
  double ms_per_frame = 0;
  double bytes_per_frame = 0;
};

// Runs `frames` frames; `change(i)` mutates the model before frame i.
figure run(model& m, int frames, bool full, const std::function<void(int)>& change) {
  tui::buffer front(W, H), back(W, H);
  view(m, front);
  tui::present_options opt;
  opt.colors = tui::color_mode::truecolor;
  opt.full_redraw = full;
  std::size_t bytes = 0;
  double t0 = cpu_now();
  for (int i = 0; i < frames; ++i) {
    change(i);
    view(m, back);
    std::string out = tui::present(front, back, opt);
    bytes += out.size();
    std::swap(front, back);
  }
  double t1 = cpu_now();
  return {(t1 - t0) * 1000.0 / frames, static_cast<double>(bytes) / frames};
}

}  // namespace

int main(int argc, char** argv) {
  int frames = argc > 1 ? std::atoi(argv[1]) : 300;
  if (frames <= 0) frames = 300;
  model m = make_model();
  m.table.selected = 2500;
  auto idle = run(m, frames, false, [](int) {});
  auto one_row = run(m, frames, false, [&](int i) {
    // One visible row changes entirely: state (and so its colour), node, age and command.
    static const char* states[] = {"RUN", "DONE", "FAIL", "LOST?"};
    auto& row = m.rows[static_cast<std::size_t>(m.table.offset + 5)];
    row[1] = states[i % 4];
    row[2] = "node" + std::to_string(i % 16);
    row[3] = std::to_string(i % 1000) + "s";
    row[4] = "python train.py --seed " + std::to_string(i) + " --resume ckpt/" + std::to_string(i);
  });
  auto select = run(m, frames, false, [&](int i) { m.table.move(i % 2 ? -1 : 1, ROWS); });
  auto full = run(m, frames, true, [](int) {});
  std::printf("leaseq renderer benchmark: %dx%d frame, %d-row table, %d frames each\n", W, H, ROWS,
              frames);
  std::printf("%-34s %14s %16s\n", "case", "CPU ms/frame", "bytes/frame");
  std::printf("%-34s %14.3f %16.0f\n", "idle (nothing changed)", idle.ms_per_frame,
              idle.bytes_per_frame);
  std::printf("%-34s %14.3f %16.0f\n", "one row changed", one_row.ms_per_frame,
              one_row.bytes_per_frame);
  std::printf("%-34s %14.3f %16.0f\n", "selection moved (two rows)", select.ms_per_frame,
              select.bytes_per_frame);
  std::printf("%-34s %14.3f %16.0f\n", "baseline: full redraw", full.ms_per_frame,
              full.bytes_per_frame);
  return 0;
}
