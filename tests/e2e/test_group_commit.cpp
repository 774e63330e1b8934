// End-to-end: the runner's group commit (engine/result_writer.hpp) across a crash. A runner
// killed with SIGKILL after a batch of results is written and flushed under temporary names,
// before any is renamed (LEASEQ_FAULT=batch_kill_before_rename), and a cancel that arrives for
// a task of that batch: after a restart every task has its result, none ran twice, the batch's
// results are FINISHED, and the cancel does not undo a task that had already ended.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <set>

#include <catch2/catch.hpp>

#include "runner_fixture.hpp"
#include "test_support.hpp"

using namespace e2e;

namespace {

pid_t start_runner(const fixture& f, const std::string& fault, int slots) {
  fs::path log = f.tmp / "runner.log";
  std::string home = f.home.string(), s = std::to_string(slots);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setenv("LEASEQ_HOME", home.c_str(), 1);
    if (fault.empty())
      ::unsetenv("LEASEQ_FAULT");
    else
      ::setenv("LEASEQ_FAULT", fault.c_str(), 1);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(LEASEQ_BIN, "leaseq", "runner", "--lease", lease_id.c_str(), "--node", "n1", "--slots",
            s.c_str(), "--gpu-ids", "none", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// The runner's wait status once it exited, or nothing while it runs.
std::optional<int> exited(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) == pid) return status;
  return std::nullopt;
}

// Names in done/n1 that are results written but never renamed (temporary names).
std::vector<std::string> temp_results(const fixture& f) {
  std::vector<std::string> out;
  for (const auto& n : detail::list_dir(f.lease.done("n1").string(), true).names)
    if (n.rfind(".T", 0) == 0 && n.find(".result.json") != std::string::npos) out.push_back(n);
  return out;
}

}  // namespace

TEST_CASE("group commit: kill -9 between a batch's flush and its renames loses nothing",
          "[e2e][runner][group_commit]") {
  fixture f;
  fs::path ran = f.tmp / "ran.txt";
  // Tasks that end together, so that their results reach the writer while it flushes one.
  std::string lines;
  for (int i = 0; i < 16; ++i)
    lines += "sleep 0.2; echo $LEASEQ_TASK_ID >> " + test_support::shell_quote(ran.string()) + "\n";
  fs::path lines_file = f.tmp / "lines.txt";
  test_support::write_text(lines_file, lines);

  std::vector<std::string> ids;
  bool killed = false;
  // A batch of two or more forms in nearly every round; a round without one ends normally.
  for (int round = 0; round < 5 && !killed; ++round) {
    auto sub =
        f.leaseq("submit --lease " + lease_id + " --each-line " + lines_file.string(), false);
    REQUIRE(sub.exit_code == 0);
    for (auto& id : lines_of(sub.out)) ids.push_back(id);
    pid_t runner = start_runner(f, "batch_kill_before_rename=1", 8);
    std::optional<int> status;
    REQUIRE(wait_until(
        [&] { return (status = exited(runner)).has_value() || f.count_results() >= ids.size(); },
        60s));
    if (!status) {
      ::kill(runner, SIGTERM);
      ::waitpid(runner, nullptr, 0);
      continue;
    }
    INFO(test_support::read_text(f.tmp / "runner.log"));
    REQUIRE(WIFSIGNALED(*status));
    REQUIRE(WTERMSIG(*status) == SIGKILL);
    killed = true;
  }
  REQUIRE(killed);

  // The batch is on disk under temporary names; its tasks are still claimed.
  std::vector<std::string> temps = temp_results(f);
  REQUIRE(temps.size() >= 2);
  std::string pending_id = temps.front().substr(1, temps.front().find(".result.json") - 1);
  REQUIRE(fs::exists(f.lease.claimed_task("n1", pending_id)));
  REQUIRE_FALSE(fs::exists(f.lease.result("n1", pending_id)));
  // A cancel for a task of the pending batch, while no runner is there.
  auto cancel = f.leaseq("cancel --lease " + lease_id + " " + pending_id);
  INFO(cancel.out);

  pid_t again = start_runner(f, "", 8);
  bool all = wait_until(
      [&] { return f.count_results() >= ids.size() && f.count(f.lease.claimed("n1")) == 0; }, 60s);
  ::kill(again, SIGTERM);
  ::waitpid(again, nullptr, 0);
  INFO(test_support::read_text(f.tmp / "runner.log"));
  REQUIRE(all);

  // Nothing lost, nothing run twice. Every task of the batch ran once and ended FINISHED (the
  // cancelled one had ended before the cancel came: its supervisor's record stands). A task
  // the runner was starting when it died never ran (its supervisor waits for the runner's go)
  // and ends runner_lost, as the protocol says of a `starting` claim with no process.
  std::map<std::string, int> runs;
  for (const auto& id : lines_of(test_support::read_text(ran))) ++runs[id];
  std::set<std::string> batch;
  for (const auto& t : temps) batch.insert(t.substr(1, t.find(".result.json") - 1));
  for (const auto& id : ids) {
    INFO(id);
    auto r = f.result_of(id);
    REQUIRE(r);
    CHECK(runs[id] <= 1);
    if ((*r)["state"] == "FINISHED") {
      CHECK(runs[id] == 1);
      CHECK((*r)["exit_code"] == 0);
    } else {
      CHECK_FALSE(batch.count(id));
      CHECK((*r)["state"] == "FAILED");
      CHECK((*r)["reason"] == "runner_lost");
      CHECK(runs[id] == 0);
    }
  }
  for (const auto& id : batch) {
    INFO(id);
    CHECK(runs[id] == 1);
    CHECK((*f.result_of(id))["state"] == "FINISHED");
  }
  CHECK(f.count(f.lease.inbox("_any")) == 0);
}

