// End-to-end: protocol version 3's task fields with real `leaseq runner` processes (issue 17
// items 3, 4 and 5): `submit --after` across runners and nodes, `--time-limit` enforced by the
// supervisor (also while no runner lives), `--retries` after a failure and after a kill -9.
#include <signal.h>
#include <sys/types.h>

#include <memory>
#include <string>

#include <catch2/catch.hpp>
#include <leaseq/detail/dir.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/model.hpp>
#include <leaseq/paths.hpp>

#include "runner_fixture.hpp"
#include "test_support.hpp"

using namespace e2e;

namespace {

const std::vector<std::string> runner_args = {"--slots", "2", "--gpus", "none", "--grace", "1"};

std::unique_ptr<runner_proc> start_runner(const fixture& f, const std::string& node) {
  auto r = std::make_unique<runner_proc>(f, node, runner_args);
  bool up = wait_until([&] { return f.hb(node).has_value(); }, 20s);
  INFO(r->log());
  REQUIRE(up);
  return r;
}

// A shell task that waits for the file `gate` (in the test's temp dir), then exits with code.
std::string gated(const fixture& f, const std::string& gate, int code) {
  std::string g = (f.tmp / gate).string();
  return "--shell -- 'echo started; while [ ! -e " + g + " ]; do sleep 0.05; done; exit " +
         std::to_string(code) + "'";
}

// Where a task is claimed right now, and its recorded pid (its supervisor's process group).
std::pair<std::string, pid_t> running_where(const fixture& f, const std::string& id) {
  std::pair<std::string, pid_t> out{"", -1};
  bool ok = wait_until([&] {
    for (const auto& n : detail::list_dir(f.lease.claimed_root().string()).names) {
      json_outcome r = read_json_tolerant(f.lease.claimed_task(n, id));
      if (r.ok() && r.value->contains("pid")) {
        out = {n, (*r.value)["pid"].get<pid_t>()};
        return true;
      }
    }
    return false;
  });
  INFO("waiting for " << id << " to run");
  REQUIRE(ok);
  return out;
}

// How many result files the task has across every node (never more than one).
std::size_t results_of(const fixture& f, const std::string& id) {
  std::size_t n = 0;
  for (const auto& d : detail::list_dir(f.lease.done_root().string()).names)
    n += fs::exists(f.lease.result(d, id)) ? 1 : 0;
  return n;
}

// A submit that must be refused, with `why` in its message.
void check_refused(const fixture& f, const std::string& args, const std::string& why) {
  auto r = f.leaseq("submit --lease " + lease_id + " " + args);
  INFO(r.out);
  CHECK(r.exit_code != 0);
  CHECK(r.out.find(why) != std::string::npos);
}

std::string tasks_text(const fixture& f) {
  return f.leaseq("tasks --lease " + lease_id, false).out;
}

}  // namespace

TEST_CASE("dependencies: a task runs once its dependency finished on another node",
          "[runner][e2e]") {
  fixture f;
  auto n1 = start_runner(f, "n1");
  auto n2 = start_runner(f, "n2");
  std::string first = f.submit("--node n1 " + gated(f, "gate", 0));
  std::string second = f.submit("--node n2 --after " + first + " -- echo second");
  std::string free = f.submit("--node n2 -- echo free");
  running_where(f, first);
  // The waiting task does not block the one behind it in its lane.
  json fr = f.wait_result(free);
  CHECK(fr["state"] == "FINISHED");
  CHECK_FALSE(f.result_of(second));
  CHECK(fs::exists(f.lease.inbox_task("n2", second)));
  std::string listing = tasks_text(f);
  CHECK(listing.find("after " + first + " (RUNNING)") != std::string::npos);

  test_support::write_text(f.tmp / "gate", "");
  json a = f.wait_result(first);
  json b = f.wait_result(second);
  CHECK(b["state"] == "FINISHED");
  CHECK(b["after"] == json::array({first}));
  CHECK(b["started"].get<double>() >= a["finished"].get<double>());
  CHECK(f.log_of("n2", second) == "second\n");
}

