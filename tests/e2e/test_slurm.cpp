// End-to-end on a real Slurm cluster (tools/slurm-local start: nodes n1 n2 n3 on this machine):
// `leaseq lease create` submits the keeper, srun starts the real runners, tasks run, and
// squeue/scontrol give the lease state. Without a reachable cluster every test here WARNs and
// returns. Tests hold a lock file so they never share the three nodes, even under ctest -j.
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>
#include <leaseq/command.hpp>
#include <leaseq/config.hpp>
#include <leaseq/detail/dir.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/health.hpp>
#include <leaseq/lock.hpp>
#include <leaseq/model.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/slurm/leases.hpp>

#include "slurm_cluster.hpp"
#include "test_support.hpp"

using namespace leaseq;
using test_support::slurm_cmd;
using test_support::slurm_dir;
using test_support::temp_dir;
using test_support::wait_until;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

bool all_nodes_idle() {
  command_output r = slurm_cmd({"sinfo", "-h", "-N", "-o", "%N %t"});
  if (!r.ok()) return false;
  std::istringstream in(r.out);
  std::string node, state;
  int idle = 0;
  while (in >> node >> state) {
    if (state != "idle") return false;
    ++idle;
  }
  return idle >= 3;
}

std::vector<std::string> nonempty_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

// One test's leaseq home on the cluster; holds the cluster for the test's whole life and
// cancels whatever job it submitted.
struct cluster_fixture {
  file_lock cluster{fs::temp_directory_path() / "leaseq-slurm-e2e.lock"};
  temp_dir tmp;
  fs::path home = tmp / "home";
  std::vector<std::string> jobs;

  explicit cluster_fixture(double hb_stale_s = 60) {
    ensure_dir(home);
    // The floor: lease states refresh every 10 s at most, shared through the cache.
    write_json_atomic(home / "config.json",
                      json{{"ui", {{"slurm_refresh_s", 10}, {"hb_stale_s", hb_stale_s}}}});
    // A previous test's jobs may still be completing.
    bool idle = wait_until(all_nodes_idle, 120s);
    if (!idle) WARN("nodes not all idle before the test");
  }
  ~cluster_fixture() {
    for (const auto& j : jobs) slurm_cmd({"scancel", j});
    wait_until(all_nodes_idle, 60s);
  }
  test_support::command_result leaseq(const std::string& args, bool with_stderr = true) const {
    return test_support::run_command("LEASEQ_HOME=" + test_support::shell_quote(home.string()) +
                                     " " + LEASEQ_BIN + " " + args +
                                     (with_stderr ? " 2>&1" : " 2>/dev/null"));
  }
  std::string create(const std::string& args) {
    auto r = leaseq("lease create " + args, false);
    INFO("lease create " << args << ": " << r.out);
    REQUIRE(r.exit_code == 0);
    std::string id = r.out.substr(0, r.out.find('\n'));
    REQUIRE(is_valid_lease_id(id));
    REQUIRE_FALSE(is_local_lease(id));
    jobs.push_back(id);
    return id;
  }
  // This lease's row in `leaseq lease ls --json`.
  json row(const std::string& id) const {
    auto r = leaseq("lease ls --json", false);
    if (r.exit_code != 0) return json();
    json_outcome j = parse_json_tolerant(r.out);
    if (!j.ok() || !j.value->is_array()) return json();
    for (const auto& e : *j.value)
      if (e.value("id", "") == id) return e;
    return json();
  }
  bool state_is(const std::string& id, const std::string& state) const {
    json r = row(id);
    return r.is_object() && r.value("state", "") == state;
  }
  lease_paths lease(const std::string& id) const { return lease_paths(home_paths(home), id); }
  node_health health(const std::string& id, const std::string& node, double stale_s) const {
    json_outcome r = read_json_tolerant(lease(id).heartbeat(node));
    if (!r.ok()) return node_health::unknown;
    try {
      heartbeat hb;
      from_json(*r.value, hb);
      return compute_health(hb, unix_now(), stale_s);
    } catch (const error&) {
      return node_health::unknown;
    }
  }
  bool all_ok(const std::string& id, const std::vector<std::string>& nodes) const {
    return std::all_of(nodes.begin(), nodes.end(),
                       [&](const std::string& n) { return health(id, n, 60) == node_health::ok; });
  }
  std::string keeper_log(const std::string& id) const {
    return test_support::read_text(lease(id).root() / "keeper.log");
  }
  // Waits until the lease runs and every node's runner heartbeats.
  void wait_running(const std::string& id, const std::vector<std::string>& nodes) {
    bool running = wait_until([&] { return state_is(id, "RUNNING"); }, 120s);
    INFO("lease " << id << ": " << row(id).dump() << "\nkeeper.log:\n" << keeper_log(id));
    REQUIRE(running);
    // The runners heartbeat within 10 s of the job starting.
    bool beating = wait_until([&] { return all_ok(id, nodes); }, 10s);
    REQUIRE(beating);
  }
  std::size_t count_results(const std::string& id) const {
    std::size_t n = 0;
    for (const auto& d : leaseq::detail::list_dir(lease(id).done_root().string()).names)
      n += leaseq::detail::list_dir(lease(id).done(d).string()).names.size();
    return n;
  }
};

