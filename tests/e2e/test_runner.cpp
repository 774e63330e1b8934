// End-to-end: real `leaseq runner` processes of the built program, real tasks, real signals.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>
#include <leaseq/detail/dir.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/model.hpp>
#include <leaseq/paths.hpp>

#include "runner_fixture.hpp"
#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;
using test_support::wait_until;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

using namespace e2e;

TEST_CASE("runner: 4 runners x 2 slots run 2000 tasks exactly once (LEASEQ_TEST_SCALE of them)",
          "[runner][e2e]") {
  fixture f;
  fs::path ran = f.tmp / "ran.txt";
  std::string line =
      "echo $LEASEQ_TASK_ID $LEASEQ_NODE >> " + test_support::shell_quote(ran.string());
  // 1000 tasks in _any, 250 in each node's lane, submitted as batches.
  const std::size_t per_batch = test_support::scaled(250), total = 8 * per_batch;
  fs::path lines = f.tmp / "lines.txt";
  std::string text;
  for (std::size_t i = 0; i < per_batch; ++i) text += line + "\n";
  test_support::write_text(lines, text);
  std::vector<std::string> nodes = {"a", "b", "c", "d"};
  std::map<std::string, std::string> lane_of;
  for (int round = 0; round < 4; ++round) {
    auto r = f.leaseq("submit --lease " + lease_id + " --each-line " + lines.string());
    REQUIRE(r.exit_code == 0);
    for (auto& id : lines_of(r.out)) lane_of[id] = "_any";
    r = f.leaseq("submit --lease " + lease_id + " --node " + nodes[round] + " --each-line " +
                 lines.string());
    REQUIRE(r.exit_code == 0);
    for (auto& id : lines_of(r.out)) lane_of[id] = nodes[round];
  }
  REQUIRE(lane_of.size() == total);

  std::vector<std::unique_ptr<runner_proc>> runners;
  for (auto& n : nodes)
    runners.push_back(std::make_unique<runner_proc>(
        f, n, std::vector<std::string>{"--slots", "2", "--gpus", "none"}));
  bool all = wait_until([&] { return f.count_results() == total; }, 600s);
  INFO("results: " << f.count_results());
  REQUIRE(all);
  for (auto& r : runners) r->signal(SIGTERM);
  for (auto& r : runners) CHECK(r->wait() == 0);

  auto ran_lines = lines_of(test_support::read_text(ran));
  CHECK(ran_lines.size() == total);
  std::map<std::string, std::string> ran_on;
  for (auto& l : ran_lines) {
    auto sp = l.find(' ');
    CHECK(ran_on.emplace(l.substr(0, sp), l.substr(sp + 1)).second);  // exactly once
  }
  for (auto& [id, lane] : lane_of) {
    REQUIRE(ran_on.count(id) == 1);
    if (lane != "_any") CHECK(ran_on[id] == lane);  // lane tasks run on their node
  }
  std::set<std::string> attempts;
  for (auto& n : nodes) {
    CHECK(f.count(f.lease.claimed(n)) == 0);
    CHECK(hb_says(f, n, "stopped", true));
    for (auto& name : detail::list_dir(f.lease.done(n).string()).names) {
      json r = *read_json_tolerant(f.lease.done(n) / name).value;
      CHECK(r["state"] == "FINISHED");
      CHECK(r["exit_code"] == 0);
      CHECK(r["stdout"] == "logs/" + n + "/" + r["id"].get<std::string>() + ".out");
      CHECK(r["claimed"].is_number());
      CHECK(r["started"].is_number());
      CHECK(r["finished"].get<double>() >= r["started"].get<double>());
      attempts.insert(r["attempt"].get<std::string>());
    }
  }
  CHECK(attempts.size() == total);
  CHECK(f.count(f.lease.inbox("_any")) == 0);
}

