#include <leaseq/keeper.hpp>

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

TEST_CASE("keeper script actually runs the runner argv under sh", "[slurm][keeper]") {
  test_support::temp_dir tmp;
  // A fake srun runs its command once per "node"; a fake leaseq records its argv.
  fs::path bin = tmp.path() / "bin";
  test_support::write_text(bin / "srun",
                           "#!/bin/sh\nshift 2\nfor n in n1 n2; do SLURMD_NODENAME=$n \"$@\"; "
                           "done\n");
  test_support::write_text(tmp.path() / "my leaseq",
                           "#!/bin/sh\necho \"$@\" >> \"$LEASEQ_HOME/argv\"\n");
  ::chmod((bin / "srun").c_str(), 0755);
  ::chmod((tmp.path() / "my leaseq").c_str(), 0755);
  fs::path home = tmp.path() / "home";
  test_support::write_text(tmp.path() / "keeper.sh", keeper_script(tmp.path() / "my leaseq", home));
  auto r = test_support::run_command("cd " + test_support::shell_quote(tmp.path().string()) +
                                     " && PATH=" + test_support::shell_quote(bin.string()) +
                                     ":$PATH SLURM_JOB_ID=77 bash keeper.sh 2>&1");
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
