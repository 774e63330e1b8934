#pragma once

// The spawn server: the supervisor of a runner's tasks. A small process forked from the runner
// while it is still single-threaded and small, it starts each task on the runner's request
// (posix_spawn: no copy of its memory), waits for it, writes its exit status to the task's
// status file (`logs/<node>/<id>.exit`) and only then tells the runner and reaps it. A process
// per task (a supervisor forked or exec'd for each) cost more than a short task itself
// (docs/performance.md).
//
// It is what lets a task outlive a killed runner with its end known: the server is not in the
// tasks' sessions and ignores the runner's signals, and when the runner's end of its socket
// closes it goes on waiting for the tasks it has (writing their status files, enforcing their
// time limits), then exits. Each task leads a session of its own, so a cancel's signal to its
// group reaches its children; the runner sends such signals through the server, which sends
// them only while the task is its unreaped child (its pid cannot have been reused).
//
// The runner records that an attempt is starting before it asks for the spawn; the task has
// the attempt in its environment (LEASEQ_ATTEMPT), so a runner killed before recording the pid
// leaves a task a later runner finds. If the server itself dies, the runner is told which
// tasks it can no longer hear of (take_lost) and goes back to exec'ing `leaseq __supervise`.

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "leaseq/detail/posix.hpp"
#include "leaseq/detail/process_identity.hpp"
#include "leaseq/engine/supervise.hpp"

extern char** environ;  // NOLINT: POSIX

namespace leaseq {

// What a supervisor is started with; the logs and the status file's directory travel as
// descriptors.
struct served_request {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // the task's complete environment
  std::string cwd;               // empty: the runner's
  std::string status_path;       // opened relative to the directory descriptor
  std::string attempt;
  std::optional<double> time_limit_s;
  double grace_s = 10;
};

// A child that ended: exit code or the signal that killed it.
struct child_exit {
  pid_t pid = -1;
  std::optional<int> exit_code;
  std::optional<int> signal;
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

// One task the server started and has not reaped yet.
struct served_task {
  pid_t pid = -1;
  std::string attempt;
  std::string status_name;  // the status file's name in `dir`
  // The status file's directory (the runner's logs/<node>), one descriptor shared by the tasks
  // that have the same: a runner of 4096 slots must not need 4096 of them.
  std::shared_ptr<unique_fd> dir;
  double start = 0;  // monotonic_s() at the spawn
  std::optional<double> limit;
  double grace = 10;
  bool stopped = false;  // SIGTERM sent at the time limit
  double kill_at = -1;   // SIGKILL due then (after the grace)
};

// `dir`, or the descriptor the last task started holds for the same directory (a runner's
// tasks all have one, its logs/<node>).
inline std::shared_ptr<unique_fd> shared_directory(const std::vector<served_task>& tasks,
                                                   unique_fd dir) {
  struct stat mine, theirs;
  if (!tasks.empty() && ::fstat(dir.get(), &mine) == 0 &&
      ::fstat(tasks.back().dir->get(), &theirs) == 0 && theirs.st_dev == mine.st_dev &&
      theirs.st_ino == mine.st_ino)
    return tasks.back().dir;
  return std::make_shared<unique_fd>(std::move(dir));
}

// How every task starts, directly or under a supervisor: stdin /dev/null, stdout and stderr its
// logs, in `cwd` (empty: the caller's), with an empty signal mask and the default disposition
// of the signals a runner or its server catch or ignore, leading a session of its own (so a
// cancel signals its whole tree, and a hangup of the runner's terminal does not reach it).
struct task_spawn_setup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;

