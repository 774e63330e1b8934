#pragma once

// The spawn server: a small process forked from the runner while it is still single-threaded
// and small, which forks task supervisors on request, without an exec. Exec'ing `leaseq
// __supervise` per task (dynamic loading, C++ start-up, resetting every signal) cost about
// 2 ms, most of a short task's overhead (docs/performance.md).
//
// Each supervisor is created with clone(CLONE_PARENT), so it is the runner's child, as an
// exec'd one is: the runner reaps it, signals its group, and a supervisor outlives a killed
// runner or server. It runs supervise() (supervise.hpp) with the runner's open logs and logs
// directory, in its own session.
//
// A supervisor starts its task only once the runner has recorded its pid (a "go" byte on a
// pipe only the runner holds, see release()): a runner killed in between closes that pipe and
// the supervisor exits without running anything, so a task never runs without a record that
// lets a later runner find it. (An exec'd supervisor carries LEASEQ_ATTEMPT in its own
// environment for that; a forked one has the runner's.)
//
// The server exits when the runner's end of its socket closes. If it dies, spawn() says so and
// the runner goes back to exec'ing supervisors.

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "leaseq/detail/posix.hpp"
#include "leaseq/engine/supervise.hpp"

extern char** environ;  // NOLINT: POSIX

namespace leaseq {

// What a supervisor is started with; the logs and the status file's directory travel as
// descriptors.
struct supervisor_request {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // the task's complete environment
  std::string cwd;               // empty: the runner's
  std::string status_path;       // opened relative to the directory descriptor
  std::string attempt;
  std::optional<double> time_limit_s;
  double grace_s = 10;
};

namespace detail {

// Length-prefixed strings: argv, env and paths are anyone's bytes (NUL excepted).
struct wire {
  std::string bytes;
  std::size_t at = 0;

