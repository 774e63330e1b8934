#pragma once

// view(model, buffer): draws the dashboard into a cell buffer with the renderer's widgets.
// Pure apart from the widgets' scroll state (selection offsets) kept in the model. Every text
// read from disk was sanitized by the worker or is sanitized here before it reaches a cell.

#include "dashboard/derive.hpp"
#include "dashboard/frame.hpp"
#include "dashboard/model.hpp"
#include "dashboard/update.hpp"

#include <leaseq/detail/text_width.hpp>
#include <leaseq/duration.hpp>
#include <leaseq/engine/spawn.hpp>
#include <leaseq/sanitize.hpp>
#include <leaseq/tui/layout.hpp>
#include <leaseq/tui/screen.hpp>
#include <leaseq/tui/widgets.hpp>
#include <leaseq/waiting.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

namespace leaseq_dash {

inline const char* warn_mark = "⚠";

inline tui::style state_style(leaseq::task_state s) {
  using leaseq::task_state;
  tui::style st;
  switch (s) {
    case task_state::running:
      st.fg = tui::colors::green;
      break;
    case task_state::failed:
    case task_state::lost:
      st.fg = tui::colors::red;
      break;
    case task_state::lost_maybe:
    case task_state::unknown:
      st.fg = tui::colors::yellow;
      st.bold = true;
      break;
    case task_state::cancelled:
      st.fg = tui::colors::magenta;
      break;
    case task_state::finished:
      st.dim = true;
      break;
    case task_state::pending:
      break;
  }
  return st;
}

// Column widths from their content: each column is as wide as its widest cell (or title),
// the `fill` column takes what is left. When the content does not fit, the widest columns
// give up cells first, down to their minimum, so that the fill column keeps `fill_min`.
// `natural` holds the widest cell of each column (titles are counted here).
inline void size_columns(std::vector<tui::table_column>& cols, std::vector<int> natural,
                         const std::vector<int>& min_w, std::size_t fill, int total, int fill_min) {
  int n = static_cast<int>(cols.size());
  int room = total - (n - 1) - fill_min;
  int used = 0;
  for (std::size_t i = 0; i < cols.size(); ++i) {
    natural[i] = std::max(natural[i], leaseq::detail::display_width(cols[i].title));
    if (i != fill) used += natural[i];
  }
  while (used > room) {
    std::size_t widest = cols.size();
    for (std::size_t i = 0; i < cols.size(); ++i)
      if (i != fill && natural[i] > min_w[i] &&
          (widest == cols.size() || natural[i] - min_w[i] > natural[widest] - min_w[widest]))
        widest = i;
    if (widest == cols.size()) break;
    --natural[widest];
    --used;
  }
  for (std::size_t i = 0; i < cols.size(); ++i) cols[i].width = i == fill ? 0 : natural[i];
}

inline int cells_of(const std::string& s) {
  return leaseq::detail::display_width(s);
}

// What the dashboard knows of the open lease, for waiting_reason(): its kind and Slurm state.
inline leaseq::lease_condition open_lease_condition(const model& m) {
  for (const auto& r : m.leases.rows)
    if (r.id == m.lease_id)
      return kind_of(r) == lease_kind::local ? leaseq::lease_condition::local()
                                             : leaseq::lease_condition::slurm(r.state, r.nodes);
  return {};
}

// Why a PENDING task cannot run now (needs more GPUs than any runner has, no runner serves
// its lane, every runner paused, the lease ended), or nothing when it simply waits its turn.
inline std::optional<std::string> waiting_reason(const model& m, const leaseq::task_view& t) {
  if (!m.snap || t.state != leaseq::task_state::pending) return std::nullopt;
  return leaseq::waiting_reason(t, *m.snap, open_lease_condition(m));
}

inline std::string lease_title(const model& m) {
  return fmt::format("leases ({}){}", to_string(m.lease_filter),
                     m.lease_search.empty() ? "" : "  /" + m.lease_search);
}

inline void draw_leases(model& m, tui::buffer& buf, const tui::rect& r, bool focused) {
  if (r.empty()) return;
  tui::rect in = tui::draw_pane(buf, r, lease_title(m), focused);
  auto rows = visible_leases(m);
  if (!m.leases.index_error.empty() && in.h > 0) {
    tui::draw_line(buf, in, 0, leaseq::sanitize_inline(m.leases.index_error),
                   tui::default_theme().error);
    in.y += 1;
    in.h -= 1;
  }
  if (rows.empty()) {
    tui::draw_line(buf, in, 0,
                   m.leases_loaded ? "no leases (n: create a Slurm lease; or `leaseq lease local "
                                     "start`)"
                                   : "loading leases...",
                   tui::default_theme().dim);
    return;
  }
  bool narrow = in.w < 100;
  auto cell = [&](const leaseq::lease_row& l, int col) -> std::string {
    switch (col) {
      case 0:
        return (l.is_default ? "*" : " ") + l.id;
      case 1:
        return l.kind;
      case 2:
        return lease_state_text(l, narrow);
      case 3:
        return capacity_text(l);
      case 4:
        return kind_of(l) == lease_kind::slurm ? (l.time_left.empty() ? "-" : l.time_left) : "-";
      default: {
        std::string name = l.name ? *l.name : "";
        std::string extra = l.reason;
        if (!l.error.empty()) extra += (extra.empty() ? "" : "; ") + l.error;
        if (!extra.empty()) name += (name.empty() ? "(" : "  (") + extra + ")";
        // Labelled: a lone ">" read as part of the name.
        if (l.id == m.lease_id && m.screen == screen_kind::dashboard)
          name = name.empty() ? "[open]" : "[open] " + name;
        return leaseq::sanitize_inline(name);
      }
    }
  };
  std::vector<tui::table_column> cols{{"ID", 0, false},    {"TYPE", 0, false},
                                      {"STATE", 0, false}, {"CAPACITY", 0, false},
                                      {"LEFT", 0, false},  {"NAME", 0, false}};
  std::vector<int> natural(cols.size(), 0);
  for (const auto* l : rows)
    for (int c = 0; c < 5; ++c)
      natural[static_cast<std::size_t>(c)] =
          std::max(natural[static_cast<std::size_t>(c)], cells_of(cell(*l, c)));
  size_columns(cols, natural, {8, 5, 4, 8, 4, 4}, 5, in.w, 8);
  std::vector<std::string> cells(cols.size());
  tui::draw_table(
      buf, in, cols, static_cast<int>(rows.size()),
      [&](int row, int col) -> std::string_view {
        return cells[static_cast<std::size_t>(col)] =
                   cell(*rows[static_cast<std::size_t>(row)], col);
      },
      m.lease_table,
      [&](int row) {
        const auto& l = *rows[static_cast<std::size_t>(row)];
        tui::style st;
        switch (state_of(l)) {
          case lease_state::running:
            st.fg = tui::colors::green;
            break;
          case lease_state::pending:
            st.fg = tui::colors::yellow;
            break;
          case lease_state::unknown:
          case lease_state::stale:
            st.fg = tui::colors::red;
            break;
          case lease_state::other:
            st.dim = true;
            break;
        }
        return st;
      });
}

inline void draw_nodes(model& m, tui::buffer& buf, const tui::rect& r, bool focused) {
  if (r.empty()) return;
  auto nodes = visible_nodes(m);
  std::string title = fmt::format("nodes/runners ({})", nodes.size());
  if (!m.node_search.empty()) title += "  /" + m.node_search;
  tui::rect in = tui::draw_pane(buf, r, title, focused);
  if (nodes.empty()) {
    tui::draw_line(buf, in, 0, m.snap ? "no runner yet" : "scanning...", tui::default_theme().dim);
    return;
  }
  auto cell = [&](const leaseq::node_view& n, int col) -> std::string {
    switch (col) {
      case 0:
        return n.name;
      case 1:
        if (n.paused && n.health == leaseq::node_health::ok) return "PAUSED";
        return health_text(n.health);
      case 2:
        return n.hb_age_s ? "hb " + age_text(live_hb_age(m, n)) : "hb -";
      case 3:
        if (n.health == leaseq::node_health::stale || n.health == leaseq::node_health::unknown)
          return n.running.empty() ? "?" : "? " + n.running.front();
        if (n.running.empty()) return "-";
        return n.running.front() +
               (n.running.size() > 1 ? fmt::format(" +{}", n.running.size() - 1) : "");
      default:
        return fmt::format("{}", n.pending);
    }
  };
  std::vector<tui::table_column> cols{{"NODE", 0, false},
                                      {"HEALTH", 0, false},
                                      {"HB", 0, false},
                                      {"RUNNING", 0, false},
                                      {"PEND", 0, true}};
  // Beside the task list under 100 columns: name, health and heartbeat only (the rest is in
  // `s` and in the task list), each whole, the name taking what is left.
  bool narrow = in.w < narrow_nodes_w + 10;
  if (narrow) cols.resize(3);
  std::vector<int> natural(cols.size(), 0);
  for (const auto* n : nodes)
    for (int c = 0; c < static_cast<int>(cols.size()); ++c)
      if (c != 3)
        natural[static_cast<std::size_t>(c)] =
            std::max(natural[static_cast<std::size_t>(c)], cells_of(cell(*n, c)));
  natural[2] = std::max(natural[2], 7);  // "hb 119s": the age ticks, the column stays put
  if (narrow)
    size_columns(cols, natural, {4, 6, 5}, 0, in.w, 4);
  else
    size_columns(cols, natural, {6, 6, 5, 4, 4}, 3, in.w, 7);
  std::vector<std::string> cells(cols.size());
  tui::draw_table(
      buf, in, cols, static_cast<int>(nodes.size()),
      [&](int row, int col) -> std::string_view {
        return cells[static_cast<std::size_t>(col)] =
                   cell(*nodes[static_cast<std::size_t>(row)], col);
      },
      m.node_table,
      [&](int row) {
        const auto& n = *nodes[static_cast<std::size_t>(row)];
        tui::style st;
        if (n.health == leaseq::node_health::ok)
          st.fg = tui::colors::green;
        else if (n.health == leaseq::node_health::stale)
          st.fg = tui::colors::yellow;
        else if (n.health == leaseq::node_health::down)
          st.fg = tui::colors::red;
        if (n.name == m.filter.node) st.bold = true;
        return st;
      });
}

inline void draw_tasks(model& m, tui::buffer& buf, const tui::rect& r, bool focused) {
  if (r.empty()) return;
  bool ending = lease_ending_soon(m);
  std::string title = m.snap ? fmt::format("tasks {}/{}", m.visible.size(), m.snap->tasks().size())
                             : std::string("tasks");
  if (m.show_archived)
    title = m.archived ? fmt::format("ARCHIVED tasks {}/{} (a: live)", m.visible.size(),
                                     m.archived->tasks().size())
                       : std::string("ARCHIVED tasks: reading... (a: live)");
  if (m.visible_total > m.visible.size()) {
    auto cap = static_cast<std::size_t>(std::max<std::int64_t>(1, m.ui.max_tasks_display));
    std::size_t first = m.task_page * cap + 1;
    title += fmt::format(" (rows {}-{} of {} matches, [/]: page)", first,
                         first + m.visible.size() - 1, m.visible_total);
  }
  // A big lease: the first scan counted tasks without reading them, or the worker is still
  // filtering for the last key.
  if (m.snap_partial && !m.show_archived) title += " (reading task files...)";
  if (m.deriving) title += " (filtering...)";
  if (m.snap && m.snap->archived > 0 && !m.show_archived)
    title += fmt::format(" +{} archived (a: list)", m.snap->archived);
  title += m.sort == leaseq::task_sort::state_priority ? "  sort:state" : "  sort:lane";
  if (!m.marked.empty()) title += fmt::format("  marked:{}", m.marked.size());
  if (std::size_t problems = problem_count(m); problems > 0)
    title += fmt::format("  {} {} problem(s) (!: list)", warn_mark, problems);
  if (ending) {
    auto left = lease_seconds_left(m);
    title += fmt::format("  {} lease ends in {}", warn_mark, age_text(left.value_or(0)));
  }
  tui::rect in = tui::draw_pane(buf, r, title, focused);
  if (m.visible.empty()) {
    // While a big lease loads, most commands and results are not read yet: a search that
    // finds nothing may find them once the full scan is done.
    std::string why = !m.snap                   ? "scanning..."
                      : m.snap->tasks().empty() ? "no tasks (leaseq submit -- CMD)"
                      : m.snap_partial ? "no match yet: task files still being read (0: clear)"
                                       : "no task matches the filters (0: clear)";
    tui::draw_line(buf, in, 0, why, tui::default_theme().dim);
    return;
  }
  auto cell = [&](const leaseq::task_view& t, int col) -> std::string {
    switch (col) {
      case 0: {
        bool warn = t.state == leaseq::task_state::lost_maybe || t.unknown ||
                    (ending && t.state == leaseq::task_state::running) ||
                    waiting_reason(m, t).has_value();
        if (m.marked.count(t.id)) return warn ? "+⚠" : "+";
        return warn ? warn_mark : " ";
      }
      case 1:
        return t.id;
      case 2:
        return task_state_cell(t);
      case 3:
        return task_node_cell(t);
      case 4:
        return task_exit_cell(t);
      case 5:
        return elapsed_text(t, m.now);
      default:
        // A task whose file does not parse has no command to show: show why instead.
        if (!t.spec && t.unknown && !t.unknown_reason.empty())
          return "(" + leaseq::sanitize_inline(t.unknown_reason) + ")";
        if (auto why = waiting_reason(m, t))
          return "[" + leaseq::sanitize_inline(*why) + "] " + leaseq::sanitize_inline(t.command());
        return leaseq::sanitize_inline(t.command());
    }
  };
  std::vector<tui::table_column> cols{{"", 0, false},       {"ID", 0, false},  {"STATE", 0, false},
                                      {"NODE", 0, false},   {"EXIT", 0, true}, {"TIME", 0, true},
                                      {"COMMAND", 0, false}};
  // Sized from every listed row, not only the rows on screen, so columns do not jump while
  // scrolling; ids are never cut (T100000 is 7 wide). Measured when the rows were derived
  // (measure_rows): a frame measures again only the TIME of RUNNING rows, the one cell that
  // moves with the clock.
  auto& w = m.task_widths;
  if (w.derivations != m.derivations || w.rows != m.visible.data() || w.n != m.visible.size()) {
    w = measure_rows(m.visible);
    w.derivations = m.derivations;
    w.rows = m.visible.data();
    w.n = m.visible.size();
  }
  std::vector<int> natural = w.natural;
  for (const auto* t : w.running) natural[5] = std::max(natural[5], cells_of(cell(*t, 5)));
  size_columns(cols, natural, {2, natural[1], 4, 4, 4, 3, 0}, 6, in.w, 12);
  std::vector<std::string> cells(cols.size());
  tui::draw_table(
      buf, in, cols, static_cast<int>(m.visible.size()),
      [&](int row, int col) -> std::string_view {
        return cells[static_cast<std::size_t>(col)] =
                   cell(shown_task(m, *m.visible[static_cast<std::size_t>(row)]), col);
      },
      m.task_table,
      [&](int row) { return state_style(m.visible[static_cast<std::size_t>(row)]->state); });
}

inline std::string log_title(const model& m) {
  if (m.follow.empty()) return "log";
  std::string mode = m.follow.mode == log_mode::out   ? "[stdout]"
                     : m.follow.mode == log_mode::err ? "[stderr]"
                                                      : "[stdout+stderr]";
  std::string who, cmd;
  if (m.follow.tasks.size() == 1) {
    const auto& it = m.follow.tasks[0];
    who = it.task + "  " + (it.node.empty() ? "-" : it.node);
    if (const auto* t = find_task(m, it.task)) {
      who += "  " + std::string(leaseq::to_string(t->state));
      cmd = "  " + tui::truncate_text(leaseq::sanitize_inline(t->command()), 60);
    }
  } else {
    who = fmt::format("{} tasks merged", m.follow.tasks.size());
  }
  std::string fresh =
      m.log_mtime ? "log updated " + age_text(m.now - *m.log_mtime) + " ago" : "no log yet";
  return mode + " " + who + "  " + fresh + (m.log_view.follow ? "" : " (follow paused)") + cmd;
}

inline void draw_log(model& m, tui::buffer& buf, const tui::rect& r, bool focused) {
  if (r.empty()) return;
  tui::rect in = tui::draw_pane(buf, r, log_title(m), focused);
  if (m.follow.empty()) {
    tui::draw_line(buf, in, 0, "F/E/A on a task, or f: follow the RUNNING task",
                   tui::default_theme().dim);
    return;
  }
  tui::draw_log_view(buf, in, m.log_lines, m.log_view, tui::default_theme(), m.log_search);
}

// The status bar's text. Given the bar's `width`, a text that does not fit is made to: single
// spaces first, then the refresh period goes (unless paused), then the facts are cut, so that
// the key hints (what f does here) stay on screen at 80 columns.
inline std::string status_left(const model& m, int width = 0) {
  std::string fs = m.snap && m.snap->fs_lag ? "lag" : "ok";
  std::string lease = m.lease_id.empty() ? "-" : m.lease_id;
  // f means two things (filter leases, follow a task): the bar says which one it is here.
  bool leases = m.screen == screen_kind::lease_list || m.focus == pane::leases;
  std::vector<std::string> parts{
      "lease=" + lease,
      "filters=" + filters_text(m),
      "refresh=" +
          (m.refresh_paused ? std::string("paused") : fmt::format("{:g}s", m.ui.refresh_s)),
      "fs=" + fs,
      "slurm=" + slurm_text(m),
      "q:quit",
      "?:help",
      leases ? "f:filter" : "f:follow"};
  auto join = [&](const char* gap) {
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : gap) + p;
    return out;
  };
  // Tasks `leaseq clean` moved to archive/: counted, not listed (`leaseq tasks --archived`).
  if (m.snap && m.snap->archived > 0)
    parts.insert(parts.begin() + 4, fmt::format("archived={}", m.snap->archived));
  std::string text = join("  ");
  if (width <= 0 || cells_of(text) <= width) return text;
  text = join(" ");
  if (cells_of(text) <= width) return text;
  if (!m.refresh_paused) parts.erase(parts.begin() + 2);
  // Still too long (a Slurm error, many filters): the facts are cut, never the key hints.
  std::string hints = parts[parts.size() - 3] + " " + parts[parts.size() - 2] + " " + parts.back();
  parts.resize(parts.size() - 3);
  text = join(" ");
  int room = width - cells_of(hints) - 1;
  if (cells_of(text) > room) text = tui::truncate_text(text, std::max(1, room));
  return text + " " + hints;
}

