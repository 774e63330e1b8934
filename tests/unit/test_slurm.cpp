#include <leaseq/slurm/slurm.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;

namespace {

std::string fixture(const std::string& name) {
  return test_support::read_text(std::string(LEASEQ_FIXTURES_DIR) + "/slurm/" + name + ".txt");
}

command_output answer(int rc, std::string out, std::string err = "") {
  command_output r;
  r.exit_code = rc;
  r.out = std::move(out);
  r.err = std::move(err);
  if (rc != 0) r.error = "cmd: exit code " + std::to_string(rc);
  return r;
}

// A scripted Slurm: squeue answers from `squeue`, scontrol from `scontrol[id]`; counts calls.
struct fake_slurm {
  std::function<command_output(const std::string& ids)> squeue;
  std::map<std::string, command_output> scontrol;
  int squeue_calls = 0, scontrol_calls = 0;
  std::vector<std::string> last_squeue;

  command_output operator()(const std::vector<std::string>& argv, const command_options&) {
    if (argv[0] == "squeue") {
      ++squeue_calls;
      last_squeue = argv;
      return squeue(argv.back());
    }
    ++scontrol_calls;
    auto it = scontrol.find(argv.back());
    if (it != scontrol.end()) return it->second;
    return answer(1, "", "slurm_load_jobs error: Invalid job id specified\n");
  }
};

// A line of `squeue_format` output for job `id`.
std::string line(const std::string& id, const std::string& state, const std::string& reason,
                 const std::string& left = "UNLIMITED") {
  return id + "|" + state + "|" + reason + "|" + left + "|UNLIMITED|2|n[1-2]|N/A|leaseq\n";
}

std::string with_id(std::string text, const std::string& from, const std::string& to) {
  for (auto p = text.find(from); p != std::string::npos; p = text.find(from, p + to.size()))
    text.replace(p, from.size(), to);
  return text;
}

fs::path write_script(const fs::path& dir, const std::string& name, const std::string& body) {
  fs::path p = dir / name;
  test_support::write_text(p, "#!/bin/sh\n" + body);
  ::chmod(p.c_str(), 0755);
  return p;
}

}  // namespace

TEST_CASE("one batched squeue answers for every lease", "[slurm]") {
  temp_dir tmp;
  home_paths home(tmp.path());
  manual_clock clock;
  fake_slurm slurm;
  slurm.squeue = [](const std::string&) {
    return answer(0, line("100", "RUNNING", "None", "10:42") + line("101", "PENDING", "Resources"));
  };
  auto st = slurm_lease_states(home, {"101", "100", "local:host"}, 20, {}, clock, slurm);
  CHECK(slurm.squeue_calls == 1);
  CHECK(slurm.scontrol_calls == 0);
  CHECK(slurm.last_squeue == std::vector<std::string>{"squeue", "-h", "-t", "all", "-o",
                                                      std::string(squeue_format), "-j", "100,101"});
  REQUIRE(st.size() == 2);  // the local lease is not Slurm's
  CHECK(st["100"].state == "RUNNING");
  CHECK(st["100"].source == "squeue");
  CHECK(st["100"].time_left_text(clock.now()) == "10:42");
  CHECK(st["100"].time_left_text(clock.now() + 42) == "10:00");  // counts down from `seen`
  CHECK(st["101"].state == "PENDING");
  CHECK(st["101"].reason == "Resources");
  CHECK(st["101"].time_left_text(clock.now()) == "-");
  CHECK_FALSE(st["101"].stale);
}

