#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "leaseq/detail/posix.hpp"

namespace leaseq {

// What an external command (squeue, sbatch, nvidia-smi, ...) did.
struct command_output {
  int exit_code = -1;      // -1 when it did not exit normally
  int signal = 0;          // the signal that ended it, 0 if none
  bool timed_out = false;  // killed by us after the timeout
  bool spawn_failed = false;
  std::string out, err;  // captured, each capped at max_output bytes
  std::string error;     // why it failed to run or finish, for display
  bool ok() const noexcept { return exit_code == 0 && !timed_out && !spawn_failed; }
};

struct command_options {
  std::chrono::milliseconds timeout{10000};
  std::size_t max_output = 4u << 20;
  std::string stdin_data;  // written to the command's stdin, then closed
};

// Runs argv (PATH lookup, never a shell) with stdin from stdin_data (else /dev/null), captures
// stdout and stderr, and kills its whole process group once the timeout passes, so a hanging
// squeue can never freeze the caller.
inline command_output run_command(const std::vector<std::string>& argv,
                                  const command_options& opt = {}) {
  command_output r;
  if (argv.empty()) {
    r.spawn_failed = true;
    r.error = "empty command";
    return r;
  }
  int out_pipe[2], err_pipe[2], in_pipe[2], exec_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) || ::pipe2(err_pipe, O_CLOEXEC) || ::pipe2(in_pipe, O_CLOEXEC) ||
      ::pipe2(exec_pipe, O_CLOEXEC)) {
    r.spawn_failed = true;
    r.error = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::signal(SIGPIPE, SIG_DFL);
    ::execvp(cargv[0], cargv.data());
    int e = errno;
    (void)!::write(exec_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(in_pipe[0]);
  ::close(exec_pipe[1]);
  detail::unique_fd out_fd(out_pipe[0]), err_fd(err_pipe[0]), in_fd(in_pipe[1]),
      exec_fd(exec_pipe[0]);
  if (pid < 0) {
    r.spawn_failed = true;
    r.error = std::string("fork: ") + std::strerror(errno);
    return r;
  }
  ::setpgid(pid, pid);  // also from the parent, so the group exists before we may kill it
  int exec_errno = 0;
  if (detail::read_retry(exec_fd.get(), &exec_errno, sizeof exec_errno) == sizeof exec_errno) {
    int status;
    ::waitpid(pid, &status, 0);
    r.spawn_failed = true;
    r.exit_code = 127;
    r.error = argv[0] + ": " + std::strerror(exec_errno);
    return r;
  }
  ::fcntl(in_fd.get(), F_SETFL, O_NONBLOCK);
  std::size_t in_off = 0;
  if (opt.stdin_data.empty()) in_fd.reset();

  auto deadline = std::chrono::steady_clock::now() + opt.timeout;
  char buf[65536];
  while (out_fd || err_fd) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      r.timed_out = true;
      break;
    }
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_fd) {
      out_i = n;
      fds[n++] = {out_fd.get(), POLLIN, 0};
    }
    if (err_fd) {
      err_i = n;
      fds[n++] = {err_fd.get(), POLLIN, 0};
    }
    if (in_fd) {
      in_i = n;
      fds[n++] = {in_fd.get(), POLLOUT, 0};
    }
    int rc = ::poll(fds, n, static_cast<int>(left));
    if (rc < 0 && errno != EINTR) break;
    if (rc <= 0) continue;
    auto drain = [&](int idx, detail::unique_fd& fd, std::string& sink) {
      if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
      ssize_t got = detail::read_retry(fd.get(), buf, sizeof buf);
      if (got <= 0) {
        fd.reset();
        return;
      }
      std::size_t room = opt.max_output > sink.size() ? opt.max_output - sink.size() : 0;
      sink.append(buf, std::min(room, static_cast<std::size_t>(got)));
    };
    drain(out_i, out_fd, r.out);
    drain(err_i, err_fd, r.err);
    if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w =
          ::write(in_fd.get(), opt.stdin_data.data() + in_off, opt.stdin_data.size() - in_off);
      if (w > 0) in_off += static_cast<std::size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) in_fd.reset();
      if (in_off >= opt.stdin_data.size()) in_fd.reset();
    }
  }
  int status = 0;
  if (r.timed_out) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    r.error = argv[0] + ": timed out after " + std::to_string(opt.timeout.count()) + " ms";
    return r;
  }
  // Output closed; the command may still be running (a daemon child kept no pipe): wait for it
  // within what is left of the timeout.
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      r.timed_out = true;
      r.error = argv[0] + ": timed out after " + std::to_string(opt.timeout.count()) + " ms";
      return r;
    }
    ::usleep(2000);
  }
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
    if (r.exit_code != 0) r.error = argv[0] + ": exit code " + std::to_string(r.exit_code);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
    r.error = argv[0] + ": killed by signal " + std::to_string(r.signal);
  }
  return r;
}

}  // namespace leaseq