// ---- overlays ---------------------------------------------------------------------------

// Cuts text into lines of at most `width` cells, at spaces where there are any (a long path
// or command without one is cut where it must). Continuation lines are indented under the
// value of a "label     value" line.
inline std::vector<std::string> wrap_cells(const std::string& text, int width, int indent = 10) {
  std::vector<std::string> out;
  width = std::max(1, width);
  indent = std::clamp(indent, 0, width / 2);
  std::string cur;
  int w = 0;
  std::size_t space_at = std::string::npos;  // byte offset in cur after the last space
  int space_w = 0;                           // cells of cur up to there
  for (std::size_t i = 0; i < text.size();) {
    leaseq::detail::utf8_char c = leaseq::detail::decode_utf8(text, i);
    std::size_t len = c.len ? c.len : 1;
    int cw = std::max(0, leaseq::detail::codepoint_width(c.cp));
    if (w + cw > width && !cur.empty() && !(c.cp == ' ')) {
      std::string rest;
      int rest_w = 0;
      if (space_at != std::string::npos && space_at > static_cast<std::size_t>(indent)) {
        rest = cur.substr(space_at);
        rest_w = w - space_w;
        cur.erase(space_at);
      }
      while (!cur.empty() && cur.back() == ' ') cur.pop_back();
      out.push_back(std::move(cur));
      cur = std::string(indent, ' ') + rest;
      w = indent + rest_w;
      space_at = std::string::npos;
    }
    if (c.cp == ' ' && w + cw > width) {  // a space at the edge ends the line
      while (!cur.empty() && cur.back() == ' ') cur.pop_back();
      out.push_back(std::move(cur));
      cur = std::string(indent, ' ');
      w = indent;
      space_at = std::string::npos;
      i += len;
      continue;
    }
    cur.append(text, i, len);
    w += cw;
    i += len;
    if (c.cp == ' ' && w > indent) {
      space_at = cur.size();
      space_w = w;
    }
  }
  out.push_back(std::move(cur));
  return out;
}