TEST_CASE("a job squeue no longer lists comes from scontrol, then the last state seen", "[slurm]") {
  temp_dir tmp;
  home_paths home(tmp.path());
  manual_clock clock;
  fake_slurm slurm;
  // Recorded outputs with their job ids rewritten to 200.
  std::string completed_id = parse_squeue(fixture("squeue_completed")).jobs.at(0).id;
  std::string running = line("200", "RUNNING", "None");
  slurm.squeue = [&](const std::string&) { return answer(0, running); };
  auto st = slurm_lease_states(home, {"200"}, 20, {}, clock, slurm);
  CHECK(st["200"].state == "RUNNING");

  // Finished: squeue -t all would list it for MinJobAge; here squeue dropped it, scontrol knows.
  slurm.squeue = [](const std::string&) { return answer(0, ""); };
  slurm.scontrol["200"] =
      answer(0, with_id(fixture("scontrol_completed"), "JobId=" + completed_id, "JobId=200"));
  clock.advance(30);
  st = slurm_lease_states(home, {"200"}, 20, {}, clock, slurm);
  CHECK(slurm.scontrol_calls == 1);
  CHECK(st["200"].state == "COMPLETED");
  CHECK(st["200"].source == "scontrol");
  CHECK_FALSE(st["200"].stale);
  double seen = st["200"].seen;

  // Slurm forgets the job: squeue with one unknown id exits 1, scontrol too.
  slurm.squeue = [](const std::string&) {
    return answer(1, "", "slurm_load_jobs error: Invalid job id specified\n");
  };
  slurm.scontrol.clear();
  clock.advance(300);
  st = slurm_lease_states(home, {"200"}, 20, {}, clock, slurm);
  CHECK(st["200"].state == "COMPLETED");
  CHECK(st["200"].stale);
  CHECK(st["200"].source == "last_seen");
  CHECK(st["200"].seen == seen);
  CHECK(st["200"].error.empty());
  CHECK(slurm.scontrol_calls == 2);

  // A forgotten job costs no more scontrol calls, and survives in the cache file.
  clock.advance(300);
  st = slurm_lease_states(home, {"200"}, 20, {}, clock, slurm);
  CHECK(slurm.scontrol_calls == 2);
  CHECK(st["200"].state == "COMPLETED");
  CHECK(read_slurm_cache(home).jobs.at("200").stale);
}

TEST_CASE("a job Slurm never showed us is UNKNOWN with the reason", "[slurm]") {
  temp_dir tmp;
  home_paths home(tmp.path());
  manual_clock clock;
  fake_slurm slurm;
  slurm.squeue = [](const std::string&) { return answer(0, ""); };
  auto st = slurm_lease_states(home, {"300"}, 20, {}, clock, slurm);
  CHECK(st["300"].state == "UNKNOWN");
  CHECK_THAT(st["300"].error, Catch::Contains("Invalid job id specified"));
}

TEST_CASE("squeue is asked at most once per slurm_refresh_s, never under 10 s", "[slurm]") {
  temp_dir tmp;
  home_paths home(tmp.path());
  manual_clock clock;
  fake_slurm slurm;
  slurm.squeue = [](const std::string&) { return answer(0, line("100", "RUNNING", "None")); };
  slurm_lease_states(home, {"100"}, 20, {}, clock, slurm);
  clock.advance(19);
  slurm_lease_states(home, {"100"}, 20, {}, clock, slurm);
  CHECK(slurm.squeue_calls == 1);
  clock.advance(1.5);
  slurm_lease_states(home, {"100"}, 20, {}, clock, slurm);
  CHECK(slurm.squeue_calls == 2);

  // A configured 1 s is floored at 10 s.
  clock.advance(5);
  slurm_lease_states(home, {"100"}, 1, {}, clock, slurm);
  CHECK(slurm.squeue_calls == 2);
  clock.advance(6);
  slurm_lease_states(home, {"100"}, 1, {}, clock, slurm);
  CHECK(slurm.squeue_calls == 3);

  // A lease the cache has not asked about yet forces a refresh, batched with the known one.
  slurm_lease_states(home, {"100", "101"}, 20, {}, clock, slurm);
  CHECK(slurm.squeue_calls == 4);
  CHECK(slurm.last_squeue.back() == "100,101");

  // After sbatch/scancel the cache is invalidated: the next reader asks Slurm.
  invalidate_slurm_cache(home);
  slurm_lease_states(home, {"100"}, 20, {}, clock, slurm);
  CHECK(slurm.squeue_calls == 5);
}

