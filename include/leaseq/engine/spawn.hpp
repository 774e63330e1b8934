#pragma once

// The OS side of the runner: start a task in its own session (directly, or under a supervisor
// that records its exit status), reap it, signal its group.
// The runner talks to these operations through `process_ops`, so its loop can be driven by a
// fake in tests and by `posix_process_ops` for real.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "leaseq/detail/posix.hpp"
#include "leaseq/detail/process_identity.hpp"
#include "leaseq/detail/tree_guard.hpp"
#include "leaseq/engine/spawn_server.hpp"
#include "leaseq/engine/supervise.hpp"
#include "leaseq/model.hpp"

extern char** environ;  // NOLINT: POSIX

namespace leaseq {

// One task execution to start. stdout/stderr go to the two log files, opened (created,
// truncated) before the program is exec'd; stdin is /dev/null.
struct spawn_request {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
  std::string cwd;                // empty: the runner's own directory
  std::vector<std::string> env;   // the complete environment, "K=V" each
  std::string stdout_path;
  std::string stderr_path;
  // When set (the runner sets its LEASEQ_HOME), the logs' directory is opened by walking from
  // here without following a symlink (open_tree_dir) and the logs are created relative to it,
  // so a directory swapped for a link after the runner's check is never written through; the
  // supervisor gets it too (`--anchor`) for the status file.
  std::string anchor;
  // When set, the task runs under this supervisor (supervise.hpp): `supervisor __supervise
  // <status_path> <attempt> -- argv...`, which records the task's end in status_path even if
  // the runner is gone by then; with a spawn server (start_spawn_server) the server supervises
  // the task instead, and the executable is only the fallback. Empty: argv is exec'd directly.
  std::string supervisor;
  std::string status_path;
  std::string attempt;
  // Under a supervisor: it stops the task after this many seconds (SIGTERM, then SIGKILL
  // grace_s later), even when the runner is gone by then.
  std::optional<double> time_limit_s;
  double grace_s = 10;
};

// pid > 0 on success; otherwise error says why (missing binary, bad cwd, log not writable).
struct spawn_outcome {
  pid_t pid = -1;
  std::string error;
  std::uint64_t start_ticks = 0;  // the process's start time when the spawner read it; 0: not
};

// A task of an array (`submit --array`, or a line of `submit --each-line`): the array's id (the
// id of its first task) and this task's index. Kept in the task file as `array_id` and
// `array_index` (protocol version 3); tasks without them are no array's.
struct array_member {
  std::string id;
  std::int64_t index = 0;
};

inline std::optional<array_member> array_member_of(const task_spec& t) {
  if (!t.extra.is_object()) return std::nullopt;
  auto id = t.extra.find("array_id");
  auto index = t.extra.find("array_index");
  if (id == t.extra.end() || index == t.extra.end() || !id->is_string() ||
      !index->is_number_integer())
    return std::nullopt;
  return array_member{id->get<std::string>(), index->get<std::int64_t>()};
}

// LEASEQ_ARRAY_ID and LEASEQ_ARRAY_INDEX for an array's task; nothing for any other task. The
// runner adds these to LEASEQ_TASK_ID, LEASEQ_LEASE, LEASEQ_NODE, LEASEQ_ATTEMPT and
// CUDA_VISIBLE_DEVICES (README: "What a task sees").
inline std::vector<std::pair<std::string, std::string>> array_environment(const task_spec& t) {
  auto a = array_member_of(t);
  if (!a) return {};
  return {{"LEASEQ_ARRAY_ID", a->id}, {"LEASEQ_ARRAY_INDEX", std::to_string(a->index)}};
}

class process_ops {
 public:
  virtual ~process_ops() = default;
  virtual spawn_outcome spawn(const spawn_request& req) = 0;
  // One task of ours that has ended, without blocking; nullopt when none.
  virtual std::optional<child_exit> reap() = 0;
  // A descriptor that turns readable when reap() may have something besides a SIGCHLD (the
  // spawn server's reports); -1: none.
  virtual int event_fd() const { return -1; }
  // Tasks started by a supervisor that has died, whose end reap() will never tell (each once):
  // the runner watches them by pid, as it does a crashed runner's.
  virtual std::vector<pid_t> take_lost() { return {}; }
  // Sends sig to the process group led by pgid (each task leads its own session).
  virtual void signal_group(pid_t pgid, int sig) = 0;
  // Whether a process that is not our child (a task left by a crashed runner) still runs.
  virtual bool alive(pid_t pid) = 0;
  // Sends sig to the process group of a task left by a crashed runner, whose pid was read
  // from disk: only while pid still is that process (start time `start`, boot `boot`; start
  // 0: a protocol 1 claim, pid alone) and leads its own group. Returns whether it was sent.
  virtual bool signal_recorded_group(pid_t pgid, std::uint64_t start, const std::string& boot,
                                     int sig) {
    (void)start;
    (void)boot;
    if (pgid <= 1) return false;
    signal_group(pgid, sig);
    return true;
  }
};

// The environment of this process, with `overrides` applied ("K=V" entries replace K).
inline std::vector<std::string> merged_environment(
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::vector<std::string> out;
  auto overridden = [&](const char* entry) {
    const char* eq = std::strchr(entry, '=');
    std::size_t n = eq ? static_cast<std::size_t>(eq - entry) : std::strlen(entry);
    for (const auto& [k, v] : overrides)
      if (k.size() == n && std::strncmp(entry, k.c_str(), n) == 0) return true;
    return false;
  };
  for (char** e = environ; e && *e; ++e)
    if (!overridden(*e)) out.emplace_back(*e);
  for (const auto& [k, v] : overrides) out.push_back(k + "=" + v);
  return out;
}

class posix_process_ops : public process_ops {
 public:
  // Supervised tasks are then started and watched by a spawn server (spawn_server.hpp), not
  // each under a supervisor exec'd for it. Call while the process has a single thread.
  void start_spawn_server() { server_ = std::make_unique<spawn_server>(); }