  task_spawn_setup(int out_fd, int err_fd, const std::string& cwd) {
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawnattr_init(&attr);
    ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
    ::posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
    if (!cwd.empty()) ::posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGTERM, SIGINT, SIGPIPE, SIGCHLD, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
      sigaddset(&defaults, s);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setsigdefault(&attr, &defaults);
    ::posix_spawnattr_setflags(&attr,
                               POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  task_spawn_setup(const task_spawn_setup&) = delete;
  task_spawn_setup& operator=(const task_spawn_setup&) = delete;
  ~task_spawn_setup() {
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
  }
};

// Starts req's task in a session of its own: stdin /dev/null, stdout and stderr the two logs,
// the program looked up in the task's own PATH. Its pid, or -1 with `why` set (the spawn_failed
// text a supervisor would have written).
inline pid_t spawn_served_task(served_request& req, int out_fd, int err_fd, std::string& why) {
  if (!req.cwd.empty()) {
    struct stat st;
    if (::stat(req.cwd.c_str(), &st) != 0) {
      why = "cwd " + req.cwd + ": " + std::strerror(errno);
      return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
      why = "cwd " + req.cwd + ": not a directory";
      return -1;
    }
  }
  task_spawn_setup setup(out_fd, err_fd, req.cwd);
  std::vector<char*> argv, envp;
  for (auto& a : req.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : req.env) envp.push_back(e.data());
  envp.push_back(nullptr);
  // The task's PATH, not the server's, finds its program (as execvp in the task's environment
  // would): the lookup reads environ. The server has one thread.
  char** saved = environ;
  environ = envp.data();
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &setup.actions, &setup.attr, argv.data(), envp.data());
  if (rc == ENOEXEC) {
    // An executable without a #! line: execvp hands it to /bin/sh, posix_spawnp does not. A
    // shell exec'ing it does the same (its PATH lookup is the task's too).
    std::vector<char*> via_sh = {const_cast<char*>("sh"), const_cast<char*>("-c"),
                                 const_cast<char*>("exec \"$0\" \"$@\"")};
    via_sh.insert(via_sh.end(), argv.begin(), argv.end());
    rc = ::posix_spawn(&pid, "/bin/sh", &setup.actions, &setup.attr, via_sh.data(), envp.data());
  }
  environ = saved;
  if (rc != 0) {
    why = req.argv[0] + ": " + std::strerror(rc);
    return -1;
  }
  return pid;
}

// The server's loop, in the forked process: never returns. It starts tasks on the runner's
// requests, reports each end to the runner after writing it to the task's status file, and
// signals a task's group on request only while the task is its unreaped child (so a pid reused
// after the task ended is never signalled). When the runner is gone it goes on supervising
// the tasks it has (their ends still go to their status files, their time limits still hold)
// and exits after the last one.
[[noreturn]] inline void spawn_server_main(int sock, pid_t runner) {
  // Nothing of the runner's (its node lock above all) may stay open here or in a task.
  if (sock != 3) {
    ::dup2(sock, 3);
    sock = 3;
  }
  if (::syscall(SYS_close_range, 4U, ~0U, 0U) != 0)
    for (int fd = 4; fd < 65536; ++fd) ::close(fd);
  ::fcntl(sock, F_SETFD, FD_CLOEXEC);
  ::prctl(PR_SET_NAME, "leaseq-sup", 0, 0, 0);
  if (::getppid() != runner) ::_exit(0);  // the runner died before we started
  // Signals for the runner's process group (a terminal's Ctrl-C, Slurm's scancel) are the
  // runner's to handle; the server outlives the runner while tasks run.
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) ::signal(s, SIG_IGN);
  ::signal(SIGCHLD, SIG_DFL);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  int sig_fd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sig_fd < 0) ::_exit(1);  // the runner sees the socket close and exec's supervisors
  std::vector<served_task> tasks;
  bool runner_here = true;
  auto report = [&](const wire& w) {
    if (runner_here && !send_message(sock, w.bytes, {})) runner_here = false;
  };
  for (;;) {
    if (!runner_here && tasks.empty()) ::_exit(0);
    // Time limits: SIGTERM to the group at the limit, SIGKILL after the grace.
    double now = monotonic_s(), next = now + 3600;
    for (auto& t : tasks) {
      if (t.limit && !t.stopped && now >= t.start + *t.limit) {
        t.stopped = true;
        t.kill_at = now + t.grace;
        ::kill(-t.pid, SIGTERM);
      } else if (t.stopped && t.kill_at >= 0 && now >= t.kill_at) {
        ::kill(-t.pid, SIGKILL);  // the task and whatever of its group ignored SIGTERM
        t.kill_at = -1;
      }
      if (t.limit && !t.stopped) next = std::min(next, t.start + *t.limit);
      if (t.kill_at >= 0) next = std::min(next, t.kill_at);
    }
    pollfd p[2] = {{sig_fd, POLLIN, 0}, {runner_here ? sock : -1, POLLIN, 0}};
    int ms = static_cast<int>(std::min(std::max(next - now, 0.0), 3600.0) * 1000) + 1;
    if (::poll(p, 2, ms) < 0 && errno != EINTR) ::_exit(1);
    if (p[0].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(sig_fd, &info, sizeof info) > 0) {
      }
      // Each task's end: its status file first, then the runner's message, then the reap (the
      // pid stays taken until then).
      for (auto it = tasks.begin(); it != tasks.end();) {
        siginfo_t si{};
        if (::waitid(P_PID, static_cast<id_t>(it->pid), &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
            si.si_pid != it->pid) {
          ++it;
          continue;
        }
        json out{{"attempt", it->attempt},
                 {"exit_code", nullptr},
                 {"signal", nullptr},
                 {"finished", unix_now()}};
        std::string code, sig;
        if (si.si_code == CLD_EXITED) {
          out["exit_code"] = si.si_status;
          code = std::to_string(si.si_status);
        } else {
          out["signal"] = si.si_status;
          sig = std::to_string(si.si_status);
        }
        if (it->stopped) out["time_limit"] = true;
        write_supervisor_status(it->dir->get(), it->status_name.c_str(), out);
        wire w;
        w.put("exit");
        w.put(std::to_string(it->pid));
        w.put(code);
        w.put(sig);
        report(w);
        ::waitpid(it->pid, nullptr, WNOHANG);
        it = tasks.erase(it);
      }
    }
    if (!runner_here || !(p[1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    std::string payload;
    std::vector<unique_fd> fds;
    if (!receive_message(sock, payload, fds)) {
      runner_here = false;  // the runner is gone: supervise what is left, then exit
      continue;
    }
    wire in{payload};
    std::string kind;
    in.get(kind);
    if (kind == "signal") {
      std::string pid_text, sig_text;
      if (in.get(pid_text) && in.get(sig_text)) {
        pid_t pid = static_cast<pid_t>(std::atol(pid_text.c_str()));
        for (const auto& t : tasks)
          if (t.pid == pid && pid > 1) ::kill(-pid, std::atoi(sig_text.c_str()));
      }
      continue;
    }
    served_request req;
    std::string limit, grace;
    bool ok = kind == "spawn" && in.get(req.argv) && in.get(req.env) && in.get(req.cwd) &&
              in.get(req.status_path) && in.get(req.attempt) && in.get(limit) && in.get(grace) &&
              fds.size() == 3 && !req.argv.empty();
    wire out;
    if (!ok) {
      out.put("failed");
      out.put("bad request");
    } else {
      std::string why;
      pid_t pid = spawn_served_task(req, fds[0].get(), fds[1].get(), why);
      if (pid < 0) {
        out.put("failed");
        out.put(why);
      } else {
        served_task t;
        t.pid = pid;
        t.attempt = req.attempt;
        t.status_name = fs::path(req.status_path).filename().string();
        t.dir = shared_directory(tasks, std::move(fds[2]));
        t.start = monotonic_s();
        if (!limit.empty()) t.limit = std::strtod(limit.c_str(), nullptr);
        t.grace = std::strtod(grace.c_str(), nullptr);
        out.put("started");
        out.put(std::to_string(pid));
        // Read now, while the task cannot have been reaped: the runner records it.
        out.put(std::to_string(process_start_ticks(pid).value_or(0)));
        tasks.push_back(std::move(t));
      }
    }
    fds.clear();
    report(out);
  }
}

}  // namespace detail

// What the server said of a spawn request.
struct served_spawn {
  pid_t pid = -1;                 // > 0: started
  std::uint64_t start_ticks = 0;  // the task's start time (/proc/PID/stat), 0 when unknown
  bool server_gone = false;       // the request was not served: start the task another way
  std::string error;              // pid <= 0 and !server_gone: why the program did not start
};

// The runner's handle on its spawn server.
class spawn_server {
 public:
  // Forks the server. Call while the process has one thread (before the result writer
  // starts): the server runs C++ freely after the fork. When it cannot start, alive() is
  // false (the runner exec's supervisors then).
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
  // The server sees the socket close and exits once its tasks have ended; the runner's reap()
  // reaps it like any child it does not know (waiting for its pid here could wait for a
  // reused one).
  ~spawn_server() = default;

  bool alive() const { return static_cast<bool>(sock_); }
  pid_t pid() const { return pid_; }
  // Readable when the server has reported something (a task's end): poll it with the rest.
  int fd() const { return sock_.get(); }

  // Starts a task; the server keeps its logs' descriptors only as long as the spawn, and the
  // status directory's until the task ends. A server that does not answer is given up.
  served_spawn spawn(const served_request& req, int out_fd, int err_fd, int dir_fd) {
    served_spawn s;
    if (!sock_) {
      s.server_gone = true;
      return s;
    }
    detail::wire w;
    w.put("spawn");
    w.put(req.argv);
    w.put(req.env);
    w.put(req.cwd);
    w.put(req.status_path);
    w.put(req.attempt);
    w.put(req.time_limit_s ? fmt::format("{}", *req.time_limit_s) : std::string());
    w.put(fmt::format("{}", req.grace_s));
    if (!detail::send_message(sock_.get(), w.bytes, {out_fd, err_fd, dir_fd})) {
      give_up();
      s.server_gone = true;
      return s;
    }
    // Task ends may come first; they are kept for next_exit().
    for (;;) {
      std::string kind;
      detail::wire in;
      if (!answered() || !receive(kind, in)) {
        give_up();
        s.server_gone = true;  // a task it may have started is on the lost list
        return s;
      }
      if (kind == "exit") {
        take_exit(in);
        continue;
      }
      std::string a, b;
      in.get(a);
      if (kind == "started") {
        in.get(b);
        s.pid = static_cast<pid_t>(std::atol(a.c_str()));
        s.start_ticks = std::strtoull(b.c_str(), nullptr, 10);
        if (s.pid > 1) tasks_.push_back(s.pid);
        return s;
      }
      s.error = a;
      return s;
    }
  }

  // A task's end the server reported, without blocking; nullopt when there is none now.
  std::optional<child_exit> next_exit() {
    while (exits_.empty() && sock_) {
      pollfd p{sock_.get(), POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      std::string kind;
      detail::wire in;
      if (!receive(kind, in)) {
        give_up();
        break;
      }
      if (kind == "exit") take_exit(in);
    }
    if (exits_.empty()) return std::nullopt;
    child_exit e = exits_.front();
    exits_.erase(exits_.begin());
    return e;
  }

  // Whether pid is a task this server started whose end it has not reported yet.
  bool serves(pid_t pid) const {
    return std::find(tasks_.begin(), tasks_.end(), pid) != tasks_.end();
  }

  // Sends sig to the group of a task of this server, by the server, which still holds the
  // task unreaped: a pid reused after the task ended is never signalled. False when the server
  // is gone.
  bool signal(pid_t pid, int sig) {
    if (!sock_) return false;
    detail::wire w;
    w.put("signal");
    w.put(std::to_string(pid));
    w.put(std::to_string(sig));
    if (detail::send_message(sock_.get(), w.bytes, {})) return true;
    give_up();
    return false;
  }

  // The tasks whose end a server that died can no longer report (each once): they run on,
  // watched by pid like a crashed runner's.
  std::vector<pid_t> take_lost() { return std::exchange(lost_, {}); }

 private:
  bool receive(std::string& kind, detail::wire& in) {
    std::vector<detail::unique_fd> none;
    if (!detail::receive_message(sock_.get(), in.bytes, none)) return false;
    return in.get(kind);
  }
  void take_exit(detail::wire& in) {
    std::string pid, code, sig;
    in.get(pid);
    in.get(code);
    in.get(sig);
    child_exit e;
    e.pid = static_cast<pid_t>(std::atol(pid.c_str()));
    if (!code.empty()) e.exit_code = std::atoi(code.c_str());
    if (!sig.empty()) e.signal = std::atoi(sig.c_str());
    tasks_.erase(std::remove(tasks_.begin(), tasks_.end(), e.pid), tasks_.end());
    exits_.push_back(e);
  }
  // The server answers at once; one that does not within 10 s (stopped, hung) is given up.
  bool answered() {
    pollfd p{sock_.get(), POLLIN, 0};
    int r;
    do r = ::poll(&p, 1, 10000);
    while (r < 0 && errno == EINTR);
    return r > 0;
  }
  // Never signalled: its pid may have been reaped and reused. Without its socket it exits
  // once its tasks end.
  void give_up() {
    sock_.reset();
    lost_.insert(lost_.end(), tasks_.begin(), tasks_.end());
    tasks_.clear();
  }

  detail::unique_fd sock_;
  pid_t pid_ = -1;
  std::vector<pid_t> tasks_;  // started, end not reported
  std::vector<child_exit> exits_;
  std::vector<pid_t> lost_;
};

}  // namespace leaseq
