#pragma once

// Enqueueing tasks: one, a batch under one seq allocation, idempotency keys, retries.
//
// Idempotency: keys/<key> is created exclusively (link(2) of a complete temp file) holding the
// task id, BEFORE the task file is written. Whoever creates the key owns the id; a second
// submit with the same key reads the id back and enqueues nothing. A crash between the two
// writes leaves a key naming a task that never appears (reported as such on the next submit
// with that key), never a duplicate task.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "leaseq/clock.hpp"
#include "leaseq/error.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/locate.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/seq.hpp"

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
};

struct submit_outcome {
  std::string id;
  bool existing = false;  // the key was already used: id is the earlier task's
};

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
  for (const auto& [k, v] : r.env)
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
      throw error("submit: invalid environment variable name " + quote_for_message(k));
}

inline task_spec make_spec(const submit_request& r, const std::string& lease_id, std::int64_t seq,
                           double now) {
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
  return t;
}

inline fs::path inbox_path(const lease_paths& lease, const task_spec& t) {
  return lease.inbox_task(t.node ? *t.node : std::string(any_lane), t.id);
}

// The id a key names, or an error when it cannot be read.
inline std::string read_key(const lease_paths& lease, const std::string& key) {
  read_outcome r = read_file_tolerant(lease.key(key), 256);
  std::string id = r.content;
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  if (!r.ok || !is_valid_task_id(id))
    throw error("idempotency key " + quote_for_message(key) + " exists but " +
                lease.key(key).string() +
                " is unreadable: " + (r.ok ? std::string("not a task id") : r.reason));
  return id;
}

// Claims the key for id; returns the earlier id when the key was taken.
inline std::optional<std::string> claim_key(const lease_paths& lease, const std::string& key,
                                            const std::string& id) {
  ensure_dir(lease.keys_dir());
  if (create_file_exclusive(lease.key(key), id + "\n")) return std::nullopt;
  return read_key(lease, key);
}

}  // namespace detail

namespace detail {

// A batch writes every file under its temp name first, flushes them all with one syncfs(),
// and only then renames them onto their final names: each file is durable before it becomes
// visible, as the protocol asks, for the price of one flush rather than one per file.
class batch_stage {
 public:
  explicit batch_stage(const lease_paths& lease) : lease_(lease) {}

  // Index of a directory of the batch, created if needed and opened once: every file is
  // made relative to it, so no path is walked twice.
  std::size_t dir(const fs::path& path) {
    for (std::size_t i = 0; i < dirs_.size(); ++i)
      if (dirs_[i].path == path) return i;
    ensure_dir(path);
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) throw io_error("cannot open directory", path.string(), errno);
    dirs_.push_back({path, std::move(fd)});
    return dirs_.size() - 1;
  }

