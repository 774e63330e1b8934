#include <leaseq/leases.hpp>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;

namespace {

void write_hb(const home_paths& home, const std::string& lease, const std::string& node, double ts,
              bool stopped = false) {
  heartbeat hb;
  hb.node = node;
  hb.host = node;
  hb.pid = 42;
  hb.ts = ts;
  hb.gpus = 2;
  hb.stopped = stopped;
  lease_paths lp(home, lease);
  ensure_dir(lp.hb_dir());
  write_json_atomic(lp.heartbeat(node), json(hb));
}

struct fake_squeue {
  std::string out;
  int* calls;
  command_output operator()(const std::vector<std::string>& argv, const command_options&) const {
    command_output r;
    if (argv[0] == "squeue") {
      ++*calls;
      r.exit_code = 0;
      r.out = out;
    } else {
      r.exit_code = 1;
      r.err = "slurm_load_jobs error: Invalid job id specified\n";
    }
    return r;
  }
};

}  // namespace

TEST_CASE("lease list: index, lease.json and state", "[slurm][leases]") {
  test_support::temp_dir tmp;
  home_paths home(tmp.path());
  manual_clock clock;
  ui_config ui;
  ui.hb_stale_s = 60;
  register_lease(home, {"local:host", "local", std::nullopt, 1, json::object()});
  register_lease(home, {"500", "slurm", std::string("train"), 2, json::object()});
  register_lease(home, {"501", "slurm", std::nullopt, 3, json::object()});
  lease_record rec;
  rec.id = "500";
  rec.kind = "slurm";
  rec.name = "train";
  rec.nodes = 3;
  rec.gpus_per_node = 4;
  ensure_dir(home.lease_dir("500"));
  write_json_atomic(home.lease_dir("500") / "lease.json", json(rec));
  write_hb(home, "local:host", "host", clock.now() - 5);

  int calls = 0;
  fake_squeue sq{
      "500|RUNNING|None|1:02:03|2:00:00|3|n[1-3]|N/A|leaseq-train\n"
      "501|PENDING|Resources|2:00:00|2:00:00|2||N/A|leaseq\n",
      &calls};
  lease_listing l = list_leases(home, ui, {}, clock, sq);
  CHECK(calls == 1);
  REQUIRE(l.rows.size() == 3);
  CHECK(l.rows[0].id == "local:host");
  CHECK(l.rows[0].state == "RUNNING");
  CHECK(l.rows[0].is_default);
  CHECK(l.rows[0].gpus_per_node == 2);
  CHECK(l.rows[1].state == "RUNNING");
  CHECK(l.rows[1].time_left == "1:02:03");
  CHECK(l.rows[1].nodes == 3);
  CHECK(l.rows[1].gpus_per_node == 4);
  CHECK(l.rows[1].name == "train");
  CHECK_FALSE(l.rows[1].is_default);
  CHECK(l.rows[2].state == "PENDING");
  CHECK(l.rows[2].reason == "Resources");
  CHECK(l.rows[2].time_left == "-");
  CHECK(l.rows[2].nodes == 2);  // from squeue when lease.json is missing

  json j = l.rows[2];
  CHECK(j["id"] == "501");
  CHECK(j["kind"] == "slurm");
  CHECK(j["state"] == "PENDING");
  CHECK(j["reason"] == "Resources");
  CHECK(j["default"] == false);
  CHECK(j["gpus_per_node"].is_null());
}

TEST_CASE("the local lease follows its runner's heartbeat", "[slurm][leases]") {
  test_support::temp_dir tmp;
  home_paths home(tmp.path());
  manual_clock clock;
  ui_config ui;
  ui.hb_stale_s = 10;
  register_lease(home, {"local:host", "local", std::nullopt, 1, json::object()});
  int calls = 0;
  fake_squeue sq{"", &calls};
  CHECK(list_leases(home, ui, {}, clock, sq).rows.at(0).state == "STOPPED");
  write_hb(home, "local:host", "host", clock.now() - 30);
  auto row = list_leases(home, ui, {}, clock, sq).rows.at(0);
  CHECK(row.state == "STALE");
  CHECK_THAT(row.reason, Catch::Contains("30s old"));
  write_hb(home, "local:host", "host", clock.now() - 1);
  CHECK(list_leases(home, ui, {}, clock, sq).rows.at(0).state == "RUNNING");
  write_hb(home, "local:host", "host", clock.now(), true);
  CHECK(list_leases(home, ui, {}, clock, sq).rows.at(0).state == "STOPPED");
  CHECK(calls == 0);  // no Slurm lease, no squeue
}

TEST_CASE("a forgotten Slurm lease shows its last state, marked stale", "[slurm][leases]") {
  test_support::temp_dir tmp;
  home_paths home(tmp.path());
  manual_clock clock;
  ui_config ui;
  register_lease(home, {"600", "slurm", std::nullopt, 1, json::object()});
  int calls = 0;
  fake_squeue done{"600|TIMEOUT|TimeLimit|INVALID|1:00|1|n1|N/A|leaseq\n", &calls};
  CHECK(list_leases(home, ui, {}, clock, done).rows.at(0).state == "TIMEOUT");
  clock.advance(600);
  fake_squeue gone{"", &calls};
  auto row = list_leases(home, ui, {}, clock, gone).rows.at(0);
  CHECK(row.state == "TIMEOUT");
  CHECK(row.stale);
  CHECK_THAT(row.reason, Catch::Contains("TimeLimit"));
  CHECK_THAT(row.reason, Catch::Contains("last seen 10m ago"));
}
