// A small program that exercises the terminal renderer end to end (the tmux test drives it).
//   leaseq_renderer_demo [--pid-file PATH]
// Keys: q / Ctrl+C quit, ? help, c confirm, f form, s selector, y copy (OSC 52),
// X throws an exception out of main (to test that the terminal is restored),
// arrows/PgUp/PgDn move in the table, Ctrl+Z suspends.

#include <leaseq/tui/app.hpp>
#include <leaseq/tui/clipboard.hpp>
#include <leaseq/tui/layout.hpp>
#include <leaseq/tui/term.hpp>
#include <leaseq/tui/widgets.hpp>

#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace tui = leaseq::tui;

namespace {

enum class overlay { none, help, confirm, form, selector };

struct model {
  std::string last_key = "-";
  std::string message = "ready";
  int ticks = 0;
  tui::table_state table;
  tui::log_view_state log;
  std::vector<std::string> log_lines;
  overlay ov = overlay::none;
  tui::confirm_state confirm;
  tui::form_state form;
  tui::selector_state selector;
  std::vector<std::string> selector_items{"alpha", "beta", "gamma"};
  bool quit = false;
  int quit_signal = 0;
  std::string to_copy;
};

constexpr int table_rows = 100;

std::vector<tui::table_column> columns() {
  return {{"ID", 6, false}, {"STATE", 8, false}, {"COMMAND", 0, false}};
}

void reset_form(model& m) {
  m.form = tui::form_state{};
  m.form.fields.push_back(
      {"Command", "",
       [](const std::string& v) { return v.empty() ? std::string("required") : std::string(); },
       ""});
  m.form.fields.push_back({"Count", "1",
                           [](const std::string& v) {
                             return v.find_first_not_of("0123456789") == std::string::npos &&
                                            !v.empty()
                                        ? std::string()
                                        : std::string("a number");
                           },
                           ""});
}

void update(model& m, const tui::event& ev) {
  if (std::get_if<tui::resize_event>(&ev)) return;  // the loop resizes the buffers
  if (auto* s = std::get_if<tui::signal_event>(&ev)) {
    m.quit = true;
    m.quit_signal = s->signo;
    return;
  }
  if (std::get_if<tui::tick_event>(&ev)) {
    ++m.ticks;
    return;
  }
  if (auto* p = std::get_if<tui::paste_event>(&ev)) {
    if (m.ov == overlay::form) m.form.paste(p->text);
    m.message = "pasted " + std::to_string(p->text.size()) + " bytes";
    return;
  }
  const tui::key& k = std::get<tui::key_event>(ev).k;
  m.last_key = tui::key_name(k);
  if (k.ctrl && k.rune == 'c') {
    m.quit = true;
    return;
  }
  switch (m.ov) {
    case overlay::help:
      m.ov = overlay::none;
      return;
    case overlay::confirm: {
      auto r = m.confirm.handle_key(k);
      if (r != tui::confirm_state::result::pending) {
        m.message = r == tui::confirm_state::result::accepted ? "confirmed" : "not confirmed";
        m.ov = overlay::none;
      }
      return;
    }
    case overlay::form: {
      auto r = m.form.handle_key(k);
      if (r == tui::form_state::result::submitted) {
        m.message = "submitted " + m.form.fields[0].value + " x" + m.form.fields[1].value;
        m.log_lines.push_back(m.message);
        m.ov = overlay::none;
      } else if (r == tui::form_state::result::cancelled) {
        m.ov = overlay::none;
      }
      return;
    }
    case overlay::selector: {
      auto r = m.selector.handle_key(k, static_cast<int>(m.selector_items.size()));
      if (r == tui::selector_state::result::chosen)
        m.message = "chose " + m.selector_items[static_cast<std::size_t>(m.selector.selected)];
      if (r != tui::selector_state::result::pending) m.ov = overlay::none;
      return;
    }
    case overlay::none:
      break;
  }
  if (k.is('q'))
    m.quit = true;
  else if (k.is('X'))
    throw std::runtime_error("deliberate uncaught exception (demo key X)");
  else if (k.is('?'))
    m.ov = overlay::help;
  else if (k.is('c')) {
    m.confirm = {};
    m.ov = overlay::confirm;
  } else if (k.is('f')) {
    reset_form(m);
    m.ov = overlay::form;
  } else if (k.is('s'))
    m.ov = overlay::selector;
  else if (k.is('y')) {
    m.to_copy = "task-" + std::to_string(m.table.selected + 1);
    m.message = "copied " + m.to_copy;
  } else if (m.table.handle_key(k, table_rows, 10)) {
    m.log_lines.push_back("selected row " + std::to_string(m.table.selected + 1));
  }
}

void view(model& m, tui::buffer& buf) {
  buf.clear();
  tui::rect area = buf.area();
  auto rows = tui::split_rows(area, {tui::fixed(1), tui::fill(), tui::fixed(6), tui::fixed(1)});
  tui::draw_line(buf, rows[0], 0,
                 "leaseq renderer demo  size=" + std::to_string(buf.width()) + "x" +
                     std::to_string(buf.height()) + "  key=" + m.last_key,
                 tui::theme{}.title);
  tui::rect tin = tui::draw_pane(buf, rows[1], "Tasks", true);
  std::vector<std::string> cells(3);
  tui::draw_table(
      buf, tin, columns(), table_rows,
      [&](int row, int col) -> std::string_view {
        if (col == 0)
          cells[0] = std::to_string(row + 1);
        else if (col == 1)
          cells[1] = row % 3 == 0 ? "RUN" : "PEND";
        else
          cells[2] = "echo 任务 " + std::to_string(row + 1);
        return cells[static_cast<std::size_t>(col)];
      },
      m.table);
  tui::rect lin = tui::draw_pane(buf, rows[2], "Log", false);
  tui::draw_log_view(buf, lin, m.log_lines, m.log);
  tui::draw_status_bar(buf, rows[3], " " + m.message, "q:quit ?:help ");
  switch (m.ov) {
    case overlay::help:
      tui::draw_help(buf, area,
                     {{"q", "quit"},
                      {"?", "help"},
                      {"c", "confirm"},
                      {"f", "form"},
                      {"s", "selector"},
                      {"y", "copy id"},
                      {"Ctrl+Z", "suspend"}});
      break;
    case overlay::confirm:
      tui::draw_confirm(buf, area, "Confirm", "Really do it?", m.confirm);
      break;
    case overlay::form:
      tui::draw_form(buf, area, "Submit", m.form);
      break;
    case overlay::selector:
      tui::draw_selector(buf, area, "Pick one", m.selector_items, m.selector);
      break;
    case overlay::none:
      break;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string pid_file;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--pid-file") pid_file = argv[i + 1];
  if (!pid_file.empty() && ::isatty(0) && ::isatty(1))
    std::ofstream(pid_file) << ::getpid() << "\n";
  model m;
  tui::app_options opt;
  opt.program_name = "leaseq_renderer_demo";
  auto r = tui::run_app(
      m,
      [](model& mm, const tui::event& ev, tui::app_io& io) {
        update(mm, ev);
        if (!mm.to_copy.empty()) io.write_raw(tui::osc52_copy(std::exchange(mm.to_copy, {})));
        return !mm.quit;
      },
      view, opt);
  // The terminal is restored by now; die by the signal that asked us to stop.
  if (r.signo != 0) {
    std::signal(r.signo, SIG_DFL);
    std::raise(r.signo);
  }
  return r.exit_code;
}
