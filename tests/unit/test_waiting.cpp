#include <leaseq/waiting.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace leaseq;

namespace {

constexpr double now = 10000;

task_view pending(const std::string& lane_node, int gpus = 0) {
  task_view v;
  v.id = "T001";
  v.seq = 1;
  v.state = task_state::pending;
  v.node = lane_node;
  auto spec = std::make_shared<task_spec>();
  spec->id = v.id;
  spec->argv = {"sleep", "1"};
  spec->gpus = gpus;
  if (!lane_node.empty()) spec->node = lane_node;
  v.spec = spec;
  return v;
}

// A runner as the store shows it: `health` decides, the heartbeat carries gpus and paused.
node_view runner_node(const std::string& name, std::int64_t gpus,
                      node_health health = node_health::ok, bool paused = false) {
  node_view n;
  n.name = name;
  heartbeat hb;
  hb.node = name;
  hb.ts = health == node_health::stale ? now - 600 : now - 1;
  hb.gpus = gpus;
  hb.paused = paused;
  hb.stopped = health == node_health::down;
  n.hb = hb;
  n.health = health;
  n.paused = paused;
  return n;
}

snapshot with(std::vector<node_view> nodes) {
  snapshot s;
  s.taken_at = now;
  std::sort(nodes.begin(), nodes.end(),
            [](const node_view& a, const node_view& b) { return a.name < b.name; });
  s.nodes = std::move(nodes);
  return s;
}

heartbeat hb_of(const std::string& node, std::int64_t gpus, double age = 1, bool stopped = false) {
  heartbeat hb;
  hb.node = node;
  hb.ts = now - age;
  hb.gpus = gpus;
  hb.stopped = stopped;
  return hb;
}

const auto local = lease_condition::local();

}  // namespace

TEST_CASE("waiting: a task any runner can take has no reason", "[waiting]") {
  auto s = with({runner_node("a", 0), runner_node("b", 2)});
  CHECK_FALSE(waiting_reason(pending(""), s, local));
  CHECK_FALSE(waiting_reason(pending("", 2), s, local));
  CHECK_FALSE(waiting_reason(pending("a"), s, local));
  CHECK_FALSE(waiting_reason(pending("b", 2), s, local));
  // Only PENDING tasks wait.
  task_view t = pending("nosuchnode");
  t.state = task_state::running;
  CHECK_FALSE(waiting_reason(t, s, local));
}

TEST_CASE("waiting: more GPUs than any runner has", "[waiting]") {
  auto s = with({runner_node("a", 0), runner_node("b", 1)});
  CHECK(waiting_reason(pending("", 3), s, local) ==
        "needs 3 GPUs, the most any runner of this lease has is 1");
  CHECK(waiting_reason(pending("a", 1), s, local) == "needs 1 GPUs, node a has 0");
  // A stopped runner's GPUs do not count.
  auto down = with({runner_node("a", 0), runner_node("big", 8, node_health::down)});
  CHECK(waiting_reason(pending("", 2), down, local) ==
        "needs 2 GPUs, the most any runner of this lease has is 0");
}

TEST_CASE("waiting: a lane no runner serves", "[waiting]") {
  auto s = with({runner_node("a", 0)});
  CHECK(waiting_reason(pending("nosuchnode"), s, local) == "no runner serves lane nosuchnode");
  // Only a stopped runner: nobody serves it either.
  auto down = with({runner_node("a", 0), runner_node("b", 0, node_health::down)});
  CHECK(waiting_reason(pending("b"), down, local) == "no runner serves lane b");
  // A local lease whose runner never started, or stopped.
  CHECK(waiting_reason(pending(""), with({}), local) == "no runner serves this lease");
  CHECK(waiting_reason(pending(""), with({runner_node("a", 0, node_health::down)}), local) ==
        "no runner serves this lease");
  CHECK(waiting_reason(pending("a"), with({}), local) == "no runner serves lane a");
}

TEST_CASE("waiting: paused runners", "[waiting]") {
  auto one = with({runner_node("nodeA", 0, node_health::ok, true)});
  CHECK(waiting_reason(pending("nodeA"), one, local) == "the runner of nodeA is paused");
  CHECK(waiting_reason(pending(""), one, local) == "the runner of nodeA is paused");
  auto all = with(
      {runner_node("a", 0, node_health::ok, true), runner_node("b", 0, node_health::ok, true)});
  CHECK(waiting_reason(pending(""), all, local) == "every runner of this lease is paused");
  // One runner still claims: the task is only queued.
  auto some = with({runner_node("a", 0, node_health::ok, true), runner_node("b", 0)});
  CHECK_FALSE(waiting_reason(pending(""), some, local));
  // The only runners with the GPUs are paused.
  auto gpu = with({runner_node("a", 0), runner_node("b", 4, node_health::ok, true),
                   runner_node("c", 4, node_health::ok, true)});
  CHECK(waiting_reason(pending("", 2), gpu, local) == "every runner with 2 GPUs or more is paused");
}

