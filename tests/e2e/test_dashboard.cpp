// `leaseq tui` end to end: the real program in a real tmux, over lease trees made by real
// runners (`leaseq lease local start`) and by hand (STALE nodes, LOST? tasks, corrupt files,
// escape sequences in logs), and on the local Slurm cluster when tools/slurm-local runs one.
// Every key of the dashboard is pressed and its effect checked on the screen or on disk.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <leaseq/command.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/index.hpp>
#include <leaseq/lock.hpp>
#include <leaseq/names.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/results_index.hpp>

#include "lease_tree.hpp"
#include "slurm_cluster.hpp"
#include "test_support.hpp"
#include "tmux.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

// A LEASEQ_HOME, the leaseq CLI on it, and a dashboard in tmux started from an interactive
// shell that records `stty -g` before and after and the exit status.
struct dash_env {
  temp_dir dir;
  fs::path home = dir / "home";
  std::map<std::string, std::string> env;
  std::string host = leaseq::short_hostname();
  bool runner = false;

  dash_env() {
    leaseq::ensure_dir(home);
    env["LEASEQ_HOME"] = home.string();
  }
  ~dash_env() {
    if (runner) leaseq("lease local stop");
  }
  command_result leaseq(const std::string& args) const {
    return run_command("LEASEQ_HOME=" + shell_quote(home.string()) + " " + LEASEQ_BIN + " " + args +
                       " 2>&1");
  }
  std::string submit(const std::string& shell) const {
    auto r = leaseq("submit --shell -- " + shell_quote(shell));
    REQUIRE(r.exit_code == 0);
    return r.out.substr(0, r.out.find('\n'));
  }
  void start_runner(int slots) {
    auto r = leaseq("lease local start --slots " + std::to_string(slots));
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    runner = true;
  }
  std::string local_id() const { return leaseq::local_lease_id(host); }
  leaseq::lease_paths local() const {
    return leaseq::lease_paths(leaseq::home_paths(home), local_id());
  }
};

struct dash_run {
  dash_env& e;
  tmux_session tmux;
  pid_t pid = 0;

  int cols, rows;

  explicit dash_run(dash_env& env, int c = 100, int r = 30)
      : e(env), tmux(env.dir.path(), c, r, env.env), cols(c), rows(r) {}

  void start(const std::string& args, const std::string& wait_text) {
    std::string d = e.dir.path().string();
    tmux.type("(ulimit -c 0; stty -g > " + d + "/before; sh -c 'echo $$ > " + d + "/pid; exec " +
              LEASEQ_BIN + " tui " + args + "'; echo $? > " + d + "/rc.tmp; stty -g > " + d +
              "/after; mv " + d + "/rc.tmp " + d + "/rc)");
    tmux.keys("Enter");
    REQUIRE(wait_until([&] { return !read_text(e.dir / "pid").empty(); }));
    pid = std::stoi(read_text(e.dir / "pid"));
    REQUIRE(tmux.wait_for(wait_text));
    // Resized once running, as a user would: the dashboard follows SIGWINCH.
    tmux.resize(cols - 1, rows - 1);
    tmux.resize(cols, rows);
  }
  int wait_exit() {
    REQUIRE(wait_until([&] { return fs::exists(e.dir / "rc"); }));
    return std::stoi(read_text(e.dir / "rc"));
  }
  // A lone Esc followed at once by a key reads as Alt+key (as in any terminal): after Escape,
  // wait until the dashboard has drawn its effect (each Escape here closes something) before
  // the next key, however slowly the machine schedules the dashboard.
  void key(const std::string& k) {
    if (k != "Escape") {
      tmux.keys(k);
      return;
    }
    std::string before = tmux.capture();
    tmux.keys(k);
    wait_until([&] { return tmux.capture() != before; }, 5s);
    std::this_thread::sleep_for(100ms);
  }
  bool see(const std::string& text, std::chrono::milliseconds t = 20s) {
    bool ok = tmux.wait_for(text, t);
    if (!ok) UNSCOPED_INFO("screen was:\n" << tmux.capture());
    return ok;
  }
  // For text a modal may wrap over lines: borders, spaces and newlines removed on both sides.
  bool see_wrapped(const std::string& text) {
    auto squash = [](std::string x) {
      for (const char* junk : {"┃", "│", " ", "\n"}) {
        for (std::size_t p; (p = x.find(junk)) != std::string::npos;) x.erase(p, std::strlen(junk));
      }
      return x;
    };
    bool ok =
        wait_until([&] { return squash(tmux.capture()).find(squash(text)) != std::string::npos; });
    if (!ok) UNSCOPED_INFO("screen was:\n" << tmux.capture());
    return ok;
  }
  bool gone(const std::string& text) {
    bool ok = tmux.wait_gone(text);
    if (!ok) UNSCOPED_INFO("screen was:\n" << tmux.capture());
    return ok;
  }
  void quit_and_check_restored() {
    key("q");
    CHECK(wait_exit() == 0);
    CHECK(read_text(e.dir / "before") == read_text(e.dir / "after"));
  }
};