// Returns the first line shown (the scroll, clamped to the text).
inline int draw_text_modal(tui::buffer& buf, const tui::rect& area, const std::string& title,
                           const std::vector<std::pair<std::string, tui::style>>& raw,
                           int scroll = 0, int indent = 10) {
  int w = leaseq::detail::display_width(title) + 6;
  for (const auto& l : raw) w = std::max(w, leaseq::detail::display_width(l.first) + 4);
  w = std::min(w, area.w);
  std::vector<std::pair<std::string, tui::style>> lines;
  for (const auto& l : raw)
    for (auto& piece : wrap_cells(l.first, std::max(12, w - 4), indent))
      lines.push_back({piece, l.second});
  tui::rect in = tui::draw_modal(buf, area, w, static_cast<int>(lines.size()) + 2, title);
  if (in.empty()) return 0;
  int n = static_cast<int>(lines.size());
  int first = std::clamp(scroll, 0, std::max(0, n - in.h));
  // More than fits: the bottom border says where the view is and how to see the rest.
  if (n > in.h && in.w >= 20) {
    std::string more = fmt::format(" {}-{}/{} j/k ", first + 1, first + in.h, n);
    buf.print(in.right() - cells_of(more), in.bottom(), more, tui::default_theme().border_focused,
              cells_of(more));
  }
  for (int i = 0; i < in.h; ++i) {
    int li = first + i;
    if (li >= static_cast<int>(lines.size())) break;
    const auto& l = lines[static_cast<std::size_t>(li)];
    tui::draw_line(buf, in, i, tui::truncate_text(l.first, in.w), l.second);
  }
  return first;
}