TEST_CASE("runner: kill -9 then restart loses nothing, only running tasks are runner_lost",
          "[runner][e2e]") {
  fixture f;
  fs::path ran = f.tmp / "ran.txt";
  std::string text;
  for (int i = 0; i < 30; ++i)
    text += "sleep 0.3; echo $LEASEQ_TASK_ID >> " + test_support::shell_quote(ran.string()) + "\n";
  test_support::write_text(f.tmp / "lines.txt", text);
  auto ids = lines_of(
      f.leaseq("submit --lease " + lease_id + " --each-line " + (f.tmp / "lines.txt").string())
          .out);
  REQUIRE(ids.size() == 30);

  std::set<std::string> running_at_kill;
  {
    runner_proc r(f, "k", {"--slots", "2", "--gpus", "none"});
    REQUIRE(wait_until([&] { return f.count_results() >= 6; }, 120s));
    r.signal(SIGKILL);
    CHECK(r.wait() == 128 + SIGKILL);
    for (auto& n : detail::list_dir(f.lease.claimed("k").string()).names)
      running_at_kill.insert(n.substr(0, n.size() - 5));
  }
  INFO("running at kill: " << running_at_kill.size());
  REQUIRE(!running_at_kill.empty());
  runner_proc r2(f, "k", {"--slots", "2", "--gpus", "none"});
  REQUIRE(wait_until([&] { return f.count_results() == 30; }, 120s));
  r2.signal(SIGTERM);
  CHECK(r2.wait() == 0);

  std::multiset<std::string> ran_ids;
  for (auto& l : lines_of(test_support::read_text(ran))) ran_ids.insert(l);
  for (auto& id : ids) {
    json res = f.wait_result(id);
    if (running_at_kill.count(id) && res["reason"] == "runner_lost") {
      CHECK(res["state"] == "FAILED");
      CHECK(ran_ids.count(id) <= 1);
    } else if (running_at_kill.count(id)) {
      // Killed between its claim and the record of its pid: the new runner ran it (again).
      CHECK(res["state"] == "FINISHED");
      CHECK(ran_ids.count(id) >= 1);
      CHECK(ran_ids.count(id) <= 2);
    } else {
      CHECK(res["state"] == "FINISHED");
      CHECK(ran_ids.count(id) == 1);
    }
  }
  CHECK(f.count(f.lease.claimed("k")) == 0);
}

TEST_CASE("runner: cancel a pending and a running task", "[runner][e2e]") {
  fixture f;
  runner_proc r(f, "c", {"--slots", "1", "--gpus", "none", "--grace", "5"});
  std::string running = f.submit("-- sleep 60");
  std::string pending = f.submit("--shell -- echo never ran");
  REQUIRE(wait_until([&] { return fs::exists(f.lease.claimed_task("c", running)); }));
  REQUIRE(wait_until([&] { return f.hb("c").has_value(); }));

  auto c = f.leaseq("cancel --lease " + lease_id + " " + pending);
  INFO(c.out);
  CHECK(c.exit_code == 0);
  json p = f.wait_result(pending);
  CHECK(p["state"] == "CANCELLED");
  CHECK(p["reason"] == "cancelled");
  CHECK_FALSE(fs::exists(f.lease.inbox_task("_any", pending)));
  CHECK_FALSE(fs::exists(f.lease.stdout_log("c", pending)));

  CHECK(f.leaseq("cancel --lease " + lease_id + " " + running).exit_code == 0);
  json q = f.wait_result(running);
  CHECK(q["state"] == "CANCELLED");
  CHECK(q["signal"] == SIGTERM);
  // Cancelling a finished task is refused; control files were all consumed.
  CHECK(f.leaseq("cancel --lease " + lease_id + " " + running).exit_code == 1);
  CHECK(wait_until([&] { return f.count(f.lease.control("c")) == 0; }));
  // A cancel for an unknown task is consumed and logged, not fatal.
  test_support::write_text(f.lease.control("c") / "cancel_T999_x.json", R"({"task": "T999"})");
  CHECK(wait_until([&] { return f.count(f.lease.control("c")) == 0; }));
  std::string after = f.submit("-- true");
  CHECK(f.wait_result(after)["state"] == "FINISHED");
  r.signal(SIGTERM);
  CHECK(r.wait() == 0);
}

TEST_CASE("runner: a task ignoring SIGTERM is killed after the grace period", "[runner][e2e]") {
  fixture f;
  runner_proc r(f, "g", {"--slots", "1", "--gpus", "none", "--grace", "1"});
  std::string id = f.submit("--shell -- \"trap '' TERM; echo started; sleep 60\"");
  REQUIRE(wait_until([&] { return f.log_of("g", id) == "started\n"; }));
  CHECK(f.leaseq("cancel --lease " + lease_id + " " + id).exit_code == 0);
  json res = f.wait_result(id);
  CHECK(res["state"] == "CANCELLED");
  CHECK(res["signal"] == SIGKILL);
  r.signal(SIGTERM);
  CHECK(r.wait() == 0);
}