  int event_fd() const override { return server_ && server_->alive() ? server_->fd() : -1; }

  std::vector<pid_t> take_lost() override {
    return server_ ? server_->take_lost() : std::vector<pid_t>{};
  }

  spawn_outcome spawn(const spawn_request& req) override {
    spawn_outcome out;
    if (req.argv.empty()) {
      out.error = "empty argv";
      return out;
    }
    if (!req.cwd.empty()) {
      struct stat st;
      if (::stat(req.cwd.c_str(), &st) != 0) {
        out.error = "cwd " + req.cwd + ": " + std::strerror(errno);
        return out;
      }
      if (!S_ISDIR(st.st_mode)) {
        out.error = "cwd " + req.cwd + ": not a directory";
        return out;
      }
    }
    // Both logs (and the supervisor's status file) live in one directory, opened once.
    fs::path log_dir = fs::path(req.stdout_path).parent_path();
    detail::unique_fd dir;
    try {
      dir = req.anchor.empty() ? detail::unique_fd(::open(log_dir.empty() ? "." : log_dir.c_str(),
                                                          O_RDONLY | O_DIRECTORY | O_CLOEXEC))
                               : detail::open_tree_dir(req.anchor, log_dir, false);
    } catch (const std::exception& e) {
      out.error = e.what();
      return out;
    }
    if (!dir) {
      out.error = "cannot open log " + req.stdout_path + ": " + std::strerror(errno);
      return out;
    }
    auto open_log = [&](const std::string& path, detail::unique_fd& fd) {
      const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW;
      if (req.anchor.empty() && fs::path(path).parent_path() != log_dir)
        fd.reset(::open(path.c_str(), flags, 0600));
      else
        fd.reset(::openat(dir.get(), fs::path(path).filename().c_str(), flags, 0600));
      if (!fd) out.error = "cannot open log " + path + ": " + std::strerror(errno);
      return static_cast<bool>(fd);
    };
    detail::unique_fd out_fd, err_fd;
    if (!open_log(req.stdout_path, out_fd) || !open_log(req.stderr_path, err_fd)) return out;

    if (!req.supervisor.empty() && server_ && server_->alive() &&
        fs::path(req.status_path).parent_path() == log_dir) {
      served_request sr{req.argv,    req.env,          req.cwd,    req.status_path,
                        req.attempt, req.time_limit_s, req.grace_s};
      served_spawn s = server_->spawn(sr, out_fd.get(), err_fd.get(), dir.get());
      if (!s.server_gone) {
        out.pid = s.pid;
        out.start_ticks = s.start_ticks;
        out.error = s.error;
        return out;
      }
      // Under an exec'd supervisor instead; a task the server may have started is lost to it.
    }

    detail::task_spawn_setup setup(out_fd.get(), err_fd.get(), req.cwd);

    // A supervisor removed since the runner started (a package uninstalled under it) must not
    // make every task fail: the task then runs as it would without one.
    bool supervised = !req.supervisor.empty() && ::access(req.supervisor.c_str(), X_OK) == 0;
    std::vector<std::string> words;
    if (supervised) {
      words = {req.supervisor, supervise_verb, req.status_path, req.attempt};
      if (!req.anchor.empty()) words.insert(words.end(), {"--anchor", req.anchor});
      if (req.time_limit_s)
        // Shortest exact form, whatever the locale: 1e-07 stays a limit, never "0.000000".
        words.insert(words.end(), {"--time-limit", fmt::format("{}", *req.time_limit_s), "--grace",
                                   fmt::format("{}", req.grace_s)});
      words.push_back("--");
    }
    words.insert(words.end(), req.argv.begin(), req.argv.end());
    std::vector<char*> argv, envp;
    for (const auto& a : words) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : req.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    pid_t pid = -1;
    // The supervisor is a path, never looked up; it looks up the task's program itself.
    int rc =
        supervised
            ? ::posix_spawn(&pid, argv[0], &setup.actions, &setup.attr, argv.data(), envp.data())
            : ::posix_spawnp(&pid, argv[0], &setup.actions, &setup.attr, argv.data(), envp.data());
    if (rc != 0) {
      out.error = words[0] + ": " + std::strerror(rc);
      return out;
    }
    out.pid = pid;
    return out;
  }