inline std::vector<std::pair<std::string, tui::style>> details_lines(const model& m,
                                                                     const leaseq::task_view& t) {
  const auto& th = tui::default_theme();
  std::vector<std::pair<std::string, tui::style>> out;
  auto add = [&](const std::string& label, const std::string& value, tui::style st = tui::style{}) {
    // A label as long as the column still gets its space ("  last seen 2026-...").
    std::string l = label.size() >= 10 ? label + " " : fmt::format("{:<10}", label);
    out.push_back({l + leaseq::sanitize_inline(value), st});
  };
  add("task", t.id);
  add("state",
      std::string(leaseq::to_string(t.state)) +
          (t.state == leaseq::task_state::lost_maybe
               ? std::string("  ") + warn_mark + " not confirmed yet"
               : ""),
      state_style(t.state));
  add("node", t.node.empty() ? "- (lane " + std::string(t.lane()) + ")" : t.node);
  if (auto why = waiting_reason(m, t)) {
    tui::style warn;
    warn.fg = tui::colors::yellow;
    warn.bold = true;
    add("waiting", std::string(warn_mark) + " " + *why, warn);
  }
  add("command", t.command());
  if (t.spec) {
    add("argv", [&] {
      std::string s;
      for (const auto& a : t.spec->argv) s += (s.empty() ? "" : " ") + leaseq::shell_quote(a);
      return s;
    }());
    add("cwd", t.spec->cwd.empty() ? "-" : t.spec->cwd);
    if (!m.details_env) {
      add("env", fmt::format("{} variable(s)  (e: show)", t.spec->env.size()));
    } else {
      add("env", fmt::format("{} variable(s)  (e: hide)", t.spec->env.size()));
      for (const auto& [k, v] : t.spec->env) add("", k + "=" + v);
    }
    if (t.spec->gpus > 0) add("gpus", std::to_string(t.spec->gpus));
    if (t.spec->retry_of) add("retry of", *t.spec->retry_of);
  }
  // What the task asked for about how it runs (format versions 3 and 4), from its file or its
  // result.
  if (const leaseq::task_spec* spec = t.result ? &t.result->task : t.spec.get()) {
    if (auto a = leaseq::array_member_of(*spec))
      add("array", fmt::format("{} index {}", a->id, a->index));
    if (!spec->after.empty()) {
      std::string deps;
      for (const auto& d : spec->after) deps += (deps.empty() ? "" : ", ") + d;
      add("after", deps);
    }
    if (spec->time_limit)
      add("time limit", leaseq::format_duration(static_cast<std::int64_t>(*spec->time_limit)));
    if (!spec->labels.empty()) {
      std::string labels;
      for (const auto& l : spec->labels) labels += (labels.empty() ? "" : ", ") + l;
      add("labels", labels);
    }
    if (spec->priority != 0) add("priority", std::to_string(spec->priority));
    if (auto attempt = leaseq::attempt_text(t)) add("attempts", *attempt);
    for (const auto& a : spec->attempts)
      add("", fmt::format("{} on {}: {}{}", a.attempt, a.node.empty() ? "-" : a.node,
                          a.exit_code ? "exit " + std::to_string(*a.exit_code)
                          : a.signal  ? "signal " + std::to_string(*a.signal)
                                      : std::string("no exit code"),
                          a.reason ? " (" + *a.reason + ")" : ""));
  }
  add("created", clock_text(t.created(), m.now));
  add("claimed", clock_text(t.claimed(), m.now));
  // Only the result knows whether the task started (a spawn failure never did); a RUNNING
  // task started about when it was claimed.
  if (t.result)
    add("started", t.result->started ? clock_text(t.result->started, m.now) : "- (never started)");
  else if (t.state == leaseq::task_state::running)
    add("started", clock_text(t.claimed(), m.now));
  else
    add("started", "-");
  add("finished", clock_text(t.finished(), m.now));
  auto code = t.exit_code();
  add("exit code", code ? std::to_string(*code) : "-");
  if (t.result && t.result->signal) add("signal", std::to_string(*t.result->signal));
  if (t.result && t.result->reason) add("reason", *t.result->reason);
  std::string out_p = log_path(m, t, leaseq::log_stream::out);
  std::string err_p = log_path(m, t, leaseq::log_stream::err);
  add("stdout", out_p.empty() ? "- (no node yet)" : out_p);
  add("stderr", err_p.empty() ? "- (no node yet)" : err_p);
  if (t.state == leaseq::task_state::lost_maybe || t.state == leaseq::task_state::lost ||
      t.unknown) {
    tui::style warn;
    warn.fg = tui::colors::yellow;
    warn.bold = true;
    out.push_back({std::string(warn_mark) + " evidence:", warn});
    // A task only ever listed by a heartbeat never had a file in claimed/ or done/ to lose.
    bool hb_only = !t.spec && !t.result;
    if (hb_only && t.state == leaseq::task_state::lost)
      add("  why",
          "only ever seen in a heartbeat" + (t.node.empty() ? "" : " (of " + t.node + ")") +
              ", never in claimed/ or done/, for longer than ui.lost_confirm_s",
          warn);
    else if (!t.unknown_reason.empty())
      add("  why", t.unknown_reason, warn);
    add("  last seen",
        t.last_running_seen
            ? clock_text(t.last_running_seen, m.now) + (t.node.empty() ? "" : " on " + t.node)
            : clock_text(t.last_seen > 0 ? std::optional<double>(t.last_seen) : std::nullopt,
                         m.now),
        warn);
    if (t.missing_since) add("  missing", "for " + age_text(m.now - *t.missing_since), warn);
    const std::string& node = t.node;  // for LOST?/LOST: where it was last seen RUNNING
    const leaseq::node_view* n = m.snap ? m.snap->find_node(node) : nullptr;
    add("  node hb",
        n ? (n->hb_age_s ? node + " heartbeat " + age_text(live_hb_age(m, *n)) + " old (" +
                               health_text(n->health) + ")"
                         : node + " has no heartbeat")
          : (node.empty() ? "-" : node + ": unknown node"),
        warn);
    const auto* l = current_lease(m);
    add("  lease",
        l ? l->id + " " + l->state + (l->reason.empty() ? "" : " (" + l->reason + ")")
          : m.lease_id + " (state not known yet)",
        warn);
  }
  if (lease_ending_soon(m) && t.state == leaseq::task_state::running) {
    tui::style warn;
    warn.fg = tui::colors::yellow;
    out.push_back({fmt::format("{} the lease ends in {}: this task may be killed", warn_mark,
                               age_text(lease_seconds_left(m).value_or(0))),
                   warn});
  }
  out.push_back({"", th.normal});
  out.push_back(
      {"F/E/A follow out/err/both  L open logs  c copy command  y copy id  e env  Esc", th.dim});
  return out;
}

