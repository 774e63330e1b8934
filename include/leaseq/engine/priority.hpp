#pragma once

// Claim order by priority (protocol version 4). A lane is claimed in seq order. A task with a
// priority above 0 also gets a marker, priority/<lane>/<id>.p<N>: an empty file that runners
// list before their lane, so they take the highest priority first without reading every task
// file of a long lane. The task file's `priority` is the truth and the marker only a hint: a
// lost or stale marker changes the order, never what runs. A task below 0 has no marker; a
// runner passes it over while anything else in its lane can run.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "leaseq/detail/dir.hpp"
#include "leaseq/detail/tree_guard.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"

namespace leaseq {

struct priority_marker {
  std::string id;
  std::int64_t seq = 0;
  int priority = 0;
};

// The lane a task waits in: its node, or the shared lane.
inline std::string task_lane(const task_spec& t) {
  return t.node ? *t.node : std::string(any_lane);
}

inline std::string priority_marker_name(const std::string& id, int priority) {
  return check_task_id(id) + ".p" + std::to_string(priority);
}

// "T012.p5" -> {T012, 12, 5}; anything else (temp names, other files) -> nullopt.
inline std::optional<priority_marker> parse_priority_marker(std::string_view name) {
  std::size_t dot = name.rfind(".p");
  if (dot == std::string_view::npos) return std::nullopt;
  std::string_view id = name.substr(0, dot), number = name.substr(dot + 2);
  priority_marker m;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), m.priority);
  if (ec != std::errc() || end != number.data() + number.size() || m.priority <= 0 ||
      m.priority > max_task_priority || !is_valid_task_id(id))
    return std::nullopt;
  m.id = std::string(id);
  m.seq = task_seq(id).value_or(0);
  return m;
}

// The markers of a lane, highest priority first, then lowest seq.
inline std::vector<priority_marker> list_priority_markers(const lease_paths& lease,
                                                          const std::string& lane) {
  std::vector<priority_marker> out;
  for (const std::string& name : detail::list_dir(lease.priority(lane).string()).names)
    if (auto m = parse_priority_marker(name)) out.push_back(std::move(*m));
  std::sort(out.begin(), out.end(), [](const priority_marker& a, const priority_marker& b) {
    return a.priority != b.priority ? a.priority > b.priority : a.seq < b.seq;
  });
  return out;
}

// Marks a task with a priority above 0 (nothing for the others). Made through the tree guard;
// an existing marker is fine. Throws when it cannot be made: the task then runs in seq order.
inline void mark_priority(const lease_paths& lease, const task_spec& t) {
  if (t.priority <= 0) return;
  detail::unique_fd dir = open_lease_dir(lease, lease.priority(task_lane(t)));
  const std::string name = priority_marker_name(t.id, t.priority);
  int fd =
      ::openat(dir.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 && errno != EEXIST)
    throw io_error("cannot mark the priority of " + t.id,
                   (lease.priority(task_lane(t)) / name).string(), errno);
  if (fd >= 0) ::close(fd);
}

// Removes a task's marker once it is claimed; a missing one is fine. Never through a link:
// the lane's marker directory is opened from the home down without following one.
inline void unmark_priority(const lease_paths& lease, const task_spec& t) noexcept {
  if (t.priority <= 0) return;
  try {
    detail::unique_fd dir = detail::open_tree_dir(lease.anchor(), lease.priority(task_lane(t)),
                                                  /*create=*/false);
    ::unlinkat(dir.get(), priority_marker_name(t.id, t.priority).c_str(), 0);
  } catch (const std::exception&) {
    // No marker directory (or an unsafe one): nothing of ours to remove.
  }
}

}  // namespace leaseq
