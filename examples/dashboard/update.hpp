#pragma once

// update(model, message) and update(model, event): the dashboard's behaviour,
// pure. Effects are appended to m.outbox (for the worker) and m.clipboard (for
// the loop).

#include "dashboard/derive.hpp"
#include "dashboard/frame.hpp"
#include "dashboard/model.hpp"

#include <leaseq/names.hpp>
#include <leaseq/sanitize.hpp>
#include <leaseq/slurm/keeper.hpp>
#include <leaseq/tui/input.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace leaseq_dash {

inline constexpr double message_lifetime_s = 8;

inline void post(model& m, request r) {
  m.outbox.push_back(std::move(r));
}

inline void notify(model& m, std::string text, bool error = false) {
  m.message = leaseq::sanitize_inline(text);
  m.message_error = error;
  m.message_at = m.now;
}

// Backspace (a whole UTF-8 character), Ctrl-U and printable keys edit a
// one-line input; false for any other key.
inline bool edit_input(std::string& text, const tui::key& k) {
  if (k.is(tui::key_code::backspace)) {
    while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80)
      text.pop_back();
    if (!text.empty()) text.pop_back();
  } else if (k.ctrl && k.rune == 'u') {
    text.clear();
  } else if (k.code == tui::key_code::rune && !k.ctrl && !k.alt &&
             !leaseq::detail::is_control(k.rune)) {
    leaseq::detail::append_utf8(text, k.rune);
  } else {
    return false;
  }
  return true;
}

inline void open_lease(model& m, const std::string& id) {
  m.screen = screen_kind::dashboard;
  if (id == m.lease_id && m.snap) return;
  m.lease_id = id;
  m.snap.reset();
  m.snap_partial = false;
  forget_rows_read(m);
  forget_visible(m);
  m.selected_task.clear();
  m.task_table = {};
  m.node_table = {};
  m.marked.clear();
  m.filter = {};
  m.stderr_ids.clear();
  m.follow = {};
  m.log_lines.clear();
  m.log_open = false;
  m.focus = pane::tasks;
  post(m, req_open_lease{id});
  post(m, req_follow{});
}

// `tui --lease 999` for a lease leaseq does not know: say so and show the list,
// instead of an empty dashboard waiting on Slurm forever. (A local lease may be
// opened before its runner ever started: it stays.)
inline void check_open_lease_known(model& m) {
  if (m.screen != screen_kind::dashboard || m.lease_id.empty() || !m.leases.index_error.empty() ||
      leaseq::is_local_lease(m.lease_id) || find_lease(m, m.lease_id))
    return;
  notify(m, "unknown lease " + m.lease_id + ": not in the lease index (leaseq lease ls); pick one",
         true);
  m.screen = screen_kind::lease_list;
  m.lease_id.clear();
  m.snap.reset();
  m.snap_partial = false;
  forget_rows_read(m);
  forget_visible(m);
  post(m, req_open_lease{""});
  post(m, req_follow{});
}

// ---- following
// ---------------------------------------------------------------------------

inline void start_follow(model& m, const std::vector<const leaseq::task_view*>& tasks,
                         log_mode mode) {
  follow_target t;
  for (const auto* tv : tasks) {
    if (!tv) continue;
    follow_target::item it;
    it.task = tv->id;
    it.node = tv->node;
    it.out_path = log_path(m, *tv, leaseq::log_stream::out);
    it.err_path = log_path(m, *tv, leaseq::log_stream::err);
    t.tasks.push_back(std::move(it));
  }
  if (t.tasks.empty()) return;
  t.mode = mode;
  t.id = ++m.follow_seq;
  m.follow = t;
  m.log_lines.clear();
  m.log_mtime.reset();
  m.log_view = {};
  m.log_open = true;
  post(m, req_follow{std::move(t)});
}

// Same tasks, another stream mode.
inline void refollow(model& m, log_mode mode) {
  if (m.follow.empty()) return;
  std::vector<const leaseq::task_view*> tasks;
  for (const auto& it : m.follow.tasks)
    if (const auto* t = find_task(m, it.task)) tasks.push_back(t);
  if (tasks.empty()) return;
  start_follow(m, tasks, mode);
}

// The spec's rule: exactly one RUNNING task -> follow it; several -> a
// selector; none -> say so.
inline void follow_current_running(model& m, log_mode mode) {
  if (!m.snap) {
    notify(m, "no data yet for this lease", true);
    return;
  }
  auto running = m.snap->running_tasks();
  if (running.empty()) {
    notify(m, "no RUNNING task to follow", true);
    return;
  }
  if (running.size() == 1) {
    start_follow(m, running, mode);
    notify(m, "following " + running.front()->id);
    return;
  }
  m.selector_ids.clear();
  for (const auto* t : running) m.selector_ids.push_back(t->id);
  m.selector = {};
  m.selector_mode = mode;
  m.ov = overlay::selector;
}

// F/E/A in the task list: the marked tasks, else the selected one, else the
// running rule.
inline void follow_selected(model& m, log_mode mode) {
  std::vector<const leaseq::task_view*> tasks;
  for (const auto& id : m.marked)
    if (const auto* t = find_task(m, id)) tasks.push_back(t);
  if (tasks.empty()) {
    if (const auto* t = selected_task(m)) tasks.push_back(t);
  }
  if (tasks.empty()) {
    follow_current_running(m, mode);
    return;
  }
  start_follow(m, tasks, mode);
  notify(m, tasks.size() == 1 ? "following " + tasks.front()->id
                              : fmt::format("following {} tasks merged", tasks.size()));
}

// Auto-follow the newest RUNNING task (ui.follow_auto_latest) when nothing runs
// in the pane.
inline void auto_follow_latest(model& m) {
  if (!m.ui.follow_auto_latest || !m.snap) return;
  bool current_running = false;
  for (const auto& it : m.follow.tasks)
    if (const auto* t = find_task(m, it.task); t && t->state == leaseq::task_state::running)
      current_running = true;
  if (current_running) return;
  const leaseq::task_view* newest = nullptr;
  for (const auto* t : m.snap->running_tasks())
    if (!newest || t->started().value_or(0) > newest->started().value_or(0) ||
        (t->started().value_or(0) == newest->started().value_or(0) && t->seq > newest->seq))
      newest = t;
  if (!newest) return;
  if (m.follow.tasks.size() == 1 && m.follow.tasks[0].task == newest->id) return;
  start_follow(m, {newest}, m.follow.empty() ? log_mode::out : m.follow.mode);
}

// A followed task that had no node yet (PENDING) is re-followed once it has
// one.
inline void refresh_follow_paths(model& m) {
  bool stale = false;
  for (const auto& it : m.follow.tasks)
    if (const auto* t = find_task(m, it.task);
        t && it.out_path.empty() && leaseq::is_valid_node(t->node))
      stale = true;
  if (stale) refollow(m, m.follow.mode);
}

// ---- paged logs
// --------------------------------------------------------------------------

// The paged view fills the body: a border, then the lines, a note line and a
// key line.
inline tui::rect paged_text_area(const model& m) {
  tui::rect body = compute_layout(m).body;
  return {body.x + 1, body.y + 1, std::max(1, body.w - 2), std::max(1, body.h - 4)};
}

