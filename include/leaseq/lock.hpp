#pragma once

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <filesystem>

#include "leaseq/detail/posix.hpp"
#include "leaseq/error.hpp"

namespace leaseq {

// An exclusive flock(2) on a lock file, held for the object's lifetime. The lock file is
// created (0600) if missing and never deleted, so every process locks the same inode.
class file_lock {
 public:
  explicit file_lock(const std::filesystem::path& path)
      : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) {
    if (!fd_) throw io_error("cannot open lock file", path.string(), errno);
    while (::flock(fd_.get(), LOCK_EX) != 0) {
      if (errno != EINTR) throw io_error("cannot lock", path.string(), errno);
    }
  }
  file_lock(const file_lock&) = delete;
  file_lock& operator=(const file_lock&) = delete;
  ~file_lock() = default;  // closing the descriptor releases the lock

 private:
  detail::unique_fd fd_;
};

}  // namespace leaseq
