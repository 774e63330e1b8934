// The CLI on a terminal (tmux) and through a pipe: `follow` and `logs` show a progress bar
// redrawn with \r in its last state on a terminal and pass the bytes as they are otherwise;
// `lease ls` and `status` say RUNNING (inferred) while the lease's runners heartbeat and the
// Slurm cache still holds the PENDING seen at submit.
#include <leaseq/clock.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/index.hpp>
#include <leaseq/paths.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "lease_tree.hpp"
#include "test_support.hpp"
#include "tmux.hpp"

using namespace leaseq;
using test_support::read_text;
using test_support::shell_quote;
using test_support::wait_until;
using test_support::write_text;

namespace {

// A tqdm-style bar: three states of one line, then the line after it.
const std::string bar_log = "loading\nepoch 1   5%\repoch 1  50%\repoch 1 100%\nsaved\n";

struct cli_term {
  test_support::lease_tree t;
  test_support::tmux_session tmux{t.home, 100, 30, {{"LEASEQ_HOME", t.home.string()}}};

  cli_term() { t.register_default(); }

  // Runs `leaseq args` in the terminal and waits for its exit status.
  bool run(const std::string& args, const std::string& rc = "0") {
    static int n = 0;
    std::string mark = "rc" + std::to_string(++n) + "=";
    tmux.type(std::string(LEASEQ_BIN) + " " + args + "; echo " + mark + "$?");
    tmux.keys("Enter");
    bool ok = tmux.wait_for(mark + rc);
    if (!ok) UNSCOPED_INFO("screen was:\n" << tmux.capture());
    return ok;
  }
  std::string piped(const std::string& args) const {
    return test_support::run_command("LEASEQ_HOME=" + shell_quote(t.home.string()) + " " +
                                     LEASEQ_BIN + " " + args + " </dev/null 2>/dev/null | cat")
        .out;
  }
};

void append(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::app | std::ios::binary);
  f << text;
}

// `leaseq follow ARGS` in the background, through pipes into files: its stdout, stderr, exit
// status and pid. `env`: assignments put before it (LEASEQ_NO_INOTIFY=1).
struct follow_run {
  fs::path out, err, rc, pid;

  follow_run(const test_support::lease_tree& t, const std::string& args,
             const std::string& env = "") {
    static int n = 0;
    std::string tag = "follow" + std::to_string(++n);
    out = t.home / (tag + ".out");
    err = t.home / (tag + ".err");
    rc = t.home / (tag + ".rc");
    pid = t.home / (tag + ".pid");
    std::string cmd = "(" + env + " LEASEQ_HOME=" + shell_quote(t.home.string()) +
                      " sh -c 'echo $$ > \"$0\"; exec \"$@\"' " + shell_quote(pid.string()) + " " +
                      shell_quote(LEASEQ_BIN) + " follow " + args + " </dev/null > " +
                      shell_quote(out.string()) + " 2> " + shell_quote(err.string()) +
                      "; echo $? > " + shell_quote(rc.string()) + ") &";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  bool ended() const { return read_text(rc).find('\n') != std::string::npos; }
  bool printed(const std::string& text) const {
    return read_text(out).find(text) != std::string::npos;
  }
  // A counter of /proc/PID/io (syscr: read calls made so far), -1 when unreadable.
  long io(const std::string& field) const {
    std::string p = read_text(pid);
    std::istringstream io(read_text("/proc/" + p.substr(0, p.find('\n')) + "/io"));
    std::string key;
    long value = 0;
    while (io >> key >> value)
      if (key == field + ":") return value;
    return -1;
  }
};

}  // namespace

TEST_CASE("leaseq logs and follow on a terminal show a progress bar's last state only",
          "[read_cli][e2e]") {
  cli_term c;
  c.t.done(1, "nodeA");
  ensure_dir(c.t.paths.logs("nodeA"));
  write_text(c.t.paths.stdout_log("nodeA", "T001"), bar_log);
  for (const char* cmd : {"logs T001", "follow T001"}) {
    INFO(cmd);
    REQUIRE(c.run(cmd));
    std::string screen = c.tmux.capture();
    INFO(screen);
    CHECK(screen.find("loading\nepoch 1 100%\nsaved\n") != std::string::npos);
    CHECK(screen.find("50%") == std::string::npos);
    CHECK(screen.find("  5%") == std::string::npos);
  }
  // Not a terminal: the file's bytes, \r and all. The file itself is untouched.
  CHECK(c.piped("logs T001") == bar_log);
  CHECK(c.piped("follow T001") == bar_log);
  CHECK(read_text(c.t.paths.stdout_log("nodeA", "T001")) == bar_log);
}