const std::vector<std::string> three = {"n1", "n2", "n3"};

}  // namespace

TEST_CASE("slurm: a 3-node lease runs 300 tasks across its 3 nodes, each once", "[slurm][e2e]") {
  LEASEQ_REQUIRE_SLURM();
  cluster_fixture f;
  std::string id = f.create("--nodes 3 --time 10 --name e2e3");
  json rec = *read_json_tolerant(f.lease(id).lease_json()).value;
  CHECK(rec["kind"] == "slurm");
  CHECK(rec["nodes"] == 3);
  CHECK(rec["sbatch"][0] == "sbatch");
  CHECK(fs::exists(rec["keeper"].get<std::string>()));
  f.wait_running(id, three);
  json r = f.row(id);
  CHECK(r["nodes"] == 3);
  CHECK(r["name"] == "e2e3");
  CHECK(r["default"] == true);  // the first lease of this home

  fs::path ran = f.tmp / "ran.txt";
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += "sleep 0.05; echo $LEASEQ_TASK_ID $SLURMD_NODENAME >> " +
            test_support::shell_quote(ran.string()) + "\n";
  test_support::write_text(f.tmp / "lines.txt", text);
  auto sub =
      f.leaseq("submit --lease " + id + " --each-line " + (f.tmp / "lines.txt").string(), false);
  REQUIRE(sub.exit_code == 0);
  auto ids = nonempty_lines(sub.out);
  REQUIRE(ids.size() == 300);

  bool done = wait_until([&] { return f.count_results(id) == 300; }, 300s);
  INFO("results: " << f.count_results(id));
  REQUIRE(done);
  std::map<std::string, std::string> ran_on;
  for (const auto& l : nonempty_lines(test_support::read_text(ran))) {
    auto sp = l.find(' ');
    CHECK(ran_on.emplace(l.substr(0, sp), l.substr(sp + 1)).second);  // each task once
  }
  CHECK(ran_on.size() == 300);
  std::map<std::string, int> per_node;
  for (const auto& n : three) {
    for (const auto& name : leaseq::detail::list_dir(f.lease(id).done(n).string()).names) {
      json res = *read_json_tolerant(f.lease(id).done(n) / name).value;
      CHECK(res["state"] == "FINISHED");
      // The runner on node n (SLURMD_NODENAME) ran it.
      CHECK(ran_on[res["id"].get<std::string>()] == n);
      ++per_node[n];
    }
  }
  INFO("per node: n1=" << per_node["n1"] << " n2=" << per_node["n2"] << " n3=" << per_node["n3"]);
  for (const auto& n : three) CHECK(per_node[n] > 0);
  CHECK(per_node["n1"] + per_node["n2"] + per_node["n3"] == 300);

  auto rel = f.leaseq("lease release " + id + " --yes");
  CHECK(rel.exit_code == 0);
  CHECK(wait_until([&] { return f.state_is(id, "CANCELLED"); }, 60s));
}

