#pragma once

// What a one-shot reader that counted the PENDING tasks by their names (a quick scan,
// store_options::pending_unread) learns from their files without keeping them: how many of
// them cannot run now (waiting.hpp) and why the first one waits, and which files cannot be read.
// The files are read on several threads and each is dropped once judged, so a text `status` of a
// million-task lease holds its snapshot and not half a million task specs besides.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "leaseq/detail/parallel.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/snapshot.hpp"
#include "leaseq/task_file.hpp"
#include "leaseq/waiting.hpp"

namespace leaseq {

struct pending_check {
  std::size_t blocked = 0;    // PENDING tasks no runner will take now, or that wait on their own
  std::string first_blocked;  // "<id>: <reason>" for the first of them in the snapshot's order
  // By seq: why a task file cannot be read, as a scan that read it says (unknown_reason).
  std::map<std::int64_t, std::string> unreadable;
};

namespace detail {

struct pending_check_part {
  std::size_t blocked = 0;
  std::size_t first = std::numeric_limits<std::size_t>::max();  // index in s.tasks()
  std::string first_reason;
  std::vector<std::pair<std::int64_t, std::string>> unreadable;
};

// Judges one PENDING view: as it stands where the scan read its file, else by its file read now.
// A file that is gone (claimed since the listing) or cannot be read is judged on what its name
// says, as a scan that reads it would judge it.
inline std::optional<std::string> judge_pending(const lease_paths& lease, const task_view& t,
                                                const snapshot& s, const lease_condition& cond,
                                                pending_check_part& part) {
  unread_view r = read_unread_view(lease, t);
  if (!r.problem.empty()) part.unreadable.emplace_back(t.seq, std::move(r.problem));
  return waiting_reason(r.view ? *r.view : t, s, cond);
}

}  // namespace detail

// Reads the task file of every PENDING task of `s` that has no spec, on `threads` threads (0: up
// to 8 by the hardware), and judges each with waiting_reason under `cond`.
inline pending_check check_pending(const lease_paths& lease, const snapshot& s,
                                   const lease_condition& cond, unsigned threads = 0) {
  const std::vector<task_view>& tasks = s.tasks();
  std::vector<std::size_t> pending;
  for (std::size_t i = 0; i < tasks.size(); ++i)
    if (tasks[i].state == task_state::pending) pending.push_back(i);
  threads = detail::reader_threads(pending.size(), threads);
  std::vector<detail::pending_check_part> parts(threads);
  detail::run_parts(threads, [&](unsigned part_no) {
    detail::pending_check_part& part = parts[part_no];
    for (std::size_t k = part_no; k < pending.size(); k += threads) {
      std::size_t i = pending[k];
      std::optional<std::string> why = detail::judge_pending(lease, tasks[i], s, cond, part);
      if (!why) continue;
      if (part.blocked++ == 0) {  // each part walks in order: its first is its smallest
        part.first = i;
        part.first_reason = std::move(*why);
      }
    }
  });

  pending_check out;
  std::size_t first = std::numeric_limits<std::size_t>::max();
  for (auto& part : parts) {
    out.blocked += part.blocked;
    if (part.first < first) {
      first = part.first;
      out.first_blocked = tasks[first].id + ": " + part.first_reason;
    }
    for (auto& u : part.unreadable) out.unreadable.insert(std::move(u));
  }
  return out;
}

}  // namespace leaseq