TEST_CASE("leaseq follow on a terminal redraws a running bar in place", "[read_cli][e2e]") {
  cli_term c;
  c.t.claimed(2, "nodeA");
  ensure_dir(c.t.paths.logs("nodeA"));
  fs::path log = c.t.paths.stdout_log("nodeA", "T002");
  write_text(log, "start\nstep  10%");
  c.t.hb("nodeA", unix_now(), {"T002"});
  c.tmux.type(std::string(LEASEQ_BIN) + " follow T002; echo rc=$?");
  c.tmux.keys("Enter");
  REQUIRE(c.tmux.wait_for("step  10%"));  // a partial line is shown after a second
  append(log, "\rstep  60%");
  REQUIRE(c.tmux.wait_for("step  60%"));
  CHECK(c.tmux.capture().find("step  10%") == std::string::npos);
  append(log, "\rstep 100%\ndone\n");
  REQUIRE(c.tmux.wait_for("done"));
  c.t.finish(2, "nodeA");
  REQUIRE(c.tmux.wait_for("rc=0"));
  std::string screen = c.tmux.capture();
  INFO(screen);
  CHECK(screen.find("start\nstep 100%\ndone\n") != std::string::npos);
  CHECK(screen.find("60%") == std::string::npos);
  CHECK(c.piped("follow T002") == "start\nstep  10%\rstep  60%\rstep 100%\ndone\n");
}

TEST_CASE("lease ls and status: RUNNING inferred from heartbeats while Slurm's cache says PENDING",
          "[read_cli][e2e]") {
  test_support::lease_tree t;  // Slurm lease 99887766, the default
  t.register_default();
  t.hb("nodeA", unix_now(), {});
  t.hb("nodeB", unix_now(), {});
  // A second Slurm lease without any runner yet: Slurm's PENDING stands.
  home_paths home(t.home);
  register_lease(home, {"11223344", "slurm", std::nullopt, unix_now(), json::object()});
  ensure_dir(home.lease_dir("11223344"));
  // The squeue the shared cache asks: both still PENDING, as right after `lease create`.
  fs::path bin = t.home / "bin";
  ensure_dir(bin);
  write_text(bin / "squeue",
             "#!/bin/sh\n"
             "printf '99887766|PENDING|Resources|1:00:00|1:00:00|2||N/A|leaseq\\n"
             "11223344|PENDING|Priority|1:00:00|1:00:00|1||N/A|leaseq\\n'\n");
  fs::permissions(bin / "squeue", fs::perms::owner_all);
  auto run = [&](const std::string& args) {
    return test_support::run_command("PATH=" + shell_quote(bin.string()) + ":\"$PATH\" " +
                                     "LEASEQ_HOME=" + shell_quote(t.home.string()) + " " +
                                     LEASEQ_BIN + " " + args + " 2>&1");
  };

  auto r = run("lease ls --json");
  REQUIRE(r.exit_code == 0);
  json j = json::parse(r.out);
  REQUIRE(j.size() == 2);
  CHECK(j[0]["id"] == "99887766");
  CHECK(j[0]["state"] == "RUNNING");
  CHECK(j[0]["state_inferred"] == "heartbeats");
  CHECK(j[0]["reason"] == "inferred from 2 fresh runner heartbeat(s); Slurm said PENDING");
  CHECK(j[1]["state"] == "PENDING");
  CHECK(j[1]["state_inferred"].is_null());

  r = run("lease ls");
  INFO(r.out);
  CHECK(r.out.find("RUNNING  inferred from 2 fresh runner heartbeat(s); Slurm said PENDING") !=
        std::string::npos);
  CHECK(r.out.find("PENDING  Priority") != std::string::npos);

  r = run("status");
  INFO(r.out);
  CHECK(r.out.find("lease 99887766  slurm  RUNNING (inferred from 2 fresh runner heartbeat(s); "
                   "Slurm said PENDING)") != std::string::npos);
  r = run("status --json");
  INFO(r.out);
  REQUIRE(r.out.find('{') != std::string::npos);
  j = json::parse(r.out.substr(r.out.find('{')));
  CHECK(j["state"] == "RUNNING");
  CHECK(j["state_inferred"] == "heartbeats");
  r = run("status --lease 11223344 --json");
  INFO(r.out);
  REQUIRE(r.out.find('{') != std::string::npos);
  j = json::parse(r.out.substr(r.out.find('{')));
  CHECK(j["state"] == "PENDING");
  CHECK(j["state_inferred"].is_null());
}

