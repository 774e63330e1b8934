#pragma once

// One task followed through the lease tree by its own files only, never a scan of the whole
// lease: what `follow TASK` and `wait TASK...` need to learn that a task ended, at a cost that
// does not grow with the lease. While it runs on a known node a look is two opens (its result,
// its claimed file); otherwise a listing of done/ (one entry per node) and locate_task().
// As in the snapshot store, a task seen RUNNING that is then in neither claimed/ nor done/ for
// ui.lost_confirm_s is LOST; until then it keeps its last state.

#include <cerrno>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "leaseq/clock.hpp"
#include "leaseq/detail/dir.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/locate.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/snapshot.hpp"

namespace leaseq {

// The node directories under done/: where a task's result may be.
inline std::vector<std::string> done_nodes(const lease_paths& lease) {
  std::vector<std::string> out;
  for (const std::string& d : detail::list_dir(lease.done_root().string()).names)
    if (is_valid_node(d)) out.push_back(d);
  return out;
}

class task_tracker {
 public:
  task_tracker(lease_paths lease, const std::string& id, double lost_confirm_s)
      : lease_(std::move(lease)), lost_confirm_s_(lost_confirm_s) {
    view_.id = check_task_id(id);
    view_.seq = task_seq(id).value_or(0);
  }

  // Looks again; does nothing once the task ended. `nodes`: done_nodes(), when the caller
  // listed them once for many tasks; listed here when needed otherwise.
  void poll(double now = unix_now(), const std::vector<std::string>* nodes = nullptr) {
    if (ended()) return;
    // Its runner writes the result into its own done/ directory before it removes the claimed
    // file, so looking in this order never takes an end for a loss.
    if (view_.state == task_state::running && !view_.node.empty()) {
      if (read_result(view_.node, now)) return;
      std::error_code ec;
      if (fs::exists(lease_.claimed_task(view_.node, view_.id), ec)) {
        running_seen(now);
        return;
      }
    }
    std::vector<std::string> listed;
    if (!nodes) {
      listed = done_nodes(lease_);
      nodes = &listed;
    }
    for (const std::string& n : *nodes)
      if (read_result(n, now)) return;
    if (auto loc = locate_task(lease_, view_.id)) {
      found_ = true;
      gone_ = false;
      view_.missing_since.reset();
      if (loc->place == task_place::done)
        return;  // a result there but unreadable: keep what it was
      view_.spec = std::make_shared<const task_spec>(std::move(loc->spec));
      if (loc->place == task_place::running) {
        view_.node = loc->dir;
        running_seen(now);
      } else {
        view_.state = task_state::pending;
        view_.node = loc->dir == any_lane ? std::string() : loc->dir;
      }
      return;
    }
    if (view_.state != task_state::running) {
      // Seen PENDING, now nowhere: a claim's rename not visible yet (a lagging client), or the
      // file was removed by hand. After ui.lost_confirm_s it is gone: never ran, never lost.
      if (found_) {
        if (!view_.missing_since) view_.missing_since = now;
        gone_ = now - *view_.missing_since >= lost_confirm_s_;
      }
      return;
    }
    if (!view_.missing_since) view_.missing_since = now;
    if (now - *view_.missing_since >= lost_confirm_s_) {
      view_.state = task_state::lost;
      view_.unknown_reason = "not in claimed/ or done/ for longer than ui.lost_confirm_s";
    }
  }

  // Seen in inbox/, claimed/ or done/ at least once.
  bool found() const noexcept { return found_; }
  // Seen PENDING, then in none of inbox/, claimed/ and done/ for ui.lost_confirm_s: removed
  // without running (it comes back to PENDING if its file shows up again).
  bool gone() const noexcept { return gone_; }
  // FINISHED, FAILED, CANCELLED or LOST: nothing will change any more.
  bool ended() const noexcept { return is_done(view_.state) || view_.state == task_state::lost; }
  // The task as a snapshot would show it: id, state, node (its lane while PENDING, empty in
  // _any), spec, result; for LOST the reason in unknown_reason.
  const task_view& view() const noexcept { return view_; }

 private:
  // True when done/<node>/ holds its result: read, or there but not readable yet (half-visible
  // through a lagging cache), which keeps the last state, as the snapshot store does, and is
  // looked at again next time.
  bool read_result(const std::string& node, double now) {
    json_outcome r = read_json_tolerant(lease_.result(node, view_.id));
    if (r.err == ENOENT || r.err == ENOTDIR) return false;
    auto res = std::make_shared<task_result>();
    try {
      if (!r.ok()) throw error(r.reason);
      from_json(*r.value, *res);
    } catch (const error&) {
      view_.node = node;
      if (view_.state == task_state::pending) view_.state = task_state::running;
      running_seen(now);
      return true;
    }
    found_ = true;
    view_.node = node;
    view_.state = res->state;
    view_.missing_since.reset();
    view_.spec = std::shared_ptr<const task_spec>(res, &res->task);
    view_.result = std::move(res);
    return true;
  }

  void running_seen(double now) {
    found_ = true;
    view_.state = task_state::running;
    view_.last_running_seen = now;
    view_.missing_since.reset();
  }

  lease_paths lease_;
  double lost_confirm_s_;
  task_view view_;
  bool found_ = false;
  bool gone_ = false;
};

}  // namespace leaseq
