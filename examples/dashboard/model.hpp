#pragma once

// The dashboard's model and its closed set of messages (the Elm architecture):
//   - `request`s are effects update() asks for (scan now, follow a log, write a cancel file,
//     run sbatch); the loop hands them to the worker (worker.hpp), which does all the I/O;
//   - `message`s are what the worker (and the clock) hand back: snapshots, lease listings, log
//     lines, pages of a log file, the outcome of an action.
// Nothing here touches the filesystem, the terminal or the clock.

#include <leaseq/config.hpp>
#include <leaseq/slurm/keeper.hpp>
#include <leaseq/slurm/leases.hpp>
#include <leaseq/snapshot.hpp>
#include <leaseq/tail.hpp>
#include <leaseq/task_filter.hpp>
#include <leaseq/tui/widgets.hpp>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace leaseq_dash {

namespace tui = leaseq::tui;

enum class screen_kind { lease_list, dashboard };
enum class pane { leases, nodes, tasks, log };
enum class log_mode { out, err, merged };
enum class overlay { none, help, details, confirm, selector, form, stats, search, paged, problems };

// ---- lease words --------------------------------------------------------------------------
// lease_row keeps the text of the index and of Slurm (shown and written as it is); the
// dashboard decides on these enums. Each has one table of names: to_string and parse read it.

template <class E>
using enum_names = std::pair<E, const char*>;

template <class E, std::size_t N>
const char* enum_name(const enum_names<E> (&names)[N], E e) {
  for (const auto& [v, name] : names)
    if (v == e) return name;
  return "?";
}

// The value named s, else the table's first (its fallback).
template <class E, std::size_t N>
E enum_parse(const enum_names<E> (&names)[N], std::string_view s) {
  for (const auto& [v, name] : names)
    if (s == name) return v;
  return names[0].first;
}

// A lease's kind: lease_row.kind is "local" or "slurm"; any other text is `unknown`.
enum class lease_kind { unknown, local, slurm };
inline constexpr enum_names<lease_kind> lease_kind_names[] = {
    {lease_kind::unknown, "unknown"}, {lease_kind::local, "local"}, {lease_kind::slurm, "slurm"}};

inline const char* to_string(lease_kind k) {
  return enum_name(lease_kind_names, k);
}
inline lease_kind parse_lease_kind(std::string_view s) {
  return enum_parse(lease_kind_names, s);
}
inline lease_kind kind_of(const leaseq::lease_row& r) {
  return parse_lease_kind(r.kind);
}

// The lease states the dashboard tells apart (lease_row.state: Slurm's word, or leaseq's
// UNKNOWN / STALE); every other state (COMPLETED, TIMEOUT, ...) is `other`, shown as its text.
enum class lease_state { other, running, pending, unknown, stale };
inline constexpr enum_names<lease_state> lease_state_names[] = {{lease_state::other, "OTHER"},
                                                                {lease_state::running, "RUNNING"},
                                                                {lease_state::pending, "PENDING"},
                                                                {lease_state::unknown, "UNKNOWN"},
                                                                {lease_state::stale, "STALE"}};

inline const char* to_string(lease_state s) {
  return enum_name(lease_state_names, s);
}
inline lease_state parse_lease_state(std::string_view s) {
  return enum_parse(lease_state_names, s);
}
inline lease_state state_of(const leaseq::lease_row& r) {
  return parse_lease_state(r.state);
}

// The lease list's filter; f goes through them in the table's order.
enum class lease_filter_mode { all, local, slurm, running, pending };
inline constexpr enum_names<lease_filter_mode> lease_filter_names[] = {
    {lease_filter_mode::all, "all"},
    {lease_filter_mode::local, "local"},
    {lease_filter_mode::slurm, "slurm"},
    {lease_filter_mode::running, "running"},
    {lease_filter_mode::pending, "pending"}};

inline const char* to_string(lease_filter_mode f) {
  return enum_name(lease_filter_names, f);
}

inline lease_filter_mode next(lease_filter_mode f) {
  constexpr std::size_t n = std::size(lease_filter_names);
  for (std::size_t i = 0; i < n; ++i)
    if (lease_filter_names[i].first == f) return lease_filter_names[(i + 1) % n].first;
  return lease_filter_mode::all;
}