TEST_CASE("waiting: runners whose heartbeat is STALE", "[waiting]") {
  auto s = with({runner_node("a", 0, node_health::stale)});
  CHECK(waiting_reason(pending("a"), s, local) ==
        "the runner of a is not responding (heartbeat STALE)");
  CHECK(waiting_reason(pending(""), s, local) ==
        "the runner of a is not responding (heartbeat STALE)");
  auto mixed =
      with({runner_node("a", 0, node_health::stale), runner_node("b", 0, node_health::ok, true)});
  CHECK(waiting_reason(pending(""), mixed, local) ==
        "every runner of this lease is paused or not responding (heartbeat STALE)");
  // A STALE runner's GPUs still count: it may only be late on a lagging filesystem.
  auto big = with({runner_node("a", 0), runner_node("b", 4, node_health::stale)});
  CHECK(waiting_reason(pending("", 4), big, local) ==
        "the runner of b is not responding (heartbeat STALE)");
}

TEST_CASE("waiting: an ended lease says so first", "[waiting]") {
  auto s = with({runner_node("a", 8)});
  for (const char* st : {"CANCELLED", "TIMEOUT", "COMPLETED", "FAILED"}) {
    auto l = lease_condition::slurm(st, 1);
    CHECK(waiting_reason(pending(""), s, l) == "lease ended (" + std::string(st) + ")");
    CHECK(waiting_reason(pending("nosuchnode", 9), s, l) ==
          "lease ended (" + std::string(st) + ")");
  }
  CHECK_FALSE(waiting_reason(pending(""), s, lease_condition::slurm("RUNNING", 1)));
}

TEST_CASE("waiting: a Slurm lease whose runners are still to come", "[waiting]") {
  // The job waits in Slurm's queue: no runner has ever written a heartbeat. They will come.
  auto none = with({});
  CHECK_FALSE(waiting_reason(pending(""), none, lease_condition::slurm("PENDING", 2)));
  CHECK_FALSE(waiting_reason(pending("", 8), none, lease_condition::slurm("PENDING", 2)));
  CHECK_FALSE(waiting_reason(pending("gpu7"), none, lease_condition::slurm("PENDING", 2)));
  CHECK_FALSE(waiting_reason(pending(""), none, lease_condition::slurm("", std::nullopt)));
  // One of two runners is up: the other may be gpu7, and may have the GPUs.
  auto half = with({runner_node("gpu1", 1)});
  CHECK_FALSE(waiting_reason(pending("gpu7"), half, lease_condition::slurm("RUNNING", 2)));
  CHECK_FALSE(waiting_reason(pending("", 4), half, lease_condition::slurm("RUNNING", 2)));
  // Both are up: now the lease's runners are known.
  auto both = with({runner_node("gpu1", 1), runner_node("gpu2", 1)});
  CHECK(waiting_reason(pending("gpu7"), both, lease_condition::slurm("RUNNING", 2)) ==
        "no runner serves lane gpu7");
  CHECK(waiting_reason(pending("", 4), both, lease_condition::slurm("RUNNING", 2)) ==
        "needs 4 GPUs, the most any runner of this lease has is 1");
  // The job ended before any runner came.
  CHECK(waiting_reason(pending(""), none, lease_condition::slurm("TIMEOUT", 2)) ==
        "lease ended (TIMEOUT)");
}

TEST_CASE("waiting: a lease of unknown kind gets no reason until a runner showed up", "[waiting]") {
  CHECK_FALSE(waiting_reason(pending(""), with({})));
  CHECK_FALSE(waiting_reason(pending("x"), with({})));
  CHECK(waiting_reason(pending("x"), with({runner_node("a", 0)})) == "no runner serves lane x");
}

