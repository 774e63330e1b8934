#pragma once

// Wakes a thread that waits in poll(): an eventfd that notify() makes readable until clear().
// Without one (out of descriptors) a wait simply lasts its timeout.

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include <leaseq/detail/posix.hpp>

namespace leaseq_dash {

class wake_signal {
 public:
  wake_signal() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

  int fd() const noexcept { return fd_ ? fd_.get() : -1; }

  void notify() const noexcept {
    std::uint64_t one = 1;
    if (fd_) (void)!::write(fd_.get(), &one, sizeof one);
  }
  void clear() const noexcept {
    std::uint64_t count = 0;
    if (fd_) (void)!::read(fd_.get(), &count, sizeof count);
  }

  // Until notified, `other` (-1: none) is readable, or timeout_ms passed; clears the
  // notification. A signal (EINTR) ends it early: callers loop anyway.
  void wait(int other, int timeout_ms) const noexcept {
    pollfd fds[2] = {{fd(), POLLIN, 0}, {other, POLLIN, 0}};
    if (::poll(fds, 2, timeout_ms) > 0 && (fds[0].revents & POLLIN)) clear();
  }

 private:
  leaseq::detail::unique_fd fd_;
};

}  // namespace leaseq_dash
