#include <leaseq/task_tracker.hpp>

#include <catch2/catch.hpp>

#include "lease_tree.hpp"

using leaseq::task_state;
using leaseq::task_tracker;

TEST_CASE("task_tracker: a task followed from its lane to its claim to its result",
          "[task_tracker]") {
  test_support::lease_tree t;
  task_tracker tr(t.paths, "T003", 30);
  tr.poll(1000);
  CHECK_FALSE(tr.found());
  CHECK(tr.view().state == task_state::pending);

  t.pending(3, "_any");
  tr.poll(1001);
  REQUIRE(tr.found());
  CHECK(tr.view().state == task_state::pending);
  CHECK(tr.view().node.empty());  // the shared lane: no node yet
  CHECK(tr.view().command() == "echo T003");

  t.claim(3, "_any", "nodeA");
  tr.poll(1002);
  CHECK(tr.view().state == task_state::running);
  CHECK(tr.view().node == "nodeA");
  CHECK_FALSE(tr.ended());

  t.finish(3, "nodeA", "FAILED", 4);
  tr.poll(1003);
  CHECK(tr.ended());
  CHECK(tr.view().state == task_state::failed);
  CHECK(tr.view().exit_code() == 4);
  CHECK(tr.view().node == "nodeA");
  // Ended: nothing changes any more, whatever the tree does.
  leaseq::fs::remove(t.paths.result("nodeA", "T003"));
  tr.poll(1004);
  CHECK(tr.view().state == task_state::failed);
}

TEST_CASE("task_tracker: pending in a node's lane has that node", "[task_tracker]") {
  test_support::lease_tree t;
  t.pending(5, "nodeB");
  task_tracker tr(t.paths, "T005", 30);
  tr.poll(1000);
  CHECK(tr.view().state == task_state::pending);
  CHECK(tr.view().node == "nodeB");
  // Cancelled by its runner before a claim: the result is in that runner's done/.
  t.done(5, "nodeB", "CANCELLED", 0);
  leaseq::fs::remove(t.paths.inbox_task("nodeB", "T005"));
  tr.poll(1001);
  CHECK(tr.view().state == task_state::cancelled);
}

TEST_CASE("task_tracker: PENDING then nowhere is gone after lost_confirm_s, never LOST",
          "[task_tracker]") {
  test_support::lease_tree t;
  t.pending(7, "_any");
  task_tracker tr(t.paths, "T007", 30);
  tr.poll(1000);
  REQUIRE(tr.view().state == task_state::pending);
  leaseq::fs::remove(t.paths.inbox_task("_any", "T007"));
  tr.poll(1010);  // a claim's rename may not be visible yet
  CHECK_FALSE(tr.gone());
  tr.poll(1039);
  CHECK_FALSE(tr.gone());
  tr.poll(1040);
  CHECK(tr.gone());
  CHECK(tr.view().state == task_state::pending);  // it never ran: not LOST
  CHECK_FALSE(tr.ended());
  // Its file shows up again (a lagging listing): pending, not gone.
  t.pending(7, "_any");
  tr.poll(1041);
  CHECK_FALSE(tr.gone());
  // Never seen at all: unknown, not gone.
  task_tracker never(t.paths, "T099", 0);
  never.poll(1000);
  never.poll(2000);
  CHECK_FALSE(never.gone());
}

TEST_CASE("task_tracker: RUNNING then in neither claimed/ nor done/ is LOST after lost_confirm_s",
          "[task_tracker]") {
  test_support::lease_tree t;
  t.claimed(6, "nodeA");
  task_tracker tr(t.paths, "T006", 30);
  tr.poll(1000);
  REQUIRE(tr.view().state == task_state::running);
  leaseq::fs::remove(t.paths.claimed_task("nodeA", "T006"));
  tr.poll(1010);
  CHECK(tr.view().state == task_state::running);  // LOST? for now: a result may be on its way
  CHECK(tr.view().missing_since == 1010);
  tr.poll(1039);
  CHECK_FALSE(tr.ended());
  tr.poll(1040);
  CHECK(tr.view().state == task_state::lost);
  CHECK(tr.view().unknown_reason == "not in claimed/ or done/ for longer than ui.lost_confirm_s");
  CHECK(tr.ended());
}

TEST_CASE(
    "task_tracker: a result that shows up late wins over LOST?, and a task never seen "
    "RUNNING is never LOST",
    "[task_tracker]") {
  test_support::lease_tree t;
  t.claimed(7, "nodeA");
  task_tracker tr(t.paths, "T007", 30);
  tr.poll(1000);
  leaseq::fs::remove(t.paths.claimed_task("nodeA", "T007"));
  tr.poll(1001);
  t.done(7, "nodeA");
  tr.poll(1002);
  CHECK(tr.view().state == task_state::finished);
  CHECK_FALSE(tr.view().missing_since);

  task_tracker never(t.paths, "T008", 0);
  never.poll(1000);
  never.poll(2000);
  CHECK_FALSE(never.found());
  CHECK(never.view().state == task_state::pending);
}

TEST_CASE("task_tracker: a result that does not parse is looked at again", "[task_tracker]") {
  test_support::lease_tree t;
  t.claimed(9, "nodeA");
  task_tracker tr(t.paths, "T009", 0);
  tr.poll(1000);
  leaseq::ensure_dir(t.paths.done("nodeA"));
  test_support::write_text(t.paths.result("nodeA", "T009"), "{\"id\": ");
  leaseq::fs::remove(t.paths.claimed_task("nodeA", "T009"));
  tr.poll(1001);
  CHECK(tr.view().state == task_state::running);  // half-written, never LOST meanwhile
  t.done(9, "nodeA");
  tr.poll(1002);
  CHECK(tr.view().state == task_state::finished);
}