inline void draw_stats(const model& m, tui::buffer& buf, const tui::rect& area) {
  const leaseq::node_view* n = m.snap ? m.snap->find_node(m.stats_node) : nullptr;
  std::vector<std::pair<std::string, tui::style>> lines;
  auto add = [&](const std::string& l, const std::string& v) {
    lines.push_back({fmt::format("{:<13}{}", l, leaseq::sanitize_inline(v)), tui::style{}});
  };
  if (!n) {
    add("node", m.stats_node + " (gone)");
  } else {
    add("node", n->name);
    add("health", health_text(n->health));
    add("hb age", n->hb_age_s ? age_text(live_hb_age(m, *n)) : "- (no heartbeat)");
    std::string running;
    for (const auto& r : n->running) running += (running.empty() ? "" : " ") + r;
    add("running", running.empty() ? "-" : running);
    add("pending", std::to_string(n->pending) + " in its lane");
    add("paused", n->paused ? "yes" : "no");
    if (n->hb) {
      add("host / pid", n->hb->host + " / " + std::to_string(n->hb->pid));
      add("slots", std::to_string(n->hb->slots));
      add("gpus", fmt::format("{} ({} free)", n->hb->gpus, n->hb->gpus_free));
      add("hb time", clock_text(n->hb->ts, m.now));
      add("runner since", clock_text(n->hb->started, m.now));
      add("version", n->hb->version);
    }
    if (n->hb_unknown) add("hb problem", n->hb_reason);
  }
  lines.push_back({"", tui::style{}});
  lines.push_back({"any key closes", tui::default_theme().dim});
  draw_text_modal(buf, area, "node stats", lines);
}

