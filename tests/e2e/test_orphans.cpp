// End-to-end: tasks that outlive their runner (kill -9 of `leaseq runner`) keep their true
// outcome. Each task runs under a supervisor (the runner's spawn server, `leaseq-sup`), which
// outlives the runner and records the task's exit status in logs/<node>/<id>.exit; the next
// runner of the node reads it (issue 14.7).
#include <signal.h>
#include <sys/types.h>

#include <string>

#include <catch2/catch.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/model.hpp>
#include <leaseq/paths.hpp>

#include "runner_fixture.hpp"
#include "test_support.hpp"

using namespace e2e;

namespace {

const std::vector<std::string> orphan_runner_args = {"--slots", "4",       "--gpus",
                                                     "none",    "--grace", "2"};

// A task that says it started, then waits for `gate` to exist, then exits with `code`.
std::string gated_reporting(const fixture& f, const std::string& gate, int code) {
  // The temp dir's path has no quotes or spaces (the runner tests rely on that too).
  std::string g = (f.tmp / gate).string();
  return "--shell -- 'echo started; while [ ! -e " + g +
         " ]; do sleep 0.05; done; echo finished-ok; exit " + std::to_string(code) + "'";
}

// The pid the runner recorded for a running task (the task, leading its process group).
pid_t recorded_pid(const fixture& f, const std::string& id) {
  pid_t pid = -1;
  bool ok = wait_until([&] {
    json_outcome r = read_json_tolerant(f.lease.claimed_task("o", id));
    if (!r.ok() || !r.value->contains("pid")) return false;
    pid = (*r.value)["pid"].get<pid_t>();
    return f.log_of("o", id) == "started\n";
  });
  INFO("waiting for " << id << " to start");
  REQUIRE(ok);
  REQUIRE(pid > 1);
  return pid;
}

void open_gate(const fixture& f, const std::string& gate) {
  test_support::write_text(f.tmp / gate, "");
}

}  // namespace

TEST_CASE("orphans: a task outliving its kill -9'd runner keeps its exit status", "[runner][e2e]") {
  fixture f;
  std::string ends_alone = f.submit(gated_reporting(f, "gate-a", 0));  // ends while no runner runs
  std::string ends_watched = f.submit(gated_reporting(f, "gate-b", 0));
  std::string fails = f.submit(gated_reporting(f, "gate-c", 3));
  {
    runner_proc r(f, "o", orphan_runner_args);
    for (const auto& id : {ends_alone, ends_watched, fails}) recorded_pid(f, id);
    r.signal(SIGKILL);
    CHECK(r.wait() == 128 + SIGKILL);
  }
  open_gate(f, "gate-a");
  REQUIRE(wait_until([&] { return fs::exists(f.lease.logs("o") / (ends_alone + ".exit")); }));
  runner_proc r2(f, "o", orphan_runner_args);
  json a = f.wait_result(ends_alone);
  CHECK(a["state"] == "FINISHED");
  CHECK(a["exit_code"] == 0);
  CHECK(a["reason"].is_null());
  // When it started, as its first runner recorded it: the orphan's result keeps it.
  CHECK(a["started"].is_number());
  if (a["started"].is_number() && a["finished"].is_number())
    CHECK(a["started"].get<double>() <= a["finished"].get<double>());
  REQUIRE(wait_until([&] {
    return hb_says(f, "o", "running", json::array({ends_watched, fails}));
  }));
  open_gate(f, "gate-b");
  open_gate(f, "gate-c");
  json b = f.wait_result(ends_watched);
  CHECK(b["state"] == "FINISHED");
  CHECK(b["exit_code"] == 0);
  CHECK(b["reason"].is_null());
  CHECK(b["started"].is_number());
  CHECK(f.log_of("o", ends_watched) == "started\nfinished-ok\n");
  json c = f.wait_result(fails);
  CHECK(c["state"] == "FAILED");
  CHECK(c["exit_code"] == 3);
  CHECK(c["reason"].is_null());
  CHECK(c["started"].is_number());
  CHECK(f.count(f.lease.claimed("o")) == 0);
  r2.signal(SIGTERM);
  CHECK(r2.wait() == 0);
}

TEST_CASE("orphans: cancel of a task left by a kill -9'd runner is CANCELLED", "[runner][e2e]") {
  fixture f;
  std::string id = f.submit("--shell -- 'echo started; exec sleep 60'");
  {
    runner_proc r(f, "o", orphan_runner_args);
    recorded_pid(f, id);
    r.signal(SIGKILL);
    r.wait();
  }
  runner_proc r2(f, "o", orphan_runner_args);
  REQUIRE(wait_until([&] { return hb_says(f, "o", "running", json::array({id})); }));
  auto c = f.leaseq("cancel --lease " + lease_id + " " + id);
  INFO(c.out);
  CHECK(c.exit_code == 0);
  json res = f.wait_result(id);
  CHECK(res["state"] == "CANCELLED");
  CHECK(res["reason"] == "cancelled");
  CHECK(res["signal"] == SIGTERM);  // as its supervisor saw it die
  CHECK(res["started"].is_number());
  r2.signal(SIGTERM);
  CHECK(r2.wait() == 0);
}

TEST_CASE("orphans: a task killed together with its runner is runner_lost", "[runner][e2e]") {
  fixture f;
  std::string id = f.submit(gated_reporting(f, "gate", 0));
  {
    runner_proc r(f, "o", orphan_runner_args);
    pid_t pid = recorded_pid(f, id);
    pid_t supervisor = r.spawn_server();
    REQUIRE(supervisor > 1);
    // Everything at once, as when the node's processes are killed: nobody records the end.
    ::kill(supervisor, SIGKILL);
    r.signal(SIGKILL);
    ::kill(-pid, SIGKILL);
    r.wait();
  }
  runner_proc r2(f, "o", orphan_runner_args);
  json res = f.wait_result(id);
  CHECK(res["state"] == "FAILED");
  CHECK(res["reason"] == "runner_lost");
  CHECK(res["exit_code"].is_null());
  CHECK_FALSE(fs::exists(f.lease.logs("o") / (id + ".exit")));
  r2.signal(SIGTERM);
  CHECK(r2.wait() == 0);
}

TEST_CASE("orphans: a killed spawn server: its task ends runner_lost, later tasks still run",
          "[runner][e2e]") {
  fixture f;
  std::string id = f.submit(gated_reporting(f, "gate", 0));
  runner_proc r(f, "o", orphan_runner_args);
  recorded_pid(f, id);
  pid_t supervisor = r.spawn_server();
  REQUIRE(supervisor > 1);
  ::kill(supervisor, SIGKILL);
  REQUIRE(wait_until(
      [&] { return r.log().find("its supervisor is gone; watching pid") != std::string::npos; }));
  open_gate(f, "gate");
  json res = f.wait_result(id);
  CHECK(res["state"] == "FAILED");
  CHECK(res["reason"] == "runner_lost");
  CHECK(f.log_of("o", id) == "started\nfinished-ok\n");  // it ran to its end, unrecorded
  // The runner goes on, each task under a supervisor exec'd for it.
  std::string next = f.submit("--shell -- 'echo next; exit 3'");
  json n = f.wait_result(next);
  CHECK(n["state"] == "FAILED");
  CHECK(n["exit_code"] == 3);
  CHECK(n["reason"].is_null());
  CHECK(fs::exists(f.lease.logs("o") / (next + ".exit")));
  r.signal(SIGTERM);
  CHECK(r.wait() == 0);
}