inline int paged_rows(const model& m) {
  return paged_text_area(m).h;
}

// How many of the page's lines are on screen (fewer than its rows when long
// lines wrap): what PgDn moves by, so wrapping never skips a line.
inline int paged_lines_shown(const model& m) {
  const auto& p = m.paged;
  tui::rect r = paged_text_area(m);
  int n = static_cast<int>(p.lines.size());
  if (!p.wrap) return std::min(n, r.h);
  int rows = 0, whole = 0;
  for (const auto& l : p.lines) {
    rows += tui::wrapped_height(l, r.w);
    if (rows > r.h) break;
    ++whole;
  }
  return std::min(n, std::max(1, whole));
}

inline void request_page(model& m, std::optional<page_find> find = std::nullopt) {
  m.paged.gen = ++m.page_seq;
  m.paged.loading = true;
  if (!find && m.paged.searching) m.paged.note.clear();  // that search's answer is dropped
  m.paged.searching = find;
  post(m, req_page{m.paged.path, m.paged.first, paged_rows(m), m.paged.gen, std::move(find)});
}

inline void open_paged(model& m, const leaseq::task_view& t, leaseq::log_stream s) {
  std::string path = log_path(m, t, s);
  if (path.empty()) {
    notify(m, t.id + " has no log yet (" + std::string(leaseq::to_string(t.state)) + ")", true);
    return;
  }
  std::string find = m.ov == overlay::paged ? m.paged.find : std::string();  // o keeps it
  bool wrap = m.ov == overlay::paged && m.paged.wrap;
  m.paged = {};
  m.paged.task = t.id;
  m.paged.node = t.node;
  m.paged.stream = s;
  m.paged.path = path;
  m.paged.find = find;
  m.paged.wrap = wrap;
  m.ov = overlay::paged;
  request_page(m);
}

inline void paged_note(model& m, std::string text, bool error) {
  m.paged.note = leaseq::sanitize_inline(text);
  m.paged.note_error = error;
}

// n / N (and Enter after /): the next match below the current one (or the top
// line), or the previous one above it; a search the line budget stopped goes on
// from where it stopped.
inline void paged_search(model& m, bool forward) {
  auto& p = m.paged;
  if (p.find.empty()) {
    paged_note(m, "no search yet: / then the text, Enter", true);
    return;
  }
  std::uint64_t from;
  if (p.resume && p.resume->forward == forward && p.resume->text == p.find)
    from = p.resume->from;
  else if (forward)
    from = p.match ? *p.match + 1 : p.shown_first;
  else {
    std::uint64_t here = p.match ? *p.match : p.shown_first;
    if (here == 0) {
      paged_note(m, "no match for \"" + p.find + "\" above line 1 (the top)", true);
      return;
    }
    from = here - 1;
  }
  p.resume.reset();
  paged_note(m, "searching for \"" + p.find + "\"...", false);
  request_page(m, page_find{p.find, from, forward});
}

// The / prompt of the paged view: typing, Enter finds, Esc leaves the old
// search as it was.
inline void paged_prompt_key(model& m, const tui::key& k) {
  auto& p = m.paged;
  if (k.is(tui::key_code::escape)) {
    p.typing = false;
  } else if (k.is(tui::key_code::enter)) {
    p.typing = false;
    if (!p.typed.empty()) {
      p.find = p.typed;
      p.match.reset();
      p.resume.reset();
    }
    paged_search(m, true);
  } else {
    edit_input(p.typed, k);
  }
}

// The paged view's moves (lines, pages, top/bottom, sideways): a line wanted
// off the page asks the worker for the page it is on.
inline void paged_scroll(model& m, const tui::key& k) {
  auto& p = m.paged;
  std::uint64_t page = static_cast<std::uint64_t>(std::max(1, paged_lines_shown(m)));
  std::uint64_t rows = static_cast<std::uint64_t>(paged_rows(m));
  std::uint64_t last = p.total && *p.total > rows ? *p.total - rows : 0;
  std::uint64_t before = p.first;
  if (k.is(tui::key_code::down) || k.is('j'))
    p.first += 1;
  else if (k.is(tui::key_code::up) || k.is('k'))
    p.first = p.first > 0 ? p.first - 1 : 0;
  else if (k.is(tui::key_code::page_down) || k.is(' '))
    p.first += page;
  else if (k.is(tui::key_code::page_up))
    p.first = p.first > rows ? p.first - rows : 0;
  else if (k.is(tui::key_code::right) || k.is(tui::key_code::left)) {
    if (!p.wrap) p.hscroll = std::max(0, p.hscroll + (k.is(tui::key_code::right) ? 8 : -8));
  } else if (k.is('g') || k.is(tui::key_code::home))
    p.first = 0;
  else if (k.is('G') || k.is(tui::key_code::end))
    p.first = p.total ? last : UINT64_MAX / 2;  // unknown length: the worker clamps
  if (p.total && p.first > last) p.first = std::max(last, std::min(before, p.first));
  if (p.first != before) {
    // Moved by hand: n and N search from what is on screen now, as in less.
    p.match.reset();
    p.resume.reset();
    request_page(m);
  }
}

// o in the paged view: the other stream of the same task.
inline void paged_switch_stream(model& m) {
  const auto& p = m.paged;
  if (const auto* t = find_task(m, p.task))
    open_paged(
        m, *t,
        p.stream == leaseq::log_stream::out ? leaseq::log_stream::err : leaseq::log_stream::out);
}

// ---- the create form
// -----------------------------------------------------------------

inline std::string check_count(const std::string& v, long long min) {
  if (v.empty() || v.size() > 6 || v.find_first_not_of("0123456789") != std::string::npos)
    return "a whole number";
  if (std::stoll(v) < min) return fmt::format("at least {}", min);
  return {};
}

inline constexpr int form_extra_first = 10;  // index of the first "sbatch arg" field

// The slots field: empty (the runner's default, 1), auto, or a count
// (leaseq::parse_slots).
inline std::string check_slots(const std::string& v) {
  if (v.empty()) return {};
  try {
    leaseq::parse_slots(v);
    return {};
  } catch (const std::exception&) {
    return fmt::format("auto or 1 to {}", leaseq::max_slots);
  }
}

inline void open_create_form(model& m) {
  create_form f;
  auto& fs = f.form.fields;
  auto none = [](const std::string&) { return std::string(); };
  fs.push_back({"name", "", none, ""});
  fs.push_back({"nodes", "1", [](const std::string& v) { return check_count(v, 1); }, ""});
  fs.push_back({"time", "1:00:00",
                [](const std::string& v) { return v.empty() ? std::string("required") : ""; }, ""});
  for (const char* l : {"partition", "qos", "account", "constraint", "reservation"})
    fs.push_back({l, "", none, ""});
  fs.push_back({"gpus-per-node", "0", [](const std::string& v) { return check_count(v, 0); }, ""});
  fs.push_back({"slots", "", check_slots, ""});
  fs.push_back({"sbatch arg 1", "", none, ""});
  m.create = std::move(f);
  m.ov = overlay::form;
}

inline std::optional<std::string> opt_field(const std::string& v) {
  if (v.empty()) return std::nullopt;
  return v;
}

