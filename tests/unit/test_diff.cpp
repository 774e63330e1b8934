#include <leaseq/diff.hpp>
#include <leaseq/snapshot.hpp>

#include <memory>
#include <vector>

#include <catch2/catch.hpp>

using namespace leaseq;

namespace {

task_view task(std::int64_t seq, task_state s) {
  task_view v;
  v.id = format_task_id(seq);
  v.seq = seq;
  v.state = s;
  return v;
}

node_view node(const std::string& name, node_health h) {
  node_view n;
  n.name = name;
  n.health = h;
  return n;
}

snapshot snap(std::vector<task_view> tasks, std::vector<node_view> nodes) {
  snapshot s;
  s.task_table = std::make_shared<const std::vector<task_view>>(std::move(tasks));
  s.nodes = std::move(nodes);
  return s;
}

}  // namespace

TEST_CASE("diff of identical snapshots is empty", "[diff]") {
  auto a = snap({task(1, task_state::pending)}, {node("nodeA", node_health::ok)});
  CHECK(diff(a, a).empty());
  CHECK(diff(snapshot{}, snapshot{}).empty());
}

TEST_CASE("diff reports tasks added, changed and removed in seq order", "[diff]") {
  auto a = snap(
      {task(1, task_state::pending), task(2, task_state::running), task(4, task_state::running)},
      {});
  auto b = snap({task(2, task_state::finished), task(3, task_state::pending),
                 task(4, task_state::running), task(10, task_state::pending)},
                {});
  auto ev = diff(a, b);
  REQUIRE(ev.size() == 4);
  CHECK(ev[0].kind == event_kind::task_removed);
  CHECK(ev[0].name == "T001");
  CHECK(ev[0].from_state == task_state::pending);
  CHECK(ev[1].kind == event_kind::task_state_changed);
  CHECK(ev[1].name == "T002");
  CHECK(ev[1].from_state == task_state::running);
  CHECK(ev[1].to_state == task_state::finished);
  CHECK(ev[2].kind == event_kind::task_added);
  CHECK(ev[2].name == "T003");
  CHECK(ev[2].to_state == task_state::pending);
  CHECK(ev[3].kind == event_kind::task_added);
  CHECK(ev[3].name == "T010");
}

TEST_CASE("diff reports nodes appearing, changing health and going away", "[diff]") {
  auto a = snap({}, {node("nodeA", node_health::ok), node("nodeB", node_health::ok)});
  auto b = snap({}, {node("nodeB", node_health::stale), node("nodeC", node_health::unknown)});
  auto ev = diff(a, b);
  REQUIRE(ev.size() == 3);
  CHECK(ev[0].kind == event_kind::node_removed);
  CHECK(ev[0].name == "nodeA");
  CHECK(ev[1].kind == event_kind::node_health_changed);
  CHECK(ev[1].from_health == node_health::ok);
  CHECK(ev[1].to_health == node_health::stale);
  CHECK(ev[2].kind == event_kind::node_added);
  CHECK(ev[2].name == "nodeC");
  CHECK(to_string(event_kind::node_added) == "node_added");
}

TEST_CASE("diff: LOST? and its recovery are state changes", "[diff]") {
  auto a = snap({task(3, task_state::running)}, {});
  auto b = snap({task(3, task_state::lost_maybe)}, {});
  auto c = snap({task(3, task_state::finished)}, {});
  auto e1 = diff(a, b);
  REQUIRE(e1.size() == 1);
  CHECK(e1[0].to_state == task_state::lost_maybe);
  auto e2 = diff(b, c);
  REQUIRE(e2.size() == 1);
  CHECK(e2[0].from_state == task_state::lost_maybe);
  CHECK(e2[0].to_state == task_state::finished);
}