  // Writes content under a temp name starting with '.' (invisible to readers), O_EXCL and
  // never through a symlink. Not flushed yet. Safe to call from several threads.
  void write_temp(std::size_t dir, const std::string& temp, std::string_view content) const {
    unique_fd fd(::openat(dirs_[dir].fd.get(), temp.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) throw io_error("cannot create", (dirs_[dir].path / temp).string(), errno);
    if (!write_all(fd.get(), content.data(), content.size()) || ::close(fd.release()) != 0) {
      int e = errno;
      ::unlinkat(dirs_[dir].fd.get(), temp.c_str(), 0);
      throw io_error("cannot write", (dirs_[dir].path / temp).string(), e);
    }
  }

  // Everything written so far reaches the disk (one call covers the whole filesystem).
  void flush() const {
    unique_fd root(::open(lease_.root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root || ::syncfs(root.get()) != 0)
      throw io_error("cannot flush submitted tasks", lease_.root().string(), errno);
  }

  void rename(std::size_t dir, const std::string& temp, const std::string& final_name) const {
    int fd = dirs_[dir].fd.get();
    if (::renameat(fd, temp.c_str(), fd, final_name.c_str()) != 0) {
      int e = errno;
      ::unlinkat(fd, temp.c_str(), 0);
      throw io_error("cannot rename onto final name", (dirs_[dir].path / final_name).string(), e);
    }
  }

  // link(2) fails with EEXIST when the name is taken: false then. The temp name goes either way.
  bool link(std::size_t dir, const std::string& temp, const std::string& final_name) const {
    int fd = dirs_[dir].fd.get();
    int rc = ::linkat(fd, temp.c_str(), fd, final_name.c_str(), 0);
    int e = errno;
    ::unlinkat(fd, temp.c_str(), 0);
    if (rc == 0) return true;
    if (e == EEXIST) return false;
    throw io_error("cannot create", (dirs_[dir].path / final_name).string(), e);
  }

  void remove(std::size_t dir, const std::string& temp) const noexcept {
    ::unlinkat(dirs_[dir].fd.get(), temp.c_str(), 0);
  }

 private:
  struct open_dir {
    fs::path path;
    unique_fd fd;
  };
  const lease_paths& lease_;
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

}  // namespace detail

// Enqueues the requests in order under one seq allocation. Returns one outcome per request.
// Keys first (each made durable before any task that names it), then the tasks: all written
// under temp names, flushed once, renamed in seq order, flushed again before returning.
// A batch that fails part-way removes the temp files it made; the tasks already renamed stay.
inline std::vector<submit_outcome> submit_batch(const lease_paths& lease,
                                                const std::string& lease_id,
                                                const std::vector<submit_request>& requests,
                                                double now = unix_now()) {
  check_lease_id(lease_id);
  for (const auto& r : requests) detail::check_request(r);
  std::vector<submit_outcome> out;
  if (requests.empty()) return out;
  const std::int64_t first = allocate_seq(lease, static_cast<std::int64_t>(requests.size()));
  const std::string suffix = ".tmp." + detail::temp_suffix() + ".";
  auto id_of = [&](std::size_t i) { return format_task_id(first + static_cast<std::int64_t>(i)); };
  detail::batch_stage stage(lease);
  out.reserve(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) out.push_back({id_of(i), false});

  // Keys: written, flushed, then linked into place in request order.
  std::vector<std::size_t> keyed;
  for (std::size_t i = 0; i < requests.size(); ++i)
    if (requests[i].key) keyed.push_back(i);
  if (!keyed.empty()) {
    std::size_t keys = stage.dir(lease.keys_dir());
    auto temp_key = [&](std::size_t i) {
      return "." + *requests[i].key + suffix + std::to_string(i);
    };
    std::size_t made = 0;
    try {
      for (; made < keyed.size(); ++made)
        stage.write_temp(keys, temp_key(keyed[made]), out[keyed[made]].id + "\n");
      stage.flush();
    } catch (...) {
      for (std::size_t k = 0; k < made; ++k) stage.remove(keys, temp_key(keyed[k]));
      throw;
    }
    for (std::size_t k = 0; k < keyed.size(); ++k) {
      std::size_t i = keyed[k];
      try {
        if (!stage.link(keys, temp_key(i), *requests[i].key))
          out[i] = {detail::read_key(lease, *requests[i].key), true};
      } catch (...) {
        for (std::size_t rest = k + 1; rest < keyed.size(); ++rest)
          stage.remove(keys, temp_key(keyed[rest]));
        throw;
      }
    }
  }

  // Tasks: temp files written on two threads, one flush, renames in seq order, one flush.
  std::vector<std::size_t> lane(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i)
    if (!out[i].existing)
      lane[i] = stage.dir(requests[i].node ? lease.inbox(*requests[i].node)
                                           : lease.inbox(std::string(any_lane)));
  auto temp_task = [&](std::size_t i) {
    return "." + out[i].id + ".json" + suffix + std::to_string(i);
  };
  std::vector<char> written(requests.size(), 0);
  auto remove_temps = [&] {
    for (std::size_t i = 0; i < requests.size(); ++i)
      if (written[i]) stage.remove(lane[i], temp_task(i));
  };
  try {
    detail::for_each_index_parallel(requests.size(), [&](std::size_t i) {
      if (out[i].existing) return;
      task_spec t =
          detail::make_spec(requests[i], lease_id, first + static_cast<std::int64_t>(i), now);
      stage.write_temp(lane[i], temp_task(i), json(t).dump() + "\n");
      written[i] = 1;
    });
    stage.flush();
    for (std::size_t i = 0; i < requests.size(); ++i) {
      if (!written[i]) continue;
      stage.rename(lane[i], temp_task(i), out[i].id + ".json");
      written[i] = 0;
    }
  } catch (...) {
    remove_temps();
    throw;
  }
  stage.flush();
  return out;
}

// Enqueues one task (atomic, fsync'd write).
inline submit_outcome submit_task(const lease_paths& lease, const std::string& lease_id,
                                  const submit_request& request, double now = unix_now()) {
  check_lease_id(lease_id);
  detail::check_request(request);
  if (request.key) {
    // A key already taken answers without allocating a seq.
    if (fs::exists(lease.key(*request.key))) return {detail::read_key(lease, *request.key), true};
  }
  task_spec t = detail::make_spec(request, lease_id, allocate_seq(lease, 1), now);
  if (t.key)
    if (auto earlier = detail::claim_key(lease, *t.key, t.id)) return {*earlier, true};
  fs::path p = detail::inbox_path(lease, t);
  ensure_dir(p.parent_path());
  write_json_atomic(p, json(t));
  return {t.id, false};
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
  return submit_task(lease, lease_id, r, now);
}

}  // namespace leaseq