TEST_CASE("slurm: a 2-node lease is PENDING with its reason while the nodes are busy, then starts",
          "[slurm][e2e]") {
  LEASEQ_REQUIRE_SLURM();
  cluster_fixture f;
  command_output busy = slurm_cmd({"sbatch", "--parsable", "--exclusive", "-N3", "-J", "busy", "-o",
                                   "/dev/null", "--wrap", "sleep 600"});
  REQUIRE(busy.ok());
  std::string busy_id = *parse_sbatch_parsable(busy.out);
  f.jobs.push_back(busy_id);
  REQUIRE(wait_until(
      [&] {
        auto r = slurm_cmd({"squeue", "-h", "-j", busy_id, "-o", "%T"});
        return r.ok() && r.out.find("RUNNING") != std::string::npos;
      },
      60s));

  std::string id = f.create("--nodes 2 --time 10");
  json pending;
  bool has_reason = wait_until(
      [&] {
        pending = f.row(id);
        return pending.value("state", "") == "PENDING" && pending["reason"].is_string() &&
               pending["reason"] != "";
      },
      90s);
  INFO(pending.dump());
  REQUIRE(has_reason);
  CHECK((pending["reason"] == "Resources" || pending["reason"] == "Priority"));
  auto ls = f.leaseq("lease ls");
  CHECK_THAT(ls.out, Catch::Contains("PENDING"));
  CHECK_THAT(ls.out, Catch::Contains(pending["reason"].get<std::string>()));

  slurm_cmd({"scancel", busy_id});
  f.wait_running(id, {"n1", "n2"});
  CHECK(f.leaseq("lease release " + id + " --yes").exit_code == 0);
}

TEST_CASE("slurm: release cancels the job - running tasks end runner_terminated - runners stop",
          "[slurm][e2e]") {
  LEASEQ_REQUIRE_SLURM();
  cluster_fixture f;
  std::string id = f.create("--nodes 3 --time 10");
  f.wait_running(id, three);
  std::map<std::string, std::string> task_on;
  for (const auto& n : three) {
    auto r = f.leaseq("submit --lease " + id + " --node " + n + " -- sleep 600", false);
    REQUIRE(r.exit_code == 0);
    task_on[n] = nonempty_lines(r.out).at(0);
  }
  bool claimed = wait_until(
      [&] {
        return std::all_of(three.begin(), three.end(), [&](const std::string& n) {
          return fs::exists(f.lease(id).claimed_task(n, task_on[n]));
        });
      },
      60s);
  REQUIRE(claimed);

  // Off a terminal, release refuses without --yes.
  auto no = f.leaseq("lease release " + id + " </dev/null");
  CHECK(no.exit_code != 0);
  CHECK_THAT(no.out, Catch::Contains("--yes"));

  auto rel = f.leaseq("lease release " + id + " --yes");
  INFO(rel.out);
  REQUIRE(rel.exit_code == 0);
  CHECK(wait_until([&] { return f.state_is(id, "CANCELLED"); }, 60s));
  for (const auto& n : three) {
    fs::path result = f.lease(id).result(n, task_on[n]);
    bool written = wait_until([&] { return fs::exists(result); }, 60s);
    INFO(n << "\nkeeper.log:\n" << f.keeper_log(id));
    REQUIRE(written);
    json res = *read_json_tolerant(result).value;
    CHECK(res["reason"] == "runner_terminated");
    CHECK(res["state"] != "FINISHED");
    CHECK(wait_until([&] { return f.health(id, n, 60) == node_health::down; }, 30s));
  }
}

TEST_CASE("slurm: a lease past its --time ends TIMEOUT, still shown after Slurm forgets it",
          "[slurm][e2e]") {
  LEASEQ_REQUIRE_SLURM();
  cluster_fixture f;
  std::string id = f.create("--nodes 1 --time 1");
  f.wait_running(id, {"n1"});
  json r;
  // Slurm checks limits every 30 s: TIMEOUT comes 60-90 s after the start.
  bool timed_out =
      wait_until([&] { return (r = f.row(id)).value("state", "") == "TIMEOUT"; }, 240s);
  INFO(r.dump());
  REQUIRE(timed_out);
  CHECK(r["stale"] == false);
  // tools/slurm-local sets MinJobAge=30: Slurm soon forgets the job.
  bool forgotten = wait_until(
      [&] {
        auto s = slurm_cmd({"scontrol", "show", "job", id});
        return !s.ok() && says_invalid_job_id(s.err);
      },
      300s);
  REQUIRE(forgotten);
  bool stale = wait_until([&] { return (r = f.row(id))["stale"] == true; }, 60s);
  INFO(r.dump());
  REQUIRE(stale);
  CHECK(r["state"] == "TIMEOUT");
  CHECK_THAT(r["reason"].get<std::string>(), Catch::Contains("last seen"));
  auto ls = f.leaseq("lease ls");
  CHECK_THAT(ls.out, Catch::Contains("TIMEOUT"));
}