inline void draw_help_overlay(const model& m, tui::buffer& buf, const tui::rect& area) {
  std::vector<std::pair<std::string, tui::style>> lines;
  const auto& th = tui::default_theme();
  for (const auto& [k, d] : key_help()) {
    if (d.empty())
      lines.push_back({"-- " + k + " --", th.title});
    else
      lines.push_back({fmt::format("  {:<20}{}", k, d), th.normal});
  }
  draw_text_modal(buf, area, "Help (j/k scroll, any other key closes)", lines, m.help_scroll, 22);
}

inline void draw_problems(const model& m, tui::buffer& buf, const tui::rect& area) {
  std::vector<std::pair<std::string, tui::style>> lines;
  auto all = problem_lines(m);
  if (all.empty()) lines.push_back({"no problems: every file read and parsed", tui::style{}});
  for (const auto& p : all) lines.push_back({"- " + p, tui::style{}});
  draw_text_modal(buf, area,
                  fmt::format("{} problem(s) (j/k scroll, any other key closes)", all.size()),
                  lines, m.help_scroll, 2);
}

// What the paged view's keys are, on its last line.
inline constexpr const char* paged_keys =
    "/ find  n/N next/prev  PgUp/PgDn j/k g/G  Left/Right  w wrap  o out/err  Esc";

