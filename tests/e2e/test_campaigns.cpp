// End-to-end: campaigns of tasks with real runners: arrays, wait, output for scripts, slots.
#include <signal.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <leaseq/detail/dir.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/model.hpp>
#include <leaseq/paths.hpp>

#include "runner_fixture.hpp"
#include "test_support.hpp"

using namespace leaseq;
using namespace e2e;
using test_support::shell_quote;
using test_support::wait_until;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Every "K=V" line a task printed with `env`, as a map.
std::map<std::string, std::string> env_lines(const std::string& text) {
  std::map<std::string, std::string> out;
  for (const auto& l : lines_of(text))
    if (auto eq = l.find('='); eq != std::string::npos) out[l.substr(0, eq)] = l.substr(eq + 1);
  return out;
}

json tasks_json(const fixture& f) {
  auto r = f.leaseq("tasks --lease " + lease_id + " --json", false);
  REQUIRE(r.exit_code == 0);
  return json::parse(r.out);
}

const json& task_in(const json& list, const std::string& id) {
  for (const auto& t : list["tasks"])
    if (t["id"] == id) return t;
  FAIL("no task " << id << " in " << list.dump());
  throw;
}

}  // namespace

TEST_CASE("array: one task per index, each sees its index and the array id", "[array][e2e]") {
  fixture f;
  auto r = f.leaseq("submit --lease " + lease_id +
                        " --array 3-7:2 --shell -- 'env | grep ^LEASEQ_; env | grep ^CUDA_'",
                    false);
  REQUIRE(r.exit_code == 0);
  auto ids = lines_of(r.out);
  REQUIRE(ids.size() == 3);  // 3 5 7
  runner_proc run(f, "n1", {"--slots", "2", "--gpus", "none"});
  for (std::size_t i = 0; i < ids.size(); ++i) {
    json res = f.wait_result(ids[i]);
    CHECK(res["state"] == "FINISHED");
    auto env = env_lines(f.log_of("n1", ids[i]));
    CHECK(env["LEASEQ_ARRAY_ID"] == ids[0]);
    CHECK(env["LEASEQ_ARRAY_INDEX"] == std::to_string(3 + 2 * i));
    CHECK(env["LEASEQ_TASK_ID"] == ids[i]);
    CHECK(env["LEASEQ_LEASE"] == lease_id);
    CHECK(env["LEASEQ_NODE"] == "n1");
    CHECK(env["LEASEQ_ATTEMPT"] == res["attempt"]);
    CHECK(env.count("CUDA_VISIBLE_DEVICES") == 0);  // a runner without GPUs sets none
  }
  json list = tasks_json(f);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const json& t = task_in(list, ids[i]);
    CHECK(t["array_id"] == ids[0]);
    CHECK(t["array_index"] == 3 + 2 * static_cast<int>(i));
  }
  // A plain task is no array's.
  std::string plain = f.submit("-- true");
  f.wait_result(plain);
  json after = tasks_json(f);
  const json& p = task_in(after, plain);
  CHECK(p["array_id"].is_null());
  CHECK(p["array_index"].is_null());
  auto env = env_lines(f.log_of("n1", ids[0]));
  CHECK(env.count("LEASEQ_ARRAY_ID") == 1);
}

TEST_CASE("array: --each-line tasks see their line number", "[array][e2e]") {
  fixture f;
  fs::path lines = f.tmp / "jobs.txt";
  test_support::write_text(lines,
                           "echo first $LEASEQ_ARRAY_INDEX $LEASEQ_ARRAY_ID\n\n"
                           "echo third $LEASEQ_ARRAY_INDEX $LEASEQ_ARRAY_ID\n");
  auto r =
      f.leaseq("submit --lease " + lease_id + " --each-line " + shell_quote(lines.string()), false);
  REQUIRE(r.exit_code == 0);
  auto ids = lines_of(r.out);
  REQUIRE(ids.size() == 2);
  runner_proc run(f, "n1", {"--gpus", "none"});
  f.wait_result(ids[1]);
  f.wait_result(ids[0]);
  CHECK(f.log_of("n1", ids[0]) == "first 1 " + ids[0] + "\n");
  CHECK(f.log_of("n1", ids[1]) == "third 3 " + ids[0] + "\n");  // the blank line counts
}

