#pragma once

// The per-node runner. One `runner` owns a node of a lease: it claims tasks by rename, runs up
// to `slots` of them (each in its own session), writes their results, follows control files
// and rewrites its heartbeat. `step(now)` does one pass without blocking, so tests drive it with
// a fake clock and fake processes; `run_runner()` is the real loop with signals and sleeping.
//
// Ordering guarantees (protocol.md): a task is claimed by rename (at most once, whatever the
// race); the result is written before the claimed file is unlinked; a result that cannot be
// written (ENOSPC, EIO) stays queued in memory, the claimed file stays on disk, and the write is
// retried on every pass. Tasks stopped because the runner itself was told to stop (SIGTERM,
// SIGINT) end FAILED with reason "runner_terminated"; claimed tasks found after a crash whose
// process is gone end FAILED with reason "runner_lost".
//
// Claimed files nobody runs are adopted: a claim rename that reports an error although it
// happened (a lost NFS reply; LEASEQ_FAULT=claim_rename_lies plays it) is noticed by looking
// at the destination, and every few seconds the node's claimed/ directory is scanned for task
// files this runner does not know: one with a live pid is watched, one whose pid is gone ends
// with what its supervisor recorded in logs/<node>/<id>.exit (its real exit status, or
// CANCELLED when cancelled meanwhile) or, without that file, runner_lost; one that never got a
// pid (claimed, never started) is run. A task the runner was killed between spawning and
// recording its pid may so run twice, at most once per crash.
//
// The runner writes only into real directories of the lease tree: before each pass it checks
// (detail/tree_guard.hpp) that its inbox lanes, claimed/, done/, logs/, hb/ and control/
// directories are not symlinks; while one is, it logs why and does not claim (tasks stay
// pending), does not write results (they stay queued, the claimed file stays), does not write
// its heartbeat or read its control directory. Final names are replaced by rename or opened
// O_NOFOLLOW, so a planted symlink file is never written through.
//
// Fault injection for tests: LEASEQ_FAULT (fault.hpp) can fail result writes with ENOSPC or
// EIO and make claim renames report EIO although they happened.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "leaseq/clock.hpp"
#include "leaseq/detail/dir.hpp"
#include "leaseq/detail/dir_watch.hpp"
#include "leaseq/detail/fault.hpp"
#include "leaseq/detail/process_identity.hpp"
#include "leaseq/detail/strings.hpp"
#include "leaseq/detail/tree_guard.hpp"
#include "leaseq/engine/control.hpp"
#include "leaseq/engine/priority.hpp"
#include "leaseq/engine/result_writer.hpp"
#include "leaseq/engine/spawn.hpp"
#include "leaseq/engine/supervise.hpp"
#include "leaseq/engine/tree_check.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/lock.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/results_index.hpp"
#include "leaseq/trust.hpp"
#include "leaseq/version.hpp"

namespace leaseq {

struct runner_config {
  std::string lease_id;
  std::string node;
  std::string host;  // written into the heartbeat
  int slots = 1;
  std::vector<std::string> gpu_ids;  // devices handed out through CUDA_VISIBLE_DEVICES
  double grace_s = 10;               // SIGTERM -> SIGKILL
  double heartbeat_s = 2;
  // A change in the running set (a task started or ended) is written at most this often: the
  // dashboard sees it within a fraction of a second, and a burst of short tasks does not
  // rewrite (and recount the inbox for) the heartbeat once per task. Pause, resume and stop
  // are written at once.
  double heartbeat_min_s = 0.5;
  double idle_min_s = 0.05;  // idle polling backs off from this ...
  double idle_max_s = 1.0;   // ... to this (blind_idle_max_s where inotify cannot see submits)
  // An executable implementing `__supervise` (supervise.hpp; the leaseq program does): each
  // task then runs under it, and a task that outlives a crashed runner still has its real
  // exit status recorded (logs/<node>/<id>.exit). Empty: tasks are exec'd directly, and such
  // a task can only end runner_lost.
  std::string supervisor;
  // An open file description of lease.runner_lock(node) on which the caller already holds
  // flock LOCK_EX (`leaseq lease local start` takes it before forking the runner, so a start
  // that reports success has a runner that holds the lock). The runner keeps a duplicate of it
  // instead of opening the file again (a second open file description would conflict with the
  // first). -1: the runner takes the lock itself.
  int node_lock_fd = -1;
};

// The idle poll's ceiling where inotify cannot see a new task (run_runner).
inline constexpr double blind_idle_max_s = 0.1;

namespace detail {

inline bool task_file_name(const std::string& name, std::int64_t& seq) {
  auto stem = strip_suffix(name, ".json");
  if (name.size() < 9 || !stem) return false;
  auto s = task_seq(*stem);
  if (!s) return false;
  seq = *s;
  return true;
}

// Pending task file names of one lane, lowest seq first.
inline std::deque<std::string> list_lane(const fs::path& dir) {
  std::vector<std::pair<std::int64_t, std::string>> v;
  for (auto& n : list_dir(dir.string()).names) {
    std::int64_t seq;
    if (task_file_name(n, seq)) v.emplace_back(seq, std::move(n));
  }
  std::sort(v.begin(), v.end());
  std::deque<std::string> out;
  for (auto& e : v) out.push_back(std::move(e.second));
  return out;
}

// The pid of the writer that made `name`, when it is one of the temp names a runner writes a
// file `<task id><final_suffix>` under (file_io.hpp temp_name_for: `.<id><final_suffix>.tmp.`
// then `<pid>.<counter>.<hex>`, and `.<i>` in a group commit); nothing for any other name.
inline std::optional<pid_t> runner_temp_writer(std::string_view name,
                                               std::string_view final_suffix) {
  if (name.empty() || name[0] != '.') return std::nullopt;
  std::size_t tmp = name.find(final_suffix);
  if (tmp == std::string_view::npos || !task_seq(name.substr(1, tmp - 1))) return std::nullopt;
  std::string_view rest = name.substr(tmp + final_suffix.size());
  if (rest.substr(0, 5) != ".tmp.") return std::nullopt;
  rest.remove_prefix(5);
  // Dot-separated fields: pid, counter, hex, and optionally the index in the batch.
  std::vector<std::string_view> fields;
  for (std::size_t at = 0;;) {
    std::size_t dot = rest.find('.', at);
    fields.push_back(rest.substr(at, dot == std::string_view::npos ? dot : dot - at));
    if (dot == std::string_view::npos) break;
    at = dot + 1;
  }
  auto all_of = [](std::string_view f, const char* set) {
    return !f.empty() && f.size() <= 20 && f.find_first_not_of(set) == std::string_view::npos;
  };
  const char* digits = "0123456789";
  if (fields.size() < 3 || fields.size() > 4 || !all_of(fields[0], digits) ||
      !all_of(fields[1], digits) || !all_of(fields[2], "0123456789abcdef") ||
      (fields.size() == 4 && !all_of(fields[3], digits)))
    return std::nullopt;
  return checked_pid(std::atoll(std::string(fields[0]).c_str()));
}

}  // namespace detail

class runner {
 public:
  using logger = std::function<void(const std::string&)>;

