// `leaseq clean` and `leaseq lease forget` on the real program with real runners: counts stay
// exact through an archive, a clean killed at any point, two cleans at once, and hostile trees.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <string>

#include <catch2/catch.hpp>
#include <leaseq/detail/dir.hpp>
#include <leaseq/index.hpp>

#include "runner_fixture.hpp"

using namespace e2e;

namespace {

// Runs `n` array tasks to their end on a runner (every 5th exits 3: FAILED), then stops it.
void clean_e2e_run_tasks(fixture& f, int n) {
  runner_proc r(f, "nodeA", {"--slots", "4", "--heartbeat", "0.2"});
  auto before = f.count_results();
  auto s = f.leaseq("submit --lease " + lease_id + " --array 1-" + std::to_string(n) +
                        " --shell -- 'echo out $LEASEQ_ARRAY_INDEX; test $((LEASEQ_ARRAY_INDEX "
                        "% 5)) -ne 0 || exit 3'",
                    false);
  REQUIRE(s.exit_code == 0);
  bool ok =
      wait_until([&] { return f.count_results() >= before + static_cast<std::size_t>(n); }, 120s);
  REQUIRE(ok);
  r.signal(SIGTERM);
  r.wait();
}

json clean_e2e_status(const fixture& f) {
  auto r = f.leaseq("status --lease " + lease_id + " --json", false);
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  return json::parse(r.out);
}

std::size_t clean_e2e_total(const json& st) {
  std::size_t n = 0;
  for (const auto& [k, v] : st["counts"].items()) n += v.get<std::size_t>();
  return n;
}

std::size_t clean_e2e_listed(const fixture& f, const std::string& extra) {
  auto r = f.leaseq("tasks --lease " + lease_id + " --json --limit 1000000 " + extra, false);
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  return json::parse(r.out)["total"].get<std::size_t>();
}

}  // namespace

TEST_CASE("clean archives ended tasks and every reader still counts them once", "[cli][clean]") {
  fixture f;
  clean_e2e_run_tasks(f, 40);
  json before = clean_e2e_status(f);
  CHECK(before["counts"]["FINISHED"] == 32);
  CHECK(before["counts"]["FAILED"] == 8);
  CHECK(before["archived"] == 0);

  SECTION("dry run, filters and usage errors change nothing") {
    auto d = f.leaseq("clean --lease " + lease_id + " --dry-run");
    CHECK(d.exit_code == 0);
    CHECK_THAT(d.out, Catch::Contains("would archive 40 task(s)"));
    auto old = f.leaseq("clean --lease " + lease_id + " --older-than 1h --yes");
    CHECK(old.exit_code == 0);
    CHECK_THAT(old.out, Catch::Contains("nothing to archive"));
    CHECK(f.leaseq("clean --lease " + lease_id + " --state RUNNING --yes").exit_code == 2);
    CHECK(f.leaseq("clean --lease " + lease_id + " --older-than soon --yes").exit_code == 2);
    auto notty = f.leaseq("clean --lease " + lease_id + " </dev/null");
    CHECK(notty.exit_code == 1);
    CHECK_THAT(notty.out, Catch::Contains("--yes"));
    CHECK(f.count_results() == 40);
  }

  SECTION("clean, then status, tasks and tasks --archived") {
    auto c = f.leaseq("clean --lease " + lease_id + " --state failed --keep-logs --yes");
    INFO(c.out);
    REQUIRE(c.exit_code == 0);
    CHECK_THAT(c.out, Catch::Contains("archived 8 tasks of lease local:e2e into"));
    CHECK(fs::exists(f.lease.stdout_log("nodeA", "T005")));  // --keep-logs
    auto c2 = f.leaseq("clean --lease " + lease_id + " --yes");
    INFO(c2.out);
    REQUIRE(c2.exit_code == 0);
    CHECK_THAT(c2.out, Catch::Contains("archived 32 tasks"));
    CHECK(f.count_results() == 0);
    CHECK_FALSE(fs::exists(f.lease.stdout_log("nodeA", "T001")));  // logs go by default

    json after = clean_e2e_status(f);
    CHECK(after["counts"] == before["counts"]);
    CHECK(after["archived"] == 40);
    CHECK(after["archived_counts"]["FAILED"] == 8);
    CHECK(after["counts"]["UNKNOWN"] == 0);
    auto text = f.leaseq("status --lease " + lease_id);
    CHECK_THAT(text.out, Catch::Contains("(archived 40)"));

    CHECK(clean_e2e_listed(f, "") == 0);
    CHECK(clean_e2e_listed(f, "--archived") == 40);
    CHECK(clean_e2e_listed(f, "--archived --state FAILED") == 8);
    auto one = f.leaseq("tasks --lease " + lease_id + " --archived --json --state FAILED", false);
    json t = json::parse(one.out)["tasks"][0];
    CHECK(t["exit_code"] == 3);
    CHECK(t["node"] == "nodeA");
    CHECK_THAT(t["cmd"].get<std::string>(), Catch::Contains("echo out"));
    CHECK(t["finished"].is_number());
    auto listing = f.leaseq("tasks --lease " + lease_id + " --archived");
    CHECK_THAT(listing.out, Catch::Contains("T005"));
    CHECK_THAT(listing.out, Catch::Contains("FAILED"));

    // New work after a clean: counted live beside the archive, pending never archived.
    f.submit("-- true");
    auto p = f.leaseq("clean --lease " + lease_id + " --yes");
    CHECK(p.exit_code == 0);
    json later = clean_e2e_status(f);
    CHECK(later["counts"]["PENDING"] == 1);
    CHECK(clean_e2e_total(later) == 41);
  }
}

