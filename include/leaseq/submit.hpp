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

#include <map>
#include <optional>
#include <string>
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

// argv joined for display, each word quoted for sh only when it needs it.
inline std::string display_command(const std::vector<std::string>& argv) {
  if (argv.size() == 3 && argv[0] == "/bin/sh" && argv[1] == "-c") return argv[2];
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty();
    for (char c : a)
      if (!(detail::is_alnum(c) ||
            std::string_view("-_./=:,+@%").find(c) != std::string_view::npos))
        plain = false;
    if (plain) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
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

// Enqueues the requests in order under one seq allocation. Returns one outcome per request.
// Each task file is written atomically; the whole batch is flushed with one syncfs() before
// returning, so a batch of 100 000 costs one flush rather than 100 000.
inline std::vector<submit_outcome> submit_batch(const lease_paths& lease,
                                                const std::string& lease_id,
                                                const std::vector<submit_request>& requests,
                                                double now = unix_now()) {
  check_lease_id(lease_id);
  for (const auto& r : requests) detail::check_request(r);
  std::vector<submit_outcome> out;
  if (requests.empty()) return out;
  std::int64_t first = allocate_seq(lease, static_cast<std::int64_t>(requests.size()));
  std::map<std::string, bool> made_dirs;
  const std::string tmp_prefix = detail::temp_suffix() + ".";
  out.reserve(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    task_spec t =
        detail::make_spec(requests[i], lease_id, first + static_cast<std::int64_t>(i), now);
    if (t.key) {
      if (auto earlier = detail::claim_key(lease, *t.key, t.id)) {
        out.push_back({*earlier, true});
        continue;
      }
    }
    fs::path p = detail::inbox_path(lease, t);
    std::string dir = p.parent_path().string();
    if (!made_dirs[dir]) {
      ensure_dir(p.parent_path());
      made_dirs[dir] = true;
    }
    write_file_atomic_nosync(p, json(t).dump() + "\n", tmp_prefix + std::to_string(i));
    out.push_back({t.id, false});
  }
  detail::unique_fd root(::open(lease.root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root && ::syncfs(root.get()) != 0)
    throw io_error("cannot flush submitted tasks", lease.root().string(), errno);
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