  runner(runner_config cfg, const lease_paths& lease, process_ops& ops, logger log = {})
      : cfg_(std::move(cfg)),
        lease_(lease),
        ops_(ops),
        log_(std::move(log)),
        free_gpus_(cfg_.gpu_ids.begin(), cfg_.gpu_ids.end()) {
    check_lease_id(cfg_.lease_id);
    check_node(cfg_.node);
    if (cfg_.slots < 1 || cfg_.slots > 4096) throw error("runner: slots must be 1 to 4096");
    // A heartbeat of 1e-300 s would rewrite hb/ in a loop; one of days would read as dead.
    if (!(cfg_.heartbeat_s >= 0.1 && cfg_.heartbeat_s <= 600))
      throw error(
          fmt::format("runner: heartbeat must be 0.1 to 600 seconds (got {})", cfg_.heartbeat_s));
    if (!(cfg_.grace_s >= 0 && cfg_.grace_s <= 86400))
      throw error(fmt::format("runner: grace must be 0 to 86400 seconds (got {})", cfg_.grace_s));
    if (cfg_.host.empty()) cfg_.host = cfg_.node;
    std::random_device rd;
    rng_.seed((static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
              static_cast<std::uint64_t>(::getpid()));
  }

  // Creates the node's directories, takes over claimed tasks left by a previous runner of this
  // node, restores a paused state, and writes the first heartbeat.
  void start(double now) {
    for (const fs::path& d : {lease_.inbox(cfg_.node), lease_.inbox(std::string(any_lane)),
                              lease_.claimed(cfg_.node), lease_.done(cfg_.node),
                              lease_.logs(cfg_.node), lease_.hb_dir(), lease_.control(cfg_.node)})
      ensure_dir(d);
    take_node_lock();
    remove_stale_temps();
    started_ = now;
    for (const auto& problem : fault_config_problems()) log(problem);
    check_tree();
    json_outcome old = read_json_tolerant(lease_.heartbeat(cfg_.node));
    const json* was_paused =
        old.ok() && old.value->is_object() ? detail::find_field(*old.value, "paused") : nullptr;
    if (was_paused && was_paused->is_boolean() && was_paused->get<bool>()) {
      paused_ = true;
      log("staying paused, as the previous runner of this node was");
    }
    adopt_claimed(now, true);
    flush_results();
    write_heartbeat(now);
  }

  // One pass: reap, control, deadlines, claim, heartbeat. Returns true when something happened
  // (the caller polls again soon) and false when idle (the caller backs off).
  bool step(double now) {
    bool busy = false;
    pass_now_ = now;
    check_tree();
    busy |= reap(now);
    record_pids(now);
    busy |= check_orphans(now);
    if (now - last_adopt_scan_ >= 2) {
      last_adopt_scan_ = now;
      busy |= adopt_claimed(now, false);
    }
    if (tree_ok(dir_control) && tree_ok(dir_claimed)) busy |= apply_control(now);
    if (stop_requested_ && !stopping_) begin_stop(now);
    busy |= release_held_deaths(now);
    enforce_deadlines(now);
    if (!paused_ && !stopping_) busy |= claim(now);
    // Results last: the slots freed above are refilled before the results' fsyncs.
    busy |= flush_results();
    if (stopping_) {
      bool own_running = std::any_of(running_.begin(), running_.end(),
                                     [](const auto& e) { return !e.second.orphan; });
      bool give_up = now - stop_started_ > cfg_.grace_s + 30;  // results we cannot write
      if (!own_running && (unwritten_.empty() || give_up)) {
        finished_ = true;
        write_heartbeat(now);
        return true;
      }
    }
    if (now - last_heartbeat_ >= heartbeat_interval()) write_heartbeat(now);
    return busy;
  }

  // Results are then written on a thread of their own (result_writer.hpp); on_done is called
  // from that thread when some are written. Call before start().
  void write_results_in_background(std::function<void()> on_done) {
    writer_ = std::make_unique<result_writer>(std::move(on_done));
  }
  // Joins the writer thread; results it had not started stay unwritten (see ~result_writer).
  void end_background_writes() { writer_.reset(); }

  // Stop claiming, stop the running tasks as on cancel (results: runner_terminated), then
  // finish with a "stopped" heartbeat.
  void request_stop() noexcept { stop_requested_ = true; }
  bool finished() const noexcept { return finished_; }
  bool paused() const noexcept { return paused_; }
  std::size_t running_count() const noexcept { return running_.size(); }
  std::size_t unwritten_count() const noexcept { return unwritten_.size(); }

  // Seconds until the next deadline that needs a pass (SIGKILL after grace, heartbeat).
  double next_deadline(double now) const {
    double t = last_heartbeat_ + heartbeat_interval() - now;
    for (const auto& [id, r] : running_) {
      if (r.kill_at) t = std::min(t, *r.kill_at - now);
      if (!r.pid_recorded && !r.orphan && r.started)
        t = std::min(t, *r.started + pid_record_after_s - now);
      if (auto limit = runner_time_limit(r)) t = std::min(t, *limit - now);
    }
    return std::max(0.0, t);
  }

 private:
  struct running_task {
    task_spec spec;
    pid_t pid = -1;
    double claimed = 0;
    std::optional<double> started;
    std::vector<std::string> gpus;
    std::string attempt;
    std::optional<std::string> stop_reason;  // "cancelled" or "runner_terminated"
    std::optional<double> kill_at;
    bool orphan = false;          // left by a crashed runner: not our child, watched by pid
    std::uint64_t pid_start = 0;  // start time of pid (/proc/PID/stat): pids are reused
    std::string boot_id;          // the boot pid_start counts from; empty: unknown (protocol 1)
    bool pid_recorded = false;    // its claimed file has its pid (record_pids)
  };
  static constexpr double pid_record_after_s = 0.1;

  // One runner per node per lease, for the runner's whole life: a second one (four `lease
  // local start` at once) refuses to start instead of consuming the first one's control
  // files. Runners of one node run on one host, where flock is coherent; a filesystem that
  // refuses flock leaves only the heartbeat check the CLI makes.
  void take_node_lock() {
    fs::path p = lease_.runner_lock(cfg_.node);
    if (cfg_.node_lock_fd >= 0) {
      // Inherited: it must be this node's lock file; re-locking the same open file description
      // is a no-op when the caller holds the lock, and fails (below) when someone else does.
      node_lock_.reset(::fcntl(cfg_.node_lock_fd, F_DUPFD_CLOEXEC, 0));
      if (!node_lock_) throw io_error("cannot use the inherited runner lock", p.string(), errno);
      struct stat held, named;
      if (::fstat(node_lock_.get(), &held) != 0 || ::lstat(p.c_str(), &named) != 0 ||
          held.st_dev != named.st_dev || held.st_ino != named.st_ino)
        throw error("the runner lock handed to this runner is not " + p.string());
    } else {
      node_lock_.reset(::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
      if (!node_lock_) throw io_error("cannot open runner lock", p.string(), errno);
    }
    while (::flock(node_lock_.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK)
        throw error(fmt::format("another runner already serves node {} of lease {} (it holds {})",
                                cfg_.node, cfg_.lease_id, p.string()));
      if (file_lock::unsupported(errno)) {
        log("this filesystem refuses flock: cannot make sure no other runner serves this node");
        node_lock_.reset();
        return;
      }
      throw io_error("cannot lock", p.string(), errno);
    }
  }

  // A runner killed between writing a file under its temp name and renaming it (a group
  // commit's results after their flush, a claimed file being rewritten) leaves the temp file:
  // readers skip it and the task is still claimed, so nothing needs it. Removed at start, once
  // this runner holds the node's lock (no other runner of the node writes here then; without
  // the lock nothing is removed): only the names a runner writes, and only while their writer
  // is gone (this process has written nothing yet, so its own pid counts as gone: a pid reused
  // from the last runner); a live writer's temp file (another tool's) is left alone.
  void remove_stale_temps() {
    if (!node_lock_) return;
    const std::pair<fs::path, const char*> dirs[] = {{lease_.done(cfg_.node), ".result.json"},
                                                     {lease_.claimed(cfg_.node), ".json"}};
    std::size_t removed = 0;
    for (const auto& [dir, suffix] : dirs) {
      for (const std::string& name : detail::list_dir(dir.string(), true).names) {
        auto pid = detail::runner_temp_writer(name, suffix);
        if (!pid || (*pid != ::getpid() && (::kill(*pid, 0) == 0 || errno != ESRCH))) continue;
        if (::unlink((dir / name).c_str()) == 0) ++removed;
      }
    }
    if (removed > 0)
      log(fmt::format("removed {} temporary file(s) a killed runner of this node left", removed));
  }

  // Gives a claimed task back to its lane (rename claimed -> inbox): it waits for the next
  // claim instead of running without a record. Left in claimed/ when even that fails; the
  // adoption scan then retries it.
  void give_back(const task_spec& spec) {
    fs::path from = lease_.claimed_task(cfg_.node, spec.id);
    std::string lane = spec.node ? *spec.node : std::string(any_lane);
    if (::rename(from.c_str(), lease_.inbox_task(lane, spec.id).c_str()) != 0)
      log(fmt::format("{}: cannot give it back either ({}); left in claimed/", spec.id,
                      std::strerror(errno)));
    else
      remark_priority(spec);
  }

  // A task back in its lane gets its priority marker again (the claim removed it).
  void remark_priority(const task_spec& spec) {
    try {
      mark_priority(lease_, spec);
    } catch (const error& e) {
      log(spec.id + ": " + e.what() + "; it runs in seq order");
    }
  }

  // Whether pid is still the process that was recorded (pid + start time + boot id), for a
  // task left by an earlier runner: a claim written in another boot names a process that is
  // gone, whatever now holds its pid. Without a recorded start time (protocol 1 claims): pid
  // alone, as nothing else was written.
  bool same_process(pid_t pid, std::uint64_t start, const std::string& boot = std::string()) {
    if (!boot.empty() && !detail::boot_id().empty() && boot != detail::boot_id()) return false;
    if (!ops_.alive(pid)) return false;
    if (start == 0) return true;
    auto now_start = detail::process_start_ticks(pid);
    return now_start && *now_start == start;
  }
  bool same_process(const running_task& t) { return same_process(t.pid, t.pid_start, t.boot_id); }

  // The process of an attempt a crashed runner was starting, found by the LEASEQ_ATTEMPT
  // it put in the task's environment (same node, same user: /proc/PID/environ is readable).
  // Every process of the attempt has it (the supervisor, the task, the task's children): the
  // one leading the process group is the one that was spawned, whose group a cancel signals
  // and whose end is the task's end.
  static std::optional<pid_t> find_attempt_process(const std::string& attempt) {
    std::string needle = "LEASEQ_ATTEMPT=" + attempt;
    needle.push_back('\0');
    std::optional<pid_t> any;
    for (const std::string& name : detail::list_dir("/proc").names) {
      if (name.empty() || name[0] < '1' || name[0] > '9') continue;
      std::string env = detail::read_proc_file(("/proc/" + name + "/environ").c_str(), 1 << 20);
      if (env.find(needle) == std::string::npos) continue;
      auto pid = detail::checked_pid(std::atoll(name.c_str()));
      if (!pid) continue;
      if (::getpgid(*pid) == *pid) return pid;
      if (!any) any = pid;
    }
    return any;
  }

  struct unwritten_result {
    task_result result;
    bool in_flight = false;  // handed to the background writer, outcome not collected yet
    double retry_at = 0;     // after a failed write: not before then (a full disk backs off)
    double backoff_s = 0;
  };

  // A task killed by a signal the runner did not send, waiting a moment before its result is
  // written: Slurm's scancel or time limit signals the runner and its tasks at about the same
  // time, and if the runner's own SIGTERM arrives within the window the task ends
  // runner_terminated, not as an unexplained death.
  struct held_death {
    running_task task;
    std::optional<int> exit_code, signal;
    double until = 0;
  };
  static constexpr double external_signal_window_s = 2.0;

  void log(const std::string& msg) {
    if (log_) log_(msg);
  }

  std::string new_attempt() {
    return fmt::format("{}-{:x}-{:012x}", cfg_.node, ::getpid(), rng_() & 0xffffffffffffULL);
  }

  // ---- recovery after a crash; claimed files nobody runs ----

  // Takes over the task files in claimed/<node> that this runner does not know: at start (left
  // by a previous runner of the node) and every few seconds (a claim whose rename reported an
  // error although it happened). A file without a pid never started: it is run. Outside
  // startup, such a file must have sat there for a while (its ctime, which the claim rename
  // sets), so a claim in progress by another runner of the node is left alone.
  bool adopt_claimed(double now, bool startup) {
    if (!tree_ok(dir_claimed)) return false;
    bool any = false;
    fs::path dir = lease_.claimed(cfg_.node);
    for (const std::string& name : detail::list_dir(dir.string()).names) {
      std::int64_t seq;
      if (!detail::task_file_name(name, seq)) continue;
      std::string id = name.substr(0, name.size() - 5);
      if (known(id)) continue;
      fs::path claimed = dir / name;
      if (fs::exists(lease_.result(cfg_.node, id))) {
        // The result was written, the unlink was not: finish the move.
        ::unlink(claimed.c_str());
        continue;
      }
      struct stat st;
      if (!startup &&
          (::lstat(claimed.c_str(), &st) != 0 || static_cast<double>(st.st_ctim.tv_sec) > now - 5))
        continue;
      json_outcome r = read_json_tolerant(claimed);
      if (!owned_by_me(claimed)) {
        if (logged_.insert("owner:" + name).second)
          log("claimed/" + name + " is not owned by this runner's user: never run");
        continue;
      }
      task_spec spec;
      bool parsed = false;
      if (r.ok()) {
        try {
          from_json(*r.value, spec);
          parsed = spec.id == id;
        } catch (const error&) {
        }
      }
      if (!parsed) {
        if (logged_.insert("claimed:" + name).second)
          log("claimed/" + name + " is unreadable (" + (r.ok() ? "invalid task" : r.reason) +
              "); left in place");
        continue;
      }
      any = true;
      std::string starting;
      if (spec.extra.is_object())
        if (auto it = spec.extra.find("starting"); it != spec.extra.end() && it->is_string())
          starting = it->get<std::string>();
      std::optional<pid_t> recorded =
          spec.pid ? detail::checked_pid(*spec.pid) : std::optional<pid_t>{};
      std::uint64_t recorded_start = 0;
      std::string recorded_boot;
      if (spec.extra.is_object()) {
        if (auto it = spec.extra.find("pid_start");
            it != spec.extra.end() && it->is_number_unsigned())
          recorded_start = it->get<std::uint64_t>();
        if (auto it = spec.extra.find("boot_id"); it != spec.extra.end() && it->is_string())
          recorded_boot = it->get<std::string>();
      }
      if (!spec.pid && !starting.empty()) {
        // A previous runner was starting it and died before recording the pid: its process,
        // if any, carries the attempt id in its environment.
        recorded = find_attempt_process(starting);
        if (recorded) {
          recorded_start = detail::process_start_ticks(*recorded).value_or(0);
          recorded_boot = detail::boot_id();
        } else {
          running_task t;
          t.spec = spec;
          t.claimed = spec.claimed.value_or(now);
          t.attempt = starting;
          t.started = recorded_started(spec);
          finish_orphan(t, now,
                        ": a previous runner was starting it and died; no process of that "
                        "attempt runs");
          continue;
        }
      } else if (!spec.pid) {
        log(id + (startup ? ": claimed by a previous runner but never started: running it"
                          : ": found in claimed/ but not running: running it"));
        spec.extra.erase("starting");
        adopted_.push_back(std::move(spec));
        continue;
      }
      running_task t;
      t.spec = spec;
      t.claimed = spec.claimed.value_or(now);
      t.orphan = true;
      t.pid = recorded.value_or(-1);
      t.pid_start = recorded_start;
      t.boot_id = recorded_boot;
      t.started = recorded_started(spec);
      if (!starting.empty()) t.attempt = starting;
      if (t.pid > 1 && same_process(t)) {
        log(fmt::format("{}: left running by a previous runner (pid {}); watching it", id, t.pid));
        running_.emplace(id, std::move(t));
      } else {
        finish_orphan(t, now, ": its runner died and its process is gone");
      }
    }
    return any;
  }

  // When a previous runner started the task, as it recorded in the claimed file after the
  // spawn; nullopt when it never recorded one (it died before, or wrote protocol 2 claims).
  static std::optional<double> recorded_started(const task_spec& spec) {
    if (!spec.extra.is_object()) return std::nullopt;
    auto it = spec.extra.find("started");
    if (it == spec.extra.end() || !it->is_number()) return std::nullopt;
    double v = it->get<double>();
    if (!std::isfinite(v) || v <= 0) return std::nullopt;
    return v;
  }

  // Whether this runner already runs, watches, queued or finished the task.
  bool known(const std::string& id) const {
    if (running_.count(id)) return true;
    for (const auto& u : unwritten_)
      if (u.result.task.id == id) return true;
    for (const auto& a : adopted_)
      if (a.id == id) return true;
    return false;
  }

  // ---- the lease tree's directories ----

  enum tree_dir {
    dir_inbox_own,
    dir_inbox_any,
    dir_claimed,
    dir_done,
    dir_logs,
    dir_hb,
    dir_control,
    dir_count
  };

  // Re-checks that the directories this runner writes into are real directories of the tree.
  void check_tree() {
    const fs::path dirs[dir_count] = {
        lease_.inbox(cfg_.node),   lease_.inbox(std::string(any_lane)),
        lease_.claimed(cfg_.node), lease_.done(cfg_.node),
        lease_.logs(cfg_.node),    lease_.hb_dir(),
        lease_.control(cfg_.node)};
    static const char* const what[dir_count] = {"not claiming from this lane",
                                                "not claiming from this lane",
                                                "not claiming, not writing results",
                                                "results kept in memory and retried",
                                                "not claiming",
                                                "not writing the heartbeat",
                                                "not reading control commands"};
    tree_check_.forget();
    for (int i = 0; i < dir_count; ++i) {
      // A directory others may write (or that is not ours) is not used either: whatever they
      // put there (a task, a pause, a link in place of a lane) is not ours to obey.
      bool link = false;
      std::optional<std::string> why = tree_check_.why(dirs[i], link);
      if (why && *why != unsafe_[i])
        log((link ? "refusing to write through " : "refusing to use ") + *why + ": " + what[i]);
      if (!why && !unsafe_[i].empty()) {
        log(dirs[i].string() + " is safe again: resuming");
        try {
          ensure_dir(dirs[i]);  // the symlink may simply have been removed
        } catch (const error& e) {
          log(e.what());
        }
      }
      unsafe_[i] = why.value_or("");
    }
  }
  bool tree_ok(tree_dir d) const { return unsafe_[d].empty(); }

  fs::path exit_status_path(const std::string& id) const {
    return lease_.logs(cfg_.node) / (id + ".exit");
  }

  // Ends a task whose process a previous runner started and nobody can reap: with what its
  // supervisor recorded for this attempt, CANCELLED when this runner cancelled it, and
  // runner_lost only when nothing tells how it ended (it died with its runner, or ran without
  // a supervisor).
  void finish_orphan(const running_task& t, double now, const std::string& why) {
    std::optional<exit_status> s = read_exit_status(exit_status_path(t.spec.id), t.attempt);
    double ended = s && s->finished && *s->finished > 0 && *s->finished <= now ? *s->finished : now;
    const std::string& id = t.spec.id;
    if (t.stop_reason == std::string("cancelled")) {
      log(id + why + ": cancelled");
      finish(t, ended, s ? s->exit_code : std::nullopt, s ? s->signal : std::nullopt,
             task_state::cancelled, "cancelled");
    } else if (s && s->time_limit) {
      log(id + why + "; its supervisor stopped it at its time limit");
      finish(t, ended, s->exit_code, s->signal, task_state::failed, "time_limit");
    } else if (s && s->spawn_failed) {
      log(id + why + "; its supervisor could not start it: " + *s->spawn_failed);
      finish(t, now, std::nullopt, std::nullopt, task_state::failed,
             "spawn_failed: " + *s->spawn_failed);
    } else if (s) {
      log(fmt::format("{}{}; its supervisor recorded {}", id, why,
                      s->signal ? fmt::format("signal {}", *s->signal)
                                : fmt::format("exit {}", s->exit_code.value_or(-1))));
      finish(t, ended, s->exit_code, s->signal,
             s->exit_code == 0 ? task_state::finished : task_state::failed, std::nullopt);
    } else {
      log(id + why + ", with no exit status recorded: runner_lost");
      finish(t, now, std::nullopt, std::nullopt, task_state::failed, "runner_lost");
    }
  }

  bool check_orphans(double now) {
    if (now - last_orphan_check_ < 0.5) return false;
    last_orphan_check_ = now;
    bool any = false;
    for (auto it = running_.begin(); it != running_.end();) {
      if (it->second.orphan && !same_process(it->second)) {
        running_task t = std::move(it->second);
        it = running_.erase(it);
        const std::string& id = t.spec.id;
        if (fs::exists(lease_.result(cfg_.node, id)) ||
            !fs::exists(lease_.claimed_task(cfg_.node, id))) {
          // Another runner of this node finished it after all: its result stands.
          log(id + ": ended with a result from another runner; not marking it lost");
          continue;
        }
        finish_orphan(t, now, ": process of a previous runner ended");
        any = true;
      } else {
        ++it;
      }
    }
    return any;
  }

  // ---- claiming ----

  int gpus_total() const { return static_cast<int>(cfg_.gpu_ids.size()); }

  // A claimed task asking for more GPUs than this node has: FAILED at once, never started.
  void fail_too_many_gpus(const task_spec& spec, double now) {
    running_task t;
    t.spec = spec;
    t.claimed = now;
    t.attempt = new_attempt();
    finish(t, now, std::nullopt, std::nullopt, task_state::failed,
           fmt::format("spawn_failed: needs {} GPUs, node {} has {}", spec.gpus, cfg_.node,
                       gpus_total()));
  }

  bool claim(double now) {
    bool any = false;
    if (!tree_ok(dir_claimed) || !tree_ok(dir_logs) || !tree_ok(dir_done)) return false;
    while (static_cast<int>(running_.size()) < cfg_.slots && !adopted_.empty()) {
      task_spec& spec = adopted_.front();
      // Claimed but never started (a crash right after the claim): its dependencies decide
      // as they would have. One still waiting goes back to its lane.
      std::optional<std::pair<std::string, task_state>> failed_dep;
      bool waits = !spec.after.empty() && !ready(spec, now, failed_dep) && !failed_dep;
      if (failed_dep) {
        cancel_for_dependency(spec, failed_dep->first, failed_dep->second, now);
      } else if (waits) {
        give_back(spec);
      } else if (spec.gpus > gpus_total()) {
        fail_too_many_gpus(spec, now);
      } else if (spec.gpus > static_cast<int>(free_gpus_.size())) {
        return any;
      } else {
        start_task(std::move(spec), now);
      }
      adopted_.pop_front();
      any = true;
    }
    while (static_cast<int>(running_.size()) < cfg_.slots) {
      auto next = next_candidate(now);
      if (!next) break;
      any = true;
      start_task(std::move(*next), now);
    }
    return any;
  }

  // The next task to start, or nothing. Within each lane (the own lane first, then _any):
  // marked tasks of priority above 0, highest first; then the lane in seq order, passing over
  // tasks below priority 0; then those, highest first, when nothing else can run.
  std::optional<task_spec> next_candidate(double now) {
    for (int pass = 0; pass < 2; ++pass) {
      bool own = pass == 0;
      std::string lane = own ? cfg_.node : std::string(any_lane);
      if (!tree_ok(own ? dir_inbox_own : dir_inbox_any)) {
        (own ? lane_cache_ : any_cache_).clear();
        continue;
      }
      look l = next_marked(lane, own, now);
      if (l.what == look::passed) l = next_in_seq_order(lane, own, now);
      if (l.what == look::passed) l = next_low_priority(lane, own, now);
      if (l.what == look::claimed) return std::move(l.spec);
      if (l.what == look::blocked) return std::nullopt;
    }
    return std::nullopt;
  }

  // What became of the pending tasks looked at: none to claim here (passed), one claimed, or
  // the lane must wait (blocked: the task at its head needs GPUs that are busy).
  struct look {
    enum { passed, blocked, claimed } what = passed;
    task_spec spec;
  };

  // Lists a lane again when its cached listing is used up (a lane listing is reused while
  // it lasts: new tasks have higher seqs, so order holds). A lane found empty is not listed
  // again in the same pass (one listing per pass, not one per free slot).
  look next_in_seq_order(const std::string& lane, bool own, double now) {
    auto& cache = own ? lane_cache_ : any_cache_;
    double& listed_empty = own ? lane_listed_empty_ : any_listed_empty_;
    if (cache.empty()) {
      if (listed_empty == now) return {};
      cache = detail::list_lane(lease_.inbox(lane));
      if (cache.empty()) listed_empty = now;
      forget_missing(waiting_, lane, cache);
      forget_missing(low_priority_, lane, cache);
    }
    while (!cache.empty()) {
      look l = consider(lane, cache.front(), own, now, true);
      if (l.what == look::blocked) return l;
      cache.pop_front();
      if (l.what == look::claimed) return l;
    }
    return {};
  }

  // The lane's markers (priority above 0), listed again when the directory changed or a
  // second has passed (a marked task may have been waiting for its dependencies).
  look next_marked(const std::string& lane, bool own, double now) {
    marked_lane& m = own ? marked_own_ : marked_any_;
    struct stat st;
    fs::path dir = lease_.priority(lane);
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      m = {};
      return {};
    }
    bool changed = st.st_mtim.tv_sec != m.mtime.tv_sec || st.st_mtim.tv_nsec != m.mtime.tv_nsec ||
                   st.st_ino != m.ino;
    if (changed || now - m.listed >= dependency_recheck_s) {
      m.markers = list_priority_markers(lease_, lane);
      m.next = 0;
      m.listed = now;
      m.mtime = st.st_mtim;
      m.ino = st.st_ino;
    }
    while (m.next < m.markers.size()) {
      const priority_marker& pm = m.markers[m.next];
      look l = consider(lane, pm.id + ".json", own, now, false);
      if (l.what == look::blocked) return l;
      ++m.next;
      if (l.what == look::claimed) return l;
      forget_stale_marker(lane, pm, now);
    }
    return {};
  }

  // A marker whose task is no longer in its lane (claimed by a runner that died before removing
  // it) is removed once it is old enough that lag cannot explain the absence.
  void forget_stale_marker(const std::string& lane, const priority_marker& pm, double now) {
    struct stat st;
    if (::lstat(lease_.inbox_task(lane, pm.id).c_str(), &st) == 0 || errno != ENOENT) return;
    fs::path marker = lease_.priority(lane) / priority_marker_name(pm.id, pm.priority);
    if (::lstat(marker.c_str(), &st) != 0 || static_cast<double>(st.st_mtim.tv_sec) > now - 60)
      return;
    task_spec t;
    t.id = pm.id;
    if (lane != any_lane) t.node = lane;
    t.priority = pm.priority;
    unmark_priority(lease_, t);
  }

  // Tasks below priority 0, highest first, once nothing else of the lane can be claimed.
  look next_low_priority(const std::string& lane, bool own, double now) {
    std::string prefix = lane + "/";
    std::vector<std::pair<std::string, const task_spec*>> order;
    for (auto it = low_priority_.lower_bound(prefix);
         it != low_priority_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
      order.emplace_back(it->first.substr(prefix.size()), &it->second);
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
      return a.second->priority != b.second->priority ? a.second->priority > b.second->priority
                                                      : a.second->seq < b.second->seq;
    });
    for (const auto& entry : order) {
      std::string name = entry.first;
      look l = consider(lane, name, own, now, false);
      if (l.what != look::passed) return l;
    }
    return {};
  }