// The request the form describes (fields not validated yet are taken as they
// are).
inline leaseq::lease_request form_request(const create_form& f) {
  leaseq::lease_request r;
  const auto& fs = f.form.fields;
  auto val = [&](std::size_t i) { return i < fs.size() ? fs[i].value : std::string(); };
  r.name = opt_field(val(0));
  r.nodes = check_count(val(1), 1).empty() ? std::stoll(val(1)) : 1;
  r.time = val(2);
  r.partition = opt_field(val(3));
  r.qos = opt_field(val(4));
  r.account = opt_field(val(5));
  r.constraint = opt_field(val(6));
  r.reservation = opt_field(val(7));
  r.gpus_per_node = check_count(val(8), 0).empty() ? std::stoll(val(8)) : 0;
  if (check_slots(val(9)).empty()) r.slots = val(9);
  for (std::size_t i = form_extra_first; i < fs.size(); ++i)
    if (!fs[i].value.empty()) r.extra_args.push_back(fs[i].value);
  return r;
}

inline void form_key(model& m, const tui::key& k) {
  create_form& f = m.create;
  std::vector<std::string> before;
  for (const auto& fl : f.form.fields) before.push_back(fl.value);
  auto res = f.form.handle_key(k);
  if (res == tui::form_state::result::cancelled) {
    m.ov = overlay::none;
    notify(m, "lease creation cancelled");
    return;
  }
  // Repeatable extra arguments: a filled last one grows a new empty field.
  auto& fs = f.form.fields;
  if (!fs.empty() && !fs.back().value.empty())
    fs.push_back({fmt::format("sbatch arg {}", static_cast<int>(fs.size()) - form_extra_first + 1),
                  "", [](const std::string&) { return std::string(); }, ""});
  bool changed = before.size() != fs.size();
  for (std::size_t i = 0; i < before.size() && !changed; ++i) changed = before[i] != fs[i].value;
  if (changed && f.phase != form_phase::testing && f.phase != form_phase::submitting) {
    f.phase = form_phase::editing;
    f.status.clear();
  }
  if (res != tui::form_state::result::submitted) {
    if (k.is(tui::key_code::enter)) {
      for (const auto& fl : fs)
        if (!fl.error.empty()) f.status = fl.label + ": " + fl.error;
      f.phase = form_phase::tested_fail;
    }
    return;
  }
  leaseq::lease_request r = form_request(f);
  switch (f.phase) {
    case form_phase::editing:
    case form_phase::tested_fail:
      try {
        leaseq::validate(r);
      } catch (const std::exception& e) {
        f.phase = form_phase::tested_fail;
        f.status = e.what();
        return;
      }
      f.phase = form_phase::testing;
      f.status = "asking Slurm: sbatch --test-only ...";
      post(m, req_create{r, true});
      break;
    case form_phase::tested_ok:
      f.phase = form_phase::submitting;
      f.status = "submitting: sbatch ...";
      post(m, req_create{r, false});
      break;
    case form_phase::testing:
    case form_phase::submitting:
      break;
  }
}

// ---- key handling
// -------------------------------------------------------------------

inline std::vector<pane> focus_order(const model& m) {
  std::vector<pane> v{pane::leases, pane::nodes, pane::tasks};
  if (m.log_open) v.push_back(pane::log);
  return v;
}

inline void cycle_focus(model& m, int dir) {
  auto order = focus_order(m);
  auto it = std::find(order.begin(), order.end(), m.focus);
  int i = it == order.end() ? 0 : static_cast<int>(it - order.begin());
  int n = static_cast<int>(order.size());
  m.focus = order[static_cast<std::size_t>(((i + dir) % n + n) % n)];
}

inline void copy_text(model& m, const std::string& text, const std::string& what) {
  if (text.empty()) {
    notify(m, "nothing to copy", true);
    return;
  }
  m.clipboard = text;
  notify(m, "copied " + what + ": " + text.substr(0, 80));
}

inline void ask(model& m, std::string title, std::string question, request action) {
  m.confirm = {};
  m.confirm_title = std::move(title);
  m.confirm_question = std::move(question);
  m.confirm_action = std::move(action);
  m.ov = overlay::confirm;
}

inline void toggle_state_filter(model& m, std::vector<leaseq::task_state> states) {
  if (m.filter.states == states)
    m.filter.states.clear();
  else
    m.filter.states = std::move(states);
  m.task_table.selected = 0;
  m.selected_task.clear();
  recompute(m);
}

inline void open_search(model& m, pane where, bool lease_list) {
  m.search_pane = where;
  m.search_lease_list = lease_list;
  if (lease_list || where == pane::leases)
    m.search_text = m.lease_search;
  else if (where == pane::nodes)
    m.search_text = m.node_search;
  else if (where == pane::log)
    m.search_text = m.log_search;
  else
    m.search_text = leaseq::task_search_text(m.filter);
  m.ov = overlay::search;
}

// Jumps the log view to a line holding the search text: the newest one as it is
// typed, then (n) the next one up or (N) back down; says so when there is none.
inline void log_find(model& m, int dir = 0) {
  if (m.log_search.empty()) {
    if (dir != 0) notify(m, "no search yet: / then the text", true);
    return;
  }
  int n = static_cast<int>(m.log_lines.size());
  int step = dir > 0 ? 1 : -1;
  int from = dir == 0 || m.log_view.follow ? (dir > 0 ? n : n - 1) : m.log_view.offset + step;
  for (int i = from; i >= 0 && i < n; i += step) {
    if (leaseq::detail::contains_ci(m.log_lines[static_cast<std::size_t>(i)], m.log_search)) {
      m.log_view.follow = false;
      m.log_view.offset = i;
      return;
    }
  }
  notify(m,
         "no match for \"" + m.log_search + "\"" +
             (dir == 0  ? " in the log"
              : dir > 0 ? " further down"
                        : " further up"),
         true);
}

inline void apply_search(model& m) {
  if (m.search_lease_list || m.search_pane == pane::leases) {
    m.lease_search = m.search_text;
    m.lease_table.selected = 0;
  } else if (m.search_pane == pane::nodes) {
    m.node_search = m.search_text;
    m.node_table.selected = 0;
  } else if (m.search_pane == pane::log) {
    m.log_search = m.search_text;
    log_find(m);
  } else {
    leaseq::set_task_search(m.filter, m.search_text);
    m.task_table.selected = 0;
    m.selected_task.clear();
    recompute(m);
  }
}

inline void search_key(model& m, const tui::key& k) {
  if (k.is(tui::key_code::escape)) {
    m.search_text.clear();
    apply_search(m);
    m.ov = overlay::none;
    return;
  }
  if (k.is(tui::key_code::enter)) {
    m.ov = overlay::none;
    return;
  }
  if (edit_input(m.search_text, k)) apply_search(m);
}

// ---- the keymap
// ------------------------------------------------------------------------ One
// table: each entry is a context, its keys, its help line and its action.
// handle_key() dispatches through it and the help overlay (key_help) is drawn
// from it, so a key has a help line and a help line has a key.

