#pragma once

// Enqueueing tasks: one, or a batch; idempotency keys; retries.
//
// Ids come from seq.hpp (ids/<seq> taken exclusively), and every task file is published with
// an exclusive rename (publish_exclusive): nothing a submit writes can replace another task,
// whatever the filesystem's locks and caches do.
//
// Idempotency: keys/<key> is created exclusively (link(2) of a complete temp file) holding the
// task id and the submitting process's identity, after the task's own file is written and
// flushed under its temp name and before that file is published. A submit that fails removes
// the keys it made; one killed between the key and the publish leaves a key naming a task that
// never appears: the next submit with that key sees the owner is gone (same host: pid + start
// time; another host: the key is older than key_orphan_s) and enqueues the task itself. So a
// key never points at nothing for longer than its owner lives.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "leaseq/archive.hpp"
#include "leaseq/clock.hpp"
#include "leaseq/detail/dir.hpp"
#include "leaseq/detail/process_identity.hpp"
#include "leaseq/detail/quote.hpp"
#include "leaseq/duration.hpp"
#include "leaseq/engine/priority.hpp"
#include "leaseq/engine/seq.hpp"
#include "leaseq/engine/spawn.hpp"
#include "leaseq/error.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/locate.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"

namespace leaseq {

// What to run; the id, seq, lease and created time are filled in by submit.
struct submit_request {
  std::vector<std::string> argv;
  std::string cmd;  // display form; derived from argv when empty
  std::string cwd;
  std::map<std::string, std::string> env;
  int gpus = 0;
  std::optional<std::string> node;  // nullopt: the shared lane _any
  std::optional<std::string> key;
  std::optional<std::string> retry_of;
  // A task of an array: its index, and the array's id. An array_index without an array_id
  // takes the id of the first such task of its batch (`submit --array`, `--each-line`).
  std::optional<std::int64_t> array_index;
  std::optional<std::string> array_id;
  std::vector<std::string> after;    // task ids that must all FINISH first; each must exist
  std::optional<double> time_limit;  // seconds
  int retries = 0;
  double retry_delay = 0;  // seconds
  std::vector<std::string> labels;
  int priority = 0;  // higher is claimed first within its lane
};

struct submit_outcome {
  std::string id;
  bool existing = false;  // the key was already used: id is the earlier task's
};

// The most tasks one `submit --array` makes: a typo (0-10000000000) is refused, not written.
inline constexpr std::int64_t max_array_size = 1000000;

// `submit --array START-END[:STEP]`: indices START, START+STEP, ... up to END (inclusive).
struct array_range {
  std::int64_t start = 0, end = 0, step = 1;
  std::int64_t count() const { return (end - start) / step + 1; }
  std::int64_t at(std::int64_t i) const { return start + i * step; }
};

// Parses START-END[:STEP] (non-negative decimal integers, START <= END, STEP >= 1), refusing
// anything else, and arrays of more than max_array_size tasks, with a message that quotes it.
inline array_range parse_array_range(const std::string& text) {
  auto fail = [&](const std::string& why) -> error {
    return error("--array " + detail::quote_for_message(text) + ": " + why);
  };
  auto number = [&](std::string_view s, const char* what) {
    if (s.empty())
      throw fail(std::string("no ") + what + " (expected START-END[:STEP], e.g. 0-99 or 1-100:2)");
    std::int64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9')
        throw fail(std::string(what) +
                   " is not a non-negative integer (expected START-END[:STEP])");
      if (v > 999999999999) throw fail(std::string(what) + " is larger than 999999999999");
      v = v * 10 + (c - '0');
    }
    if (v > 999999999999) throw fail(std::string(what) + " is larger than 999999999999");
    return v;
  };
  std::string_view s = text;
  std::size_t colon = s.find(':');
  std::string_view range = s.substr(0, colon);
  std::size_t dash = range.find('-');
  if (dash == std::string_view::npos) throw fail("expected START-END[:STEP], e.g. 0-99 or 1-100:2");
  array_range r;
  r.start = number(range.substr(0, dash), "START");
  r.end = number(range.substr(dash + 1), "END");
  if (colon != std::string_view::npos) r.step = number(s.substr(colon + 1), "STEP");
  if (r.step < 1) throw fail("STEP must be at least 1");
  if (r.end < r.start) throw fail("END is below START");
  if (r.count() > max_array_size)
    throw fail(fmt::format("{} tasks; an array has at most {}", r.count(), max_array_size));
  return r;
}