// Whether the filter shows the row.
inline bool admits(lease_filter_mode f, const leaseq::lease_row& r) {
  switch (f) {
    case lease_filter_mode::local:
      return kind_of(r) == lease_kind::local;
    case lease_filter_mode::slurm:
      return kind_of(r) == lease_kind::slurm;
    case lease_filter_mode::running:
      return state_of(r) == lease_state::running;
    case lease_filter_mode::pending:
      return state_of(r) == lease_state::pending;
    case lease_filter_mode::all:
      break;
  }
  return true;
}

// What the log pane follows: one or more tasks (merged, each line prefixed with its task).
struct follow_target {
  struct item {
    std::string task;
    std::string node;
    std::string out_path, err_path;  // absolute; empty while the task has no node yet
  };
  std::vector<item> tasks;
  log_mode mode = log_mode::out;
  std::uint64_t id = 0;  // lines from the worker carry it, so stale lines are dropped
  bool empty() const { return tasks.empty(); }
};

// What the visible task list was derived from. recompute() filters and sorts again only when
// one of these changed: a tick, or a snapshot that shares the last one's task table (the
// store shares it when no task changed), costs nothing however many tasks the lease holds.
struct visible_source {
  std::shared_ptr<const std::vector<leaseq::task_view>> table;  // kept: visible points into it
  leaseq::task_filter filter;
  leaseq::task_sort sort = leaseq::task_sort::state_priority;
  std::size_t cap = 0, page = 0;
  std::uint64_t stderr_gen = 0;
  bool operator==(const visible_source& o) const {
    return table == o.table && filter == o.filter && sort == o.sort && cap == o.cap &&
           page == o.page && stderr_gen == o.stderr_gen;
  }
};

// view(): the task columns' natural widths over the listed rows, kept while the list is the
// same one (m.derivations, and where its rows are); the RUNNING rows' TIME is measured per frame.
struct task_column_widths {
  std::uint64_t derivations = ~std::uint64_t{0};
  const void* rows = nullptr;
  std::size_t n = 0;
  std::vector<int> natural;                       // one per column; TIME without RUNNING rows
  std::vector<const leaseq::task_view*> running;  // listed RUNNING rows
};

// The rows of the task list as derived from a visible_source (derive.hpp derive_rows).
struct derived_rows {
  visible_source from;  // its page: the one taken (the last one when the list shrank)
  std::vector<const leaseq::task_view*> tasks;  // into *from.table
  std::size_t total = 0;
  task_column_widths widths;  // of `tasks`
};

// ---- requests: effects update() asks the worker for ------------------------------------

struct req_open_lease {
  std::string lease_id;
};
struct req_refresh {};  // `r`: scan the lease and ask for the lease list now
struct req_set_paused {
  bool paused = false;
};
struct req_follow {
  follow_target target;  // empty: stop following
};
// A search in a paged log: the line at or after (forward) / at or before `from` that holds
// `text` (case ignored), as it is shown (last \r state, sanitized).
struct page_find {
  std::string text;
  std::uint64_t from = 0;
  bool forward = true;
};
struct req_page {
  std::string path;
  std::uint64_t first = 0;
  int count = 0;
  std::uint64_t gen = 0;
  std::optional<page_find> find{};  // the page then shows the match (unless it is on this one)
};
struct req_stderr_probe {
  bool on = false;
};
// The tasks `leaseq clean` archived, read in full (on the scan thread) for the archived list.
struct req_archived {};
// Filter and sort a big task table off the UI thread (recompute); a newer one cancels it.
struct req_derive {
  visible_source from;
  std::set<std::string> stderr_ids;
};
struct req_cancel {
  std::string task;
};
struct req_retry {
  std::string task;
};
struct req_lane {
  std::string node;
  bool pause = true;
};
struct req_set_default {
  std::string lease_id;
};
struct req_release {
  std::string lease_id;
};
struct req_create {
  leaseq::lease_request req;
  bool test_only = true;
};
// While a big lease loads: rows on screen its quick scan left unread (no command, no exit
// code), to be read in full from their files (leaseq::read_view_in_full).
struct req_read_rows {
  std::string lease_id;
  std::vector<leaseq::task_view> rows;
};