TEST_CASE("runner: SIGTERM stops running tasks as runner_terminated", "[runner][e2e]") {
  fixture f;
  runner_proc r(f, "t", {"--slots", "2", "--gpus", "none", "--grace", "2"});
  std::string a = f.submit("-- sleep 60");
  std::string b = f.submit("--shell -- \"trap '' TERM; sleep 60\"");
  std::string c = f.submit("-- true");  // stays pending: both slots are busy
  REQUIRE(wait_until([&] { return f.count(f.lease.claimed("t")) == 2; }));
  REQUIRE(wait_until([&] { return hb_says(f, "t", "running", json::array({a, b})); }));
  r.signal(SIGTERM);
  CHECK(r.wait() == 0);
  json ra = *f.result_of(a), rb = *f.result_of(b);
  CHECK(ra["state"] == "FAILED");
  CHECK(ra["reason"] == "runner_terminated");
  CHECK(ra["signal"] == SIGTERM);
  CHECK(rb["reason"] == "runner_terminated");
  CHECK(rb["signal"] == SIGKILL);
  CHECK(fs::exists(f.lease.inbox_task("_any", c)));
  CHECK(hb_says(f, "t", "stopped", true));
  CHECK(f.count(f.lease.claimed("t")) == 0);
}

TEST_CASE("runner: pause, then resume", "[runner][e2e]") {
  fixture f;
  runner_proc r(f, "p", {"--slots", "1", "--gpus", "none"});
  REQUIRE(wait_until([&] { return f.hb("p").has_value(); }));
  CHECK(f.leaseq("pause --lease " + lease_id + " p").exit_code == 0);
  REQUIRE(wait_until([&] { return hb_says(f, "p", "paused", true); }));
  std::string id = f.submit("--node p -- true");
  REQUIRE(wait_until([&] { return hb_says(f, "p", "pending", 1); }));
  CHECK(fs::exists(f.lease.inbox_task("p", id)));  // still pending while paused
  CHECK(f.count(f.lease.control("p")) == 0);       // pause.json was consumed
  CHECK(f.leaseq("resume --lease " + lease_id + " p").exit_code == 0);
  CHECK(f.wait_result(id)["state"] == "FINISHED");
  CHECK(hb_says(f, "p", "paused", false));
  r.signal(SIGTERM);
  CHECK(r.wait() == 0);
}

TEST_CASE("runner: retry, idempotent submit, spawn failures", "[runner][e2e]") {
  fixture f;
  runner_proc r(f, "x", {"--slots", "2", "--gpus", "none"});
  std::string bad = f.submit("--shell -- \"echo out; echo err >&2; exit 3\"");
  json rb = f.wait_result(bad);
  CHECK(rb["state"] == "FAILED");
  CHECK(rb["exit_code"] == 3);
  CHECK(f.log_of("x", bad) == "out\n");
  CHECK(test_support::read_text(f.lease.stderr_log("x", bad)) == "err\n");

  auto again = f.leaseq("retry --lease " + lease_id + " " + bad);
  REQUIRE(again.exit_code == 0);
  std::string retry_id = again.out.substr(0, again.out.find('\n'));
  CHECK(retry_id != bad);
  json rr = f.wait_result(retry_id);
  CHECK(rr["retry_of"] == bad);
  CHECK(rr["argv"] == rb["argv"]);
  CHECK(rr["attempt"] != rb["attempt"]);

  std::string k1 = f.submit("--key build-7 -- true");
  std::string k2 = f.submit("--key build-7 -- true");
  CHECK(k1 == k2);
  CHECK(f.wait_result(k1)["state"] == "FINISHED");

  std::string missing = f.submit("-- /no/such/binary arg");
  json rm = f.wait_result(missing);
  CHECK(rm["state"] == "FAILED");
  CHECK(rm["reason"].get<std::string>().rfind("spawn_failed: ", 0) == 0);
  std::string badcwd = f.submit("--cwd /no/such/dir -- true");
  json rc = f.wait_result(badcwd);
  CHECK(rc["state"] == "FAILED");
  CHECK(rc["reason"].get<std::string>().find("/no/such/dir") != std::string::npos);
  // The runner carries on.
  std::string ok = f.submit("--env GREETING=hello --shell -- 'echo $GREETING'");
  CHECK(f.wait_result(ok)["state"] == "FINISHED");
  CHECK(f.log_of("x", ok) == "hello\n");
  r.signal(SIGTERM);
  CHECK(r.wait() == 0);
}

TEST_CASE("runner: a task printing 100 MB", "[runner][e2e]") {
  fixture f;
  runner_proc r(f, "big", {"--slots", "1", "--gpus", "none"});
  std::string id = f.submit("-- head -c 100000000 /dev/zero");
  json res = f.wait_result(id, 120s);
  CHECK(res["state"] == "FINISHED");
  CHECK(fs::file_size(f.lease.stdout_log("big", id)) == 100000000u);
  r.signal(SIGTERM);
  CHECK(r.wait() == 0);
}

