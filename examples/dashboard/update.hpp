#pragma once

// update(model, message) and update(model, event): the dashboard's behaviour, pure. Effects
// are appended to m.outbox (for the worker) and m.clipboard (for the loop).

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

// Every key, for the help overlay (and the test that checks each is listed).
inline const std::vector<std::pair<std::string, std::string>>& key_help() {
  static const std::vector<std::pair<std::string, std::string>> keys = {
      {"global", ""},
      {"q / Ctrl-C", "quit"},
      {"?", "this help"},
      {"Tab / Shift+Tab", "next / previous pane"},
      {"/", "search (tasks: command, label:NAME; leases: id/name; nodes: name; log: text)"},
      {"!", "list the problems: unreadable files and dirs (which, why), config.json keys"},
      {"r", "refresh now"},
      {"p", "pause / resume auto-refresh"},
      {"c", "copy selected value (lease id, node, task id, log path) via OSC 52"},
      {"f", "follow the current RUNNING task (a selector if several run; not in leases)"},
      {"lease list / leases pane", ""},
      {"j/k, Up/Down", "move selection"},
      {"Enter", "open the selected lease's dashboard"},
      {"l", "make the selected lease the default (lease use)"},
      {"n", "create a Slurm lease (form)"},
      {"x", "release the selected Slurm lease (asks first)"},
      {"f", "filter leases: all/local/slurm/running/pending (in this pane)"},
      {"Esc", "back to the lease list screen (leases pane)"},
      {"nodes pane", ""},
      {"Enter", "filter the task list to this node (again: clear)"},
      {"s", "node stats (hb age, running task, pending count)"},
      {"P", "pause this node's lane (control/<node>/pause.json)"},
      {"U", "resume this node's lane (control/<node>/resume.json)"},
      {"task list", ""},
      {"Enter", "task details"},
      {"F / E / A", "follow stdout / stderr / both merged"},
      {"L", "open logs (paged, any size)"},
      {"X", "cancel task (writes a cancel control file; asks first)"},
      {"R", "retry task (new task, same command, new key)"},
      {"1/2/3/4", "filter pending / running / failed / finished"},
      {"5", "filter LOST? and LOST"},
      {"e", "filter tasks with stderr output or a bad exit"},
      {"0", "clear all filters"},
      {"S", "sort: state priority, then start desc <-> seq within lane"},
      {"a", "list the archived tasks (leaseq clean) <-> the live ones"},
      {"[ / ]", "previous / next page of tasks (ui.max_tasks_display rows each)"},
      {"v / Space", "mark task for a merged follow (F/E/A follow all marked)"},
      {"log viewer", ""},
      {"Space", "toggle follow (tail -f)"},
      {"PgUp/PgDn, j/k", "scroll"},
      {"g / G", "top / bottom"},
      {"o", "switch stdout <-> stderr"},
      {"m", "merge / unmerge stdout+stderr"},
      {"/ then n / N", "find text in the log (n: next match up, N: down; matches marked)"},
      {"Left / Right", "scroll long lines sideways (a cut line ends with ›)"},
      {"w", "wrap long lines / cut them"},
      {"Esc", "collapse the log pane"},
      {"task details", ""},
      {"F / E / A / L", "follow stdout / stderr / both, open logs"},
      {"c / y", "copy command / copy task id"},
      {"e", "show / hide the environment"},
      {"j/k", "scroll when it does not fit"},
      {"paged logs (L)", ""},
      {"PgUp/PgDn, j/k, g/G", "scroll, top, bottom"},
      {"/ then Enter", "find text in the whole file (from the top line down; matches marked)"},
      {"n / N", "next / previous match"},
      {"Left / Right", "scroll long lines sideways (a cut line ends with ›)"},
      {"w", "wrap long lines / cut them"},
      {"o", "switch stdout <-> stderr"},
      {"Esc / q", "close"},
      {"Slurm lease form (n)", ""},
      {"Tab / Up / Down", "move between fields (a new sbatch arg appears when one is filled)"},
      {"Enter", "check with sbatch --test-only; Enter again submits"},
      {"Esc", "cancel"},
  };
  return keys;
}

inline void post(model& m, request r) {
  m.outbox.push_back(std::move(r));
}

inline void notify(model& m, std::string text, bool error = false) {
  m.message = leaseq::sanitize_inline(text);
  m.message_error = error;
  m.message_at = m.now;
}

// Backspace (a whole UTF-8 character), Ctrl-U and printable keys edit a one-line input;
// false for any other key.
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
  m.visible.clear();
  m.visible_total = 0;
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

