// End-to-end: work that can never run does not wait silently (issue 14, item 13). Real
// `leaseq runner` processes; tasks, status, submit and cancel of the built program.
#include <catch2/catch.hpp>
#include <leaseq/detail/dir.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/model.hpp>
#include <leaseq/paths.hpp>

#include "runner_fixture.hpp"
#include "test_support.hpp"

using namespace e2e;
using test_support::shell_quote;

namespace {

// A runner whose first heartbeat is written: from then on the lease's runners are known.
std::unique_ptr<runner_proc> start_runner(const fixture& f, const std::string& node,
                                          std::vector<std::string> extra) {
  auto r = std::make_unique<runner_proc>(f, node, extra);
  bool up = wait_until([&] { return f.hb(node).has_value(); }, 20s);
  INFO(r->log());
  REQUIRE(up);
  return r;
}

json task_json(const fixture& f, const std::string& id) {
  auto r = f.leaseq("tasks --json --lease " + lease_id, false);
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  json j = json::parse(r.out);
  for (const auto& t : j["tasks"])
    if (t["id"] == id) return t;
  FAIL("task " << id << " not listed");
  return {};
}

}  // namespace

TEST_CASE("waiting: a 2-GPU task on a 0-GPU runner says why in tasks, tasks --json and status",
          "[e2e][waiting]") {
  fixture f;
  auto a = start_runner(f, "a", {"--gpus", "none"});
  std::string big = f.submit("--gpus 2 --force -- sleep 1");
  std::string small = f.submit("-- sleep 0.2");
  f.wait_result(small);

  json t = task_json(f, big);
  CHECK(t["state"] == "PENDING");
  CHECK(t["reason"] == "needs 2 GPUs, the most any runner of this lease has is 0");
  CHECK(task_json(f, small)["reason"].is_null());  // done: no reason

  auto r = f.leaseq("tasks --lease " + lease_id, false);
  INFO(r.out);
  CHECK(r.exit_code == 0);
  bool row = false;
  for (const auto& line : lines_of(r.out))
    if (line.rfind(big + " ", 0) == 0) {
      row = true;
      CHECK_THAT(line, Catch::Contains(
                           "! (needs 2 GPUs, the most any runner of this lease has is 0) sleep 1"));
    }
  CHECK(row);
  CHECK_THAT(r.out, Catch::Contains("1 PENDING task(s) cannot run now"));

  r = f.leaseq("status --lease " + lease_id, false);
  INFO(r.out);
  CHECK_THAT(r.out, Catch::Contains("cannot run now: 1 PENDING task(s), e.g. " + big +
                                    ": needs 2 GPUs, the most any runner of this lease has is 0"));

  // Paused: the reason changes with the runner; resumed, a plain task has none.
  REQUIRE(f.leaseq("pause --lease " + lease_id + " a").exit_code == 0);
  REQUIRE(wait_until([&] { return hb_says(f, "a", "paused", true); }, 20s));
  std::string queued = f.submit("-- true");
  CHECK(task_json(f, queued)["reason"] == "the runner of a is paused");
  REQUIRE(f.leaseq("resume --lease " + lease_id + " a").exit_code == 0);
  f.wait_result(queued);
}

TEST_CASE("waiting: submit refuses what no runner can take, unless --force", "[e2e][waiting]") {
  fixture f;
  // No runner has written a heartbeat yet: nothing is known, nothing is refused.
  std::string early = f.submit("--gpus 3 -- true");
  REQUIRE(f.leaseq("cancel --lease " + lease_id + " " + early).exit_code == 0);

  auto a = start_runner(f, "a", {"--gpus", "none"});
  std::size_t before = f.count(f.lease.inbox("_any"));

  auto r = f.leaseq("submit --lease " + lease_id + " --gpus 3 -- python train.py");
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("needs 3 GPUs, the most any runner of this lease has is 0"));
  CHECK_THAT(r.out, Catch::Contains("--force"));
  CHECK(f.count(f.lease.inbox("_any")) == before);  // nothing enqueued

  // A batch is refused as a whole.
  fs::path lines = f.tmp / "lines.txt";
  test_support::write_text(lines, "echo one\necho two\n");
  r = f.leaseq("submit --lease " + lease_id + " --gpus 1 --each-line " + lines.string());
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK(f.count(f.lease.inbox("_any")) == before);

  r = f.leaseq("submit --lease " + lease_id + " --node nosuchnode -- true");
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("no runner of this lease serves node nosuchnode"));
  CHECK_THAT(r.out, Catch::Contains("(its runners: a)"));
  CHECK(f.count(f.lease.inbox("nosuchnode")) == 0);

  r = f.leaseq("submit --lease " + lease_id + " --node a --gpus 1 -- true");
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("needs 1 GPUs, node a has 0"));

  // --force queues it anyway, and the reason shows.
  std::string forced = f.submit("--gpus 3 --force -- python train.py");
  CHECK(task_json(f, forced)["reason"] ==
        "needs 3 GPUs, the most any runner of this lease has is 0");
  std::string lane = f.submit("--node nosuchnode --force -- true");
  CHECK(task_json(f, lane)["reason"] == "no runner serves lane nosuchnode");
  // What the runner can take is accepted as before.
  f.wait_result(f.submit("--node a -- true"));
}

