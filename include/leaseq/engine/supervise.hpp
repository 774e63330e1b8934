#pragma once

// The task supervisor: `leaseq __supervise <status file> <attempt> -- argv...`. The runner
// starts each task under it (as Slurm's slurmstepd does), so that a task's true end is known
// even when the runner that started it is gone: the supervisor outlives a crashed runner,
// waits for the task and writes its exit status to a file the next runner reads
// (`logs/<node>/<id>.exit`, protocol.md "Result file").
//
// It is invisible to the runner that started it: it leads the task's session, forks the task
// into the same process group (so a cancel's signal to the group reaches the task), ignores
// the signals meant for the task, and exits exactly as the task did (same exit code, or the
// same signal re-raised), so reaping it tells what reaping the task would have told.
//
// With `--time-limit S` (protocol version 3) it also enforces the task's time limit, since it
// outlives the runner: S seconds after it started the task, SIGTERM to the process group, and
// `--grace G` seconds later SIGKILL; the status file then says `"time_limit": true`.
//
// With `--anchor DIR` (the runner passes its LEASEQ_HOME) the status file's directory is
// opened once, before the task starts, by walking from DIR without following a symlink
// (open_tree_dir), and the file is written relative to that descriptor: a logs/<node> swapped
// for a link later is never written through. Without it, the directory itself must not be a
// link (O_NOFOLLOW on its last component).

#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "leaseq/clock.hpp"
#include "leaseq/detail/posix.hpp"
#include "leaseq/detail/tree_guard.hpp"
#include "leaseq/file_io.hpp"

extern char** environ;  // NOLINT: POSIX