using request = std::variant<req_open_lease, req_refresh, req_set_paused, req_follow, req_page,
                             req_stderr_probe, req_cancel, req_retry, req_lane, req_set_default,
                             req_release, req_create, req_archived, req_derive, req_read_rows>;

// ---- messages: what comes back ---------------------------------------------------------

struct msg_tick {
  double now = 0;  // the clock, read by the loop
};
struct msg_snapshot {
  std::shared_ptr<const leaseq::snapshot> snap;
  // From the quick first scan of a big lease: pending tasks counted by name and results by
  // the results index, not read (no command, no exit code yet); the full scan follows.
  bool partial = false;
};
struct msg_rows {
  visible_source asked;
  derived_rows rows;
};
struct msg_leases {
  leaseq::lease_listing listing;
  // The listing read from disk and the shared Slurm cache only, while Slurm is (still) being
  // asked: local leases are complete, a Slurm row shows what the cache knew.
  bool cached_only = false;
  std::set<std::string> asking{};  // Slurm leases the cache knows nothing (usable) about
};
struct msg_log {
  std::uint64_t follow_id = 0;
  std::vector<std::string> lines;
  std::optional<double> mtime;  // newest modification time of the followed files
};
struct msg_page {
  std::uint64_t gen = 0;
  std::uint64_t first = 0;
  std::vector<std::string> lines;
  std::optional<std::uint64_t> total;  // line count, once indexed
  std::string error;
  // For a req_page with a find: the matching line, or where the search stopped without one
  // (`searched_all` false: the step's line budget ran out there; n searches on).
  bool searched = false;
  std::optional<std::uint64_t> match{};
  std::uint64_t find_next = 0;
  bool searched_all = true;
};
struct msg_stderr {
  std::set<std::string> ids;  // tasks whose .err log is not empty
};
struct msg_action {
  bool ok = true;
  std::string text;
};
struct msg_test_only {
  bool ok = false;
  std::string text;
};
struct msg_created {
  bool ok = false;
  std::string text;  // the job id, or the error
};

struct msg_archived {
  std::shared_ptr<const leaseq::snapshot> snap;  // the archived tasks (archived_snapshot)
};
struct msg_rows_read {
  std::string lease_id;
  std::vector<leaseq::task_view> rows;  // those of req_read_rows whose file was read
};

using message =
    std::variant<msg_tick, msg_snapshot, msg_leases, msg_log, msg_page, msg_stderr, msg_action,
                 msg_test_only, msg_created, msg_archived, msg_rows, msg_rows_read>;

// Where recompute() puts the selection. After a filter or sort change (the user's doing) it
// stays on the same task; when new data arrives it stays at the same row, because a task that
// ends moves down the state-sorted list and a selection that followed it would drag the view
// away from the running work with no key pressed.
enum class keep_selection { task, row };

// ---- the model --------------------------------------------------------------------------

// A count over a whole task table, taken again only when the table changes.
struct table_count {
  std::shared_ptr<const std::vector<leaseq::task_view>> table;
  std::size_t n = 0;
};

struct paged_view {
  std::string task, node;
  leaseq::log_stream stream = leaseq::log_stream::out;
  std::string path;
  std::uint64_t first = 0;  // top line wanted
  std::uint64_t shown_first = 0;
  std::vector<std::string> lines;
  std::optional<std::uint64_t> total;
  std::string error;
  std::uint64_t gen = 0;
  bool loading = true;
  int hscroll = 0;    // cells cut off the left of every line (Left/Right)
  bool wrap = false;  // long lines go on over the next rows instead (w)
  // `/` search: the prompt while typing, the text found (highlighted), the line of the
  // current match, and what the last search said ("no match for ...").
  bool typing = false;
  std::string typed;
  std::string find;
  std::optional<std::uint64_t> match;
  std::optional<page_find> searching;  // asked, not answered yet
  std::optional<page_find> resume;     // where a search the line budget stopped goes on
  std::string note;
  bool note_error = false;
};