// Where a key applies: the overlay that is open, else the screen and the
// focused pane.
enum class key_context {
  anywhere,
  global,     // no overlay open
  dashboard,  // no overlay open, the dashboard screen
  leases,     // the lease list screen, or the leases pane
  nodes,
  tasks,
  log,
  details,
  paged,
  paged_find,  // the / prompt of the paged view
  search,
  form,
  confirm,
  selector,
  help,
  problems,
  stats,
};

inline constexpr key_context key_contexts_in_order[] = {
    key_context::anywhere, key_context::global,     key_context::dashboard, key_context::leases,
    key_context::nodes,    key_context::tasks,      key_context::log,       key_context::details,
    key_context::paged,    key_context::paged_find, key_context::search,    key_context::form,
    key_context::confirm,  key_context::selector,   key_context::help,      key_context::problems,
    key_context::stats};

inline const char* to_string(key_context c) {
  switch (c) {
    case key_context::anywhere:
      return "anywhere";
    case key_context::global:
      return "global";
    case key_context::dashboard:
      return "dashboard";
    case key_context::leases:
      return "lease list / leases pane";
    case key_context::nodes:
      return "nodes pane";
    case key_context::tasks:
      return "task list";
    case key_context::log:
      return "log viewer";
    case key_context::details:
      return "task details";
    case key_context::paged:
      return "paged logs (L)";
    case key_context::paged_find:
      return "paged logs: the / prompt";
    case key_context::search:
      return "search (/)";
    case key_context::form:
      return "Slurm lease form (n)";
    case key_context::confirm:
      return "confirmation (X, x)";
    case key_context::selector:
      return "RUNNING task selector (f)";
    case key_context::help:
      return "this help";
    case key_context::problems:
      return "problems (!)";
    case key_context::stats:
      return "node stats (s)";
  }
  return "?";
}

using key_action = void (*)(model&, const tui::key&);

struct key_binding {
  key_context context;
  // The keys; none: every key no other entry of the context takes (typing,
  // "closes").
  std::vector<tui::key> keys;
  std::string help;
  key_action action;
  std::string others_label{};  // the help's name for "every other key" (keys empty)
};

// The help's name of a key: key_name's, Space for ' '.
inline std::string key_text(const tui::key& k) {
  return k.is(' ') ? std::string("Space") : tui::key_name(k);
}

inline std::string key_label(const key_binding& b) {
  if (b.keys.empty()) return b.others_label;
  std::string s;
  for (const auto& k : b.keys) s += (s.empty() ? "" : " / ") + key_text(k);
  return s;
}

// A key pressed is the entry's key: the same character or key, Ctrl as written,
// Shift (which the character already says) not compared; Shift+Tab however it
// came.
inline bool key_matches(const tui::key& want, const tui::key& k) {
  if (want.ctrl) return k.ctrl && !k.alt && k.code == want.code && k.rune == want.rune;
  if (want.code == tui::key_code::backtab) return k.code == tui::key_code::backtab;
  return want.code == tui::key_code::rune ? k.is(want.rune) : k.is(want.code);
}

inline const std::vector<std::pair<std::string, std::string>>& key_help();

inline void overlay_scroll(model& m, int delta) {
  int lines = m.ov == overlay::problems ? static_cast<int>(problem_lines(m).size())
                                        : static_cast<int>(key_help().size());
  m.help_scroll = std::clamp(m.help_scroll + delta, 0, std::max(0, lines - 1));
}

inline int overlay_page(const model& m) {
  return std::max(1, m.height - 6);
}

inline void close_overlay(model& m, const tui::key&) {
  m.ov = overlay::none;
}

// The lease under the selection (lease list or pane), or null.
inline const leaseq::lease_row* selected_lease(const model& m) {
  auto rows = visible_leases(m);
  if (rows.empty()) return nullptr;
  return rows[static_cast<std::size_t>(
      std::clamp(m.lease_table.selected, 0, static_cast<int>(rows.size()) - 1))];
}

inline void lease_move(model& m, const tui::key& k) {
  m.lease_table.handle_key(k, static_cast<int>(visible_leases(m).size()),
                           page_rows(compute_layout(m).leases));
}

inline void node_move(model& m, const tui::key& k) {
  m.node_table.handle_key(k, static_cast<int>(visible_nodes(m).size()),
                          page_rows(compute_layout(m).nodes));
}

inline void task_move(model& m, const tui::key& k) {
  m.task_table.handle_key(k, static_cast<int>(m.visible.size()),
                          page_rows(compute_layout(m).tasks));
  if (const auto* t = selected_task(m)) m.selected_task = t->id;
}

inline void log_move(model& m, const tui::key& k) {
  m.log_view.handle_key(k, static_cast<int>(m.log_lines.size()),
                        page_rows(compute_layout(m).log, 2));
}

inline log_mode follow_mode_of(const tui::key& k) {
  return k.is('F') ? log_mode::out : k.is('E') ? log_mode::err : log_mode::merged;
}

inline void follow_running_key(model& m, const tui::key&) {
  follow_current_running(m, log_mode::out);
}

inline void confirm_key(model& m, const tui::key& k) {
  auto r = m.confirm.handle_key(k);
  if (r == tui::confirm_state::result::accepted) {
    if (m.confirm_action) post(m, *m.confirm_action);
    m.confirm_action.reset();
    m.ov = overlay::none;
  } else if (r == tui::confirm_state::result::cancelled) {
    m.confirm_action.reset();
    m.ov = overlay::none;
    notify(m, "cancelled: nothing done");
  }
}

inline void selector_key(model& m, const tui::key& k) {
  auto r = m.selector.handle_key(k, static_cast<int>(m.selector_ids.size()));
  if (r == tui::selector_state::result::chosen) {
    m.ov = overlay::none;
    const auto* t =
        find_task(m, m.selector_ids[static_cast<std::size_t>(std::clamp(
                         m.selector.selected, 0, static_cast<int>(m.selector_ids.size()) - 1))]);
    if (t) {
      start_follow(m, {t}, m.selector_mode);
      notify(m, "following " + t->id);
    }
  } else if (r == tui::selector_state::result::cancelled) {
    m.ov = overlay::none;
  }
}

inline void task_state_filter_key(model& m, const tui::key& k) {
  using leaseq::task_state;
  if (k.is('1'))
    toggle_state_filter(m, {task_state::pending});
  else if (k.is('2'))
    toggle_state_filter(m, {task_state::running});
  else if (k.is('3'))
    toggle_state_filter(m, {task_state::failed});
  else
    toggle_state_filter(m, {task_state::finished});
}

inline void task_page_key(model& m, const tui::key& k) {
  auto cap = static_cast<std::size_t>(std::max<std::int64_t>(1, m.ui.max_tasks_display));
  std::size_t pages = m.visible_total == 0 ? 1 : (m.visible_total - 1) / cap + 1;
  std::size_t next =
      k.is(']') ? std::min(m.task_page + 1, pages - 1) : (m.task_page > 0 ? m.task_page - 1 : 0);
  if (next == m.task_page) {
    notify(m, k.is(']') ? "last page of tasks" : "first page of tasks");
    return;
  }
  m.task_page = next;
  m.task_table = {};
  m.selected_task.clear();
  recompute(m);
  notify(m, fmt::format("tasks page {}/{}", m.task_page + 1, pages));
}