  // Looks at one pending task file of a lane and claims it when it can run here now.
  // `defer_low`: a task below priority 0 is set aside (next_low_priority takes it later).
  look consider(const std::string& lane, const std::string& name, bool own, double now,
                bool defer_low) {
    fs::path from = lease_.inbox(lane) / name;
    const std::string slot = lane + "/" + name;
    task_spec spec;
    bool remembered = false;
    if (auto h = waiting_.empty() ? waiting_.end() : waiting_.find(slot); h != waiting_.end()) {
      spec = h->second;  // read once: only a retry puts a file of that name there again
      remembered = true;
    } else if (auto lp = low_priority_.empty() ? low_priority_.end() : low_priority_.find(slot);
               lp != low_priority_.end()) {
      if (defer_low) return {};
      spec = lp->second;
      remembered = true;
    } else {
      json_outcome peek = read_json_tolerant(from);
      if (!peek.ok()) {
        if (peek.err != ENOENT) log_once(from, peek.reason);
        return {};
      }
      if (!owned_by_me(from)) {  // another user's task never runs as this runner's user
        log_once(from, "not owned by this runner's user: never run (left pending)");
        return {};
      }
      try {
        from_json(*peek.value, spec);
        if (spec.id + ".json" != name) throw format_error("id does not match the file name");
      } catch (const error& e) {
        log_once(from, e.what());
        return {};
      }
    }
    // A task that waits (for its dependencies, or its retry delay) is passed over, never
    // blocking the tasks behind it; one whose dependency failed is claimed and cancelled.
    std::optional<std::pair<std::string, task_state>> failed_dep;
    if (!ready(spec, now, failed_dep)) {
      low_priority_.erase(slot);
      waiting_.insert_or_assign(slot, std::move(spec));
      return {};
    }
    waiting_.erase(slot);
    if (spec.priority < 0 && defer_low) {
      low_priority_.insert_or_assign(slot, std::move(spec));
      return {};
    }
    low_priority_.erase(slot);
    fs::path to = lease_.claimed(cfg_.node) / name;
    if (failed_dep) {
      if (!take(from, to, spec)) return {};
      spec.claimed = now;
      cancel_for_dependency(spec, failed_dep->first, failed_dep->second, now);
      return {};
    }
    bool impossible = spec.gpus > gpus_total();
    if (impossible && !own) {
      // Another node of the lease may have enough GPUs: leave it to them.
      log_once(from, fmt::format("needs {} GPUs, this node has {}", spec.gpus, gpus_total()));
      return {};
    }
    if (!impossible && spec.gpus > static_cast<int>(free_gpus_.size())) {
      // Remembered, so that the lane's head is not read again on every pass.
      if (spec.priority < 0) low_priority_.insert_or_assign(slot, spec);
      return {look::blocked, {}};
    }
    if (!take(from, to, spec)) return {};
    // A task with retries may have run and come back (another runner, a later attempt)
    // since it was read: the claimed file is the truth.
    if ((remembered || spec.retries > 0) && !reread_claimed(to, spec, now)) return {};
    spec.claimed = now;
    if (impossible) {
      fail_too_many_gpus(spec, now);
      return {};
    }
    return {look::claimed, std::move(spec)};
  }