namespace leaseq {

// The word that makes the leaseq program a supervisor; not a command of its CLI.
inline constexpr const char* supervise_verb = "__supervise";

// What a supervisor wrote about one attempt of a task.
struct exit_status {
  std::string attempt;
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::optional<double> finished;
  std::optional<std::string> spawn_failed;  // the program could not be started: why
  bool time_limit = false;                  // the supervisor stopped it at its time limit
};

// The status file at path, when it is readable and belongs to `attempt` (a file left by an
// earlier attempt of the task says nothing about this one).
inline std::optional<exit_status> read_exit_status(const fs::path& path,
                                                   const std::string& attempt) {
  if (attempt.empty()) return std::nullopt;
  json_outcome r = read_json_tolerant(path);
  if (!r.ok() || !r.value->is_object()) return std::nullopt;
  const json& j = *r.value;
  auto a = j.find("attempt");
  if (a == j.end() || !a->is_string() || a->get<std::string>() != attempt) return std::nullopt;
  exit_status s;
  s.attempt = attempt;
  auto small_int = [&](const char* key) -> std::optional<int> {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return std::nullopt;
    auto v = it->get<long long>();
    if (v < 0 || v > 255) return std::nullopt;
    return static_cast<int>(v);
  };
  s.exit_code = small_int("exit_code");
  s.signal = small_int("signal");
  if (auto f = j.find("finished"); f != j.end() && f->is_number()) s.finished = f->get<double>();
  if (auto f = j.find("spawn_failed"); f != j.end() && f->is_string())
    s.spawn_failed = f->get<std::string>();
  if (auto f = j.find("time_limit"); f != j.end() && f->is_boolean()) s.time_limit = f->get<bool>();
  // A file that tells nothing (a hand-edited one) is no evidence of how the task ended.
  if (!s.exit_code && !s.signal && !s.spawn_failed) return std::nullopt;
  return s;
}

namespace detail {

// The signals a supervisor must survive: everything sent to the task's group that would end
// it by default (cancel's SIGTERM, Slurm's scancel --signal, a hangup). Faults (SEGV, ...)
// stay fatal: they would be a bug of the supervisor itself. SIGCHLD stays as it is: ignoring
// it would reap the task behind waitpid's back.
inline std::vector<int> supervisor_shielded_signals() {
  std::vector<int> v = {SIGHUP,  SIGINT,  SIGQUIT,   SIGPIPE, SIGALRM, SIGTERM, SIGUSR1,
                        SIGUSR2, SIGPOLL, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGPWR};
#ifdef SIGSTKFLT
  v.push_back(SIGSTKFLT);
#endif
  for (int s = SIGRTMIN; s <= SIGRTMAX; ++s) v.push_back(s);
  return v;
}

// The status file's directory, held from the supervisor's start (see the top of this file);
// invalid when it cannot be opened safely (then no status is written: the runner reports the
// task as lost rather than trusting a file outside the tree).
inline unique_fd open_status_dir(const char* status_path, const char* anchor) {
  fs::path dir = fs::path(status_path).parent_path();
  try {
    if (anchor && *anchor) return open_tree_dir(anchor, dir, false);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "leaseq supervisor: %s\n", e.what());
    return unique_fd();
  }
  unique_fd fd(
      ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd)
    std::fprintf(stderr, "leaseq supervisor: cannot open %s: %s\n", dir.c_str(),
                 std::strerror(errno));
  return fd;
}

inline void write_supervisor_status(int dir_fd, const char* path, const json& status) {
  if (dir_fd < 0) return;  // open_status_dir() said why
  try {
    // Temp + rename, not fsync'd: it matters only when the runner died while the machine
    // stayed up (a power loss takes the running task with it), and an fsync per task
    // halved the runner's throughput.
    replace_file_at(dir_fd, fs::path(path).filename().string(), json_file_text(status),
                    fs::path(path).parent_path(), false);
  } catch (const std::exception& e) {
    // The supervisor's stderr is the task's stderr log: the only place anyone will look.
    std::fprintf(stderr, "leaseq supervisor: cannot write the exit status: %s\n", e.what());
  }
}

// Starts the task with posix_spawnp: a vfork-like clone that neither copies the supervisor's
// memory nor makes it fault its pages back in, as fork did (about a third of a supervisor's
// cost for a short task). The task gets the dispositions the supervisor was started with (the
// shielded signals it did not inherit ignored go back to default) and, when `mask` is given,
// that signal mask. Returns the pid; or -1 with `exec_errno` set when the program could not
// be started; or -1 with `exec_errno` 0 when the caller must fork and execvp itself: an
// executable without a #! line (ENOEXEC), which execvp hands to /bin/sh and posix_spawnp
// does not, or a spawn that failed for another reason than the exec.
inline pid_t spawn_task(char** cmd, const std::vector<int>& shielded,
                        const std::vector<struct sigaction>& saved, const sigset_t* mask,
                        int& exec_errno) {
  exec_errno = 0;
  posix_spawnattr_t attr;
  if (::posix_spawnattr_init(&attr) != 0) return -1;
  sigset_t to_default;
  sigemptyset(&to_default);
  for (std::size_t i = 0; i < shielded.size(); ++i)
    if (saved[i].sa_handler != SIG_IGN) sigaddset(&to_default, shielded[i]);
  short flags = POSIX_SPAWN_SETSIGDEF;
  ::posix_spawnattr_setsigdefault(&attr, &to_default);
  if (mask) {
    flags |= POSIX_SPAWN_SETSIGMASK;
    ::posix_spawnattr_setsigmask(&attr, mask);
  }
  ::posix_spawnattr_setflags(&attr, flags);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, cmd[0], nullptr, &attr, cmd, environ);
  ::posix_spawnattr_destroy(&attr);
  if (rc == 0) return pid;
  // ENOEXEC: execvp's /bin/sh fallback. EINVAL, ENOMEM, EAGAIN: the clone itself failed.
  if (rc != ENOEXEC && rc != EINVAL && rc != ENOMEM && rc != EAGAIN) exec_errno = rc;
  return -1;
}

// Ends this process the way the task ended, so the runner reaping it sees the task's end.
[[noreturn]] inline void die_by_signal(int sig) {
  struct rlimit no_core {};
  ::setrlimit(RLIMIT_CORE, &no_core);  // the task may have dumped core; its supervisor must not
  ::signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  // Not raise(): in a process made by a raw clone glibc's cached
  // thread id is its parent's, and raise() signals that id.
  ::kill(::getpid(), sig);
  ::_exit(128 + sig);  // a signal whose default is not to terminate
}

