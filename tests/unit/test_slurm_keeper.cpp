#include <leaseq/slurm/keeper.hpp>

#include <map>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;

TEST_CASE("sbatch argv for a lease", "[slurm][keeper]") {
  lease_request r;
  r.name = "train";
  r.nodes = 4;
  r.time = "2:00:00";
  r.partition = "gpu";
  r.qos = "high";
  r.account = "proj1";
  r.constraint = "a100&ib";
  r.reservation = "resv";
  r.gpus_per_node = 8;
  r.extra_args = {"--exclusive", "--mem=0"};
  auto a = sbatch_argv(r, "/h/keepers/k.sh", "/h");
  CHECK(a == std::vector<std::string>{
                 "sbatch", "--parsable", "--job-name=leaseq-train", "--nodes=4",
                 "--ntasks-per-node=1", "--time=2:00:00", "--partition=gpu", "--qos=high",
                 "--account=proj1", "--constraint=a100&ib", "--reservation=resv",
                 "--gpus-per-node=8", "--output=/h/keepers/slurm-%j.out", "--open-mode=append",
                 "--exclusive", "--mem=0", "/h/keepers/k.sh"});

  lease_request plain;
  plain.nodes = 1;
  plain.time = "30";
  auto b = sbatch_argv(plain, "/h/k.sh", "/h", true);
  CHECK(b[1] == "--test-only");
  CHECK(b[2] == "--job-name=leaseq");
  CHECK(std::find(b.begin(), b.end(), "--gpus-per-node=0") == b.end());
  for (const auto& x : b) CHECK(x.rfind("--partition", 0) != 0);
}

TEST_CASE("lease requests sbatch would misread are refused", "[slurm][keeper]") {
  lease_request r;
  r.nodes = 2;
  r.time = "10";
  CHECK_NOTHROW(validate(r));
  auto bad = [&](auto mutate) {
    lease_request x = r;
    mutate(x);
    CHECK_THROWS_AS(validate(x), error);
  };
  bad([](lease_request& x) { x.nodes = 0; });
  bad([](lease_request& x) { x.time = ""; });
  bad([](lease_request& x) { x.gpus_per_node = -1; });
  bad([](lease_request& x) { x.name = "a\nb"; });
  bad([](lease_request& x) { x.name = std::string(65, 'a'); });
  bad([](lease_request& x) { x.partition = ""; });
  bad([](lease_request& x) { x.extra_args = {"stray-word"}; });
  bad([](lease_request& x) { x.extra_args = {"--comment=\x1b[31m"}; });
}

TEST_CASE("the keeper runs one runner per node with fixed paths", "[slurm][keeper]") {
  std::string s = keeper_script("/opt/lease q/bin/leaseq", "/home/u/.leaseq");
  CHECK(s.rfind("#!/bin/bash\n", 0) == 0);
  CHECK_THAT(s, Catch::Contains("export LEASEQ_HOME=/home/u/.leaseq\n"));
  CHECK_THAT(s, Catch::Contains("srun --ntasks-per-node=1"));
  CHECK_THAT(
      s,
      Catch::Contains(
          R"(runner --lease "$SLURM_JOB_ID" --node "$SLURMD_NODENAME"' '/opt/lease q/bin/leaseq')"));
  CHECK_THAT(s, Catch::Contains(R"(exec >>"$lease_dir/keeper.log" 2>&1)"));
}

namespace {

// Runs a keeper script for job `job` under a fake srun (its command once per "node", n1 and
// n2) with a fake leaseq (at a path with a space) that records its argv in $LEASEQ_HOME/argv.
test_support::command_result run_keeper(const test_support::temp_dir& tmp, const std::string& job,
                                        const std::string& slots_arg = {}) {
  fs::path bin = tmp.path() / "bin";
  test_support::write_text(bin / "srun",
                           "#!/bin/sh\nshift 2\nfor n in n1 n2; do SLURMD_NODENAME=$n \"$@\"; "
                           "done\n");
  test_support::write_text(tmp.path() / "my leaseq",
                           "#!/bin/sh\necho \"$@\" >> \"$LEASEQ_HOME/argv\"\n");
  ::chmod((bin / "srun").c_str(), 0755);
  ::chmod((tmp.path() / "my leaseq").c_str(), 0755);
  test_support::write_text(tmp.path() / "keeper.sh",
                           keeper_script(tmp.path() / "my leaseq", tmp.path() / "home", slots_arg));
  return test_support::run_command("cd " + test_support::shell_quote(tmp.path().string()) +
                                   " && PATH=" + test_support::shell_quote(bin.string()) +
                                   ":$PATH SLURM_JOB_ID=" + job + " bash keeper.sh 2>&1");
}

}  // namespace

