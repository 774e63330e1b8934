#pragma once

// Filters and sorts of a snapshot's tasks (tui-spec "filtering and sorting"), capped at
// ui.max_tasks_display with the total count kept. Pure: the only input that needs I/O (is the
// stderr log empty?) comes in as a callable.

#include <algorithm>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "leaseq/model.hpp"
#include "leaseq/snapshot.hpp"

namespace leaseq {

struct task_filter {
  std::vector<task_state> states;   // empty: any state
  std::string node;                 // empty: any node; else task_view::node must equal it
  std::string command;              // substring of the command, ASCII case-insensitive
  std::vector<std::string> labels;  // the task carries every one of these labels
  bool has_stderr_output = false;   // non-empty .err, or exit code != 0
};

inline bool operator==(const task_filter& a, const task_filter& b) {
  return a.states == b.states && a.node == b.node && a.command == b.command &&
         a.labels == b.labels && a.has_stderr_output == b.has_stderr_output;
}
inline bool operator!=(const task_filter& a, const task_filter& b) {
  return !(a == b);
}

enum class task_sort {
  state_priority,  // RUNNING > LOST? > PENDING > FAILED > LOST > CANCELLED > FINISHED, then
                   // start time (started, else claimed, else created) descending
  seq_in_lane,     // by lane (node, or _any), then seq ascending
};

struct task_selection {
  std::vector<const task_view*> tasks;  // at most the cap; point into the snapshot
  std::size_t total = 0;                // how many matched before the cap
};

// Sort rank of a state; lower comes first.
inline int state_priority(task_state s) noexcept {
  switch (s) {
    case task_state::running:
      return 0;
    case task_state::lost_maybe:
    case task_state::unknown:
      return 1;
    case task_state::pending:
      return 2;
    case task_state::failed:
      return 3;
    case task_state::lost:
      return 4;
    case task_state::cancelled:
      return 5;
    case task_state::finished:
      return 6;
  }
  return 7;
}

// A search as typed in the dashboard's `/`: words `label:NAME` select by label, the rest (joined
// by single spaces) is the command substring.
inline void set_task_search(task_filter& f, const std::string& text) {
  f.labels.clear();
  std::string rest;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = std::min(text.find(' ', at), text.size());
    std::string word = text.substr(at, end - at);
    if (word.size() > 6 && word.compare(0, 6, "label:") == 0)
      f.labels.push_back(word.substr(6));
    else if (!word.empty())
      rest += (rest.empty() ? "" : " ") + word;
    at = end + 1;
  }
  f.command = rest;
}

// The search text that set_task_search reads back into the same filter.
inline std::string task_search_text(const task_filter& f) {
  std::string out;
  for (const std::string& l : f.labels) out += (out.empty() ? "" : " ") + ("label:" + l);
  if (!f.command.empty()) out += (out.empty() ? "" : " ") + f.command;
  return out;
}

namespace detail {
constexpr char ascii_lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Whether `needle` occurs in `hay`, ASCII case-insensitively. A search pass runs this over
// every command of a million-task table, so it looks for the needle's first byte (either
// case) before comparing the rest.
inline bool contains_ci(std::string_view hay, std::string_view needle) noexcept {
  if (needle.empty()) return true;
  if (needle.size() > hay.size()) return false;
  const char lo = ascii_lower(needle[0]);
  const char up = lo >= 'a' && lo <= 'z' ? static_cast<char>(lo - 'a' + 'A') : lo;
  const std::size_t last = hay.size() - needle.size();
  for (std::size_t i = 0; i <= last; ++i) {
    if (hay[i] != lo && hay[i] != up) continue;
    std::size_t j = 1;
    while (j < needle.size() && ascii_lower(hay[i + j]) == ascii_lower(needle[j])) ++j;
    if (j == needle.size()) return true;
  }
  return false;
}
}  // namespace detail

// stderr_nonempty answers "does this task's .err log hold anything?"; without it the
// has_stderr_output filter looks at the exit code only.
inline bool matches(const task_view& t, const task_filter& f,
                    const std::function<bool(const task_view&)>& stderr_nonempty = {}) {
  if (!f.states.empty() && std::find(f.states.begin(), f.states.end(), t.state) == f.states.end())
    return false;
  if (!f.node.empty() && t.node != f.node) return false;
  if (!f.command.empty()) {
    thread_local std::string scratch;  // a pass over many tasks joins argv without allocating
    if (!detail::contains_ci(t.command_view(scratch), f.command)) return false;
  }
  for (const std::string& l : f.labels)
    if (!t.spec ||
        std::find(t.spec->labels.begin(), t.spec->labels.end(), l) == t.spec->labels.end())
      return false;
  if (f.has_stderr_output) {
    auto code = t.exit_code();
    bool bad_exit = (code && *code != 0) || (t.result && t.result->signal);
    if (!bad_exit && !(stderr_nonempty && stderr_nonempty(t))) return false;
  }
  return true;
}

// The time a task sorts by within its state (task_sort::state_priority): started, else
// claimed, else created; 0 when none is known.
inline double task_sort_time(const task_view& t) {
  return t.started().value_or(t.created().value_or(0));
}

// Whether `a` comes before `b` in `order`. Ties end on seq, so the order is total.
inline bool sorts_before(const task_view& a, const task_view& b, task_sort order) {
  if (order == task_sort::seq_in_lane) {
    if (a.lane() != b.lane()) return a.lane() < b.lane();
    return a.seq < b.seq;
  }
  int pa = state_priority(a.state), pb = state_priority(b.state);
  if (pa != pb) return pa < pb;
  double sa = task_sort_time(a), sb = task_sort_time(b);
  if (sa != sb) return sa > sb;
  return a.seq > b.seq;
}

inline task_selection select_tasks(
    const snapshot& snap, const task_filter& filter, task_sort order, std::size_t cap,
    const std::function<bool(const task_view&)>& stderr_nonempty = {}) {
  task_selection out;
  for (const auto& t : snap.tasks())
    if (matches(t, filter, stderr_nonempty)) out.tasks.push_back(&t);
  out.total = out.tasks.size();
  std::size_t keep = std::min(cap, out.tasks.size());
  std::partial_sort(
      out.tasks.begin(), out.tasks.begin() + keep, out.tasks.end(),
      [order](const task_view* a, const task_view* b) { return sorts_before(*a, *b, order); });
  out.tasks.resize(keep);
  return out;
}

}  // namespace leaseq