TEST_CASE("leaseq follow: streams a running task with inotify and with LEASEQ_NO_INOTIFY=1",
          "[read_cli][e2e][follow]") {
  for (const char* env : {"", "LEASEQ_NO_INOTIFY=1"}) {
    INFO(env);
    test_support::lease_tree t;
    t.register_default();
    t.claimed(7, "nodeA");
    fs::path log = t.paths.stdout_log("nodeA", "T007");
    ensure_dir(log.parent_path());
    write_text(log, "first line\n");
    follow_run f(t, "T007", env);
    REQUIRE(wait_until([&] { return f.printed("first line\n"); }));
    append(log, "second\n");
    REQUIRE(wait_until([&] { return f.printed("second\n"); }));
    append(log, "third\nlast");
    REQUIRE(wait_until([&] { return f.printed("third\n"); }));
    CHECK_FALSE(f.ended());
    t.finish(7, "nodeA", "FAILED", 3);
    REQUIRE(wait_until([&] { return f.ended(); }));
    CHECK(read_text(f.rc) == "3\n");
    CHECK(read_text(f.out) == "first line\nsecond\nthird\nlast");
    CHECK(read_text(f.err) == "leaseq: T007 FAILED (exit code 3)\n");
  }
}

TEST_CASE("leaseq follow: a task cancelled while it runs ends the follow CANCELLED",
          "[read_cli][e2e][follow]") {
  test_support::lease_tree t;
  t.register_default();
  t.claimed(4, "nodeA");
  ensure_dir(t.paths.logs("nodeA"));
  write_text(t.paths.stdout_log("nodeA", "T004"), "working\n");
  follow_run f(t, "T004");
  REQUIRE(wait_until([&] { return f.printed("working\n"); }));
  t.finish(4, "nodeA", "CANCELLED", 143);
  REQUIRE(wait_until([&] { return f.ended(); }));
  CHECK(read_text(f.rc) == "143\n");
  CHECK(read_text(f.err) == "leaseq: T004 CANCELLED (exit code 143)\n");
}

TEST_CASE("leaseq follow: a claimed file that vanishes without a result ends the follow LOST",
          "[read_cli][e2e][follow]") {
  for (const char* env : {"", "LEASEQ_NO_INOTIFY=1"}) {
    INFO(env);
    test_support::lease_tree t;
    t.register_default();
    write_text(t.home / "config.json", R"({"ui": {"lost_confirm_s": 0}})");
    t.claimed(5, "nodeB");
    ensure_dir(t.paths.logs("nodeB"));
    write_text(t.paths.stdout_log("nodeB", "T005"), "before the crash\n");
    follow_run f(t, "T005", env);
    REQUIRE(wait_until([&] { return f.printed("before the crash\n"); }));
    fs::remove(t.paths.claimed_task("nodeB", "T005"));
    REQUIRE(wait_until([&] { return f.ended(); }));
    CHECK(read_text(f.rc) == "1\n");
    CHECK(read_text(f.out) == "before the crash\n");
    CHECK(read_text(f.err) == "leaseq: T005 is LOST: its claimed file vanished without a result\n");
  }
}

