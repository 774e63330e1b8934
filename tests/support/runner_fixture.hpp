#pragma once

// Drives the real leaseq program against a lease home in a temp dir: submits, results,
// heartbeats, and `leaseq runner` child processes. Shared by the end-to-end test files.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <leaseq/detail/dir.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/model.hpp>
#include <leaseq/paths.hpp>

#include "test_support.hpp"

namespace e2e {

using namespace leaseq;
using namespace std::chrono_literals;
using test_support::temp_dir;
using test_support::wait_until;
namespace fs = std::filesystem;

inline const std::string lease_id = "local:e2e";

// A lease home in a temp dir plus helpers to drive the leaseq program against it.
struct fixture {
  temp_dir tmp;
  fs::path home = tmp / "home";
  lease_paths lease{home / "runs" / lease_id};
  std::string path_prefix;  // prepended to PATH for runners (fake nvidia-smi)

  test_support::command_result leaseq(const std::string& args, bool with_stderr = true) const {
    return test_support::run_command("LEASEQ_HOME=" + test_support::shell_quote(home.string()) +
                                     " " + LEASEQ_BIN + " " + args +
                                     (with_stderr ? " 2>&1" : " 2>/dev/null"));
  }
  std::string submit(const std::string& args) const {
    auto r = leaseq("submit --lease " + lease_id + " " + args, false);
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    std::string id = r.out.substr(0, r.out.find('\n'));
    REQUIRE(is_valid_task_id(id));
    return id;
  }
  std::optional<json> result_of(const std::string& id) const {
    for (const auto& n : detail::list_dir(lease.done_root().string()).names) {
      json_outcome r = read_json_tolerant(lease.result(n, id));
      if (r.ok()) return r.value;
    }
    return std::nullopt;
  }
  json wait_result(const std::string& id, std::chrono::milliseconds timeout = 60s) const {
    std::optional<json> r;
    bool ok = wait_until([&] { return (r = result_of(id)).has_value(); }, timeout);
    INFO("waiting for the result of " << id);
    REQUIRE(ok);
    return *r;
  }
  std::size_t count(const fs::path& dir) const {
    return detail::list_dir(dir.string()).names.size();
  }
  std::size_t count_results() const {
    std::size_t n = 0;
    for (const auto& d : detail::list_dir(lease.done_root().string()).names)
      n += count(lease.done_root() / d);
    return n;
  }
  std::optional<json> hb(const std::string& node) const {
    return read_json_tolerant(lease.heartbeat(node)).value;
  }
  std::string log_of(const std::string& node, const std::string& id) const {
    return test_support::read_text(lease.stdout_log(node, id));
  }
};

// One `leaseq runner` child process.
class runner_proc {
 public:
  runner_proc(const fixture& f, const std::string& node, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {LEASEQ_BIN, "runner", "--lease", lease_id, "--node", node};
    args.insert(args.end(), extra.begin(), extra.end());
    log_ = (f.tmp / ("runner-" + node + ".stderr")).string();
    std::string home = f.home.string();
    std::string path = f.path_prefix.empty() ? std::string(std::getenv("PATH"))
                                             : f.path_prefix + ":" + std::getenv("PATH");
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::setenv("LEASEQ_HOME", home.c_str(), 1);
      ::setenv("PATH", path.c_str(), 1);
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      ::dup2(fd, 2);
      ::dup2(fd, 1);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  runner_proc(const runner_proc&) = delete;
  runner_proc& operator=(const runner_proc&) = delete;
  ~runner_proc() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  pid_t pid() const { return pid_; }
  // The runner's spawn server (its child `leaseq-sup`, the supervisor of its tasks), or -1.
  pid_t spawn_server() const {
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::string name = e.path().filename().string();
      if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string stat = test_support::read_text(e.path() / "stat");
      auto close = stat.rfind(')');
      if (close == std::string::npos || stat.find("(leaseq-sup)") == std::string::npos) continue;
      std::istringstream rest(stat.substr(close + 2));
      std::string state;
      pid_t ppid = -1;
      rest >> state >> ppid;
      if (ppid == pid_) return static_cast<pid_t>(std::stol(name));
    }
    return -1;
  }
  // Waits for the exit; returns the exit code (128+signal when killed).
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  std::string log() const { return test_support::read_text(log_); }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

inline bool hb_says(const fixture& f, const std::string& node, const char* key, const json& value) {
  auto h = f.hb(node);
  return h && h->contains(key) && (*h)[key] == value;
}

}  // namespace e2e
