#include <unistd.h>

#include <leaseq/engine/control.hpp>
#include <leaseq/engine/submit.hpp>

#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;

namespace {

void fake_heartbeat(const lease_paths& lease, const std::string& node) {
  ensure_dir(lease.hb_dir());
  heartbeat hb;
  hb.node = node;
  hb.ts = 1;
  write_json_atomic(lease.heartbeat(node), json(hb));
}

std::vector<std::string> control_files(const lease_paths& lease, const std::string& node) {
  return detail::list_dir(lease.control(node).string()).names;
}

}  // namespace

TEST_CASE("control: cancel file name and content", "[control]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  fs::path p = write_cancel(lease, "nodeA", "T014", 12.5);
  std::string name = p.filename().string();
  CHECK(name.rfind("cancel_T014_", 0) == 0);
  CHECK(name.size() == std::string("cancel_T014_.json").size() + 36);
  json j = *read_json_tolerant(p).value;
  CHECK(j["task"] == "T014");
  CHECK(j["ts"] == 12.5);
  CHECK(j["by"].get<std::string>().find('@') != std::string::npos);
  // Two cancels of the same task never overwrite each other.
  CHECK(write_cancel(lease, "nodeA", "T014") != p);
  CHECK_THROWS_AS(write_cancel(lease, "../x", "T014"), name_error);
  CHECK_THROWS_AS(write_cancel(lease, "nodeA", "T14"), name_error);

  control_batch b = read_control(lease, "nodeA");
  REQUIRE(b.cancels.size() == 2);
  CHECK(b.cancels[0].task == "T014");
  CHECK_FALSE(b.paused);
}

TEST_CASE("control: pause and resume, the newer wins", "[control]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  CHECK_FALSE(read_control(lease, "n").paused);  // missing dir: nothing
  write_pause(lease, "n", 10);
  CHECK(read_control(lease, "n").paused == true);
  write_resume(lease, "n", 11);
  control_batch b = read_control(lease, "n");
  CHECK(b.paused == false);
  CHECK(b.consumed.size() == 2);
  write_pause(lease, "n", 12);
  CHECK(read_control(lease, "n").paused == true);
  // Taken files that were never deleted (a runner died): the newest of each kind counts,
  // whatever order the directory lists them in.
  for (int i = 0; i < 20; ++i) {
    write_pause(lease, "n", 1 + i % 3);
    read_control(lease, "n");
  }
  CHECK(read_control(lease, "n").paused == true);  // pause 12 > resume 11
  write_resume(lease, "n", 13);
  CHECK(read_control(lease, "n").paused == false);
}

TEST_CASE("control: pause and resume from another process are never deleted unread",
          "[control][processes]") {
  // A client process writes pause/resume pairs as fast as it can and ends with one last
  // request; this process plays the runner (scan, apply, delete what it consumed). Whatever
  // the interleaving, the last request written is the state the runner ends in.
  temp_dir t;
  lease_paths lease(t / "lease");
  ensure_lease_dir(lease, lease.control("n"));
  for (int round = 0; round < 30; ++round) {
    const bool last_is_pause = round % 2 == 0;
    const int pairs = 5 + round * 3;
    pid_t client = ::fork();
    REQUIRE(client >= 0);
    if (client == 0) {
      int rc = 0;
      try {
        double ts = 1000.0 * round;
        for (int i = 0; i < pairs; ++i) {
          write_pause(lease, "n", ++ts);
          write_resume(lease, "n", ++ts);
        }
        if (last_is_pause)
          write_pause(lease, "n", ts + 1);
        else
          write_resume(lease, "n", ts + 1);
      } catch (...) {
        rc = 1;
      }
      ::_exit(rc);
    }
    bool paused = !last_is_pause;
    // A runner does other work between reading its requests and deleting them (it rewrites
    // its heartbeat): the pause below stands for that.
    auto apply = [&] {
      control_batch b = read_control(lease, "n");
      if (b.paused) paused = *b.paused;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      for (const auto& p : b.consumed) ::unlink(p.c_str());
    };
    int status = 0;
    while (::waitpid(client, &status, WNOHANG) == 0) apply();
    apply();
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    INFO("round " << round);
    CHECK(paused == last_is_pause);
    CHECK(detail::list_dir(lease.control("n").string(), true).names.empty());
  }
}