  // The claim: rename inbox -> claimed. True when this runner now holds the task file; its
  // priority marker, if any, goes then.
  bool take(const fs::path& from, const fs::path& to, const task_spec& spec) {
    if (!take_file(from, to, spec.id)) return false;
    unmark_priority(lease_, spec);
    return true;
  }

  bool take_file(const fs::path& from, const fs::path& to, const std::string& id) {
    int rc = ::rename(from.c_str(), to.c_str());
    int e = errno;
    if (rc == 0 && fault_hit(fault_point::claim_rename_lies)) {
      rc = -1;
      e = EIO;
    }
    if (rc == 0) return true;
    // A rename can fail to report that it happened (a lost NFS reply, retried, says ENOENT):
    // the destination tells. Otherwise ENOENT is a race another runner won.
    struct stat st;
    bool happened = ::lstat(to.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
                    ::lstat(from.c_str(), &st) != 0 && errno == ENOENT;
    if (!happened) {
      if (e != ENOENT) log(fmt::format("cannot claim {}: {}", from.string(), std::strerror(e)));
      return false;
    }
    log(fmt::format("{}: the claim rename reported \"{}\" but happened: running it", id,
                    std::strerror(e)));
    return true;
  }

  // ---- dependencies and retry delays (protocol version 3) ----

  // Reads a task just claimed again. False when it must not run now: given back to its lane
  // (a newer attempt's retry delay has not passed) or left for the adoption scan (unreadable).
  bool reread_claimed(const fs::path& claimed, task_spec& spec, double now) {
    json_outcome r = read_json_tolerant(claimed);
    try {
      if (!r.ok()) throw format_error(r.reason);
      task_spec fresh;
      from_json(*r.value, fresh);
      spec = std::move(fresh);
    } catch (const error& e) {
      log(spec.id + ": claimed, but its file does not read (" + e.what() + "); left in claimed/");
      return false;
    }
    if (!spec.not_before || *spec.not_before <= now) return true;
    give_back(spec);
    return false;
  }

  // Whether a pending task may be claimed now: its retry delay passed and every dependency
  // ended. `failed` names a dependency that ended other than FINISHED (the task is then
  // claimed only to be cancelled).
  bool ready(const task_spec& spec, double now,
             std::optional<std::pair<std::string, task_state>>& failed) {
    for (const std::string& dep : spec.after) {
      auto end = dependency_end(dep, now);
      if (!end) return false;
      if (*end != task_state::finished) {
        failed.emplace(dep, *end);
        return true;
      }
    }
    return !spec.not_before || *spec.not_before <= now;
  }

  // How a dependency ended (its result, on whichever node it ran), or nothing while it has no
  // result. An ended one is remembered for good (a result is final: a task with retries left
  // writes none); one that has not ended is looked at again at most every second, however many
  // tasks wait for it.
  std::optional<task_state> dependency_end(const std::string& id, double now) {
    dependency& d = dependencies_[id];
    if (d.ended || now - d.checked < dependency_recheck_s) return d.ended;
    d.checked = now;
    if (now - done_nodes_listed_ >= dependency_recheck_s) {
      done_nodes_listed_ = now;
      done_nodes_ = detail::list_dir(lease_.done_root().string()).names;
    }
    for (const std::string& node : done_nodes_) {
      if (!is_valid_node(node)) continue;
      json_outcome r = read_json_tolerant(lease_.result(node, id));
      if (!r.ok()) continue;
      try {
        task_result res;
        from_json(*r.value, res);
        if (res.task.id == id) return d.ended = res.state;
      } catch (const error&) {
      }
    }
    return std::nullopt;
  }

  // A task whose dependency ended FAILED, CANCELLED (or LOST): claimed, never run, CANCELLED.
  void cancel_for_dependency(const task_spec& spec, const std::string& dep, task_state end,
                             double now) {
    running_task t;
    t.spec = spec;
    t.claimed = now;
    log(fmt::format("{}: dependency {} ended {}: cancelled", spec.id, dep, to_string(end)));
    finish(t, now, std::nullopt, std::nullopt, task_state::cancelled,
           fmt::format("dependency_failed: {} {}", dep, to_string(end)));
  }

  // Drops the waiting tasks of a lane that its new listing no longer shows (claimed elsewhere,
  // cancelled).
  // Drops the remembered tasks of a lane that its new listing no longer holds.
  static void forget_missing(std::map<std::string, task_spec>& remembered, const std::string& lane,
                             const std::deque<std::string>& listing) {
    std::string prefix = lane + "/";
    auto it = remembered.lower_bound(prefix);
    if (it == remembered.end() || it->first.compare(0, prefix.size(), prefix) != 0) return;
    std::set<std::string> present(listing.begin(), listing.end());
    while (it != remembered.end() && it->first.compare(0, prefix.size(), prefix) == 0)
      it = present.count(it->first.substr(prefix.size())) ? std::next(it) : remembered.erase(it);
  }

  void log_once(const fs::path& p, const std::string& reason) {
    if (logged_.insert(p.string()).second) log(p.string() + ": " + reason + "; skipped");
  }

  // ---- running ----

  void start_task(task_spec spec, double now) {
    running_task t;
    t.spec = std::move(spec);
    t.claimed = now;
    t.attempt = new_attempt();
    for (int i = 0; i < t.spec.gpus; ++i) {
      t.gpus.push_back(*free_gpus_.begin());
      free_gpus_.erase(free_gpus_.begin());
    }
    std::vector<std::pair<std::string, std::string>> env(t.spec.env.begin(), t.spec.env.end());
    env.emplace_back("LEASEQ_TASK_ID", t.spec.id);
    env.emplace_back("LEASEQ_LEASE", cfg_.lease_id);
    env.emplace_back("LEASEQ_NODE", cfg_.node);
    env.emplace_back("LEASEQ_ATTEMPT", t.attempt);
    for (auto& kv : array_environment(t.spec)) env.push_back(std::move(kv));
    if (t.spec.gpus > 0 || gpus_total() > 0) {
      std::string list;
      for (const auto& g : t.gpus) list += (list.empty() ? "" : ",") + g;
      env.emplace_back("CUDA_VISIBLE_DEVICES", list);  // empty: a CPU task sees no GPU
    }
    // Before anything runs, the claimed file says an attempt is starting: a runner that finds
    // it after a crash looks for that attempt's process instead of starting the task again.
    // A claim that cannot be recorded (ENOSPC, EIO) is given back to its lane, never run.
    t.spec.claimed = now;
    t.spec.extra = t.spec.extra.is_object() ? t.spec.extra : json::object();
    t.spec.extra["starting"] = t.attempt;
    try {
      if (fault_hit(fault_point::claim_record_enospc))
        throw io_error("cannot write", "claimed file", ENOSPC);
      write_file_atomic_nosync(lease_.claimed_task(cfg_.node, t.spec.id),
                               json_file_text(json(t.spec)));
    } catch (const error& e) {
      log(t.spec.id + ": cannot record claim (" + e.what() + "): giving it back to its lane");
      release_gpus(t);
      give_back(t.spec);
      return;
    }
    spawn_request req;
    req.argv = t.spec.argv;
    req.cwd = t.spec.cwd;
    req.env = merged_environment(env);
    req.stdout_path = lease_.stdout_log(cfg_.node, t.spec.id).string();
    req.stderr_path = lease_.stderr_log(cfg_.node, t.spec.id).string();
    req.anchor = lease_.anchor().string();
    req.supervisor = cfg_.supervisor;
    req.status_path = exit_status_path(t.spec.id).string();
    req.attempt = t.attempt;
    req.time_limit_s = t.spec.time_limit;  // the supervisor enforces it, runner or no runner
    req.grace_s = cfg_.grace_s;
    spawn_outcome s = ops_.spawn(req);
    if (s.pid <= 0) {
      log(t.spec.id + ": spawn failed: " + s.error);
      release_gpus(t);
      finish(t, now, std::nullopt, std::nullopt, task_state::failed, "spawn_failed: " + s.error);
      return;
    }
    t.pid = s.pid;
    t.started = now;
    t.spec.pid = s.pid;
    t.pid_start = s.start_ticks ? s.start_ticks : detail::process_start_ticks(s.pid).value_or(0);
    t.spec.extra["pid_start"] = t.pid_start;
    t.spec.extra["boot_id"] = detail::boot_id();
    t.spec.extra["started"] = now;  // a runner adopting the task after a crash reports it
    by_pid_[s.pid] = t.spec.id;
    running_.emplace(t.spec.id, std::move(t));
    hb_dirty_ = true;
  }

  // A task's pid (with its start time and boot) goes into its claimed file once the task has
  // run pid_record_after_s: most short tasks end sooner and cost one claimed-file rewrite, not
  // two. Until then its `starting` attempt is what a runner after a crash has, and it finds the
  // process by the attempt in its environment (adopt_claimed). Not fsync'd: the claim is
  // durable already; this only adds the process's identity. One that cannot be written kills
  // the task: a runner after a crash must never guess whether it still runs.
  void record_pids(double now) {
    for (auto& [id, t] : running_) {
      // (1 ms early counts: the loop wakes for it at about that time, not after)
      if (t.orphan || t.pid_recorded || !t.started || now + 0.001 < *t.started + pid_record_after_s)
        continue;
      t.pid_recorded = true;
      if (t.stop_reason) continue;  // being stopped already
      try {
        if (fault_hit(fault_point::pid_record_enospc))
          throw io_error("cannot write", "claimed file", ENOSPC);
        write_file_atomic_nosync(lease_.claimed_task(cfg_.node, id), json_file_text(json(t.spec)));
      } catch (const error& e) {
        log(id + ": cannot record its pid (" + e.what() + "): killing it");
        ops_.signal_group(t.pid, SIGKILL);
        t.stop_reason = "claim_unrecorded";
      }
    }
  }

  void release_gpus(running_task& t) {
    for (auto& g : t.gpus) free_gpus_.insert(g);
    t.gpus.clear();
  }

  bool reap(double now) {
    bool any = false;
    while (auto e = ops_.reap()) {
      auto p = by_pid_.find(e->pid);
      if (p == by_pid_.end()) continue;
      auto it = running_.find(p->second);
      by_pid_.erase(p);
      if (it == running_.end()) continue;
      running_task t = std::move(it->second);
      running_.erase(it);
      release_gpus(t);
      task_state st =
          e->exit_code && *e->exit_code == 0 ? task_state::finished : task_state::failed;
      std::optional<std::string> reason;
      if (t.stop_reason == std::string("cancelled")) {
        st = task_state::cancelled;
        reason = "cancelled";
      } else if (stopped_at_time_limit(t)) {
        st = task_state::failed;
        reason = "time_limit";
      } else if (t.stop_reason) {
        st = task_state::failed;
        reason = t.stop_reason;
      } else if (stop_requested_ && e->signal) {
        // Slurm signals every process of the job step at scancel or the time limit, so a task
        // can die of that SIGTERM before the runner stops it: still the runner's termination.
        st = task_state::failed;
        reason = "runner_terminated";
      } else if (e->signal) {
        held_.push_back({std::move(t), e->exit_code, e->signal, now + external_signal_window_s});
        any = true;
        continue;
      } else if (e->exit_code == 127 && !cfg_.supervisor.empty()) {
        // The supervisor started, the program did not (missing, not executable): the same
        // spawn_failed result as when the runner execs the program itself.
        if (auto s = read_exit_status(exit_status_path(t.spec.id), t.attempt);
            s && s->spawn_failed) {
          log(t.spec.id + ": spawn failed: " + *s->spawn_failed);
          finish(t, now, std::nullopt, std::nullopt, task_state::failed,
                 "spawn_failed: " + *s->spawn_failed);
          any = true;
          continue;
        }
      }
      finish(t, now, e->exit_code, e->signal, st, reason);
      any = true;
    }
    // Tasks whose supervisor died (found out while reaping): nobody will report their end; watched
    // by pid from now on.
    for (pid_t pid : ops_.take_lost()) {
      auto p = by_pid_.find(pid);
      if (p == by_pid_.end()) continue;
      auto it = running_.find(p->second);
      by_pid_.erase(p);
      if (it == running_.end()) continue;
      log(fmt::format("{}: its supervisor is gone; watching pid {} until it ends", it->first, pid));
      it->second.orphan = true;
      it->second.boot_id = detail::boot_id();
      any = true;
    }
    return any;
  }

  // Finishes held deaths: runner_terminated once a stop was requested, else as they were.
  bool release_held_deaths(double now) {
    bool any = false;
    for (auto it = held_.begin(); it != held_.end();) {
      if (stop_requested_ || now >= it->until) {
        std::optional<std::string> reason;
        if (stop_requested_) reason = "runner_terminated";
        finish(it->task, now, it->exit_code, it->signal, task_state::failed, reason);
        it = held_.erase(it);
        any = true;
      } else {
        ++it;
      }
    }
    return any;
  }

  // Builds the result and queues it; flush_results() writes it, then unlinks the claimed
  // file. On a write failure the result stays queued and the claimed file stays on disk.
  // A FAILED attempt of a task with retries left runs again instead (requeue()).
  void finish(const running_task& t, double now, std::optional<int> exit_code,
              std::optional<int> signal, task_state st, std::optional<std::string> reason) {
    task_attempt ended{t.attempt, cfg_.node, exit_code, signal, reason, t.started, now};
    if (st == task_state::failed && retried_after(reason) &&
        attempt_number(t.spec) < attempts_allowed(t.spec) && requeue(t, ended, now))
      return;
    task_result r;
    r.task = t.spec;
    r.task.claimed.reset();
    r.task.pid.reset();
    r.task.not_before.reset();
    if (!t.attempt.empty() && (t.spec.retries > 0 || !t.spec.attempts.empty()))
      r.task.attempts.push_back(std::move(ended));
    if (r.task.extra.is_object())  // claim bookkeeping, not part of the result
      for (const char* k : {"starting", "pid_start", "boot_id", "started"}) r.task.extra.erase(k);
    r.state = st;
    r.exit_code = exit_code;
    r.signal = signal;
    r.reason = std::move(reason);
    r.claimed = t.claimed;
    r.started = t.started;
    r.finished = now;
    r.stdout_path = lease_paths::relative_stdout(cfg_.node, t.spec.id);
    r.stderr_path = lease_paths::relative_stderr(cfg_.node, t.spec.id);
    if (!t.attempt.empty()) r.attempt = t.attempt;
    hb_dirty_ = true;
    unwritten_.push_back({std::move(r)});
  }

  // Which FAILED attempts are run again (protocol.md, "Retries"): a non-zero exit, a death by
  // a signal the runner did not send, a runner that died under it (runner_lost). Not a
  // cancel, a time limit, a program that cannot start, nor a runner told to stop.
  static bool retried_after(const std::optional<std::string>& reason) {
    return !reason || *reason == "runner_lost";
  }

  // Puts a task whose attempt failed back into its lane with that attempt recorded, to be
  // claimed again (by any runner of the lane) once its retry delay passed. The claimed file is
  // rewritten first, without the attempt's pid: if the rename below does not happen, a runner
  // adopting it runs it as never started. False (the caller writes the FAILED result) when
  // nothing could be written.
  bool requeue(const running_task& t, task_attempt ended, double now) {
    const std::string& id = t.spec.id;
    std::string lane = t.spec.node ? *t.spec.node : std::string(any_lane);
    if (!tree_ok(dir_claimed) || !tree_ok(lane == cfg_.node ? dir_inbox_own : dir_inbox_any))
      return false;
    task_spec next = t.spec;
    next.claimed.reset();
    next.pid.reset();
    if (next.extra.is_object())
      for (const char* k : {"starting", "pid_start", "boot_id", "started"}) next.extra.erase(k);
    next.attempts.push_back(std::move(ended));
    next.not_before.reset();
    if (next.retry_delay > 0) next.not_before = now + next.retry_delay;
    fs::path claimed = lease_.claimed_task(cfg_.node, id);
    try {
      write_file_atomic_nosync(claimed, json_file_text(json(next)));
    } catch (const error& e) {
      log(id + ": cannot record the failed attempt (" + e.what() + "): no retry");
      return false;
    }
    if (::rename(claimed.c_str(), lease_.inbox_task(lane, id).c_str()) != 0)
      log(
          fmt::format("{}: cannot put it back into lane {} ({}); left in claimed/, to be run "
                      "again from there",
                      id, lane, std::strerror(errno)));
    else
      remark_priority(next);
    log(fmt::format("{}: attempt {}/{} failed; runs again{}", id, attempt_number(t.spec),
                    attempts_allowed(t.spec),
                    next.retry_delay > 0 ? fmt::format(" in {:g} s", next.retry_delay) : ""));
    hb_dirty_ = true;
    return true;
  }

  // Why a result cannot be written now (the directory is unsafe, or an injected fault), or
  // nothing. Its claimed file goes only once the result is durable.
  std::optional<std::string> result_blocked(const task_result& r) {
    if (!tree_ok(dir_done)) return std::string("done/ is not a safe directory");
    fs::path path = lease_.result(cfg_.node, r.task.id);
    if (fault_hit(fault_point::result_write_enospc))
      return std::string(io_error("cannot write", path, ENOSPC).what());
    if (fault_hit(fault_point::result_write_eio))
      return std::string(io_error("cannot write", path, EIO).what());
    return std::nullopt;
  }

  void log_unwritten(const std::string& id, const std::string& why) {
    if (logged_.insert("result:" + id).second)
      log(id + ": cannot write result (kept, retried): " + why);
  }

  // With claimed/ not a real directory the claimed file stays; adopt_claimed() removes it
  // once the directory is back (its result exists).
  std::optional<fs::path> claimed_to_remove(const std::string& id) const {
    if (!tree_ok(dir_claimed)) return std::nullopt;
    return lease_.claimed_task(cfg_.node, id);
  }

  bool write_result(const task_result& r) {
    if (auto why = result_blocked(r)) {
      if (tree_ok(dir_done)) log_unwritten(r.task.id, *why);  // check_tree() logged the other
      return false;
    }
    try {
      write_json_atomic(lease_.result(cfg_.node, r.task.id), json(r), 0600, false);
    } catch (const error& e) {
      log_unwritten(r.task.id, e.what());
      return false;
    }
    index_result(r);
    if (auto claimed = claimed_to_remove(r.task.id)) ::unlink(claimed->c_str());
    return true;
  }

  // Protocol 5: a line in done/<node>/.results once the result is durable, so readers that
  // count need not parse it (results_index.hpp). A line that cannot be written costs only that.
  void index_result(const task_result& r) const {
    if (auto seq = task_seq(r.task.id))
      append_results_index(lease_.result(cfg_.node, r.task.id), *seq, r.state, r.exit_code);
  }

  bool flush_results() {
    if (writer_) return flush_results_in_background();
    if (unwritten_.empty()) return false;
    std::vector<unwritten_result> left;
    for (auto& u : unwritten_) {
      if (u.retry_at > pass_now_) {
        left.push_back(std::move(u));
      } else if (!write_result(u.result)) {
        back_off(u);
        left.push_back(std::move(u));
      }
    }
    return settle_unwritten(std::move(left));
  }

  // Collects what the writer finished, then hands it every result not yet in its hands.
  bool flush_results_in_background() {
    std::map<std::string, std::optional<std::string>> outcomes;
    for (auto& o : writer_->collect()) outcomes[o.id] = std::move(o.error);
    if (unwritten_.empty()) return false;
    std::vector<unwritten_result> left;
    for (auto& u : unwritten_) {
      if (u.in_flight) {
        auto o = outcomes.find(u.result.task.id);
        if (o == outcomes.end()) {
          left.push_back(std::move(u));
          continue;
        }
        if (!o->second) {  // written, claimed file gone
          index_result(u.result);
          continue;
        }
        // Failed: tried again on a later pass, after the loop's back-off, not at once.
        log_unwritten(u.result.task.id, *o->second);
        u.in_flight = false;
        back_off(u);
        left.push_back(std::move(u));
        continue;
      }
      if (u.retry_at > pass_now_) {
        left.push_back(std::move(u));
        continue;
      }
      if (auto why = result_blocked(u.result)) {
        if (tree_ok(dir_done)) log_unwritten(u.result.task.id, *why);
      } else {
        const std::string& id = u.result.task.id;
        writer_->submit({id, lease_.result(cfg_.node, id), json_file_text(json(u.result)),
                         claimed_to_remove(id)});
        u.in_flight = true;
      }
      left.push_back(std::move(u));
    }
    return settle_unwritten(std::move(left));
  }

  // A result that failed to write waits 0.1 s, doubling to 5 s, before the next try: a full
  // disk must not turn the runner into a loop creating temp files.
  void back_off(unwritten_result& u) const {
    u.backoff_s = std::min(5.0, u.backoff_s == 0 ? 0.1 : u.backoff_s * 2);
    u.retry_at = pass_now_ + u.backoff_s;
  }

  // Keeps the results still unwritten; true when some were written.
  bool settle_unwritten(std::vector<unwritten_result> left) {
    bool progress = left.size() < unwritten_.size();
    bool none_written = std::none_of(left.begin(), left.end(),
                                     [](const unwritten_result& u) { return u.in_flight; });
    if (!left.empty() && !progress && none_written && !retry_logged_) {
      retry_logged_ = true;
      log(fmt::format("{} result(s) not written yet; retrying, backing off up to 5 s",
                      left.size()));
    }
    if (left.empty()) retry_logged_ = false;
    unwritten_ = std::move(left);
    return progress;
  }

  void stop_task(running_task& t, double now, const std::string& reason) {
    if (t.orphan || t.pid <= 1) return;
    if (!t.stop_reason) t.stop_reason = reason;
    if (!t.kill_at) {
      ops_.signal_group(t.pid, SIGTERM);
      t.kill_at = now + cfg_.grace_s;
    }
  }

  // A time limit the runner enforces itself: only for tasks run without a supervisor (the
  // supervisor enforces it otherwise, also while no runner lives). When it is due, or nothing.
  std::optional<double> runner_time_limit(const running_task& t) const {
    if (!cfg_.supervisor.empty() || t.orphan || !t.spec.time_limit || !t.started || t.stop_reason)
      return std::nullopt;
    return *t.started + *t.spec.time_limit;
  }

  // Whether the task's supervisor stopped it at its time limit (its .exit file says so).
  bool stopped_at_time_limit(const running_task& t) const {
    if (!t.spec.time_limit || cfg_.supervisor.empty()) return false;
    auto s = read_exit_status(exit_status_path(t.spec.id), t.attempt);
    return s && s->time_limit;
  }

  void enforce_deadlines(double now) {
    for (auto& [id, t] : running_) {
      if (auto limit = runner_time_limit(t); limit && *limit <= now) {
        log(fmt::format("{}: ran past its time limit ({:g} s): SIGTERM", id, *t.spec.time_limit));
        stop_task(t, now, "time_limit");
      }
      if (t.kill_at && *t.kill_at <= now) {
        t.kill_at = now + 3600 * 24 * 365.0;  // signalled; nothing more to do but reap
        // An orphan's pid is not ours to reap: it may have been reused by now.
        if (t.orphan && !same_process(t)) continue;
        log(fmt::format("{}: still running {:.0f} s after SIGTERM: SIGKILL", id, cfg_.grace_s));
        if (t.orphan)
          ops_.signal_recorded_group(t.pid, t.pid_start, t.boot_id, SIGKILL);
        else
          ops_.signal_group(t.pid, SIGKILL);
      }
    }
  }

  // Cancels a task left running by a previous runner. Its pid is not our child, so it is
  // signalled only while it is still the recorded process; one already gone ended on its own
  // before the cancel, and check_orphans() records how.
  void cancel_orphan(running_task& t, double now) {
    const std::string& id = t.spec.id;
    if (t.stop_reason) return;
    if (t.pid <= 1 || !same_process(t)) {
      log(id + ": cancel of a task left by a previous runner: its process already ended");
      return;
    }
    log(id + ": cancel of a task left by a previous runner: SIGTERM to its process group");
    t.stop_reason = "cancelled";
    // Signalled only while it is still the recorded process and leads its group.
    if (!ops_.signal_recorded_group(t.pid, t.pid_start, t.boot_id, SIGTERM))
      log(id + ": its process is no longer the recorded one, or leads no group: not signalled");
    t.kill_at = now + cfg_.grace_s;
  }

  void begin_stop(double now) {
    stopping_ = true;
    stop_started_ = now;
    log("stopping: no new claims; stopping running tasks");
    for (auto& [id, t] : running_) stop_task(t, now, "runner_terminated");
    heartbeat_now();
  }

  // ---- control ----

  bool apply_control(double now) {
    control_batch b = read_control(lease_, cfg_.node);
    bool any = false;
    for (auto& [p, reason] : b.bad) log_once(p, reason);
    if (b.paused && *b.paused != paused_) {
      paused_ = *b.paused;
      log(paused_ ? "paused" : "resumed");
      heartbeat_now();
    }
    for (const auto& p : b.consumed) {
      ::unlink(p.c_str());
      any = true;
    }
    for (const auto& c : b.cancels) {
      cancel(c.task, now);
      ::unlink(c.path.c_str());
      any = true;
    }
    return any;
  }

  void cancel(const std::string& id, double now) {
    if (auto it = running_.find(id); it != running_.end()) {
      if (it->second.orphan) {
        cancel_orphan(it->second, now);
        return;
      }
      log(id + ": cancel: SIGTERM to its process group");
      stop_task(it->second, now, "cancelled");
      return;
    }
    for (const std::string& lane : {cfg_.node, std::string(any_lane)}) {
      if (!tree_ok(lane == cfg_.node ? dir_inbox_own : dir_inbox_any)) continue;
      fs::path from = lease_.inbox_task(lane, id);
      fs::path to = lease_.claimed_task(cfg_.node, id);
      json_outcome peek = read_json_tolerant(from);
      if (::rename(from.c_str(), to.c_str()) != 0) continue;
      task_spec spec;
      bool ok = false;
      if (peek.ok()) {
        try {
          from_json(*peek.value, spec);
          ok = true;
        } catch (const error&) {
        }
      }
      if (!ok) {
        json_outcome r = read_json_tolerant(to);
        try {
          if (r.ok()) {
            from_json(*r.value, spec);
            ok = true;
          }
        } catch (const error&) {
        }
      }
      if (!ok) {
        log(id + ": cancel: task file unreadable; left in claimed/");
        return;
      }
      running_task t;
      t.spec = spec;
      t.claimed = now;
      log(id + ": cancelled while pending");
      finish(t, now, std::nullopt, std::nullopt, task_state::cancelled, "cancelled");
      return;
    }
    log(id + ": cancel: not pending here nor running here; control file consumed");
  }

  // ---- heartbeat ----

  // How long after the last heartbeat the next is due: sooner when the running set changed.
  double heartbeat_interval() const {
    return hb_dirty_ ? std::min(cfg_.heartbeat_min_s, cfg_.heartbeat_s) : cfg_.heartbeat_s;
  }

  // The next pass writes the heartbeat, whatever the rate limit.
  void heartbeat_now() {
    hb_dirty_ = true;
    last_heartbeat_ = -1e18;
  }

  void write_heartbeat(double now) {
    heartbeat hb;
    hb.node = cfg_.node;
    hb.host = cfg_.host;
    hb.pid = ::getpid();
    hb.pid_start = detail::process_start_ticks(::getpid()).value_or(0);
    hb.boot_id = detail::boot_id();
    hb.ts = now;
    hb.started = started_;
    std::vector<std::pair<std::int64_t, std::string>> ids;
    for (const auto& [id, t] : running_) ids.emplace_back(t.spec.seq, id);
    std::sort(ids.begin(), ids.end());
    for (auto& e : ids) hb.running.push_back(e.second);
    if (!hb.running.empty()) hb.running_task_id = hb.running.front();
    std::int64_t pending = 0;
    for (const std::string& lane : {cfg_.node, std::string(any_lane)})
      for (const std::string& n : detail::list_dir(lease_.inbox(lane).string()).names) {
        std::int64_t seq;
        if (detail::task_file_name(n, seq)) ++pending;
      }
    hb.pending = pending;
    hb.paused = paused_;
    hb.slots = cfg_.slots;
    hb.gpus = gpus_total();
    hb.gpu_ids = cfg_.gpu_ids;
    hb.gpus_free = static_cast<std::int64_t>(free_gpus_.size());
    hb.version = version;
    hb.stopped = finished_;
    if (!tree_ok(dir_hb)) {  // check_tree() logged why
      last_heartbeat_ = now;
      return;
    }
    try {
      write_json_atomic(lease_.heartbeat(cfg_.node), json(hb), 0600, false);
      last_heartbeat_ = now;
      hb_dirty_ = false;
    } catch (const error& e) {
      log(std::string("cannot write heartbeat: ") + e.what());
      last_heartbeat_ = now;  // try again at the next interval, not in a tight loop
    }
  }

  runner_config cfg_;
  lease_paths lease_;
  detail::unique_fd node_lock_;  // flock held while this runner lives (take_node_lock)
  double pass_now_ = 0;          // the current pass's clock, for result retry back-off
  process_ops& ops_;
  logger log_;
  std::set<std::string> free_gpus_;
  std::map<std::string, running_task> running_;
  std::map<pid_t, std::string> by_pid_;
  std::vector<unwritten_result> unwritten_;
  std::unique_ptr<result_writer> writer_;
  std::vector<held_death> held_;
  std::deque<std::string> lane_cache_, any_cache_;
  double lane_listed_empty_ = -1, any_listed_empty_ = -1;
  std::deque<task_spec> adopted_;  // found in claimed/ without a pid: to be run
  // Pending tasks passed over (dependencies, retry delay), by "<lane>/<file name>", parsed.
  std::map<std::string, task_spec> waiting_;
  // Pending tasks below priority 0, passed over while anything else can run; same keys.
  std::map<std::string, task_spec> low_priority_;
  // A lane's priority markers as last listed, and how far the claims have got through them.
  struct marked_lane {
    std::vector<priority_marker> markers;
    std::size_t next = 0;
    double listed = -1e18;
    timespec mtime{};
    ino_t ino = 0;
  };
  marked_lane marked_own_, marked_any_;
  struct dependency {
    std::optional<task_state> ended;
    double checked = -1e18;
  };
  static constexpr double dependency_recheck_s = 1.0;
  std::map<std::string, dependency> dependencies_;
  std::vector<std::string> done_nodes_;
  double done_nodes_listed_ = -1e18;
  std::string unsafe_[dir_count];  // why each tree directory cannot be written now, or empty
  detail::tree_check tree_check_{lease_.anchor(), lease_.root()};
  std::set<std::string> logged_;
  std::mt19937_64 rng_;
  double started_ = 0, last_heartbeat_ = -1e18, last_orphan_check_ = -1e18, stop_started_ = 0;
  double last_adopt_scan_ = 0;
  bool paused_ = false, stopping_ = false, finished_ = false, hb_dirty_ = false;
  bool stop_requested_ = false, retry_logged_ = false;
};

namespace detail {

inline std::atomic<bool>& runner_stop_flag() {
  static std::atomic<bool> f{false};
  return f;
}
inline int& runner_wake_fd() {
  static int fd = -1;
  return fd;
}
inline void runner_on_signal(int sig) {
  int saved = errno;
  if (sig == SIGTERM || sig == SIGINT) runner_stop_flag().store(true);
  char c = 1;
  if (runner_wake_fd() >= 0) (void)!::write(runner_wake_fd(), &c, 1);
  errno = saved;
}

}  // namespace detail

// The real loop: SIGTERM/SIGINT stop the runner cleanly; SIGCHLD wakes it so a slot is reused
// as soon as a task ends. Idle, it sleeps from idle_min_s doubling to idle_max_s; a name
// appearing in its lanes or control directory wakes it at once where inotify sees it (a
// local filesystem; on a network filesystem another client's submit waits for the poll, whose
// ceiling is then blind_idle_max_s). Returns 0.
inline int run_runner(const runner_config& cfg, const lease_paths& lease, runner::logger log = {}) {
  posix_process_ops ops;
  // First, while this process has one thread and little memory: the spawn server is forked
  // from it.
  if (!cfg.supervisor.empty()) ops.start_spawn_server();
  runner r(cfg, lease, ops, std::move(log));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0)
    throw io_error("cannot create pipe", "(self-pipe)", errno);
  detail::unique_fd wake_r(pipe_fds[0]), wake_w(pipe_fds[1]);
  detail::runner_wake_fd() = wake_w.get();
  detail::runner_stop_flag().store(false);
  struct sigaction sa {};
  sa.sa_handler = detail::runner_on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGTERM, SIGINT, SIGCHLD}) ::sigaction(s, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);  // survive the login shell going away

  r.write_results_in_background([fd = wake_w.get()] {
    char c = 1;
    (void)!::write(fd, &c, 1);
  });
  r.start(unix_now());
  detail::dir_watch lanes({lease.inbox(cfg.node), lease.inbox(std::string(any_lane)),
                           lease.control(cfg.node), lease.priority(cfg.node),
                           lease.priority(std::string(any_lane))});
  // Where inotify cannot see a new task (turned off, unavailable, or a network filesystem) the
  // idle poll stays short, so a task submitted to an idle runner waits at most about 0.1 s.
  double idle_max = cfg.idle_max_s;
  if (lanes.fd() < 0 || detail::remote_filesystem(lease.inbox(std::string(any_lane)).c_str()))
    idle_max = std::min(idle_max, std::max(cfg.idle_min_s, blind_idle_max_s));
  double backoff = cfg.idle_min_s;
  double watched_missing = -1e18;
  while (!r.finished()) {
    if (detail::runner_stop_flag().load()) r.request_stop();
    double now = unix_now();
    bool busy = r.step(now);
    if (r.finished()) break;
    backoff = busy ? cfg.idle_min_s : std::min(idle_max, backoff * 2);
    double wait = std::min(backoff, r.next_deadline(now));
    // The priority directories exist only once a task had a priority: trying to watch them on
    // every pass was about 8 failed inotify_add_watch a task. A marker always follows its
    // task file into a watched lane, so a second's delay in watching them costs no wake-up.
    if (now - watched_missing >= 1) {
      watched_missing = now;
      lanes.add_missing();
    }
    // The spawn server's reports (a task's end) wake the loop as a SIGCHLD does.
    pollfd p[3] = {{wake_r.get(), POLLIN, 0}, {lanes.fd(), POLLIN, 0}, {ops.event_fd(), POLLIN, 0}};
    int ms = static_cast<int>(wait * 1000) + 1;
    if (::poll(p, 3, ms) > 0) {
      char buf[64];
      if (p[0].revents & POLLIN)
        while (::read(wake_r.get(), buf, sizeof buf) > 0) {
        }
      // Only when inotify has something: drain() also retries the missing watches.
      if ((p[1].revents & POLLIN) && lanes.drain()) backoff = cfg.idle_min_s;
    }
  }
  detail::runner_wake_fd() = -1;
  r.end_background_writes();  // before the wake pipe closes
  return 0;
}

}  // namespace leaseq
