// Trust, against the real program (issue 15, items 3 and 4): a home owned by another user or
// writable by others is refused with the exact fix, task files others can read are warned
// about once, and no command writes through a symlink planted anywhere from the home down
// (inbox/_any, keys, control/<node>, runs/<lease>).
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/paths.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::shell_quote;
using test_support::temp_dir;

namespace {

struct trust_home {
  temp_dir tmp;
  fs::path home = tmp / "home";
  fs::path outside = tmp / "outside";  // where a planted link points
  std::string lease = "local:trust";
  lease_paths lp{home_paths(home), lease};

  trust_home() { fs::create_directories(outside); }

  // stdout and stderr together; bounded, since a runner that is not refused runs on.
  test_support::command_result leaseq(const std::string& args) const {
    return test_support::run_command("LEASEQ_HOME=" + shell_quote(home.string()) + " timeout 30 " +
                                     shell_quote(LEASEQ_BIN) + " " + args + " 2>&1 </dev/null");
  }
  test_support::command_result submit(const std::string& args = "-- /bin/true") const {
    return leaseq("submit --lease " + shell_quote(lease) + " " + args);
  }
  bool outside_empty() const { return fs::directory_iterator(outside) == fs::directory_iterator(); }
};

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("a home owned by another user is refused to every writer, with the chown fix",
          "[trust]") {
  const passwd* nobody = ::geteuid() == 0 ? ::getpwnam("nobody") : nullptr;
  if (!nobody) {
    WARN("needs root and a `nobody` user to hand a home to another user; skipped");
    return;
  }
  trust_home h;
  auto first = h.submit();
  INFO(first.out);
  REQUIRE(first.exit_code == 0);
  REQUIRE(::chown(h.home.c_str(), nobody->pw_uid, nobody->pw_gid) == 0);

  for (const std::string& args :
       {"submit --lease " + shell_quote(h.lease) + " -- /bin/true",
        "pause --lease " + shell_quote(h.lease) + " n1", "lease use " + shell_quote(h.lease),
        "runner --lease " + shell_quote(h.lease) + " --node n1 --gpus none"}) {
    auto r = h.leaseq(args);
    INFO(args << "\n" << r.out);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find(h.home.string() + " is owned by nobody") != std::string::npos);
    CHECK(r.out.find("chown -R root " + h.home.string()) != std::string::npos);
  }
  // Nothing was added: the task the first submit left is still the only one, never run.
  CHECK(fs::exists(h.lp.inbox_task("_any", "T001")));
  CHECK_FALSE(fs::exists(h.lp.inbox_task("_any", "T002")));
  CHECK_FALSE(fs::exists(h.lp.control("n1")));
  // Reading is allowed: what the reader shows changes nothing there.
  auto st = h.leaseq("tasks --lease " + shell_quote(h.lease));
  INFO(st.out);
  CHECK(st.exit_code == 0);
  CHECK(st.out.find("T001") != std::string::npos);
}

TEST_CASE("a home writable by others is refused with chmod 700, 0755 is accepted", "[trust]") {
  trust_home h;
  REQUIRE(h.submit().exit_code == 0);
  ::chmod(h.home.c_str(), 0777);
  for (const std::string& args :
       {"submit --lease " + shell_quote(h.lease) + " -- /bin/true",
        "status --lease " + shell_quote(h.lease), "lease use " + shell_quote(h.lease)}) {
    auto r = h.leaseq(args);
    INFO(args << "\n" << r.out);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("writable by group and others (mode 0777)") != std::string::npos);
    CHECK(r.out.find("chmod 700 " + h.home.string()) != std::string::npos);
  }
  ::chmod(h.home.c_str(), 0700);
  ::chmod(h.lp.root().c_str(), 0770);
  auto tree = h.submit();
  INFO(tree.out);
  CHECK(tree.exit_code == 1);
  CHECK(tree.out.find("chmod 700 " + h.lp.root().string()) != std::string::npos);
  ::chmod(h.lp.root().c_str(), 0700);

  ::chmod(h.home.c_str(), 0755);  // others may look, not write: accepted, nothing to warn
  auto ok = h.submit();
  INFO(ok.out);
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("warning") == std::string::npos);
}