TEST_CASE("waiting: cancel of a task in a lane no runner serves ends it CANCELLED",
          "[e2e][waiting]") {
  fixture f;
  auto a = start_runner(f, "a", {"--gpus", "none"});
  std::string id =
      f.submit("--node nosuchnode --force -- touch " + shell_quote((f.tmp / "ran").string()));
  auto r = f.leaseq("cancel --lease " + lease_id + " " + id);
  INFO(r.out);
  CHECK(r.exit_code == 0);
  json res = f.wait_result(id, 5s);  // at once: no runner has to act
  CHECK(res["state"] == "CANCELLED");
  CHECK(res["reason"] == "cancelled");
  CHECK(res["node"] == "nosuchnode");
  CHECK(fs::exists(f.lease.result("nosuchnode", id)));
  CHECK(f.count(f.lease.inbox("nosuchnode")) == 0);
  CHECK(f.count(f.lease.claimed("nosuchnode")) == 0);
  CHECK(task_json(f, id)["state"] == "CANCELLED");
  // A second cancel finds it ended.
  r = f.leaseq("cancel --lease " + lease_id + " " + id);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("already ended (CANCELLED)"));

  // A task in _any of a lease whose only runner stopped: cancelled at once too, and the
  // runner started afterwards never runs it.
  a->signal(SIGTERM);
  CHECK(a->wait() == 0);
  std::string any = f.submit("-- touch " + shell_quote((f.tmp / "ran").string()));
  r = f.leaseq("cancel --lease " + lease_id + " " + any);
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK(f.wait_result(any, 5s)["state"] == "CANCELLED");
  auto again = start_runner(f, "a", {"--gpus", "none"});
  f.wait_result(f.submit("-- true"));
  CHECK_FALSE(fs::exists(f.tmp / "ran"));

  // A lane a live runner serves still goes through its control file (the runner cancels).
  REQUIRE(f.leaseq("pause --lease " + lease_id + " a").exit_code == 0);
  REQUIRE(wait_until([&] { return hb_says(f, "a", "paused", true); }, 20s));
  std::string held = f.submit("--node a -- true");
  r = f.leaseq("cancel --lease " + lease_id + " " + held);
  INFO(r.out);
  CHECK_THAT(r.out, Catch::Contains("sent to a"));
  json held_res = f.wait_result(held, 20s);
  CHECK(held_res["state"] == "CANCELLED");
  CHECK(fs::exists(f.lease.result("a", held)));
}

TEST_CASE("waiting: a Slurm lease that ended refuses submits and shows why its tasks wait",
          "[e2e][waiting]") {
  fixture f;
  fs::path bin = f.tmp / "bin";
  test_support::write_text(
      bin / "squeue",
      "#!/bin/sh\nprintf '424242|CANCELLED|None|0:00|1:00:00|1|(null)|N/A|leaseq-x\\n'\n");
  fs::permissions(bin / "squeue", fs::perms::owner_all);
  lease_paths slurm(f.home / "runs" / "424242");
  fs::create_directories(slurm.root());
  test_support::write_text(
      slurm.lease_json(),
      json{{"id", "424242"}, {"kind", "slurm"}, {"nodes", 1}, {"created", 1}}.dump());
  auto run = [&](const std::string& args) {
    return test_support::run_command("PATH=" + shell_quote(bin.string()) + ":\"$PATH\" " +
                                     "LEASEQ_HOME=" + shell_quote(f.home.string()) + " " +
                                     LEASEQ_BIN + " " + args + " 2>&1");
  };
  auto r = run("submit --lease 424242 -- true");
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("lease 424242: the lease ended (CANCELLED)"));
  CHECK_THAT(r.out, Catch::Contains("--force"));

  r = run("submit --lease 424242 --force -- true");
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  std::string id = lines_of(r.out).at(0);
  r = run("tasks --json --lease 424242");
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK(json::parse(r.out)["tasks"][0]["reason"] == "lease ended (CANCELLED)");
  r = run("status --lease 424242");
  INFO(r.out);
  CHECK_THAT(r.out, Catch::Contains("e.g. " + id + ": lease ended (CANCELLED)"));
}