TEST_CASE("array: bad ranges are refused and write nothing", "[array][e2e]") {
  fixture f;
  for (const char* bad :
       {"''", "0-", "5-3", "0-1000000", "0-99999999999999999999", "a-b", "1-5:0", "7"}) {
    INFO(bad);
    auto r = f.leaseq(std::string("submit --lease ") + lease_id + " --array " + bad + " -- true");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.out, Catch::Contains("--array"));
    CHECK_FALSE(fs::exists(f.home / "runs"));
  }
  auto r = f.leaseq("submit --lease " + lease_id + " --array 0-2 --each-line - -- true");
  CHECK(r.exit_code != 0);
  CHECK_FALSE(fs::exists(f.home / "runs"));
}

TEST_CASE("wait: exit codes, summary and --json", "[wait][e2e]") {
  fixture f;
  std::string ok = f.submit("-- true");
  std::string bad = f.submit("--shell -- 'exit 3'");
  std::string slow = f.submit("-- sleep 60");
  runner_proc run(f, "n1", {"--slots", "3", "--gpus", "none"});

  auto r = f.leaseq("wait --lease " + lease_id + " " + ok, false);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "1 task: 1 FINISHED\n");

  r = f.leaseq("wait --lease " + lease_id + " " + ok + " " + bad, false);
  CHECK(r.exit_code == 1);
  CHECK(r.out == "2 tasks: 1 FINISHED, 1 FAILED (" + bad + ")\n");

  r = f.leaseq("wait --lease " + lease_id + " --json " + bad, false);
  CHECK(r.exit_code == 1);
  json j = json::parse(r.out);
  CHECK(j["total"] == 1);
  CHECK(j["ok"] == false);
  CHECK(j["timed_out"] == false);
  CHECK(j["counts"]["FAILED"] == 1);
  CHECK(j["tasks"][0]["id"] == bad);
  CHECK(j["tasks"][0]["exit_code"] == 3);

  // A task still running: --timeout gives up with 124 and says what is left.
  r = f.leaseq("wait --lease " + lease_id + " --timeout 1s " + ok + " " + slow, false);
  CHECK(r.exit_code == 124);
  CHECK_THAT(r.out, Catch::StartsWith("timed out after 1s: 2 tasks: 1 FINISHED, 1 RUNNING ("));

  // Ctrl-C: 130, nothing written.
  std::string cmd = "LEASEQ_HOME=" + shell_quote(f.home.string()) + " " + LEASEQ_BIN +
                    " wait --lease " + lease_id + " " + slow +
                    " & p=$!; while kill -INT $p 2>/dev/null; do sleep 0.2; done; wait $p; "
                    "echo rc=$?";
  r = test_support::run_command(cmd);
  CHECK_THAT(r.out, Catch::Contains("rc=130"));

  // A running task says when it started and which attempt runs.
  json list = tasks_json(f);
  const json& running = task_in(list, slow);
  CHECK(running["state"] == "RUNNING");
  CHECK(running["started"].is_number());
  CHECK(running["attempt"].is_string());

  // --all: every task of the lease, once the slow one is cancelled.
  REQUIRE(f.leaseq("cancel --lease " + lease_id + " " + slow).exit_code == 0);
  r = f.leaseq("wait --lease " + lease_id + " --all", false);
  CHECK(r.exit_code == 1);
  CHECK(r.out == "3 tasks: 1 FINISHED, 1 FAILED, 1 CANCELLED (" + bad + " " + slow + ")\n");
}