// `tui --lease 999` for a lease leaseq does not know: say so and show the list, instead of an
// empty dashboard waiting on Slurm forever. (A local lease may be opened before its runner
// ever started: it stays.)
inline void check_open_lease_known(model& m) {
  if (m.screen != screen_kind::dashboard || m.lease_id.empty() || !m.leases.index_error.empty() ||
      leaseq::is_local_lease(m.lease_id) || find_lease(m, m.lease_id))
    return;
  notify(m, "unknown lease " + m.lease_id + ": not in the lease index (leaseq lease ls); pick one",
         true);
  m.screen = screen_kind::lease_list;
  m.lease_id.clear();
  m.snap.reset();
  m.visible.clear();
  m.visible_total = 0;
  post(m, req_open_lease{""});
  post(m, req_follow{});
}

// ---- following ---------------------------------------------------------------------------

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

// The spec's rule: exactly one RUNNING task -> follow it; several -> a selector; none -> say so.
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

// F/E/A in the task list: the marked tasks, else the selected one, else the running rule.
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

// Auto-follow the newest RUNNING task (ui.follow_auto_latest) when nothing runs in the pane.
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

// A followed task that had no node yet (PENDING) is re-followed once it has one.
inline void refresh_follow_paths(model& m) {
  bool stale = false;
  for (const auto& it : m.follow.tasks)
    if (const auto* t = find_task(m, it.task);
        t && it.out_path.empty() && leaseq::is_valid_node(t->node))
      stale = true;
  if (stale) refollow(m, m.follow.mode);
}

// ---- paged logs --------------------------------------------------------------------------

// The paged view fills the body: a border, then the lines, a note line and a key line.
inline tui::rect paged_text_area(const model& m) {
  tui::rect body = compute_layout(m).body;
  return {body.x + 1, body.y + 1, std::max(1, body.w - 2), std::max(1, body.h - 4)};
}

inline int paged_rows(const model& m) {
  return paged_text_area(m).h;
}

// How many of the page's lines are on screen (fewer than its rows when long lines wrap):
// what PgDn moves by, so wrapping never skips a line.
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

// n / N (and Enter after /): the next match below the current one (or the top line), or the
// previous one above it; a search the line budget stopped goes on from where it stopped.
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

// The / prompt of the paged view: typing, Enter finds, Esc leaves the old search as it was.
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

inline void paged_key(model& m, const tui::key& k) {
  auto& p = m.paged;
  if (p.typing) {
    paged_prompt_key(m, k);
    return;
  }
  std::uint64_t page = static_cast<std::uint64_t>(std::max(1, paged_lines_shown(m)));
  std::uint64_t rows = static_cast<std::uint64_t>(paged_rows(m));
  std::uint64_t last = p.total && *p.total > rows ? *p.total - rows : 0;
  std::uint64_t before = p.first;
  if (k.is(tui::key_code::escape) || k.is('q') || k.is('L')) {
    m.ov = overlay::none;
    return;
  }
  if (k.is('/')) {
    p.typing = true;
    p.typed.clear();
    return;
  }
  if (k.is('n') || k.is('N')) {
    paged_search(m, k.is('n'));
    return;
  }
  if (k.is('w')) {
    p.wrap = !p.wrap;
    p.hscroll = 0;
    return;
  }
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
  else if (k.is('o')) {
    const auto* t = find_task(m, p.task);
    if (t)
      open_paged(
          m, *t,
          p.stream == leaseq::log_stream::out ? leaseq::log_stream::err : leaseq::log_stream::out);
    return;
  }
  if (p.total && p.first > last) p.first = std::max(last, std::min(before, p.first));
  if (p.first != before) {
    // Moved by hand: n and N search from what is on screen now, as in less.
    p.match.reset();
    p.resume.reset();
    request_page(m);
  }
}

// ---- the create form -----------------------------------------------------------------

inline std::string check_count(const std::string& v, long long min) {
  if (v.empty() || v.size() > 6 || v.find_first_not_of("0123456789") != std::string::npos)
    return "a whole number";
  if (std::stoll(v) < min) return fmt::format("at least {}", min);
  return {};
}

inline constexpr int form_extra_first = 10;  // index of the first "sbatch arg" field

// The slots field: empty (the runner's default, 1), auto, or a count (leaseq::parse_slots).
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

// The request the form describes (fields not validated yet are taken as they are).
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

// ---- key handling -------------------------------------------------------------------

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

// Jumps the log view to a line holding the search text: the newest one as it is typed, then
// (n) the next one up or (N) back down; says so when there is none.
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