TEST_CASE("task files readable by others are warned about, once, and still work", "[trust]") {
  trust_home h;
  REQUIRE(h.submit("--env AWS_SECRET_ACCESS_KEY=s3cr3t -- /bin/true").exit_code == 0);
  test_support::run_command("chmod -R 755 " + shell_quote(h.home.string()));
  for (const std::string& args : {"status --lease " + shell_quote(h.lease),
                                  "submit --lease " + shell_quote(h.lease) + " -- /bin/true"}) {
    auto r = h.leaseq(args);
    INFO(args << "\n" << r.out);
    CHECK(r.exit_code == 0);
    CHECK(count(r.out, "can be read by other users") == 1);
    CHECK(r.out.find(h.lp.inbox_task("_any", "T001").string()) != std::string::npos);
    CHECK(r.out.find("chmod -R go-rwx " + h.home.string()) != std::string::npos);
  }
  test_support::run_command("chmod -R go-rwx " + shell_quote(h.home.string()));
  auto quiet = h.leaseq("status --lease " + shell_quote(h.lease));
  INFO(quiet.out);
  CHECK(quiet.out.find("warning") == std::string::npos);
}

TEST_CASE("submit, submit --key, pause and resume never write through a planted symlink",
          "[trust]") {
  trust_home h;
  REQUIRE(h.submit().exit_code == 0);

  SECTION("inbox/_any") {
    fs::remove_all(h.lp.inbox("_any"));
    fs::create_directory_symlink(h.outside, h.lp.inbox("_any"));
    auto r = h.submit();
    INFO(r.out);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("symbolic link " + h.lp.inbox("_any").string()) != std::string::npos);
  }
  SECTION("keys") {
    fs::create_directory_symlink(h.outside, h.lp.keys_dir());
    auto r = h.submit("--key k1 -- /bin/true");
    INFO(r.out);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("symbolic link " + h.lp.keys_dir().string()) != std::string::npos);
  }
  SECTION("control/<node>") {
    fs::create_directories(h.lp.control_root());
    fs::create_directory_symlink(h.outside, h.lp.control("n1"));
    for (const char* verb : {"pause", "resume"}) {
      auto r = h.leaseq(std::string(verb) + " --lease " + shell_quote(h.lease) + " n1");
      INFO(verb << "\n" << r.out);
      CHECK(r.exit_code == 1);
      CHECK(r.out.find("symbolic link " + h.lp.control("n1").string()) != std::string::npos);
    }
  }
  SECTION("runs/<lease>: no seq, lease.json, inbox/ or control/ lands in the target") {
    lease_paths other(home_paths(h.home), "local:other");
    fs::create_directory_symlink(h.outside, other.root());
    for (const std::string& args : {std::string("submit --lease local:other -- /bin/true"),
                                    std::string("pause --lease local:other n1"),
                                    std::string("resume --lease local:other n1")}) {
      auto r = h.leaseq(args);
      INFO(args << "\n" << r.out);
      CHECK(r.exit_code == 1);
      CHECK(r.out.find("symbolic link " + other.root().string()) != std::string::npos);
    }
  }
  CHECK(h.outside_empty());
}

