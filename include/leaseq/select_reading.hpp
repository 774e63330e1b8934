#pragma once

// select_tasks (task_filter.hpp) over a quick scan's snapshot (store_options::pending_unread and
// results_from_index: PENDING tasks known by their names, ended ones by the results index),
// reading only the task and result files the selection needs: those of the rows it gives, and of
// the tasks that decide which rows those are. A filter on commands, labels or stderr reads every
// task the states and node leave; the state order reads the one state group that the cap cuts
// (for the times it sorts by); the lane order reads nothing else. So `leaseq tasks` over a
// million-task lease shows its first rows without parsing a million files, and the rows are the
// ones select_tasks gives over a full scan of the same tree.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "leaseq/detail/parallel.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/snapshot.hpp"
#include "leaseq/task_file.hpp"
#include "leaseq/task_filter.hpp"

namespace leaseq {

struct read_selection {
  std::vector<task_view> tasks;  // at most the cap, in order, each with its file read
  std::size_t total = 0;         // how many matched before the cap
  // By seq: why a file read for the selection cannot be read (read_unread_view's problem).
  std::map<std::int64_t, std::string> unreadable;
};

namespace detail {

// Reads the files of tasks[i] for each i of `rows` on `threads` threads and hands each view to
// sink(part, i, view) on the thread that read it: with its file, or marked unknown with the
// reason when the file does not parse (the problem also goes into `unreadable`), or as it was
// when the file is gone.
template <class Sink>
void read_rows(const lease_paths& lease, const std::vector<task_view>& tasks,
               const std::vector<std::size_t>& rows, unsigned threads,
               std::map<std::int64_t, std::string>& unreadable, Sink&& sink) {
  threads = reader_threads(rows.size(), threads);
  std::vector<std::vector<std::pair<std::int64_t, std::string>>> problems(threads);
  run_parts(threads, [&](unsigned part) {
    for (std::size_t k = part; k < rows.size(); k += threads) {
      const task_view& t = tasks[rows[k]];
      unread_view r = read_unread_view(lease, t);
      if (r.view) {
        sink(part, rows[k], std::move(*r.view));
        continue;
      }
      task_view v = t;
      if (!r.problem.empty()) {  // unknown, as a scan that read it shows it
        v.unknown = true;
        v.unknown_reason = r.problem;
        problems[part].emplace_back(t.seq, std::move(r.problem));
      }
      sink(part, rows[k], std::move(v));
    }
  });
  for (auto& part : problems)
    for (auto& p : part) unreadable.insert(std::move(p));
}

}  // namespace detail

// select_tasks(quick, filter, order, cap, stderr_nonempty) with the files read as the header
// says; `threads` as detail::reader_threads takes it. stderr_nonempty may be called from several
// threads at once (stderr_probe over posix_fs may).
inline read_selection select_tasks_reading(
    const lease_paths& lease, const snapshot& quick, const task_filter& filter, task_sort order,
    std::size_t cap, const std::function<bool(const task_view&)>& stderr_nonempty = {},
    unsigned threads = 0) {
  const std::vector<task_view>& tasks = quick.tasks();
  task_filter by_name = filter;  // what a task's place and name decide
  by_name.command.clear();
  by_name.labels.clear();
  by_name.has_stderr_output = false;
  std::vector<std::size_t> candidates;
  for (std::size_t i = 0; i < tasks.size(); ++i)
    if (matches(tasks[i], by_name)) candidates.push_back(i);

  read_selection out;
  auto before = [order](const task_view& a, const task_view& b) {
    return sorts_before(a, b, order);
  };
  auto finish = [&](std::vector<task_view> rows) {
    std::size_t keep = std::min(cap, rows.size());
    std::partial_sort(rows.begin(), rows.begin() + keep, rows.end(), before);
    rows.resize(keep);
    out.tasks = std::move(rows);
  };
  // Rows for `chosen`, read on the threads, in any order (finish sorts them).
  auto read_chosen = [&](const std::vector<std::size_t>& chosen) {
    unsigned parts = detail::reader_threads(chosen.size(), threads);
    std::vector<std::vector<task_view>> got(parts);
    detail::read_rows(
        lease, tasks, chosen, parts, out.unreadable,
        [&](unsigned part, std::size_t, task_view&& v) { got[part].push_back(std::move(v)); });
    std::vector<task_view> rows;
    for (auto& part : got)
      for (auto& v : part) rows.push_back(std::move(v));
    return rows;
  };

  if (filter != by_name) {  // what the files say decides: every candidate is read
    unsigned parts = detail::reader_threads(candidates.size(), threads);
    std::vector<std::vector<task_view>> kept(parts);
    std::vector<std::size_t> matched(parts, 0);
    detail::read_rows(
        lease, tasks, candidates, parts, out.unreadable,
        [&](unsigned part, std::size_t, task_view&& v) {
          if (!matches(v, filter, stderr_nonempty)) return;
          ++matched[part];
          std::vector<task_view>& rows = kept[part];
          rows.push_back(std::move(v));
          // (No 2 * cap: a cap may be as large as size_t holds.)
          if (rows.size() <= cap || rows.size() - cap < std::max<std::size_t>(cap, 64)) return;
          // Only the first `cap` can be shown: memory stays bounded by the cap,
          // whatever the number of matches.
          std::partial_sort(rows.begin(), rows.begin() + cap, rows.end(), before);
          rows.resize(cap);
        });
    std::vector<task_view> rows;
    for (unsigned part = 0; part < parts; ++part) {
      out.total += matched[part];
      for (auto& v : kept[part]) rows.push_back(std::move(v));
    }
    finish(std::move(rows));
    return out;
  }

  out.total = candidates.size();
  std::vector<std::size_t> chosen;
  if (order == task_sort::seq_in_lane) {  // lane and seq: both in the names
    std::size_t keep = std::min(cap, candidates.size());
    std::partial_sort(candidates.begin(), candidates.begin() + keep, candidates.end(),
                      [&](std::size_t a, std::size_t b) { return before(tasks[a], tasks[b]); });
    candidates.resize(keep);
    finish(read_chosen(candidates));
    return out;
  }
  // State order: whole state groups while they fit under the cap; of the group the cap cuts,
  // the latest by their times, which only their files give.
  std::stable_sort(candidates.begin(), candidates.end(), [&](std::size_t a, std::size_t b) {
    return state_priority(tasks[a].state) < state_priority(tasks[b].state);
  });
  std::size_t at = 0;
  while (at < candidates.size() && chosen.size() < cap) {
    std::size_t end = at;
    int rank = state_priority(tasks[candidates[at]].state);
    while (end < candidates.size() && state_priority(tasks[candidates[end]].state) == rank) ++end;
    std::vector<std::size_t> group(candidates.begin() + at, candidates.begin() + end);
    at = end;
    if (chosen.size() + group.size() <= cap) {
      chosen.insert(chosen.end(), group.begin(), group.end());
      continue;
    }
    struct sort_key {
      double time;
      std::int64_t seq;
      std::size_t row;
    };
    unsigned parts = detail::reader_threads(group.size(), threads);
    std::vector<std::vector<sort_key>> keys(parts);
    detail::read_rows(lease, tasks, group, parts, out.unreadable,
                      [&](unsigned part, std::size_t row, task_view&& v) {
                        keys[part].push_back({task_sort_time(v), v.seq, row});
                      });
    std::vector<sort_key> all;
    for (auto& part : keys) all.insert(all.end(), part.begin(), part.end());
    std::size_t keep = cap - chosen.size();
    std::partial_sort(all.begin(), all.begin() + keep, all.end(),
                      [](const sort_key& a, const sort_key& b) {
                        return a.time != b.time ? a.time > b.time : a.seq > b.seq;
                      });
    for (std::size_t k = 0; k < keep; ++k) chosen.push_back(all[k].row);
  }
  finish(read_chosen(chosen));
  return out;
}

}  // namespace leaseq