inline void task_cancel_key(model& m, const tui::key&) {
  const leaseq::task_view* t = selected_task(m);
  if (!t) return;
  if (leaseq::is_done(t->state)) {
    notify(m, t->id + " already ended (" + std::string(leaseq::to_string(t->state)) + ")", true);
    return;
  }
  ask(m, "Cancel task",
      "Cancel " + t->id + " (" + std::string(leaseq::to_string(t->state)) + ")? " +
          tui::truncate_text(leaseq::sanitize_inline(t->command()), 40),
      req_cancel{t->id});
}

inline void task_archived_key(model& m, const tui::key&) {
  m.show_archived = !m.show_archived;
  m.task_table.selected = 0;
  m.task_page = 0;
  m.selected_task.clear();
  if (m.show_archived) {
    m.archived.reset();  // read afresh: a clean may have run since
    post(m, req_archived{});
    notify(m, "archived tasks (leaseq clean): reading...  a: back to the live ones");
  } else {
    notify(m, "live tasks");
  }
  recompute(m);
}

inline void lease_release_key(model& m, const tui::key&) {
  const auto* sel = selected_lease(m);
  if (!sel) return;
  if (kind_of(*sel) != lease_kind::slurm) {
    notify(m, "only Slurm leases can be released (" + sel->id + " is " + sel->kind + ")", true);
    return;
  }
  if (lease_ended(*sel)) {
    notify(m, "lease " + sel->id + " already ended (" + sel->state + "): nothing to release", true);
    return;
  }
  ask(m, "Release lease",
      "Release lease " + sel->id + " (scancel " + sel->id + ")? Its running tasks are stopped.",
      req_release{sel->id});
}

inline void node_filter_key(model& m, const tui::key&) {
  const leaseq::node_view* n = selected_node(m);
  if (!n) return;
  m.filter.node = m.filter.node == n->name ? std::string() : n->name;
  m.task_table.selected = 0;
  m.selected_task.clear();
  recompute(m);
  notify(m, m.filter.node.empty() ? "node filter cleared" : "tasks of node " + n->name);
}

inline void log_toggle_follow_key(model& m, const tui::key&) {
  int n = static_cast<int>(m.log_lines.size());
  m.log_view.follow = !m.log_view.follow;
  if (!m.log_view.follow) m.log_view.offset = std::max(0, n - page_rows(compute_layout(m).log, 2));
  notify(m, m.log_view.follow ? "follow on" : "follow paused");
}

// Up/Down and j/k of the detail modal: a long command or env does not fit 24
// rows (draw_text_modal clamps).
inline void details_scroll_key(model& m, const tui::key& k) {
  if (k.is(tui::key_code::down) || k.is('j'))
    ++m.help_scroll;
  else
    m.help_scroll = std::max(0, m.help_scroll - 1);
}