TEST_CASE("clean killed with SIGKILL at any point loses nothing and counts once", "[cli][clean]") {
  fixture f;
  clean_e2e_run_tasks(f, 60);
  // Killed by the fault point after k-1 unlinks, for several k, with new results each round:
  // archive files pile up, with archived tasks still live beside them.
  std::size_t expected = 60;
  for (int k : {1, 5, 17, 3}) {
    auto killed = test_support::run_command(
        "LEASEQ_FAULT=clean_kill_mid_unlink=1/" + std::to_string(k) +
        " LEASEQ_HOME=" + test_support::shell_quote(f.home.string()) + " " + LEASEQ_BIN +
        " clean --lease " + lease_id + " --yes >/dev/null 2>&1");
    CHECK(killed.exit_code != 0);
    json st = clean_e2e_status(f);
    INFO("k=" << k << " " << st.dump());
    CHECK(clean_e2e_total(st) == expected);
    CHECK(st["counts"]["UNKNOWN"] == 0);
    CHECK(st["counts"]["FAILED"] == expected / 5);
    CHECK(clean_e2e_listed(f, "") + clean_e2e_listed(f, "--archived") == expected);
    clean_e2e_run_tasks(f, 10);
    expected += 10;
  }
  // Killed at random moments from outside.
  clean_e2e_run_tasks(f, 100);
  std::mt19937 rng(42);
  for (int round = 0; round < 8; ++round) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::setenv("LEASEQ_HOME", f.home.c_str(), 1);
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execl(LEASEQ_BIN, LEASEQ_BIN, "clean", "--lease", lease_id.c_str(), "--yes",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::usleep(std::uniform_int_distribution<int>(0, 40000)(rng));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    json st = clean_e2e_status(f);
    INFO("round " << round << " " << st.dump());
    CHECK(clean_e2e_total(st) == expected + 100);
    CHECK(st["counts"]["UNKNOWN"] == 0);
  }
  auto last = f.leaseq("clean --lease " + lease_id + " --yes");
  CHECK(last.exit_code == 0);
  json st = clean_e2e_status(f);
  CHECK(st["archived"] == expected + 100);
  CHECK(st["counts"]["FAILED"] == (expected + 100) / 5);
  CHECK(f.count_results() == 0);
  CHECK(clean_e2e_listed(f, "--archived") == expected + 100);
}

TEST_CASE("two cleans at once lose nothing and count once", "[cli][clean]") {
  fixture f;
  clean_e2e_run_tasks(f, 100);
  std::string cmd = "LEASEQ_HOME=" + test_support::shell_quote(f.home.string()) + " " + LEASEQ_BIN +
                    " clean --lease " + lease_id + " --yes >/dev/null 2>&1";
  int failures = test_support::run_in_children(
      2, [&](int) { return test_support::run_command(cmd).exit_code; });
  CHECK(failures == 0);
  json st = clean_e2e_status(f);
  CHECK(st["archived"] == 100);
  CHECK(st["counts"]["FINISHED"] == 80);
  CHECK(st["counts"]["FAILED"] == 20);
  CHECK(f.count_results() == 0);
  CHECK(clean_e2e_listed(f, "--archived") == 100);
}

TEST_CASE("clean refuses a symlinked archive directory", "[cli][clean][hostile]") {
  fixture f;
  clean_e2e_run_tasks(f, 5);
  fs::create_directories(f.tmp / "elsewhere");
  fs::create_symlink(f.tmp / "elsewhere", f.lease.archive_dir());
  auto r = f.leaseq("clean --lease " + lease_id + " --yes");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("symbolic link"));
  CHECK(f.count_results() == 5);
  CHECK(fs::is_empty(f.tmp / "elsewhere"));
  json st = clean_e2e_status(f);
  CHECK(clean_e2e_total(st) == 5);
}