TEST_CASE("control: unreadable files are reported and left in place", "[control]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  test_support::write_text(lease.control("n") / "cancel_T001_x.json", "{\"task\": ");
  test_support::write_text(lease.control("n") / "cancel_T002_y.json", "{\"task\": \"../x\"}");
  test_support::write_text(lease.control("n") / ".cancel_T003_tmp.json", "{}");
  test_support::write_text(lease.control("n") / "notes.txt", "hello");
  control_batch b = read_control(lease, "n");
  CHECK(b.cancels.empty());
  CHECK(b.bad.size() == 2);
  CHECK(control_files(lease, "n").size() == 3);
}

TEST_CASE("control: cancel_task routes by where the task is", "[control]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  submit_request r;
  r.argv = {"true"};
  auto any = submit_task(lease, "1234", r).id;
  r.node = "b";
  auto lane = submit_task(lease, "1234", r).id;

  // _any with no heartbeat and no fallback: an error, nothing written.
  CHECK_THROWS_AS(cancel_task(lease, any), error);
  auto fb = cancel_task(lease, any, std::string("local1"));
  CHECK(fb.nodes == std::vector<std::string>{"local1"});

  fake_heartbeat(lease, "a");
  fake_heartbeat(lease, "b");
  auto c1 = cancel_task(lease, any);
  CHECK(c1.place == task_place::pending);
  CHECK(c1.nodes == std::vector<std::string>{"a", "b"});
  CHECK(control_files(lease, "a").size() == 1);
  CHECK(control_files(lease, "b").size() == 1);

  auto c2 = cancel_task(lease, lane);
  CHECK(c2.nodes == std::vector<std::string>{"b"});
  CHECK(control_files(lease, "a").size() == 1);
  CHECK(control_files(lease, "b").size() == 2);

  // Claimed on node a: only a hears it.
  ensure_dir(lease.claimed("a"));
  fs::rename(lease.inbox_task("_any", any), lease.claimed_task("a", any));
  auto c3 = cancel_task(lease, any);
  CHECK(c3.place == task_place::running);
  CHECK(c3.nodes == std::vector<std::string>{"a"});

  // Done: refused.
  json_outcome spec = read_json_tolerant(lease.claimed_task("a", any));
  json res = *spec.value;
  res["state"] = "FINISHED";
  ensure_dir(lease.done("a"));
  write_json_atomic(lease.result("a", any), res);
  CHECK_THROWS_WITH(cancel_task(lease, any), Catch::Contains("already ended (FINISHED)"));
  CHECK_THROWS_AS(cancel_task(lease, "T777"), error);
}

// Audit of issue 15: a control directory others could write let them pause the runner. Only the
// caller's own files are obeyed; another user's is reported (the runner logs it) and left.
TEST_CASE("control: a file owned by another user is reported, never obeyed", "[control]") {
  if (::geteuid() != 0) {
    WARN("needs root to hand a file to another user; skipped");
    return;
  }
  temp_dir t;
  lease_paths lease(t / "lease");
  fs::path p = write_pause(lease, "n", 10);
  write_cancel(lease, "n", "T001", 10);
  REQUIRE(::chown(p.c_str(), 65534, 65534) == 0);
  control_batch b = read_control(lease, "n");
  CHECK_FALSE(b.paused);
  CHECK(b.consumed.empty());
  CHECK(b.cancels.size() == 1);  // the caller's own file still counts
  REQUIRE(b.bad.size() == 1);
  CHECK(b.bad[0].first == p);
  CHECK(b.bad[0].second.find("not a file of yours") != std::string::npos);
  CHECK(fs::exists(p));
}
