#pragma once

// Control files: control/<node>/cancel_<task>_<uuid>.json, pause.json, resume.json.
// Writers (CLI, dashboard) and the runner-side reader.
//
// Cancel routing. A task pending in inbox/_any has no node yet, and the writer cannot know
// which runner will take it. cancel_task() therefore writes the cancel file into the control
// dir of every node that has a heartbeat (or only into the task's node when the task sits in a
// node lane or is claimed on a node). A runner that finds the task pending removes it from the
// inbox by claiming it (rename into its own claimed/ dir, so no other runner can start it) and
// writes a CANCELLED result; a runner that finds the task running stops it; a runner that finds
// it nowhere (another runner won, or it already ended) consumes the file and logs it. Every
// runner deletes the file once processed.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "leaseq/clock.hpp"
#include "leaseq/detail/dir.hpp"
#include "leaseq/detail/strings.hpp"
#include "leaseq/error.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/locate.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"

namespace leaseq {

namespace detail {

inline std::string random_uuid() {
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   (static_cast<std::uint64_t>(::getpid()) << 32)};
  std::uint64_t a = rng(), b = rng();
  // RFC 4122 version 4 layout.
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xffff,
                     b >> 48, b & 0xffffffffffffULL);
}

// "user@host" for the "by" field.
inline std::string control_author() {
  const char* user = std::getenv("USER");
  if (!user || !*user) user = std::getenv("LOGNAME");
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return std::string(user && *user ? user : "unknown") + "@" + host;
}

}  // namespace detail

// Writes control/<node>/cancel_<task>_<uuid>.json; returns its path.
inline fs::path write_cancel(const lease_paths& lease, const std::string& node,
                             const std::string& task_id, double now = unix_now()) {
  check_node(node);
  check_task_id(task_id);
  ensure_lease_dir(lease, lease.control(node));
  fs::path p = lease.control(node) / ("cancel_" + task_id + "_" + detail::random_uuid() + ".json");
  write_json_atomic(p, json{{"task", task_id}, {"ts", now}, {"by", detail::control_author()}});
  return p;
}

inline fs::path write_pause(const lease_paths& lease, const std::string& node,
                            double now = unix_now()) {
  ensure_lease_dir(lease, lease.control(check_node(node)));
  fs::path p = lease.control(node) / "pause.json";
  write_json_atomic(p, json{{"ts", now}, {"by", detail::control_author()}});
  return p;
}

inline fs::path write_resume(const lease_paths& lease, const std::string& node,
                             double now = unix_now()) {
  ensure_lease_dir(lease, lease.control(check_node(node)));
  fs::path p = lease.control(node) / "resume.json";
  write_json_atomic(p, json{{"ts", now}, {"by", detail::control_author()}});
  return p;
}

