// The read-only CLI (status, tasks, follow, logs) against lease trees built by hand.
#include <leaseq/clock.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/results_index.hpp>

#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "lease_tree.hpp"
#include "test_support.hpp"

using namespace leaseq;
using test_support::read_text;
using test_support::shell_quote;
using test_support::wait_until;
using test_support::write_text;

namespace {

struct cli_tree : test_support::lease_tree {
  cli_tree() { register_default(); }

  test_support::command_result run(const std::string& args, bool merge_stderr = false) const {
    std::string cmd = "LEASEQ_HOME=" + shell_quote(home.string()) + " " + shell_quote(LEASEQ_BIN) +
                      " " + args + " </dev/null" + (merge_stderr ? " 2>&1" : " 2>/dev/null");
    return test_support::run_command(cmd);
  }

  void standard() {
    double now = unix_now();
    pending(1, "_any");
    pending(2, "nodeA");
    claimed(3, "nodeA");
    done(4, "nodeA");
    done(5, "nodeB", "FAILED", 3);
    hb("nodeA", now - 1, {"T003"});
    hb("nodeB", now - 500);
  }
};

json parse(const std::string& text) {
  INFO(text);
  json j = json::parse(text, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

}  // namespace

TEST_CASE("leaseq status --json: nodes with health and hb age, counts by state", "[read_cli]") {
  cli_tree t;
  t.standard();
  auto r = t.run("status --json");
  REQUIRE(r.exit_code == 0);
  json j = parse(r.out);
  CHECK(j["lease"] == "99887766");
  CHECK(j["kind"] == "slurm");
  CHECK(j["state"].is_string());
  REQUIRE(j["nodes"].size() == 2);
  CHECK(j["nodes"][0]["node"] == "nodeA");
  CHECK(j["nodes"][0]["health"] == "OK");
  CHECK(j["nodes"][0]["hb_age_s"].get<double>() < 60);
  CHECK(j["nodes"][0]["running"] == json::array({"T003"}));
  CHECK(j["nodes"][0]["pending"] == 1);
  CHECK(j["nodes"][0]["paused"] == false);
  CHECK(j["nodes"][1]["health"] == "STALE");
  CHECK(j["counts"]["PENDING"] == 2);
  CHECK(j["counts"]["RUNNING"] == 1);
  CHECK(j["counts"]["FINISHED"] == 1);
  CHECK(j["counts"]["FAILED"] == 1);
  CHECK(j["counts"]["LOST?"] == 0);
}

TEST_CASE("leaseq status prints a table", "[read_cli]") {
  cli_tree t;
  t.standard();
  auto r = t.run("status");
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("lease 99887766") != std::string::npos);
  CHECK(r.out.find("nodeA") != std::string::npos);
  CHECK(r.out.find("STALE") != std::string::npos);
  CHECK(r.out.find("PENDING=2") != std::string::npos);
  CHECK(r.out.find("T003") != std::string::npos);
}

TEST_CASE("leaseq status: the text form shows the counts and node columns of --json",
          "[read_cli]") {
  cli_tree t;
  t.standard();
  double now = unix_now();
  t.pending(6, "nodeB");  // its runner is STALE: cannot run now
  t.pending(7, "_any");
  t.done(8, "nodeA", "CANCELLED", 1);
  write_text(t.paths.inbox_task("nodeA", "T009"), "{\"id\": \"T0");  // does not parse
  t.hb("nodeA", now - 1, {"T003", "T010"});  // T010: known from the heartbeat only (LOST?)
  // The results index of nodeA vouches for its results (the JSON form reads it, protocol 5).
  std::string index;
  for (int seq : {4, 8}) {
    struct stat st;
    REQUIRE(::stat(t.paths.result("nodeA", format_task_id(seq)).c_str(), &st) == 0);
    index += format_results_index_line(seq, seq == 4 ? task_state::finished : task_state::cancelled,
                                       seq == 4 ? 0 : 1, static_cast<std::uint64_t>(st.st_ino));
  }
  write_text(t.paths.done("nodeA") / std::string(results_index_name), index);

  json j = parse(t.run("status --json").out);
  auto text = t.run("status");
  REQUIRE(text.exit_code == 0);
  INFO(text.out);
  std::string counts;
  for (const char* st :
       {"PENDING", "RUNNING", "FINISHED", "FAILED", "CANCELLED", "LOST?", "LOST", "UNKNOWN"}) {
    long n = j["counts"][st].get<long>();
    if (n > 0 || std::string(st) == "PENDING" || std::string(st) == "RUNNING")
      counts += (counts.empty() ? "" : "  ") + std::string(st) + "=" + std::to_string(n);
  }
  CHECK(j["counts"]["PENDING"] == 5);
  CHECK(j["counts"]["LOST?"] == 1);
  CHECK(text.out.find("tasks: " + counts + "\n") != std::string::npos);
  // Each node's row: NODE HEALTH HB PENDING RUNNING PAUSED.
  for (const json& n : j["nodes"]) {
    std::string running;
    for (const json& id : n["running"])
      running += (running.empty() ? "" : ",") + id.get<std::string>();
    std::istringstream rows(text.out);
    std::string line;
    bool found = false;
    while (std::getline(rows, line)) {
      std::istringstream cols(line);
      std::string name, health, age, pending, run, paused;
      cols >> name >> health >> age >> pending >> run >> paused;
      if (name != n["node"].get<std::string>()) continue;
      found = true;
      CHECK(health == n["health"].get<std::string>());
      CHECK(pending == std::to_string(n["pending"].get<long>()));
      CHECK(run == (running.empty() ? "-" : running));
    }
    CHECK(found);
  }
}

TEST_CASE("leaseq tasks --json with filters", "[read_cli]") {
  cli_tree t;
  t.standard();
  auto r = t.run("tasks --json");
  REQUIRE(r.exit_code == 0);
  json j = parse(r.out);
  CHECK(j["lease"] == "99887766");
  CHECK(j["total"] == 5);
  REQUIRE(j["tasks"].size() == 5);
  CHECK(j["tasks"][0]["id"] == "T003");  // RUNNING first
  CHECK(j["tasks"][0]["state"] == "RUNNING");
  CHECK(j["tasks"][0]["node"] == "nodeA");
  CHECK(j["tasks"][0]["claimed"].is_number());
  CHECK(j["tasks"][0]["exit_code"].is_null());
  for (const char* key :
       {"id", "seq", "node", "state", "exit_code", "cmd", "created", "claimed", "finished"})
    CHECK(j["tasks"][0].contains(key));

  j = parse(t.run("tasks --json --state failed").out);
  REQUIRE(j["tasks"].size() == 1);
  CHECK(j["tasks"][0]["id"] == "T005");
  CHECK(j["tasks"][0]["exit_code"] == 3);
  CHECK(j["tasks"][0]["finished"].is_number());

  j = parse(t.run("tasks --json --node nodeA --state PENDING --state RUNNING").out);
  CHECK(j["total"] == 2);

  j = parse(t.run("tasks --json --grep T004").out);
  REQUIRE(j["total"] == 1);
  CHECK(j["tasks"][0]["cmd"] == "echo T004");

  j = parse(t.run("tasks --json --limit 2").out);
  CHECK(j["total"] == 5);
  CHECK(j["tasks"].size() == 2);

  j = parse(t.run("tasks --json --state PENDING").out);
  CHECK(j["tasks"][0]["node"].is_null() != j["tasks"][1]["node"].is_null());  // _any has none

  CHECK(t.run("tasks --state BOGUS").exit_code == 2);
  CHECK(t.run("tasks --node ../x").exit_code == 1);
}

TEST_CASE("leaseq tasks never prints escape sequences from task files", "[read_cli]") {
  cli_tree t;
  t.cmds[1] =
      "printf '\x1b]52;c;SGk=\x07\x1b[2J' # \xc2\x9b"
      "31m";  // U+009B: C1 CSI
  t.pending(1, "_any");
  auto r = t.run("tasks");
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("T001") != std::string::npos);
  CHECK(r.out.find('\x1b') == std::string::npos);
  CHECK(r.out.find('\x07') == std::string::npos);
  CHECK(r.out.find("\xc2\x9b") == std::string::npos);
  auto j = t.run("tasks --json");
  REQUIRE(j.exit_code == 0);
  CHECK(j.out.find('\x1b') == std::string::npos);      // JSON escapes control characters
  CHECK(j.out.find("\xc2\x9b") == std::string::npos);  // and everything past ASCII
  CHECK(parse(j.out)["tasks"][0]["cmd"].get<std::string>().find("\xc2\x9b") != std::string::npos);
}

