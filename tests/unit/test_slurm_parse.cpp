#include <leaseq/slurm/slurm_parse.hpp>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;

namespace {

std::string parse_fixture(const std::string& name) {
  return test_support::read_text(std::string(LEASEQ_FIXTURES_DIR) + "/slurm/" + name + ".txt");
}
int fixture_rc(const std::string& name) {
  return std::stoi(
      test_support::read_text(std::string(LEASEQ_FIXTURES_DIR) + "/slurm/" + name + ".rc"));
}

slurm_job one_job(const std::string& name) {
  REQUIRE(fixture_rc(name) == 0);
  squeue_parse p = parse_squeue(parse_fixture(name));
  CHECK(p.bad_lines.empty());
  REQUIRE(p.jobs.size() == 1);
  return p.jobs[0];
}

using k = slurm_duration::kind;

}  // namespace

TEST_CASE("time strings as Slurm prints them", "[slurm][slurm_parse]") {
  CHECK(parse_slurm_duration("UNLIMITED") == slurm_duration{k::unlimited, 0});
  CHECK(parse_slurm_duration("NOT_SET") == slurm_duration{k::not_set, 0});
  CHECK(parse_slurm_duration("INVALID") == slurm_duration{k::invalid, 0});
  CHECK(parse_slurm_duration("0:58") == slurm_duration{k::seconds, 58});
  CHECK(parse_slurm_duration("59:59") == slurm_duration{k::seconds, 3599});
  CHECK(parse_slurm_duration("2:29:58") == slurm_duration{k::seconds, 2 * 3600 + 29 * 60 + 58});
  CHECK(parse_slurm_duration("1-02:02:58") ==
        slurm_duration{k::seconds, 86400 + 2 * 3600 + 2 * 60 + 58});
  CHECK(parse_slurm_duration("10-00:00:00") == slurm_duration{k::seconds, 864000});
  // sbatch --time input forms.
  CHECK(parse_slurm_duration("30") == slurm_duration{k::seconds, 1800});
  CHECK(parse_slurm_duration("2-12") == slurm_duration{k::seconds, 2 * 86400 + 12 * 3600});
  CHECK(parse_slurm_duration("2-12:30") ==
        slurm_duration{k::seconds, 2 * 86400 + 12 * 3600 + 1800});
  for (const char* bad : {"", "abc", "1:2:3:4", "-1", "1-", "1:x", "1--2:00", "99999999999999:00"})
    CHECK(parse_slurm_duration(bad).k == k::invalid);
}

TEST_CASE("durations print like squeue", "[slurm][slurm_parse]") {
  CHECK(format_slurm_duration(58) == "0:58");
  CHECK(format_slurm_duration(3599) == "59:59");
  CHECK(format_slurm_duration(3600) == "1:00:00");
  CHECK(format_slurm_duration(86400 + 2 * 3600 + 2 * 60 + 58) == "1-02:02:58");
  CHECK(format_slurm_duration(-5) == "0:00");
  for (const char* s : {"0:58", "2:29:58", "1-02:02:58", "UNLIMITED", "NOT_SET", "INVALID"})
    CHECK(format_slurm_duration(parse_slurm_duration(s)) == s);
}

TEST_CASE("recorded squeue lines: running, time left forms", "[slurm][slurm_parse]") {
  slurm_job j = one_job("squeue_running");
  CHECK(j.state == "RUNNING");
  CHECK(j.reason == "None");
  CHECK(j.time_left.k == k::unlimited);
  CHECK(j.nodes == 3);
  CHECK(j.nodelist == "n[1-3]");
  CHECK(j.name == "lease|name with spaces");  // the name is last: a '|' in it is kept

  CHECK(one_job("squeue_running_timelimit").time_left == slurm_duration{k::seconds, 58});
  CHECK(one_job("squeue_running_timelimit").time_limit == slurm_duration{k::seconds, 60});
  CHECK(one_job("squeue_running_hours").time_left.seconds == 2 * 3600 + 29 * 60 + 58);
  CHECK(one_job("squeue_running_days").time_left.seconds == 86400 + 2 * 3600 + 2 * 60 + 58);
}