TEST_CASE("group commit: a cancel arriving while an ended task's result waits in the batch",
          "[e2e][runner][group_commit]") {
  fixture f;
  fs::path ran = f.tmp / "ran.txt";
  std::string lines;
  for (int i = 0; i < 16; ++i)
    lines += "sleep 0.2; echo $LEASEQ_TASK_ID >> " + test_support::shell_quote(ran.string()) + "\n";
  fs::path lines_file = f.tmp / "lines.txt";
  test_support::write_text(lines_file, lines);
  auto cancels_left = [&] {
    std::size_t n = 0;
    for (const auto& name : detail::list_dir(f.lease.control("n1").string()).names)
      if (name.rfind("cancel_", 0) == 0) ++n;
    return n;
  };

  std::vector<std::string> ids;
  std::string cancelled;
  // The writer holds the first batch of two or more for 3 s after its flush, before the
  // renames (LEASEQ_FAULT=batch_stall_before_rename): the cancel must be handled meanwhile.
  // A round where no batch formed, or the cancel came too late (a loaded machine: the suite
  // builds the next configuration meanwhile), is run again.
  for (int round = 0; round < 10 && cancelled.empty(); ++round) {
    auto sub =
        f.leaseq("submit --lease " + lease_id + " --each-line " + lines_file.string(), false);
    REQUIRE(sub.exit_code == 0);
    for (auto& id : lines_of(sub.out)) ids.push_back(id);
    pid_t runner = start_runner(f, "batch_stall_before_rename=1", 8);
    std::vector<std::string> temps;
    wait_until(
        [&] { return !(temps = temp_results(f)).empty() || f.count_results() >= ids.size(); }, 60s);
    if (!temps.empty()) {
      std::string id = temps.front().substr(1, temps.front().find(".result.json") - 1);
      auto cancel = f.leaseq("cancel --lease " + lease_id + " " + id);
      INFO(cancel.out);
      // Refused only when the batch was renamed before the command looked (the task ended):
      // too late for this round.
      REQUIRE((cancel.exit_code == 0 || fs::exists(f.lease.result("n1", id))));
      REQUIRE(wait_until([&] { return cancels_left() == 0; }, 30s));
      // Still in the batch when the runner took the cancel: the case this test is about.
      if (cancel.exit_code == 0 && !fs::exists(f.lease.result("n1", id)) &&
          fs::exists(f.lease.claimed_task("n1", id)))
        cancelled = id;
    }
    bool all = wait_until(
        [&] { return f.count_results() >= ids.size() && f.count(f.lease.claimed("n1")) == 0; },
        60s);
    INFO(test_support::read_text(f.tmp / "runner.log"));
    REQUIRE(all);
    REQUIRE_FALSE(exited(runner));  // the stall is no crash
    ::kill(runner, SIGTERM);
    ::waitpid(runner, nullptr, 0);
  }
  REQUIRE_FALSE(cancelled.empty());
  INFO(cancelled);

  // The task had ended before the cancel came: its result stands, FINISHED; the runner said
  // it found nothing to cancel. Every task ran once and has its result; no temp file is left.
  std::string log = test_support::read_text(f.tmp / "runner.log");
  CHECK(log.find(cancelled + ": cancel: not pending here nor running here") != std::string::npos);
  std::map<std::string, int> runs;
  for (const auto& id : lines_of(test_support::read_text(ran))) ++runs[id];
  for (const auto& id : ids) {
    INFO(id);
    auto r = f.result_of(id);
    REQUIRE(r);
    CHECK(runs[id] == 1);
    CHECK((*r)["state"] == "FINISHED");
  }
  CHECK(temp_results(f).empty());
  CHECK(f.count(f.lease.inbox("_any")) == 0);
}