TEST_CASE("dependencies: a failed dependency cancels its dependants once, whoever races",
          "[runner][e2e]") {
  fixture f;
  // Unknown ids are refused and nothing is written.
  check_refused(f, "--after T404 -- true", "T404");
  CHECK(f.count(f.lease.inbox("_any")) == 0);
  check_refused(f, "--after T1 -- true", "T1");

  std::string bad = f.submit(gated(f, "gate", 3));
  std::string child = f.submit("--after " + bad + " -- echo never");
  std::string grandchild = f.submit("--after " + child + "," + bad + " -- echo never");
  std::string unrelated = f.submit("-- echo fine");
  auto n1 = start_runner(f, "n1");
  auto n2 = start_runner(f, "n2");
  running_where(f, bad);
  CHECK(f.wait_result(unrelated)["state"] == "FINISHED");
  test_support::write_text(f.tmp / "gate", "");
  json c = f.wait_result(child);
  CHECK(c["state"] == "CANCELLED");
  CHECK(c["reason"] == "dependency_failed: " + bad + " FAILED");
  json g = f.wait_result(grandchild);
  CHECK(g["state"] == "CANCELLED");
  CHECK(g["reason"].get<std::string>().rfind("dependency_failed: ", 0) == 0);
  // Two runners looked at both: one result each, nothing ran.
  CHECK(results_of(f, child) == 1);
  CHECK(results_of(f, grandchild) == 1);
  for (const auto& node : {"n1", "n2"}) {
    CHECK_FALSE(fs::exists(f.lease.stdout_log(node, child)));
    CHECK_FALSE(fs::exists(f.lease.stdout_log(node, grandchild)));
  }
}

TEST_CASE("time limit: the supervisor stops a task past its limit, even with its runner killed",
          "[runner][e2e]") {
  fixture f;
  check_refused(f, "--time-limit 30 -- true", "has no unit");
  check_refused(f, "--retry-delay 5s -- true", "needs --retries");
  CHECK_FALSE(fs::exists(f.home / "runs"));  // bad input writes nothing, not even the lease

  std::string watched = f.submit("--time-limit 1s -- sleep 60");
  std::string alone = f.submit("--time-limit 2s --retries 2 -- sleep 60");
  std::string fast = f.submit("--time-limit 1h -- echo quick");
  {
    auto r = start_runner(f, "n1");
    json w = f.wait_result(watched);
    CHECK(w["state"] == "FAILED");
    CHECK(w["reason"] == "time_limit");
    CHECK(w["signal"] == SIGTERM);
    running_where(f, alone);
    r->signal(SIGKILL);
    r->wait();
  }
  // No runner: the supervisor still stops it and records why.
  REQUIRE(wait_until([&] {
    json_outcome e = read_json_tolerant(f.lease.logs("n1") / (alone + ".exit"));
    return e.ok() && (*e.value)["time_limit"] == true;
  }));
  auto r = start_runner(f, "n1");
  json a = f.wait_result(alone);
  CHECK(a["state"] == "FAILED");
  CHECK(a["reason"] == "time_limit");  // and not retried
  CHECK(a["attempts"].size() == 1);
  json q = f.wait_result(fast);
  CHECK(q["state"] == "FINISHED");
}

TEST_CASE("retries: a failed attempt runs again after its delay, every exit code kept",
          "[runner][e2e]") {
  fixture f;
  std::string marker = (f.tmp / "tried").string();
  std::string id = f.submit("--retries 2 --retry-delay 4s --shell -- 'if [ -e " + marker +
                            " ]; then exit 0; fi; touch " + marker + "; exit 3'");
  auto r = start_runner(f, "n1");
  REQUIRE(wait_until([&] {
    json_outcome t = read_json_tolerant(f.lease.inbox_task("_any", id));
    return t.ok() && t.value->contains("attempts");
  }));
  std::string listing = tasks_text(f);
  CHECK(listing.find("[attempt 2/3]") != std::string::npos);
  json res = f.wait_result(id);
  CHECK(res["state"] == "FINISHED");
  REQUIRE(res["attempts"].size() == 2);
  CHECK(res["attempts"][0]["exit_code"] == 3);
  CHECK(res["attempts"][1]["exit_code"] == 0);
  CHECK(res["attempts"][0]["attempt"] != res["attempts"][1]["attempt"]);
  CHECK(res["attempt"] == res["attempts"][1]["attempt"]);
  CHECK(res["started"].get<double>() >= res["attempts"][0]["finished"].get<double>() + 4);
}