TEST_CASE("a cache written by another process is used instead of squeue", "[slurm]") {
  temp_dir tmp;
  home_paths home(tmp.path());
  manual_clock clock;
  fake_slurm first, second;
  first.squeue = [](const std::string&) { return answer(0, line("100", "PENDING", "Priority")); };
  second.squeue = [](const std::string&) { return answer(0, line("100", "RUNNING", "None")); };
  slurm_lease_states(home, {"100"}, 20, {}, clock, first);
  clock.advance(5);
  auto st = slurm_lease_states(home, {"100"}, 20, {}, clock, second);
  CHECK(second.squeue_calls == 0);
  CHECK(st["100"].state == "PENDING");

  // While another process holds the refresh lock, a reader with a covering cache returns it
  // at once, even when it is old.
  clock.advance(100);
  {
    detail::try_file_lock held(slurm_cache_lock_path(home));
    REQUIRE(held.try_lock());
    int rc = test_support::run_in_children(1, [&](int) {
      fake_slurm child;
      child.squeue = [](const std::string&) { return answer(0, ""); };
      auto s = slurm_lease_states(home, {"100"}, 20, {}, clock, child);
      return child.squeue_calls == 0 && s["100"].state == "PENDING" ? 0 : 1;
    });
    CHECK(rc == 0);
  }
}

TEST_CASE("processes racing for a refresh run squeue once", "[slurm]") {
  temp_dir tmp;
  home_paths home(tmp.path());
  fs::path count = tmp.path() / "calls";
  fs::path squeue =
      write_script(tmp.path(), "squeue",
                   "echo x >> " + test_support::shell_quote(count.string()) +
                       "\nsleep 0.3\necho '100|RUNNING|None|5:00|10:00|1|n1|N/A|leaseq'\n");
  slurm_options opt;
  opt.squeue = squeue.string();
  opt.timeout = std::chrono::seconds(20);
  int failures = test_support::run_in_children(6, [&](int) {
    auto st = slurm_lease_states(home, {"100"}, 20, opt);
    return st["100"].state == "RUNNING" ? 0 : 1;
  });
  CHECK(failures == 0);
  std::string calls = test_support::read_text(count);
  CHECK(std::count(calls.begin(), calls.end(), '\n') == 1);
}

TEST_CASE("a hanging, failing or missing squeue gives UNKNOWN with the error, never a freeze",
          "[slurm]") {
  temp_dir tmp;
  home_paths home(tmp.path());
  manual_clock clock;
  slurm_options opt;
  opt.timeout = std::chrono::milliseconds(300);

  // First a good answer, so there is a last state to keep.
  fake_slurm good;
  good.squeue = [](const std::string&) { return answer(0, line("100", "RUNNING", "None")); };
  slurm_lease_states(home, {"100"}, 20, opt, clock, good);

  SECTION("hanging") {
    opt.squeue = write_script(tmp.path(), "squeue", "sleep 60\n").string();
    clock.advance(30);
    auto t0 = std::chrono::steady_clock::now();
    auto st = slurm_lease_states(home, {"100"}, 20, opt, clock);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30));
    CHECK(st["100"].state == "UNKNOWN");
    CHECK_THAT(st["100"].error, Catch::Contains("timed out"));
    CHECK(st["100"].last_state == "RUNNING");
  }
  SECTION("failing, its stderr kept") {
    opt.squeue = write_script(tmp.path(), "squeue",
                              "echo 'squeue: error: Unable to contact slurm controller "
                              "(connect failure)' >&2\nexit 1\n")
                     .string();
    clock.advance(30);
    auto st = slurm_lease_states(home, {"100"}, 20, opt, clock);
    CHECK(st["100"].state == "UNKNOWN");
    CHECK_THAT(st["100"].error, Catch::Contains("Unable to contact slurm controller"));
    CHECK_THAT(st["100"].error, Catch::Contains("exit code 1"));
    // The failure is cached too: a failing Slurm is not hammered.
    fake_slurm again;
    again.squeue = [](const std::string&) { return answer(0, line("100", "RUNNING", "None")); };
    clock.advance(5);
    st = slurm_lease_states(home, {"100"}, 20, opt, clock, again);
    CHECK(again.squeue_calls == 0);
    CHECK(st["100"].state == "UNKNOWN");
    // ...and the last good state is still there for the next good refresh.
    CHECK(read_slurm_cache(home).jobs.at("100").state == "RUNNING");
  }
  SECTION("missing") {
    opt.squeue = (tmp.path() / "no-such-squeue").string();
    clock.advance(30);
    auto st = slurm_lease_states(home, {"100"}, 20, opt, clock);
    CHECK(st["100"].state == "UNKNOWN");
    CHECK_THAT(st["100"].error, Catch::Contains("no-such-squeue"));
  }
  SECTION("scontrol hanging for a job squeue dropped") {
    opt.squeue = write_script(tmp.path(), "squeue", "exit 0\n").string();
    opt.scontrol = write_script(tmp.path(), "scontrol", "sleep 60\n").string();
    clock.advance(30);
    auto st = slurm_lease_states(home, {"100"}, 20, opt, clock);
    CHECK(st["100"].state == "UNKNOWN");
    CHECK_THAT(st["100"].error, Catch::Contains("timed out"));
  }
}

