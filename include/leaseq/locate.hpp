#pragma once

// Where one task is in a lease tree right now: done, claimed (running) or pending. Used by
// cancel and retry, which act on a single task id.

#include <optional>
#include <string>

#include "leaseq/detail/dir.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"

namespace leaseq {

enum class task_place { pending, running, done };

struct task_location {
  task_place place = task_place::pending;
  std::string dir;  // the lane (pending) or node (running, done) directory name
  fs::path path;    // the file found
  task_spec spec;   // the task fields (from the result for a done task)
  std::optional<task_result> result;
};

// Looks in done/ first, then claimed/, then inbox/ (the order a task moves backwards through,
// so a task caught mid-move is seen in its later place). Files that do not parse are skipped.
inline std::optional<task_location> locate_task(const lease_paths& lease, const std::string& id) {
  check_task_id(id);
  auto scan = [&](const fs::path& root, task_place place,
                  const std::string& suffix) -> std::optional<task_location> {
    for (const std::string& d : detail::list_dir(root.string()).names) {
      if (!is_valid_lane(d)) continue;
      fs::path p = root / d / (id + suffix);
      json_outcome r = read_json_tolerant(p);
      if (!r.ok()) continue;
      task_location loc;
      loc.place = place;
      loc.dir = d;
      loc.path = p;
      try {
        if (place == task_place::done) {
          task_result res;
          from_json(*r.value, res);
          loc.spec = res.task;
          loc.result = std::move(res);
        } else {
          from_json(*r.value, loc.spec);
        }
      } catch (const error&) {
        continue;
      }
      return loc;
    }
    return std::nullopt;
  };
  if (auto l = scan(lease.done_root(), task_place::done, ".result.json")) return l;
  if (auto l = scan(lease.claimed_root(), task_place::running, ".json")) return l;
  return scan(lease.inbox_root(), task_place::pending, ".json");
}

}  // namespace leaseq