bool result_state_is(const leaseq::lease_paths& lp, const std::string& node, const std::string& id,
                     const std::string& state) {
  auto r = leaseq::read_json_tolerant(lp.result(node, id));
  return r.ok() && r.value->value("state", "") == state;
}

// A hand-made Slurm lease tree: a STALE node, a LOST? task, a corrupt task file, escape
// sequences in a log.
void hand_made_tree(lease_tree& t) {
  double now = leaseq::unix_now();
  t.register_default();
  t.pending(1, "_any");
  t.cmds[2] = "python train.py --cfg a.yaml";
  t.claimed(2, "nodeA");
  t.done(3, "nodeB", "FAILED", 3);
  t.hb("nodeA", now, {"T002", "T004"});  // T004: running says the heartbeat, in no directory
  t.hb("nodeB", now - 9000);             // STALE, "hb 2h" for over an hour
  leaseq::ensure_dir(t.paths.inbox("_any"));
  write_text(t.paths.inbox_task("_any", "T005"), "{not json");
  leaseq::ensure_dir(t.paths.logs("nodeA"));
  // ESC[2J would clear the screen, OSC 52 would set the clipboard to "HACKED".
  write_text(t.paths.stdout_log("nodeA", "T002"),
             "hello\x1b[2J\x1b]52;c;SEFDS0VE\x07world\nsecond line\n");
}

}  // namespace