enum class form_phase { editing, testing, tested_ok, tested_fail, submitting };

struct create_form {
  tui::form_state form;
  form_phase phase = form_phase::editing;
  std::string status;  // the test-only answer, or the error
  int scroll = 0;
};

struct model {
  // Context, fixed at start.
  leaseq::ui_config ui;
  std::string home;    // absolute LEASEQ_HOME, for previews
  std::string binary;  // leaseq, as keepers will run it (for the preview)
  std::string hostname;
  std::vector<std::string> config_warnings;  // every ignored key of config.json, for `!`

  double now = 0;
  int width = 80, height = 24;
  screen_kind screen = screen_kind::lease_list;
  bool quit = false;

  // Data from the worker.
  leaseq::lease_listing leases;
  bool leases_loaded = false;
  bool slurm_answered = false;  // a listing that asked Slurm arrived
  std::string lease_id;         // the lease the dashboard shows
  std::shared_ptr<const leaseq::snapshot> snap;
  // `a`: the task list shows the archived tasks (leaseq clean) instead of the live ones; they
  // are read when asked for, and again when the live snapshot counts a different number.
  bool show_archived = false;
  std::shared_ptr<const leaseq::snapshot> archived;
  std::set<std::string> stderr_ids;
  std::uint64_t stderr_gen = 0;  // grows when stderr_ids changes

  // Lease list (screen 1, and the leases pane).
  tui::table_state lease_table;
  lease_filter_mode lease_filter = lease_filter_mode::all;
  std::string lease_search;

  // Dashboard.
  pane focus = pane::tasks;
  tui::table_state node_table, task_table;
  std::string node_search;
  leaseq::task_filter filter;
  leaseq::task_sort sort = leaseq::task_sort::state_priority;
  std::set<std::string> marked;                   // multi-select for merged follow
  std::string selected_task;                      // kept across refreshes
  std::vector<const leaseq::task_view*> visible;  // filtered, sorted, capped; into *snap
  std::size_t visible_total = 0;
  std::size_t task_page = 0;  // which ui.max_tasks_display rows of the matches ([ and ])
  visible_source visible_from;
  std::uint64_t derivations = 0;  // times the task list was filtered and sorted
  // Tables bigger than this are filtered and sorted on the worker (req_derive): the list
  // asked for and not shown yet, and how to place the selection when it comes.
  std::size_t derive_inline_max = 20000;
  std::optional<visible_source> deriving;
  keep_selection derive_keep = keep_selection::task;
  bool snap_partial = false;  // msg_snapshot::partial
  // While snap_partial: rows on screen read in full since (by seq; shown_task), and the rows
  // asked for (req_read_rows; by seq and state), each asked once.
  std::unordered_map<std::int64_t, leaseq::task_view> read_in_full;
  std::unordered_set<std::int64_t> read_asked;
  task_column_widths task_widths;
  table_count problem_tasks;  // tasks of *snap that `!` lists

  // Log viewer.
  bool log_open = false;
  follow_target follow;
  std::uint64_t follow_seq = 0;
  std::vector<std::string> log_lines;
  tui::log_view_state log_view;
  std::optional<double> log_mtime;
  std::string log_search;

  bool refresh_paused = false;

  // Overlays.
  overlay ov = overlay::none;
  std::string details_task;
  bool details_env = false;
  int help_scroll = 0;  // also the problems list's
  tui::confirm_state confirm;
  std::string confirm_title, confirm_question;
  std::optional<request> confirm_action;
  tui::selector_state selector;
  std::vector<std::string> selector_ids;  // RUNNING tasks offered by `f`
  log_mode selector_mode = log_mode::out;
  std::string stats_node;
  std::string search_text;
  pane search_pane = pane::tasks;
  bool search_lease_list = false;
  paged_view paged;
  std::uint64_t page_seq = 0;
  create_form create;

  // A one-line notice above the status bar.
  std::string message;
  bool message_error = false;
  double message_at = 0;

  // Effects for the loop: requests for the worker, text for the clipboard.
  std::vector<request> outbox;
  std::string clipboard;
};

}  // namespace leaseq_dash
