// End-to-end: what hostile testing found losing, duplicating or misrouting work (issue 14), on
// the real program: keys that point at nothing, stale seq files, claims that cannot be
// recorded, two runners for one node, a corrupt index.
#include <sys/stat.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include <leaseq/engine/seq.hpp>

#include "runner_fixture.hpp"
#include "test_support.hpp"

using namespace e2e;

namespace {

std::string shell_home(const fixture& f) {
  return "LEASEQ_HOME=" + test_support::shell_quote(f.home.string()) + " ";
}

std::set<std::string> task_files(const fixture& f, const std::string& lane = "_any") {
  std::set<std::string> out;
  for (const auto& n : detail::list_dir(f.lease.inbox(lane).string()).names) out.insert(n);
  return out;
}

// Processes running `leaseq runner` for this fixture's home.
int runners_alive(const fixture& f) {
  int n = 0;
  std::string needle = "LEASEQ_HOME=" + f.home.string();
  needle.push_back('\0');
  for (const auto& pid : detail::list_dir("/proc").names) {
    if (pid.empty() || pid[0] < '1' || pid[0] > '9') continue;
    std::string cmd = test_support::read_text("/proc/" + pid + "/cmdline");
    std::string env = test_support::read_text("/proc/" + pid + "/environ");
    std::string stat = test_support::read_text("/proc/" + pid + "/stat");
    bool zombie = stat.find(") Z") != std::string::npos;
    // The runner's spawn server and the supervisors it forks share its cmdline (no exec), not
    // its name.
    std::string comm = test_support::read_text("/proc/" + pid + "/comm");
    if (comm.rfind("leaseq-s", 0) == 0) continue;
    // `leaseq runner`, or the child `lease local start` forked (no exec: same cmdline).
    bool runner = cmd.find(std::string("runner") + '\0') != std::string::npos ||
                  cmd.find(std::string("local") + '\0' + "start" + '\0') != std::string::npos;
    if (!zombie && runner && env.find(needle) != std::string::npos) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("integrity: a keyed batch that fails leaves no key, the retry enqueues every task",
          "[integrity][e2e]") {
  fixture f;
  fs::path bad = f.tmp / "bad.txt";
  test_support::write_text(bad, "echo one\necho caf\xe9\necho three\n");
  auto first = f.leaseq("submit --lease " + lease_id + " --key job --each-line " + bad.string());
  if (first.exit_code != 0) {  // not encodable: nothing of it may stay
    CHECK(detail::list_dir(f.lease.keys_dir().string()).names.empty());
    CHECK(task_files(f).empty());
  }
  // A batch that fails after reserving its ids (its lane is a file, not a directory).
  fs::path good = f.tmp / "good.txt";
  test_support::write_text(good, "echo one\necho two\necho three\n");
  ensure_dir(f.lease.inbox_root());
  test_support::write_text(f.lease.inbox_root() / "nodeq", "a file");
  auto failed = f.leaseq("submit --lease " + lease_id + " --node nodeq --key job2 --each-line " +
                         good.string());
  CHECK(failed.exit_code != 0);
  CHECK_FALSE(fs::exists(f.lease.key("job2.1")));
  fs::remove(f.lease.inbox_root() / "nodeq");
  auto retry = f.leaseq(
      "submit --lease " + lease_id + " --node nodeq --key job2 --each-line " + good.string(),
      false);
  REQUIRE(retry.exit_code == 0);
  auto ids = lines_of(retry.out);
  REQUIRE(ids.size() == 3);
  for (const auto& id : ids) CHECK(fs::exists(f.lease.inbox_task("nodeq", id)));
}

TEST_CASE("integrity: kill -9 of a keyed batch, then the same batch again: each line once",
          "[integrity][e2e]") {
  fixture f;
  const auto n = test_support::scaled(20000);
  fs::path lines = f.tmp / "lines.txt";
  std::string text;
  for (std::size_t i = 0; i < n; ++i) text += "echo " + std::to_string(i) + "\n";
  test_support::write_text(lines, text);
  std::string cmd = shell_home(f) + LEASEQ_BIN + " submit --lease " + lease_id +
                    " --key sweep --each-line " + lines.string();
  // Killed at several moments: while reserving ids, writing files, linking keys, publishing.
  for (int delay_ms : {30, 120, 250, 400}) {
    test_support::run_command(cmd + " >/dev/null 2>&1 & p=$!; sleep " +
                              std::to_string(delay_ms / 1000.0) + "; kill -9 $p; wait $p");
  }
  auto retry = test_support::run_command(cmd + " 2>&1");
  INFO(retry.out.substr(0, 2000));
  REQUIRE(retry.exit_code == 0);
  auto ids = lines_of(retry.out);
  REQUIRE(ids.size() == n);
  std::set<std::string> distinct(ids.begin(), ids.end());
  CHECK(distinct.size() == ids.size());
  auto files = task_files(f);
  for (const auto& id : ids) REQUIRE(files.count(id + ".json"));
  CHECK(files.size() == n);  // no line enqueued twice
  // A third run enqueues nothing and prints the same ids.
  auto again = test_support::run_command(cmd + " 2>/dev/null");
  CHECK(lines_of(again.out) == ids);
  CHECK(task_files(f).size() == n);
}

TEST_CASE("integrity: three submits racing for each key never make a reader's total shrink",
          "[integrity][e2e]") {
  // Each key is submitted by three processes at once: one binds it, the other two reserved an
  // id before they found the key bound and give it back. A reader must never have counted
  // those ids (docs/protocol.md, Sequence numbers: the committed line).
  fixture f;
  const auto keys = test_support::scaled(60);
  std::string bin = shell_home(f) + LEASEQ_BIN;
  fs::path samples = f.tmp / "samples.txt", stop = f.tmp / "stop";
  std::string script =
      "( while [ ! -e " + stop.string() + " ]; do " + bin + " status --lease " + lease_id +
      " --json 2>/dev/null | tr -d '\\n'; echo; done > " + samples.string() + " ) & r=$!; " +
      "p=; for s in 1 2 3; do ( for i in $(seq " + std::to_string(keys) + "); do " + bin +
      " submit --lease " + lease_id + " --key k$i -- true >/dev/null 2>&1; done ) & p=\"$p $!\"; " +
      "done; wait $p; touch " + stop.string() + "; wait $r; " + bin + " status --lease " +
      lease_id + " --json | tr -d '\\n' >> " + samples.string();
  auto run = test_support::run_command("bash -c " + test_support::shell_quote(script));
  REQUIRE(run.exit_code == 0);
  std::size_t parsed = 0, decreases = 0;
  double high = 0, last = 0;
  std::string first;
  std::istringstream in(test_support::read_text(samples));
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("counts")) continue;  // a run before the lease existed
    ++parsed;
    double total = j.value("archived", 0.0);
    for (const auto& [state, n] : j["counts"].items()) total += n.get<double>();
    if (total < high && first.empty()) first = line;
    decreases += total < high;
    high = std::max(high, total);
    last = total;
  }
  INFO(parsed << " samples, " << decreases << " smaller than one before; first: " << first);
  CHECK(parsed >= 3);
  CHECK(decreases == 0);
  CHECK(last == static_cast<double>(keys));  // after the submits: one task per key, no more
  CHECK(task_files(f).size() == keys);
}

TEST_CASE(
    "integrity: where hard links are refused, each id is a ticket of its own, committed "
    "and published",
    "[integrity][e2e]") {
  fixture f;
  const auto n = test_support::scaled(3000);  // more ids than a process may hold open files
  fs::path lines = f.tmp / "lines.txt";
  std::string text;
  for (std::size_t i = 0; i < n; ++i) text += "echo " + std::to_string(i) + "\n";
  test_support::write_text(lines, text);
  std::string early = f.submit("--key early -- true");
  std::string env = shell_home(f) + "LEASEQ_FAULT=reserve_links_refused=1 ";
  auto r = test_support::run_command(env + LEASEQ_BIN + " submit --lease " + lease_id +
                                     " --each-line " + lines.string() + " 2>&1");
  INFO(r.out.substr(0, 2000));
  REQUIRE(r.exit_code == 0);
  auto ids = lines_of(r.out);
  REQUIRE(ids.size() == n);
  for (const std::string& id : {ids.front(), ids[n / 2], ids.back()}) {
    fs::path entry = f.lease.ids_dir() / std::to_string(*task_seq(id));
    struct stat st {};
    REQUIRE(::stat(entry.c_str(), &st) == 0);
    CHECK(st.st_nlink == 1);  // its own file, not a link of a shared ticket
    auto ticket = detail::parse_ticket(test_support::read_text(entry));
    REQUIRE(ticket);
    CHECK(ticket->published);
    REQUIRE(ticket->committed_through);
    CHECK(*ticket->committed_through >= *task_seq(id));
  }
  // A key already bound: the id reserved for it is given back, nothing else is touched.
  auto again = test_support::run_command(env + LEASEQ_BIN + " submit --lease " + lease_id +
                                         " --key early -- true 2>/dev/null");
  CHECK(again.exit_code == 0);
  CHECK(again.out.rfind(early + "\n", 0) == 0);  // the key's task, no new one
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(f.lease.ids_dir()))
    entries += detail::seq_of_reservation_name(e.path().filename().string()) > 0;
  CHECK(entries == n + 1);
  CHECK(task_files(f).size() == n + 1);
}