// Audit of issue 15: cancelling a pending task of a lane no live runner serves moves it into
// claimed/<node> and writes its result into done/<node> itself; it wrote T002.result.json
// through a symlinked done/n1.
TEST_CASE("cancel of an unserved pending task never writes through a symlinked claimed or done",
          "[trust]") {
  trust_home h;
  REQUIRE(h.submit("--node n1 --force -- /bin/true").exit_code == 0);
  std::string planted = GENERATE(std::string("claimed"), std::string("done"));
  fs::path link = h.lp.root() / planted / "n1";
  fs::create_directories(link.parent_path());
  fs::create_directory_symlink(h.outside, link);
  auto r = h.leaseq("cancel --lease " + shell_quote(h.lease) + " T001");
  INFO(planted << "\n" << r.out);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("symbolic link " + link.string()) != std::string::npos);
  CHECK(h.outside_empty());
  CHECK(fs::exists(h.lp.inbox_task("n1", "T001")));  // still pending, untouched
  // Once the link is gone the same cancel works.
  fs::remove(link);
  auto ok = h.leaseq("cancel --lease " + shell_quote(h.lease) + " T001");
  INFO(ok.out);
  CHECK(ok.exit_code == 0);
  CHECK(fs::exists(h.lp.result("n1", "T001")));
}

namespace {

// A detached runner of h.lease for node n3, stopped (SIGTERM) when the test ends.
struct detached_runner {
  const trust_home& h;
  pid_t pid = -1;
  explicit detached_runner(const trust_home& home) : h(home) {
    auto r = h.leaseq("runner --detach --lease " + shell_quote(h.lease) +
                      " --node n3 --gpus none --heartbeat 0.2");
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    std::istringstream lines(r.out);  // the pid on stdout, a note on stderr
    for (std::string line; std::getline(lines, line);)
      if (!line.empty() && line.find_first_not_of("0123456789") == std::string::npos)
        pid = std::stoi(line);
    REQUIRE(pid > 1);
  }
  ~detached_runner() {
    if (pid > 1) ::kill(pid, SIGTERM);
  }
  std::string log() const { return test_support::read_text(h.lp.runner_log("n3")); }
  json heartbeat() const {
    try {
      return json::parse(test_support::read_text(h.lp.heartbeat("n3")));
    } catch (const std::exception&) {
      return json::object();
    }
  }
  // Until the runner has written two more heartbeats: it has had passes to act in since.
  void two_more_heartbeats() const {
    for (int i = 0; i < 2; ++i) {
      double ts = heartbeat().value("ts", 0.0);
      REQUIRE(test_support::wait_until([&] { return heartbeat().value("ts", 0.0) > ts; }));
    }
  }
};

// `sh -c script` as nobody.
test_support::command_result as_nobody(const std::string& script) {
  return test_support::run_command("setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c " +
                                   shell_quote(script) + " 2>&1");
}

bool can_act_as_nobody() {
  return ::geteuid() == 0 && ::getpwnam("nobody") &&
         test_support::run_command("setpriv --reuid=nobody --regid=nogroup --clear-groups true")
                 .exit_code == 0;
}

}  // namespace

