#include <leaseq/slurm/leases.hpp>

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

TEST_CASE("fresh runner heartbeats show a lease Slurm still calls PENDING as RUNNING, inferred",
          "[slurm][leases]") {
  test_support::temp_dir tmp;
  home_paths home(tmp.path());
  manual_clock clock;
  ui_config ui;
  ui.hb_stale_s = 60;
  register_lease(home, {"700", "slurm", std::nullopt, 1, json::object()});
  register_lease(home, {"701", "slurm", std::nullopt, 2, json::object()});
  register_lease(home, {"702", "slurm", std::nullopt, 3, json::object()});
  write_hb(home, "700", "n1", clock.now() - 1);
  write_hb(home, "700", "n2", clock.now() - 2);
  write_hb(home, "700", "n3", clock.now() - 500);  // stale: no evidence
  write_hb(home, "702", "n1", clock.now() - 1);
  int calls = 0;
  // The cache as it was at submit: both still PENDING; 702 already ended.
  fake_squeue sq{
      "700|PENDING|None|1:00:00|1:00:00|3||N/A|leaseq\n"
      "701|PENDING|Priority|1:00:00|1:00:00|1||N/A|leaseq\n"
      "702|CANCELLED|None|INVALID|1:00:00|1|n1|N/A|leaseq\n",
      &calls};
  lease_listing l = list_leases(home, ui, {}, clock, sq);
  REQUIRE(l.rows.size() == 3);
  CHECK(l.rows[0].state == "RUNNING");
  CHECK(l.rows[0].state_inferred == "heartbeats");
  CHECK(l.rows[0].reason == "inferred from 2 fresh runner heartbeat(s); Slurm said PENDING");
  CHECK(l.rows[1].state == "PENDING");  // no heartbeat: Slurm's word stands
  CHECK(l.rows[1].state_inferred.empty());
  CHECK(l.rows[2].state == "CANCELLED");  // an ended job stays ended, heartbeat or not
  json j = l.rows[0];
  CHECK(j["state"] == "RUNNING");
  CHECK(j["state_inferred"] == "heartbeats");
  CHECK(json(l.rows[1])["state_inferred"].is_null());

  // Once the heartbeats are old, Slurm's word is all there is.
  clock.advance(600);
  lease_row row;
  row.id = "700";
  row.kind = "slurm";
  row.state = "PENDING";
  CHECK_FALSE(reconcile_with_heartbeats(row, lease_paths(home, "700"), clock.now(), 60));
  CHECK(row.state == "PENDING");
  // Only Slurm rows: a local lease has its own rule (local_lease_state).
  row.kind = "local";
  CHECK_FALSE(reconcile_with_heartbeats(row, lease_paths(home, "700"), clock.now() - 600, 60));
  row.kind = "slurm";
  CHECK(reconcile_with_heartbeats(row, lease_paths(home, "700"), clock.now() - 600, 60));
}

namespace {

// A scripted sbatch/scancel that records its argv.
struct fake_sbatch {
  command_output answer;
  std::vector<std::vector<std::string>>* calls;
  command_output operator()(const std::vector<std::string>& argv, const command_options&) const {
    calls->push_back(argv);
    return answer;
  }
};

command_output exited(int rc, std::string out, std::string err = "") {
  command_output r;
  r.exit_code = rc;
  r.out = std::move(out);
  r.err = std::move(err);
  if (rc) r.error = "sbatch: exit code " + std::to_string(rc);
  return r;
}

}  // namespace

TEST_CASE("lease create: a successful submit registers the lease", "[slurm][leases]") {
  test_support::temp_dir tmp;
  home_paths home(tmp.path());
  lease_request r;
  r.name = "exp";
  r.nodes = 2;
  r.time = "30";
  lease_plan plan = plan_slurm_lease(home, r, "/opt/leaseq");
  CHECK(plan.script_path.parent_path() == tmp.path() / "keepers");
  CHECK(plan.sbatch.back() == plan.script_path.string());
  CHECK_THAT(plan.script, Catch::Contains("/opt/leaseq"));
  CHECK_FALSE(fs::exists(plan.script_path));  // planning writes nothing

  std::vector<std::vector<std::string>> calls;
  lease_submit s = submit_slurm_lease(home, r, plan, false, {},
                                      fake_sbatch{exited(0, "4711;cluster\n"), &calls});
  REQUIRE(s.job_id == "4711");
  REQUIRE(calls.size() == 1);
  CHECK(calls[0] == plan.sbatch);
  lease_paths lp(home, "4711");
  CHECK(test_support::read_text(lp.root() / "keeper.sh") == plan.script);
  CHECK_FALSE(fs::exists(plan.script_path));
  json rec = *read_json_tolerant(lp.lease_json()).value;
  CHECK(rec["kind"] == "slurm");
  CHECK(rec["name"] == "exp");
  CHECK(rec["nodes"] == 2);
  CHECK(rec["time"] == "30");
  CHECK(rec["sbatch"] == json(plan.sbatch));
  CHECK(rec["keeper"] == (lp.root() / "keeper.sh").string());
  lease_index idx = read_index(home).index;
  REQUIRE(idx.find("4711"));
  CHECK(idx.find("4711")->kind == "slurm");
  CHECK(idx.default_lease == "4711");
}