TEST_CASE("integrity: a stale seq file never replaces a pending task", "[integrity][e2e]") {
  fixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(f.submit("-- echo old" + std::to_string(i)));
  std::string before = test_support::read_text(f.lease.inbox_task("_any", "T002"));
  test_support::write_text(f.lease.seq(), "2\n");
  std::string fresh = f.submit("-- echo NEW");
  CHECK(fresh == "T006");
  CHECK(test_support::read_text(f.lease.inbox_task("_any", "T002")) == before);
  // A seq far beyond any id: the message names the seq file.
  test_support::write_text(f.lease.seq(), "1000000000000000000\n");
  auto r = f.leaseq("submit --lease " + lease_id + " -- echo x");
  CHECK(r.exit_code != 0);
  CHECK(r.out.find(f.lease.seq().string()) != std::string::npos);
}

TEST_CASE("integrity: a claim that cannot be recorded is given back, never run twice",
          "[integrity][e2e]") {
  fixture f;
  fs::path ran = f.tmp / "ran.txt";
  std::string id = f.submit("-- sh -c 'echo $LEASEQ_ATTEMPT >> " + ran.string() + "'");
  ::setenv("LEASEQ_FAULT", "claim_record_enospc=1", 1);
  runner_proc r(f, "n1", {"--slots", "1", "--gpus", "none"});
  ::unsetenv("LEASEQ_FAULT");
  json res = f.wait_result(id);
  CHECK(res["state"] == "FINISHED");
  CHECK(lines_of(test_support::read_text(ran)).size() == 1);
  CHECK(r.log().find("giving it back") != std::string::npos);
}