TEST_CASE("retries: a task lost with its kill -9'd runner runs again on another runner",
          "[runner][e2e]") {
  fixture f;
  std::string marker = (f.tmp / "first").string();
  std::string id = f.submit("--retries 1 --shell -- 'if [ -e " + marker +
                            " ]; then echo second; exit 0; fi; touch " + marker + "; sleep 60'");
  auto n1 = start_runner(f, "n1");
  auto n2 = start_runner(f, "n2");
  auto [node, pid] = running_where(f, id);
  std::string other = node == "n1" ? "n2" : "n1";
  auto& victim = node == "n1" ? n1 : n2;
  // The runner, its spawn server (the tasks' supervisor) and the task's whole process group
  // die: nothing records how it ended.
  pid_t supervisor = victim->spawn_server();
  REQUIRE(supervisor > 1);
  ::kill(supervisor, SIGKILL);
  victim->signal(SIGKILL);
  victim->wait();
  ::kill(-pid, SIGKILL);
  // The node's next runner finds it lost and puts it back; paused, it leaves it to the other.
  REQUIRE(f.leaseq("pause --lease " + lease_id + " " + node).exit_code == 0);
  victim = std::make_unique<runner_proc>(f, node, runner_args);
  json res = f.wait_result(id);
  CHECK(res["state"] == "FINISHED");
  REQUIRE(res["attempts"].size() == 2);
  CHECK(res["attempts"][0]["reason"] == "runner_lost");
  CHECK(res["attempts"][0]["node"] == node);
  CHECK(res["attempts"][1]["node"] == other);
  CHECK(fs::exists(f.lease.result(other, id)));
  CHECK(results_of(f, id) == 1);
  CHECK(f.log_of(other, id) == "second\n");
}

TEST_CASE("cancel: --state PENDING cancels every pending task (of a node), asking first",
          "[runner][e2e]") {
  fixture f;
  auto r = start_runner(f, "n1");
  REQUIRE(f.leaseq("pause --lease " + lease_id + " n1").exit_code == 0);
  REQUIRE(wait_until([&] { return hb_says(f, "n1", "paused", true); }));
  std::string a = f.submit("-- true"), b = f.submit("-- true");
  std::string elsewhere = f.submit("--node n2 --force -- true");
  auto cancel = [&](const std::string& args) {
    return f.leaseq("cancel --lease " + lease_id + " " + args + " < /dev/null");
  };
  auto asked = cancel("--state PENDING");
  CHECK(asked.exit_code != 0);
  CHECK(asked.out.find("3 tasks would be cancelled") != std::string::npos);
  CHECK(asked.out.find("--yes") != std::string::npos);
  CHECK(cancel("--state FINISHED --yes").exit_code != 0);
  CHECK(cancel("").exit_code != 0);
  CHECK(cancel("--node n2 " + a).exit_code != 0);
  CHECK(f.count_results() == 0);  // nothing was cancelled by the refused ones

  auto one = cancel("--state pending --node n2");  // one task: no question
  INFO(one.out);
  CHECK(one.exit_code == 0);
  CHECK(f.wait_result(elsewhere)["state"] == "CANCELLED");
  CHECK_FALSE(f.result_of(a));
  CHECK(cancel("--state PENDING --yes").exit_code == 0);
  CHECK(f.wait_result(a)["state"] == "CANCELLED");
  CHECK(f.wait_result(b)["state"] == "CANCELLED");
  CHECK(cancel("--state PENDING").out.find("no PENDING task") != std::string::npos);
}

TEST_CASE("retry: --state FAILED enqueues every failed task again, asking first", "[runner][e2e]") {
  fixture f;
  auto r = start_runner(f, "n1");
  std::string a = f.submit("-- false"), b = f.submit("-- false"), ok = f.submit("-- true");
  for (const auto& id : {a, b, ok}) f.wait_result(id);
  auto retry = [&](const std::string& args) {
    return f.leaseq("retry --lease " + lease_id + " " + args + " < /dev/null");
  };
  auto asked = retry("--state FAILED");
  CHECK(asked.exit_code != 0);
  CHECK(asked.out.find("2 tasks would be retried") != std::string::npos);
  CHECK(retry("--state RUNNING --yes").exit_code != 0);
  CHECK(retry("--state FAILED --key k1 --yes").exit_code != 0);
  CHECK(f.count_results() == 3);
  auto done = retry("--state FAILED --yes");
  INFO(done.out);
  REQUIRE(done.exit_code == 0);
  auto ids = lines_of(done.out);
  REQUIRE(ids.size() == 2);
  for (const auto& id : ids) CHECK(f.wait_result(id)["retry_of"].is_string());
  CHECK(f.wait_result(ids[0])["retry_of"] == a);
  CHECK(f.wait_result(ids[1])["retry_of"] == b);
}