TEST_CASE("runner: GPUs from a fake nvidia-smi are handed out exclusively", "[runner][e2e]") {
  fixture f;
  fs::path bin = f.tmp / "bin";
  test_support::write_text(bin / "nvidia-smi",
                           "#!/bin/sh\nfor i in 0 1 2 3; do echo \"GPU $i: Fake (UUID: GPU-$i)\"; "
                           "done\n");
  fs::permissions(bin / "nvidia-smi", fs::perms::owner_all);
  f.path_prefix = bin.string();
  runner_proc r(f, "gpu", {"--slots", "4", "--gpus", "auto"});
  REQUIRE(wait_until([&] { return hb_says(f, "gpu", "gpus", 4); }));
  fs::path gate = f.tmp / "gate";
  std::string wait_gate = "while [ ! -e " + gate.string() + " ]; do sleep 0.05; done";
  std::string a = f.submit("--gpus 2 --shell -- 'echo $CUDA_VISIBLE_DEVICES; " + wait_gate + "'");
  std::string b = f.submit("--gpus 2 --shell -- 'echo $CUDA_VISIBLE_DEVICES; " + wait_gate + "'");
  std::string c = f.submit("--gpus 1 --shell -- 'echo $CUDA_VISIBLE_DEVICES'");
  std::string cpu = f.submit("--node gpu --shell -- 'echo \"[$CUDA_VISIBLE_DEVICES]\"'");
  std::string huge = f.submit("--node gpu --gpus 8 --force -- true");
  REQUIRE(wait_until([&] { return !f.log_of("gpu", a).empty() && !f.log_of("gpu", b).empty(); }));
  REQUIRE(wait_until([&] { return hb_says(f, "gpu", "gpus_free", 0); }));
  CHECK(fs::exists(f.lease.inbox_task("_any", c)));  // waits for a free GPU
  auto split = [](std::string s) {
    s.erase(s.find_last_not_of('\n') + 1);
    std::set<std::string> out;
    std::istringstream in(s);
    for (std::string g; std::getline(in, g, ',');) out.insert(g);
    return out;
  };
  auto ga = split(f.log_of("gpu", a)), gb = split(f.log_of("gpu", b));
  CHECK(ga.size() == 2);
  CHECK(gb.size() == 2);
  std::set<std::string> both(ga.begin(), ga.end());
  both.insert(gb.begin(), gb.end());
  CHECK(both == std::set<std::string>{"0", "1", "2", "3"});
  test_support::write_text(gate, "");
  CHECK(f.wait_result(c)["state"] == "FINISHED");
  CHECK(split(f.log_of("gpu", c)).size() == 1);
  CHECK(f.wait_result(cpu)["state"] == "FINISHED");
  CHECK(f.log_of("gpu", cpu) == "[]\n");
  json rh = f.wait_result(huge);
  CHECK(rh["state"] == "FAILED");
  CHECK(rh["reason"].get<std::string>().find("needs 8 GPUs") != std::string::npos);
  r.signal(SIGTERM);
  CHECK(r.wait() == 0);
}

TEST_CASE("runner: --gpu-ids lists devices, --gpus is its hidden former name, submit --gpus counts",
          "[runner][e2e][cli]") {
  fixture f;
  runner_proc a(f, "a", {"--slots", "2", "--gpu-ids", "1,3"});
  runner_proc b(f, "b", {"--slots", "1", "--gpus", "2"});  // the former spelling still works
  REQUIRE(wait_until([&] { return hb_says(f, "a", "gpus", 2) && hb_says(f, "b", "gpus", 1); }));
  // submit --gpus is a count: 2 takes both of a's devices, 1 takes b's one.
  std::string two = f.submit("--node a --gpus 2 --shell -- 'echo $CUDA_VISIBLE_DEVICES'");
  std::string one = f.submit("--node b --gpus 1 --shell -- 'echo $CUDA_VISIBLE_DEVICES'");
  CHECK(f.wait_result(two)["state"] == "FINISHED");
  CHECK(f.wait_result(one)["state"] == "FINISHED");
  std::string got = f.log_of("a", two);
  CHECK((got == "1,3\n" || got == "3,1\n"));
  CHECK(f.log_of("b", one) == "2\n");
  a.signal(SIGTERM);
  b.signal(SIGTERM);
  CHECK(a.wait() == 0);
  CHECK(b.wait() == 0);
  // Both spellings at once: a usage error. Help and completion show only --gpu-ids.
  for (const char* cmd : {"runner", "lease local start"}) {
    INFO(cmd);
    auto both = test_support::run_command(  // timeout: a runner that accepted it would not exit
        "LEASEQ_HOME=" + test_support::shell_quote(f.home.string()) + " timeout -s KILL 30 " +
        LEASEQ_BIN + " " + cmd + " --gpu-ids 0 --gpus 1 2>&1");
    INFO(both.out);
    CHECK(both.exit_code == 2);
    std::string help = f.leaseq(std::string(cmd) + " --help").out;
    CHECK(help.find("--gpu-ids") != std::string::npos);
    CHECK(help.find("--gpus ") == std::string::npos);
    std::string words = f.leaseq(std::string("__complete commands ") + cmd).out;
    CHECK(words.find("--gpu-ids\n") != std::string::npos);
    CHECK(words.find("--gpus\n") == std::string::npos);
  }
  CHECK(f.leaseq("submit --help").out.find("--gpus") != std::string::npos);
}