inline void lease_keys(model& m, const tui::key& k, bool on_screen) {
  auto rows = visible_leases(m);
  const leaseq::lease_row* sel =
      rows.empty() ? nullptr
                   : rows[static_cast<std::size_t>(
                         std::clamp(m.lease_table.selected, 0, static_cast<int>(rows.size()) - 1))];
  frame_layout f = compute_layout(m);
  if (m.lease_table.handle_key(k, static_cast<int>(rows.size()), page_rows(f.leases))) return;
  if (k.is(tui::key_code::enter)) {
    if (sel) open_lease(m, sel->id);
  } else if (k.is('l')) {
    if (sel) post(m, req_set_default{sel->id});
  } else if (k.is('x')) {
    if (!sel) return;
    if (kind_of(*sel) != lease_kind::slurm) {
      notify(m, "only Slurm leases can be released (" + sel->id + " is " + sel->kind + ")", true);
      return;
    }
    if (lease_ended(*sel)) {
      notify(m, "lease " + sel->id + " already ended (" + sel->state + "): nothing to release",
             true);
      return;
    }
    ask(m, "Release lease",
        "Release lease " + sel->id + " (scancel " + sel->id + ")? Its running tasks are stopped.",
        req_release{sel->id});
  } else if (k.is('f')) {
    m.lease_filter = next(m.lease_filter);
    m.lease_table.selected = 0;
    notify(m, std::string("lease filter: ") + to_string(m.lease_filter));
  } else if (k.is('n')) {
    open_create_form(m);
  } else if (k.is('c')) {
    if (sel) copy_text(m, sel->id, "lease id");
  } else if (k.is(tui::key_code::escape) && !on_screen) {
    m.screen = screen_kind::lease_list;
  }
}

inline void node_keys(model& m, const tui::key& k) {
  auto nodes = visible_nodes(m);
  frame_layout f = compute_layout(m);
  if (m.node_table.handle_key(k, static_cast<int>(nodes.size()), page_rows(f.nodes))) return;
  const leaseq::node_view* n = selected_node(m);
  if (k.is(tui::key_code::enter)) {
    if (!n) return;
    m.filter.node = m.filter.node == n->name ? std::string() : n->name;
    m.task_table.selected = 0;
    m.selected_task.clear();
    recompute(m);
    notify(m, m.filter.node.empty() ? "node filter cleared" : "tasks of node " + n->name);
  } else if (k.is('s')) {
    if (!n) return;
    m.stats_node = n->name;
    m.ov = overlay::stats;
  } else if (k.is('P') || k.is('U')) {
    if (!n) return;
    post(m, req_lane{n->name, k.is('P')});
  } else if (k.is('c')) {
    if (n) copy_text(m, n->name, "node");
  } else if (k.is('f')) {
    follow_current_running(m, log_mode::out);
  }
}