TEST_CASE("dashboard: real local lease: follow, log keys, filters, search, sort, details, logs",
          "[dashboard][e2e]") {
  dash_env e;
  // ui.log_tail_lines is honoured: the log pane keeps 5000 lines, so "tick 1" stays in it.
  write_text(e.home / "config.json", R"({"ui": {"log_tail_lines": 5000}})");
  e.start_runner(2);
  std::string a =
      e.submit("for i in $(seq 1 3000); do echo tick $i; echo warn $i >&2; sleep 0.05; done");
  std::string b = e.submit("echo oops-on-stderr >&2; exit 3");
  std::string c = e.submit("echo fine-output");
  REQUIRE(wait_until(
      [&] {
        return result_state_is(e.local(), e.host, b, "FAILED") &&
               result_state_is(e.local(), e.host, c, "FINISHED");
      },
      30s));
  dash_run d(e);
  d.start("--local", "lease=" + e.local_id());
  CHECK(d.see("filters=none  refresh=2s  fs=ok  slurm=-  q:quit"));
  CHECK(d.see("hb "));  // per-node freshness
  CHECK(d.see(a));
  CHECK(d.see("RUNNING"));  // the lease in the leases pane

  // f: exactly one RUNNING task -> follow it.
  d.key("f");
  CHECK(d.see("[stdout] " + a));
  CHECK(d.see("tick "));
  CHECK(d.see("log updated"));
  d.key("Tab");  // tasks -> log
  d.key("Space");
  CHECK(d.see("(follow paused)"));
  d.key("Space");
  CHECK(d.gone("(follow paused)"));
  CHECK(d.see("tick 200 "));  // more lines than the pane shows
  d.key("PgUp");
  CHECK(d.see("(follow paused)"));
  d.key("g");
  CHECK(d.see("tick 1  "));
  d.key("PgDn");
  d.key("G");
  CHECK(d.gone("(follow paused)"));
  d.key("o");
  CHECK(d.see("[stderr] " + a));
  CHECK(d.see("warn "));
  d.key("m");
  CHECK(d.see("[stdout+stderr] " + a));
  CHECK(d.see("err│ warn"));
  d.key("m");
  CHECK(d.see("[stdout] " + a));
  d.key("Escape");
  CHECK(d.gone("[stdout] " + a));

  // Quick filters (focus is back on the task list).
  d.key("3");
  CHECK(d.see("filters=state:FAIL"));
  CHECK(d.gone("fine-output"));
  d.key("3");
  d.key("4");
  CHECK(d.see("filters=state:DONE"));
  CHECK(d.see("fine-output"));
  d.key("1");
  CHECK(d.see("filters=state:PEND"));
  d.key("2");
  CHECK(d.see("filters=state:RUN"));
  d.key("5");
  CHECK(d.see("filters=state:LOST?|LOST"));
  d.key("0");
  CHECK(d.see("filters=none"));
  d.key("e");
  CHECK(d.see("filters=stderr"));
  CHECK(d.gone("fine-output"));
  CHECK(d.see(b));
  d.key("0");
  d.key("/");
  d.tmux.type("FINE");
  CHECK(d.see("search task commands: FINE"));
  d.key("Enter");
  CHECK(d.see("filters=cmd:FINE"));
  CHECK(d.gone("oops-on-stderr"));
  d.key("/");
  CHECK(d.see("search task commands:"));
  d.key("Escape");
  CHECK(d.see("filters=none"));
  d.key("S");
  CHECK(d.see("sort:lane"));
  d.key("S");
  CHECK(d.see("sort:state"));

  // Details of the failed task (second row: RUNNING first, then FAILED).
  d.key("g");
  d.key("j");
  d.key("Enter");
  CHECK(d.see("exit code 3"));
  CHECK(d.see_wrapped((e.local().logs(e.host) / (b + ".err")).string()));
  CHECK(d.see("variable(s)  (e: show)"));
  d.key("e");
  CHECK(d.see("(e: hide)"));
  d.key("c");
  CHECK(wait_until([&] { return d.tmux.clipboard().find("oops-on-stderr") != std::string::npos; }));
  d.key("L");  // open logs from the details: paged view of stdout (empty), o: stderr
  CHECK(d.see(b + " stdout"));
  d.key("o");
  CHECK(d.see(b + " stderr"));
  CHECK(d.see("oops-on-stderr"));
  CHECK(d.see("of 1"));
  d.key("Escape");
  d.key("E");
  CHECK(d.see("[stderr] " + b));
  CHECK(d.see("oops-on-stderr"));
  d.key("A");
  CHECK(d.see("[stdout+stderr] " + b));
  d.key("L");  // the paged view from the task list
  CHECK(d.see(b + " stdout"));
  d.key("PgDn");
  d.key("PgUp");
  d.key("G");
  d.key("q");
  CHECK(d.gone(b + " stdout"));

  // Merged follow of two marked tasks.
  d.key("g");
  d.key("v");      // marks the running task, moves to the failed one
  d.key("Space");  // marks it
  CHECK(d.see("marked:2"));
  d.key("F");
  CHECK(d.see("2 tasks merged"));
  CHECK(d.see(a + "│ tick"));
  d.quit_and_check_restored();
}