TEST_CASE("slurm: kill -9 of one runner turns its node STALE after ui.hb_stale_s", "[slurm][e2e]") {
  LEASEQ_REQUIRE_SLURM();
  const double stale_s = 6;
  cluster_fixture f(stale_s);
  config cfg = load_config(f.home / "config.json");
  REQUIRE(cfg.ui.hb_stale_s == stale_s);
  std::string id = f.create("--nodes 3 --time 10");
  f.wait_running(id, three);
  json hb = *read_json_tolerant(f.lease(id).heartbeat("n2")).value;
  pid_t pid = static_cast<pid_t>(hb["pid"].get<std::int64_t>());
  REQUIRE(pid > 1);
  REQUIRE(::kill(pid, SIGKILL) == 0);
  bool stale =
      wait_until([&] { return f.health(id, "n2", cfg.ui.hb_stale_s) == node_health::stale; }, 60s);
  REQUIRE(stale);
  // The other runners keep beating, and the lease itself still runs.
  CHECK(f.health(id, "n1", cfg.ui.hb_stale_s) == node_health::ok);
  CHECK(f.health(id, "n3", cfg.ui.hb_stale_s) == node_health::ok);
  CHECK(f.state_is(id, "RUNNING"));
  CHECK(f.leaseq("lease release " + id + " --yes").exit_code == 0);
}

TEST_CASE("slurm: --test-only and a refused sbatch submit nothing and register nothing",
          "[slurm][e2e]") {
  LEASEQ_REQUIRE_SLURM();
  cluster_fixture f;
  auto t = f.leaseq("lease create --nodes 2 --time 5 --test-only");
  INFO(t.out);
  CHECK(t.exit_code == 0);
  CHECK_THAT(t.out, Catch::Contains("to start at"));
  auto bad = f.leaseq("lease create --nodes 1 --time 5 --partition nosuchpart");
  INFO(bad.out);
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.out, Catch::Contains("invalid partition"));
  CHECK_FALSE(fs::exists(f.home / "index.json"));
  CHECK(leaseq::detail::list_dir((f.home / "runs").string()).names.empty());
  // No keeper script is left behind either.
  CHECK(leaseq::detail::list_dir((f.home / "keepers").string()).names.empty());
}

// No cluster needed below.

TEST_CASE("slurm: lease create --dry-run prints the sbatch argv and the keeper, submits nothing",
          "[slurm][e2e]") {
  temp_dir tmp;
  fs::path home = tmp / "home";
  auto r = test_support::run_command(
      "LEASEQ_HOME=" + test_support::shell_quote(home.string()) + " " + LEASEQ_BIN +
      " lease create --dry-run --name 'my run' --nodes 2 --time 1:00:00 --partition gpu "
      "--gpus-per-node 4 --sbatch-arg=--exclusive 2>&1");
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("sbatch --parsable '--job-name=leaseq-my run' --nodes=2 "
                                    "--ntasks-per-node=1 --time=1:00:00 --partition=gpu "
                                    "--gpus-per-node=4"));
  CHECK_THAT(r.out, Catch::Contains("--exclusive"));
  CHECK_THAT(r.out, Catch::Contains("keeper script: " + home.string() + "/keepers/keeper-"));
  CHECK_THAT(r.out, Catch::Contains("export LEASEQ_HOME=" + home.string()));
  CHECK_THAT(r.out, Catch::Contains("srun --ntasks-per-node=1"));
  CHECK_THAT(r.out, Catch::Contains(std::string(LEASEQ_BIN)));
  CHECK_FALSE(fs::exists(home / "index.json"));
  CHECK_FALSE(fs::exists(home / "keepers"));

  auto bad = test_support::run_command("LEASEQ_HOME=" + test_support::shell_quote(home.string()) +
                                       " " + LEASEQ_BIN + " lease create --nodes 0 --time 5 2>&1");
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.out, Catch::Contains("--nodes"));
}