TEST_CASE("lease forget drops an ended lease only, and asks first", "[cli][clean]") {
  fixture f;
  std::string id = f.submit("--key kclean -- true");  // registers local:e2e
  auto index_has = [&] {
    return leaseq::read_index(leaseq::home_paths(f.home)).index.find(lease_id) != nullptr;
  };
  REQUIRE(index_has());
  {
    runner_proc r(f, "nodeA", {"--heartbeat", "0.2"});
    REQUIRE(wait_until([&] { return f.hb("nodeA").has_value(); }, 20s));
    f.wait_result(id);
    auto live = f.leaseq("lease forget " + lease_id + " --yes");
    CHECK(live.exit_code == 1);
    CHECK_THAT(live.out, Catch::Contains("only an ended lease"));
    CHECK(index_has());
    r.signal(SIGTERM);
    r.wait();
  }
  // An idempotency key stays bound to its task once the task is archived.
  REQUIRE(f.leaseq("clean --lease " + lease_id + " --yes").exit_code == 0);
  CHECK(f.submit("--key kclean -- true") == id);
  json st = clean_e2e_status(f);
  CHECK(st["archived"] == 1);
  CHECK(clean_e2e_total(st) == 1);
  auto notty = f.leaseq("lease forget " + lease_id + " </dev/null");
  CHECK(notty.exit_code == 1);
  CHECK_THAT(notty.out, Catch::Contains("--yes"));
  CHECK(index_has());
  auto ok = f.leaseq("lease forget " + lease_id + " --yes");
  INFO(ok.out);
  CHECK(ok.exit_code == 0);
  CHECK_FALSE(index_has());
  CHECK(fs::is_directory(f.lease.root()));                                // the tree stays
  CHECK(f.leaseq("lease forget " + lease_id + " --yes").exit_code == 1);  // unknown now
  CHECK(f.leaseq("lease forget 'bad id' --yes").exit_code != 0);
}

namespace {

// status --json without what changes from one call to the next (heartbeat ages).
json clean_e2e_counts(const fixture& f) {
  json st = clean_e2e_status(f);
  for (auto& n : st["nodes"]) n.erase("hb_age_s");
  return st;
}

}  // namespace

TEST_CASE(
    "status counts from the runners' results index exactly as from the result files, "
    "before and after clean",
    "[cli][clean][results_index]") {
  fixture f;
  clean_e2e_run_tasks(f, 30);
  fs::path index = f.lease.done("nodeA") / ".results";
  fs::path aside = f.lease.done("nodeA") / ".results.aside";
  REQUIRE(fs::is_regular_file(index));
  auto without_index = [&] {
    fs::rename(index, aside);
    json st = clean_e2e_counts(f);
    fs::rename(aside, index);
    return st;
  };
  json with = clean_e2e_counts(f);
  CHECK(with["counts"]["FINISHED"] == 24);
  CHECK(with["counts"]["FAILED"] == 6);
  CHECK(with == without_index());

  // A torn line and garbage in the index change nothing: those results are parsed.
  {
    std::ofstream out(index, std::ios::app);
    out << "garbage\nT001 CANCELLED - 1 00000000\nT002 FAI";
  }
  CHECK(clean_e2e_counts(f) == with);
  auto running = f.leaseq("tasks --lease " + lease_id + " --state RUNNING --json", false);
  REQUIRE(running.exit_code == 0);
  CHECK(json::parse(running.out)["total"] == 0);

  // After clean the archive counts the tasks; the index's lines name files no longer listed.
  auto c = f.leaseq("clean --lease " + lease_id + " --yes");
  INFO(c.out);
  REQUIRE(c.exit_code == 0);
  json after = clean_e2e_counts(f);
  CHECK(after["counts"] == with["counts"]);
  CHECK(after["archived"] == 30);
  CHECK(after == without_index());

  // New results after the clean: counted once, by their lines, beside the archived ones.
  clean_e2e_run_tasks(f, 5);
  json more = clean_e2e_counts(f);
  CHECK(more["counts"]["FINISHED"] == 28);
  CHECK(more["counts"]["FAILED"] == 7);
  CHECK(more == without_index());
  std::string text = f.leaseq("status --lease " + lease_id).out;
  CHECK_THAT(text, Catch::Contains("FINISHED=28") && Catch::Contains("FAILED=7"));
}
