#pragma once

// Values derived from the model that both update() and view() need: the visible leases and
// tasks, the current lease's row, short texts (ages, states), log paths. Pure.

#include "dashboard/model.hpp"

#include <leaseq/detail/text_width.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/sanitize.hpp>
#include <leaseq/slurm/slurm_parse.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace leaseq_dash {

inline constexpr double time_left_warning_s = 600;  // "under 10 minutes left"

inline std::string age_text(double seconds) {
  double a = std::max(0.0, seconds);
  if (a < 120) return fmt::format("{:.0f}s", std::floor(a));
  if (a < 7200) return fmt::format("{:.0f}m", std::floor(a / 60));
  if (a < 172800) return fmt::format("{:.0f}h", std::floor(a / 3600));
  return fmt::format("{:.0f}d", std::floor(a / 86400));
}

inline std::string clock_text(std::optional<double> t, double now) {
  if (!t || *t <= 0) return "-";
  std::time_t secs = static_cast<std::time_t>(*t);
  std::tm tm{};
  ::localtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return fmt::format("{} ({} ago)", buf, age_text(now - *t));
}

// Short state names for narrow columns.
inline std::string short_state(leaseq::task_state s) {
  using leaseq::task_state;
  switch (s) {
    case task_state::pending:
      return "PEND";
    case task_state::running:
      return "RUN";
    case task_state::finished:
      return "DONE";
    case task_state::failed:
      return "FAIL";
    case task_state::cancelled:
      return "CANC";
    case task_state::lost_maybe:
      return "LOST?";
    case task_state::lost:
      return "LOST";
    case task_state::unknown:
      return "UNKN";
  }
  return "?";
}

// The TIME column: how long a RUNNING task has run, how long an ended one ran; blank for a
// task that never started.
inline std::string elapsed_text(const leaseq::task_view& t, double now) {
  using leaseq::task_state;
  if (t.state == task_state::running) {
    auto from = t.started();
    return from && *from > 0 ? age_text(now - *from) : "";
  }
  if (t.result && t.result->started && t.result->finished && *t.result->started > 0)
    return age_text(*t.result->finished - *t.result->started);
  return "";
}

// Task list cells that depend on the task alone (view.hpp's columns ID to TIME).
inline std::string task_state_cell(const leaseq::task_view& t) {
  return t.unknown && t.state == leaseq::task_state::running ? "UNKN" : short_state(t.state);
}
inline std::string task_node_cell(const leaseq::task_view& t) {
  return t.node.empty() ? std::string(t.lane()) : t.node;
}
inline std::string task_exit_cell(const leaseq::task_view& t) {
  auto code = t.exit_code();
  return code ? std::to_string(*code) : "";
}

// The natural widths of the columns ID to TIME over the listed rows (view sizes the columns
// from every listed row); a RUNNING row's TIME moves with the clock, so those rows are listed
// for the frame to measure instead. Done where the rows are derived: on the derive thread
// for a big table.
inline task_column_widths measure_rows(const std::vector<const leaseq::task_view*>& rows) {
  task_column_widths w;
  w.natural.assign(7, 0);
  w.natural[0] = 2;
  auto grow = [&w](std::size_t c, const std::string& s) {
    w.natural[c] = std::max(w.natural[c], leaseq::detail::display_width(s));
  };
  for (const auto* t : rows) {
    grow(1, t->id);
    grow(2, task_state_cell(*t));
    grow(3, task_node_cell(*t));
    grow(4, task_exit_cell(*t));
    if (t->state == leaseq::task_state::running)
      w.running.push_back(t);
    else
      grow(5, elapsed_text(*t, 0));  // an ended task's TIME is its run time
  }
  return w;
}

inline std::string health_text(leaseq::node_health h) {
  return std::string(leaseq::to_string(h));
}

// The lease rows the lease list shows, with its filter (f) and search (/).
inline std::vector<const leaseq::lease_row*> visible_leases(const model& m) {
  std::vector<const leaseq::lease_row*> out;
  for (const auto& r : m.leases.rows) {
    if (!admits(m.lease_filter, r)) continue;
    if (!m.lease_search.empty() && !leaseq::detail::contains_ci(r.id, m.lease_search) &&
        !(r.name && leaseq::detail::contains_ci(*r.name, m.lease_search)))
      continue;
    out.push_back(&r);
  }
  return out;
}