TEST_CASE("leaseq refuses bad and unknown leases clearly", "[read_cli]") {
  cli_tree t;
  auto r = t.run("status --lease ../etc", true);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("invalid lease id") != std::string::npos);
  r = t.run("status --lease 12345", true);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("no lease 12345") != std::string::npos);
}

TEST_CASE("leaseq follow without a task: none, one, or several RUNNING", "[read_cli]") {
  cli_tree t;
  t.pending(1, "_any");
  auto r = t.run("follow", true);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("no RUNNING task") != std::string::npos);
  t.claimed(2, "nodeA");
  t.claimed(3, "nodeB");
  r = t.run("follow", true);
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("T002") != std::string::npos);
  CHECK(r.out.find("T003") != std::string::npos);
}

TEST_CASE("leaseq follow streams the log and ends with the task's exit code", "[read_cli]") {
  cli_tree t;
  t.claimed(7, "nodeA");
  fs::path log = t.paths.stdout_log("nodeA", "T007");
  ensure_dir(log.parent_path());
  write_text(log, "first line\n");
  fs::path out = t.home / "follow.out", rc = t.home / "follow.rc";
  std::string cmd = "(LEASEQ_HOME=" + shell_quote(t.home.string()) + " " + shell_quote(LEASEQ_BIN) +
                    " follow </dev/null > " + shell_quote(out.string()) +
                    " 2>/dev/null; echo $? > " + shell_quote(rc.string()) + ") &";
  REQUIRE(std::system(cmd.c_str()) == 0);
  REQUIRE(wait_until([&] { return read_text(out).find("first line") != std::string::npos; }));
  test_support::run_command("printf 'second\\npartial' >> " + shell_quote(log.string()));
  REQUIRE(wait_until([&] { return read_text(out).find("second") != std::string::npos; }));
  CHECK_FALSE(fs::exists(rc));
  t.finish(7, "nodeA", "FAILED", 3);
  REQUIRE(wait_until([&] { return read_text(rc).find('\n') != std::string::npos; }));
  CHECK(read_text(rc) == "3\n");
  CHECK(read_text(out) == "first line\nsecond\npartial");  // byte-exact when not a terminal
}

