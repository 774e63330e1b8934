// The CLI on a terminal (tmux) and through a pipe: `follow` and `logs` show a progress bar
// redrawn with \r in its last state on a terminal and pass the bytes as they are otherwise;
// `lease ls` and `status` say RUNNING (inferred) while the lease's runners heartbeat and the
// Slurm cache still holds the PENDING seen at submit.
#include <leaseq/clock.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/index.hpp>
#include <leaseq/paths.hpp>

#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "lease_tree.hpp"
#include "test_support.hpp"
#include "tmux.hpp"

using namespace leaseq;
using test_support::read_text;
using test_support::shell_quote;
using test_support::wait_until;
using test_support::write_text;

namespace {

// A tqdm-style bar: three states of one line, then the line after it.
const std::string bar_log = "loading\nepoch 1   5%\repoch 1  50%\repoch 1 100%\nsaved\n";

struct cli_term {
  test_support::lease_tree t;
  test_support::tmux_session tmux{t.home, 100, 30, {{"LEASEQ_HOME", t.home.string()}}};

  cli_term() { t.register_default(); }

  // Runs `leaseq args` in the terminal and waits for its exit status.
  bool run(const std::string& args, const std::string& rc = "0") {
    static int n = 0;
    std::string mark = "rc" + std::to_string(++n) + "=";
    tmux.type(std::string(LEASEQ_BIN) + " " + args + "; echo " + mark + "$?");
    tmux.keys("Enter");
    bool ok = tmux.wait_for(mark + rc);
    if (!ok) UNSCOPED_INFO("screen was:\n" << tmux.capture());
    return ok;
  }
  std::string piped(const std::string& args) const {
    return test_support::run_command("LEASEQ_HOME=" + shell_quote(t.home.string()) + " " +
                                     LEASEQ_BIN + " " + args + " </dev/null 2>/dev/null | cat")
        .out;
  }
};

void append(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::app | std::ios::binary);
  f << text;
}

}  // namespace

TEST_CASE("leaseq logs and follow on a terminal show a progress bar's last state only",
          "[read_cli][e2e]") {
  cli_term c;
  c.t.done(1, "nodeA");
  ensure_dir(c.t.paths.logs("nodeA"));
  write_text(c.t.paths.stdout_log("nodeA", "T001"), bar_log);
  for (const char* cmd : {"logs T001", "follow T001"}) {
    INFO(cmd);
    REQUIRE(c.run(cmd));
    std::string screen = c.tmux.capture();
    INFO(screen);
    CHECK(screen.find("loading\nepoch 1 100%\nsaved\n") != std::string::npos);
    CHECK(screen.find("50%") == std::string::npos);
    CHECK(screen.find("  5%") == std::string::npos);
  }
  // Not a terminal: the file's bytes, \r and all. The file itself is untouched.
  CHECK(c.piped("logs T001") == bar_log);
  CHECK(c.piped("follow T001") == bar_log);
  CHECK(read_text(c.t.paths.stdout_log("nodeA", "T001")) == bar_log);
}

TEST_CASE("leaseq follow on a terminal redraws a running bar in place", "[read_cli][e2e]") {
  cli_term c;
  c.t.claimed(2, "nodeA");
  ensure_dir(c.t.paths.logs("nodeA"));
  fs::path log = c.t.paths.stdout_log("nodeA", "T002");
  write_text(log, "start\nstep  10%");
  c.t.hb("nodeA", unix_now(), {"T002"});
  c.tmux.type(std::string(LEASEQ_BIN) + " follow T002; echo rc=$?");
  c.tmux.keys("Enter");
  REQUIRE(c.tmux.wait_for("step  10%"));  // a partial line is shown after a second
  append(log, "\rstep  60%");
  REQUIRE(c.tmux.wait_for("step  60%"));
  CHECK(c.tmux.capture().find("step  10%") == std::string::npos);
  append(log, "\rstep 100%\ndone\n");
  REQUIRE(c.tmux.wait_for("done"));
  c.t.finish(2, "nodeA");
  REQUIRE(c.tmux.wait_for("rc=0"));
  std::string screen = c.tmux.capture();
  INFO(screen);
  CHECK(screen.find("start\nstep 100%\ndone\n") != std::string::npos);
  CHECK(screen.find("60%") == std::string::npos);
  CHECK(c.piped("follow T002") == "start\nstep  10%\rstep  60%\rstep 100%\ndone\n");
}

TEST_CASE("lease ls and status: RUNNING inferred from heartbeats while Slurm's cache says PENDING",
          "[read_cli][e2e]") {
  test_support::lease_tree t;  // Slurm lease 99887766, the default
  t.register_default();
  t.hb("nodeA", unix_now(), {});
  t.hb("nodeB", unix_now(), {});
  // A second Slurm lease without any runner yet: Slurm's PENDING stands.
  home_paths home(t.home);
  register_lease(home, {"11223344", "slurm", std::nullopt, unix_now(), json::object()});
  ensure_dir(home.lease_dir("11223344"));
  // The squeue the shared cache asks: both still PENDING, as right after `lease create`.
  fs::path bin = t.home / "bin";
  ensure_dir(bin);
  write_text(bin / "squeue",
             "#!/bin/sh\n"
             "printf '99887766|PENDING|Resources|1:00:00|1:00:00|2||N/A|leaseq\\n"
             "11223344|PENDING|Priority|1:00:00|1:00:00|1||N/A|leaseq\\n'\n");
  fs::permissions(bin / "squeue", fs::perms::owner_all);
  auto run = [&](const std::string& args) {
    return test_support::run_command("PATH=" + shell_quote(bin.string()) + ":\"$PATH\" " +
                                     "LEASEQ_HOME=" + shell_quote(t.home.string()) + " " +
                                     LEASEQ_BIN + " " + args + " 2>&1");
  };

  auto r = run("lease ls --json");
  REQUIRE(r.exit_code == 0);
  json j = json::parse(r.out);
  REQUIRE(j.size() == 2);
  CHECK(j[0]["id"] == "99887766");
  CHECK(j[0]["state"] == "RUNNING");
  CHECK(j[0]["state_inferred"] == "heartbeats");
  CHECK(j[0]["reason"] == "inferred from 2 fresh runner heartbeat(s); Slurm said PENDING");
  CHECK(j[1]["state"] == "PENDING");
  CHECK(j[1]["state_inferred"].is_null());

  r = run("lease ls");
  INFO(r.out);
  CHECK(r.out.find("RUNNING  inferred from 2 fresh runner heartbeat(s); Slurm said PENDING") !=
        std::string::npos);
  CHECK(r.out.find("PENDING  Priority") != std::string::npos);

  r = run("status");
  INFO(r.out);
  CHECK(r.out.find("lease 99887766  slurm  RUNNING (inferred from 2 fresh runner heartbeat(s); "
                   "Slurm said PENDING)") != std::string::npos);
  r = run("status --json");
  INFO(r.out);
  REQUIRE(r.out.find('{') != std::string::npos);
  j = json::parse(r.out.substr(r.out.find('{')));
  CHECK(j["state"] == "RUNNING");
  CHECK(j["state_inferred"] == "heartbeats");
  r = run("status --lease 11223344 --json");
  INFO(r.out);
  REQUIRE(r.out.find('{') != std::string::npos);
  j = json::parse(r.out.substr(r.out.find('{')));
  CHECK(j["state"] == "PENDING");
  CHECK(j["state_inferred"].is_null());
}