// A duration given to submit (--time-limit, --retry-delay), in seconds: parse_duration's forms
// (`30s`, `5m`, `1h30m`, `2:00:00`, `1-00:00:00`) except a bare number. Slurm reads
// `--time 30` as minutes, most tools as seconds, and a wrong guess kills a task 60 times too
// early. `option` names the flag in the error.
inline double parse_submit_duration(std::string_view text, std::string_view option) {
  bool bare = !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
  if (bare)
    throw error(std::string(option) + ": " + detail::quote_for_message(std::string(text)) +
                " has no unit (30s, 5m, 2h, 1h30m, 2:00:00, 1-00:00:00)");
  try {
    return static_cast<double>(parse_duration(text));
  } catch (const error& e) {
    throw error(std::string(option) + ": " + e.what());
  }
}

// A shell command as a task argv.
inline std::vector<std::string> shell_argv(const std::string& command) {
  return {"/bin/sh", "-c", command};
}

namespace detail {

inline void check_request(const submit_request& r) {
  if (r.argv.empty()) throw error("submit: empty command");
  if (r.gpus < 0 || r.gpus > 4096) throw error("submit: gpus must be between 0 and 4096");
  if (r.node) check_node(*r.node);
  if (r.key) check_key(*r.key);
  if (r.retry_of) check_task_id(*r.retry_of);
  if (r.array_id) check_task_id(*r.array_id);
  if (r.array_index && *r.array_index < 0) throw error("submit: array index must not be negative");
  for (const auto& dep : r.after) check_task_id(dep);
  if (r.time_limit && !(*r.time_limit > 0 && *r.time_limit <= 366 * 86400.0))
    throw error("submit: the time limit must be above 0 and at most a year");
  if (r.retries < 0 || r.retries > max_task_retries)
    throw error("submit: retries must be between 0 and " + std::to_string(max_task_retries));
  if (!(r.retry_delay >= 0 && r.retry_delay <= 366 * 86400.0))
    throw error("submit: the retry delay must be 0 to a year");
  if (r.labels.size() > max_task_labels)
    throw error("submit: at most " + std::to_string(max_task_labels) + " labels");
  for (const auto& l : r.labels) check_label(l);
  if (r.priority < -max_task_priority || r.priority > max_task_priority)
    throw error("submit: priority must be between " + std::to_string(-max_task_priority) + " and " +
                std::to_string(max_task_priority));
  for (const auto& [k, v] : r.env)
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
      throw error("submit: invalid environment variable name " + quote_for_message(k));
}

// `batch_array_id`: the id of the batch's first array task, for those that name no array.
inline task_spec make_spec(const submit_request& r, const std::string& lease_id, std::int64_t seq,
                           double now, const std::string& batch_array_id = {}) {
  task_spec t;
  t.seq = seq;
  t.id = format_task_id(seq);
  t.lease = lease_id;
  t.node = r.node;
  t.argv = r.argv;
  t.cmd = r.cmd.empty() ? display_command(r.argv) : r.cmd;
  t.cwd = r.cwd;
  t.env = r.env;
  t.gpus = r.gpus;
  t.key = r.key;
  t.created = now;
  t.retry_of = r.retry_of;
  if (r.array_index) {
    t.extra["array_id"] = r.array_id ? *r.array_id : batch_array_id;
    t.extra["array_index"] = *r.array_index;
  }
  for (const auto& dep : r.after)
    if (std::find(t.after.begin(), t.after.end(), dep) == t.after.end()) t.after.push_back(dep);
  t.time_limit = r.time_limit;
  t.retries = r.retries;
  t.retry_delay = r.retry_delay;
  for (const auto& l : r.labels)
    if (std::find(t.labels.begin(), t.labels.end(), l) == t.labels.end()) t.labels.push_back(l);
  t.priority = r.priority;
  return t;
}

inline fs::path inbox_path(const lease_paths& lease, const task_spec& t) {
  return lease.inbox_task(t.node ? *t.node : std::string(any_lane), t.id);
}

// A key older than this whose task is visible nowhere and whose owner cannot be checked (it
// ran on another host) is taken over by the next submit with that key.
inline constexpr double key_orphan_s = 600;

struct key_record {
  std::string id;
  std::optional<process_identity> owner;  // protocol 1 keys hold only the id
  double age_s = 0;
};

// What a key names, or an error when it exists but cannot be read.
inline std::optional<key_record> read_key_record(const lease_paths& lease, const std::string& key) {
  read_outcome r = read_file_tolerant(lease.key(key), 1024);
  if (!r.ok && r.err == ENOENT) return std::nullopt;
  key_record k;
  std::string_view text = r.content;
  std::size_t nl = text.find('\n');
  std::string_view first = text.substr(0, nl);
  while (!first.empty() && (first.back() == ' ' || first.back() == '\r')) first.remove_suffix(1);
  k.id = std::string(first);
  if (!r.ok || !is_valid_task_id(k.id))
    throw error("idempotency key " + quote_for_message(key) + " exists but " +
                lease.key(key).string() +
                " is unreadable: " + (r.ok ? std::string("not a task id") : r.reason));
  if (nl != std::string_view::npos) k.owner = process_identity::from_line(text.substr(nl + 1));
  struct stat st;
  if (::stat(lease.key(key).c_str(), &st) == 0)
    k.age_s = std::max(0.0, unix_now() - static_cast<double>(st.st_mtim.tv_sec));
  return k;
}

inline std::string read_key(const lease_paths& lease, const std::string& key) {
  auto k = read_key_record(lease, key);
  if (!k) throw error("idempotency key " + quote_for_message(key) + " vanished while read");
  return k->id;
}

// Whether a task file of this id is visible anywhere in the tree (any lane, any node).
inline bool task_file_exists(const lease_paths& lease, const std::string& id) {
  struct stat st;
  auto in = [&](const fs::path& root, const std::string& name) {
    for (const std::string& d : list_dir(root.string()).names)
      if (is_valid_lane(d) && ::lstat((root / d / name).c_str(), &st) == 0) return true;
    return false;
  };
  return in(lease.done_root(), id + ".result.json") || in(lease.claimed_root(), id + ".json") ||
         in(lease.inbox_root(), id + ".json");
}

// Refuses a dependency on a task the lease does not have. Only tasks that exist can be named,
// so every dependency points at an earlier task and no cycle can form.
inline void check_dependencies_exist(const lease_paths& lease, const std::string& lease_id,
                                     const std::vector<submit_request>& requests) {
  std::set<std::string> checked;
  for (const auto& r : requests)
    for (const auto& dep : r.after)
      if (checked.insert(dep).second && !task_file_exists(lease, dep))
        throw error("--after " + dep + ": lease " + lease_id +
                    " has no such task (or this client does not see it yet); nothing was "
                    "enqueued");
}

// The id an existing key binds, or nullopt when the key is free (never made, or orphaned and
// now moved aside by this call: the caller creates it afresh). Waits while the key's owner is
// alive on this host and its task is not published yet.
inline std::optional<std::string> bound_key(const lease_paths& lease, const std::string& key) {
  for (int attempt = 0;; ++attempt) {
    auto k = read_key_record(lease, key);
    if (!k) return std::nullopt;
    // An archived task (`leaseq clean`) still exists: its key stays bound.
    if (task_file_exists(lease, k->id) || task_archived(lease, k->id)) return k->id;
    // Its task is not visible here. Lag (another client published it, this client's cache
    // has not caught up) or a submit that died before publishing? The id's reservation
    // tells: its ticket turns 'P' once the submit has published everything.
    liveness owner = k->owner ? check_liveness(*k->owner) : liveness::unknown;
    read_outcome t = read_file_tolerant(lease.ids_dir() / std::to_string(*task_seq(k->id)), 512);
    auto ticket = t.ok ? parse_ticket(t.content) : std::nullopt;
    bool unpublished = ticket && !ticket->published;
    bool orphaned =
        (unpublished && owner == liveness::dead) ||
        (owner != liveness::alive && (!ticket || unpublished) && k->age_s > key_orphan_s);
    if (!orphaned) {
      if (owner == liveness::alive && attempt < 100) {  // its submit is publishing: wait
        ::usleep(50 * 1000);
        continue;
      }
      return k->id;  // in flight on another client, or a protocol 1 key: trust it
    }
    // Exactly one taker wins the rename; a loser reads the key again.
    fs::path aside = lease.keys_dir() / ("." + key + ".orphan." + temp_suffix());
    if (::rename(lease.key(key).c_str(), aside.c_str()) == 0) {
      ::unlink(aside.c_str());
      return std::nullopt;
    }
    if (errno != ENOENT)
      throw io_error("cannot take over idempotency key", lease.key(key).string(), errno);
  }
}

}  // namespace detail