TEST_CASE("leaseq follow --both tags stdout and stderr", "[read_cli]") {
  cli_tree t;
  t.done(8, "nodeA");
  write_text(t.paths.stdout_log("nodeA", "T008"), "to-out\n");
  write_text(t.paths.stderr_log("nodeA", "T008"), "to-err\n");
  auto r = t.run("follow T008 --both");
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("[stdout] to-out\n") != std::string::npos);
  CHECK(r.out.find("[stderr] to-err\n") != std::string::npos);
  r = t.run("follow T008 --stderr");
  CHECK(r.out == "to-err\n");
  auto missing = t.run("follow T999", true);  // waits 10 s for it to appear, then gives up
  CHECK(missing.exit_code == 1);
  CHECK(missing.out.find("no task T999") != std::string::npos);
}

TEST_CASE("leaseq logs prints the whole log, raw when not a terminal", "[read_cli]") {
  cli_tree t;
  t.done(9, "nodeA", "FAILED", 1);
  std::string raw = "plain\n\x1b[31mred\x1b[0m\r\nbytes\xff\n";
  write_text(t.paths.stdout_log("nodeA", "T009"), raw);
  write_text(t.paths.stderr_log("nodeA", "T009"), "oops\n");
  auto r = t.run("logs T009");
  CHECK(r.exit_code == 0);
  CHECK(r.out == raw);
  r = t.run("logs T009 --stderr");
  CHECK(r.out == "oops\n");
  r = t.run("logs T010", true);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("no logs for T010") != std::string::npos);
  CHECK(t.run("logs ../../etc/passwd").exit_code == 1);
}

TEST_CASE("leaseq logs sanitizes when stdout is a terminal", "[read_cli]") {
  cli_tree t;
  t.done(9, "nodeA");
  write_text(t.paths.stdout_log("nodeA", "T009"),
             "a\x1b]0;title\x07"
             "b\r\n");
  if (test_support::run_command("command -v script >/dev/null").exit_code != 0) {
    WARN("script(1) not installed: terminal case not run");
    return;
  }
  std::string inner =
      "LEASEQ_HOME=" + shell_quote(t.home.string()) + " " + shell_quote(LEASEQ_BIN) + " logs T009";
  auto r = test_support::run_command("script -qec " + shell_quote(inner) + " /dev/null");
  CHECK(r.out.find("ab") != std::string::npos);
  CHECK(r.out.find("title") == std::string::npos);
}