inline double monotonic_s() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Waits for the task; past `limit` seconds (measured from `start`) it sends SIGTERM to the
// process group (the supervisor ignores it), `grace` seconds later SIGKILL to the task.
// SIGCHLD is blocked by the caller, so it is waited for with a timeout instead of polled.
// Returns waitpid's answer; `stopped` tells whether the limit was reached.
inline pid_t wait_with_limit(pid_t pid, int& status, double start, double limit, double grace,
                             bool& stopped) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  double kill_at = -1;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w != 0 && !(w < 0 && errno == EINTR)) return w;
    double now = monotonic_s();
    if (!stopped && now >= start + limit) {
      stopped = true;
      ::kill(0, SIGTERM);  // the whole group: the task and its children
      kill_at = now + grace;
    } else if (stopped && kill_at >= 0 && now >= kill_at) {
      ::kill(pid, SIGKILL);  // the rest of the group goes when the supervisor dies the same way
      kill_at = -1;
    }
    double next = !stopped ? start + limit : kill_at >= 0 ? kill_at : now + 3600;
    double wait = std::min(std::max(next - now, 0.001), 3600.0);
    timespec ts{static_cast<time_t>(wait),
                static_cast<long>((wait - static_cast<double>(static_cast<time_t>(wait))) * 1e9)};
    ::sigtimedwait(&chld, nullptr, &ts);
  }
}

}  // namespace detail

// What one supervisor does (exec'd as `leaseq __supervise` for one task; the spawn server,
// spawn_server.hpp, supervises all of a runner's tasks itself).
struct supervise_plan {
  int status_dir = -1;      // the status file's directory (open_status_dir); -1: no status
  const char* status_name;  // the status file's path; written relative to status_dir
  std::string attempt;
  std::optional<double> limit;
  double grace = 10;
  char** cmd = nullptr;  // looked up in PATH of this process's environment
  double start = 0;      // monotonic_s() when the supervisor started
};