TEST_CASE("runner: lease local start, status, stop", "[runner][e2e]") {
  fixture f;
  auto st = f.leaseq("lease local status");
  CHECK(st.exit_code == 3);
  CHECK(st.out.find("UNKNOWN") != std::string::npos);
  auto start = f.leaseq("lease local start --slots 1 --gpus none");
  INFO(start.out);
  REQUIRE(start.exit_code == 0);
  REQUIRE(wait_until([&] { return f.leaseq("lease local status").exit_code == 0; }));
  CHECK(f.leaseq("lease local start").out.find("already running") != std::string::npos);
  // A second runner for the same node is refused (timeout: never hang if it is not).
  auto second =
      test_support::run_command("LEASEQ_HOME=" + test_support::shell_quote(f.home.string()) +
                                " timeout -s KILL 30 " + LEASEQ_BIN + " runner --gpus none 2>&1");
  CHECK(second.exit_code == 1);
  CHECK(second.out.find("already running") != std::string::npos);
  // The local lease is registered and is the default for submit.
  CHECK(test_support::read_text(f.home / "index.json").find("\"local\"") != std::string::npos);
  auto sub = f.leaseq("submit -- true");
  REQUIRE(sub.exit_code == 0);
  auto batch = test_support::run_command("printf 'echo one\\n\\n  \\necho two\\n' | LEASEQ_HOME=" +
                                         test_support::shell_quote(f.home.string()) + " " +
                                         LEASEQ_BIN + " submit --each-line -");
  REQUIRE(batch.exit_code == 0);
  auto ids = lines_of(batch.out);
  REQUIRE(ids.size() == 2);  // blank lines are skipped
  std::string local = "local:" + lines_of(test_support::run_command("hostname -s").out).at(0);
  for (auto& id : ids)
    CHECK(wait_until([&] {
      for (auto& n : detail::list_dir((f.home / "runs" / local / "done").string()).names)
        if (fs::exists(f.home / "runs" / local / "done" / n / (id + ".result.json"))) return true;
      return false;
    }));
  auto stop = f.leaseq("lease local stop");
  INFO(stop.out);
  CHECK(stop.exit_code == 0);
  auto after = f.leaseq("lease local status");
  CHECK(after.exit_code == 3);
  CHECK(after.out.find("DOWN") != std::string::npos);
}

TEST_CASE("runner: --heartbeat out of bounds is refused before anything starts", "[runner][e2e]") {
  fixture f;
  for (const char* hb : {"1e-300", "0.05", "nan", "1e300", "0", "-1"}) {
    // timeout: a runner that accepted it would never exit by itself.
    auto r = test_support::run_command("LEASEQ_HOME=" + test_support::shell_quote(f.home.string()) +
                                       " timeout -s KILL 30 " + LEASEQ_BIN + " runner --lease " +
                                       lease_id + " --gpus none --heartbeat " + hb + " 2>&1");
    INFO("--heartbeat " << hb << ": " << r.out);
    CHECK(r.exit_code != 0);
    CHECK(r.exit_code != 137);
    CHECK(r.out.find("--heartbeat") != std::string::npos);
    CHECK(r.out.find("starting:") == std::string::npos);
    CHECK_FALSE(fs::exists(f.lease.heartbeat(short_hostname())));
    CHECK_FALSE(fs::exists(f.lease.runner_lock(short_hostname())));
  }
  // In bounds: accepted (the runner starts; SIGTERM by timeout stops it).
  auto ok = test_support::run_command("LEASEQ_HOME=" + test_support::shell_quote(f.home.string()) +
                                      " timeout -s TERM 2 " + LEASEQ_BIN + " runner --lease " +
                                      lease_id + " --gpus none --heartbeat 0.1 2>&1");
  INFO(ok.out);
  CHECK(ok.out.find("starting:") != std::string::npos);
}