namespace detail {

// A batch writes every file under its temp name first, flushes them (one syncfs for a large
// batch, an fsync per file for a small one), and only then publishes them onto their final
// names: each file is durable before it becomes visible, as the protocol asks.
class batch_stage {
 public:
  batch_stage(const lease_paths& lease, bool per_file_sync)
      : lease_(lease), per_file_sync_(per_file_sync) {}

  // Index of a directory of the batch, created if needed and opened once: every file is
  // made relative to it, so no path is walked twice. Opened from the home down without
  // following a symlink (a planted inbox/_any or keys link is refused, never written into).
  std::size_t dir(const fs::path& path) {
    for (std::size_t i = 0; i < dirs_.size(); ++i)
      if (dirs_[i].path == path) return i;
    dirs_.push_back({path, open_lease_dir(lease_, path)});
    return dirs_.size() - 1;
  }
  const fs::path& path(std::size_t dir) const { return dirs_[dir].path; }

  // Writes content under a temp name starting with '.' (invisible to readers), O_EXCL and
  // never through a symlink. Safe to call from several threads.
  void write_temp(std::size_t dir, const std::string& temp, std::string_view content) const {
    unique_fd fd(::openat(dirs_[dir].fd.get(), temp.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) throw io_error("cannot create", (dirs_[dir].path / temp).string(), errno);
    if (!write_all(fd.get(), content.data(), content.size()) ||
        (per_file_sync_ && ::fsync(fd.get()) != 0) || ::close(fd.release()) != 0) {
      int e = errno;
      ::unlinkat(dirs_[dir].fd.get(), temp.c_str(), 0);
      throw io_error("cannot write", (dirs_[dir].path / temp).string(), e);
    }
  }

  // Everything written so far reaches the disk.
  void flush() const {
    if (per_file_sync_) {
      for (const auto& d : dirs_) ::fsync(d.fd.get());  // best effort, as fsync_dir
      return;
    }
    unique_fd root(::open(lease_.root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root || ::syncfs(root.get()) != 0)
      throw io_error("cannot flush submitted tasks", lease_.root().string(), errno);
  }

  // Exclusive: false (temp kept) when the final name exists.
  bool publish(std::size_t dir, const std::string& temp, const std::string& final_name) const {
    return publish_exclusive(dirs_[dir].fd.get(), temp, final_name, dirs_[dir].path);
  }

  // link(2): false when the final name exists. The temp name stays either way.
  bool link(std::size_t dir, const std::string& temp, const std::string& final_name) const {
    int fd = dirs_[dir].fd.get();
    if (::linkat(fd, temp.c_str(), fd, final_name.c_str(), 0) == 0) return true;
    if (name_taken(errno)) return false;
    throw io_error("cannot create", (dirs_[dir].path / final_name).string(), errno);
  }

  void remove(std::size_t dir, const std::string& name) const noexcept {
    ::unlinkat(dirs_[dir].fd.get(), name.c_str(), 0);
  }

 private:
  struct open_dir {
    fs::path path;
    unique_fd fd;
  };
  const lease_paths& lease_;
  bool per_file_sync_;
  std::vector<open_dir> dirs_;
};

// Runs body(i) for i in [0, n) on up to two threads (the JSON text of a task costs as much as
// creating its file); the first exception is rethrown here.
template <class Body>
void for_each_index_parallel(std::size_t n, Body body) {
  unsigned threads =
      n >= 2048 ? std::min(2u, std::max(1u, std::thread::hardware_concurrency())) : 1;
  if (threads == 1) {
    for (std::size_t i = 0; i < n; ++i) body(i);
    return;
  }
  std::atomic<bool> failed{false};
  std::exception_ptr first;
  std::mutex first_mutex;
  auto run = [&](std::size_t from, std::size_t to) {
    try {
      for (std::size_t i = from; i < to && !failed.load(std::memory_order_relaxed); ++i) body(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(first_mutex);
      if (!first) first = std::current_exception();
      failed = true;
    }
  };
  std::thread helper(run, n / 2, n);
  run(0, n / 2);
  helper.join();
  if (first) std::rethrow_exception(first);
}

// Everything one batch has made so far, so that a failure undoes exactly that: temp files,
// keys it created, ids it reserved and did not publish. Published tasks stay. Every update is
// O(log n) or O(1): a batch of a million lines publishes a million tasks.
struct batch_undo {
  batch_undo(const batch_stage& s, reservation_maker& m, std::vector<std::int64_t> seqs)
      : stage(s), maker(m), reserved(std::move(seqs)), settled(reserved.size(), 0) {}
  batch_undo(const batch_undo&) = delete;
  batch_undo& operator=(const batch_undo&) = delete;

  const batch_stage& stage;
  reservation_maker& maker;
  std::vector<std::pair<std::size_t, std::string>> temps;  // (dir, name) still on disk
  std::vector<std::int64_t> reserved;  // every id reserved, ascending (a maker's ids ascend)
  std::vector<char> settled;           // per reserved id: published, or given back already
  std::size_t keys_dir = 0;
  std::unordered_set<std::string> keys;  // keys created whose task is not published yet
  bool armed = true;

  ~batch_undo() {
    if (!armed) return;
    for (const auto& [d, n] : temps) stage.remove(d, n);
    for (const auto& k : keys) stage.remove(keys_dir, k);
    for (std::size_t i = 0; i < reserved.size(); ++i)
      if (!settled[i]) maker.release(reserved[i]);
  }
  void reserve(std::int64_t seq) {
    auto at = std::upper_bound(reserved.begin(), reserved.end(), seq) - reserved.begin();
    reserved.insert(reserved.begin() + at, seq);
    settled.insert(settled.begin() + at, 0);
  }
  // Published, or given back: not to be released again (another submit may hold it then).
  void settle(std::int64_t seq) {
    auto it = std::lower_bound(reserved.begin(), reserved.end(), seq);
    if (it != reserved.end() && *it == seq)
      settled[static_cast<std::size_t>(it - reserved.begin())] = 1;
  }
  void published(std::int64_t seq, const std::optional<std::string>& key) {
    settle(seq);
    if (key) keys.erase(*key);
  }
};

}  // namespace detail

// Enqueues the requests in order. Returns one outcome per request. Ids are reserved
// exclusively (seq.hpp); task files and keys are written under temp names and flushed; keys
// are linked into place (a key already bound answers with its task, and that request writes
// nothing); tasks are published exclusively in seq order and flushed again before returning.
// A batch that fails part-way removes its temp files and the keys it made and gives back the
// ids it did not publish; the tasks already published stay (their ids were returned to no one,
// so the caller reports the failure; a retry with keys enqueues only what is missing).
inline std::vector<submit_outcome> submit_batch(const lease_paths& lease,
                                                const std::string& lease_id,
                                                const std::vector<submit_request>& requests,
                                                double now = unix_now()) {
  check_lease_id(lease_id);
  for (const auto& r : requests) detail::check_request(r);
  detail::check_dependencies_exist(lease, lease_id, requests);
  std::vector<submit_outcome> out;
  if (requests.empty()) return out;
  const std::size_t n = requests.size();
  detail::reservation_maker maker(lease);
  std::vector<std::int64_t> seqs = reserve_seqs(lease, n, maker);
  detail::batch_stage stage(lease, n <= 8);
  detail::batch_undo undo(stage, maker, seqs);
  const std::string suffix = ".tmp." + detail::temp_suffix() + ".";
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back({format_task_id(seqs[i]), false});
  // An array is named after its first task: the id reserved for it here, or, when its key is
  // already bound (the same keyed array submitted again), the task that key names.
  std::string array_id;
  for (std::size_t i = 0; i < n && array_id.empty(); ++i)
    if (requests[i].array_index && !requests[i].array_id) {
      array_id = out[i].id;
      if (requests[i].key)
        if (auto earlier = detail::bound_key(lease, *requests[i].key)) array_id = *earlier;
    }

  // A key already bound (before this batch) answers at once; that request makes nothing.
  std::vector<char> skip(n, 0);
  // The same key twice in one batch: one task, the first request's (a map, not a pass over
  // the earlier requests: a keyed batch of a million lines).
  std::unordered_map<std::string_view, std::size_t> first_with_key;
  for (std::size_t i = 0; i < n; ++i) {
    if (!requests[i].key) continue;
    auto [first, inserted] = first_with_key.emplace(*requests[i].key, i);
    if (inserted) continue;
    out[i] = {out[first->second].id, true};
    skip[i] = 1;
  }

  std::vector<std::size_t> lane(n);
  for (std::size_t i = 0; i < n; ++i)
    if (!skip[i])
      lane[i] = stage.dir(requests[i].node ? lease.inbox(*requests[i].node)
                                           : lease.inbox(std::string(any_lane)));
  std::size_t keys_dir = 0;
  bool any_key = false;
  for (std::size_t i = 0; i < n; ++i) any_key |= requests[i].key && !skip[i];
  if (any_key) keys_dir = undo.keys_dir = stage.dir(lease.keys_dir());
  auto temp_task = [&](std::size_t i) {
    return "." + out[i].id + ".json" + suffix + std::to_string(i);
  };
  auto temp_key = [&](std::size_t i) {
    return "." + *requests[i].key + suffix + std::to_string(i);
  };
  const std::string owner = detail::process_identity::of_self().to_line() + "\n";

  // Temp files on two threads, then one flush.
  std::vector<char> written(n, 0), key_written(n, 0);
  try {
    detail::for_each_index_parallel(n, [&](std::size_t i) {
      if (skip[i]) return;
      task_spec t = detail::make_spec(requests[i], lease_id, seqs[i], now, array_id);
      stage.write_temp(lane[i], temp_task(i), json(t).dump() + "\n");
      written[i] = 1;
      if (requests[i].key) {
        stage.write_temp(keys_dir, temp_key(i), out[i].id + "\n" + owner);
        key_written[i] = 1;
      }
    });
  } catch (...) {
    for (std::size_t i = 0; i < n; ++i) {
      if (written[i]) stage.remove(lane[i], temp_task(i));
      if (key_written[i]) stage.remove(keys_dir, temp_key(i));
    }
    throw;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (written[i]) undo.temps.emplace_back(lane[i], temp_task(i));
    if (key_written[i]) undo.temps.emplace_back(keys_dir, temp_key(i));
  }
  stage.flush();

  // Keys: linked in request order. A bound key answers with its task; an orphaned one (its
  // submit died before publishing) was moved aside by bound_key and is made afresh here.
  for (std::size_t i = 0; i < n; ++i) {
    if (skip[i] || !requests[i].key) continue;
    const std::string& key = *requests[i].key;
    for (int tries = 0;; ++tries) {
      if (tries > 0) {
        // The key exists on the server but this client cannot read it yet (sshfs, NFS
        // negative lookup cache): wait for the cache, up to 30 s.
        if (tries > 600)
          throw error("idempotency key " + detail::quote_for_message(key) +
                      " exists but stays unreadable from this client: " + lease.key(key).string());
        ::usleep(50 * 1000);
      }
      if (auto earlier = detail::bound_key(lease, key)) {
        stage.remove(lane[i], temp_task(i));  // named after out[i].id: before it changes
        out[i] = {*earlier, true};
        skip[i] = 1;
        break;
      }
      if (stage.link(keys_dir, temp_key(i), key)) {
        undo.keys.insert(key);
        break;
      }
    }
    stage.remove(keys_dir, temp_key(i));
  }

  // Ids reserved for requests answered by an earlier key are given back now, before the
  // ticket commits past them (a reader would otherwise count them, then see them go).
  for (std::size_t i = 0; i < n; ++i)
    if (skip[i]) {
      maker.release(seqs[i]);
      undo.settle(seqs[i]);
    }

  // Publish in seq order, each task committed on the ticket before it can be seen (in steps,
  // so that a large batch rewrites its ticket a few times, not once per task). A name already
  // taken can only be a task another program numbered by the old rules: this request takes a
  // fresh id (and its key is re-pointed).
  constexpr std::size_t commit_step = 256;
  for (std::size_t i = 0; i < n; ++i) {
    if (skip[i]) continue;
    if (seqs[i] > maker.committed()) maker.commit_through(seqs[std::min(n, i + commit_step) - 1]);
    std::string temp = temp_task(i);
    for (int taken = 0; !stage.publish(lane[i], temp, out[i].id + ".json"); ++taken) {
      if (taken > 1000)
        throw error("cannot publish a task in " + stage.path(lane[i]).string() +
                    ": every id tried is taken (is the directory writable?)");
      stage.remove(lane[i], temp);
      std::int64_t fresh = reserve_seqs(lease, 1, maker).front();
      undo.reserve(fresh);
      maker.commit_through(fresh);
      out[i].id = format_task_id(fresh);
      temp = temp_task(i);
      task_spec t = detail::make_spec(requests[i], lease_id, fresh, now, array_id);
      stage.write_temp(lane[i], temp, json(t).dump() + "\n");
      // A replacing write on purpose: this request made the key file itself (the exclusive
      // link above), so it replaces only its own binding. Creating it exclusively again would
      // need an unlink first, and in that gap another submit of the same key could bind it to
      // a second task.
      if (requests[i].key) write_file_atomic(lease.key(*requests[i].key), out[i].id + "\n" + owner);
    }
    undo.published(*task_seq(out[i].id), requests[i].key);
  }
  stage.flush();
  // Priority markers, once their tasks are visible. One that cannot be made leaves its task
  // in seq order: it still runs, only later than asked.
  for (std::size_t i = 0; i < n; ++i)
    if (!skip[i] && requests[i].priority > 0) {
      task_spec t;
      t.id = out[i].id;
      t.node = requests[i].node;
      t.priority = requests[i].priority;
      try {
        mark_priority(lease, t);
      } catch (const error&) {
      }
    }
  undo.armed = false;
  maker.mark_published();
  return out;
}

// Enqueues one task (durable before it is visible).
inline submit_outcome submit_task(const lease_paths& lease, const std::string& lease_id,
                                  const submit_request& request, double now = unix_now()) {
  check_lease_id(lease_id);
  detail::check_request(request);
  // A key already bound answers without reserving an id.
  if (request.key)
    if (auto earlier = detail::bound_key(lease, *request.key)) return {*earlier, true};
  return submit_batch(lease, lease_id, {request}, now).front();
}

// A retry is a new task (new seq) with the same argv, cwd, env, gpus and lane as the old one,
// and retry_of naming it. The old task may be in any state.
inline submit_outcome retry_task(const lease_paths& lease, const std::string& lease_id,
                                 const std::string& old_id,
                                 std::optional<std::string> key = std::nullopt,
                                 double now = unix_now()) {
  auto loc = locate_task(lease, old_id);
  if (!loc) throw error("task " + old_id + " not found in lease " + lease_id);
  submit_request r;
  r.argv = loc->spec.argv;
  r.cmd = loc->spec.cmd;
  r.cwd = loc->spec.cwd;
  r.env = loc->spec.env;
  r.gpus = loc->spec.gpus;
  r.node = loc->spec.node;
  r.key = std::move(key);
  r.retry_of = old_id;
  if (auto a = array_member_of(loc->spec)) {  // a retried array task keeps its place
    r.array_id = a->id;
    r.array_index = a->index;
  }
  // Its limits, not its dependencies: a retry is asked for by hand, whatever they did.
  r.time_limit = loc->spec.time_limit;
  r.retries = loc->spec.retries;
  r.retry_delay = loc->spec.retry_delay;
  r.labels = loc->spec.labels;
  r.priority = loc->spec.priority;
  return submit_task(lease, lease_id, r, now);
}

}  // namespace leaseq