// Audit of issue 15: only the home, runs/ and runs/<lease> were checked. With the tree 0755 and
// control/n3 chmod 0777, `nobody` wrote control/n3/pause.json and root's runner paused.
TEST_CASE("a pause written by another user into a control directory others may write is ignored",
          "[trust]") {
  if (!can_act_as_nobody()) {
    WARN("needs root, a `nobody` user and setpriv; skipped");
    return;
  }
  trust_home h;
  REQUIRE(h.submit().exit_code == 0);
  detached_runner r(h);
  REQUIRE(test_support::wait_until([&] { return fs::exists(h.lp.heartbeat("n3")); }));
  for (const fs::path& d :
       {h.tmp.path(), h.home, h.home / "runs", h.lp.root(), h.lp.control_root()})
    REQUIRE(::chmod(d.c_str(), 0755) == 0);
  REQUIRE(::chmod(h.lp.control("n3").c_str(), 0777) == 0);
  fs::path pause = h.lp.control("n3") / "pause.json";
  auto wrote =
      as_nobody("printf '{\"ts\":1e12,\"by\":\"nobody\"}' > " + shell_quote(pause.string()));
  INFO(wrote.out);
  REQUIRE(wrote.exit_code == 0);
  REQUIRE(test_support::wait_until([&] {
    return r.log().find("refusing to use the directory " + h.lp.control("n3").string()) !=
           std::string::npos;
  }));
  r.two_more_heartbeats();
  CHECK(r.heartbeat().value("paused", true) == false);
  CHECK(fs::exists(pause));  // never consumed
  // The CLI says what to fix.
  auto cli = h.submit();
  INFO(cli.out);
  CHECK(cli.exit_code == 1);
  CHECK(cli.out.find("chmod 700 " + h.lp.control("n3").string()) != std::string::npos);

  // A private control directory holding a file of another user's (left from before it was
  // tightened): the file is not obeyed either.
  REQUIRE(::chmod(h.lp.control("n3").c_str(), 0700) == 0);
  REQUIRE(::chown(pause.c_str(), ::getpwnam("nobody")->pw_uid, ::getpwnam("nobody")->pw_gid) == 0);
  REQUIRE(test_support::wait_until(
      [&] { return r.log().find(pause.string() + ": not a file of yours") != std::string::npos; }));
  r.two_more_heartbeats();
  CHECK(r.heartbeat().value("paused", true) == false);
  // The runner's own pause still works.
  REQUIRE(::unlink(pause.c_str()) == 0);
  auto own = h.leaseq("pause --lease " + shell_quote(h.lease) + " n3");
  INFO(own.out);
  REQUIRE(own.exit_code == 0);
  CHECK(test_support::wait_until([&] { return r.heartbeat().value("paused", false); }));
}

// The runner's owner check on inbox files, against the real program: a task file another user
// owns (nobody's, in root's inbox) is never run; root's own task after it runs.
TEST_CASE("a task file owned by another user is never run by the runner", "[trust]") {
  const passwd* nobody = ::geteuid() == 0 ? ::getpwnam("nobody") : nullptr;
  if (!nobody) {
    WARN("needs root and a `nobody` user; skipped");
    return;
  }
  trust_home h;
  REQUIRE(h.submit("-- touch " + shell_quote((h.outside / "ran").string())).exit_code == 0);
  fs::path foreign = h.lp.inbox_task("_any", "T001");
  REQUIRE(::chown(foreign.c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
  REQUIRE(h.submit("-- /bin/true").exit_code == 0);
  detached_runner r(h);
  REQUIRE(test_support::wait_until([&] { return fs::exists(h.lp.result("n3", "T002")); }));
  CHECK(test_support::wait_until(
      [&] { return r.log().find("not owned by this runner's user") != std::string::npos; }));
  r.two_more_heartbeats();
  CHECK(fs::exists(foreign));
  CHECK_FALSE(fs::exists(h.lp.result("n3", "T001")));
  CHECK_FALSE(fs::exists(h.outside / "ran"));
}

// Audit of issue 15: the task logs (and the supervisor's .exit file) were opened by path. The
// runner refuses a symlinked logs/<node> and creates them relative to a directory descriptor
// walked from the home (the swap after its check: the [runner] unit test on posix_process_ops).
TEST_CASE("a symlinked logs directory never receives a task's log", "[trust]") {
  trust_home h;
  REQUIRE(h.submit().exit_code == 0);
  fs::create_directories(h.lp.logs_root());
  fs::create_directory_symlink(h.outside, h.lp.logs("n3"));
  detached_runner r(h);
  REQUIRE(test_support::wait_until([&] {
    return r.log().find("refusing to write through " + h.lp.logs("n3").string()) !=
           std::string::npos;
  }));
  r.two_more_heartbeats();
  CHECK(h.outside_empty());
  CHECK(fs::exists(h.lp.inbox_task("_any", "T001")));  // not claimed, not run
  CHECK_FALSE(fs::exists(h.lp.result("n3", "T001")));
}
