#pragma once

#include <fcntl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <utility>

namespace leaseq::detail {

// Owns a file descriptor; closes it once.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// write() until everything is written; false with errno set on failure.
inline bool write_all(int fd, const void* data, std::size_t size) noexcept {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

inline ssize_t read_retry(int fd, void* buf, std::size_t size) noexcept {
  for (;;) {
    ssize_t n = ::read(fd, buf, size);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

// Whether a filesystem type (statfs f_type) is a network or FUSE one: other clients' writes
// reach this one late, and inotify says nothing of them.
inline bool remote_filesystem_type(unsigned long type) noexcept {
  switch (type) {
    case 0x6969UL:      // NFS
    case 0xFF534D42UL:  // CIFS
    case 0xFE534D42UL:  // SMB2
    case 0x65735546UL:  // FUSE (sshfs, the shared-filesystem test bed)
    case 0x0BD00BD0UL:  // Lustre
    case 0x47504653UL:  // GPFS
    case 0x00C36400UL:  // Ceph
    case 0x19830326UL:  // BeeGFS
    case 0x6B414653UL:  // AFS
    case 0x01021997UL:  // 9p
      return true;
    default:
      return false;
  }
}

// Whether path (or the open fd) is on such a filesystem. Unknown: no.
inline bool remote_filesystem(const char* path) noexcept {
  struct statfs st;
  return ::statfs(path, &st) == 0 && remote_filesystem_type(static_cast<unsigned long>(st.f_type));
}
inline bool remote_filesystem(int fd) noexcept {
  struct statfs st;
  return ::fstatfs(fd, &st) == 0 && remote_filesystem_type(static_cast<unsigned long>(st.f_type));
}

}  // namespace leaseq::detail
