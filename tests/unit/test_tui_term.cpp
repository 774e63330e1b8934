#include <leaseq/tui/term.hpp>

#include <catch2/catch.hpp>

#include "pty.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <string>

using namespace leaseq::tui;
using test_support::pty;

namespace {

bool same_termios(const termios& a, const termios& b) {
  return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_cflag == b.c_cflag &&
         a.c_lflag == b.c_lflag && std::memcmp(a.c_cc, b.c_cc, sizeof a.c_cc) == 0;
}

}  // namespace

TEST_CASE("not a terminal is refused with a clear error", "[tui][term]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  CHECK_THROWS_AS(terminal({}, fds[0], fds[1]), not_a_terminal);
  CHECK(not_a_terminal_exit_code == 2);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("enter sets raw mode and modes, restore undoes them in reverse", "[tui][term]") {
  pty p;
  termios before{};
  REQUIRE(::tcgetattr(p.slave, &before) == 0);
  {
    terminal term({}, p.slave, p.slave);
    CHECK(term.size().width == 100);
    CHECK(term.size().height == 40);
    term.enter();
    termios raw{};
    REQUIRE(::tcgetattr(p.slave, &raw) == 0);
    CHECK((raw.c_lflag & (ICANON | ECHO | ISIG)) == 0);
    CHECK(p.drain() == "\x1b[?1049h\x1b[?25l\x1b[?2004h");
    CHECK(term.take_full_redraw());
    CHECK_FALSE(term.take_full_redraw());
    term.restore();
    CHECK(p.drain() == "\x1b[?2004l\x1b[?25h\x1b[?1049l");
    termios after{};
    REQUIRE(::tcgetattr(p.slave, &after) == 0);
    CHECK(same_termios(before, after));
    term.restore();  // twice is harmless
    CHECK(p.drain().empty());
    term.enter();
    p.drain();
  }  // the destructor restores too
  CHECK(p.drain() == "\x1b[?2004l\x1b[?25h\x1b[?1049l");
  termios after{};
  REQUIRE(::tcgetattr(p.slave, &after) == 0);
  CHECK(same_termios(before, after));
}

namespace {
// Polls until `want` events arrived (or 200 polls went by); tick events are skipped.
std::vector<event> collect(terminal& term, std::size_t want) {
  std::vector<event> out;
  for (int i = 0; i < 200 && out.size() < want; ++i)
    for (auto& e : term.poll(20))
      if (!std::holds_alternative<tick_event>(e)) out.push_back(e);
  return out;
}
}  // namespace

TEST_CASE("poll turns typed bytes, signals and silence into events", "[tui][term]") {
  pty p;
  terminal term({}, p.slave, p.slave);
  term.enter();
  p.drain();

  REQUIRE(::write(p.master, "q\x1b[A", 4) == 4);
  auto evs = collect(term, 2);
  REQUIRE(evs.size() == 2);
  CHECK(std::get<key_event>(evs[0]).k == key::ch('q'));
  CHECK(std::get<key_event>(evs[1]).k == key::of(key_code::up));

  // A lone Esc becomes the Esc key once the short timeout passes.
  REQUIRE(::write(p.master, "\x1b", 1) == 1);
  evs = collect(term, 1);
  REQUIRE(evs.size() == 1);
  CHECK(std::get<key_event>(evs[0]).k == key::of(key_code::escape));

  // Signals are recorded by the handler and handed over by the loop.
  ::raise(SIGTERM);
  evs = collect(term, 1);
  REQUIRE(evs.size() == 1);
  CHECK(std::get<signal_event>(evs[0]).signo == SIGTERM);

  struct winsize ws {};
  ws.ws_col = 120;
  ws.ws_row = 50;
  ::ioctl(p.master, TIOCSWINSZ, &ws);
  ::raise(SIGWINCH);
  evs = collect(term, 1);
  REQUIRE(evs.size() >= 1);
  CHECK(std::get<resize_event>(evs[0]).width == 120);
  CHECK(std::get<resize_event>(evs[0]).height == 50);
  CHECK(term.take_full_redraw());

  // Nothing happening: a tick.
  auto quiet = term.poll(1);
  REQUIRE(quiet.size() == 1);
  CHECK(std::holds_alternative<tick_event>(quiet[0]));

  // One frame is one write, and an empty frame writes nothing.
  CHECK(term.write_frame(""));
  CHECK(p.drain().empty());
  CHECK(term.write_frame("frame"));
  CHECK(p.drain() == "frame");
}

TEST_CASE("screen renders full after a resize and nothing when unchanged", "[tui][term]") {
  present_options o;
  o.synchronized = false;
  o.colors = color_mode::none;
  screen scr({3, 1}, o);
  scr.back().print(0, 0, "ab");
  CHECK(scr.render() == "\x1b[1;1H\x1b[0mab \x1b[0m");
  scr.back().print(0, 0, "ab");
  CHECK(scr.render().empty());
  scr.back().print(1, 0, "X");
  CHECK(scr.render() == "\x1b[1;2H\x1b[0mX\x1b[0m");
  CHECK(scr.render(true) == "\x1b[1;1H\x1b[0maX \x1b[0m");
  scr.resize(2, 1);
  scr.back().print(0, 0, "zz");
  CHECK(scr.render() == "\x1b[1;1H\x1b[0mzz\x1b[0m");
}
