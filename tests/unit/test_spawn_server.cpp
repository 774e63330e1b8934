// The spawn server: it starts each task in a session of its own, records its end in the status
// file before telling the caller, signals a task only while it holds it unreaped, and outlives
// its caller until its tasks end.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <set>
#include <thread>

#include <leaseq/engine/spawn_server.hpp>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;

namespace {

// Asks the server to run argv (by default `sh -c script`) with its logs and status file in
// dir; $MARK is dir, the task runs in the caller's directory.
served_spawn start(spawn_server& s, const fs::path& dir, const std::string& script,
                   std::optional<double> limit = std::nullopt, std::vector<std::string> argv = {}) {
  served_request r;
  r.argv = argv.empty() ? std::vector<std::string>{"sh", "-c", script} : argv;
  r.env = {"PATH=" + dir.string() + ":/usr/bin:/bin", "MARK=" + dir.string()};
  r.status_path = (dir / "T001.exit").string();
  r.attempt = "n-1-abc";
  r.time_limit_s = limit;
  r.grace_s = 0.3;
  detail::unique_fd out(
      ::open((dir / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  detail::unique_fd err(
      ::open((dir / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  detail::unique_fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  return s.spawn(r, out.get(), err.get(), d.get());
}

// The next end the server reports, waiting up to 20 s.
std::optional<child_exit> wait_exit(spawn_server& s) {
  for (int i = 0; i < 2000; ++i) {
    if (auto e = s.next_exit()) return e;
    if (!s.alive()) return std::nullopt;
    pollfd p{s.fd(), POLLIN, 0};
    ::poll(&p, 1, 10);
  }
  return std::nullopt;
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

bool eventually(const std::function<bool()>& f) {
  for (int i = 0; i < 2000; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

TEST_CASE("spawn_server: a task runs in a session of its own, its end on file before it is told",
          "[spawn_server]") {
  temp_dir t;
  std::optional<spawn_server> s(std::in_place);
  REQUIRE(s->alive());
  auto st = start(*s, t.path(), "echo \"$MARK\"; awk '{ print $6 }' /proc/$$/stat >&2; exit 7");
  REQUIRE(st.pid > 1);
  CHECK_FALSE(st.server_gone);
  CHECK(st.start_ticks == detail::process_start_ticks(st.pid).value_or(st.start_ticks));
  CHECK(s->serves(st.pid));
  auto e = wait_exit(*s);
  REQUIRE(e);
  CHECK(e->pid == st.pid);
  CHECK(e->exit_code == 7);
  CHECK_FALSE(e->signal);
  CHECK_FALSE(s->serves(st.pid));
  // Written before the report: no wait needed.
  auto recorded = read_exit_status(t / "T001.exit", "n-1-abc");
  REQUIRE(recorded);
  CHECK(recorded->exit_code == 7);
  CHECK_FALSE(recorded->time_limit);
  CHECK(test_support::read_text(t / "out") == t.path().string() + "\n");
  CHECK(test_support::read_text(t / "err") == std::to_string(st.pid) + "\n");  // its session
  close_server(s);
}

TEST_CASE("spawn_server: a program that cannot start is told at once, as spawn_failed says it",
          "[spawn_server]") {
  temp_dir t;
  std::optional<spawn_server> s(std::in_place);
  auto st = start(*s, t.path(), "", std::nullopt, {"no-such-program-leaseq"});
  CHECK(st.pid <= 0);
  CHECK_FALSE(st.server_gone);
  CHECK(st.error == "no-such-program-leaseq: No such file or directory");
  served_request r;
  r.argv = {"true"};
  r.cwd = (t / "missing").string();
  r.status_path = (t / "T001.exit").string();
  detail::unique_fd d(::open(t.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  auto bad_cwd = s->spawn(r, 1, 2, d.get());
  CHECK(bad_cwd.pid <= 0);
  CHECK(bad_cwd.error == "cwd " + r.cwd + ": No such file or directory");
  CHECK(s->alive());
  close_server(s);
}

TEST_CASE("spawn_server: the program is found in the task's PATH, with or without a #! line",
          "[spawn_server]") {
  temp_dir t;
  std::optional<spawn_server> s(std::in_place);
  test_support::write_text(t / "with-shebang", "#!/bin/sh\necho shebang \"$1\"\n");
  test_support::write_text(t / "without-shebang", "echo plain \"$1\"\nexit 3\n");
  fs::permissions(t / "with-shebang", fs::perms::owner_all);
  fs::permissions(t / "without-shebang", fs::perms::owner_all);
  auto a = start(*s, t.path(), "", std::nullopt, {"with-shebang", "x y"});
  REQUIRE(a.pid > 1);
  auto e = wait_exit(*s);
  REQUIRE(e);
  CHECK(e->exit_code == 0);
  CHECK(test_support::read_text(t / "out") == "shebang x y\n");
  auto b = start(*s, t.path(), "", std::nullopt, {"without-shebang", "z"});
  REQUIRE(b.pid > 1);
  e = wait_exit(*s);
  REQUIRE(e);
  CHECK(e->exit_code == 3);
  CHECK(test_support::read_text(t / "out") == "plain z\n");
  close_server(s);
}

TEST_CASE("spawn_server: a signal goes to the task's whole group, through the server",
          "[spawn_server]") {
  temp_dir t;
  std::optional<spawn_server> s(std::in_place);
  auto st = start(*s, t.path(), "sleep 30 & echo $! > \"$MARK/child\"; wait");
  REQUIRE(st.pid > 1);
  REQUIRE(eventually([&] { return test_support::read_text(t / "child").size() > 1; }));
  pid_t child = std::atoi(test_support::read_text(t / "child").c_str());
  REQUIRE(s->signal(st.pid, SIGTERM));
  auto e = wait_exit(*s);
  REQUIRE(e);
  CHECK(e->signal == SIGTERM);
  CHECK(eventually([&] { return ::kill(child, 0) != 0; }));  // the background child too
  auto recorded = read_exit_status(t / "T001.exit", "n-1-abc");
  REQUIRE(recorded);
  CHECK(recorded->signal == SIGTERM);
  // A task whose end was reported is no longer the server's: nothing is sent.
  CHECK_FALSE(s->serves(st.pid));
  close_server(s);
}

TEST_CASE("spawn_server: a time limit is SIGTERM to the group, then SIGKILL after the grace",
          "[spawn_server]") {
  temp_dir t;
  std::optional<spawn_server> s(std::in_place);
  auto polite = start(*s, t.path(), "sleep 30", 0.2);
  REQUIRE(polite.pid > 1);
  auto e = wait_exit(*s);
  REQUIRE(e);
  CHECK(e->signal == SIGTERM);
  auto recorded = read_exit_status(t / "T001.exit", "n-1-abc");
  REQUIRE(recorded);
  CHECK(recorded->time_limit);
  auto stubborn = start(*s, t.path(), "trap '' TERM; sleep 30; sleep 30", 0.2);
  REQUIRE(stubborn.pid > 1);
  e = wait_exit(*s);
  REQUIRE(e);
  CHECK(e->signal == SIGKILL);
  recorded = read_exit_status(t / "T001.exit", "n-1-abc");
  REQUIRE(recorded);
  CHECK(recorded->time_limit);
  CHECK(recorded->signal == SIGKILL);
  close_server(s);
}

TEST_CASE("spawn_server: with its caller gone it sees its tasks to the end, then exits",
          "[spawn_server]") {
  temp_dir t;
  std::optional<spawn_server> s(std::in_place);
  auto st = start(*s, t.path(), "while [ ! -e \"$MARK/go\" ]; do sleep 0.01; done; exit 5");
  REQUIRE(st.pid > 1);
  pid_t server = s->pid();
  s.reset();  // the caller's end closes, as when a runner is killed
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(::waitpid(server, nullptr, WNOHANG) == 0);  // still there: its task runs
  CHECK_FALSE(fs::exists(t / "T001.exit"));
  test_support::write_text(t / "go", "");
  int status = wait_for(server);
  CHECK(WIFEXITED(status));
  auto recorded = read_exit_status(t / "T001.exit", "n-1-abc");
  REQUIRE(recorded);
  CHECK(recorded->exit_code == 5);
}

TEST_CASE("spawn_server: a killed server is reported, its tasks run on, lost to it",
          "[spawn_server]") {
  temp_dir t;
  spawn_server s;
  auto st =
      start(s, t.path(), "while [ ! -e \"$MARK/go\" ]; do sleep 0.01; done; touch \"$MARK/ran\"");
  REQUIRE(st.pid > 1);
  ::kill(s.pid(), SIGKILL);
  wait_for(s.pid());
  CHECK_FALSE(s.next_exit());
  CHECK_FALSE(s.alive());
  CHECK(s.take_lost() == std::vector<pid_t>{st.pid});
  CHECK(s.take_lost().empty());  // each once
  auto after = start(s, t.path(), "true");
  CHECK(after.server_gone);
  // The task started before the kill runs to its end (init reaps it).
  test_support::write_text(t / "go", "");
  CHECK(eventually([&] { return fs::exists(t / "ran"); }));
  CHECK_FALSE(fs::exists(t / "T001.exit"));
}

TEST_CASE("spawn_server: a task gets stdin, stdout and stderr, no other descriptor",
          "[spawn_server]") {
  temp_dir t;
  int leaked = ::open("/dev/null", O_RDONLY);  // not close-on-exec in the caller
  std::optional<spawn_server> s(std::in_place);
  ::close(leaked);
  // Listed from outside once the task is sleep: a shell listing its own descriptors would
  // race with its pipeline's pipe (or see the one it lists with).
  auto st = start(*s, t.path(), "exec sleep 30");
  REQUIRE(st.pid > 1);
  const auto proc = fs::path("/proc") / std::to_string(st.pid);
  REQUIRE(eventually([&] { return test_support::read_text(proc / "comm") == "sleep\n"; }));
  std::set<std::string> fds;
  for (const auto& e : fs::directory_iterator(proc / "fd")) fds.insert(e.path().filename());
  CHECK(fds == std::set<std::string>{"0", "1", "2"});
  REQUIRE(s->signal(st.pid, SIGKILL));
  auto e = wait_exit(*s);
  REQUIRE(e);
  CHECK(e->signal == SIGKILL);
  close_server(s);
}
