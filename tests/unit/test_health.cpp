#include <leaseq/health.hpp>

#include <catch2/catch.hpp>

using namespace leaseq;

TEST_CASE("node health from heartbeat age", "[health]") {
  heartbeat hb;
  hb.node = "nodeA";
  hb.ts = 1000;
  CHECK(compute_health(std::nullopt, 1000, 60) == node_health::unknown);
  CHECK(compute_health(hb, 1000, 60) == node_health::ok);
  CHECK(compute_health(hb, 1060, 60) == node_health::ok);
  CHECK(compute_health(hb, 1060.5, 60) == node_health::stale);
  hb.stopped = true;
  CHECK(compute_health(hb, 1001, 60) == node_health::down);
}

TEST_CASE("a heartbeat from the future never looks fresher than now", "[health]") {
  heartbeat hb;
  hb.node = "nodeA";
  hb.ts = 5000;  // the writer's clock runs ahead
  CHECK(heartbeat_age(hb, 1000) == 0);
  CHECK(compute_health(hb, 1000, 60) == node_health::ok);
  hb.ts = 1000;
  CHECK(heartbeat_age(hb, 1095) == Approx(95));
}
