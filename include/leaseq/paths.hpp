#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "leaseq/detail/posix.hpp"
#include "leaseq/detail/tree_guard.hpp"
#include "leaseq/error.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/names.hpp"

namespace leaseq {

// The one place that knows where things live under $LEASEQ_HOME. Every name is checked
// before it is joined into a path, so a hostile name never reaches the filesystem.
class home_paths {
 public:
  explicit home_paths(fs::path root) : root_(std::move(root)) {}

  // $LEASEQ_HOME, else ~/.leaseq. Checks nothing about who owns it: the program calls
  // check_home_trust() (trust.hpp) once per command; a library that embeds leaseq decides.
  static home_paths from_env() {
    if (const char* h = std::getenv("LEASEQ_HOME"); h && *h) return home_paths(h);
    const char* home = std::getenv("HOME");
    if (!home || !*home) throw error("neither LEASEQ_HOME nor HOME is set");
    return home_paths(fs::path(home) / ".leaseq");
  }

  const fs::path& root() const noexcept { return root_; }
  fs::path config() const { return root_ / "config.json"; }
  fs::path index() const { return root_ / "index.json"; }
  fs::path index_lock() const { return root_ / "index.lock"; }
  fs::path runs() const { return root_ / "runs"; }
  fs::path lease_dir(const std::string& lease_id) const {
    return runs() / check_lease_id(lease_id);
  }

  // Creates the root with mode 0700 if missing.
  void ensure_root() const { ensure_dir(root_, 0700); }

 private:
  fs::path root_;
};

// Paths inside one lease tree, runs/<lease_id>/.
class lease_paths {
 public:
  // A bare root is its own anchor: only what lies below it is guarded against symlinks.
  explicit lease_paths(fs::path root) : root_(std::move(root)), anchor_(root_) {}
  lease_paths(const home_paths& home, const std::string& lease_id)
      : root_(home.lease_dir(lease_id)), anchor_(home.root()) {}

  const fs::path& root() const noexcept { return root_; }
  // Where writers start their walk without following symlinks (open_lease_dir): the home when
  // the tree was reached through it, so a symlinked runs/ or runs/<lease> is refused too.
  const fs::path& anchor() const noexcept { return anchor_; }
  fs::path lease_json() const { return root_ / "lease.json"; }
  fs::path seq() const { return root_ / "seq"; }
  fs::path seq_lock() const { return root_ / "seq.lock"; }

  fs::path inbox_root() const { return root_ / "inbox"; }
  fs::path claimed_root() const { return root_ / "claimed"; }
  fs::path done_root() const { return root_ / "done"; }
  fs::path logs_root() const { return root_ / "logs"; }
  fs::path hb_dir() const { return root_ / "hb"; }
  fs::path control_root() const { return root_ / "control"; }
  fs::path keys_dir() const { return root_ / "keys"; }
  // Protocol 2: one entry per task id handed out (seq.hpp), and the protocol 1 floor.
  fs::path ids_dir() const { return root_ / "ids"; }
  fs::path ids_floor() const { return ids_dir() / "floor"; }
  fs::path archive_dir() const { return root_ / "archive"; }  // protocol 4: `leaseq clean`

  // Protocol 4: priority/<lane>/<id>.p<N>, markers of tasks with a priority above 0.
  fs::path priority_root() const { return root_ / "priority"; }

  fs::path inbox(const std::string& lane) const { return inbox_root() / check_lane(lane); }
  fs::path priority(const std::string& lane) const { return priority_root() / check_lane(lane); }
  fs::path claimed(const std::string& node) const { return claimed_root() / check_node(node); }
  fs::path done(const std::string& node) const { return done_root() / check_node(node); }
  fs::path logs(const std::string& node) const { return logs_root() / check_node(node); }
  fs::path control(const std::string& node) const { return control_root() / check_node(node); }

  fs::path inbox_task(const std::string& lane, const std::string& id) const {
    return inbox(lane) / (check_task_id(id) + ".json");
  }
  fs::path claimed_task(const std::string& node, const std::string& id) const {
    return claimed(node) / (check_task_id(id) + ".json");
  }
  fs::path result(const std::string& node, const std::string& id) const {
    return done(node) / (check_task_id(id) + ".result.json");
  }
  fs::path stdout_log(const std::string& node, const std::string& id) const {
    return logs(node) / (check_task_id(id) + ".out");
  }
  fs::path stderr_log(const std::string& node, const std::string& id) const {
    return logs(node) / (check_task_id(id) + ".err");
  }
  // Log paths as written into results: relative to the lease root.
  static std::string relative_stdout(const std::string& node, const std::string& id) {
    return "logs/" + check_node(node) + "/" + check_task_id(id) + ".out";
  }
  static std::string relative_stderr(const std::string& node, const std::string& id) {
    return "logs/" + check_node(node) + "/" + check_task_id(id) + ".err";
  }
  fs::path heartbeat(const std::string& node) const {
    return hb_dir() / (check_node(node) + ".json");
  }
  fs::path key(const std::string& key) const { return keys_dir() / check_key(key); }
  // flock'd by the node's runner for its whole life: one runner per node per lease.
  fs::path runner_lock(const std::string& node) const {
    return root_ / ("runner-" + check_node(node) + ".lock");
  }
  fs::path runner_log(const std::string& node) const {
    return root_ / ("runner-" + check_node(node) + ".log");
  }

 private:
  fs::path root_;
  fs::path anchor_;
};

// A directory of the lease tree that a writer is about to write into, created (0700) when
// missing, opened without following a symlink anywhere from the anchor down: a planted link
// (inbox/_any, control/<node>, keys, runs/<lease>) is refused with an error naming it instead
// of receiving the write. Every writer of the library goes through here.
inline detail::unique_fd open_lease_dir(const lease_paths& lease, const fs::path& dir) {
  return detail::open_tree_dir(lease.anchor(), dir);
}

// open_lease_dir for writers that then write by path (write_json_atomic): the walk refuses a
// planted link; the final name is still replaced by rename, never written through.
inline void ensure_lease_dir(const lease_paths& lease, const fs::path& dir) {
  (void)open_lease_dir(lease, dir);
}

// The short host name (up to the first dot), as used for the local lease and default node.
inline std::string short_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  std::string h(buf);
  if (auto dot = h.find('.'); dot != std::string::npos) h.resize(dot);
  return h.empty() ? "localhost" : h;
}

}  // namespace leaseq