inline void draw_paged(const model& m, tui::buffer& buf, const tui::rect& area) {
  const auto& p = m.paged;
  const auto& th = tui::default_theme();
  std::uint64_t shown = static_cast<std::uint64_t>(paged_lines_shown(m));
  std::string pos = !p.total        ? fmt::format("from line {} (counting...)", p.shown_first + 1)
                    : *p.total == 0 ? std::string("empty log (0 lines)")  // not "lines 1-0 of 0"
                                    : fmt::format("lines {}-{} of {}", p.shown_first + 1,
                                                  p.shown_first + shown, *p.total);
  std::string title = fmt::format("{} {} {}  {}{}{}", p.task, leaseq::to_string(p.stream),
                                  p.loading ? "loading" : "", pos, p.wrap ? "  wrap" : "",
                                  p.find.empty() ? "" : "  /" + leaseq::sanitize_inline(p.find));
  tui::rect box{area.x, area.y, area.w, area.h};
  tui::rect in = tui::draw_pane(buf, box, title, true);
  if (in.empty()) return;
  if (!p.error.empty()) {
    tui::draw_line(buf, in, 0, leaseq::sanitize_inline(p.path + ": " + p.error), th.error);
    return;
  }
  tui::rect text{in.x, in.y, in.w, std::max(0, in.h - 2)};
  if (p.wrap) {
    tui::draw_wrapped_lines(buf, text, p.lines, 0, 0, tui::style{}, p.find);
  } else {
    for (int i = 0; i < text.h; ++i)
      tui::draw_cut_line(buf, text, i,
                         i < static_cast<int>(p.lines.size()) ? p.lines[static_cast<std::size_t>(i)]
                                                              : std::string(),
                         p.hscroll, tui::style{}, th, p.find);
  }
  // The note line: the prompt while typing, else what the last search said, else the path.
  if (p.typing) {
    tui::style st;
    st.reverse = true;
    tui::draw_line(
        buf, in, in.h - 2,
        tui::truncate_text("/" + leaseq::sanitize_inline(p.typed) + "█  (Enter: find, Esc: cancel)",
                           in.w),
        st);
  } else if (!p.note.empty()) {
    tui::draw_line(buf, in, in.h - 2, tui::truncate_text(p.note, in.w),
                   p.note_error ? th.error : th.normal);
  } else {
    tui::draw_line(buf, in, in.h - 2, tui::truncate_text(leaseq::sanitize_inline(p.path), in.w),
                   th.dim);
  }
  tui::draw_line(buf, in, in.h - 1, tui::truncate_text(paged_keys, in.w), th.dim);
}

inline void draw_create_form(const model& m, tui::buffer& buf, const tui::rect& area) {
  const create_form& f = m.create;
  const auto& th = tui::default_theme();
  tui::rect in = tui::draw_modal(buf, area, std::min(area.w, 90), area.h, "create Slurm lease");
  if (in.empty()) return;
  tui::clip_scope cs(buf, in);
  int lw = 15;
  int n = static_cast<int>(f.form.fields.size());
  // Preview: sbatch command, keeper path, test-only status, keys.
  leaseq::lease_request req = form_request(f);
  leaseq::fs::path home(m.home);
  leaseq::fs::path script = home / "keepers" / "keeper-<time>-<pid>.sh";
  std::string cmd = leaseq::shell_join(leaseq::sbatch_argv(req, script, home, false));
  std::vector<std::pair<std::string, tui::style>> preview;
  preview.push_back({"preview:", th.title});
  // Every preview line wraps at the box width: a path or command cut short is no preview.
  auto add_wrapped = [&](const std::string& text, tui::style st, int indent) {
    for (auto& row : wrap_cells(text, std::max(10, in.w), indent)) preview.push_back({row, st});
  };
  add_wrapped("  " + cmd, th.normal, 2);
  add_wrapped("keeper script: " + script.string(), th.normal, 2);
  add_wrapped("slots per node: " + leaseq::slots_preview(req), th.normal, 2);
  add_wrapped("  (kept as " + (home / "runs" / "<jobid>" / "keeper.sh").string() + "; runs " +
                  m.binary + " runner on each node)",
              th.dim, 2);
  std::string phase;
  tui::style ps = th.normal;
  switch (f.phase) {
    case form_phase::editing:
      phase = "Enter: check with sbatch --test-only";
      break;
    case form_phase::testing:
      phase = "checking with sbatch --test-only...";
      break;
    case form_phase::tested_ok:
      phase = "test-only OK. Enter: submit (sbatch), Esc: cancel";
      ps.fg = tui::colors::green;
      break;
    case form_phase::tested_fail:
      phase = "not submitted (fix and press Enter to check again)";
      ps = th.error;
      break;
    case form_phase::submitting:
      phase = "submitting...";
      break;
  }
  preview.push_back({phase, ps});
  if (!f.status.empty()) add_wrapped(leaseq::sanitize_inline(f.status), ps, 0);
  preview.push_back({"Tab/Up/Down: field  Enter: test, then submit  Esc: cancel", th.dim});
  int prev_h = std::min(static_cast<int>(preview.size()), std::max(0, in.h - 3));
  int fields_h = std::max(1, in.h - prev_h - 1);
  int first = std::clamp(f.form.focused - fields_h + 1, 0, std::max(0, n - fields_h));
  for (int i = 0; i < fields_h && first + i < n; ++i) {
    const auto& fl = f.form.fields[static_cast<std::size_t>(first + i)];
    bool foc = first + i == f.form.focused;
    int y = in.y + i;
    buf.print(in.x, y, tui::truncate_text(fl.label, lw), th.title, lw);
    tui::style vs;
    vs.underline = true;
    if (foc) vs.reverse = true;
    int fx = in.x + lw + 1, fw = std::max(0, in.right() - fx);
    tui::draw_line(buf, {fx, y, fw, 1}, 0, "", vs);
    std::string shown = leaseq::sanitize_inline(fl.value);
    if (!fl.error.empty()) shown += "  <- " + fl.error;
    buf.print(fx, y, tui::truncate_text(shown, fw), vs, fw);
  }
  int py = in.y + fields_h + 1;
  for (int i = 0; i < prev_h && py + i < in.bottom(); ++i)
    tui::draw_line(buf, in, py + i - in.y, tui::truncate_text(preview[i].first, in.w),
                   preview[i].second);
}