  std::optional<child_exit> reap() override {
    if (server_)
      if (auto e = server_->next_exit()) return e;
    int status = 0;
    pid_t pid;
    do pid = ::waitpid(-1, &status, WNOHANG);
    while (pid < 0 && errno == EINTR);
    if (pid <= 0) return std::nullopt;
    child_exit e;
    e.pid = pid;
    if (WIFEXITED(status))
      e.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
      e.signal = WTERMSIG(status);
    return e;
  }

  void signal_group(pid_t pgid, int sig) override {
    if (pgid <= 1) return;
    // A task of the server: by the server, which holds it unreaped until its end is reported.
    if (server_ && server_->serves(pgid)) {
      server_->signal(pgid, sig);
      return;
    }
    ::kill(-pgid, sig);
  }

  // Through a pidfd where the kernel has them (detail::signal_recorded_process): the identity
  // check and the signal cannot be split by a reuse of the pid.
  bool signal_recorded_group(pid_t pgid, std::uint64_t start, const std::string& boot,
                             int sig) override {
    return detail::signal_recorded_process(pgid, start, boot, sig, true) == 0;
  }

  bool alive(pid_t pid) override {
    if (pid <= 1) return false;
    if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
    // A zombie nobody reaps (no init in a container) has ended too.
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return ::kill(pid, 0) == 0 || errno == EPERM;
    auto close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size()) return true;
    char state = line[close + 2];
    if (state == 'X') return false;
    if (state != 'Z') return true;
    // A task a spawn server has not reaped yet: it is writing the task's .exit file and reaps
    // the task after, so the task has not ended for a watcher that reads that file next.
    long ppid = std::atol(line.c_str() + close + 3);
    std::ifstream comm("/proc/" + std::to_string(ppid) + "/comm");
    std::string name;
    return ppid > 1 && std::getline(comm, name) && name == "leaseq-sup";
  }

 private:
  std::unique_ptr<spawn_server> server_;
};

}  // namespace leaseq