TEST_CASE("dashboard: actions on a real local lease: cancel, retry, pause/resume, copy, refresh",
          "[dashboard][e2e]") {
  dash_env e;
  e.start_runner(2);
  std::string a = e.submit("sleep 300");
  std::string b = e.submit("echo to-retry; exit 4");
  REQUIRE(wait_until([&] { return result_state_is(e.local(), e.host, b, "FAILED"); }, 30s));
  // A second lease in the index, to make it the default.
  leaseq::register_lease(leaseq::home_paths(e.home), {"4242", "slurm", std::string("other"),
                                                      leaseq::unix_now(), leaseq::json::object()});
  dash_run d(e);
  d.start("--local", "lease=" + e.local_id());
  CHECK(d.see(a));

  // c copies the selected task id (OSC 52 -> tmux buffer).
  d.key("g");
  d.key("c");
  CHECK(wait_until([&] { return d.tmux.clipboard().find(a) != std::string::npos; }));
  CHECK(d.see("copied task id: " + a));

  // R: a new task with the same command and retry_of.
  d.key("j");
  d.key("R");
  CHECK(d.see("retried " + b + " as "));
  std::string retry = leaseq::format_task_id(*leaseq::task_seq(b) + 1);
  CHECK(wait_until([&] { return result_state_is(e.local(), e.host, retry, "FAILED"); }, 30s));
  auto rr = leaseq::read_json_tolerant(e.local().result(e.host, retry));
  REQUIRE(rr.ok());
  CHECK(rr.value->value("retry_of", "") == b);
  CHECK(rr.value->value("key", "") != "");

  // X asks, n keeps the task; X, y writes the cancel file and the runner cancels. First the
  // dashboard must have seen the retry end (its next scan): until then the retry is a RUNNING
  // row sorted above a, and g would select it.
  CHECK(wait_until(
      [&] {
        std::istringstream screen(d.tmux.capture());
        for (std::string line; std::getline(screen, line);)
          if (line.find(retry) != std::string::npos && line.find("FAIL") != std::string::npos)
            return true;
        return false;
      },
      30s));
  d.key("g");
  d.key("X");
  CHECK(d.see("Cancel " + a));
  d.key("n");
  CHECK(d.see("cancelled: nothing done"));
  d.key("X");
  CHECK(d.see("Cancel " + a));
  d.key("y");
  CHECK(d.see("cancel sent for " + a));
  CHECK(wait_until([&] { return result_state_is(e.local(), e.host, a, "CANCELLED"); }, 30s));
  CHECK(d.see("CANC"));

  // Nodes pane: s stats, Enter filter, P pause, U resume.
  d.key("BTab");
  d.key("s");
  CHECK(d.see("node stats"));
  CHECK(d.see("runner since"));
  d.key("x");
  CHECK(d.gone("node stats"));
  d.key("Enter");
  CHECK(d.see("filters=node:" + e.host));
  d.key("Enter");
  CHECK(d.see("filters=none"));
  d.key("P");
  CHECK(d.see("pause sent to " + e.host));
  CHECK(d.see("PAUSED"));
  d.key("U");
  CHECK(d.see("resume sent to " + e.host));
  CHECK(d.gone("PAUSED"));

  // p pauses auto-refresh, r refreshes now.
  d.key("p");
  CHECK(d.see("refresh=paused"));
  d.key("r");
  CHECK(d.see("refreshing"));
  d.key("p");
  CHECK(d.see("refresh=2s"));

  // Help lists the keys, grouped by where they apply (the global ones first).
  d.key("?");
  CHECK(d.see("Help (j/k scroll"));
  CHECK(d.see("-- global --"));
  CHECK(d.see("refresh now"));
  d.key("j");
  d.key("Escape");
  CHECK(d.gone("Help (j/k scroll"));

  // Leases pane: l makes 4242 the default, x on it asks, x on local refuses, f filters.
  d.key("BTab");
  d.key("j");
  d.key("l");
  CHECK(d.see("default lease: 4242"));
  CHECK(wait_until([&] {
    auto idx = leaseq::read_index(leaseq::home_paths(e.home));
    return idx.index.default_lease && *idx.index.default_lease == "4242";
  }));
  d.key("x");
  CHECK(d.see("Release lease 4242"));
  d.key("Escape");
  d.key("k");
  d.key("x");
  CHECK(d.see("only Slurm leases can be released"));
  d.key("f");
  CHECK(d.see("leases (local)"));
  d.key("f");
  CHECK(d.see("leases (slurm)"));
  d.key("f");
  d.key("f");
  d.key("f");
  CHECK(d.see("leases (all)"));
  d.key("c");
  CHECK(d.see("copied lease id"));
  // Esc: the lease list screen; n opens the form; Enter reopens the dashboard.
  d.key("Escape");
  CHECK(d.gone("nodes/runners"));
  d.key("n");
  CHECK(d.see("create Slurm lease"));
  CHECK(d.see("sbatch --parsable --job-name=leaseq --nodes=1"));
  // The keeper path wraps over lines when it is longer than the box (CI's temp dirs are).
  CHECK(d.see("keeper script:"));
  CHECK(d.see_wrapped("keeper script: " + (e.home / "keepers").string()));
  d.key("Escape");
  CHECK(d.gone("create Slurm lease"));
  d.key("g");
  d.key("Enter");
  CHECK(d.see("nodes/runners"));
  d.quit_and_check_restored();
}