TEST_CASE("keeper script actually runs the runner argv under sh", "[slurm][keeper]") {
  test_support::temp_dir tmp;
  fs::path home = tmp.path() / "home";
  auto r = run_keeper(tmp, "77");
  CHECK(r.exit_code == 0);
  CHECK(test_support::read_text(home / "argv") ==
        "runner --lease 77 --node n1\nrunner --lease 77 --node n2\n");
  CHECK_THAT(test_support::read_text(home / "runs/77/keeper.log"),
             Catch::Contains("keeper: job 77"));
}

TEST_CASE("shell quoting for display and scripts", "[slurm][keeper]") {
  CHECK(shell_quote("--time=1:00") == "--time=1:00");
  CHECK(shell_quote("a b") == "'a b'");
  CHECK(shell_quote("it's") == "'it'\\''s'");
  CHECK(shell_quote("") == "''");
  CHECK(shell_quote("$HOME") == "'$HOME'");
  CHECK(shell_join({"sbatch", "--job-name=leaseq-x y"}) == "sbatch '--job-name=leaseq-x y'");
}

TEST_CASE("slots: counts, auto, and bad values", "[slurm][keeper][slots]") {
  CHECK(parse_slots("1") == 1);
  CHECK(parse_slots("4096") == 4096);
  CHECK_FALSE(parse_slots("auto"));
  for (const char* bad : {"", "0", "4097", "-1", "2x", "Auto", "99999999999"}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse_slots(bad), Catch::Contains("expected auto or a number"));
  }
  lease_request r;
  r.time = "10";
  r.slots = "0";
  CHECK_THROWS(validate(r));
  r.slots = "auto";
  CHECK_NOTHROW(validate(r));
  CHECK(keeper_slots_arg(r) == " --slots auto");
  r.gpus_per_node = 8;
  CHECK(keeper_slots_arg(r) == " --slots 8");  // auto with GPUs: one per GPU
  r.slots = "3";
  CHECK(keeper_slots_arg(r) == " --slots 3");
  r.slots.clear();
  CHECK(keeper_slots_arg(r).empty());  // the runner's default, as before
}

TEST_CASE("slots: auto counts GPUs, then the CPUs Slurm gave the node", "[slurm][keeper][slots]") {
  std::map<std::string, std::string> vars;
  auto env = [&](const char* k) -> const char* {
    auto it = vars.find(k);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
  CHECK(auto_slots(4, env, 64) == 4);
  CHECK(auto_slots(0, env, 64) == 64);  // not under Slurm: this host's CPUs
  CHECK(auto_slots(0, env, 0) == 1);
  vars["SLURM_JOB_CPUS_PER_NODE"] = "72(x2),36";
  vars["SLURM_NODEID"] = "2";
  CHECK(auto_slots(0, env, 64) == 36);
  vars["SLURM_NODEID"] = "1";
  CHECK(auto_slots(0, env, 64) == 72);
  vars["SLURM_NODEID"] = "7";
  CHECK(auto_slots(0, env, 64) == 64);  // beyond the list: cannot tell
  vars["SLURM_JOB_CPUS_PER_NODE"] = "garbage(x";
  CHECK(auto_slots(0, env, 64) == 64);
  vars["SLURM_CPUS_ON_NODE"] = "12";
  CHECK(auto_slots(0, env, 64) == 12);
  CHECK(auto_slots(2, env, 64) == 2);
  vars["SLURM_CPUS_ON_NODE"] = "99999";
  CHECK(auto_slots(0, env, 64) == max_slots);
}

TEST_CASE("keeper script passes --slots to every runner and runs", "[slurm][keeper][slots]") {
  test_support::temp_dir tmp;
  lease_request r;
  r.slots = "auto";
  r.gpus_per_node = 2;
  auto run = run_keeper(tmp, "78", keeper_slots_arg(r));
  CHECK(run.exit_code == 0);
  CHECK(test_support::read_text(tmp.path() / "home" / "argv") ==
        "runner --lease 78 --node n1 --slots 2\nrunner --lease 78 --node n2 --slots 2\n");
}
