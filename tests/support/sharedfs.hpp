#pragma once

// The shared-filesystem test bed (tools/sharedfs) as the tests see it: N sshfs views of one
// exported directory, each with its own attribute and directory cache and its own flock()
// table, like N cluster nodes on one NFS/Lustre/BeeGFS export. A test uses one relative
// directory; each simulated node reaches it through its own view.

#include <fcntl.h>
#include <signal.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace test_support {

// What every test prints (as a Catch WARN) when the bed is not running; tools/test turns it
// into a failure unless LEASEQ_SKIP_SHAREDFS=1.
inline const char* const sharedfs_skip_message =
    "skipped: no shared-filesystem test bed (run tools/sharedfs start)";

struct sharedfs_bed {
  std::vector<fs::path> views;  // mount points, one per simulated node
  fs::path export_dir;          // the directory behind them (local, no cache)
};

namespace detail {

inline std::vector<fs::path> split_colon(const std::string& s) {
  std::vector<fs::path> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, ':');)
    if (!part.empty()) out.emplace_back(part);
  return out;
}

// A FUSE mount that answers (statfs on a dead sshfs fails with ENOTCONN).
inline bool is_fuse_mount(const fs::path& p) {
  struct statfs st {};
  if (::statfs(p.c_str(), &st) != 0) return false;
  return static_cast<unsigned long>(st.f_type) == 0x65735546UL;  // FUSE_SUPER_MAGIC
}

}  // namespace detail

// The running bed: LEASEQ_SHAREDFS_VIEWS / LEASEQ_SHAREDFS_EXPORT (tools/sharedfs env), else
// tools/sharedfs's default layout under LEASEQ_SHAREDFS_DIR or /tmp/leaseq-sharedfs. Nothing
// (and `why` says why) when fewer than `min_views` views are mounted and answering, or when
// there is no FUSE device at all (`fuse_device`: a test names another path).
inline std::optional<sharedfs_bed> find_sharedfs(std::string& why, std::size_t min_views = 6,
                                                 const fs::path& fuse_device = "/dev/fuse") {
  std::error_code fec;
  if (!fs::exists(fuse_device, fec)) {
    why = "no " + fuse_device.string() + ": FUSE is missing";
    return std::nullopt;
  }
  sharedfs_bed bed;
  const char* views = std::getenv("LEASEQ_SHAREDFS_VIEWS");
  const char* exp = std::getenv("LEASEQ_SHAREDFS_EXPORT");
  const char* dir = std::getenv("LEASEQ_SHAREDFS_DIR");
  fs::path base = dir && *dir ? fs::path(dir) : fs::path("/tmp/leaseq-sharedfs");
  if (views && *views) {
    bed.views = detail::split_colon(views);
  } else {
    for (int i = 1; i <= 64; ++i) {
      fs::path v = base / "views" / ("v" + std::to_string(i));
      if (!detail::is_fuse_mount(v)) break;
      bed.views.push_back(v);
    }
  }
  bed.export_dir = exp && *exp ? fs::path(exp) : base / "export";
  if (bed.views.size() < min_views) {
    why = "found " + std::to_string(bed.views.size()) + " views, need " + std::to_string(min_views);
    return std::nullopt;
  }
  for (const auto& v : bed.views)
    if (!detail::is_fuse_mount(v)) {
      why = v.string() + " is not a mounted, answering FUSE filesystem";
      return std::nullopt;
    }
  std::error_code ec;
  if (!fs::is_directory(bed.export_dir, ec)) {
    why = "no export directory " + bed.export_dir.string();
    return std::nullopt;
  }
  return bed;
}

// WARNs the skip message and returns from the test when the bed is not running; else declares
// `bed_var` (a sharedfs_bed).
#define LEASEQ_REQUIRE_SHAREDFS(bed_var)                                        \
  std::string bed_var##_why_;                                                   \
  auto bed_var##_opt_ = test_support::find_sharedfs(bed_var##_why_);            \
  if (!bed_var##_opt_) {                                                        \
    WARN(test_support::sharedfs_skip_message << " (" << bed_var##_why_ << ")"); \
    return;                                                                     \
  }                                                                             \
  const test_support::sharedfs_bed& bed_var = *bed_var##_opt_

// One test's directory on the export, reached as `view(i) / rel` from node i. Created and
// removed through the export itself (no cache in the way).
class shared_dir {
 public:
  shared_dir(const sharedfs_bed& bed, const std::string& name) : bed_(bed) {
    std::random_device rd;
    rel_ = "home-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 100000);
    std::error_code ec;
    fs::remove_all(bed_.export_dir / rel_, ec);
    fs::create_directories(bed_.export_dir / rel_);
  }
  shared_dir(const shared_dir&) = delete;
  shared_dir& operator=(const shared_dir&) = delete;
  ~shared_dir() {
    if (std::getenv("LEASEQ_TEST_KEEP")) return;
    std::error_code ec;
    fs::remove_all(bed_.export_dir / rel_, ec);
  }
  fs::path on_view(std::size_t i) const { return bed_.views.at(i) / rel_; }
  fs::path on_export() const { return bed_.export_dir / rel_; }
  const std::string& rel() const { return rel_; }

 private:
  const sharedfs_bed& bed_;
  std::string rel_;
};

// A child process with its own environment additions; stdout and stderr go to files.
class child_process {
 public:
  child_process(const std::vector<std::string>& argv,
                const std::vector<std::pair<std::string, std::string>>& env,
                const fs::path& out_file, const fs::path& err_file) {
    std::vector<std::string> args = argv;
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      int in = ::open("/dev/null", O_RDONLY);
      int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (in < 0 || out < 0 || err < 0) ::_exit(126);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      std::vector<char*> cargv;
      for (auto& a : args) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  // Waits for the exit; the exit code, 128+signal when killed.
  int wait() {
    if (pid_ <= 0) return exit_code_;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }
  // Stops with SIGTERM, SIGKILL after `grace`; the exit code.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(15)) {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, SIGTERM);
    auto end = std::chrono::steady_clock::now() + grace;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > end) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }
  pid_t pid() const noexcept { return pid_; }
  // Reaps it when it has exited (its code is then what wait() returns).
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == 0) return true;
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

}  // namespace test_support
