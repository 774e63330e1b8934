#include <leaseq/tui/app.hpp>

#include <catch2/catch.hpp>

#include "pty.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <string>
#include <vector>

using namespace leaseq::tui;
using test_support::pty;

namespace {

struct counter_model {
  int frames = 0;
  int presses = 0;
  std::vector<std::string> seen;
};

}  // namespace

TEST_CASE("run_app draws, updates on keys and quits when update says so", "[tui][app]") {
  pty tty;
  int master = tty.master, slave = tty.slave;
  struct winsize ws {};
  ws.ws_col = 20;
  ws.ws_row = 3;
  ::ioctl(master, TIOCSWINSZ, &ws);

  counter_model m;
  app_options opt;
  opt.in_fd = opt.out_fd = slave;
  opt.tick_ms = 10;
  opt.present.synchronized = false;
  auto r = run_app(
      m,
      [](counter_model& mm, const event& ev, app_io& io) {
        if (auto* k = std::get_if<key_event>(&ev)) {
          mm.seen.push_back(key_name(k->k));
          if (k->k.is('q')) return false;
          ++mm.presses;
          io.write_raw("<raw>");
        }
        return true;
      },
      [&](counter_model& mm, buffer& buf) {
        // Typed once raw mode is on (entering it flushes typeahead, as curses does).
        if (mm.frames++ == 0) REQUIRE(::write(master, "aaq", 3) == 3);
        buf.clear();
        buf.print(0, 0, "presses=" + std::to_string(mm.presses));
      },
      opt);
  CHECK(r.exit_code == 0);
  CHECK(r.signo == 0);
  CHECK(m.presses == 2);
  CHECK(m.seen == std::vector<std::string>{"a", "a", "q"});
  std::string out = tty.drain();
  CHECK(out.find("presses=0") != std::string::npos);
  CHECK(out.find("<raw>") != std::string::npos);
  CHECK(out.find("\x1b[?1049l") != std::string::npos);  // restored at the end
}

TEST_CASE("run_app ends on a quit signal with 128+signo", "[tui][app]") {
  pty tty;
  int slave = tty.slave;
  int m = 0;
  app_options opt;
  opt.in_fd = opt.out_fd = slave;
  opt.tick_ms = 5;
  bool saw_signal = false;
  auto r = run_app(
      m,
      [&](int& ticks, const event& ev, app_io&) {
        if (std::holds_alternative<signal_event>(ev)) saw_signal = true;
        if (std::holds_alternative<tick_event>(ev) && ++ticks == 2) ::raise(SIGTERM);
        return true;  // a quit signal ends the loop anyway
      },
      [](int&, buffer&) {}, opt);
  CHECK(saw_signal);
  CHECK(r.signo == SIGTERM);
  CHECK(r.exit_code == 128 + SIGTERM);
}

TEST_CASE("run_app wakes on wake_fd long before its tick", "[tui][app]") {
  pty tty;
  int slave = tty.slave;
  int wake[2];
  REQUIRE(::pipe2(wake, O_NONBLOCK | O_CLOEXEC) == 0);
  app_options opt;
  opt.in_fd = opt.out_fd = slave;
  opt.tick_ms = 3600 * 1000;  // a tick would come in an hour: only the wake can end a wait
  opt.wake_fd = wake[0];
  int wakes = 0;
  auto r = run_app(
      wakes,
      [&](int& n, const event& ev, app_io&) {
        if (!std::holds_alternative<tick_event>(ev)) return true;
        char buf[16];
        while (::read(wake[0], buf, sizeof buf) > 0) {
        }
        // Three wakes, each asked for after the previous one was seen.
        if (++n == 3) return false;
        return ::write(wake[1], "x", 1) == 1;
      },
      [&](int& n, buffer&) {
        if (n == 0) REQUIRE(::write(wake[1], "x", 1) == 1);
      },
      opt);
  CHECK(r.exit_code == 0);
  CHECK(wakes == 3);
  ::close(wake[0]);
  ::close(wake[1]);
}

TEST_CASE("run_app without a terminal reports it and returns 2", "[tui][app]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  app_options opt;
  opt.in_fd = fds[0];
  opt.out_fd = fds[1];
  opt.program_name = "test";
  int m = 0;
  auto r = run_app(
      m, [](int&, const event&, app_io&) { return false; }, [](int&, buffer&) {}, opt);
  CHECK(r.exit_code == 2);
  ::close(fds[0]);
  ::close(fds[1]);
}