inline void task_keys(model& m, const tui::key& k) {
  frame_layout f = compute_layout(m);
  int rows = static_cast<int>(m.visible.size());
  if (m.task_table.handle_key(k, rows, page_rows(f.tasks))) {
    if (const auto* t = selected_task(m)) m.selected_task = t->id;
    return;
  }
  const leaseq::task_view* t = selected_task(m);
  using leaseq::task_state;
  if (k.is(tui::key_code::enter)) {
    if (!t) return;
    m.details_task = t->id;
    m.details_env = false;
    m.help_scroll = 0;
    m.ov = overlay::details;
  } else if (k.is('F')) {
    follow_selected(m, log_mode::out);
  } else if (k.is('E')) {
    follow_selected(m, log_mode::err);
  } else if (k.is('A')) {
    follow_selected(m, log_mode::merged);
  } else if (k.is('L')) {
    if (t) open_paged(m, *t, leaseq::log_stream::out);
  } else if (k.is('X')) {
    if (!t) return;
    if (leaseq::is_done(t->state)) {
      notify(m, t->id + " already ended (" + std::string(leaseq::to_string(t->state)) + ")", true);
      return;
    }
    ask(m, "Cancel task",
        "Cancel " + t->id + " (" + std::string(leaseq::to_string(t->state)) + ")? " +
            tui::truncate_text(leaseq::sanitize_inline(t->command()), 40),
        req_cancel{t->id});
  } else if (k.is('R')) {
    if (t) post(m, req_retry{t->id});
  } else if (k.is('1')) {
    toggle_state_filter(m, {task_state::pending});
  } else if (k.is('2')) {
    toggle_state_filter(m, {task_state::running});
  } else if (k.is('3')) {
    toggle_state_filter(m, {task_state::failed});
  } else if (k.is('4')) {
    toggle_state_filter(m, {task_state::finished});
  } else if (k.is('5')) {
    toggle_state_filter(m, {task_state::lost_maybe, task_state::lost});
  } else if (k.is('0')) {
    m.filter = {};
    m.stderr_ids.clear();
    post(m, req_stderr_probe{false});
    recompute(m);
    notify(m, "filters cleared");
  } else if (k.is('e')) {
    m.filter.has_stderr_output = !m.filter.has_stderr_output;
    post(m, req_stderr_probe{m.filter.has_stderr_output});
    m.task_table.selected = 0;
    recompute(m);
  } else if (k.is('a')) {
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
  } else if (k.is('S')) {
    m.sort = m.sort == leaseq::task_sort::state_priority ? leaseq::task_sort::seq_in_lane
                                                         : leaseq::task_sort::state_priority;
    recompute(m);
    notify(m, m.sort == leaseq::task_sort::state_priority ? "sort: state, then start (newest)"
                                                          : "sort: seq within lane");
  } else if (k.is('v') || k.is(' ')) {
    if (!t) return;
    if (!m.marked.erase(t->id)) m.marked.insert(t->id);
    m.task_table.move(1, rows);
    if (const auto* nt = selected_task(m)) m.selected_task = nt->id;
  } else if (k.is('c')) {
    if (t) copy_text(m, t->id, "task id");
  } else if (k.is('f')) {
    follow_current_running(m, log_mode::out);
  } else if (k.is(']') || k.is('[')) {
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
}

inline void log_keys(model& m, const tui::key& k) {
  frame_layout f = compute_layout(m);
  int page = page_rows(f.log, 2);
  int n = static_cast<int>(m.log_lines.size());
  if (k.is(' ')) {
    m.log_view.follow = !m.log_view.follow;
    if (!m.log_view.follow) m.log_view.offset = std::max(0, n - page);
    notify(m, m.log_view.follow ? "follow on" : "follow paused");
  } else if (k.is('o')) {
    refollow(m, m.follow.mode == log_mode::out ? log_mode::err : log_mode::out);
  } else if (k.is('m')) {
    refollow(m, m.follow.mode == log_mode::merged ? log_mode::out : log_mode::merged);
  } else if (k.is(tui::key_code::escape)) {
    m.log_open = false;
    m.focus = pane::tasks;
  } else if (k.is('c')) {
    if (!m.follow.empty())
      copy_text(
          m,
          m.follow.mode == log_mode::err ? m.follow.tasks[0].err_path : m.follow.tasks[0].out_path,
          "log path");
  } else if (k.is('f')) {
    follow_current_running(m, log_mode::out);
  } else if (k.is('n') || k.is('N')) {
    log_find(m, k.is('n') ? -1 : 1);
  } else {
    m.log_view.handle_key(k, n, page);
  }
}

inline void details_keys(model& m, const tui::key& k) {
  const leaseq::task_view* t = find_task(m, m.details_task);
  if (k.is(tui::key_code::escape) || k.is('q') || k.is(tui::key_code::enter)) {
    m.ov = overlay::none;
    return;
  }
  if (!t) return;
  // A long command or env does not fit 24 rows: the modal scrolls (draw_text_modal clamps).
  if (k.is(tui::key_code::down) || k.is('j')) {
    ++m.help_scroll;
  } else if (k.is(tui::key_code::up) || k.is('k')) {
    m.help_scroll = std::max(0, m.help_scroll - 1);
  } else if (k.is('F') || k.is('E') || k.is('A')) {
    m.ov = overlay::none;
    start_follow(m, {t}, k.is('F') ? log_mode::out : k.is('E') ? log_mode::err : log_mode::merged);
    notify(m, "following " + t->id);
  } else if (k.is('L')) {
    open_paged(m, *t, leaseq::log_stream::out);
  } else if (k.is('c')) {
    copy_text(m, t->command(), "command");
  } else if (k.is('y')) {
    copy_text(m, t->id, "task id");
  } else if (k.is('e')) {
    m.details_env = !m.details_env;
  }
}

inline void handle_key(model& m, const tui::key& k) {
  // Raw mode turns Ctrl-C into a key, and it is the first key people press to leave: it quits
  // from anywhere (overlays, search, the form), exactly like q.
  if (k == tui::key::ctrl_of('c')) {
    m.quit = true;
    return;
  }
  switch (m.ov) {
    case overlay::help:
      if (k.is(tui::key_code::down) || k.is('j'))
        ++m.help_scroll;
      else if (k.is(tui::key_code::up) || k.is('k'))
        m.help_scroll = std::max(0, m.help_scroll - 1);
      else if (k.is(tui::key_code::page_down) || k.is(' '))
        m.help_scroll += std::max(1, m.height - 6);
      else if (k.is(tui::key_code::page_up))
        m.help_scroll = std::max(0, m.help_scroll - std::max(1, m.height - 6));
      else
        m.ov = overlay::none;
      m.help_scroll = std::clamp(m.help_scroll, 0, static_cast<int>(key_help().size()) - 1);
      return;
    case overlay::details:
      details_keys(m, k);
      return;
    case overlay::confirm: {
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
      return;
    }
    case overlay::selector: {
      auto r = m.selector.handle_key(k, static_cast<int>(m.selector_ids.size()));
      if (r == tui::selector_state::result::chosen) {
        m.ov = overlay::none;
        const auto* t = find_task(
            m, m.selector_ids[static_cast<std::size_t>(std::clamp(
                   m.selector.selected, 0, static_cast<int>(m.selector_ids.size()) - 1))]);
        if (t) {
          start_follow(m, {t}, m.selector_mode);
          notify(m, "following " + t->id);
        }
      } else if (r == tui::selector_state::result::cancelled) {
        m.ov = overlay::none;
      }
      return;
    }
    case overlay::form:
      form_key(m, k);
      return;
    case overlay::stats:
      m.ov = overlay::none;
      return;
    case overlay::problems:
      if (k.is(tui::key_code::down) || k.is('j'))
        ++m.help_scroll;
      else if (k.is(tui::key_code::up) || k.is('k'))
        m.help_scroll = std::max(0, m.help_scroll - 1);
      else if (k.is(tui::key_code::page_down) || k.is(' '))
        m.help_scroll += std::max(1, m.height - 6);
      else if (k.is(tui::key_code::page_up))
        m.help_scroll = std::max(0, m.help_scroll - std::max(1, m.height - 6));
      else
        m.ov = overlay::none;
      m.help_scroll =
          std::clamp(m.help_scroll, 0, std::max(0, static_cast<int>(problem_lines(m).size()) - 1));
      return;
    case overlay::search:
      search_key(m, k);
      return;
    case overlay::paged:
      paged_key(m, k);
      return;
    case overlay::none:
      break;
  }
  // Global keys.
  if (k.is('q')) {
    m.quit = true;
    return;
  }
  if (k.is('?')) {
    m.ov = overlay::help;
    m.help_scroll = 0;
    return;
  }
  if (k.is('!')) {
    m.ov = overlay::problems;
    m.help_scroll = 0;
    return;
  }
  if (k.is('r')) {
    post(m, req_refresh{});
    notify(m, "refreshing");
    return;
  }
  if (k.is('p')) {
    m.refresh_paused = !m.refresh_paused;
    post(m, req_set_paused{m.refresh_paused});
    notify(m, m.refresh_paused ? "auto-refresh paused (r still refreshes)" : "auto-refresh on");
    return;
  }
  bool on_list = m.screen == screen_kind::lease_list;
  if (k.is('/')) {
    open_search(m, on_list ? pane::leases : m.focus, on_list);
    return;
  }
  if (on_list) {
    lease_keys(m, k, true);
    return;
  }
  if (k.is(tui::key_code::tab)) {
    cycle_focus(m, 1);
    return;
  }
  if (k.code == tui::key_code::backtab) {
    cycle_focus(m, -1);
    return;
  }
  switch (m.focus) {
    case pane::leases:
      lease_keys(m, k, false);
      break;
    case pane::nodes:
      node_keys(m, k);
      break;
    case pane::tasks:
      task_keys(m, k);
      break;
    case pane::log:
      log_keys(m, k);
      break;
  }
}

// ---- messages ------------------------------------------------------------------------

struct message_visitor {
  model& m;

  void operator()(const msg_tick& t) {
    m.now = t.now;
    if (!m.message.empty() && m.now - m.message_at > message_lifetime_s) m.message.clear();
  }
  void operator()(const msg_snapshot& s) {
    if (!s.snap || s.snap->lease_id != m.lease_id) return;
    m.snap = s.snap;
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
    // A listing from the cache alone does not undo what Slurm itself said (an error, say)
    // about a lease the cache has nothing on.
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
  void operator()(const msg_stderr& s) {
    m.stderr_ids = s.ids;
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
  return !m.quit;
}

}  // namespace leaseq_dash