TEST_CASE("slurm: lease use and ls without Slurm - a missing squeue shows UNKNOWN with the error",
          "[slurm][e2e]") {
  temp_dir tmp;
  fs::path home = tmp / "home";
  home_paths hp(home);
  register_lease(hp, {"4242", "slurm", std::string("x"), 1, json::object()});
  register_lease(hp, {"4243", "slurm", std::nullopt, 2, json::object()});
  std::string env =
      "LEASEQ_HOME=" + test_support::shell_quote(home.string()) + " PATH=/nonexistent-dir ";
  auto use = test_support::run_command(env + LEASEQ_BIN + " lease use 4243 2>&1");
  CHECK(use.exit_code == 0);
  CHECK(read_index(hp).index.default_lease == "4243");
  auto unknown = test_support::run_command(env + LEASEQ_BIN + " lease use 99 2>&1");
  CHECK(unknown.exit_code != 0);
  CHECK_THAT(unknown.out, Catch::Contains("unknown lease"));
  auto hostile = test_support::run_command(env + LEASEQ_BIN + " lease use ../etc 2>&1");
  CHECK(hostile.exit_code != 0);

  auto ls = test_support::run_command(env + LEASEQ_BIN + " lease ls --json");
  INFO(ls.out);
  REQUIRE(ls.exit_code == 0);
  json rows = json::parse(ls.out);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["state"] == "UNKNOWN");
  CHECK_THAT(rows[0]["error"].get<std::string>(), Catch::Contains("squeue"));
  CHECK(rows[1]["default"] == true);
  auto table = test_support::run_command(env + LEASEQ_BIN + " lease ls");
  CHECK_THAT(table.out, Catch::Contains("UNKNOWN"));
  CHECK_THAT(table.out, Catch::Contains("squeue"));
}

TEST_CASE("slurm: a --slots 2 lease runs 2 tasks at once on its node", "[slurm][e2e]") {
  LEASEQ_REQUIRE_SLURM();
  cluster_fixture f;
  std::string id = f.create("--nodes 1 --time 10 --slots 2 --name slots2");
  json rec = *read_json_tolerant(f.lease(id).lease_json()).value;
  CHECK(rec["slots"] == 2);
  CHECK_THAT(test_support::read_text(f.lease(id).root() / "keeper.sh"),
             Catch::Contains("--slots 2'"));
  REQUIRE(wait_until([&] { return f.state_is(id, "RUNNING"); }, 120s));
  std::string node;
  REQUIRE(wait_until(
      [&] {
        for (const auto& n : three)
          if (f.health(id, n, 60) == node_health::ok) node = n;
        return !node.empty();
      },
      30s));
  json hb = *read_json_tolerant(f.lease(id).heartbeat(node)).value;
  CHECK(hb["slots"] == 2);
  CHECK(f.row(id)["slots"] == 2);

  // Each task marks itself, then waits for the other's mark: both FINISH only if they ran at
  // the same time (one slot would leave the first waiting until it gave up).
  fs::path marks = f.tmp / "marks";
  ensure_dir(marks);
  std::string q = test_support::shell_quote(marks.string());
  std::string task = "--shell -- 'touch " + q + "/$LEASEQ_TASK_ID; for i in $(seq 1 600); do [ " +
                     "$(ls " + q + " | wc -l) -ge 2 ] && exit 0; sleep 0.1; done; exit 1'";
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    auto r = f.leaseq("submit --lease " + id + " " + task, false);
    REQUIRE(r.exit_code == 0);
    ids.push_back(nonempty_lines(r.out).at(0));
  }
  auto w = f.leaseq("wait --lease " + id + " --timeout 5m " + ids[0] + " " + ids[1], false);
  INFO(w.out);
  CHECK(w.exit_code == 0);
  CHECK(w.out == "2 tasks: 2 FINISHED\n");
  CHECK(f.leaseq("lease release " + id + " --yes").exit_code == 0);
}