TEST_CASE(
    "dashboard: hand-made tree: STALE node, LOST? evidence, corrupt file, escapes in logs, "
    "a hanging squeue, small terminals",
    "[dashboard][e2e]") {
  dash_env e;
  lease_tree t;
  hand_made_tree(t);
  e.home = t.home;
  e.env["LEASEQ_HOME"] = t.home.string();
  // A local lease next to the Slurm one: a hanging squeue must not hide it.
  leaseq::register_lease(leaseq::home_paths(t.home), {e.local_id(), "local", std::nullopt,
                                                      leaseq::unix_now(), leaseq::json::object()});
  // squeue that hangs: the dashboard must still answer every key at once.
  fs::path bin = e.dir / "bin";
  leaseq::ensure_dir(bin);
  write_text(bin / "squeue", "#!/bin/sh\nsleep 60\n");
  write_text(bin / "scontrol", "#!/bin/sh\nsleep 60\n");
  fs::permissions(bin / "squeue", fs::perms::owner_all);
  fs::permissions(bin / "scontrol", fs::perms::owner_all);
  e.env["PATH"] = bin.string() + ":/usr/bin:/bin";
  e.env["LEASEQ_SLURM_TIMEOUT_S"] = "120";
  dash_run d(e);
  d.tmux.type("export PATH=" + bin.string() + ":/usr/bin:/bin");
  d.tmux.keys("Enter");
  d.start("", "lease=99887766");  // the default lease
  CHECK(d.see("STALE"));
  CHECK(d.see("hb 2h"));  // 9000 s: the same text however slow the machine
  CHECK(d.see("LOST?"));
  CHECK(d.see("⚠  T004"));
  CHECK(d.see("⚠  T005"));  // the corrupt file: unknown, shown with a warning
  CHECK(d.see("fs=lag"));
  CHECK(d.see("slurm=asking"));  // squeue has not answered (it hangs)
  // ... and the lease list is there all the same: the local lease in full, the Slurm lease
  // from what the shared cache knows (nothing yet).
  CHECK(d.see("local:" + e.host));
  // nodeA's fresh heartbeat says the Slurm lease runs (item 21): RUNNING, marked inferred.
  CHECK(d.see("(inferred from 1 fresh runner hea"));
  CHECK(d.tmux.capture().find("loading leases") == std::string::npos);
  // Keys answer while squeue hangs.
  d.key("?");
  CHECK(d.see("Help (j/k scroll", 5s));
  d.key("Escape");
  d.key("5");
  CHECK(d.see("filters=state:LOST?|LOST", 5s));
  d.key("Enter");
  CHECK(d.see("evidence"));
  CHECK(d.see("listed as running by the heartbeat of nodeA"));
  CHECK(d.see("nodeA heartbeat"));
  CHECK(d.see("lease   99887766"));
  d.key("Escape");
  d.key("0");
  // The corrupt file's reason is in its details (PENDING: T001, then T005 without a spec).
  d.key("1");
  d.key("G");
  d.key("Enter");
  CHECK(d.see("does not parse"));
  d.key("Escape");
  d.key("0");
  // Escape sequences in a log are shown harmless.
  d.key("f");  // T002 is the one RUNNING task
  CHECK(d.see("helloworld"));
  CHECK(d.see("second line"));
  CHECK(d.see("lease=99887766"));  // ESC[2J did not clear the screen
  CHECK(d.tmux.clipboard().find("HACKED") == std::string::npos);
  // L pages through a log of any size without loading it: 200 000 lines, G jumps to the end.
  {
    std::string big;
    for (int i = 1; i <= 200000; ++i) big += "big line " + std::to_string(i) + "\n";
    leaseq::ensure_dir(t.paths.logs("nodeB"));
    write_text(t.paths.stdout_log("nodeB", "T003"), big);
  }
  d.key("3");  // FAILED: T003
  d.key("L");
  CHECK(d.see("big line 1 "));
  CHECK(d.see("of 200000"));
  d.key("G");
  CHECK(d.see("big line 200000"));
  d.key("PgUp");
  CHECK(d.gone("big line 200000"));
  d.key("g");
  CHECK(d.see("big line 1 "));
  // / finds in the whole file: the match goes on top, marked; n and N say when there is none.
  d.key("/");
  CHECK(d.see("(Enter: find, Esc: cancel)"));
  d.tmux.type("line 150000");
  d.key("Enter");
  CHECK(d.see("\"line 150000\" at line 150000"));
  CHECK(d.see("big line 150000"));
  CHECK(d.tmux.tmux("capture-pane -e -p -t 0").out.find("\x1b[43mline 150000") !=
        std::string::npos);
  d.key("n");
  CHECK(d.see("no match for \"line 150000\" from line 150001 to the end"));
  d.key("N");
  CHECK(d.see("no match for \"line 150000\" from line 1 to line 149999"));
  CHECK(d.see("big line 150000"));  // the page stays where the last match was
  d.key("Escape");
  d.key("0");
  // Small terminals: panes collapse, nothing crashes.
  d.tmux.resize(40, 12);
  CHECK(d.see("lease=99887766"));
  // At 2x2 it still reads keys: the help opened there is on screen once the window grows.
  d.tmux.resize(2, 2);
  d.key("?");
  d.tmux.resize(80, 24);
  CHECK(d.see("Help (j/k scroll"));
  d.key("Escape");
  CHECK(d.see("lease=99887766 filters=none fs=lag"));  // compact at 80 columns
  CHECK(d.see("nodes/runners"));
  CHECK(::kill(d.pid, 0) == 0);
  d.quit_and_check_restored();
}