  void put(const std::string& s) {
    auto n = static_cast<std::uint32_t>(s.size());
    bytes.append(reinterpret_cast<const char*>(&n), sizeof n);
    bytes += s;
  }
  void put(const std::vector<std::string>& v) {
    put(std::to_string(v.size()));
    for (const auto& s : v) put(s);
  }
  bool get(std::string& s) {
    std::uint32_t n;
    if (bytes.size() - at < sizeof n) return false;
    std::memcpy(&n, bytes.data() + at, sizeof n);
    at += sizeof n;
    if (bytes.size() - at < n) return false;
    s.assign(bytes, at, n);
    at += n;
    return true;
  }
  bool get(std::vector<std::string>& v) {
    std::string count;
    if (!get(count)) return false;
    std::size_t n = std::strtoull(count.c_str(), nullptr, 10);
    if (n > bytes.size()) return false;
    v.resize(n);
    for (auto& s : v)
      if (!get(s)) return false;
    return true;
  }
};

inline bool read_full(int fd, char* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = read_retry(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

inline bool write_full(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// One message: a 4-byte length, then the payload; `fds` ride on the first byte.
inline bool send_message(int sock, const std::string& payload, const std::vector<int>& fds) {
  std::string frame(sizeof(std::uint32_t), '\0');
  auto n = static_cast<std::uint32_t>(payload.size());
  std::memcpy(frame.data(), &n, sizeof n);
  frame += payload;
  iovec iov{frame.data(), 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t w;
  do w = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  return w == 1 && write_full(sock, frame.data() + 1, frame.size() - 1);
}

// False on EOF or error; received descriptors are returned close-on-exec.
inline bool receive_message(int sock, std::string& payload, std::vector<unique_fd>& fds) {
  char first;
  iovec iov{&first, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t r;
  do r = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r != 1) return false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < k; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  char rest[3];
  if (!read_full(sock, rest, sizeof rest)) return false;
  std::uint32_t n;
  char len[4] = {first, rest[0], rest[1], rest[2]};
  std::memcpy(&n, len, sizeof n);
  payload.resize(n);
  return read_full(sock, payload.data(), n);
}

// The supervisor, in the process the server just cloned: never returns.
[[noreturn]] inline void forked_supervisor(int server_sock, supervisor_request& req,
                                           std::vector<unique_fd>& fds) {
  ::close(server_sock);  // else the runner would not see the server's end close
  // What an exec'd supervisor gets from posix_spawn: these back to default, an empty mask.
  for (int s : {SIGTERM, SIGINT, SIGPIPE, SIGCHLD, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
    ::signal(s, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::prctl(PR_SET_NAME, "leaseq-sup", 0, 0, 0);
  ::setsid();
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ::dup2(null_fd, 0);
  ::dup2(fds[0].get(), 1);
  ::dup2(fds[1].get(), 2);
  // Wait for the runner's go: its pid is on record by then.
  char go = 0;
  if (read_retry(fds[3].get(), &go, 1) != 1 || go != 'g') ::_exit(127);
  fds[3].reset();
  supervise_plan plan;
  plan.start = monotonic_s();
  plan.status_dir = fds[2].get();
  plan.status_name = req.status_path.c_str();
  plan.attempt = req.attempt;
  plan.limit = req.time_limit_s;
  plan.grace = req.grace_s;
  std::vector<char*> argv, envp;
  for (auto& a : req.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : req.env) envp.push_back(e.data());
  envp.push_back(nullptr);
  plan.cmd = argv.data();
  if (!req.cwd.empty() && ::chdir(req.cwd.c_str()) != 0) {
    std::string why = "cwd " + req.cwd + ": " + std::strerror(errno);
    write_supervisor_status(plan.status_dir, plan.status_name,
                            json{{"attempt", plan.attempt}, {"spawn_failed", why}});
    ::_exit(127);
  }
  environ = envp.data();  // the task's: execvp looks its program up in the task's PATH
  ::_exit(supervise(plan));
}

// The server's loop, in the forked process: never returns.
[[noreturn]] inline void spawn_server_main(int sock, pid_t runner) {
  // Nothing of the runner's (its node lock above all) may stay open here or in a supervisor.
  if (sock != 3) {
    ::dup2(sock, 3);
    sock = 3;
  }
  if (::syscall(SYS_close_range, 4U, ~0U, 0U) != 0)
    for (int fd = 4; fd < 65536; ++fd) ::close(fd);
  ::prctl(PR_SET_NAME, "leaseq-spawner", 0, 0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (::getppid() != runner) ::_exit(0);  // the runner died before the line above
  // Signals for the runner's process group (a terminal's Ctrl-C, Slurm's scancel) are the
  // runner's to handle; the server ends when the runner does.
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) ::signal(s, SIG_IGN);
  for (;;) {
    std::string payload;
    std::vector<unique_fd> fds;
    if (!receive_message(sock, payload, fds)) ::_exit(0);
    wire in{payload};
    supervisor_request req;
    std::string limit, grace;
    bool ok = in.get(req.argv) && in.get(req.env) && in.get(req.cwd) && in.get(req.status_path) &&
              in.get(req.attempt) && in.get(limit) && in.get(grace) && fds.size() == 4 &&
              !req.argv.empty();
    wire out;
    if (!ok) {
      out.put("bad request");
    } else {
      if (!limit.empty()) req.time_limit_s = std::strtod(limit.c_str(), nullptr);
      req.grace_s = std::strtod(grace.c_str(), nullptr);
      // CLONE_PARENT: the supervisor is the runner's child, reaped by the runner.
      long pid = ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
      if (pid == 0) forked_supervisor(sock, req, fds);
      out.put(pid > 0 ? std::to_string(pid) : std::string("clone: ") + std::strerror(errno));
    }
    fds.clear();
    if (!send_message(sock, out.bytes, {})) ::_exit(0);
  }
}

}  // namespace detail

// The runner's handle on its spawn server.
class spawn_server {
 public:
  // Forks the server. Call while the process has one thread (before the result writer
  // starts): the server and every supervisor it forks run C++ freely after the fork.
  // When it cannot start, alive() is false (the runner exec's supervisors then).
  spawn_server() {
    pid_t runner = ::getpid();
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
    pid_t pid = ::fork();
    if (pid < 0) {
      ::close(sv[0]);
      ::close(sv[1]);
      return;
    }
    if (pid == 0) {
      ::close(sv[0]);
      detail::spawn_server_main(sv[1], runner);
    }
    ::close(sv[1]);
    sock_.reset(sv[0]);
    pid_ = pid;
  }
  spawn_server(const spawn_server&) = delete;
  spawn_server& operator=(const spawn_server&) = delete;
  // The server exits on EOF; the runner's reap() reaps it like any child it does not know
  // (waiting for its pid here could wait for a reused one).
  ~spawn_server() = default;

  bool alive() const { return static_cast<bool>(sock_); }
  pid_t pid() const { return pid_; }

  // Starts a supervisor that waits for release(). Its pid, or nullopt with `error` set; a
  // server that does not answer is given up (alive() turns false).
  std::optional<pid_t> spawn(const supervisor_request& req, int out_fd, int err_fd, int dir_fd,
                             std::string& error) {
    if (!sock_) {
      error = "no spawn server";
      return std::nullopt;
    }
    int gate[2];
    if (::pipe2(gate, O_CLOEXEC) != 0) {
      error = std::string("pipe: ") + std::strerror(errno);
      return std::nullopt;
    }
    detail::unique_fd gate_r(gate[0]), gate_w(gate[1]);
    detail::wire w;
    w.put(req.argv);
    w.put(req.env);
    w.put(req.cwd);
    w.put(req.status_path);
    w.put(req.attempt);
    w.put(req.time_limit_s ? fmt::format("{}", *req.time_limit_s) : std::string());
    w.put(fmt::format("{}", req.grace_s));
    std::string reply;
    std::vector<detail::unique_fd> none;
    if (!detail::send_message(sock_.get(), w.bytes, {out_fd, err_fd, dir_fd, gate_r.get()}) ||
        !answered() || !detail::receive_message(sock_.get(), reply, none)) {
      give_up();
      error = "the spawn server is gone";
      return std::nullopt;  // a supervisor it may have made sees gate_w close and exits
    }
    detail::wire in{reply};
    std::string answer;
    in.get(answer);
    char* end = nullptr;
    long pid = std::strtol(answer.c_str(), &end, 10);
    if (answer.empty() || *end != '\0' || pid <= 1) {
      error = answer;
      return std::nullopt;
    }
    gates_.push_back({static_cast<pid_t>(pid), std::move(gate_w)});
    return static_cast<pid_t>(pid);
  }

  // Lets the supervisor pid run its task (go), or makes it exit without running it.
  void release(pid_t pid, bool go) {
    for (auto it = gates_.begin(); it != gates_.end(); ++it) {
      if (it->pid != pid) continue;
      if (go) (void)!::write(it->fd.get(), "g", 1);
      gates_.erase(it);
      return;
    }
  }

 private:
  // The server answers at once; one that does not within 10 s (stopped, hung) is given up.
  bool answered() {
    pollfd p{sock_.get(), POLLIN, 0};
    int r;
    do r = ::poll(&p, 1, 10000);
    while (r < 0 && errno == EINTR);
    return r > 0;
  }
  // Never signalled: its pid may have been reaped and reused. Without its socket it exits.
  void give_up() { sock_.reset(); }

  struct gate {
    pid_t pid;
    detail::unique_fd fd;
  };
  detail::unique_fd sock_;
  pid_t pid_ = -1;
  std::vector<gate> gates_;
};

}  // namespace leaseq