inline const std::vector<key_binding>& keymap() {
  using kc = key_context;
  using tui::key_code;
  auto ch = [](char32_t c) { return tui::key::ch(c); };
  auto code = [](key_code c) { return tui::key::of(c); };
  const std::vector<tui::key> up_down{ch('j'), ch('k'), code(key_code::up), code(key_code::down)};
  const std::vector<tui::key> pages{code(key_code::page_up), code(key_code::page_down)};
  const std::vector<tui::key> ends{ch('g'), ch('G'), code(key_code::home), code(key_code::end)};
  const std::vector<tui::key> sideways{code(key_code::left), code(key_code::right)};
  const std::vector<tui::key> editing{code(key_code::backspace), tui::key::ctrl_of('u')};
  static const std::vector<key_binding> table = [&] {
    std::vector<key_binding> t = {
        {kc::anywhere,
         {tui::key::ctrl_of('c')},
         "quit",
         [](model& m, const tui::key&) { m.quit = true; }},

        {kc::global, {ch('q')}, "quit", [](model& m, const tui::key&) { m.quit = true; }},
        {kc::global,
         {ch('?')},
         "this help",
         [](model& m, const tui::key&) {
           m.ov = overlay::help;
           m.help_scroll = 0;
         }},
        {kc::global,
         {ch('/')},
         "search (tasks: command, label:NAME; leases: id/name; nodes: name; log: "
         "text)",
         [](model& m, const tui::key&) {
           bool on_list = m.screen == screen_kind::lease_list;
           open_search(m, on_list ? pane::leases : m.focus, on_list);
         }},
        {kc::global,
         {ch('!')},
         "list the problems: unreadable files and dirs (which, why), config.json "
         "keys",
         [](model& m, const tui::key&) {
           m.ov = overlay::problems;
           m.help_scroll = 0;
         }},
        {kc::global,
         {ch('r')},
         "refresh now",
         [](model& m, const tui::key&) {
           post(m, req_refresh{});
           notify(m, "refreshing");
         }},
        {kc::global,
         {ch('p')},
         "pause / resume auto-refresh",
         [](model& m, const tui::key&) {
           m.refresh_paused = !m.refresh_paused;
           post(m, req_set_paused{m.refresh_paused});
           notify(m,
                  m.refresh_paused ? "auto-refresh paused (r still refreshes)" : "auto-refresh on");
         }},

        {kc::dashboard,
         {code(key_code::tab)},
         "next pane",
         [](model& m, const tui::key&) { cycle_focus(m, 1); }},
        {kc::dashboard,
         {code(key_code::backtab)},
         "previous pane",
         [](model& m, const tui::key&) { cycle_focus(m, -1); }},

        {kc::leases, up_down, "move selection", lease_move},
        {kc::leases, pages, "page up / down", lease_move},
        {kc::leases, ends, "first / last lease", lease_move},
        {kc::leases,
         {code(key_code::enter)},
         "open the selected lease's dashboard",
         [](model& m, const tui::key&) {
           if (const auto* sel = selected_lease(m)) open_lease(m, sel->id);
         }},
        {kc::leases,
         {ch('l')},
         "make the selected lease the default (lease use)",
         [](model& m, const tui::key&) {
           if (const auto* sel = selected_lease(m)) post(m, req_set_default{sel->id});
         }},
        {kc::leases,
         {ch('n')},
         "create a Slurm lease (form)",
         [](model& m, const tui::key&) { open_create_form(m); }},
        {kc::leases, {ch('x')}, "release the selected Slurm lease (asks first)", lease_release_key},
        {kc::leases,
         {ch('f')},
         "filter leases: all/local/slurm/running/pending",
         [](model& m, const tui::key&) {
           m.lease_filter = next(m.lease_filter);
           m.lease_table.selected = 0;
           notify(m, std::string("lease filter: ") + to_string(m.lease_filter));
         }},
        {kc::leases,
         {ch('c')},
         "copy the lease id (OSC 52)",
         [](model& m, const tui::key&) {
           if (const auto* sel = selected_lease(m)) copy_text(m, sel->id, "lease id");
         }},
        {kc::leases,
         {code(key_code::escape)},
         "back to the lease list screen (leases pane)",
         [](model& m, const tui::key&) {
           if (m.screen == screen_kind::dashboard) m.screen = screen_kind::lease_list;
         }},

        {kc::nodes, up_down, "move selection", node_move},
        {kc::nodes, pages, "page up / down", node_move},
        {kc::nodes, ends, "first / last node", node_move},
        {kc::nodes,
         {code(key_code::enter)},
         "filter the task list to this node (again: clear)",
         node_filter_key},
        {kc::nodes,
         {ch('s')},
         "node stats (hb age, running task, pending count)",
         [](model& m, const tui::key&) {
           if (const auto* n = selected_node(m)) {
             m.stats_node = n->name;
             m.ov = overlay::stats;
           }
         }},
        {kc::nodes,
         {ch('P')},
         "pause this node's lane (control/<node>/pause.json)",
         [](model& m, const tui::key&) {
           if (const auto* n = selected_node(m)) post(m, req_lane{n->name, true});
         }},
        {kc::nodes,
         {ch('U')},
         "resume this node's lane (control/<node>/resume.json)",
         [](model& m, const tui::key&) {
           if (const auto* n = selected_node(m)) post(m, req_lane{n->name, false});
         }},
        {kc::nodes,
         {ch('c')},
         "copy the node name (OSC 52)",
         [](model& m, const tui::key&) {
           if (const auto* n = selected_node(m)) copy_text(m, n->name, "node");
         }},

        {kc::tasks, up_down, "move selection", task_move},
        {kc::tasks, pages, "page up / down", task_move},
        {kc::tasks, ends, "first / last task", task_move},
        {kc::tasks,
         {code(key_code::enter)},
         "task details",
         [](model& m, const tui::key&) {
           const leaseq::task_view* t = selected_task(m);
           if (!t) return;
           m.details_task = t->id;
           m.details_env = false;
           m.help_scroll = 0;
           m.ov = overlay::details;
         }},
        {kc::tasks,
         {ch('F'), ch('E'), ch('A')},
         "follow stdout / stderr / both merged (the marked tasks, else the "
         "selected one)",
         [](model& m, const tui::key& k) { follow_selected(m, follow_mode_of(k)); }},
        {kc::tasks,
         {ch('L')},
         "open logs (paged, any size)",
         [](model& m, const tui::key&) {
           if (const auto* t = selected_task(m)) open_paged(m, *t, leaseq::log_stream::out);
         }},
        {kc::tasks,
         {ch('X')},
         "cancel task (writes a cancel control file; asks first)",
         task_cancel_key},
        {kc::tasks,
         {ch('R')},
         "retry task (new task, same command, new key)",
         [](model& m, const tui::key&) {
           if (const auto* t = selected_task(m)) post(m, req_retry{t->id});
         }},
        {kc::tasks,
         {ch('1'), ch('2'), ch('3'), ch('4')},
         "filter pending / running / failed / finished (again: clear)",
         task_state_filter_key},
        {kc::tasks,
         {ch('5')},
         "filter LOST? and LOST",
         [](model& m, const tui::key&) {
           toggle_state_filter(m, {leaseq::task_state::lost_maybe, leaseq::task_state::lost});
         }},
        {kc::tasks,
         {ch('e')},
         "filter tasks with stderr output or a bad exit",
         [](model& m, const tui::key&) {
           m.filter.has_stderr_output = !m.filter.has_stderr_output;
           post(m, req_stderr_probe{m.filter.has_stderr_output});
           m.task_table.selected = 0;
           recompute(m);
         }},
        {kc::tasks,
         {ch('0')},
         "clear all filters",
         [](model& m, const tui::key&) {
           m.filter = {};
           m.stderr_ids.clear();
           post(m, req_stderr_probe{false});
           recompute(m);
           notify(m, "filters cleared");
         }},
        {kc::tasks,
         {ch('S')},
         "sort: state priority, then start desc <-> seq within lane",
         [](model& m, const tui::key&) {
           m.sort = m.sort == leaseq::task_sort::state_priority ? leaseq::task_sort::seq_in_lane
                                                                : leaseq::task_sort::state_priority;
           recompute(m);
           notify(m, m.sort == leaseq::task_sort::state_priority
                         ? "sort: state, then start (newest)"
                         : "sort: seq within lane");
         }},
        {kc::tasks,
         {ch('a')},
         "list the archived tasks (leaseq clean) <-> the live ones",
         task_archived_key},
        {kc::tasks,
         {ch('['), ch(']')},
         "previous / next page of tasks (ui.max_tasks_display rows each)",
         task_page_key},
        {kc::tasks,
         {ch('v'), ch(' ')},
         "mark task for a merged follow (F/E/A follow all marked)",
         [](model& m, const tui::key&) {
           const leaseq::task_view* t = selected_task(m);
           if (!t) return;
           if (!m.marked.erase(t->id)) m.marked.insert(t->id);
           m.task_table.move(1, static_cast<int>(m.visible.size()));
           if (const auto* nt = selected_task(m)) m.selected_task = nt->id;
         }},
        {kc::tasks,
         {ch('c')},
         "copy the task id (OSC 52)",
         [](model& m, const tui::key&) {
           if (const auto* t = selected_task(m)) copy_text(m, t->id, "task id");
         }},

        {kc::log, {ch(' ')}, "toggle follow (tail -f)", log_toggle_follow_key},
        {kc::log, up_down, "scroll", log_move},
        {kc::log, pages, "scroll a page", log_move},
        {kc::log, ends, "top / bottom", log_move},
        {kc::log, sideways, "scroll long lines sideways (a cut line ends with ›)", log_move},
        {kc::log, {ch('w')}, "wrap long lines / cut them", log_move},
        {kc::log,
         {ch('o')},
         "switch stdout <-> stderr",
         [](model& m, const tui::key&) {
           refollow(m, m.follow.mode == log_mode::out ? log_mode::err : log_mode::out);
         }},
        {kc::log,
         {ch('m')},
         "merge / unmerge stdout+stderr",
         [](model& m, const tui::key&) {
           refollow(m, m.follow.mode == log_mode::merged ? log_mode::out : log_mode::merged);
         }},
        {kc::log,
         {ch('n'), ch('N')},
         "next match of / up / down (matches marked)",
         [](model& m, const tui::key& k) { log_find(m, k.is('n') ? -1 : 1); }},
        {kc::log,
         {ch('c')},
         "copy the log path (OSC 52)",
         [](model& m, const tui::key&) {
           if (m.follow.empty()) return;
           copy_text(m,
                     m.follow.mode == log_mode::err ? m.follow.tasks[0].err_path
                                                    : m.follow.tasks[0].out_path,
                     "log path");
         }},
        {kc::log,
         {code(key_code::escape)},
         "collapse the log pane",
         [](model& m, const tui::key&) {
           m.log_open = false;
           m.focus = pane::tasks;
         }},

        {kc::details,
         {ch('F'), ch('E'), ch('A')},
         "follow stdout / stderr / both merged",
         [](model& m, const tui::key& k) {
           const leaseq::task_view* t = find_task(m, m.details_task);
           if (!t) return;
           m.ov = overlay::none;
           start_follow(m, {t}, follow_mode_of(k));
           notify(m, "following " + t->id);
         }},
        {kc::details,
         {ch('L')},
         "open logs (paged)",
         [](model& m, const tui::key&) {
           if (const auto* t = find_task(m, m.details_task))
             open_paged(m, *t, leaseq::log_stream::out);
         }},
        {kc::details,
         {ch('c')},
         "copy the command (OSC 52)",
         [](model& m, const tui::key&) {
           if (const auto* t = find_task(m, m.details_task)) copy_text(m, t->command(), "command");
         }},
        {kc::details,
         {ch('y')},
         "copy the task id (OSC 52)",
         [](model& m, const tui::key&) {
           if (const auto* t = find_task(m, m.details_task)) copy_text(m, t->id, "task id");
         }},
        {kc::details,
         {ch('e')},
         "show / hide the environment",
         [](model& m, const tui::key&) {
           if (find_task(m, m.details_task)) m.details_env = !m.details_env;
         }},
        {kc::details, up_down, "scroll when it does not fit",
         [](model& m, const tui::key& k) {
           if (find_task(m, m.details_task)) details_scroll_key(m, k);
         }},
        {kc::details,
         {code(key_code::escape), ch('q'), code(key_code::enter)},
         "close",
         close_overlay},

        {kc::paged, up_down, "scroll", paged_scroll},
        {kc::paged,
         {code(key_code::page_up), code(key_code::page_down), ch(' ')},
         "scroll a page",
         paged_scroll},
        {kc::paged, ends, "top / bottom", paged_scroll},
        {kc::paged, sideways, "scroll long lines sideways (a cut line ends with ›)", paged_scroll},
        {kc::paged,
         {ch('w')},
         "wrap long lines / cut them",
         [](model& m, const tui::key&) {
           m.paged.wrap = !m.paged.wrap;
           m.paged.hscroll = 0;
         }},
        {kc::paged,
         {ch('/')},
         "find text in the whole file (type it, then Enter; matches marked)",
         [](model& m, const tui::key&) {
           m.paged.typing = true;
           m.paged.typed.clear();
         }},
        {kc::paged,
         {ch('n'), ch('N')},
         "next / previous match",
         [](model& m, const tui::key& k) { paged_search(m, k.is('n')); }},
        {kc::paged,
         {ch('o')},
         "switch stdout <-> stderr",
         [](model& m, const tui::key&) { paged_switch_stream(m); }},
        {kc::paged, {code(key_code::escape), ch('q'), ch('L')}, "close", close_overlay},

        {kc::paged_find,
         {code(key_code::enter)},
         "find it, from the top line down",
         paged_prompt_key},
        {kc::paged_find, {code(key_code::escape)}, "leave the search as it was", paged_prompt_key},
        {kc::paged_find, editing, "delete a character / the text", paged_prompt_key},
        {kc::paged_find, {}, "type the text to find", paged_prompt_key, "text"},

        {kc::search, {code(key_code::enter)}, "keep the search, close the prompt", search_key},
        {kc::search, {code(key_code::escape)}, "clear the search, close the prompt", search_key},
        {kc::search, editing, "delete a character / the text", search_key},
        {kc::search, {}, "type the text (the list follows as you type)", search_key, "text"},

        {kc::form,
         {code(key_code::tab), code(key_code::down), code(key_code::backtab), code(key_code::up)},
         "move between fields (a new sbatch arg appears when one is filled)",
         form_key},
        {kc::form,
         {code(key_code::enter)},
         "check with sbatch --test-only; Enter again submits",
         form_key},
        {kc::form, {code(key_code::escape)}, "cancel", form_key},
        {kc::form, editing, "delete a character / the field", form_key},
        {kc::form, {}, "type into the field", form_key, "text"},

        {kc::confirm, {ch('y'), ch('Y')}, "yes: do it", confirm_key},
        {kc::confirm,
         {ch('n'), ch('N'), code(key_code::escape)},
         "no: nothing is done",
         confirm_key},
        {kc::confirm,
         {code(key_code::left), code(key_code::right), code(key_code::tab),
          code(key_code::backtab)},
         "choose yes / no",
         confirm_key},
        {kc::confirm, {code(key_code::enter)}, "take the choice", confirm_key},

        {kc::selector, up_down, "move selection", selector_key},
        {kc::selector, pages, "page up / down", selector_key},
        {kc::selector, ends, "first / last task", selector_key},
        {kc::selector, {code(key_code::enter)}, "follow the selected task", selector_key},
        {kc::selector, {code(key_code::escape), ch('q')}, "close", selector_key},

        {kc::stats, {}, "close", close_overlay, "any key"},
    };
    for (kc c : {kc::nodes, kc::tasks, kc::log})
      t.push_back({c,
                   {ch('f')},
                   "follow the current RUNNING task (a selector if several run)",
                   follow_running_key});
    // The help and the problems list scroll alike.
    for (kc c : {kc::help, kc::problems}) {
      t.push_back(
          {c, {ch('j'), code(key_code::down)}, "scroll down", [](model& m, const tui::key&) {
             overlay_scroll(m, 1);
           }});
      t.push_back({c, {ch('k'), code(key_code::up)}, "scroll up", [](model& m, const tui::key&) {
                     overlay_scroll(m, -1);
                   }});
      t.push_back(
          {c, {code(key_code::page_down), ch(' ')}, "page down", [](model& m, const tui::key&) {
             overlay_scroll(m, overlay_page(m));
           }});
      t.push_back({c, {code(key_code::page_up)}, "page up", [](model& m, const tui::key&) {
                     overlay_scroll(m, -overlay_page(m));
                   }});
      t.push_back({c, {}, "close", close_overlay, "any other key"});
    }
    return t;
  }();
  return table;
}

