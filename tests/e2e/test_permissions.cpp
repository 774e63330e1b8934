// Permissions: after a real runner, submit, control and local-lease session, LEASEQ_HOME and
// every directory under it are 0700 and every file 0600, even when the user's umask is 000.
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>

#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <leaseq/detail/dir.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/paths.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::shell_quote;
using test_support::temp_dir;
using test_support::wait_until;
using namespace std::chrono_literals;

namespace {

struct perm_home {
  temp_dir tmp;
  fs::path home = tmp / "home";  // does not exist yet: leaseq creates it
  std::string lease = "local:perm";

  // Runs the program with umask 000, so only the modes leaseq asks for are left.
  test_support::command_result leaseq(const std::string& args) const {
    return test_support::run_command("umask 000; LEASEQ_HOME=" + shell_quote(home.string()) + " " +
                                     shell_quote(LEASEQ_BIN) + " " + args + " 2>&1 </dev/null");
  }
  std::string submit(const std::string& args) const {
    auto r = leaseq("submit --lease " + shell_quote(lease) + " " + args);
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    std::string id = r.out.substr(0, r.out.find('\n'));
    REQUIRE(is_valid_task_id(id));
    return id;
  }
};

std::string mode_text(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

}  // namespace

TEST_CASE("LEASEQ_HOME is 0700, every directory leaseq makes 0700, every file 0600",
          "[permissions]") {
  perm_home h;
  lease_paths lp(h.home / "runs" / h.lease);
  // A runner (detached, as `lease local start` would start it), then submits, controls.
  auto start = h.leaseq("runner --detach --lease " + shell_quote(h.lease) +
                        " --node n1 --slots 2 --gpus none --grace 1 --heartbeat 0.5");
  INFO(start.out);
  REQUIRE(start.exit_code == 0);
  std::string quick = h.submit("-- /bin/sh -c 'echo out; echo err >&2'");
  std::string keyed = h.submit("--key k1 --env A=1 -- /bin/true");
  std::string slow = h.submit("-- /bin/sleep 60");
  std::string pinned = h.submit("--node n1 --shell -- exit 3");
  REQUIRE(wait_until([&] { return fs::exists(lp.claimed_task("n1", slow)); }, 60s));
  REQUIRE(h.leaseq("cancel --lease " + shell_quote(h.lease) + " " + slow).exit_code == 0);
  REQUIRE(h.leaseq("pause --lease " + shell_quote(h.lease) + " n1").exit_code == 0);
  REQUIRE(h.leaseq("resume --lease " + shell_quote(h.lease) + " n1").exit_code == 0);
  for (const auto& id : {quick, keyed, slow, pinned})
    REQUIRE(wait_until([&] { return fs::exists(lp.result("n1", id)); }, 60s));
  auto retry = h.leaseq("retry --lease " + shell_quote(h.lease) + " " + pinned);
  REQUIRE(retry.exit_code == 0);
  std::string again = retry.out.substr(0, retry.out.find('\n'));
  REQUIRE(wait_until([&] { return fs::exists(lp.result("n1", again)); }, 60s));
  // The local lease's own commands, and the readers (which must create nothing odd either).
  CHECK(h.leaseq("status --lease " + shell_quote(h.lease)).exit_code == 0);
  CHECK(h.leaseq("tasks --lease " + shell_quote(h.lease)).exit_code == 0);
  CHECK(h.leaseq("logs --lease " + shell_quote(h.lease) + " " + quick).exit_code == 0);
  // Stop the runner by its heartbeat's pid (`lease local stop` acts on local:<host> only).
  json_outcome hb = read_json_tolerant(lp.heartbeat("n1"));
  REQUIRE(hb.ok());
  pid_t pid = static_cast<pid_t>((*hb.value)["pid"].get<long>());
  ::kill(pid, SIGTERM);
  REQUIRE(wait_until([&] { return ::kill(pid, 0) != 0; }, 60s));
  // `lease local start|stop` on this host's local lease.
  lease_paths local(h.home / "runs" / local_lease_id(short_hostname()));
  auto local_start = h.leaseq("lease local start --node n2 --gpus none");
  INFO(local_start.out);
  REQUIRE(local_start.exit_code == 0);
  REQUIRE(wait_until([&] { return fs::exists(local.heartbeat("n2")); }, 60s));
  auto local_stop = h.leaseq("lease local stop --node n2");
  INFO(local_stop.out);
  CHECK(local_stop.out.find("stopped runner") != std::string::npos);

  struct stat st;
  REQUIRE(::stat(h.home.c_str(), &st) == 0);
  CHECK(mode_text(st.st_mode) == "0700");
  std::vector<std::string> wrong;
  std::size_t files = 0, dirs = 0;
  for (auto it = fs::recursive_directory_iterator(h.home); it != fs::recursive_directory_iterator();
       ++it) {
    REQUIRE(::lstat(it->path().c_str(), &st) == 0);
    if (S_ISDIR(st.st_mode)) {
      ++dirs;
      if ((st.st_mode & 07777) != 0700)
        wrong.push_back(it->path().string() + " " + mode_text(st.st_mode));
    } else if (S_ISREG(st.st_mode)) {
      ++files;
      if ((st.st_mode & 07777) != 0600)
        wrong.push_back(it->path().string() + " " + mode_text(st.st_mode));
    } else {
      wrong.push_back(it->path().string() + " is neither a file nor a directory");
    }
  }
  for (const auto& w : wrong) UNSCOPED_INFO(w);
  CHECK(wrong.empty());
  CHECK(dirs >= 10);   // runs, the lease, inbox/_any, claimed/n1, done/n1, logs/n1, hb, ...
  CHECK(files >= 15);  // index, lease.json, seq, locks, results, logs, heartbeat, key, ...
}
