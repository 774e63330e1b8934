// Faults under a real `leaseq runner`: disk full and EIO when writing results (injected with
// LEASEQ_FAULT, see include/leaseq/detail/fault.hpp), claim renames that report an error although
// they happened, and lease-tree directories or files replaced by symlinks pointing outside the
// tree. Each must end with every task accounted for and nothing written outside the tree.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <leaseq/clock.hpp>
#include <leaseq/detail/dir.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/model.hpp>
#include <leaseq/paths.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::read_text;
using test_support::shell_quote;
using test_support::temp_dir;
using test_support::wait_until;
using test_support::write_text;
using namespace std::chrono_literals;

namespace {

struct fault_lease {
  temp_dir tmp;
  fs::path home = tmp / "home";
  fs::path outside = tmp / "outside";
  std::string lease = "local:faults";
  lease_paths lp{home / "runs" / lease};
  fs::path runner_log = tmp / "runner.log";
  pid_t runner = -1;

  fault_lease() { fs::create_directories(outside); }
  ~fault_lease() { stop(); }

  void start(const std::string& fault = "", const std::string& node = "n1", int slots = 2) {
    runner = ::fork();
    REQUIRE(runner >= 0);
    if (runner == 0) {
      ::setenv("LEASEQ_HOME", home.c_str(), 1);
      if (!fault.empty()) ::setenv("LEASEQ_FAULT", fault.c_str(), 1);
      int fd = ::open(runner_log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::string s = std::to_string(slots);
      ::execl(LEASEQ_BIN, "leaseq", "runner", "--lease", lease.c_str(), "--node", node.c_str(),
              "--slots", s.c_str(), "--gpus", "none", "--heartbeat", "0.5", "--grace", "1",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    REQUIRE(wait_until(
        [&] { return fs::exists(lp.heartbeat(node)) || log().find("error") != std::string::npos; },
        30s));
  }
  void stop() {
    if (runner <= 0) return;
    ::kill(runner, SIGTERM);
    int status;
    ::waitpid(runner, &status, 0);
    runner = -1;
  }
  std::string log() const { return read_text(runner_log); }
  // Evidence instead of sleeps: the runner logged that `dir` is a symlink it will not use...
  bool logged_link(const fs::path& dir) const {
    return wait_until(
        [&] { return log().find(dir.string() + " is a symbolic link") != std::string::npos; }, 30s);
  }
  // ... and it went round its loop n more times (each pass rewrites the heartbeat, 0.5 s).
  bool looped(int n, const std::string& node = "n1") const {
    for (int i = 0; i < n; ++i) {
      std::string before = read_text(lp.heartbeat(node));
      if (!wait_until([&] { return read_text(lp.heartbeat(node)) != before; }, 30s)) return false;
    }
    return true;
  }

  std::string submit(const std::string& args) const {
    auto r = test_support::run_command("LEASEQ_HOME=" + shell_quote(home.string()) + " " +
                                       shell_quote(LEASEQ_BIN) + " submit --lease " + lease + " " +
                                       args + " 2>&1");
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    std::string id = r.out.substr(0, r.out.find('\n'));
    REQUIRE(is_valid_task_id(id));
    return id;
  }
  std::optional<task_result> result(const std::string& node, const std::string& id) const {
    json_outcome j = read_json_tolerant(lp.result(node, id));
    if (!j.ok()) return std::nullopt;
    task_result r;
    from_json(*j.value, r);
    return r;
  }
  bool outside_empty() const { return fs::is_empty(outside); }
};

}  // namespace

TEST_CASE("disk full when writing a result: the task stays claimed, the write is retried",
          "[faults]") {
  fault_lease f;
  fs::path marker = f.tmp / "ran";
  f.start("result_write_enospc=6");
  std::string id = f.submit("-- /bin/sh -c " + shell_quote("echo out; touch " + marker.string()));
  REQUIRE(wait_until([&] { return f.log().find("No space left on device") != std::string::npos; },
                     30s));
  // The result could not be written: the claimed file is still there, no result yet.
  CHECK(fs::exists(marker));
  CHECK(fs::exists(f.lp.claimed_task("n1", id)));
  CHECK_FALSE(fs::exists(f.lp.result("n1", id)));
  // More tasks finish meanwhile; every result arrives once the disk has room again.
  std::vector<std::string> more;
  for (int i = 0; i < 3; ++i) more.push_back(f.submit("-- /bin/echo more"));
  for (const auto& t : more) {
    INFO(t << "\n" << f.log());
    REQUIRE(wait_until([&] { return f.result("n1", t).has_value(); }, 60s));
  }
  INFO(f.log());
  REQUIRE(wait_until([&] { return f.result("n1", id).has_value(); }, 60s));
  CHECK(f.result("n1", id)->state == task_state::finished);
  CHECK(read_text(f.lp.stdout_log("n1", id)) == "out\n");
  CHECK(detail::list_dir(f.lp.claimed("n1").string()).names.empty());
  CHECK(f.log().find("kept, retried") != std::string::npos);
}

TEST_CASE("EIO on every other result write: nothing is lost", "[faults]") {
  fault_lease f;
  f.start("result_write_eio=1/2", "n1", 4);
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(f.submit("-- /bin/true"));
  for (const auto& id : ids) {
    INFO(id << "\n" << f.log());
    REQUIRE(wait_until([&] { return f.result("n1", id).has_value(); }, 60s));
    CHECK(f.result("n1", id)->state == task_state::finished);
  }
  CHECK(f.log().find("Input/output error") != std::string::npos);
}

TEST_CASE("a claim rename that reports an error although it happened: the task still runs",
          "[faults]") {
  fault_lease f;
  f.start("claim_rename_lies=1/1");  // every claim "fails"
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(f.submit("-- /bin/sh -c 'echo $LEASEQ_TASK_ID'"));
  for (const auto& id : ids) {
    INFO(id << "\n" << f.log());
    REQUIRE(wait_until([&] { return f.result("n1", id).has_value(); }, 60s));
    auto r = *f.result("n1", id);
    CHECK(r.state == task_state::finished);
    CHECK(r.attempt.has_value());
    CHECK(read_text(f.lp.stdout_log("n1", id)) == id + "\n");
  }
  CHECK(f.log().find("happened") != std::string::npos);
}

TEST_CASE("claimed files the runner does not know about are adopted and run", "[faults]") {
  fault_lease f;
  f.start();
  // A task file dropped straight into claimed/ (as a claim whose reply was lost would leave it),
  // with no pid: it never started, so the runner runs it.
  std::string id = f.submit("--node other --force -- /bin/echo adopted");
  fs::rename(f.lp.inbox_task("other", id), f.lp.claimed_task("n1", id));
  INFO(f.log());
  REQUIRE(wait_until([&] { return f.result("n1", id).has_value(); }, 60s));
  CHECK(f.result("n1", id)->state == task_state::finished);
  CHECK(read_text(f.lp.stdout_log("n1", id)) == "adopted\n");
}

TEST_CASE("lease directories replaced by symlinks: the runner refuses to write through them",
          "[faults]") {
  fault_lease f;
  // Before the runner starts: its claimed/ and logs/ directories point outside.
  fs::create_directories(f.lp.root() / "claimed");
  fs::create_directories(f.lp.root() / "logs");
  fs::create_directory_symlink(f.outside, f.lp.claimed_root() / "n1");
  std::string first = f.submit("-- /bin/echo first");
  f.start();
  REQUIRE(f.logged_link(f.lp.claimed_root() / "n1"));
  REQUIRE(f.looped(2));
  CHECK(fs::exists(f.lp.inbox_task("_any", first)));  // left pending, not lost
  CHECK(f.outside_empty());
  // Repaired: the runner goes on by itself.
  fs::remove(f.lp.claimed_root() / "n1");
  REQUIRE(wait_until([&] { return f.result("n1", first).has_value(); }, 60s));
  CHECK(f.outside_empty());

  SECTION("done/ replaced while a task runs: the result waits, the task stays claimed") {
    fs::path gate = f.tmp / "gate";
    std::string slow = f.submit("-- /bin/sh -c " + shell_quote("while [ ! -e " + gate.string() +
                                                               " ]; do sleep 0.05; done"));
    REQUIRE(wait_until([&] { return fs::exists(f.lp.claimed_task("n1", slow)); }, 30s));
    fs::path real_done = f.lp.root() / "done-real";
    fs::rename(f.lp.done("n1"), real_done);
    fs::create_directory_symlink(f.outside, f.lp.done("n1"));
    REQUIRE(f.logged_link(f.lp.done("n1")));
    write_text(gate, "");
    // The task has ended (its supervisor wrote the exit status) and the runner has been round
    // since: it had the result to write and did not write it through the link.
    REQUIRE(wait_until([&] { return fs::exists(f.lp.logs("n1") / (slow + ".exit")); }, 30s));
    REQUIRE(f.looped(2));
    CHECK(f.outside_empty());
    CHECK(fs::exists(f.lp.claimed_task("n1", slow)));
    fs::remove(f.lp.done("n1"));
    fs::rename(real_done, f.lp.done("n1"));
    INFO(f.log());
    REQUIRE(wait_until([&] { return f.result("n1", slow).has_value(); }, 60s));
    CHECK(f.outside_empty());
  }
  SECTION("logs/ and hb/ replaced: no claim, no heartbeat outside") {
    fs::path real_logs = f.lp.root() / "logs-real";
    fs::rename(f.lp.logs("n1"), real_logs);
    fs::create_directory_symlink(f.outside, f.lp.logs("n1"));
    fs::path real_hb = f.lp.root() / "hb-real";
    fs::rename(f.lp.hb_dir(), real_hb);
    fs::create_directory_symlink(f.outside, f.lp.hb_dir());
    // Submitted once the runner has seen both links: from then on it claims nothing.
    REQUIRE(f.logged_link(f.lp.logs("n1")));
    REQUIRE(f.logged_link(f.lp.hb_dir()));
    std::string next = f.submit("-- /bin/echo next");
    std::this_thread::sleep_for(1s);  // room to misbehave; the proof is `claimed` below
    CHECK(fs::exists(f.lp.inbox_task("_any", next)));
    CHECK(f.outside_empty());
    double repaired = unix_now();
    fs::remove(f.lp.logs("n1"));
    fs::rename(real_logs, f.lp.logs("n1"));
    fs::remove(f.lp.hb_dir());
    fs::rename(real_hb, f.lp.hb_dir());
    REQUIRE(wait_until([&] { return f.result("n1", next).has_value(); }, 60s));
    CHECK(f.outside_empty());
    // Claimed only after the repair: never while its logs/ pointed outside.
    REQUIRE(f.result("n1", next)->claimed.has_value());
    CHECK(*f.result("n1", next)->claimed >= repaired - 0.01);
  }
  SECTION("control/ replaced: files outside are neither read as commands nor deleted") {
    fs::path real_control = f.lp.root() / "control-real";
    fs::rename(f.lp.control("n1"), real_control);
    fs::create_directory_symlink(f.outside, f.lp.control("n1"));
    write_text(f.outside / "pause.json", "{\"ts\": 1e10}");
    REQUIRE(f.logged_link(f.lp.control("n1")));
    REQUIRE(f.looped(2));
    CHECK(fs::exists(f.outside / "pause.json"));
    std::string after = f.submit("-- /bin/echo after");
    REQUIRE(wait_until([&] { return f.result("n1", after).has_value(); }, 60s));  // not paused
    CHECK(fs::exists(f.outside / "pause.json"));
  }
}

TEST_CASE("a result or log file replaced by a symlink is never written through", "[faults]") {
  fault_lease f;
  f.start();
  write_text(f.outside / "victim", "precious\n");
  // The next task ids are predictable: plant symlinks at its result and log paths first.
  std::string a = f.submit("--node n9 --force -- /bin/true");  // not run here: only takes an id
  std::string next = format_task_id(*task_seq(a) + 1);
  std::string after = format_task_id(*task_seq(a) + 2);
  ensure_dir(f.lp.done("n1"));
  ensure_dir(f.lp.logs("n1"));
  fs::create_symlink(f.outside / "victim", f.lp.result("n1", next));
  fs::create_symlink(f.outside / "victim", f.lp.stdout_log("n1", after));
  REQUIRE(f.submit("-- /bin/echo overwritten?") == next);
  REQUIRE(f.submit("-- /bin/echo overwritten?") == after);
  INFO(f.log());
  REQUIRE(wait_until([&] { return f.result("n1", next).has_value(); }, 60s));
  REQUIRE(wait_until([&] { return f.result("n1", after).has_value(); }, 60s));
  CHECK(read_text(f.outside / "victim") == "precious\n");
  CHECK_FALSE(fs::is_symlink(f.lp.result("n1", next)));  // replaced by the real result
  auto r = *f.result("n1", after);
  CHECK(r.state == task_state::failed);
  CHECK_THAT(r.reason.value_or(""), Catch::Contains("spawn_failed"));
}
