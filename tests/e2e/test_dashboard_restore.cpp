// The full dashboard (`leaseq tui`) restores the terminal however it ends: `stty -g` after equals
// `stty -g` before. test_dashboard.cpp covers q, SIGTERM and Ctrl-Z + fg; this file covers a
// crash (SIGSEGV) and an exception thrown inside
// the update loop (injected with LEASEQ_FAULT=dashboard_throws, see
// include/leaseq/detail/fault.hpp), each over a busy lease with a real runner.
#include <signal.h>

#include <map>
#include <string>

#include <catch2/catch.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/paths.hpp>

#include "test_support.hpp"
#include "tmux.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

struct restore_run {
  temp_dir dir;
  fs::path home = dir / "home";
  std::string lease = "local:restore";
  std::map<std::string, std::string> env;
  pid_t runner = -1;

  restore_run() {
    leaseq::ensure_dir(home);
    env["LEASEQ_HOME"] = home.string();
    // A busy lease: a runner with chatty tasks, so the dashboard is drawing when it dies.
    auto r = run_command("LEASEQ_HOME=" + shell_quote(home.string()) + " " + LEASEQ_BIN +
                         " runner --detach --lease " + lease +
                         " --node n1 --slots 3 --gpus none 2>/dev/null");
    REQUIRE(r.exit_code == 0);
    runner = std::stoi(r.out);
    for (int i = 0; i < 6; ++i)
      run_command("LEASEQ_HOME=" + shell_quote(home.string()) + " " + LEASEQ_BIN +
                  " submit --lease " + lease + " --shell -- " +
                  shell_quote("for i in $(seq 1 400); do echo tick $i; sleep 0.05; done") +
                  " >/dev/null 2>&1");
  }
  ~restore_run() {
    if (runner > 1) ::kill(runner, SIGTERM);
  }

  // Starts the dashboard from an interactive shell in tmux that records `stty -g` before and
  // after and the exit status; returns the dashboard's pid.
  pid_t start(tmux_session& t, const std::string& fault = "") {
    std::string d = dir.path().string();
    std::string prefix = fault.empty() ? "" : "LEASEQ_FAULT=" + fault + " ";
    t.type("(ulimit -c 0; stty -g > " + d + "/before; " + prefix + "sh -c 'echo $$ > " + d +
           "/pid; exec " + LEASEQ_BIN + " tui --lease " + lease + " 2> " + d +
           "/stderr'; echo $? > " + d + "/rc.tmp; stty -g > " + d + "/after; mv " + d + "/rc.tmp " +
           d + "/rc)");
    t.keys("Enter");
    REQUIRE(wait_until([&] { return !read_text(dir / "pid").empty(); }));
    return std::stoi(read_text(dir / "pid"));
  }
  int wait_exit() {
    REQUIRE(wait_until([&] { return fs::exists(dir / "rc"); }, 30s));
    return std::stoi(read_text(dir / "rc"));
  }
  void check_restored() {
    std::string before = read_text(dir / "before"), after = read_text(dir / "after");
    CHECK_FALSE(before.empty());
    CHECK(before == after);
  }
};

}  // namespace

// One crash signal here; every signal is checked on the renderer (test_tui_terminal.cpp).
TEST_CASE("dashboard: terminal restored after SIGSEGV", "[dashboard_restore][e2e]") {
  for (int sig : {SIGSEGV}) {
    DYNAMIC_SECTION("signal " << sig) {
      restore_run r;
      tmux_session t(r.dir.path(), 100, 30, r.env);
      pid_t pid = r.start(t);
      REQUIRE(t.wait_for("lease=" + r.lease));
      REQUIRE(t.wait_for("T00"));  // tasks drawn: the dashboard is busy
      ::kill(pid, sig);
      CHECK(r.wait_exit() == 128 + sig);
      r.check_restored();
      CHECK(t.capture().find("lease=" + r.lease) == std::string::npos);  // left the alt screen
    }
  }
}

TEST_CASE("dashboard: terminal restored after an exception in the update loop",
          "[dashboard_restore][e2e]") {
  restore_run r;
  tmux_session t(r.dir.path(), 100, 30, r.env);
  // The first key press throws: sent only once the dashboard has drawn the lease, so nothing
  // races the wait.
  r.start(t, "dashboard_throws=1");
  REQUIRE(t.wait_for("lease=" + r.lease));
  t.keys("j");
  int rc = r.wait_exit();
  CHECK(rc == 1);
  r.check_restored();
  CHECK_THAT(read_text(r.dir / "stderr"), Catch::Contains("injected fault: dashboard_throws"));
  CHECK(t.capture().find("lease=" + r.lease) == std::string::npos);
}