// Every key, for the help overlay: a heading per context (the description
// empty), then its entries, all from keymap().
inline const std::vector<std::pair<std::string, std::string>>& key_help() {
  static const std::vector<std::pair<std::string, std::string>> lines = [] {
    std::vector<std::pair<std::string, std::string>> out;
    for (key_context c : key_contexts_in_order) {
      bool heading = false;
      for (const auto& b : keymap()) {
        if (b.context != c) continue;
        if (!heading) out.emplace_back(to_string(c), "");
        heading = true;
        out.emplace_back(key_label(b), b.help);
      }
    }
    return out;
  }();
  return lines;
}

// The entry of context c that takes k: the first whose keys hold it, else the
// context's "every other key" entry; null when the context has neither.
inline const key_binding* find_binding(key_context c, const tui::key& k) {
  const key_binding* others = nullptr;
  for (const auto& b : keymap()) {
    if (b.context != c) continue;
    if (b.keys.empty() && !others) others = &b;
    for (const auto& want : b.keys)
      if (key_matches(want, k)) return &b;
  }
  return others;
}

inline key_context pane_context(pane p) {
  switch (p) {
    case pane::leases:
      return key_context::leases;
    case pane::nodes:
      return key_context::nodes;
    case pane::log:
      return key_context::log;
    case pane::tasks:
      break;
  }
  return key_context::tasks;
}