TEST_CASE("recorded squeue lines: pending with each reason", "[slurm][slurm_parse]") {
  CHECK(one_job("squeue_pending_none").state == "PENDING");
  CHECK(one_job("squeue_pending_none").reason == "None");
  CHECK(one_job("squeue_pending_resources").reason == "Resources");
  CHECK(one_job("squeue_pending_resources").nodes == 2);
  CHECK(one_job("squeue_pending_resources").nodelist.empty());
  CHECK(one_job("squeue_pending_priority").reason == "Priority");
  CHECK(one_job("squeue_pending_partitionnodelimit").reason == "PartitionNodeLimit");
  CHECK(one_job("squeue_pending_partitionnodelimit").state == "PENDING");
}

TEST_CASE("recorded squeue lines: ending and ended states", "[slurm][slurm_parse]") {
  struct expect {
    const char* fixture;
    const char* state;
    const char* reason;
    bool final;
  };
  for (const expect& e : {expect{"squeue_completing", "COMPLETING", "None", false},
                          expect{"squeue_completed", "COMPLETED", "None", true},
                          expect{"squeue_cancelled", "CANCELLED", "None", true},
                          expect{"squeue_timeout", "TIMEOUT", "TimeLimit", true},
                          expect{"squeue_failed", "FAILED", "NonZeroExitCode", true},
                          expect{"squeue_node_fail", "NODE_FAIL", "NodeDown", true},
                          expect{"squeue_out_of_memory", "OUT_OF_MEMORY", "OutOfMemory", true},
                          expect{"squeue_preempted", "PREEMPTED", "None", true}}) {
    INFO(e.fixture);
    slurm_job j = one_job(e.fixture);
    CHECK(j.state == e.state);
    CHECK(j.reason == e.reason);
    CHECK(slurm_state_is_final(j.state) == e.final);
  }
  CHECK(one_job("squeue_timeout").time_left.k == k::invalid);
  CHECK_FALSE(slurm_state_is_final("RUNNING"));
  CHECK_FALSE(slurm_state_is_final("PENDING"));
}

TEST_CASE("a batched squeue lists the known jobs and omits forgotten ones",
          "[slurm][slurm_parse]") {
  squeue_parse p = parse_squeue(parse_fixture("squeue_batch"));
  CHECK(p.bad_lines.empty());
  REQUIRE(p.jobs.size() == 4);
  std::map<std::string, std::string> reasons;
  for (const auto& j : p.jobs) reasons[j.state + "/" + j.reason] = j.id;
  CHECK(reasons.count("RUNNING/None"));
  CHECK(reasons.count("PENDING/Resources"));
  CHECK(reasons.count("PENDING/Priority"));
  CHECK(reasons.count("PENDING/PartitionNodeLimit"));
  for (const auto& j : p.jobs) CHECK(j.id != "999999");
}

TEST_CASE("squeue output that is not ours is reported, not guessed", "[slurm][slurm_parse]") {
  squeue_parse p = parse_squeue(
      "JOBID PARTITION NAME\n12|RUNNING|None\nabc|RUNNING|None|1:00|1:00|1|n1|N/A|x\n"
      "12|running|None|1:00|1:00|1|n1|N/A|x\n\n  \n13|RUNNING|None|1:00|2:00|1|n1|N/A|ok\r\n");
  REQUIRE(p.jobs.size() == 1);
  CHECK(p.jobs[0].id == "13");
  CHECK(p.jobs[0].name == "ok");
  CHECK(p.bad_lines.size() == 4);
  CHECK(parse_squeue("").jobs.empty());
}

TEST_CASE("forgotten jobs: Invalid job id specified", "[slurm][slurm_parse]") {
  CHECK(fixture_rc("squeue_invalid") == 1);
  CHECK(says_invalid_job_id(parse_fixture("squeue_invalid")));
  CHECK(fixture_rc("scontrol_invalid") == 1);
  CHECK(says_invalid_job_id(parse_fixture("scontrol_invalid")));
  CHECK_FALSE(parse_scontrol_job(parse_fixture("scontrol_invalid")));
  // Several unknown ids: squeue prints nothing and succeeds.
  CHECK(fixture_rc("squeue_invalid_many") == 0);
  CHECK(parse_squeue(parse_fixture("squeue_invalid_many")).jobs.empty());
  CHECK_FALSE(says_invalid_job_id("slurm_load_jobs error: Unable to contact slurm controller"));
}