inline const leaseq::lease_row* find_lease(const model& m, const std::string& id) {
  for (const auto& r : m.leases.rows)
    if (r.id == id) return &r;
  return nullptr;
}

inline const leaseq::lease_row* current_lease(const model& m) {
  return find_lease(m, m.lease_id);
}

inline bool is_slurm_lease(const model& m, const std::string& id) {
  if (const auto* r = find_lease(m, id)) return kind_of(*r) == lease_kind::slurm;
  return !leaseq::is_local_lease(id);
}

// Seconds left of the current Slurm lease, when Slurm said so.
inline std::optional<double> lease_seconds_left(const model& m) {
  const auto* r = current_lease(m);
  if (!r || kind_of(*r) != lease_kind::slurm || state_of(*r) != lease_state::running || r->stale)
    return std::nullopt;
  // time_left text is "D-HH:MM:SS", "HH:MM:SS", "MM:SS" or "UNLIMITED"/"-".
  const std::string& t = r->time_left;
  if (t.empty() || t == "-" || t == "UNLIMITED") return std::nullopt;
  double days = 0, total = 0;
  std::string rest = t;
  if (auto d = rest.find('-'); d != std::string::npos) {
    days = std::atof(rest.substr(0, d).c_str());
    rest = rest.substr(d + 1);
  }
  std::size_t pos = 0;
  while (pos <= rest.size()) {
    auto c = rest.find(':', pos);
    std::string part = rest.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    total = total * 60 + std::atof(part.c_str());
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  // The row's text was computed when the list was read (every ui.refresh_s), so this is at
  // most that old.
  return days * 86400 + total;
}

inline bool lease_ending_soon(const model& m) {
  auto left = lease_seconds_left(m);
  return left && *left < time_left_warning_s;
}

inline std::string capacity_text(const leaseq::lease_row& r) {
  if (kind_of(r) == lease_kind::local) {
    std::string s = fmt::format("gpus={}", r.gpus_per_node.value_or(0));
    s += state_of(r) == lease_state::running ? "  runner=OK" : "  runner=" + r.state;
    return s;
  }
  return fmt::format("nodes={} gpn={}", r.nodes ? std::to_string(*r.nodes) : std::string("?"),
                     r.gpus_per_node.value_or(0));
}

inline std::string state_text(const leaseq::lease_row& r) {
  std::string s = r.state;
  if (r.stale) s += "*";
  return s;
}

// A Slurm lease whose job is over: nothing left to release.
inline bool lease_ended(const leaseq::lease_row& r) {
  return kind_of(r) == lease_kind::slurm && leaseq::slurm_state_is_final(r.state);
}

// Lease states in a narrow lease pane, in the task list's words where they mean the same
// (RUN, PEND, DONE, FAIL, CANC), so no state is cut to "COMPLETI…" or "CANCELLE…".
inline std::string short_lease_state(const std::string& s) {
  static const std::pair<const char*, const char*> names[] = {
      {"RUNNING", "RUN"},       {"PENDING", "PEND"},      {"COMPLETED", "DONE"},
      {"COMPLETING", "ENDING"}, {"CANCELLED", "CANC"},    {"FAILED", "FAIL"},
      {"TIMEOUT", "TIMEOUT"},   {"UNKNOWN", "UNKN"},      {"STOPPED", "STOP"},
      {"NODE_FAIL", "NFAIL"},   {"PREEMPTED", "PREEMPT"}, {"SUSPENDED", "SUSP"},
      {"OUT_OF_MEMORY", "OOM"}, {"BOOT_FAIL", "BFAIL"},   {"DEADLINE", "DEADLN"},
  };
  for (const auto& [full, short_name] : names)
    if (s == full) return short_name;
  return s.size() > 7 ? s.substr(0, 7) : s;
}

inline std::string lease_state_text(const leaseq::lease_row& r, bool narrow) {
  std::string s = narrow ? short_lease_state(r.state) : r.state;
  if (r.stale) s += "*";
  return s;
}

// A heartbeat's age now: the snapshot's age plus the time since the snapshot was taken, so
// the age ticks every frame instead of freezing between scans ("hb 1s" for 7 s).
inline double live_hb_age(const model& m, const leaseq::node_view& n) {
  double age = n.hb_age_s.value_or(0);
  if (m.snap && m.snap->taken_at > 0) age += std::max(0.0, m.now - m.snap->taken_at);
  return age;
}

// Task, node and log paths of the current lease.
inline leaseq::lease_paths lease_paths_of(const model& m) {
  return leaseq::lease_paths(leaseq::home_paths(m.home), m.lease_id);
}

inline std::string log_path(const model& m, const leaseq::task_view& t, leaseq::log_stream s) {
  if (!leaseq::is_valid_node(t.node) || !leaseq::is_valid_lease_id(m.lease_id)) return {};
  auto lp = lease_paths_of(m);
  if (t.result) {
    const std::string& rel =
        s == leaseq::log_stream::out ? t.result->stdout_path : t.result->stderr_path;
    if (!rel.empty() && rel.find("..") == std::string::npos && rel[0] != '/')
      return (lp.root() / rel).string();
  }
  return (s == leaseq::log_stream::out ? lp.stdout_log(t.node, t.id) : lp.stderr_log(t.node, t.id))
      .string();
}

// The snapshot the task list shows: the live one, or the archived tasks (`a`).
inline const leaseq::snapshot* listed_snapshot(const model& m) {
  if (m.show_archived) return m.archived.get();
  return m.snap.get();
}

// A task as the dashboard shows it: while a big lease loads (snap_partial), a row its quick
// scan left unread shows what was read of its file since (req_read_rows), as long as the row
// is where it was when read.
inline const leaseq::task_view& shown_task(const model& m, const leaseq::task_view& t) {
  if (!m.snap_partial || t.spec || t.result || m.read_in_full.empty()) return t;
  auto it = m.read_in_full.find(t.seq);
  if (it == m.read_in_full.end() || it->second.state != t.state || it->second.node != t.node)
    return t;
  return it->second;
}

// A task by id: in the list shown first, then live (a followed log), then archived.
inline const leaseq::task_view* find_task(const model& m, const std::string& id) {
  for (const leaseq::snapshot* s : {listed_snapshot(m), m.snap.get(), m.archived.get()})
    if (s)
      if (const auto* t = s->find_task(id)) return s == m.archived.get() ? t : &shown_task(m, *t);
  return nullptr;
}

// While a big lease loads: asks for the rows its quick scan left unread around the selection,
// each once. The list keeps the selection on screen, so a screen's height either side holds
// every row shown: a few dozen files, and the screen shows commands and exit codes at once,
// long before the full scan has read every file.
inline void ask_rows_in_full(model& m) {
  if (!m.snap_partial || m.show_archived || m.visible.empty()) return;
  const int n = static_cast<int>(m.visible.size());
  const int sel = std::clamp(m.task_table.selected, 0, n - 1);
  const int top = std::max(0, sel - m.height);
  const int end = std::min(n, sel + m.height + 1);
  req_read_rows r{m.lease_id, {}};
  for (int i = top; i < end; ++i) {
    const leaseq::task_view& t = *m.visible[static_cast<std::size_t>(i)];
    // Asked again only in another state: a pending file read as gone moved on, and ended.
    std::int64_t key = t.seq * 8 + static_cast<std::int64_t>(leaseq::state_index(t.state));
    if (t.spec || t.result || !m.read_asked.insert(key).second) continue;
    r.rows.push_back(t);
  }
  if (!r.rows.empty()) m.outbox.push_back(std::move(r));
}

inline void forget_rows_read(model& m) {
  m.read_in_full.clear();
  m.read_asked.clear();
}

inline const leaseq::task_view* selected_task(const model& m) {
  if (m.visible.empty()) return nullptr;
  int i = std::clamp(m.task_table.selected, 0, static_cast<int>(m.visible.size()) - 1);
  return m.visible[static_cast<std::size_t>(i)];
}

inline const leaseq::node_view* selected_node(const model& m);

inline std::vector<const leaseq::node_view*> visible_nodes(const model& m) {
  std::vector<const leaseq::node_view*> out;
  if (!m.snap) return out;
  for (const auto& n : m.snap->nodes)
    if (m.node_search.empty() || leaseq::detail::contains_ci(n.name, m.node_search))
      out.push_back(&n);
  return out;
}

inline const leaseq::node_view* selected_node(const model& m) {
  auto nodes = visible_nodes(m);
  if (nodes.empty()) return nullptr;
  return nodes[static_cast<std::size_t>(
      std::clamp(m.node_table.selected, 0, static_cast<int>(nodes.size()) - 1))];
}

// A task `!` lists: unknown (its file does not parse, or is out of sight), not LOST? or LOST
// (those say so in their state).
inline bool is_problem_task(const leaseq::task_view& t) {
  return t.unknown && t.state != leaseq::task_state::lost_maybe &&
         t.state != leaseq::task_state::lost;
}

// What `!` lists, as `leaseq status` prints it: directories and files the scan could not use
// (which file, why), unreadable heartbeats, tasks whose files do not parse (unless
// !with_tasks), and the lease index's and config.json's problems.
inline std::vector<std::string> problem_lines(const model& m, bool with_tasks = true) {
  std::vector<std::string> out;
  if (!m.leases.index_error.empty()) out.push_back("index: " + m.leases.index_error);
  for (const auto& w : m.config_warnings) out.push_back(w);
  if (m.snap) {
    for (const auto& e : m.snap->errors)
      out.push_back(e.message.find(e.path) == std::string::npos && !e.path.empty()
                        ? e.path + ": " + e.message
                        : e.message);
    for (const auto& n : m.snap->nodes)
      if (n.hb_unknown && !n.hb_settling)  // settling: being replaced, lag (store.hpp)
        out.push_back("heartbeat of " + n.name + " is unreadable: " + n.hb_reason);
    if (with_tasks)
      for (const auto& t : m.snap->tasks())
        if (is_problem_task(t)) out.push_back(t.id + " is unknown: " + t.unknown_reason);
  }
  for (auto& l : out) l = leaseq::sanitize_inline(l);
  return out;
}

// problem_lines(m).size(), for every frame: the tasks are counted once per task table.
inline std::size_t problem_count(model& m) {
  std::size_t n = problem_lines(m, false).size();
  if (!m.snap) return n;
  if (m.problem_tasks.table != m.snap->task_table) {
    const auto& t = m.snap->tasks();
    m.problem_tasks.n =
        static_cast<std::size_t>(std::count_if(t.begin(), t.end(), is_problem_task));
    m.problem_tasks.table = m.snap->task_table;
  }
  return n + m.problem_tasks.n;
}

// "state:RUN,node:a,cmd:x,stderr" or "none".
inline std::string filters_text(const model& m) {
  std::string s;
  auto add = [&](const std::string& part) {
    if (!s.empty()) s += ',';
    s += part;
  };
  if (!m.filter.states.empty()) {
    std::string st;
    for (auto x : m.filter.states) {
      if (!st.empty()) st += '|';
      st += short_state(x);
    }
    add("state:" + st);
  }
  if (!m.filter.node.empty()) add("node:" + m.filter.node);
  for (const auto& l : m.filter.labels) add("label:" + leaseq::sanitize_inline(l));
  if (!m.filter.command.empty()) add("cmd:" + leaseq::sanitize_inline(m.filter.command));
  if (m.filter.has_stderr_output) add("stderr");
  return s.empty() ? "none" : s;
}

// slurm=<state/age/error> of the status bar.
inline std::string slurm_text(const model& m) {
  if (m.lease_id.empty() || !is_slurm_lease(m, m.lease_id)) return "-";
  const auto* r = current_lease(m);
  if (!r || !m.leases_loaded) return "?";
  // Until squeue answers, whatever the row shows comes from the cache or the heartbeats.
  if (!m.slurm_answered && r->error.empty()) return "asking";
  if (!r->error.empty() && r->state == "UNKNOWN")
    return "error:" + leaseq::sanitize_inline(r->error.substr(0, 60));
  std::string s = r->state;
  if (r->seen > 0) s += "/" + age_text(m.now - r->seen);
  if (r->stale) s += "/stale";
  return s;
}

// The task list's rows: leaseq::select_tasks, with two differences that are the dashboard's.
//  - State order puts the next task to run on top of the PEND block (seq ascending, as runners
//    claim), where "start time descending" put it at the bottom; the cap keeps those next ones.
//  - "has stderr output or a bad exit" (e) counts a task that failed before it could run (a
//    spawn failure: FAILED, no exit code) as a bad exit.
// `cancelled` is asked now and then while a big table is filtered (the derive thread gives
// up on a request a newer one replaced); an empty selection is returned then.
inline leaseq::task_selection dashboard_tasks(const std::vector<leaseq::task_view>& table,
                                              const leaseq::task_filter& filter,
                                              leaseq::task_sort order, std::size_t cap,
                                              const std::set<std::string>& stderr_ids,
                                              std::size_t page = 0,
                                              const std::function<bool()>& cancelled = {}) {
  auto probe = [&stderr_ids](const leaseq::task_view& t) {
    return stderr_ids.count(t.id) > 0 || (t.state == leaseq::task_state::failed && !t.exit_code());
  };
  leaseq::task_selection out;
  constexpr std::size_t check_every = 1 << 14;
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (cancelled && i % check_every == check_every - 1 && cancelled()) return {};
    if (leaseq::matches(table[i], filter, probe)) out.tasks.push_back(&table[i]);
  }
  out.total = out.tasks.size();
  // Page p shows rows [p*cap, (p+1)*cap): only that much of the order is sorted.
  cap = std::max<std::size_t>(1, cap);
  std::size_t first = std::min(page * cap, out.tasks.size());
  std::size_t end = std::min(first + cap, out.tasks.size());
  if (order == leaseq::task_sort::state_priority) {
    // Sorted on keys taken once per task, side by side in one array: comparing through the
    // views (a result's start time behind a pointer) misses the cache at every step of a
    // million-row sort.
    struct keyed {
      int priority;
      double start;  // started, else claimed, else created (unused for PENDING)
      std::int64_t seq;
      const leaseq::task_view* task;
    };
    std::vector<keyed> keys;
    keys.reserve(out.tasks.size());
    for (const auto* t : out.tasks)
      keys.push_back({leaseq::state_priority(t->state),
                      t->started().value_or(t->created().value_or(0)), t->seq, t});
    const int pending = leaseq::state_priority(leaseq::task_state::pending);  // PENDING alone
    auto by_state = [pending](const keyed& a, const keyed& b) {
      if (a.priority != b.priority) return a.priority < b.priority;
      if (a.priority == pending) return a.seq < b.seq;
      if (a.start != b.start) return a.start > b.start;
      return a.seq > b.seq;
    };
    auto mid = keys.begin() + static_cast<std::ptrdiff_t>(end);
    std::partial_sort(keys.begin(), mid, keys.end(), by_state);
    out.tasks.clear();
    for (auto k = keys.begin() + static_cast<std::ptrdiff_t>(first); k != mid; ++k)
      out.tasks.push_back(k->task);
    return out;
  }
  auto by_lane = [](const leaseq::task_view* a, const leaseq::task_view* b) {
    if (a->lane() != b->lane()) return a->lane() < b->lane();
    return a->seq < b->seq;
  };
  auto mid = out.tasks.begin() + static_cast<std::ptrdiff_t>(end);
  std::partial_sort(out.tasks.begin(), mid, out.tasks.end(), by_lane);
  out.tasks.erase(mid, out.tasks.end());
  out.tasks.erase(out.tasks.begin(), out.tasks.begin() + static_cast<std::ptrdiff_t>(first));
  return out;
}

