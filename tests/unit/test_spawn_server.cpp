// The spawn server: supervisors forked without an exec, children of the caller, that run their
// task only once released, and never when the caller gives up on them or goes away.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <leaseq/engine/spawn_server.hpp>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;

namespace {

struct started {
  std::optional<pid_t> pid;
  std::string error;
};

// Asks the server for a supervisor of `sh -c script` writing its logs and status into dir
// (also in the task's $MARK; the task runs in the caller's directory).
started start(spawn_server& s, const fs::path& dir, const std::string& script) {
  supervisor_request r;
  r.argv = {"sh", "-c", script};
  r.env = {"PATH=/usr/bin:/bin", "MARK=" + dir.string()};
  r.status_path = (dir / "T001.exit").string();
  r.attempt = "n-1-abc";
  detail::unique_fd out(
      ::open((dir / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  detail::unique_fd err(
      ::open((dir / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  detail::unique_fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  started st;
  st.pid = s.spawn(r, out.get(), err.get(), d.get(), st.error);
  return st;
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// Ends a server and reaps it, so no later test's waitpid(-1) sees it (the runner's reap()
// takes it like any child it does not know).
void close_server(std::optional<spawn_server>& s) {
  pid_t pid = s->pid();
  s.reset();
  wait_for(pid);
}

}  // namespace

TEST_CASE("spawn_server: a released supervisor runs its task as the caller's child",
          "[spawn_server]") {
  temp_dir t;
  std::optional<spawn_server> s(std::in_place);
  REQUIRE(s->alive());
  auto st = start(*s, t.path(), "echo \"$MARK\"; pwd >&2; exit 7");
  REQUIRE(st.pid);
  s->release(*st.pid, true);
  int status = wait_for(*st.pid);  // our child (CLONE_PARENT): waitpid works
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 7);
  CHECK(test_support::read_text(t / "out") == t.path().string() + "\n");
  auto recorded = read_exit_status(t / "T001.exit", "n-1-abc");
  REQUIRE(recorded);
  CHECK(recorded->exit_code == 7);
  close_server(s);
}

TEST_CASE("spawn_server: a supervisor given up on, or whose caller is gone, never runs its task",
          "[spawn_server]") {
  temp_dir t;
  std::optional<spawn_server> s(std::in_place);
  auto st = start(*s, t.path(), "touch \"$MARK/ran\"");
  REQUIRE(st.pid);
  s->release(*st.pid, false);
  int status = wait_for(*st.pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 127);
  CHECK_FALSE(fs::exists(t / "ran"));
  CHECK_FALSE(fs::exists(t / "T001.exit"));

  // The caller gone before releasing it (its end of the gate closed with the handle).
  std::optional<pid_t> pid = start(*s, t.path(), "touch \"$MARK/ran\"").pid;
  REQUIRE(pid);
  close_server(s);
  status = wait_for(*pid);
  CHECK(WEXITSTATUS(status) == 127);
  CHECK_FALSE(fs::exists(t / "ran"));
}

TEST_CASE("spawn_server: a killed server is reported, and its supervisors keep running",
          "[spawn_server]") {
  temp_dir t;
  spawn_server s;
  auto st =
      start(s, t.path(), "while [ ! -e \"$MARK/go\" ]; do sleep 0.01; done; touch \"$MARK/ran\"");
  REQUIRE(st.pid);
  s.release(*st.pid, true);
  ::kill(s.pid(), SIGKILL);
  wait_for(s.pid());
  auto after = start(s, t.path(), "true");
  CHECK_FALSE(after.pid);
  CHECK_FALSE(s.alive());
  // The supervisor forked before the kill still runs its task to the end.
  test_support::write_text(t / "go", "");
  int status = wait_for(*st.pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(fs::exists(t / "ran"));
}

TEST_CASE("spawn_server: a task that forks and exits ends its supervisor with its own status",
          "[spawn_server]") {
  temp_dir t;
  std::optional<spawn_server> s(std::in_place);
  auto st = start(*s, t.path(), "sleep 30 & exit 0");
  REQUIRE(st.pid);
  s->release(*st.pid, true);
  int status = wait_for(*st.pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  ::kill(-*st.pid, SIGKILL);  // its background child, in the supervisor's group
  close_server(s);
}