TEST_CASE("group commit: a restarted runner removes the temp results a killed one left",
          "[e2e][runner][group_commit]") {
  fixture f;
  std::string lines;
  for (int i = 0; i < 16; ++i) lines += "sleep 0.2\n";
  fs::path lines_file = f.tmp / "lines.txt";
  test_support::write_text(lines_file, lines);
  std::size_t submitted = 0;
  bool killed = false;
  for (int round = 0; round < 5 && !killed; ++round) {
    auto sub =
        f.leaseq("submit --lease " + lease_id + " --each-line " + lines_file.string(), false);
    REQUIRE(sub.exit_code == 0);
    submitted += lines_of(sub.out).size();
    pid_t runner = start_runner(f, "batch_kill_before_rename=1", 8);
    std::optional<int> status;
    REQUIRE(wait_until(
        [&] { return (status = exited(runner)).has_value() || f.count_results() >= submitted; },
        60s));
    if (!status) {
      ::kill(runner, SIGTERM);
      ::waitpid(runner, nullptr, 0);
      continue;
    }
    killed = true;
  }
  REQUIRE(killed);
  REQUIRE(temp_results(f).size() >= 2);
  // Names that only look alike are not the runner's: they stay.
  for (const char* other : {".T999.result.json.mine", ".notes", ".T998.result.json.tmp.x.1.ab"})
    test_support::write_text(f.lease.done("n1") / other, "x");

  pid_t again = start_runner(f, "", 8);
  bool all = wait_until(
      [&] { return f.count_results() >= submitted && f.count(f.lease.claimed("n1")) == 0; }, 60s);
  ::kill(again, SIGTERM);
  ::waitpid(again, nullptr, 0);
  INFO(test_support::read_text(f.tmp / "runner.log"));
  REQUIRE(all);
  std::set<std::string> left;
  for (const auto& n : temp_results(f)) left.insert(n);
  CHECK(left == std::set<std::string>{".T999.result.json.mine", ".T998.result.json.tmp.x.1.ab"});
  for (const char* other : {".T999.result.json.mine", ".notes", ".T998.result.json.tmp.x.1.ab"})
    CHECK(fs::exists(f.lease.done("n1") / other));
  CHECK(test_support::read_text(f.tmp / "runner.log").find("temporary file(s) a killed runner") !=
        std::string::npos);
}