TEST_CASE("a corrupt cache file is ignored and replaced", "[slurm]") {
  temp_dir tmp;
  home_paths home(tmp.path());
  test_support::write_text(slurm_cache_path(home), "{not json");
  manual_clock clock;
  fake_slurm slurm;
  slurm.squeue = [](const std::string&) { return answer(0, line("100", "RUNNING", "None")); };
  auto st = slurm_lease_states(home, {"100"}, 20, {}, clock, slurm);
  CHECK(st["100"].state == "RUNNING");
  CHECK(read_slurm_cache(home).jobs.count("100") == 1);

  // Entries that do not parse are dropped, the rest kept.
  json bad = json::parse(test_support::read_text(slurm_cache_path(home)));
  bad["jobs"]["../x"] = {{"id", "../x"}, {"state", "RUNNING"}};
  bad["jobs"]["101"] = {{"id", "101"}, {"state", "not a state"}};
  test_support::write_text(slurm_cache_path(home), bad.dump());
  slurm_cache c = read_slurm_cache(home);
  CHECK(c.jobs.size() == 1);
  CHECK(c.jobs.count("100") == 1);
}

// Found by the hostile-input tests: `leaseq status` run by a user who may read the home but not
// write it failed with "cannot open lock file" instead of showing the lease.
TEST_CASE("a home where the cache lock cannot be opened still answers", "[slurm][hostile]") {
  temp_dir tmp;
  home_paths home(tmp.path());
  fs::create_directories(slurm_cache_lock_path(home));  // open(O_RDWR) fails: EISDIR
  manual_clock clock;
  fake_slurm slurm;
  slurm.squeue = [](const std::string&) { return answer(0, line("100", "RUNNING", "None")); };
  auto st = slurm_lease_states(home, {"100"}, 20, {}, clock, slurm);
  CHECK(slurm.squeue_calls == 1);
  CHECK(st["100"].state == "RUNNING");
}

namespace {
int refused_flock_errno = ENOSYS;
int refusing_flock(int, int) {
  errno = refused_flock_errno;
  return -1;
}
// Makes every flock of this process fail with `err` for its lifetime.
struct flock_refused {
  explicit flock_refused(int err) {
    refused_flock_errno = err;
    detail::flock_call = refusing_flock;
  }
  flock_refused(const flock_refused&) = delete;
  flock_refused& operator=(const flock_refused&) = delete;
  ~flock_refused() { detail::flock_call = ::flock; }
};
}  // namespace

TEST_CASE("a filesystem that refuses locks: the Slurm refresh lock counts as held", "[slurm]") {
  temp_dir tmp;
  home_paths home(tmp.path());
  home.ensure_root();
  for (int err : {ENOSYS, ENOLCK, EOPNOTSUPP}) {
    INFO("flock fails with " << std::strerror(err));
    flock_refused refused(err);
    detail::try_file_lock lock(slurm_cache_lock_path(home));
    CHECK(lock.try_lock());
    CHECK(lock.locked());
    file_lock blocking(slurm_cache_lock_path(home));
    CHECK_FALSE(blocking.held());  // goes on unguarded, no throw
    // And a reader with no cache asks Slurm itself instead of waiting for a holder.
    fs::remove(slurm_cache_path(home));
    fake_slurm f;
    f.squeue = [](const std::string&) { return answer(0, line("100", "RUNNING", "None")); };
    manual_clock clock;
    auto st = slurm_lease_states(home, {"100"}, 20, {}, clock, f);
    CHECK(f.squeue_calls == 1);
    CHECK(st["100"].state == "RUNNING");
  }
  // Contention is not refusal: a lock really held elsewhere is not taken.
  {
    flock_refused refused(EWOULDBLOCK);
    detail::try_file_lock lock(slurm_cache_lock_path(home));
    CHECK_FALSE(lock.try_lock());
  }
}