// Runs the task as a child in this process's group and waits for it. Returns the task's exit
// code (127 when it could not be started) or does not return at all (the task died by a
// signal, re-raised here).
inline int supervise(const supervise_plan& plan) {
  std::vector<int> shielded = detail::supervisor_shielded_signals();
  std::vector<struct sigaction> saved(shielded.size());
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  for (std::size_t i = 0; i < shielded.size(); ++i) ::sigaction(shielded[i], &ignore, &saved[i]);

  const std::string& attempt = plan.attempt;
  auto spawn_failed = [&](const std::string& why) {
    detail::write_supervisor_status(plan.status_dir, plan.status_name,
                                    json{{"attempt", attempt}, {"spawn_failed", why}});
    return 127;
  };
  // With a time limit, SIGCHLD is blocked so that its arrival can be waited for with a timeout.
  sigset_t chld, old_mask;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (plan.limit) ::sigprocmask(SIG_BLOCK, &chld, &old_mask);
  char** cmd = plan.cmd;
  int exec_errno = 0;
  ssize_t n = 0;
  pid_t pid =
      detail::spawn_task(cmd, shielded, saved, plan.limit ? &old_mask : nullptr, exec_errno);
  if (pid < 0 && exec_errno != 0) {
    n = sizeof exec_errno;  // not started: reported below, as a failed exec
    pid = 0;
  } else if (pid < 0) {
    // exec's failure comes back through a close-on-exec pipe: EOF means the exec happened.
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      return spawn_failed(std::string("pipe: ") + std::strerror(errno));
    detail::unique_fd err_r(fds[0]), err_w(fds[1]);
    pid = ::fork();
    if (pid < 0) return spawn_failed(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      // The task gets the dispositions the supervisor was started with (ignored ones are
      // inherited through exec, so each must be put back), and its signal mask.
      for (std::size_t i = 0; i < shielded.size(); ++i)
        ::sigaction(shielded[i], &saved[i], nullptr);
      if (plan.limit) ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
      ::execvp(cmd[0], cmd);
      int e = errno;
      (void)!::write(err_w.get(), &e, sizeof e);
      ::_exit(127);
    }
    err_w.reset();
    n = detail::read_retry(err_r.get(), &exec_errno, sizeof exec_errno);
  }
  if (n == static_cast<ssize_t>(sizeof exec_errno)) {
    if (pid > 0) ::waitpid(pid, nullptr, 0);  // the child that failed to exec
    return spawn_failed(std::string(cmd[0]) + ": " + std::strerror(exec_errno));
  }
  int status = 0;
  pid_t waited;
  bool stopped = false;
  if (plan.limit) {
    waited = detail::wait_with_limit(pid, status, plan.start, *plan.limit, plan.grace, stopped);
  } else {
    do waited = ::waitpid(pid, &status, 0);
    while (waited < 0 && errno == EINTR);
  }

  json out{
      {"attempt", attempt}, {"exit_code", nullptr}, {"signal", nullptr}, {"finished", unix_now()}};
  if (waited == pid && WIFEXITED(status)) out["exit_code"] = WEXITSTATUS(status);
  if (waited == pid && WIFSIGNALED(status)) out["signal"] = WTERMSIG(status);
  if (stopped) out["time_limit"] = true;
  detail::write_supervisor_status(plan.status_dir, plan.status_name, out);
  if (waited != pid) return 127;  // cannot happen: the task is our only child
  if (stopped && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
    ::kill(0, SIGKILL);  // what ignored SIGTERM past its grace goes with the task (and us)
  if (WIFSIGNALED(status)) detail::die_by_signal(WTERMSIG(status));
  return WEXITSTATUS(status);
}

// The supervisor's main: argv is `<program> __supervise <status file> <attempt> [--time-limit
// S [--grace G]] -- cmd...`. Returns as supervise() does (2 on a usage error).
inline int run_supervisor(int argc, char** argv) {
  supervise_plan plan;
  plan.start = detail::monotonic_s();
  int dashes = 4;
  const char* anchor = nullptr;
  auto seconds = [](const char* text, bool zero_ok) -> std::optional<double> {
    char* end = nullptr;
    double v = std::strtod(text, &end);
    if (end == text || *end != '\0' || !(zero_ok ? v >= 0 : v > 0) || v > 366 * 86400.0)
      return std::nullopt;
    return v;
  };
  bool usage_ok = argc >= 6 && std::strcmp(argv[1], supervise_verb) == 0;
  while (usage_ok && dashes + 1 < argc && std::strcmp(argv[dashes], "--") != 0) {
    bool is_limit = std::strcmp(argv[dashes], "--time-limit") == 0;
    bool is_grace = std::strcmp(argv[dashes], "--grace") == 0;
    if (std::strcmp(argv[dashes], "--anchor") == 0) {
      anchor = argv[dashes + 1];
      dashes += 2;
      continue;
    }
    auto v = (is_limit || is_grace) ? seconds(argv[dashes + 1], is_grace) : std::nullopt;
    if (!v) usage_ok = false;
    if (is_limit) plan.limit = v;
    if (is_grace && v) plan.grace = *v;
    dashes += 2;
  }
  if (!usage_ok || dashes + 1 >= argc || std::strcmp(argv[dashes], "--") != 0) {
    std::fprintf(stderr,
                 "usage: leaseq %s STATUS_FILE ATTEMPT [--time-limit S [--grace G]] [--anchor "
                 "DIR] -- COMMAND "
                 "[ARG...] (used by the runner)\n",
                 supervise_verb);
    return 2;
  }
  plan.status_name = argv[2];
  plan.attempt = argv[3];
  plan.cmd = argv + dashes + 1;
  detail::unique_fd status_dir = detail::open_status_dir(plan.status_name, anchor);
  plan.status_dir = status_dir.get();
  return supervise(plan);
}

}  // namespace leaseq