inline leaseq::task_selection dashboard_tasks(const leaseq::snapshot& snap,
                                              const leaseq::task_filter& filter,
                                              leaseq::task_sort order, std::size_t cap,
                                              const std::set<std::string>& stderr_ids,
                                              std::size_t page = 0) {
  return dashboard_tasks(snap.tasks(), filter, order, cap, stderr_ids, page);
}

// The rows `from` asks for. A page past the end of a list that shrank moves to its last page
// (`page` says which was taken). Null when cancelled.
inline std::optional<derived_rows> derive_rows(const visible_source& from,
                                               const std::set<std::string>& stderr_ids,
                                               const std::function<bool()>& cancelled = {}) {
  static const std::vector<leaseq::task_view> none;
  const auto& table = from.table ? *from.table : none;
  derived_rows out;
  out.from = from;
  auto sel =
      dashboard_tasks(table, from.filter, from.sort, from.cap, stderr_ids, from.page, cancelled);
  if (cancelled && cancelled()) return std::nullopt;
  if (sel.tasks.empty() && from.page > 0) {
    out.from.page = sel.total == 0 ? 0 : (sel.total - 1) / from.cap;
    sel = dashboard_tasks(table, from.filter, from.sort, from.cap, stderr_ids, out.from.page,
                          cancelled);
    if (cancelled && cancelled()) return std::nullopt;
  }
  out.tasks = std::move(sel.tasks);
  out.total = sel.total;
  out.widths = measure_rows(out.tasks);
  return out;
}