TEST_CASE(
    "leaseq status and tasks: a task whose id was handed out but is visible nowhere is UNKNOWN",
    "[read_cli]") {
  test_support::temp_dir tmp;
  fs::path home = tmp / "home";
  auto leaseq = [&](const std::string& args) {
    return test_support::run_command("LEASEQ_HOME=" + shell_quote(home.string()) + " " +
                                     shell_quote(LEASEQ_BIN) + " " + args + " </dev/null");
  };
  // Two tasks on a lease with no runner; then T002's file leaves the tree (as a lagging cache
  // would hide it from this client).
  REQUIRE(leaseq("submit --lease local:uq -- true").out == "T001\n");
  REQUIRE(leaseq("submit --lease local:uq -- true").out == "T002\n");
  lease_paths lease(home_paths(home), "local:uq");
  fs::path t2 = lease.inbox_task("_any", "T002");
  REQUIRE(fs::exists(t2));
  fs::rename(t2, tmp / "T002.json");

  auto st = leaseq("status --lease local:uq 2>&1");
  INFO(st.out);
  CHECK(st.exit_code == 0);
  CHECK_THAT(st.out, Catch::Contains("UNKNOWN"));
  CHECK_THAT(st.out, Catch::Contains("T002"));  // the note names it

  auto sj = leaseq("status --lease local:uq --json 2>/dev/null");
  REQUIRE(sj.exit_code == 0);
  json s = parse(sj.out);
  CHECK(s["counts"]["UNKNOWN"] == 1);
  CHECK(s["counts"]["PENDING"] == 1);

  auto tt = leaseq("tasks --lease local:uq 2>/dev/null");
  INFO(tt.out);
  REQUIRE(tt.exit_code == 0);
  bool row = false;
  std::istringstream lines(tt.out);
  for (std::string l; std::getline(lines, l);)
    if (l.rfind("T002", 0) == 0) {
      std::istringstream cols(l);
      std::string id, state;
      cols >> id >> state;
      row = state == "UNKNOWN";
    }
  CHECK(row);

  auto tj = leaseq("tasks --lease local:uq --json 2>/dev/null");
  REQUIRE(tj.exit_code == 0);
  json tasks = parse(tj.out);
  if (tasks.is_object() && tasks.contains("tasks")) tasks = tasks["tasks"];
  REQUIRE(tasks.is_array());
  bool found = false;
  for (const auto& t : tasks)
    if (t["id"] == "T002") {
      found = true;
      CHECK(t["state"] == "UNKNOWN");
      REQUIRE(t["unknown"].is_string());
      CHECK_THAT(t["unknown"].get<std::string>(), Catch::Contains("not visible yet"));
    }
  CHECK(found);

  // --state takes it, and a wrong state's message lists it.
  auto only = leaseq("tasks --lease local:uq --state UNKNOWN --json 2>/dev/null");
  REQUIRE(only.exit_code == 0);
  json o = parse(only.out);
  if (o.is_object() && o.contains("tasks")) o = o["tasks"];
  REQUIRE(o.size() == 1);
  CHECK(o[0]["id"] == "T002");
  auto bad = leaseq("tasks --lease local:uq --state BOGUS 2>&1");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.out, Catch::Contains("LOST, UNKNOWN)"));

  // Back in place: PENDING again.
  fs::rename(tmp / "T002.json", t2);
  json back = parse(leaseq("status --lease local:uq --json 2>/dev/null").out);
  CHECK(back["counts"]["UNKNOWN"] == 0);
  CHECK(back["counts"]["PENDING"] == 2);
}

TEST_CASE("leaseq status: a torn heartbeat warns only once it is older than ui.hb_stale_s",
          "[read_cli]") {
  cli_tree t;
  t.standard();
  // Caught while its runner replaces it: lag, no warning, the node still listed.
  write_text(t.paths.heartbeat("nodeA"), "{");
  auto fresh = t.run("status", true);
  INFO(fresh.out);
  CHECK(fresh.exit_code == 0);
  CHECK(fresh.out.find("heartbeat of nodeA is unreadable") == std::string::npos);
  CHECK(fresh.out.find("nodeA") != std::string::npos);
  // Unreadable and last modified long ago (past ui.hb_stale_s, 60 s): a warning.
  REQUIRE(test_support::run_command("touch -d '2 hours ago' " +
                                    shell_quote(t.paths.heartbeat("nodeA").string()))
              .exit_code == 0);
  auto old = t.run("status", true);
  INFO(old.out);
  CHECK(old.exit_code == 0);
  CHECK(old.out.find("heartbeat of nodeA is unreadable") != std::string::npos);
}
