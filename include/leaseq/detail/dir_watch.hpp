#pragma once

// Wakes a waiting loop when a name appears in one of a few directories (a task submitted into
// a runner's lane, a control file for it), or, with another event mask, when a file there
// changes (a log written to, a claimed file gone), by inotify. Only a hint: inotify says
// nothing of what other clients of a network filesystem do, may be unavailable or out of
// watches, and a directory may not exist yet, so the caller still polls; this only makes the
// common local case prompt instead of waiting out the poll interval.

#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "leaseq/detail/posix.hpp"

namespace leaseq::detail {

class dir_watch {
 public:
  // A name appeared (created, renamed in, or written and closed).
  static constexpr std::uint32_t name_appears = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE;

  // LEASEQ_NO_INOTIFY=1 turns it off (benchmarks compare; a filesystem where it misbehaves).
  // `names`, when given, are the only entries whose events count: a log directory holds every
  // task's logs, and a follower of one task need not wake for the others.
  explicit dir_watch(std::vector<std::filesystem::path> dirs, std::uint32_t mask = name_appears,
                     std::vector<std::string> names = {})
      : dirs_(std::move(dirs)), names_(std::move(names)), mask_(mask) {
    const char* off = std::getenv("LEASEQ_NO_INOTIFY");
    if (off && *off && std::string(off) != "0") return;
    fd_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    watched_.assign(dirs_.size(), false);
    add_missing();
  }

  // The descriptor to poll for POLLIN, or -1 when there is none.
  int fd() const noexcept { return fd_ ? fd_.get() : -1; }

  // Watches the directories that could not be watched before (not there yet). Cheap when all
  // are watched.
  void add_missing() {
    if (!fd_) return;
    for (std::size_t i = 0; i < dirs_.size(); ++i) {
      if (watched_[i]) continue;
      int wd = ::inotify_add_watch(fd_.get(), dirs_[i].c_str(),
                                   mask_ | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK);
      watched_[i] = wd >= 0;
    }
  }

  // Reads every pending event; true when there was one (about one of `names`, or a lost
  // event queue: anything may have changed then). A watched directory that went away
  // (IN_IGNORED) is watched again by the next add_missing().
  bool drain() {
    if (!fd_) return false;
    bool any = false;
    alignas(inotify_event) char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t at = 0; at < n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
        if (e->mask & IN_IGNORED) std::fill(watched_.begin(), watched_.end(), false);
        any = any || counts(*e);
        at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      }
    }
    if (std::find(watched_.begin(), watched_.end(), false) != watched_.end()) {
      // Re-adding an existing watch returns its old descriptor: harmless.
      add_missing();
    }
    return any;
  }

 private:
  bool counts(const inotify_event& e) const {
    if (names_.empty() || (e.mask & IN_Q_OVERFLOW)) return true;
    if (e.len == 0) return false;  // about the directory itself
    std::string name(e.name);      // NUL-padded to len
    return std::find(names_.begin(), names_.end(), name) != names_.end();
  }

  std::vector<std::filesystem::path> dirs_;
  std::vector<std::string> names_;
  std::uint32_t mask_;
  std::vector<bool> watched_;
  unique_fd fd_;
};

}  // namespace leaseq::detail
