// Drives examples/renderer_demo in a real tmux (own server socket): rendering, resize, keys,
// and that the terminal modes (`stty -g`) are identical before and after every way out.

#include <test_support.hpp>
#include <tmux.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <string>

#ifndef LEASEQ_RENDERER_DEMO
#error "LEASEQ_RENDERER_DEMO must name the built leaseq_renderer_demo program"
#endif

using namespace test_support;

namespace {

struct demo_run {
  temp_dir dir;
  tmux_session tmux{dir.path()};
  pid_t pid = 0;

  // Records stty before, runs the demo, then records its exit status and stty after.
  void start() {
    std::string d = dir.path().string();
    // In a subshell: a stopped job must not let the rest of the line run (bash would record
    // 148 as the exit status on Ctrl-Z); the subshell waits through stop and continue.
    tmux.type("(ulimit -c 0; stty -g > " + d + "/before; " + LEASEQ_RENDERER_DEMO + " --pid-file " +
              d + "/pid; echo $? > " + d + "/rc.tmp; stty -g > " + d + "/after; mv " + d +
              "/rc.tmp " + d + "/rc)");
    tmux.keys("Enter");
    REQUIRE(wait_until([&] { return !read_text(dir / "pid").empty(); }));
    pid = std::stoi(read_text(dir / "pid"));
    REQUIRE(tmux.wait_for("leaseq renderer demo"));
  }
  int wait_exit() {
    REQUIRE(wait_until([&] { return fs::exists(dir / "rc"); }));
    return std::stoi(read_text(dir / "rc"));
  }
  std::string before() { return read_text(dir / "before"); }
  std::string after() { return read_text(dir / "after"); }
};

void check_restored_after(const std::function<void(demo_run&)>& how_to_exit, int want_rc) {
  demo_run run;
  run.start();
  how_to_exit(run);
  CHECK(run.wait_exit() == want_rc);
  CHECK_FALSE(run.before().empty());
  CHECK(run.before() == run.after());
  // The alternate screen was left: the demo's frame is gone from the shell's screen.
  CHECK(run.tmux.capture().find("leaseq renderer demo") == std::string::npos);
}

}  // namespace

TEST_CASE("the demo renders, follows resizes and keys", "[tui][e2e]") {
  demo_run run;
  run.start();
  CHECK(run.tmux.wait_for("size=80x24"));
  // Wide characters take two cells: the right border stays in the last column.
  std::string screen = run.tmux.capture();
  auto pos = screen.find("echo 任务 1 ");
  REQUIRE(pos != std::string::npos);
  std::string line = screen.substr(pos, screen.find('\n', pos) - pos);
  CHECK(line.size() >= 3);
  CHECK(line.compare(line.size() - 3, 3, "┃") == 0);

  run.tmux.tmux("resize-window -t 0 -x 100 -y 30");
  CHECK(run.tmux.wait_for("size=100x30"));
  run.tmux.keys("Down Down");
  CHECK(run.tmux.wait_for("selected row 3"));
  CHECK(run.tmux.wait_for("key=Down"));
  run.tmux.keys("?");
  CHECK(run.tmux.wait_for("Help (any key closes)"));
  run.tmux.keys("x f");
  CHECK(run.tmux.wait_for("Enter: submit"));
  run.tmux.type("sleep 1");
  run.tmux.keys("Enter");
  CHECK(run.tmux.wait_for("submitted sleep 1 x1"));
  run.tmux.keys("q");
  CHECK(run.wait_exit() == 0);
  CHECK(run.before() == run.after());
}

TEST_CASE("terminal modes are restored after q", "[tui][e2e]") {
  check_restored_after([](demo_run& r) { r.tmux.keys("q"); }, 0);
}

// The full matrix lives here, on the renderer the dashboard is built on: every signal that
// ends a program by default, the quit ones and the crash ones. The dashboard's own tests keep
// one of each class (test_dashboard.cpp, test_dashboard_restore.cpp).
TEST_CASE("terminal modes are restored after every signal that ends the program", "[tui][e2e]") {
  for (int sig : {SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGSEGV, SIGABRT, SIGBUS, SIGFPE}) {
    DYNAMIC_SECTION("signal " << sig) {
      check_restored_after([sig](demo_run& r) { ::kill(r.pid, sig); }, 128 + sig);
    }
  }
}

TEST_CASE("terminal modes are restored after an exception escapes main", "[tui][e2e]") {
  check_restored_after([](demo_run& r) { r.tmux.keys("X"); }, 128 + SIGABRT);
}

TEST_CASE("terminal modes are restored across Ctrl-Z, fg, q", "[tui][e2e]") {
  check_restored_after(
      [](demo_run& r) {
        r.tmux.keys("C-z");
        REQUIRE(r.tmux.wait_for("Stopped"));
        // While stopped, the shell sees the modes it had before the demo started.
        std::string d = r.dir.path().string();
        r.tmux.type("stty -g > " + d + "/during");
        r.tmux.keys("Enter");
        REQUIRE(wait_until([&] { return !read_text(r.dir / "during").empty(); }));
        CHECK(read_text(r.dir / "during") == r.before());
        r.tmux.type("fg");
        r.tmux.keys("Enter");
        REQUIRE(r.tmux.wait_for("leaseq renderer demo"));
        r.tmux.keys("Down");
        REQUIRE(r.tmux.wait_for("selected row 2"));
        r.tmux.keys("q");
      },
      0);
}

TEST_CASE("not a terminal: a clear message and exit code 2", "[tui][e2e]") {
  temp_dir dir;
  std::string out = (dir / "out").string();
  auto r =
      run_command(std::string(LEASEQ_RENDERER_DEMO) + " </dev/null >" + shell_quote(out) + " 2>&1");
  CHECK(r.exit_code == 2);
  CHECK(read_text(out).find("needs a terminal") != std::string::npos);
}