// One check per class here (a quit signal, a stop and continue); every signal is checked on the
// renderer in test_tui_terminal.cpp.
TEST_CASE("dashboard: terminal restored after SIGTERM and Ctrl-Z + fg", "[dashboard][e2e]") {
  for (int sig : {SIGTERM}) {
    DYNAMIC_SECTION("signal " << sig) {
      dash_env e;
      lease_tree t;
      hand_made_tree(t);
      e.env["LEASEQ_HOME"] = t.home.string();
      dash_run d(e);
      d.start("--lease 99887766", "lease=99887766");
      CHECK(d.see("nodes/runners"));
      ::kill(d.pid, sig);
      CHECK(d.wait_exit() == 128 + sig);
      CHECK(read_text(e.dir / "before") == read_text(e.dir / "after"));
      CHECK(d.tmux.capture().find("nodes/runners") == std::string::npos);
    }
  }
  SECTION("Ctrl-Z, fg, q") {
    dash_env e;
    lease_tree t;
    hand_made_tree(t);
    e.env["LEASEQ_HOME"] = t.home.string();
    dash_run d(e);
    d.start("--slurm", "leases (slurm)");  // the lease list, filtered to Slurm
    CHECK(d.see("99887766"));
    d.key("C-z");
    REQUIRE(d.see("Stopped"));
    std::string dd = e.dir.path().string();
    d.tmux.type("stty -g > " + dd + "/during");
    d.key("Enter");
    REQUIRE(wait_until([&] { return !read_text(e.dir / "during").empty(); }));
    CHECK(read_text(e.dir / "during") == read_text(e.dir / "before"));
    d.tmux.type("fg");
    d.key("Enter");
    CHECK(d.see("leases (slurm)"));
    d.key("Enter");  // opens the lease
    CHECK(d.see("nodes/runners"));
    d.quit_and_check_restored();
  }
}

TEST_CASE("dashboard: Ctrl-C quits exactly like q, also from the search prompt",
          "[dashboard][e2e]") {
  dash_env e;
  lease_tree t;
  hand_made_tree(t);
  e.env["LEASEQ_HOME"] = t.home.string();
  dash_run d(e);
  d.start("--lease 99887766", "lease=99887766");
  CHECK(d.see("nodes/runners"));
  d.key("/");
  CHECK(d.see("search task commands"));
  d.key("C-c");
  CHECK(d.wait_exit() == 0);
  CHECK(read_text(e.dir / "before") == read_text(e.dir / "after"));
  CHECK(d.gone("nodes/runners"));
}

TEST_CASE("dashboard: the view stays on the running work while tasks end under it",
          "[dashboard][e2e]") {
  dash_env e;
  e.start_runner(1);
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) ids.push_back(e.submit("sleep 0.3; echo step-" + std::to_string(i)));
  dash_run d(e, 100, 30);
  d.start("--local", "lease=" + e.local_id());
  CHECK(d.see(" RUN "));
  // No key pressed. Before, the selection followed the first task down into the DONE block
  // and the view scrolled with it: half-way through, no RUN row was on screen.
  REQUIRE(wait_until(
      [&] {
        int done = 0;
        for (const auto& id : ids) done += result_state_is(e.local(), e.host, id, "FINISHED");
        return done >= 15;
      },
      60s));
  CHECK(d.see(" RUN "));
  d.quit_and_check_restored();
}

