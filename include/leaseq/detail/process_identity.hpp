#pragma once

// Who a process is, beyond its pid: pids are reused, so a pid read from disk names the process
// that wrote it only while the start time (/proc/PID/stat field 22) and the boot id match too.
// Used to tell whether the writer of a reservation or key is still alive before taking over.

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "leaseq/detail/posix.hpp"

namespace leaseq::detail {

// A pid as read from disk, checked: 2 .. the largest pid_t. Never 0, 1 or negative, so it can
// never name a process group, init or "every process" when passed to kill().
inline std::optional<pid_t> checked_pid(long long value) noexcept {
  if (value <= 1 || value > 0x3fffffff) return std::nullopt;  // PID_MAX_LIMIT is 2^22
  return static_cast<pid_t>(value);
}

// A /proc file (its size is 0 to stat: read until EOF), at most max_bytes.
inline std::string read_proc_file(const char* path, std::size_t max_bytes = 4096) {
  unique_fd fd(::open(path, O_RDONLY | O_CLOEXEC));
  std::string out;
  if (!fd) return out;
  char buf[4096];
  while (out.size() < max_bytes) {
    ssize_t n = read_retry(fd.get(), buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// Clock ticks since boot at which pid started; nullopt when there is no such process.
inline std::optional<std::uint64_t> process_start_ticks(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  std::string stat = read_proc_file(path.c_str());
  auto close_paren = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (close_paren == std::string::npos) return std::nullopt;
  std::string_view rest = std::string_view(stat).substr(close_paren + 1);
  // Fields after the name start at 3 (state); starttime is field 22.
  int field = 2;
  std::size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    std::size_t j = i;
    while (j < rest.size() && rest[j] != ' ') ++j;
    if (j == i) break;
    if (++field == 22) {
      std::uint64_t v = 0;
      for (char c : rest.substr(i, j - i)) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
      }
      return v;
    }
    i = j;
  }
  return std::nullopt;
}

inline const std::string& boot_id() {
  static const std::string id = [] {
    std::string s = read_proc_file("/proc/sys/kernel/random/boot_id");
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }();
  return id;
}

inline std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

struct process_identity {
  std::string host;
  long long pid = 0;
  std::uint64_t start_ticks = 0;
  std::string boot_id;

  static process_identity of_self() {
    process_identity me;
    me.host = host_name();
    me.pid = ::getpid();
    me.start_ticks = process_start_ticks(::getpid()).value_or(0);
    me.boot_id = detail::boot_id();
    return me;
  }

  // One line, space-separated: "host pid start_ticks boot_id" (host names hold no spaces).
  std::string to_line() const {
    return host + " " + std::to_string(pid) + " " + std::to_string(start_ticks) + " " +
           (boot_id.empty() ? "-" : boot_id);
  }
  static std::optional<process_identity> from_line(std::string_view line) {
    process_identity p;
    std::string_view parts[4];
    std::size_t n = 0, i = 0;
    while (i < line.size() && n < 4) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\n')) ++i;
      std::size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\n') ++j;
      if (j > i) parts[n++] = line.substr(i, j - i);
      i = j;
    }
    if (n != 4) return std::nullopt;
    p.host = std::string(parts[0]);
    long long pid = 0;
    std::uint64_t ticks = 0;
    for (char c : parts[1]) {
      if (c < '0' || c > '9' || pid > 1'000'000'000) return std::nullopt;
      pid = pid * 10 + (c - '0');
    }
    for (char c : parts[2]) {
      if (c < '0' || c > '9' || ticks > UINT64_MAX / 20) return std::nullopt;
      ticks = ticks * 10 + static_cast<std::uint64_t>(c - '0');
    }
    p.pid = pid;
    p.start_ticks = ticks;
    p.boot_id = parts[3] == "-" ? std::string() : std::string(parts[3]);
    return p;
  }
};

enum class liveness { alive, dead, unknown };

// Alive only when the same process (pid + start time) runs on this boot of this host; dead
// when it is this host and boot and that process is gone; unknown otherwise (another host).
inline liveness check_liveness(const process_identity& who) {
  if (who.host != host_name() || who.boot_id.empty() || who.boot_id != boot_id())
    return who.host == host_name() && !who.boot_id.empty() && !boot_id().empty()
               ? liveness::dead  // this host rebooted since: the process is gone
               : liveness::unknown;
  auto pid = checked_pid(who.pid);
  if (!pid) return liveness::dead;
  auto ticks = process_start_ticks(*pid);
  if (!ticks || *ticks != who.start_ticks) return liveness::dead;
  return liveness::alive;
}

// Whether pid is, right now, the process that started at start_ticks in this boot: its start
// time matches, and the boot it was recorded in (`boot`, empty when unknown) is this one.
inline bool is_same_process(pid_t pid, std::uint64_t start_ticks, const std::string& boot) {
  if (pid <= 1) return false;
  if (!boot.empty() && !boot_id().empty() && boot != boot_id()) return false;  // rebooted since
  auto ticks = process_start_ticks(pid);
  return ticks && *ticks == start_ticks;
}

// A pidfd for pid (Linux 5.3 and later): it names that one process whatever happens to the
// number afterwards. Invalid with errno ENOSYS on an older kernel, ESRCH when pid is gone.
inline unique_fd open_pidfd(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
  return unique_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#else
  (void)pid;
  errno = ENOSYS;
  return unique_fd();
#endif
}

inline int pidfd_signal(int pidfd, int sig) noexcept {
#ifdef SYS_pidfd_send_signal
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
#else
  (void)pidfd;
  (void)sig;
  errno = ENOSYS;
  return -1;
#endif
}

// Sends sig to the process pid read from disk, only while it still is the process recorded
// there (start_ticks, boot; start_ticks 0: a record without one, pid alone). Where the kernel
// has pidfds the check cannot be split from the signal by a reuse of the number: the pidfd is
// opened first, the identity checked after (so the pidfd names the recorded process), and the
// signal goes through the pidfd. With `group`, the signal goes to the process group that pid
// leads, and only when pid does lead one (getpgid(pid) == pid). Returns 0 when sent, else an
// errno: ESRCH when the process is not the recorded one (or gone).
inline int signal_recorded_process(pid_t pid, std::uint64_t start_ticks, const std::string& boot,
                                   int sig, bool group = false) {
  if (pid <= 1) return ESRCH;
  auto same = [&] {
    if (!boot.empty() && !boot_id().empty() && boot != boot_id()) return false;
    return start_ticks == 0 || is_same_process(pid, start_ticks, boot);
  };
  unique_fd pidfd = open_pidfd(pid);
  if (!pidfd && errno == ESRCH) return ESRCH;
  if (!same()) return ESRCH;
  if (group) {
    if (::getpgid(pid) != pid) return ESRCH;  // not a group leader: -pid names another group
    return ::kill(-pid, sig) == 0 ? 0 : errno;
  }
  if (pidfd) {
    if (pidfd_signal(pidfd.get(), sig) == 0) return 0;
    if (errno != ENOSYS) return errno;
  }
  return ::kill(pid, sig) == 0 ? 0 : errno;
}

}  // namespace leaseq::detail