inline void draw_search(const model& m, tui::buffer& buf, const frame_layout& f) {
  tui::rect r = f.message.empty()
                    ? tui::rect{f.status.x, std::max(0, f.status.y - 1), f.status.w, 1}
                    : f.message;
  if (r.empty()) return;
  std::string where = m.search_lease_list || m.search_pane == pane::leases ? "leases"
                      : m.search_pane == pane::nodes                       ? "nodes"
                      : m.search_pane == pane::log                         ? "log"
                                                                           : "task commands";
  tui::style st;
  st.reverse = true;
  tui::draw_line(buf, r, 0,
                 "search " + where + ": " + leaseq::sanitize_inline(m.search_text) +
                     "█  (Enter: keep, Esc: clear)",
                 st);
}

inline void view(model& m, tui::buffer& buf) {
  buf.clear();
  frame_layout f = compute_layout(m);
  const auto& th = tui::default_theme();
  if (f.too_small) {
    tui::rect all = buf.area();
    tui::draw_line(buf, all, 0, "leaseq: window too small", th.normal);
    if (!f.status.empty() && f.status.y > 0)
      tui::draw_status_bar(buf, f.status, status_left(m, f.status.w), "");
    return;
  }
  if (m.screen == screen_kind::lease_list) {
    draw_leases(m, buf, f.leases, true);
  } else {
    draw_leases(m, buf, f.leases, m.focus == pane::leases);
    draw_nodes(m, buf, f.nodes, m.focus == pane::nodes);
    draw_tasks(m, buf, f.tasks, m.focus == pane::tasks);
    draw_log(m, buf, f.log, m.focus == pane::log);
  }
  if (!f.message.empty()) {
    tui::style st = m.message_error ? th.error : th.normal;
    tui::draw_line(buf, f.message, 0, tui::truncate_text(m.message, f.message.w), st);
  }
  tui::draw_status_bar(buf, f.status, status_left(m, f.status.w), "");
  tui::rect area = f.body;
  switch (m.ov) {
    case overlay::none:
      break;
    case overlay::help:
      draw_help_overlay(m, buf, area);
      break;
    case overlay::details:
      if (const auto* t = find_task(m, m.details_task))
        m.help_scroll =
            draw_text_modal(buf, area, "task " + t->id, details_lines(m, *t), m.help_scroll);
      else
        draw_text_modal(buf, area, "task " + m.details_task,
                        {{m.details_task + " is no longer in the snapshot", th.error}});
      break;
    case overlay::confirm:
      tui::draw_confirm(buf, area, m.confirm_title, m.confirm_question, m.confirm);
      break;
    case overlay::selector: {
      std::vector<std::string> items;
      for (const auto& id : m.selector_ids) {
        const auto* t = find_task(m, id);
        // Cut by cells, not bytes: a CJK command was cut 11 columns early.
        items.push_back(t ? fmt::format("{}  {}  {}", t->id, t->node,
                                        tui::truncate_text(leaseq::sanitize_inline(t->command()),
                                                           std::max(10, area.w - 30)))
                          : id);
      }
      tui::draw_selector(buf, area, "follow which RUNNING task?", items, m.selector);
      break;
    }
    case overlay::form:
      draw_create_form(m, buf, area);
      break;
    case overlay::stats:
      draw_stats(m, buf, area);
      break;
    case overlay::search:
      draw_search(m, buf, f);
      break;
    case overlay::paged:
      draw_paged(m, buf, area);
      break;
    case overlay::problems:
      draw_problems(m, buf, area);
      break;
  }
}

}  // namespace leaseq_dash
