#pragma once

// A pseudo-terminal for a terminal test, 100x40, closed at the end of the test.

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <string>

#include <catch2/catch.hpp>

namespace test_support {

// A pseudo-terminal pair: the terminal under test uses the slave, the test plays the user
// and the emulator on the master.
struct pty {
  int master = -1, slave = -1;
  pty() {
    master = ::posix_openpt(O_RDWR | O_NOCTTY);
    REQUIRE(master >= 0);
    REQUIRE(::grantpt(master) == 0);
    REQUIRE(::unlockpt(master) == 0);
    slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
    REQUIRE(slave >= 0);
    struct winsize ws {};
    ws.ws_col = 100;
    ws.ws_row = 40;
    ::ioctl(master, TIOCSWINSZ, &ws);
  }
  pty(const pty&) = delete;
  pty& operator=(const pty&) = delete;
  ~pty() {
    ::close(slave);
    ::close(master);
  }
  // Everything the program wrote so far.
  std::string drain() {
    std::string out;
    char buf[4096];
    for (;;) {
      struct pollfd p {
        master, POLLIN, 0
      };
      if (::poll(&p, 1, 50) <= 0) break;
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }
};

}  // namespace test_support