TEST_CASE("wait ID: a RUNNING task that vanishes without a result ends LOST", "[wait][e2e]") {
  fixture f;
  std::string slow = f.submit("-- sleep 3");
  std::string other = f.submit("-- true");
  test_support::write_text(f.home / "config.json", R"({"ui": {"lost_confirm_s": 1}})");
  {
    runner_proc run(f, "n1", {"--slots", "1", "--gpus", "none"});
    REQUIRE(wait_until([&] { return fs::exists(f.lease.claimed_task("n1", slow)); }, 30s));
    run.signal(SIGKILL);  // its runner dies; the task is left to run out
    run.wait();
  }
  // The claimed file goes (a hand, or a filesystem that lost it) while wait watches.
  std::string cmd =
      "LEASEQ_HOME=" + shell_quote(f.home.string()) + " " + LEASEQ_BIN + " wait --lease " +
      lease_id + " --timeout 60s " + slow + " & p=$!; sleep 1; rm -f " +
      shell_quote(f.lease.claimed_task("n1", slow).string()) + "; wait $p; echo rc=$?";
  auto r = test_support::run_command(cmd);
  CHECK_THAT(r.out, Catch::Contains("1 task: 1 LOST (" + slow + ")"));
  CHECK_THAT(r.out, Catch::Contains("rc=1"));
  // A pending task is never LOST: waiting for it times out.
  r = f.leaseq("wait --lease " + lease_id + " --timeout 2s " + other, false);
  CHECK(r.exit_code == 124);
  CHECK_THAT(r.out, Catch::Contains("1 PENDING"));
}

TEST_CASE("wait: bad input exits 2", "[wait][e2e]") {
  fixture f;
  std::string id = f.submit("-- true");
  auto r = f.leaseq("wait --lease " + lease_id + " T999");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("has no task T999"));
  r = f.leaseq("wait --lease " + lease_id + " T0001");
  CHECK(r.exit_code == 2);
  r = f.leaseq("wait --lease " + lease_id);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("--all"));
  r = f.leaseq("wait --lease " + lease_id + " --all " + id);
  CHECK(r.exit_code == 2);
  r = f.leaseq("wait --lease " + lease_id + " --timeout 5x " + id);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("expected e.g. 30s"));
  r = f.leaseq("wait --lease local:nosuch " + id);
  CHECK(r.exit_code == 2);
  // --timeout 0 looks once.
  r = f.leaseq("wait --lease " + lease_id + " --timeout 0 " + id, false);
  CHECK(r.exit_code == 124);
  CHECK(r.out == "timed out after 0s: 1 task: 1 PENDING (" + id + ")\n");
}

TEST_CASE("tasks --json and --format for scripts", "[tasks][e2e]") {
  fixture f;
  std::string ok = f.submit("-- true");
  std::string bad = f.submit("--shell -- 'kill -9 $$'");
  std::string esc = f.submit("--shell -- 'true \x1b[31mred'");
  runner_proc run(f, "n1", {"--gpus", "none"});
  f.wait_result(ok);
  f.wait_result(bad);
  f.wait_result(esc);
  f.leaseq("pause --lease " + lease_id + " n1");
  REQUIRE(wait_until([&] { return hb_says(f, "n1", "paused", true); }, 30s));
  std::string waiting = f.submit("-- true");

  json list = tasks_json(f);
  const json& t_ok = task_in(list, ok);
  CHECK(t_ok["reason"].is_null());
  CHECK(t_ok["signal"].is_null());
  CHECK(t_ok["started"].is_number());
  CHECK(t_ok["attempt"].is_string());
  CHECK(t_ok["labels"] == json::array());
  CHECK(t_ok["priority"] == 0);
  const json& t_bad = task_in(list, bad);
  CHECK(t_bad["state"] == "FAILED");
  CHECK(t_bad["signal"] == 9);
  CHECK(t_bad["exit_code"].is_null());
  const json& t_wait = task_in(list, waiting);
  CHECK_THAT(t_wait["reason"].get<std::string>(), Catch::Contains("paused"));
  CHECK(t_wait["attempt"].is_null());

  auto r = f.leaseq("tasks --lease " + lease_id + " --format '{id} {state} {exit_code}'", false);
  CHECK(r.exit_code == 0);
  auto got = lines_of(r.out);
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<std::string>{ok + " FINISHED 0", bad + " FAILED -", esc + " FINISHED 0",
                                        waiting + " PENDING -"});
  r = f.leaseq("tasks --lease " + lease_id + " --state FAILED --format '{{{id}}} {signal}'", false);
  CHECK(r.out == "{" + bad + "} 9\n");
  r = f.leaseq("tasks --lease " + lease_id + " --state FINISHED --format '{cmd}'", false);
  CHECK(r.out.find('\x1b') == std::string::npos);  // sanitized, as the table

  for (const char* fmt : {"'{nope}'", "'{id'", "'id}'"}) {
    INFO(fmt);
    r = f.leaseq("tasks --lease " + lease_id + " --format " + fmt);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.out, Catch::Contains("--format"));
  }
}

