// Trust (issue 15, items 3 and 4): who may use a home (trust.hpp) and writers that never write
// through a symlink from the home down (tree_guard.hpp open_tree_dir, paths.hpp
// open_lease_dir, and every library writer on top of them).
#include <leaseq/trust.hpp>

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <catch2/catch.hpp>
#include <leaseq/detail/tree_guard.hpp>
#include <leaseq/engine/control.hpp>
#include <leaseq/engine/seq.hpp>
#include <leaseq/engine/submit.hpp>
#include <leaseq/index.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/slurm/leases.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;
using test_support::write_text;

namespace {

// The uid of `nobody`, or -1 when this test cannot hand files to another user (not root).
int nobody_uid() {
  if (::geteuid() != 0) return -1;
  const passwd* pw = ::getpwnam("nobody");
  return pw ? static_cast<int>(pw->pw_uid) : -1;
}

std::string joined(const home_trust& t) {
  std::string s;
  for (const auto& r : t.refusals) s += r + "\n";
  return s;
}

bool empty_dir(const fs::path& p) {
  return fs::is_directory(p) && fs::directory_iterator(p) == fs::directory_iterator();
}

submit_request echo_request() {
  submit_request r;
  r.argv = {"echo", "hi"};
  r.cwd = "/tmp";
  return r;
}

// A home with one lease tree created by the library, as a first submit leaves it.
struct home_fixture {
  temp_dir tmp;
  fs::path home = tmp / "home";
  std::string id = "local:h";
  home_paths hp{home};
  lease_paths lease{hp, id};
  fs::path outside = tmp / "outside";
  home_fixture() { fs::create_directories(outside); }
};

}  // namespace

