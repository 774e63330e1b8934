#pragma once

// What a reader knows about one lease at one moment: immutable values the store publishes and
// the dashboard, the CLI and diff() read. A snapshot is shared as shared_ptr<const snapshot>;
// copying one is cheap (the task table is shared between snapshots that did not rescan tasks).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "leaseq/model.hpp"
#include "leaseq/names.hpp"

namespace leaseq {

inline constexpr std::size_t task_state_count = 8;

struct archive_index;  // archive.hpp

inline constexpr std::size_t state_index(task_state s) noexcept {
  return static_cast<std::size_t>(s);
}

// One task as the reader derives it (protocol: "Task state as a reader derives it").
struct task_view {
  std::string id;
  std::int64_t seq = 0;
  // The node whose lane holds it while PENDING (empty in the shared lane _any), where it runs
  // or ran once claimed, and for LOST? / LOST the node it was last seen RUNNING on.
  std::string node;
  task_state state = task_state::pending;
  // The file is there but stopped parsing (or the task went out of sight): the view is the
  // last good one. (Next to `state`, so the two share one word of the table's 100 000 rows.)
  bool unknown = false;
  // Unknown because its file, modified moments ago, did not parse: a read through a lagging
  // cache mid-replace, reported as lag (not as a broken file) until ui.hb_stale_s passes.
  bool settling = false;
  // Null when no task file was ever parsed. The store leaves spec->cmd empty when it is only
  // argv's display form (most tasks: a copy of every command is 5% of a 100 000-task
  // snapshot); command() gives it back either way.
  std::shared_ptr<const task_spec> spec;
  std::shared_ptr<const task_result> result;  // set when done/ holds a parsed result
  double last_seen = 0;                       // last scan that saw its file
  std::string unknown_reason;
  // LOST? evidence: the last time the task was seen RUNNING (its claimed file, or a
  // heartbeat's running list); `node` says where.
  std::optional<double> last_running_seen;
  // When a RUNNING task went out of sight (LOST? since then; LOST after ui.lost_confirm_s).
  std::optional<double> missing_since;

  // The lane it belongs to: its node, or "_any" while it waits in the shared lane.
  std::string_view lane() const noexcept {
    return node.empty() ? any_lane : std::string_view(node);
  }

  // The command for display: cmd, else argv's display form (display_command), else "".
  std::string command() const {
    if (!spec) return {};
    if (!spec->cmd.empty()) return spec->cmd;
    return display_command(spec->argv);
  }
  // command() without a copy; valid while the view and `scratch` are (see display_command_view).
  std::string_view command_view(std::string& scratch) const {
    if (!spec) return {};
    if (!spec->cmd.empty()) return spec->cmd;
    return display_command_view(spec->argv, scratch);
  }
  std::optional<int> exit_code() const { return result ? result->exit_code : std::optional<int>{}; }
  std::optional<double> created() const {
    return spec && spec->created > 0 ? std::optional<double>(spec->created) : std::nullopt;
  }
  std::optional<double> claimed() const {
    if (result && result->claimed) return result->claimed;
    return spec ? spec->claimed : std::nullopt;
  }
  std::optional<double> started() const {
    if (result && result->started) return result->started;
    return claimed();
  }
  std::optional<double> finished() const {
    return result ? result->finished : std::optional<double>{};
  }
};

// One node (runner) of the lease.
struct node_view {
  std::string name;
  std::optional<heartbeat> hb;  // last good heartbeat
  node_health health = node_health::unknown;
  std::optional<double> hb_age_s;  // at the snapshot's taken_at; never negative
  bool hb_unknown = false;         // hb file exists but stopped parsing: hb is the last good one
  std::string hb_reason;
  // hb_unknown, but the file was modified less than ui.hb_stale_s ago: most likely read while
  // its runner replaced it through a lagging cache. Lag (fs_lag), not yet worth a warning.
  bool hb_settling = false;
  bool paused = false;
  std::vector<std::string> running;  // RUNNING (and LOST?) tasks whose files put them here
  std::size_t pending = 0;           // tasks in inbox/<node>/ (the shared lane not counted)
};

// A directory or file the scan could not use, or a name it refused (never joined into a path).
struct scan_error {
  std::string path;  // as far as it is safe to show: the parent and the (unsanitized) name
  int err = 0;       // errno, 0 when not an OS error
  std::string message;
};

struct snapshot {
  std::string lease_id;
  double taken_at = 0;           // clock time of the scan that produced it
  std::uint64_t generation = 0;  // grows with each published snapshot
  bool complete = false;         // false until the first full scan (tasks + heartbeats) ran

  std::shared_ptr<const std::vector<task_view>> task_table =
      std::make_shared<const std::vector<task_view>>();  // sorted by seq
  std::vector<node_view> nodes;                          // sorted by name
  std::array<std::size_t, task_state_count> counts{};    // per task_state, archived included
  // Ended tasks `leaseq clean` moved to archive/ (protocol 4): counted in `counts` (and here),
  // never in tasks(); a task both archived and live counts once, as the live one.
  std::size_t archived = 0;
  std::array<std::size_t, task_state_count> archived_counts{};
  std::shared_ptr<const archive_index> archive;  // null while the lease has no archive/
  std::vector<scan_error> errors;
  // True while some task is LOST? or unknown: what the disk shows lags what happened.
  bool fs_lag = false;

  const std::vector<task_view>& tasks() const noexcept { return *task_table; }
  std::size_t count(task_state s) const noexcept { return counts[state_index(s)]; }

  const task_view* find_task(const std::string& id) const {
    auto seq = task_seq(id);
    if (!seq) return nullptr;
    const auto& t = tasks();
    auto it = std::lower_bound(t.begin(), t.end(), *seq,
                               [](const task_view& v, std::int64_t s) { return v.seq < s; });
    return it != t.end() && it->id == id ? &*it : nullptr;
  }
  const node_view* find_node(const std::string& name) const {
    auto it = std::lower_bound(nodes.begin(), nodes.end(), name,
                               [](const node_view& n, const std::string& s) { return n.name < s; });
    return it != nodes.end() && it->name == name ? &*it : nullptr;
  }
  // Tasks whose state is RUNNING, in seq order.
  std::vector<const task_view*> running_tasks() const {
    std::vector<const task_view*> out;
    for (const auto& t : tasks())
      if (t.state == task_state::running) out.push_back(&t);
    return out;
  }
};

}  // namespace leaseq