TEST_CASE("leaseq without arguments prints its help and exits 0", "[cli][e2e]") {
  fixture f;
  auto r = f.leaseq("", false);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("submit"));
  CHECK_THAT(r.out, Catch::Contains("wait"));
}

TEST_CASE("runner --slots auto: one per CPU Slurm gave the node", "[slots][e2e]") {
  fixture f;
  {
    // runner_proc passes its environment on: SLURM_CPUS_ON_NODE as Slurm sets it.
    ::setenv("SLURM_CPUS_ON_NODE", "3", 1);
    runner_proc run(f, "n1", {"--slots", "auto", "--gpus", "none"});
    ::unsetenv("SLURM_CPUS_ON_NODE");
    CHECK(wait_until([&] { return hb_says(f, "n1", "slots", 3); }, 30s));
  }
  fixture fresh;
  auto r = fresh.leaseq("runner --lease " + lease_id + " --node n2 --slots 0 --gpus none");
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.out, Catch::Contains("expected auto or a number"));
  CHECK_FALSE(fs::exists(fresh.home / "runs"));  // refused before anything is written
}

TEST_CASE("lease create --dry-run shows the slots each runner gets", "[slots][e2e]") {
  fixture f;
  auto r = f.leaseq("lease create --dry-run --nodes 2 --time 10 --gpus-per-node 4 --slots auto");
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("slots per node: 4 (auto: one per GPU)"));
  CHECK_THAT(r.out, Catch::Contains(R"(--node "$SLURMD_NODENAME" --slots 4')"));
  r = f.leaseq("lease create --dry-run --nodes 2 --time 10 --slots auto");
  CHECK_THAT(r.out, Catch::Contains("slots per node: auto (one per CPU Slurm gives"));
  CHECK_THAT(r.out, Catch::Contains("--slots auto'"));
  r = f.leaseq("lease create --dry-run --nodes 2 --time 10");
  CHECK_THAT(r.out, Catch::Contains("slots per node: 1 (the default"));
  CHECK_THAT(r.out, Catch::Contains(R"(--node "$SLURMD_NODENAME"' )"));
  r = f.leaseq("lease create --dry-run --nodes 2 --time 10 --slots 0");
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.out, Catch::Contains("--slots"));
  CHECK_FALSE(fs::exists(f.home / "keepers"));
}