TEST_CASE("owned_by_me: our files yes, another user's and symlinks no", "[trust]") {
  temp_dir t;
  write_text(t / "mine", "x");
  CHECK(owned_by_me(t / "mine"));
  detail::unique_fd fd(::open((t / "mine").c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  CHECK(owned_by_me(fd.get()));
  fs::create_symlink(t / "mine", t / "link");
  CHECK_FALSE(owned_by_me(t / "link"));
  CHECK_FALSE(owned_by_me(t / "missing"));
  CHECK_FALSE(owned_by_me(-1));
  int nobody = nobody_uid();
  if (nobody < 0) {
    WARN("not root: cannot hand a file to another user; the rest is skipped");
    return;
  }
  REQUIRE(::chown((t / "mine").c_str(), static_cast<uid_t>(nobody), -1) == 0);
  CHECK_FALSE(owned_by_me(t / "mine"));
  CHECK_FALSE(owned_by_me(fd.get()));  // the descriptor sees the same inode
}

TEST_CASE("inspect_home: a missing or private home is trusted, writable by others is not",
          "[trust]") {
  home_fixture f;
  CHECK(inspect_home(f.home, home_use::write).ok());  // created 0700 later
  submit_task(f.lease, f.id, echo_request());
  CHECK(inspect_home(f.home, home_use::write).ok());
  CHECK_FALSE(inspect_home(f.home, home_use::write).exposed);

  ::chmod(f.home.c_str(), 0777);
  home_trust t = inspect_home(f.home, home_use::write);
  REQUIRE_FALSE(t.ok());
  CHECK_THAT(joined(t), Catch::Contains(f.home.string()));
  CHECK_THAT(joined(t), Catch::Contains("group and others"));
  CHECK_THAT(joined(t), Catch::Contains("chmod 700 " + f.home.string()));
  CHECK_FALSE(inspect_home(f.home, home_use::read).ok());  // one's own home: readers too
  CHECK_THROWS_WITH(check_home_trust(f.hp), Catch::Contains("chmod 700"));

  ::chmod(f.home.c_str(), 0720);
  CHECK_THAT(joined(inspect_home(f.home, home_use::write)), Catch::Contains("its group"));

  ::chmod(f.home.c_str(), 0755);  // readable, not writable, by others: accepted
  CHECK(inspect_home(f.home, home_use::write).ok());
}

TEST_CASE("inspect_home: runs/ and each lease tree are checked like the home", "[trust]") {
  home_fixture f;
  submit_task(f.lease, f.id, echo_request());
  ::chmod(f.lease.root().c_str(), 0707);
  home_trust t = inspect_home(f.home, home_use::write);
  REQUIRE_FALSE(t.ok());
  CHECK_THAT(joined(t), Catch::Contains("lease tree " + f.lease.root().string()));
  CHECK_THAT(joined(t), Catch::Contains("others (mode 0707)"));
  ::chmod(f.lease.root().c_str(), 0700);
  ::chmod(f.hp.runs().c_str(), 0770);
  CHECK_THAT(joined(inspect_home(f.home, home_use::write)),
             Catch::Contains("chmod 700 " + f.hp.runs().string()));
  ::chmod(f.hp.runs().c_str(), 0700);
  CHECK(inspect_home(f.home, home_use::write).ok());
  // Names that are not lease ids are never used, so never judged.
  fs::create_directories(f.hp.runs() / "not a lease");
  ::chmod((f.hp.runs() / "not a lease").c_str(), 0777);
  CHECK(inspect_home(f.home, home_use::write).ok());
}

TEST_CASE("inspect_home: a symlinked lease tree refuses writers, not readers", "[trust]") {
  home_fixture f;
  fs::create_directories(f.hp.runs());
  fs::create_directory_symlink(f.outside, f.hp.lease_dir("local:elsewhere"));
  home_trust w = inspect_home(f.home, home_use::write);
  REQUIRE_FALSE(w.ok());
  CHECK_THAT(joined(w),
             Catch::Contains("symbolic link " + f.hp.lease_dir("local:elsewhere").string()));
  CHECK(inspect_home(f.home, home_use::read).ok());
}

TEST_CASE("inspect_home: a home owned by another user is refused to writers", "[trust]") {
  int nobody = nobody_uid();
  if (nobody < 0) {
    WARN("needs root to hand a home to nobody; skipped");
    return;
  }
  home_fixture f;
  submit_task(f.lease, f.id, echo_request());
  REQUIRE(::chown(f.home.c_str(), static_cast<uid_t>(nobody), -1) == 0);
  home_trust t = inspect_home(f.home, home_use::write);
  REQUIRE_FALSE(t.ok());
  CHECK_THAT(joined(t), Catch::Contains("is owned by nobody (uid " + std::to_string(nobody)));
  CHECK_THAT(joined(t), Catch::Contains("not by you (root, uid 0)"));
  CHECK_THAT(joined(t), Catch::Contains("chown -R root " + f.home.string()));
  // Looking is allowed: an administrator reading a user's queue changes nothing there.
  CHECK(inspect_home(f.home, home_use::read).ok());

  // A lease tree of someone else inside one's own home.
  REQUIRE(::chown(f.home.c_str(), 0, -1) == 0);
  REQUIRE(::chown(f.lease.root().c_str(), static_cast<uid_t>(nobody), -1) == 0);
  CHECK_THAT(joined(inspect_home(f.home, home_use::write)),
             Catch::Contains("lease tree " + f.lease.root().string() + " is owned by nobody"));
}

TEST_CASE("inspect_home: task files others can read are reported, only where they can reach",
          "[trust]") {
  home_fixture f;
  submit_task(f.lease, f.id, echo_request());
  fs::path task = f.lease.inbox_task("_any", "T001");
  ::chmod(task.c_str(), 0644);
  CHECK_FALSE(inspect_home(f.home, home_use::read).exposed);  // the 0700 home hides it
  test_support::run_command("chmod -R go+rX " + test_support::shell_quote(f.home.string()));
  home_trust t = inspect_home(f.home, home_use::read);
  CHECK(t.ok());
  REQUIRE(t.exposed);
  CHECK_THAT(*t.exposed, Catch::Contains(task.string()));
  CHECK_THAT(*t.exposed, Catch::Contains("chmod -R go-rwx " + f.home.string()));
  ::chmod(task.c_str(), 0600);
  CHECK_FALSE(inspect_home(f.home, home_use::read).exposed);
  ::chmod(task.c_str(), 0640);  // group can search every directory and read it
  CHECK(inspect_home(f.home, home_use::read).exposed);
}

TEST_CASE("open_tree_dir: creates real directories 0700 and refuses links and files",
          "[trust][tree_guard]") {
  temp_dir t;
  fs::path home = t / "home";
  fs::path deep = home / "runs" / "L" / "inbox" / "_any";
  detail::unique_fd fd = detail::open_tree_dir(home, deep);
  REQUIRE(fd);
  struct stat st;
  REQUIRE(::stat(deep.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(detail::open_tree_dir(home, home));  // the anchor itself

  fs::create_directories(t / "outside");
  fs::create_directory_symlink(t / "outside", home / "runs" / "L" / "keys");
  try {
    detail::open_tree_dir(home, home / "runs" / "L" / "keys");
    FAIL("a symlinked directory was opened");
  } catch (const error& e) {
    CHECK_THAT(e.what(), Catch::Contains("symbolic link " + (home / "runs/L/keys").string()));
    CHECK_THAT(e.what(), Catch::Contains("-> " + (t / "outside").string()));
  }
  CHECK_THROWS_WITH(detail::open_tree_dir(home, home / "runs" / "L" / "keys" / "deeper"),
                    Catch::Contains("symbolic link"));
  CHECK(empty_dir(t / "outside"));
  write_text(home / "runs" / "L" / "hb", "a file");
  CHECK_THROWS_WITH(detail::open_tree_dir(home, home / "runs" / "L" / "hb"),
                    Catch::Contains("not a directory"));
  CHECK_THROWS_WITH(detail::open_tree_dir(home, t / "elsewhere"), Catch::Contains("not inside"));
  CHECK_THROWS_WITH(detail::open_tree_dir(home, home / ".." / "elsewhere"),
                    Catch::Contains("not inside"));
  // A home that is itself a symlink (to a bigger filesystem) is the user's choice.
  fs::create_directory_symlink(home, t / "home-link");
  CHECK(detail::open_tree_dir(t / "home-link", t / "home-link" / "runs" / "L" / "done"));
}

TEST_CASE("writers refuse a symlinked control/<node>, inbox/_any, keys, ids/ and lease tree",
          "[trust]") {
  home_fixture f;
  submit_task(f.lease, f.id, echo_request());

  SECTION("control/<node>: pause, resume and cancel") {
    fs::create_directories(f.lease.control_root());
    fs::create_directory_symlink(f.outside, f.lease.control("n1"));
    CHECK_THROWS_WITH(write_pause(f.lease, "n1"), Catch::Contains(f.lease.control("n1").string()));
    CHECK_THROWS_AS(write_resume(f.lease, "n1"), error);
    CHECK_THROWS_AS(write_cancel(f.lease, "n1", "T001"), error);
  }
  SECTION("inbox/_any: submit") {
    fs::remove_all(f.lease.inbox("_any"));
    fs::create_directory_symlink(f.outside, f.lease.inbox("_any"));
    CHECK_THROWS_WITH(submit_task(f.lease, f.id, echo_request()),
                      Catch::Contains("symbolic link " + f.lease.inbox("_any").string()));
  }
  SECTION("keys: submit --key") {
    fs::create_directory_symlink(f.outside, f.lease.keys_dir());
    submit_request r = echo_request();
    r.key = "k1";
    CHECK_THROWS_WITH(submit_task(f.lease, f.id, r), Catch::Contains("symbolic link"));
  }
  SECTION("ids/: id reservations") {
    fs::remove_all(f.lease.ids_dir());
    fs::create_directory_symlink(f.outside, f.lease.ids_dir());
    CHECK_THROWS_WITH(submit_task(f.lease, f.id, echo_request()),
                      Catch::Contains("symbolic link " + f.lease.ids_dir().string()));
  }
  SECTION("runs/<lease>: submit, control, lease.json") {
    lease_paths other(f.hp, "local:other");
    fs::create_directory_symlink(f.outside, other.root());
    CHECK_THROWS_WITH(submit_task(other, "local:other", echo_request()),
                      Catch::Contains("symbolic link " + other.root().string()));
    CHECK_THROWS_AS(write_pause(other, "n1"), error);
    CHECK_THROWS_AS(write_lease_json(other, json{{"id", "local:other"}}), error);
    // A tree reached from a bare root trusts that root: the library's own choice.
    lease_paths bare(other.root());
    CHECK_NOTHROW(write_pause(bare, "n1"));
    fs::remove_all(f.outside / "control");
  }
  CHECK(empty_dir(f.outside));
}

TEST_CASE("index.json and its locks are replaced or refused, never written through", "[trust]") {
  home_fixture f;
  fs::create_directories(f.home);
  const std::string victim = "{\"version\": 2, \"leases\": []}\n";
  write_text(f.outside / "victim", victim);
  fs::create_symlink(f.outside / "victim", f.hp.index());
  register_lease(f.hp, index_entry{"local:h", "local", std::nullopt, 1.0, json::object()});
  CHECK(test_support::read_text(f.outside / "victim") == victim);
  CHECK_FALSE(fs::is_symlink(f.hp.index()));
  fs::remove(f.hp.index_lock());
  fs::create_symlink(f.outside / "lock-victim", f.hp.index_lock());
  CHECK_THROWS_AS(
      register_lease(f.hp, index_entry{"local:g", "local", std::nullopt, 1.0, json::object()}),
      error);
  CHECK_FALSE(fs::exists(f.outside / "lock-victim"));
}