// Empties the visible task list (no lease, or another one).
inline void forget_visible(model& m) {
  m.visible.clear();
  m.visible_total = 0;
  m.visible_from = {};
  m.deriving.reset();
}

// Puts the selection back after the visible list changed (see keep_selection).
inline void place_selection(model& m, keep_selection keep) {
  if (keep == keep_selection::task && !m.selected_task.empty()) {
    for (std::size_t i = 0; i < m.visible.size(); ++i)
      if (m.visible[i]->id == m.selected_task) {
        m.task_table.selected = static_cast<int>(i);
        return;
      }
  }
  m.task_table.selected =
      std::clamp(m.task_table.selected, 0, std::max(0, static_cast<int>(m.visible.size()) - 1));
  if (const auto* t = selected_task(m)) m.selected_task = t->id;
}

inline void install_rows(model& m, derived_rows rows) {
  m.visible = std::move(rows.tasks);
  m.visible_total = rows.total;
  m.task_page = rows.from.page;
  m.visible_from = std::move(rows.from);
  m.task_widths = std::move(rows.widths);
  m.task_widths.derivations = m.derivations;
  m.task_widths.rows = m.visible.data();
  m.task_widths.n = m.visible.size();
}

// Re-derives the visible task list after a new snapshot or a filter change: filters and sorts
// only when the task table, the filter, the sort, the page or the stderr probe changed. A
// table of more than m.derive_inline_max tasks is filtered and sorted on the worker's derive
// thread instead (req_derive; msg_rows brings the rows back): a key never waits on a pass over
// a million tasks, and the list shown meanwhile is the last one.
inline void recompute(model& m, keep_selection keep = keep_selection::task) {
  const leaseq::snapshot* src = listed_snapshot(m);
  if (!src) {
    forget_visible(m);
    return;
  }
  auto cap = static_cast<std::size_t>(std::max<std::int64_t>(1, m.ui.max_tasks_display));
  visible_source from{src->task_table, m.filter, m.sort, cap, m.task_page, m.stderr_gen};
  if (from == m.visible_from) {
    m.deriving.reset();  // back to what is shown: an answer on its way is no longer wanted
  } else if (src->tasks().size() > m.derive_inline_max) {
    // Task-keeping wins over row-keeping while one request answers both.
    if (!m.deriving || keep == keep_selection::task) m.derive_keep = keep;
    if (!m.deriving || !(*m.deriving == from)) {
      m.deriving = from;
      m.outbox.push_back(req_derive{std::move(from), m.stderr_ids});
    }
  } else {
    ++m.derivations;
    m.deriving.reset();
    install_rows(m, *derive_rows(from, m.stderr_ids));
  }
  place_selection(m, keep);
}

// The derive thread's answer: shown when it is the list still wanted.
inline void take_rows(model& m, derived_rows rows, const visible_source& asked) {
  if (!m.deriving || !(*m.deriving == asked)) return;
  m.deriving.reset();
  ++m.derivations;
  install_rows(m, std::move(rows));
  place_selection(m, m.derive_keep);
}

}  // namespace leaseq_dash