TEST_CASE("integrity: a task whose pid cannot be recorded is killed when it should be recorded",
          "[integrity][e2e]") {
  fixture f;
  fs::path ran = f.tmp / "ran.txt";
  std::string id = f.submit("-- sh -c 'sleep 5; echo late >> " + ran.string() + "'");
  ::setenv("LEASEQ_FAULT", "pid_record_enospc=1", 1);
  runner_proc r(f, "n1", {"--slots", "1", "--gpus", "none"});
  ::unsetenv("LEASEQ_FAULT");
  json res = f.wait_result(id);
  CHECK(res["state"] == "FAILED");
  CHECK(res["reason"] == "claim_unrecorded");
  // kill -9 and restart: nothing runs it again, and its killed process never wrote.
  r.signal(SIGKILL);
  r.wait();
  runner_proc again(f, "n1", {"--slots", "1", "--gpus", "none"});
  REQUIRE(wait_until([&] { return again.log().find("starting") != std::string::npos; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK_FALSE(fs::exists(ran));
}

TEST_CASE("integrity: four `lease local start` at once: one started, one runner, its cancels",
          "[integrity][e2e]") {
  fixture f;
  std::string start = shell_home(f) + LEASEQ_BIN + " lease local start --slots 2 --gpus none";
  std::string outs = (f.tmp / "start").string();
  test_support::run_command("for i in 1 2 3 4; do " + start + " >" + outs +
                            "$i.out 2>&1 & done; wait");
  int started = 0, already = 0;
  for (int i = 1; i <= 4; ++i) {
    std::string out = test_support::read_text(outs + std::to_string(i) + ".out");
    INFO("start " << i << ": " << out);
    started += out.find(" started (pid ") != std::string::npos;
    already += out.find("already running") != std::string::npos;
  }
  CHECK(started == 1);
  CHECK(already == 3);
  // The start that said "started" forked its runner holding the node's lock: no runner that
  // lost the race is ever forked, so there is one right away, not eventually.
  CHECK(runners_alive(f) == 1);
  // Every cancel is consumed by that runner: a running task ends CANCELLED, not FINISHED.
  std::string local = local_lease_id(short_hostname());
  lease_paths lease(f.home / "runs" / local);
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    auto sub = f.leaseq("submit --lease " + local + " -- sleep 60", false);
    REQUIRE(sub.exit_code == 0);
    ids.push_back(lines_of(sub.out).at(0));
  }
  std::string node = short_hostname();
  REQUIRE(wait_until([&] {
    for (const auto& id : ids)
      if (!fs::exists(lease.stdout_log(node, id))) return false;
    return true;
  }));
  for (const auto& id : ids) {
    auto c = f.leaseq("cancel --lease " + local + " " + id);
    INFO(c.out);
    CHECK(c.exit_code == 0);
  }
  for (const auto& id : ids) {
    std::optional<json> res;
    CHECK(wait_until(
        [&] { return (res = read_json_tolerant(lease.result(node, id)).value).has_value(); }));
    if (res) CHECK((*res)["state"] == "CANCELLED");
  }
  CHECK(runners_alive(f) == 1);
  auto stop = f.leaseq("lease local stop --wait 10");
  INFO(stop.out);
  CHECK(stop.exit_code == 0);
  CHECK(wait_until([&] { return runners_alive(f) == 0; }, 20s));
}

TEST_CASE("integrity: an unreadable index.json never reroutes a submit", "[integrity][e2e]") {
  fixture f;
  ensure_dir(f.home);
  test_support::write_text(
      f.home / "index.json",
      R"({"version":1,"default":"424242","leases":[{"id":"424242","kind":"slurm"}]})");
  test_support::write_text(f.home / "index.json", R"({"version":1,"default":"4242)");
  auto r = f.leaseq("submit -- python train.py");
  CHECK(r.exit_code != 0);
  CHECK(r.out.find("--lease") != std::string::npos);
  CHECK_FALSE(fs::exists(f.home / "runs"));
  // With --lease the user decides: accepted.
  CHECK(f.leaseq("submit --lease " + lease_id + " -- true").exit_code == 0);
}
