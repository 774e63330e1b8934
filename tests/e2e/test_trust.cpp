// Trust, against the real program (issue 15, items 3 and 4): a home owned by another user or
// writable by others is refused with the exact fix, task files others can read are warned
// about once, and no command writes through a symlink planted anywhere from the home down
// (inbox/_any, keys, control/<node>, runs/<lease>).
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <catch2/catch.hpp>
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