// The contexts a key is looked up in now, first to last.
inline std::vector<key_context> active_key_contexts(const model& m) {
  using kc = key_context;
  switch (m.ov) {
    case overlay::help:
      return {kc::anywhere, kc::help};
    case overlay::details:
      return {kc::anywhere, kc::details};
    case overlay::confirm:
      return {kc::anywhere, kc::confirm};
    case overlay::selector:
      return {kc::anywhere, kc::selector};
    case overlay::form:
      return {kc::anywhere, kc::form};
    case overlay::stats:
      return {kc::anywhere, kc::stats};
    case overlay::problems:
      return {kc::anywhere, kc::problems};
    case overlay::search:
      return {kc::anywhere, kc::search};
    case overlay::paged:
      return {kc::anywhere, m.paged.typing ? kc::paged_find : kc::paged};
    case overlay::none:
      break;
  }
  if (m.screen == screen_kind::lease_list) return {kc::anywhere, kc::global, kc::leases};
  return {kc::anywhere, kc::global, kc::dashboard, pane_context(m.focus)};
}

// The entry a key press runs now, or null (the key does nothing here).
inline const key_binding* binding_for(const model& m, const tui::key& k) {
  for (key_context c : active_key_contexts(m))
    if (const auto* b = find_binding(c, k)) return b;
  return nullptr;
}

// Runs the key's entry; false when no entry takes it. Ctrl-C (anywhere) quits
// from every overlay, search and form, exactly like q: raw mode turns it into a
// key.
inline bool handle_key(model& m, const tui::key& k) {
  const key_binding* b = binding_for(m, k);
  if (!b) return false;
  b->action(m, k);
  return true;
}

// ---- messages
// ------------------------------------------------------------------------

struct message_visitor {
  model& m;

  void operator()(const msg_tick& t) {
    m.now = t.now;
    if (!m.message.empty() && m.now - m.message_at > message_lifetime_s) m.message.clear();
  }
  void operator()(const msg_snapshot& s) {
    if (!s.snap || s.snap->lease_id != m.lease_id) return;
    m.snap = s.snap;
    m.snap_partial = s.partial;
    if (!m.snap_partial) forget_rows_read(m);  // the full scan read every file
    // The archived list is read again when a clean changed what is archived.
    if (m.show_archived && m.archived && m.archived->archived != m.snap->archived)
      post(m, req_archived{});
    recompute(m, keep_selection::row);
    for (auto it = m.marked.begin(); it != m.marked.end();)
      it = m.snap->find_task(*it) ? std::next(it) : m.marked.erase(it);
    refresh_follow_paths(m);
    auto_follow_latest(m);
  }
  void operator()(const msg_leases& l) {
    std::vector<leaseq::lease_row> before = std::move(m.leases.rows);
    m.leases = l.listing;
    // A listing from the cache alone does not undo what Slurm itself said (an
    // error, say) about a lease the cache has nothing on.
    for (auto& row : m.leases.rows) {
      if (!l.asking.count(row.id)) continue;
      for (const auto& old : before)
        if (old.id == row.id && old.reason != row.reason && m.slurm_answered) {
          row.state = old.state;
          row.reason = old.reason;
          row.time_left = old.time_left;
          row.stale = old.stale;
          row.seen = old.seen;
          row.error = old.error;
        }
    }
    m.leases_loaded = true;
    if (!l.cached_only) m.slurm_answered = true;
    check_open_lease_known(m);
  }
  void operator()(const msg_log& l) {
    if (l.follow_id != m.follow.id) return;
    m.log_lines = l.lines;
    m.log_mtime = l.mtime;
  }
  void operator()(const msg_page& p) {
    if (p.gen != m.paged.gen) return;
    m.paged.loading = false;
    m.paged.error = p.error;
    m.paged.lines = p.lines;
    m.paged.shown_first = p.first;
    m.paged.first = p.first;
    if (p.total) m.paged.total = p.total;
    if (p.searched && m.paged.searching) found(*m.paged.searching, p);
  }
  void found(const page_find f, const msg_page& p) {
    auto& pv = m.paged;
    pv.searching.reset();
    if (p.match) {
      pv.match = p.match;
      paged_note(m, fmt::format("\"{}\" at line {}", f.text, *p.match + 1), false);
    } else if (!p.searched_all) {
      pv.resume = page_find{f.text, p.find_next, f.forward};
      paged_note(m,
                 fmt::format("no match for \"{}\" in lines {}-{} yet ({}: search on)", f.text,
                             std::min(f.from, p.find_next) + 1, std::max(f.from, p.find_next) + 1,
                             f.forward ? "n" : "N"),
                 false);
    } else {
      paged_note(
          m,
          f.forward ? fmt::format("no match for \"{}\" from line {} to the end", f.text, f.from + 1)
                    : fmt::format("no match for \"{}\" from line 1 to line {}", f.text, f.from + 1),
          true);
    }
  }
  void operator()(const msg_archived& a) {
    if (!a.snap || a.snap->lease_id != m.lease_id) return;
    m.archived = a.snap;
    if (m.show_archived) recompute(m, keep_selection::row);
  }
  void operator()(const msg_rows& r) { take_rows(m, r.rows, r.asked); }
  void operator()(const msg_rows_read& r) {
    if (r.lease_id != m.lease_id || !m.snap_partial) return;
    for (const auto& t : r.rows) m.read_in_full[t.seq] = t;
  }
  void operator()(const msg_stderr& s) {
    if (s.ids == m.stderr_ids) return;
    m.stderr_ids = s.ids;
    ++m.stderr_gen;
    recompute(m, keep_selection::row);
  }
  void operator()(const msg_action& a) { notify(m, a.text, !a.ok); }
  void operator()(const msg_test_only& t) {
    if (m.ov != overlay::form || m.create.phase != form_phase::testing) return;
    m.create.phase = t.ok ? form_phase::tested_ok : form_phase::tested_fail;
    m.create.status = leaseq::sanitize(t.text);
  }
  void operator()(const msg_created& c) {
    if (c.ok) {
      if (m.ov == overlay::form) m.ov = overlay::none;
      m.create.phase = form_phase::editing;
      notify(m, "created Slurm lease " + c.text);
      post(m, req_refresh{});
    } else {
      m.create.phase = form_phase::tested_fail;
      m.create.status = leaseq::sanitize(c.text);
      if (m.ov != overlay::form) notify(m, "lease creation failed: " + c.text, true);
    }
  }
};

inline void update(model& m, const message& msg) {
  std::visit(message_visitor{m}, msg);
  ask_rows_in_full(m);
}

// Terminal events. Returns false when the dashboard should end.
inline bool update(model& m, const tui::event& ev) {
  if (const auto* k = std::get_if<tui::key_event>(&ev)) {
    handle_key(m, k->k);
  } else if (const auto* r = std::get_if<tui::resize_event>(&ev)) {
    m.width = r->width;
    m.height = r->height;
  } else if (const auto* p = std::get_if<tui::paste_event>(&ev)) {
    if (m.ov == overlay::form) {
      m.create.form.paste(p->text);
    } else if (m.ov == overlay::search) {
      for (char c : leaseq::sanitize_inline(p->text)) {
        m.search_text += c;
      }
      apply_search(m);
    }
  } else if (std::get_if<tui::signal_event>(&ev)) {
    m.quit = true;
  }
  ask_rows_in_full(m);
  return !m.quit;
}

}  // namespace leaseq_dash
