#pragma once

#include <fcntl.h>
#include <sys/file.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "leaseq/detail/posix.hpp"
#include "leaseq/detail/process_identity.hpp"
#include "leaseq/error.hpp"

namespace leaseq {

namespace detail {

// Test seams. flock_call: what file_lock and try_file_lock call instead of flock(2) (a unit test
// makes it fail with ENOSYS, ENOLCK or EOPNOTSUPP). dot_lock_break_hook: called by a breaker
// with stage 0 once it judged a lock stale, before moving it aside (a test lets another process
// go first), and with stage 1 once that break is over.
inline int (*flock_call)(int, int) = ::flock;
inline void (*dot_lock_break_hook)(const std::filesystem::path&, int stage) = nullptr;

}  // namespace detail

// An exclusive flock(2) on a lock file, held for the object's lifetime. The lock file is
// created (0600) if missing and never deleted, so every process locks the same inode.
//
// A flock only makes contention cheap; it is never what keeps leaseq correct. On shared
// filesystems it may be local to one client (NFS local_lock=all, BeeGFS, Lustre localflock,
// sshfs) and so exclude nothing, or be refused outright (Lustre noflock: ENOSYS). Where the
// filesystem refuses it (ENOSYS, ENOLCK, EOPNOTSUPP, EINVAL) the object holds nothing and the
// caller goes on: every guarded operation is safe without it (exclusive creates, see seq.hpp).
class file_lock {
 public:
  explicit file_lock(const std::filesystem::path& path)
      : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) {
    if (!fd_) {
      // A read-only or lock-hostile directory: go on unlocked, as for ENOSYS below.
      if (errno == EACCES || errno == EROFS || errno == EPERM) return;
      throw io_error("cannot open lock file", path.string(), errno);
    }
    while (detail::flock_call(fd_.get(), LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      if (unsupported(errno)) {
        fd_.reset();
        return;
      }
      throw io_error("cannot lock", path.string(), errno);
    }
    held_ = true;
  }
  file_lock(const file_lock&) = delete;
  file_lock& operator=(const file_lock&) = delete;
  ~file_lock() = default;  // closing the descriptor releases the lock

  // False when the filesystem refused locks: the caller runs unguarded (and is still correct).
  bool held() const noexcept { return held_; }

  static bool unsupported(int err) noexcept {
    return err == ENOSYS || err == ENOLCK || err == EOPNOTSUPP || err == EINVAL;
  }

 private:
  detail::unique_fd fd_;
  bool held_ = false;
};

// A lock that holds across clients whose flock does not (NFS local_lock, Lustre localflock,
// BeeGFS, sshfs), for the rare read-modify-write of a shared file (index.json): the lock is a
// file created by link(2) of a complete temp file naming its owner, which the server grants to
// one client only (procmail's lockfile, Maildir's delivery). An owner that died on this host,
// or a lock older than stale_s whose owner cannot be checked (another host), is broken: moved
// aside by rename, which only one breaker wins.
class dot_lock {
 public:
  explicit dot_lock(std::filesystem::path path, double timeout_s = 60, double stale_s = 30)
      : path_(std::move(path)) {
    std::filesystem::path dir = path_.parent_path();
    std::string self = detail::process_identity::of_self().to_line() + "\n";
    std::filesystem::path tmp =
        dir / ("." + path_.filename().string() + "." + std::to_string(::getpid()) + "." +
               std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    {
      detail::unique_fd fd(
          ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!fd || !detail::write_all(fd.get(), self.data(), self.size()))
        throw io_error("cannot create lock", tmp.string(), errno);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    int pause_ms = 2;
    for (;;) {
      if (::link(tmp.c_str(), path_.c_str()) == 0) break;
      int e = errno;
      // A lost reply to a link that happened (NFS) still shows as ours: two links on tmp.
      struct stat st;
      if (::stat(tmp.c_str(), &st) == 0 && st.st_nlink == 2) break;
      if (e != EEXIST && e != EPERM) {  // EPERM: sshfs's "exists" (see file_io.hpp name_taken)
        ::unlink(tmp.c_str());
        throw io_error("cannot take lock", path_.string(), e);
      }
      break_if_stale(stale_s);
      if (std::chrono::steady_clock::now() > deadline) {
        ::unlink(tmp.c_str());
        throw error("timed out waiting for " + path_.string() +
                    " (held by another process; remove it if no leaseq command runs)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
      pause_ms = std::min(pause_ms * 2, 200);
    }
    ::unlink(tmp.c_str());
    held_ = true;
  }
  dot_lock(const dot_lock&) = delete;
  dot_lock& operator=(const dot_lock&) = delete;
  ~dot_lock() {
    if (held_) ::unlink(path_.c_str());
  }

 private:
  // What a breaker judged: the lock file's owner line and mtime, read through one open.
  struct seen_lock {
    std::string text;
    std::int64_t mtime_s = 0, mtime_ns = 0;
    bool operator==(const seen_lock& o) const {
      return text == o.text && mtime_s == o.mtime_s && mtime_ns == o.mtime_ns;
    }
  };
  static std::optional<seen_lock> look(const std::filesystem::path& p) {
    detail::unique_fd fd(::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st;
    if (!fd || ::fstat(fd.get(), &st) != 0) return std::nullopt;
    seen_lock s;
    s.mtime_s = static_cast<std::int64_t>(st.st_mtim.tv_sec);
    s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_nsec);
    char buf[512];
    ssize_t n = detail::read_retry(fd.get(), buf, sizeof buf);
    if (n > 0) s.text.assign(buf, static_cast<std::size_t>(n));
    return s;
  }

  // Two breakers can judge the same stale lock: one moves it aside, a third process takes the
  // lock anew, and the slower breaker would then move that live lock aside. So the file moved
  // aside is compared with the one judged (owner line and mtime); a different one is linked
  // back (link never replaces: a lock taken meanwhile stays) before the aside name goes.
  void break_if_stale(double stale_s) {
    std::optional<seen_lock> judged = look(path_);
    if (!judged) return;  // released meanwhile
    auto owner = detail::process_identity::from_line(judged->text);
    double age = static_cast<double>(::time(nullptr) - judged->mtime_s);
    detail::liveness l = owner ? detail::check_liveness(*owner) : detail::liveness::unknown;
    if (l == detail::liveness::alive) return;
    if (l == detail::liveness::unknown && age < stale_s) return;
    if (detail::dot_lock_break_hook) detail::dot_lock_break_hook(path_, 0);
    std::filesystem::path aside = path_;
    aside += ".stale." + std::to_string(::getpid()) + "." +
             std::to_string(reinterpret_cast<std::uintptr_t>(this));
    if (::rename(path_.c_str(), aside.c_str()) == 0) {
      std::optional<seen_lock> moved = look(aside);
      if (!moved || !(*moved == *judged)) ::link(aside.c_str(), path_.c_str());
      ::unlink(aside.c_str());
    }
    if (detail::dot_lock_break_hook) detail::dot_lock_break_hook(path_, 1);
  }

  std::filesystem::path path_;
  bool held_ = false;
};

}  // namespace leaseq