// Nodes that have a heartbeat file (hb/<node>.json).
inline std::vector<std::string> heartbeat_nodes(const lease_paths& lease) {
  std::vector<std::string> nodes;
  for (const std::string& f : detail::list_dir(lease.hb_dir().string()).names) {
    auto stem = detail::strip_suffix(f, ".json");
    if (!stem) continue;
    std::string n(*stem);
    if (is_valid_node(n)) nodes.push_back(n);
  }
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

struct cancel_outcome {
  task_place place = task_place::pending;
  std::vector<std::string> nodes;  // control dirs written into
};

// Routes a cancel as described at the top of this file. Throws when the task is unknown or
// already done, or when a pending _any task has no runner to hear it (no heartbeat at all);
// `fallback_node` (e.g. the local host for a local lease) is used in that last case.
inline cancel_outcome cancel_task(const lease_paths& lease, const std::string& task_id,
                                  const std::optional<std::string>& fallback_node = std::nullopt,
                                  double now = unix_now()) {
  auto loc = locate_task(lease, task_id);
  if (!loc) throw error("task " + task_id + " not found");
  cancel_outcome out;
  out.place = loc->place;
  if (loc->place == task_place::done)
    throw error("task " + task_id + " already ended (" +
                std::string(to_string(loc->result->state)) + ")");
  if (loc->dir != any_lane) {
    out.nodes.push_back(loc->dir);
  } else {
    out.nodes = heartbeat_nodes(lease);
    if (out.nodes.empty() && fallback_node) out.nodes.push_back(*fallback_node);
    if (out.nodes.empty())
      throw error("task " + task_id +
                  " is pending in _any and no runner of this lease has a heartbeat yet");
  }
  for (const auto& n : out.nodes) write_cancel(lease, n, task_id, now);
  return out;
}

// ---- runner side ----

struct cancel_request {
  std::string task;
  fs::path path;
};

struct control_batch {
  std::vector<cancel_request> cancels;
  std::optional<bool> paused;      // set when pause.json or resume.json was present
  std::vector<fs::path> consumed;  // pause/resume files (as taken) to delete once applied
  std::vector<std::pair<fs::path, std::string>> bad;  // unreadable or invalid: reason
};

namespace detail {

// A pause or resume request the runner took: `.taken.<uuid>.pause.json` (or resume).
inline bool is_taken_control(const std::string& name, std::string_view what) {
  const std::string_view prefix = ".taken.";
  return name.size() > prefix.size() + what.size() && name.compare(0, prefix.size(), prefix) == 0 &&
         name.compare(name.size() - what.size(), what.size(), what) == 0;
}

}  // namespace detail

// One scan of control/<node>/. Files that cannot be read yet are reported in `bad` and left
// in place (the caller retries; it never deletes on a bad read).
//
// pause.json and resume.json have fixed names that any client may write again at any moment,
// so the scan first takes each one: renames it to `.taken.<uuid>.<name>`, and reads and (the
// caller) deletes only that name. A request written after the rename is a new file that the
// next scan takes; deleting by the fixed name could remove it unread. Taken files left by a
// runner that died before deleting them are read again by the next scan.
inline control_batch read_control(const lease_paths& lease, const std::string& node) {
  control_batch b;
  fs::path dir = lease.control(node);
  std::optional<double> pause_ts, resume_ts;
  std::vector<std::string> names = detail::list_dir(dir.string(), true).names;
  std::set<std::string> is_foreign;
  for (std::string& name : names) {
    if (name != "pause.json" && name != "resume.json") continue;
    // Another user's request is never taken: it stays under its own name, reported below.
    struct stat st;
    if (::lstat((dir / name).c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_uid != ::geteuid()) {
      is_foreign.insert(name);
      continue;
    }
    std::string taken = ".taken." + detail::random_uuid() + "." + name;
    if (::rename((dir / name).c_str(), (dir / taken).c_str()) == 0) name = taken;
  }
  for (const std::string& name : names) {
    fs::path p = dir / name;
    bool is_cancel =
        name.rfind("cancel_", 0) == 0 && name.size() > 12 && detail::ends_with(name, ".json");
    bool is_pause = detail::is_taken_control(name, ".pause.json");
    bool is_resume = detail::is_taken_control(name, ".resume.json");
    bool foreign = is_foreign.count(name) > 0;
    if (!is_cancel && !is_pause && !is_resume && !foreign) continue;
    // Only the caller's own commands are obeyed: a file another user put there (a control
    // directory others may write) is reported and left alone, never read. Checked before and
    // after the read, on the same inode, so a swap in between is not obeyed either.
    struct stat before, after;
    if (::lstat(p.c_str(), &before) != 0) continue;
    if (foreign || !S_ISREG(before.st_mode) || before.st_uid != ::geteuid()) {
      b.bad.emplace_back(p, fmt::format("not a file of yours (owner uid {}): ignored",
                                        static_cast<unsigned long>(before.st_uid)));
      continue;
    }
    json_outcome r = read_json_tolerant(p, 1 << 16);
    if (!r.ok()) {
      if (r.err != ENOENT) b.bad.emplace_back(p, r.reason);
      continue;
    }
    if (::lstat(p.c_str(), &after) != 0 || after.st_ino != before.st_ino ||
        after.st_dev != before.st_dev || after.st_uid != ::geteuid())
      continue;  // replaced while read: looked at again at the next scan
    const json& j = *r.value;
    if (is_cancel) {
      auto it = j.is_object() ? j.find("task") : j.end();
      if (!j.is_object() || it == j.end() || !it->is_string() ||
          !is_valid_task_id(it->get<std::string>())) {
        b.bad.emplace_back(p, "no valid \"task\" field");
        continue;
      }
      b.cancels.push_back({it->get<std::string>(), p});
      continue;
    }
    double ts = 0;
    if (j.is_object() && j.contains("ts") && j["ts"].is_number()) ts = j["ts"].get<double>();
    // Several of a kind (taken files left by a runner that died): the newest counts.
    std::optional<double>& kind_ts = is_pause ? pause_ts : resume_ts;
    kind_ts = kind_ts ? std::max(*kind_ts, ts) : ts;
    b.consumed.push_back(p);
  }
  // The newer one wins; on a tie, resume (never leave a runner stuck by accident).
  if (pause_ts && (!resume_ts || *pause_ts > *resume_ts))
    b.paused = true;
  else if (resume_ts)
    b.paused = false;
  std::sort(b.cancels.begin(), b.cancels.end(),
            [](const cancel_request& x, const cancel_request& y) { return x.path < y.path; });
  return b;
}

}  // namespace leaseq