TEST_CASE("dashboard: progress bars, the problems list, bad config keys, an unknown lease",
          "[dashboard][e2e]") {
  dash_env e;
  lease_tree t;
  hand_made_tree(t);
  e.env["LEASEQ_HOME"] = t.home.string();
  write_text(t.home / "config.json",
             R"({"ui": {"refresh_s": "fast", "hb_stale_s": -3, "log_tail_lines": 50}})");
  // A tqdm-style bar rewritten with \r: the pane shows its last state only.
  write_text(t.paths.stdout_log("nodeA", "T002"),
             "loading\nepoch 1   5%\repoch 1  50%\repoch 1 100%\nsaved\n");
  {
    dash_run d(e);
    d.start("--lease 99887766", "lease=99887766");
    CHECK(d.see("config.json: 2 keys ignored (!: list them)"));
    d.key("f");  // T002 is the one RUNNING task
    CHECK(d.see("epoch 1 100%"));
    CHECK(d.see("saved"));
    CHECK(d.tmux.capture().find("epoch 1  50%") == std::string::npos);
    CHECK(read_text(t.paths.stdout_log("nodeA", "T002")).find("\r") != std::string::npos);
    d.key("!");
    CHECK(d.see("problem(s) (j/k scroll"));
    CHECK(d.see_wrapped("T005 is unknown: its task file does not parse"));
    CHECK(d.see("ui.refresh_s"));
    CHECK(d.see("ui.hb_stale_s"));
    d.key("Escape");
    CHECK(d.gone("(j/k scroll"));
    d.quit_and_check_restored();
  }
  fs::remove(e.dir / "rc");
  fs::remove(e.dir / "pid");
  dash_run u(e);
  u.start("--lease 31337", "unknown lease 31337");
  CHECK(u.see("leases (all)"));
  CHECK(u.see("99887766"));
  u.quit_and_check_restored();
}

TEST_CASE("dashboard: a lease of 25 000 tasks shows its first rows' commands and exit codes",
          "[dashboard][e2e]") {
  // Over the dashboard's quick-scan size (20 000): it opens with the pending tasks counted by
  // name and the results by the runner's index, reads the rows on screen at once, and the
  // full scan takes over later. Both roads must end on the same screen.
  dash_env e;
  lease_tree t;
  t.register_default();
  t.hb("nodeA", leaseq::unix_now(), {});
  for (int seq = 1; seq <= 20; ++seq) {
    bool ok = seq % 2 == 1;
    t.done(seq, "nodeA", ok ? "FINISHED" : "FAILED", ok ? 0 : 4);
    REQUIRE(leaseq::append_results_index(
        t.paths.result("nodeA", leaseq::format_task_id(seq)), seq,
        ok ? leaseq::task_state::finished : leaseq::task_state::failed, ok ? 0 : 4));
  }
  leaseq::ensure_dir(t.paths.inbox("nodeA"));
  for (int seq = 21; seq <= 25020; ++seq) {
    t.cmds[seq] = "echo big-" + std::to_string(seq);
    write_text(t.paths.inbox_task("nodeA", leaseq::format_task_id(seq)),
               t.task(seq, "nodeA").dump());
  }
  e.env["LEASEQ_HOME"] = t.home.string();
  dash_run d(e, 120, 30);
  d.start("--lease 99887766", "lease=99887766");
  CHECK(d.see("echo big-"));
  d.key("3");  // FAILED only: exit codes and commands of tasks the index counted
  CHECK(d.see("filters=state:FAIL"));
  CHECK(d.see("echo T002"));
  CHECK(d.see(" 4 "));
  d.key("0");
  CHECK(d.gone("(reading task files...)"));
  d.quit_and_check_restored();
}

TEST_CASE("dashboard: not a terminal gives a clear error, bad --lease is refused",
          "[dashboard][e2e]") {
  temp_dir dir;
  auto r = run_command("LEASEQ_HOME=" + shell_quote(dir.path().string()) + " " + LEASEQ_BIN +
                       " tui --local </dev/null 2>&1");
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("terminal") != std::string::npos);
  auto bad = run_command("LEASEQ_HOME=" + shell_quote(dir.path().string()) + " " + LEASEQ_BIN +
                         " tui --lease ../etc </dev/null 2>&1");
  CHECK(bad.exit_code == 1);
  auto help = run_command(std::string(LEASEQ_BIN) + " tui --help");
  CHECK(help.out.find("--lease") != std::string::npos);
  CHECK(help.out.find("--local") != std::string::npos);
  CHECK(help.out.find("--slurm") != std::string::npos);
}