TEST_CASE("submit_refusal: only what is certainly impossible", "[waiting]") {
  std::vector<heartbeat> hbs = {hb_of("a", 0), hb_of("b", 2)};
  CHECK_FALSE(submit_refusal(2, std::nullopt, hbs, local, now, 60));
  CHECK(submit_refusal(3, std::nullopt, hbs, local, now, 60) ==
        "needs 3 GPUs, the most any runner of this lease has is 2");
  CHECK(submit_refusal(1, std::string("a"), hbs, local, now, 60) == "needs 1 GPUs, node a has 0");
  CHECK_FALSE(submit_refusal(2, std::string("b"), hbs, local, now, 60));
  CHECK(submit_refusal(0, std::string("nosuchnode"), hbs, local, now, 60) ==
        "no runner of this lease serves node nosuchnode (its runners: a, b)");

  // No fresh heartbeat: the runners are unknown, anything may come.
  std::vector<heartbeat> stale = {hb_of("a", 0, 600)};
  CHECK_FALSE(submit_refusal(8, std::nullopt, stale, local, now, 60));
  CHECK_FALSE(submit_refusal(0, std::string("x"), stale, local, now, 60));
  CHECK_FALSE(submit_refusal(8, std::nullopt, {}, local, now, 60));
  // Stale or stopped runners do not count towards the GPUs, but a node that had a runner
  // may get it back: not refused.
  std::vector<heartbeat> mixed = {hb_of("a", 0), hb_of("big", 8, 600), hb_of("old", 8, 1, true)};
  CHECK(submit_refusal(2, std::nullopt, mixed, local, now, 60) ==
        "needs 2 GPUs, the most any runner of this lease has is 0");
  CHECK_FALSE(submit_refusal(2, std::string("big"), mixed, local, now, 60));
  CHECK_FALSE(submit_refusal(2, std::string("old"), mixed, local, now, 60));

  // A Slurm lease: refused only once all its runners are in sight.
  CHECK_FALSE(submit_refusal(3, std::nullopt, hbs, lease_condition::slurm("RUNNING", 4), now, 60));
  CHECK_FALSE(submit_refusal(3, std::nullopt, hbs, lease_condition::slurm("RUNNING"), now, 60));
  CHECK(submit_refusal(3, std::nullopt, hbs, lease_condition::slurm("RUNNING", 2), now, 60));
  // An ended lease refuses everything, runners or not.
  CHECK(submit_refusal(0, std::nullopt, {}, lease_condition::slurm("CANCELLED", 2), now, 60) ==
        "the lease ended (CANCELLED): no runner will come");
}

namespace {

task_view other(const std::string& id, task_state state) {
  task_view v;
  v.id = id;
  v.seq = *task_seq(id);
  v.state = state;
  return v;
}

// A pending T009 waiting for `after`, in a snapshot that holds `others` (ids below T009).
std::optional<std::string> reason_after(std::vector<std::string> after,
                                        std::vector<task_view> others) {
  auto s = with({runner_node("a", 0)});
  task_view t = pending("");
  t.id = "T009";
  t.seq = 9;
  auto spec = std::make_shared<task_spec>(*t.spec);
  spec->id = t.id;
  spec->after = std::move(after);
  t.spec = spec;
  others.push_back(t);
  s.task_table = std::make_shared<const std::vector<task_view>>(others);
  return waiting_reason(s.tasks().back(), s, local);
}

}  // namespace

TEST_CASE("waiting: a task says which dependencies it waits for", "[waiting]") {
  CHECK(reason_after({"T002"}, {other("T002", task_state::running)}) == "after T002 (RUNNING)");
  CHECK(reason_after({"T001", "T002", "T003"},
                     {other("T001", task_state::finished), other("T002", task_state::pending)}) ==
        "after T002 (PENDING), T003 (not visible)");
  CHECK_FALSE(reason_after({"T001"}, {other("T001", task_state::finished)}));
  CHECK(reason_after({"T001", "T002"},
                     {other("T001", task_state::running), other("T002", task_state::failed)}) ==
        "dependency T002 ended FAILED: a runner will cancel it");
}

TEST_CASE("waiting: a runner problem is named before the dependencies", "[waiting]") {
  auto s = with({runner_node("a", 0, node_health::ok, true)});
  task_view t = pending("");
  auto spec = std::make_shared<task_spec>(*t.spec);
  spec->after = {"T000"};
  t.spec = spec;
  CHECK(waiting_reason(t, s, local) == "the runner of a is paused");
}

TEST_CASE("waiting: a retried task says when its next attempt starts", "[waiting]") {
  auto s = with({runner_node("a", 0)});
  task_view t = pending("");
  auto spec = std::make_shared<task_spec>(*t.spec);
  spec->retries = 2;
  spec->attempts.push_back({"a-1-1", "a", 3, std::nullopt, std::nullopt, 1.0, 2.0});
  spec->not_before = now + 30;
  t.spec = spec;
  CHECK(waiting_reason(t, s, local) == "attempt 2/3 starts in 30 s (retry delay)");
  spec->not_before = now - 1;
  CHECK_FALSE(waiting_reason(t, s, local));
}

TEST_CASE("waiting: attempt_text counts attempts only for tasks with retries", "[waiting]") {
  task_view t = pending("");
  CHECK_FALSE(attempt_text(t));
  auto spec = std::make_shared<task_spec>(*t.spec);
  spec->retries = 2;
  t.spec = spec;
  CHECK(attempt_text(t) == "attempt 1/3");
  spec->attempts.push_back({"a-1-1", "a", 3, std::nullopt, std::nullopt, 1.0, 2.0});
  CHECK(attempt_text(t) == "attempt 2/3");
  auto r = std::make_shared<task_result>();
  r->task = *spec;
  r->task.attempts.push_back({"a-1-2", "a", 0, std::nullopt, std::nullopt, 3.0, 4.0});
  t.result = r;
  t.state = task_state::finished;
  CHECK(attempt_text(t) == "attempt 2/3");
}