TEST_CASE("scontrol show job records", "[slurm][slurm_parse]") {
  struct expect {
    const char* fixture;
    const char* state;
    const char* reason;
  };
  for (const expect& e : {expect{"scontrol_running", "RUNNING", "None"},
                          expect{"scontrol_pending_resources", "PENDING", "Resources"},
                          expect{"scontrol_completing", "COMPLETING", "None"},
                          expect{"scontrol_completed", "COMPLETED", "None"},
                          expect{"scontrol_cancelled", "CANCELLED", "None"},
                          expect{"scontrol_timeout", "TIMEOUT", "TimeLimit"},
                          expect{"scontrol_failed", "FAILED", "NonZeroExitCode"},
                          expect{"scontrol_node_fail", "NODE_FAIL", "NodeDown"}}) {
    INFO(e.fixture);
    auto j = parse_scontrol_job(parse_fixture(e.fixture));
    REQUIRE(j);
    CHECK(j->state == e.state);
    CHECK(j->reason == e.reason);
    CHECK(!j->id.empty());
  }
  auto running = parse_scontrol_job(parse_fixture("scontrol_running"));
  CHECK(running->name == "lease|name with spaces");  // blanks inside a value are kept
  CHECK(running->nodes == 3);
  CHECK(running->nodelist == "n[1-3]");
  CHECK(running->time_left.k == k::unlimited);
  CHECK(parse_scontrol_job(parse_fixture("scontrol_failed"))->exit_code == "3:0");
  CHECK(parse_scontrol_job(parse_fixture("scontrol_pending_resources"))->nodelist.empty());
  CHECK(parse_scontrol_job(parse_fixture("scontrol_timeout"))->time_left.k == k::not_set);
}

TEST_CASE("scontrol time left is the limit minus the run time", "[slurm][slurm_parse]") {
  auto j = parse_scontrol_job(
      "JobId=7 JobName=x\n   JobState=RUNNING Reason=None Dependency=(null)\n"
      "   RunTime=00:10:00 TimeLimit=01:00:00 TimeMin=N/A\n   NumNodes=2 NodeList=n[1-2]\n");
  REQUIRE(j);
  CHECK(j->time_left == slurm_duration{k::seconds, 50 * 60});
  CHECK_FALSE(parse_scontrol_job("JobId=abc JobState=RUNNING"));
  CHECK_FALSE(parse_scontrol_job("garbage"));
  CHECK_FALSE(parse_scontrol_job(""));
}

TEST_CASE("sbatch --parsable output", "[slurm][slurm_parse]") {
  CHECK(parse_sbatch_parsable("12345\n") == "12345");
  CHECK(parse_sbatch_parsable("12345;cluster\n") == "12345");
  CHECK(parse_sbatch_parsable("sbatch: warning: something\n678\n") == "678");
  CHECK_FALSE(parse_sbatch_parsable(""));
  CHECK_FALSE(parse_sbatch_parsable("Submitted batch job 5\n"));
}

// Issue 14.9: a reason or job name that is not UTF-8 stopped `lease ls`, `status` and the
// dashboard's lease pane (the state cache is JSON).
TEST_CASE("squeue and scontrol text that is not UTF-8 comes out as UTF-8", "[slurm][slurm_parse]") {
  const std::string r = "\xef\xbf\xbd";
  auto q = parse_squeue(
      "42|PENDING|Res\xff\x1b]0;x\x07|1:00|1:00|1|n\xfe|N/A|leaseq-caf\xe9\n"
      "bad\xff line\n");
  REQUIRE(q.jobs.size() == 1);
  CHECK(q.jobs[0].reason == "Res" + r + "\x1b]0;x\x07");  // controls stay: displays sanitize
  CHECK(q.jobs[0].nodelist == "n" + r);
  CHECK(q.jobs[0].name == "leaseq-caf" + r);
  REQUIRE(q.bad_lines.size() == 1);
  CHECK(q.bad_lines[0] == "bad" + r + " line");
  auto j = parse_scontrol_job("JobId=42 JobName=x\xff JobState=PENDING Reason=R\xfe");
  REQUIRE(j);
  CHECK(j->name == "x" + r);
  CHECK(j->reason == "R" + r);
}