TEST_CASE("dashboard: a Slurm lease created with the form (test-only first) and released",
          "[dashboard][e2e][slurm]") {
  LEASEQ_REQUIRE_SLURM();
  leaseq::file_lock cluster(fs::temp_directory_path() / "leaseq-slurm-e2e.lock");
  dash_env e;
  e.env["SLURM_CONF"] = std::getenv("SLURM_CONF");
  write_text(e.home / "config.json", R"({"ui": {"slurm_refresh_s": 10}})");
  std::string job;
  struct cancel_guard {
    std::string& job;
    ~cancel_guard() {
      if (!job.empty()) run_command("scancel " + job + " 2>&1");
    }
  } guard{job};
  dash_run d(e, 110, 40);
  d.start("--slurm", "leases (slurm)");
  d.key("n");
  CHECK(d.see("create Slurm lease"));
  d.tmux.type("dash");
  d.key("Tab");
  d.key("Tab");
  d.key("C-u");
  d.tmux.type("5");
  CHECK(d.see("--job-name=leaseq-dash --nodes=1 --ntasks-per-node=1 --time=5"));
  d.key("Enter");
  CHECK(d.see("test-only OK", 90s));
  CHECK(d.see("to start at"));
  d.key("Enter");
  REQUIRE(d.see("created Slurm lease", 90s));
  REQUIRE(wait_until([&] {
    auto idx = leaseq::read_index(leaseq::home_paths(e.home));
    for (const auto& l : idx.index.leases)
      if (l.kind == "slurm") job = l.id;
    return !job.empty();
  }));
  CHECK(fs::exists(e.home / "runs" / job / "lease.json"));
  CHECK(d.see(job));
  CHECK(d.see("RUNNING", 90s));
  d.key("g");
  d.key("x");
  CHECK(d.see("Release lease " + job));
  d.key("y");
  CHECK(d.see("released " + job, 60s));
  CHECK(d.see("CANCELLED", 90s));
  d.quit_and_check_restored();
}

TEST_CASE("dashboard: no default lease lands on the lease list", "[dashboard][e2e]") {
  dash_env e;
  dash_run d(e, 80, 24);
  d.start("", "leases (all)");
  CHECK(d.see("no leases"));
  CHECK(d.see("lease=-  filters=none  refresh=2s  fs=ok  slurm=-  q:quit"));
  d.key("/");
  d.tmux.type("abc");
  CHECK(d.see("search leases: abc"));
  d.key("Escape");
  d.quit_and_check_restored();
}

// Issue 14.9: a Slurm reason that is not UTF-8 (\377) must not stop the lease pane loading.
TEST_CASE("dashboard: squeue printing a reason with byte 377 still lists the lease",
          "[dashboard][e2e]") {
  dash_env e;
  leaseq::ensure_dir(e.home / "runs" / "424242");
  write_text(e.home / "index.json",
             R"({"version":1,"leases":[{"id":"424242","kind":"slurm","created":1}]})");
  fs::path bin = e.dir / "bin";
  leaseq::ensure_dir(bin);
  write_text(bin / "squeue",
             "#!/bin/sh\nprintf '424242|PENDING|Resources\\377x|1:00:00|1:00:00|1|(null)|N/A|"
             "leaseq-x\\n'\n");
  write_text(bin / "scontrol", "#!/bin/sh\nexit 1\n");
  fs::permissions(bin / "squeue", fs::perms::owner_all);
  fs::permissions(bin / "scontrol", fs::perms::owner_all);
  e.env["PATH"] = bin.string() + ":/usr/bin:/bin";
  dash_run d(e, 120, 30);
  d.tmux.type("export PATH=" + bin.string() + ":/usr/bin:/bin");
  d.tmux.keys("Enter");
  d.start("", "leases (all)");
  CHECK(d.see("424242"));
  CHECK(d.see("PENDING"));  // squeue's answer, \377 and all, reached the row
  CHECK(d.gone("loading leases"));
  CHECK(d.tmux.capture().find("loading leases") == std::string::npos);
  d.quit_and_check_restored();
}