TEST_CASE("lease create: a refused or test-only submit leaves nothing", "[slurm][leases]") {
  test_support::temp_dir tmp;
  home_paths home(tmp.path());
  lease_request r;
  r.nodes = 1;
  r.time = "5";
  r.partition = "nosuch";
  std::vector<std::vector<std::string>> calls;
  lease_plan plan = plan_slurm_lease(home, r, "/opt/leaseq");
  lease_submit s = submit_slurm_lease(
      home, r, plan, false, {},
      fake_sbatch{exited(1, "", "sbatch: error: invalid partition specified: nosuch\n"), &calls});
  CHECK_FALSE(s.job_id);
  CHECK_THAT(s.sbatch.err, Catch::Contains("invalid partition specified"));
  CHECK_FALSE(fs::exists(home.index()));
  CHECK(detail::list_dir(home.runs().string()).names.empty());
  CHECK(detail::list_dir((tmp.path() / "keepers").string()).names.empty());

  lease_plan t = plan_slurm_lease(home, r, "/opt/leaseq", true);
  CHECK(t.sbatch[1] == "--test-only");
  s = submit_slurm_lease(
      home, r, t, true, {},
      fake_sbatch{exited(0, "", "sbatch: Job 9 to start at 2026-01-01\n"), &calls});
  CHECK_FALSE(s.job_id);
  CHECK(s.error.empty());
  CHECK_FALSE(fs::exists(home.index()));
  CHECK(detail::list_dir((tmp.path() / "keepers").string()).names.empty());

  // Output without a job id is an error, and registers nothing.
  s = submit_slurm_lease(home, r, plan_slurm_lease(home, r, "/opt/leaseq"), false, {},
                         fake_sbatch{exited(0, "Submitted batch job 5\n"), &calls});
  CHECK_FALSE(s.job_id);
  CHECK_THAT(s.error, Catch::Contains("no job id"));
  CHECK_FALSE(fs::exists(home.index()));

  r.nodes = 0;
  CHECK_THROWS_AS(plan_slurm_lease(home, r, "/opt/leaseq"), error);
}

TEST_CASE("lease release: scancel for Slurm leases only", "[slurm][leases]") {
  test_support::temp_dir tmp;
  home_paths home(tmp.path());
  register_lease(home, {"local:host", "local", std::nullopt, 1, json::object()});
  register_lease(home, {"700", "slurm", std::nullopt, 2, json::object()});
  std::vector<std::vector<std::string>> calls;
  fake_sbatch scancel{exited(0, ""), &calls};
  CHECK_THROWS_WITH(release_slurm_lease(home, "local:host", {}, scancel),
                    Catch::Contains("not a Slurm lease"));
  CHECK_THROWS_WITH(release_slurm_lease(home, "701", {}, scancel),
                    Catch::Contains("unknown lease"));
  CHECK_THROWS_AS(release_slurm_lease(home, "../x", {}, scancel), error);
  CHECK(calls.empty());
  CHECK(release_slurm_lease(home, "700", {}, scancel).ok());
  CHECK(calls == std::vector<std::vector<std::string>>{{"scancel", "700"}});
}

TEST_CASE("create_lease_json: one creator among racing processes, never a replace",
          "[leases][processes]") {
  test_support::temp_dir t;
  lease_paths lease(home_paths(t.path()), "local:racer");
  int failures = test_support::run_in_children(8, [&](int i) {
    if (create_lease_json(lease, json{{"id", "local:racer"}, {"created", i}}))
      test_support::write_text(t / ("creator" + std::to_string(i)), "");
    return 0;
  });
  REQUIRE(failures == 0);
  int creators = 0, creator = -1;
  for (int i = 0; i < 8; ++i)
    if (fs::exists(t / ("creator" + std::to_string(i)))) ++creators, creator = i;
  CHECK(creators == 1);
  json j = *read_json_tolerant(lease.lease_json()).value;
  CHECK(j["created"] == creator);
  // One that exists (whatever the caller believed) is left as it is.
  CHECK_FALSE(create_lease_json(lease, json{{"id", "local:racer"}, {"created", 99}}));
  CHECK((*read_json_tolerant(lease.lease_json()).value)["created"] == creator);
}