TEST_CASE("priority: a runner claims its lane highest first, ties by seq", "[priority][e2e]") {
  fixture f;
  runner_proc run(f, "n1", {"--slots", "1", "--gpus", "none"});
  f.leaseq("pause --lease " + lease_id + " n1");
  REQUIRE(wait_until([&] { return hb_says(f, "n1", "paused", true); }, 30s));
  std::string plain1 = f.submit("-- true");
  std::string low = f.submit("--priority -1 -- true");
  std::string high = f.submit("--priority 10 -- true");
  std::string plain2 = f.submit("-- true");
  std::string mid = f.submit("--node n1 --priority 3 -- true");  // own lane before _any
  std::string high2 = f.submit("--priority 10 -- true");
  f.leaseq("resume --lease " + lease_id + " n1");
  std::vector<std::pair<double, std::string>> order;
  for (const auto& id : {plain1, low, high, plain2, mid, high2}) {
    json res = f.wait_result(id);
    CHECK(res["state"] == "FINISHED");
    order.emplace_back(res["claimed"].get<double>(), id);
  }
  std::sort(order.begin(), order.end());
  std::vector<std::string> ids;
  for (const auto& o : order) ids.push_back(o.second);
  CHECK(ids == std::vector<std::string>{mid, high, high2, plain1, plain2, low});
  // Every marker went with its claim.
  CHECK(detail::list_dir(f.lease.priority_root().string() + "/_any").names.empty());
  CHECK(detail::list_dir(f.lease.priority_root().string() + "/n1").names.empty());
  json list = tasks_json(f);
  CHECK(task_in(list, high)["priority"] == 10);
  CHECK(task_in(list, low)["priority"] == -1);
  CHECK(task_in(list, plain1)["priority"] == 0);

  for (const char* bad : {"--priority 1000001", "--priority x", "--priority ''"}) {
    INFO(bad);
    auto r = f.leaseq("submit --lease " + lease_id + " " + bad + " -- true");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.out, Catch::Contains("--priority"));
  }
}

TEST_CASE("labels: tasks, cancel and retry select by label", "[labels][e2e]") {
  fixture f;
  std::string a = f.submit("--label sweep --label lr:0.1 -- false");
  std::string b = f.submit("--label sweep,lr:0.2 -- true");
  std::string c = f.submit("-- true");
  auto r = f.leaseq(
      "tasks --lease " + lease_id + " --label sweep --sort seq --format '{id} {labels}'", false);
  CHECK(r.exit_code == 0);
  CHECK(r.out == a + " sweep,lr:0.1\n" + b + " sweep,lr:0.2\n");
  r = f.leaseq("tasks --lease " + lease_id + " --label sweep --label lr:0.1 --format '{id}'",
               false);
  CHECK(r.out == a + "\n");
  CHECK(task_in(tasks_json(f), a)["labels"] == json({"sweep", "lr:0.1"}));

  // Bulk cancel by label asks first off a terminal: refused without --yes, nothing touched.
  r = f.leaseq("cancel --lease " + lease_id + " --label sweep </dev/null");
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.out, Catch::Contains("--yes"));
  r = f.leaseq("cancel --lease " + lease_id + " --label lr:0.2");
  CHECK(r.exit_code == 0);
  runner_proc run(f, "n1", {"--gpus", "none"});
  CHECK(f.wait_result(b)["state"] == "CANCELLED");
  CHECK(f.wait_result(a)["state"] == "FAILED");
  CHECK(f.wait_result(c)["state"] == "FINISHED");
  // retry --label: only the ended tasks with that label, as new tasks that keep the labels.
  r = f.leaseq("retry --lease " + lease_id + " --label sweep --yes", false);
  CHECK(r.exit_code == 0);
  auto retried = lines_of(r.out);
  CHECK(retried.size() == 2);
  r = f.leaseq("tasks --lease " + lease_id + " --label sweep --format '{id}'", false);
  CHECK(lines_of(r.out).size() == 4);
  r = f.leaseq("cancel --lease " + lease_id + " --label nosuch");
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("no PENDING or RUNNING task labelled nosuch"));

  for (const char* bad :
       {"--label 'a b'", "--label ''", "--label \"$(printf '\\033]0;x\\007')\"", "--label ,"}) {
    INFO(bad);
    r = f.leaseq("submit --lease " + lease_id + " " + bad + " -- true");
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.out, Catch::Contains("label"));
    CHECK(r.out.find('\x1b') == std::string::npos);
  }
  r = f.leaseq("tasks --lease " + lease_id + " --label 'a/b'");
  CHECK(r.exit_code != 0);
}
