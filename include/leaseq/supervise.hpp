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

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "leaseq/clock.hpp"
#include "leaseq/detail/posix.hpp"
#include "leaseq/file_io.hpp"

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

inline void write_supervisor_status(const char* path, const json& status) {
  try {
    // Temp + rename, not fsync'd: it matters only when the runner died while the machine
    // stayed up (a power loss takes the running task with it), and an fsync per task
    // halved the runner's throughput.
    write_file_atomic_nosync(path, json_file_text(status));
  } catch (const std::exception& e) {
    // The supervisor's stderr is the task's stderr log: the only place anyone will look.
    std::fprintf(stderr, "leaseq supervisor: cannot write the exit status: %s\n", e.what());
  }
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
  ::raise(sig);
  ::_exit(128 + sig);  // a signal whose default is not to terminate
}

}  // namespace detail

// The supervisor's main: argv is `<program> __supervise <status file> <attempt> -- cmd...`.
// Returns the task's exit code (127 when it could not be started, 2 on a usage error) or does
// not return at all (the task died by a signal, re-raised here).
inline int run_supervisor(int argc, char** argv) {
  if (argc < 6 || std::strcmp(argv[1], supervise_verb) != 0 || std::strcmp(argv[4], "--") != 0) {
    std::fprintf(stderr,
                 "usage: leaseq %s STATUS_FILE ATTEMPT -- COMMAND [ARG...] (used by the runner)\n",
                 supervise_verb);
    return 2;
  }
  const char* status_path = argv[2];
  const std::string attempt = argv[3];
  char** cmd = argv + 5;

  std::vector<int> shielded = detail::supervisor_shielded_signals();
  std::vector<struct sigaction> saved(shielded.size());
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  for (std::size_t i = 0; i < shielded.size(); ++i) ::sigaction(shielded[i], &ignore, &saved[i]);

  auto spawn_failed = [&](const std::string& why) {
    detail::write_supervisor_status(status_path, json{{"attempt", attempt}, {"spawn_failed", why}});
    return 127;
  };
  // exec's failure comes back through a close-on-exec pipe: EOF means the exec happened.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return spawn_failed(std::string("pipe: ") + std::strerror(errno));
  detail::unique_fd err_r(fds[0]), err_w(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) return spawn_failed(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // The task gets the dispositions the supervisor was started with (ignored ones are
    // inherited through exec, so each must be put back).
    for (std::size_t i = 0; i < shielded.size(); ++i) ::sigaction(shielded[i], &saved[i], nullptr);
    ::execvp(cmd[0], cmd);
    int e = errno;
    (void)!::write(err_w.get(), &e, sizeof e);
    ::_exit(127);
  }
  err_w.reset();
  int exec_errno = 0;
  ssize_t n = detail::read_retry(err_r.get(), &exec_errno, sizeof exec_errno);
  int status = 0;
  pid_t waited;
  do waited = ::waitpid(pid, &status, 0);
  while (waited < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof exec_errno))
    return spawn_failed(std::string(cmd[0]) + ": " + std::strerror(exec_errno));

  json out{
      {"attempt", attempt}, {"exit_code", nullptr}, {"signal", nullptr}, {"finished", unix_now()}};
  if (waited == pid && WIFEXITED(status)) out["exit_code"] = WEXITSTATUS(status);
  if (waited == pid && WIFSIGNALED(status)) out["signal"] = WTERMSIG(status);
  detail::write_supervisor_status(status_path, out);
  if (waited != pid) return 127;  // cannot happen: the task is our only child
  if (WIFSIGNALED(status)) detail::die_by_signal(WTERMSIG(status));
  return WEXITSTATUS(status);
}

}  // namespace leaseq