TEST_CASE("leaseq follow: a task submitted but not claimed yet is followed once a runner takes it",
          "[read_cli][e2e][follow]") {
  test_support::lease_tree t;
  t.register_default();
  t.pending(9, "_any");
  follow_run f(t, "T009");
  REQUIRE(wait_until(
      [&] { return read_text(f.err).find("waiting for a runner") != std::string::npos; }));
  CHECK(read_text(f.err) == "leaseq: T009 is PENDING; waiting for a runner to claim it\n");
  t.claim(9, "_any", "nodeC");
  ensure_dir(t.paths.logs("nodeC"));
  write_text(t.paths.stdout_log("nodeC", "T009"), "claimed and running\n");
  REQUIRE(wait_until([&] { return f.printed("claimed and running\n"); }));
  CHECK_FALSE(f.ended());
  t.finish(9, "nodeC");
  REQUIRE(wait_until([&] { return f.ended(); }));
  CHECK(read_text(f.rc) == "0\n");
  CHECK(read_text(f.out) == "claimed and running\n");
}

TEST_CASE("leaseq follow and wait: a pending task whose file is removed end, not wait forever",
          "[read_cli][e2e][follow]") {
  test_support::lease_tree t;
  t.register_default();
  write_text(t.home / "config.json", R"({"ui": {"lost_confirm_s": 1}})");
  t.pending(9, "_any");
  follow_run f(t, "T009");
  REQUIRE(wait_until(
      [&] { return read_text(f.err).find("waiting for a runner") != std::string::npos; }));
  fs::remove(t.paths.inbox_task("_any", "T009"));
  REQUIRE(wait_until([&] { return f.ended(); }));
  CHECK(read_text(f.rc) == "1\n");
  CHECK(read_text(f.out).empty());
  CHECK(read_text(f.err).find("leaseq: error: task T009 is gone from lease") != std::string::npos);

  // wait: the same task listed with another that ends; the gone one is UNKNOWN, exit 1.
  t.pending(10, "_any");
  t.pending(11, "_any");
  t.claim(11, "_any", "nodeC");
  t.finish(11, "nodeC");
  // wait refuses a task it cannot find at its start: the file goes once it has seen it (3 s).
  auto w = test_support::run_command(
      "LEASEQ_HOME=" + shell_quote(t.home.string()) + " " + LEASEQ_BIN +
      " wait T010 T011 --json 2>/dev/null & sleep 3; rm " +
      shell_quote(t.paths.inbox_task("_any", "T010").string()) + "; wait $!");
  CHECK(w.exit_code == 1);
  INFO(w.out);
  auto j = json::parse(w.out);
  REQUIRE(j["tasks"].size() == 2);
  CHECK(j["tasks"][0]["id"] == "T010");
  CHECK(j["tasks"][0]["state"] == "UNKNOWN");
  CHECK(j["tasks"][0]["reason"].get<std::string>().rfind("gone:", 0) == 0);
  CHECK(j["tasks"][1]["state"] == "FINISHED");
}

TEST_CASE("leaseq follow: one task of a big lease is followed by its own files, no lease scan",
          "[read_cli][e2e][follow]") {
  // 3000 other tasks: a scan of the lease reads each of their files (3000 read calls at
  // least); following T001 reads its own files and its log, a few calls per poll.
  test_support::lease_tree t;
  t.register_default();
  for (int seq = 2; seq <= 3001; ++seq) {
    if (seq % 3 == 0)
      t.done(seq, "node" + std::to_string(seq % 8));
    else if (seq % 3 == 1)
      t.claimed(seq, "node" + std::to_string(seq % 8));
    else
      t.pending(seq, "_any");
  }
  t.claimed(1, "nodeA");
  ensure_dir(t.paths.logs("nodeA"));
  fs::path log = t.paths.stdout_log("nodeA", "T001");
  write_text(log, "one\n");
  follow_run f(t, "T001");
  REQUIRE(wait_until([&] { return f.printed("one\n"); }));
  append(log, "two\n");
  REQUIRE(wait_until([&] { return f.printed("two\n"); }));
  long reads = f.io("syscr");
  if (reads < 0) {
    WARN("/proc/PID/io not readable: read calls not counted");
  } else {
    INFO("read calls: " << reads);
    CHECK(reads < 1000);
  }
  t.finish(1, "nodeA");
  REQUIRE(wait_until([&] { return f.ended(); }));
  CHECK(read_text(f.rc) == "0\n");
  CHECK(read_text(f.out) == "one\ntwo\n");
}
