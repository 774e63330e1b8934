#include <leaseq/engine/control.hpp>
#include <leaseq/engine/runner.hpp>
#include <leaseq/engine/submit.hpp>

#include <sys/wait.h>

#include <csignal>
#include <deque>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;

namespace {

// Processes that exist only in memory: the test decides when each one ends.
struct fake_ops : process_ops {
  struct proc {
    spawn_request req;
    std::vector<int> signals;
  };
  std::map<pid_t, proc> procs;
  std::deque<child_exit> exits;
  std::set<pid_t> foreign_alive;
  std::string fail_next;
  pid_t next = 1000;

  spawn_outcome spawn(const spawn_request& req) override {
    if (!fail_next.empty()) return {-1, std::exchange(fail_next, "")};
    pid_t pid = next++;
    procs[pid] = {req, {}};
    return {pid, ""};
  }
  std::optional<child_exit> reap() override {
    if (exits.empty()) return std::nullopt;
    child_exit e = exits.front();
    exits.pop_front();
    return e;
  }
  void signal_group(pid_t pgid, int sig) override { procs[pgid].signals.push_back(sig); }
  bool alive(pid_t pid) override { return foreign_alive.count(pid) > 0; }

  void exit_code(pid_t pid, int code) { exits.push_back({pid, code, std::nullopt}); }
  void exit_signal(pid_t pid, int sig) { exits.push_back({pid, std::nullopt, sig}); }
  pid_t pid_of(const std::string& task) const {
    for (const auto& [pid, p] : procs)
      for (const auto& e : p.req.env)
        if (e == "LEASEQ_TASK_ID=" + task) return pid;
    return -1;
  }
  std::string env_of(pid_t pid, const std::string& key) const {
    for (const auto& e : procs.at(pid).req.env)
      if (e.rfind(key + "=", 0) == 0) return e.substr(key.size() + 1);
    return "<unset>";
  }
};

struct bench {
  temp_dir tmp;
  lease_paths lease{tmp / "lease"};
  fake_ops ops;
  manual_clock clock;
  std::vector<std::string> logs;

  runner_config config(int slots, std::vector<std::string> gpus = {}) {
    runner_config c;
    c.lease_id = "local:h";
    c.node = "n1";
    c.slots = slots;
    c.gpu_ids = std::move(gpus);
    c.grace_s = 5;
    return c;
  }
  std::unique_ptr<runner> make(runner_config c) {
    return std::make_unique<runner>(c, lease, ops,
                                    [this](const std::string& m) { logs.push_back(m); });
  }
  std::string submit(std::optional<std::string> node = std::nullopt, int gpus = 0) {
    submit_request r;
    r.argv = {"work"};
    r.node = std::move(node);
    r.gpus = gpus;
    return submit_task(lease, "local:h", r).id;
  }
  std::optional<task_result> result(const std::string& id) {
    json_outcome r = read_json_tolerant(lease.result("n1", id));
    if (!r.ok()) return std::nullopt;
    task_result res;
    from_json(*r.value, res);
    return res;
  }
  heartbeat hb() {
    heartbeat h;
    from_json(*read_json_tolerant(lease.heartbeat("n1")).value, h);
    return h;
  }
  void step(double dt = 0.1) {
    clock.advance(dt);
    r->step(clock.now());
  }
  std::unique_ptr<runner> r;
};

}  // namespace

TEST_CASE("runner: own lane first, then _any by seq, within the slots", "[runner]") {
  bench b;
  std::string a1 = b.submit(), a2 = b.submit(), own = b.submit(std::string("n1"));
  b.submit(std::string("other"));
  b.r = b.make(b.config(2));
  b.r->start(b.clock.now());
  b.step();
  REQUIRE(b.ops.procs.size() == 2);
  pid_t p_own = b.ops.pid_of(own), p_a1 = b.ops.pid_of(a1);
  CHECK(p_own > 0);
  CHECK(p_a1 > 0);
  CHECK(b.ops.pid_of(a2) < 0);
  CHECK(b.ops.env_of(p_own, "CUDA_VISIBLE_DEVICES") == "<unset>");
  CHECK(b.ops.procs[p_own].req.stdout_path == b.lease.stdout_log("n1", own).string());
  // The claimed file was rewritten with claimed and starting; the pid follows once the task has
  // run 0.1 s (a task that ends sooner costs one rewrite).
  json claimed = *read_json_tolerant(b.lease.claimed_task("n1", own)).value;
  CHECK(claimed["claimed"].is_number());
  CHECK(claimed["starting"].is_string());
  CHECK_FALSE(claimed.contains("pid"));
  b.step(0.1);
  claimed = *read_json_tolerant(b.lease.claimed_task("n1", own)).value;
  CHECK(claimed["pid"] == p_own);
  CHECK(claimed["started"].is_number());
  b.step(2.4);
  heartbeat h = b.hb();
  CHECK(h.running == std::vector<std::string>{a1, own});
  CHECK(h.pending == 1);
  CHECK(h.slots == 2);

  b.ops.exit_code(p_own, 0);
  b.step();
  auto res = b.result(own);
  REQUIRE(res);
  CHECK(res->state == task_state::finished);
  CHECK(res->exit_code == 0);
  CHECK(res->stdout_path == "logs/n1/" + own + ".out");
  CHECK(res->attempt);
  CHECK_FALSE(res->task.pid);  // the result carries task fields, not the claim's pid
  CHECK_FALSE(fs::exists(b.lease.claimed_task("n1", own)));
  CHECK(b.ops.pid_of(a2) > 0);  // the freed slot was refilled at once

  b.ops.exit_code(p_a1, 2);
  b.ops.exit_signal(b.ops.pid_of(a2), 9);
  b.step();
  CHECK(b.result(a1)->state == task_state::failed);
  CHECK(b.result(a1)->exit_code == 2);
  // A signal the runner did not send: its result waits briefly for a runner stop (Slurm
  // signals the runner and its tasks together), then is written as it was.
  CHECK_FALSE(b.result(a2));
  b.step(2.5);
  REQUIRE(b.result(a2));
  CHECK_FALSE(b.result(a2)->reason);
  CHECK(b.result(a2)->signal == 9);
  CHECK(b.result(a2)->state == task_state::failed);
  CHECK(fs::exists(b.lease.inbox_task("other", "T004")));  // another node's lane is untouched
}

TEST_CASE("runner: GPUs are handed out exclusively, in FIFO order", "[runner]") {
  bench b;
  std::string g2 = b.submit(std::nullopt, 2), g2b = b.submit(std::nullopt, 2),
              cpu = b.submit(std::nullopt, 0);
  b.r = b.make(b.config(4, {"0", "1", "2"}));
  b.r->start(b.clock.now());
  b.step();
  REQUIRE(b.ops.procs.size() == 1);
  pid_t p = b.ops.pid_of(g2);
  CHECK(b.ops.env_of(p, "CUDA_VISIBLE_DEVICES") == "0,1");
  CHECK(fs::exists(b.lease.inbox_task("_any", g2b)));  // waits for two free GPUs
  b.ops.exit_code(p, 0);
  b.step();
  CHECK(b.ops.env_of(b.ops.pid_of(g2b), "CUDA_VISIBLE_DEVICES") == "0,1");
  CHECK(b.ops.env_of(b.ops.pid_of(cpu), "CUDA_VISIBLE_DEVICES") == "");
  b.step(2.5);
  CHECK(b.hb().gpus == 3);
  CHECK(b.hb().gpus_free == 1);
}

TEST_CASE("runner: cancel of a running task escalates after the grace period", "[runner]") {
  bench b;
  std::string id = b.submit();
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  pid_t p = b.ops.pid_of(id);
  write_cancel(b.lease, "n1", id);
  b.step();
  CHECK(b.ops.procs[p].signals == std::vector<int>{SIGTERM});
  CHECK(detail::list_dir(b.lease.control("n1").string()).names.empty());
  b.step(2);
  CHECK(b.ops.procs[p].signals.size() == 1);
  b.step(4);
  CHECK(b.ops.procs[p].signals == std::vector<int>{SIGTERM, SIGKILL});
  b.ops.exit_signal(p, SIGKILL);
  b.step();
  auto res = b.result(id);
  REQUIRE(res);
  CHECK(res->state == task_state::cancelled);
  CHECK(res->reason == "cancelled");
  CHECK(res->signal == SIGKILL);
}

TEST_CASE("runner: cancel of a pending task, and of an unknown one", "[runner]") {
  bench b;
  std::string busy = b.submit(), pending = b.submit();
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  write_cancel(b.lease, "n1", pending);
  write_cancel(b.lease, "n1", "T777");
  b.step();
  auto res = b.result(pending);
  REQUIRE(res);
  CHECK(res->state == task_state::cancelled);
  CHECK_FALSE(res->started);
  CHECK_FALSE(fs::exists(b.lease.inbox_task("_any", pending)));
  CHECK_FALSE(fs::exists(b.lease.claimed_task("n1", pending)));
  CHECK(b.ops.pid_of(pending) < 0);
  CHECK(detail::list_dir(b.lease.control("n1").string()).names.empty());
  CHECK(std::any_of(b.logs.begin(), b.logs.end(),
                    [](const std::string& l) { return l.find("T777") != std::string::npos; }));
  (void)busy;
}

TEST_CASE("runner: pause stops claiming, resume starts again", "[runner]") {
  bench b;
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  write_pause(b.lease, "n1", b.clock.now());
  b.step();
  CHECK(b.r->paused());
  CHECK(b.hb().paused);
  std::string id = b.submit();
  b.step();
  CHECK(b.ops.procs.empty());
  write_resume(b.lease, "n1", b.clock.now() + 1);
  b.step();
  CHECK_FALSE(b.r->paused());
  CHECK(b.ops.pid_of(id) > 0);
}

TEST_CASE("runner: task churn rewrites the heartbeat at most every heartbeat_min_s", "[runner]") {
  bench b;
  runner_config c = b.config(1);
  c.heartbeat_min_s = 0.5;
  c.heartbeat_s = 2;
  b.r = b.make(c);
  b.r->start(b.clock.now());
  double first_ts = b.hb().ts;
  std::string a = b.submit(), second = b.submit();
  b.step(0.1);  // a starts: the running set changed, but the heartbeat is 0.1 s old
  REQUIRE(b.ops.pid_of(a) > 0);
  CHECK(b.hb().ts == first_ts);
  CHECK(b.hb().running.empty());
  CHECK(b.r->next_deadline(b.clock.now()) == Approx(0.1));  // its pid record is due first
  b.step(0.1);
  CHECK(b.hb().running.empty());
  CHECK(b.r->next_deadline(b.clock.now()) == Approx(0.3));  // the loop wakes up for it
  b.step(0.31);
  CHECK(b.hb().running == std::vector<std::string>{a});
  double ts = b.hb().ts;
  b.ops.exit_code(b.ops.pid_of(a), 0);
  b.step(0.1);  // a ends, second starts
  CHECK(b.hb().ts == ts);
  b.step(0.4);
  CHECK(b.hb().running == std::vector<std::string>{second});
  // Pause is written at once, whatever the rate limit.
  write_pause(b.lease, "n1", b.clock.now());
  b.step(0.01);
  CHECK(b.hb().paused);
}

TEST_CASE("runner: a result that cannot be written is kept and retried", "[runner]") {
  bench b;
  std::string id = b.submit();
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  // done/n1 becomes unwritable (a file in its place: ENOTDIR, even for root).
  fs::path done = b.lease.done("n1");
  fs::rename(done, b.tmp / "done-away");
  test_support::write_text(done, "not a dir");
  b.ops.exit_code(b.ops.pid_of(id), 0);
  b.step();
  CHECK(b.r->unwritten_count() == 1);
  CHECK(fs::exists(b.lease.claimed_task("n1", id)));  // the task is not lost
  b.step();
  CHECK(b.r->unwritten_count() == 1);
  fs::remove(done);
  fs::rename(b.tmp / "done-away", done);
  b.step(6);  // failed writes back off (0.1 s doubling to 5 s): never a busy loop
  CHECK(b.r->unwritten_count() == 0);
  REQUIRE(b.result(id));
  CHECK(b.result(id)->state == task_state::finished);
  CHECK_FALSE(fs::exists(b.lease.claimed_task("n1", id)));
}

namespace {

// Makes every result write fail with ENOSPC (LEASEQ_FAULT=result_write_enospc, set in-process)
// while it lives, and counts the write attempts by the fault point's hits.
struct result_enospc_for_test {
  detail::fault_rule& rule =
      detail::faults().rules[static_cast<int>(fault_point::result_write_enospc)];
  bool any_was = detail::faults().any;
  std::uint64_t first_n_was = rule.first_n, every_k_was = rule.every_k;
  result_enospc_for_test() {
    rule.first_n = std::uint64_t(1) << 62;
    rule.every_k = 0;
    detail::faults().any = true;
  }
  ~result_enospc_for_test() {
    rule.first_n = first_n_was;
    rule.every_k = every_k_was;
    detail::faults().any = any_was;
  }
  std::uint64_t attempts() const { return rule.hits.load(); }
};

}  // namespace

TEST_CASE("runner: result writes failing on a full disk back off to one try every 5 s",
          "[runner]") {
  bench b;
  std::string id = b.submit();
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  result_enospc_for_test full;
  std::uint64_t before = full.attempts();
  b.ops.exit_code(b.ops.pid_of(id), 0);
  // 60 s of fake time in passes 0.05 s apart, as a busy runner loop would make them.
  std::vector<double> tries;
  std::uint64_t seen = before;
  double t0 = b.clock.now();
  for (int i = 0; i < 1200; ++i) {
    b.step(0.05);
    if (full.attempts() != seen) {
      seen = full.attempts();
      tries.push_back(b.clock.now() - t0);
    }
  }
  std::uint64_t attempts = full.attempts() - before;
  INFO("attempts: " << attempts);
  CHECK(attempts >= 10);  // still retried all along ...
  CHECK(attempts <= 20);  // ... but not 1200 times (nor 15 000 a second)
  CHECK(b.r->unwritten_count() == 1);
  CHECK(fs::exists(b.lease.claimed_task("n1", id)));
  REQUIRE(tries.size() >= 8);
  // The interval grows (0.1 s doubling) and then stays at the 5 s cap.
  std::vector<double> gaps;
  for (std::size_t i = 1; i < tries.size(); ++i) gaps.push_back(tries[i] - tries[i - 1]);
  for (std::size_t i = 1; i < gaps.size(); ++i) CHECK(gaps[i] >= gaps[i - 1] - 0.051);
  CHECK(gaps.front() < 1);
  CHECK(gaps.back() >= 5 - 1e-6);
  CHECK(gaps.back() <= 5 + 0.051);
}

TEST_CASE("runner: stop ends running tasks as runner_terminated", "[runner]") {
  bench b;
  std::string a = b.submit(), c = b.submit();
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  b.r->request_stop();
  b.step();
  pid_t p = b.ops.pid_of(a);
  CHECK(b.ops.procs[p].signals == std::vector<int>{SIGTERM});
  CHECK_FALSE(b.r->finished());
  b.ops.exit_signal(p, SIGTERM);
  b.step();
  CHECK(b.r->finished());
  CHECK(b.result(a)->reason == "runner_terminated");
  CHECK(b.result(a)->state == task_state::failed);
  CHECK(b.hb().stopped);
  CHECK(fs::exists(b.lease.inbox_task("_any", c)));
}

TEST_CASE("runner: restart after a crash reports runner_lost", "[runner]") {
  bench b;
  std::string gone = b.submit(), alive = b.submit(), done = b.submit();
  ensure_dir(b.lease.claimed("n1"));
  ensure_dir(b.lease.done("n1"));
  auto claim = [&](const std::string& id, std::int64_t pid) {
    json t = *read_json_tolerant(b.lease.inbox_task("_any", id)).value;
    t["pid"] = pid;
    t["claimed"] = 5.0;
    write_json_atomic(b.lease.claimed_task("n1", id), t);
    fs::remove(b.lease.inbox_task("_any", id));
    return t;
  };
  claim(gone, 4343);
  claim(alive, 4242);
  json d = claim(done, 4444);
  d["state"] = "FINISHED";
  write_json_atomic(b.lease.result("n1", done), d);
  b.ops.foreign_alive = {4242};

  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  CHECK(b.result(gone)->reason == "runner_lost");
  CHECK(b.result(gone)->state == task_state::failed);
  CHECK_FALSE(fs::exists(b.lease.claimed_task("n1", done)));  // finished the interrupted move
  CHECK(b.result(done)->state == task_state::finished);
  CHECK(b.hb().running == std::vector<std::string>{alive});
  std::string next = b.submit();
  b.step();
  CHECK(b.ops.pid_of(next) < 0);  // the orphan holds the only slot
  b.ops.foreign_alive.clear();
  b.step(1);
  CHECK(b.result(alive)->reason == "runner_lost");
  b.step();
  CHECK(b.ops.pid_of(next) > 0);
}

TEST_CASE("runner: a spawn failure is a FAILED result, not a dead runner", "[runner]") {
  bench b;
  std::string bad = b.submit(), good = b.submit();
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.ops.fail_next = "work: No such file or directory";
  b.step();
  auto res = b.result(bad);
  REQUIRE(res);
  CHECK(res->state == task_state::failed);
  CHECK(res->reason == "spawn_failed: work: No such file or directory");
  CHECK(b.ops.pid_of(good) > 0);
}

TEST_CASE("runner: posix process ops run a real task in its own session", "[runner]") {
  temp_dir t;
  posix_process_ops ops;
  spawn_request req;
  req.argv = {"/bin/sh", "-c", "echo $$ $(cut -d' ' -f6 /proc/$$/stat); pwd; echo e >&2; exit 4"};
  req.cwd = t.path().string();
  req.env = merged_environment({{"X", "1"}});
  req.stdout_path = (t / "o").string();
  req.stderr_path = (t / "e").string();
  spawn_outcome s = ops.spawn(req);
  REQUIRE(s.pid > 0);
  std::optional<child_exit> e;
  REQUIRE(test_support::wait_until([&] { return (e = ops.reap()).has_value(); }));
  CHECK(e->pid == s.pid);
  CHECK(e->exit_code == 4);
  std::string out = test_support::read_text(t / "o");
  std::istringstream first(out);
  std::string pid, sid;
  first >> pid >> sid;
  CHECK(pid == std::to_string(s.pid));
  CHECK(sid == pid);  // a session (and process group) of its own
  CHECK(out.find(fs::canonical(t.path()).string()) != std::string::npos);
  CHECK(test_support::read_text(t / "e") == "e\n");
  req.argv = {"/no/such/program"};
  CHECK(ops.spawn(req).pid < 0);
  req.argv = {"true"};
  req.cwd = (t / "missing").string();
  CHECK(ops.spawn(req).error.find("missing") != std::string::npos);
  CHECK_FALSE(ops.alive(999999999));
  CHECK(ops.alive(::getpid()));
}

TEST_CASE(
    "runner: a task killed from outside just before the runner's own stop is runner_terminated",
    "[runner]") {
  bench b;
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  std::string id = b.submit();
  b.step();
  REQUIRE(b.ops.pid_of(id) > 0);
  b.ops.exit_signal(b.ops.pid_of(id), 15);  // Slurm's SIGTERM reaches the task first
  b.step();
  CHECK_FALSE(b.result(id));
  b.r->request_stop();  // then the runner's own
  b.step();
  REQUIRE(b.result(id));
  CHECK(b.result(id)->state == task_state::failed);
  CHECK(b.result(id)->reason == "runner_terminated");
  CHECK(b.result(id)->signal == 15);
}

TEST_CASE("runner: a second runner for the same node refuses to start", "[runner]") {
  bench b;
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  auto second = b.make(b.config(1));
  CHECK_THROWS_WITH(second->start(b.clock.now()), Catch::Contains("another runner already serves"));
  b.r.reset();  // the first one ends: the node is free again
  auto third = b.make(b.config(1));
  CHECK_NOTHROW(third->start(b.clock.now()));
}

TEST_CASE("runner: a reused pid is not the task a crashed runner left", "[runner]") {
  bench b;
  std::string id = b.submit();
  ensure_dir(b.lease.claimed("n1"));
  json t = *read_json_tolerant(b.lease.inbox_task("_any", id)).value;
  t["pid"] = ::getpid();  // alive, but not the process that was started for the task
  t["claimed"] = 5.0;
  t["pid_start"] = detail::process_start_ticks(::getpid()).value_or(0) + 1;
  write_json_atomic(b.lease.claimed_task("n1", id), t);
  fs::remove(b.lease.inbox_task("_any", id));
  b.ops.foreign_alive = {::getpid()};
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  REQUIRE(b.result(id));
  CHECK(b.result(id)->reason == "runner_lost");
  CHECK(b.ops.procs.empty());
}

TEST_CASE("runner: a task a crashed runner was starting is found by its attempt, not rerun",
          "[runner]") {
  bench b;
  std::string id = b.submit();
  ensure_dir(b.lease.claimed("n1"));
  // The crashed runner wrote "starting", spawned the task, and died before recording its pid.
  posix_process_ops real;
  spawn_request req;
  req.argv = {"sleep", "30"};
  req.env = merged_environment({{"LEASEQ_ATTEMPT", "n1-dead-" + id}});
  req.stdout_path = (b.tmp / "o").string();
  req.stderr_path = (b.tmp / "e").string();
  spawn_outcome s = real.spawn(req);
  REQUIRE(s.pid > 0);
  json t = *read_json_tolerant(b.lease.inbox_task("_any", id)).value;
  t["claimed"] = 5.0;
  t["starting"] = "n1-dead-" + id;
  write_json_atomic(b.lease.claimed_task("n1", id), t);
  fs::remove(b.lease.inbox_task("_any", id));
  b.ops.foreign_alive = {s.pid};
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  CHECK(b.ops.procs.empty());  // not started a second time
  CHECK_FALSE(b.result(id));
  CHECK(b.hb().running == std::vector<std::string>{id});
  ::kill(s.pid, SIGKILL);
  ::waitpid(s.pid, nullptr, 0);
  b.ops.foreign_alive.clear();
  b.step(1);
  REQUIRE(b.result(id));
  CHECK(b.result(id)->reason == "runner_lost");

  // Without such a process, a task that was being started may have run: never rerun it.
  std::string other = b.submit();
  b.r.reset();
  json u = *read_json_tolerant(b.lease.inbox_task("_any", other)).value;
  u["starting"] = "n1-gone-" + other;
  write_json_atomic(b.lease.claimed_task("n1", other), u);
  fs::remove(b.lease.inbox_task("_any", other));
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  CHECK(b.ops.procs.empty());
  REQUIRE(b.result(other));
  CHECK(b.result(other)->reason == "runner_lost");
}

// ---- the supervisor and orphans (issue 14.7) ----

namespace {

// Runs run_supervisor() in a forked child, as `leaseq __supervise` would; returns its wait
// status.
// `options` (--time-limit, --grace) put the supervisor in a session of its own: a time limit
// signals its whole process group.
int supervise_in_child(const fs::path& status, const std::string& attempt,
                       std::vector<std::string> cmd, std::vector<std::string> options = {}) {
  std::vector<std::string> words = {"leaseq", supervise_verb, status.string(), attempt};
  words.insert(words.end(), options.begin(), options.end());
  words.push_back("--");
  words.insert(words.end(), cmd.begin(), cmd.end());
  pid_t pid = ::fork();
  if (pid == 0) {
    if (!options.empty()) ::setsid();
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    ::_exit(run_supervisor(static_cast<int>(words.size()), argv.data()));
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return st;
}

// A claimed file as a crashed runner leaves it: pid and attempt recorded, task still running.
void leave_orphan(bench& b, const std::string& id, std::int64_t pid, const std::string& attempt) {
  ensure_dir(b.lease.claimed("n1"));
  json t = *read_json_tolerant(b.lease.inbox_task("_any", id)).value;
  t["pid"] = pid;
  t["claimed"] = 5.0;
  t["starting"] = attempt;
  write_json_atomic(b.lease.claimed_task("n1", id), t);
  fs::remove(b.lease.inbox_task("_any", id));
}

void write_exit_file(bench& b, const std::string& id, const json& status) {
  ensure_dir(b.lease.logs("n1"));
  write_json_atomic(b.lease.logs("n1") / (id + ".exit"), status);
}

}  // namespace

TEST_CASE("runner: the supervisor records the task's end and ends as the task did", "[runner]") {
  temp_dir t;
  fs::path st = t / "T001.exit";
  int ws = supervise_in_child(st, "a1", {"/bin/sh", "-c", "exit 3"});
  CHECK(WIFEXITED(ws));
  CHECK(WEXITSTATUS(ws) == 3);
  auto s = read_exit_status(st, "a1");
  REQUIRE(s);
  CHECK(s->exit_code == 3);
  CHECK_FALSE(s->signal);
  CHECK(s->finished.value_or(0) > 0);
  CHECK_FALSE(read_exit_status(st, "a2"));  // another attempt's file says nothing

  ws = supervise_in_child(st, "a2", {"/bin/sh", "-c", "kill -TERM $$"});
  CHECK(WIFSIGNALED(ws));
  CHECK(WTERMSIG(ws) == SIGTERM);
  s = read_exit_status(st, "a2");
  REQUIRE(s);
  CHECK(s->signal == SIGTERM);
  CHECK_FALSE(s->exit_code);

  ws = supervise_in_child(st, "a3", {"no-such-program-leaseq"});
  CHECK(WIFEXITED(ws));
  CHECK(WEXITSTATUS(ws) == 127);
  s = read_exit_status(st, "a3");
  REQUIRE(s);
  CHECK(s->spawn_failed == "no-such-program-leaseq: No such file or directory");

  // No temp file is left beside the status file.
  CHECK(detail::list_dir(t.path().string()).names == std::vector<std::string>{"T001.exit"});
}

TEST_CASE("runner: the supervisor outlives SIGTERM to the group, the task does not", "[runner]") {
  temp_dir t;
  fs::path st = t / "s.exit";
  fs::path ready = t / "ready";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    std::string ready_s = ready.string(), st_s = st.string();
    std::string script = "touch " + ready_s + "; exec sleep 30";
    std::vector<std::string> words = {"leaseq", supervise_verb, st_s, "a1",
                                      "--",     "/bin/sh",      "-c", script};
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    ::_exit(run_supervisor(static_cast<int>(words.size()), argv.data()));
  }
  REQUIRE(test_support::wait_until([&] { return fs::exists(ready); }));
  ::kill(-pid, SIGTERM);  // what a cancel sends
  int ws = 0;
  ::waitpid(pid, &ws, 0);
  CHECK(WIFSIGNALED(ws));
  CHECK(WTERMSIG(ws) == SIGTERM);
  auto s = read_exit_status(st, "a1");
  REQUIRE(s);
  CHECK(s->signal == SIGTERM);
}

TEST_CASE("runner: an orphan's end is what its supervisor recorded, runner_lost only without it",
          "[runner]") {
  bench b;
  std::string ok = b.submit(), three = b.submit(), sig = b.submit(), none = b.submit(),
              stale = b.submit(), early = b.submit();
  leave_orphan(b, ok, 5001, "n1-old-1");
  leave_orphan(b, three, 5002, "n1-old-2");
  leave_orphan(b, sig, 5003, "n1-old-3");
  leave_orphan(b, none, 5004, "n1-old-4");
  leave_orphan(b, stale, 5005, "n1-old-5");
  leave_orphan(b, early, 5006, "n1-old-6");
  // Ended while no runner watched: its status is already there at start.
  write_exit_file(b, early, {{"attempt", "n1-old-6"}, {"exit_code", 0}, {"finished", 7.0}});
  b.ops.foreign_alive = {5001, 5002, 5003, 5004, 5005};
  auto cfg = b.config(8);
  b.r = b.make(cfg);
  b.r->start(b.clock.now());
  REQUIRE(b.result(early));
  CHECK(b.result(early)->state == task_state::finished);
  CHECK(b.result(early)->exit_code == 0);
  CHECK_FALSE(b.result(early)->reason);
  CHECK(b.result(early)->finished == 7.0);  // when it ended, not when it was noticed
  CHECK(b.result(early)->attempt == "n1-old-6");
  CHECK(b.hb().running.size() == 5);

  write_exit_file(b, ok, {{"attempt", "n1-old-1"}, {"exit_code", 0}, {"signal", nullptr}});
  write_exit_file(b, three, {{"attempt", "n1-old-2"}, {"exit_code", 3}, {"signal", nullptr}});
  write_exit_file(b, sig, {{"attempt", "n1-old-3"}, {"exit_code", nullptr}, {"signal", 9}});
  write_exit_file(b, stale, {{"attempt", "n1-earlier"}, {"exit_code", 0}});
  b.ops.foreign_alive.clear();
  b.step(1);
  REQUIRE(b.result(ok));
  CHECK(b.result(ok)->state == task_state::finished);
  CHECK(b.result(ok)->exit_code == 0);
  CHECK_FALSE(b.result(ok)->reason);
  REQUIRE(b.result(three));
  CHECK(b.result(three)->state == task_state::failed);
  CHECK(b.result(three)->exit_code == 3);
  CHECK_FALSE(b.result(three)->reason);
  REQUIRE(b.result(sig));
  CHECK(b.result(sig)->state == task_state::failed);
  CHECK(b.result(sig)->signal == 9);
  CHECK(b.result(none)->reason == "runner_lost");
  CHECK(b.result(stale)->reason == "runner_lost");  // another attempt's status is no evidence
  for (const auto& id : {ok, three, sig, none, stale, early})
    CHECK_FALSE(fs::exists(b.lease.claimed_task("n1", id)));
}

TEST_CASE("runner: cancel of an orphan signals its group and ends CANCELLED", "[runner]") {
  bench b;
  std::string id = b.submit(), stubborn = b.submit(), reused = b.submit();
  leave_orphan(b, id, 6001, "n1-old-1");
  leave_orphan(b, stubborn, 6002, "n1-old-2");
  // Its recorded pid now runs another program (this test): never signalled.
  leave_orphan(b, reused, ::getpid(), "n1-old-3");
  json r = *read_json_tolerant(b.lease.claimed_task("n1", reused)).value;
  r["pid_start"] = detail::process_start_ticks(::getpid()).value_or(0) + 1;
  write_json_atomic(b.lease.claimed_task("n1", reused), r);
  b.ops.foreign_alive = {6001, 6002, ::getpid()};
  b.r = b.make(b.config(4));
  b.r->start(b.clock.now());
  REQUIRE(b.result(reused));
  CHECK(b.result(reused)->reason == "runner_lost");  // not the same process: it ended
  write_cancel(b.lease, "n1", id);
  write_cancel(b.lease, "n1", stubborn);
  b.step();
  CHECK(b.ops.procs[6001].signals == std::vector<int>{SIGTERM});
  CHECK(b.ops.procs[6002].signals == std::vector<int>{SIGTERM});
  CHECK(b.ops.procs[::getpid()].signals.empty());

  // The first dies of the SIGTERM; its supervisor records that.
  b.ops.foreign_alive.erase(6001);
  write_exit_file(b, id, {{"attempt", "n1-old-1"}, {"exit_code", nullptr}, {"signal", SIGTERM}});
  b.step(1);
  REQUIRE(b.result(id));
  CHECK(b.result(id)->state == task_state::cancelled);
  CHECK(b.result(id)->reason == "cancelled");
  CHECK(b.result(id)->signal == SIGTERM);

  // The second ignores it: SIGKILL after the grace period kills it with its supervisor.
  b.step(5);
  CHECK(b.ops.procs[6002].signals == std::vector<int>{SIGTERM, SIGKILL});
  b.ops.foreign_alive.erase(6002);
  b.step(1);
  REQUIRE(b.result(stubborn));
  CHECK(b.result(stubborn)->state == task_state::cancelled);
  CHECK(b.result(stubborn)->reason == "cancelled");
}

TEST_CASE("runner: an orphan that ended before its cancel keeps its own outcome", "[runner]") {
  bench b;
  std::string id = b.submit();
  leave_orphan(b, id, 7001, "n1-old-1");
  b.ops.foreign_alive = {7001};
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  b.ops.foreign_alive.clear();
  write_exit_file(b, id, {{"attempt", "n1-old-1"}, {"exit_code", 0}});
  write_cancel(b.lease, "n1", id);
  b.step(0.1);  // the cancel is read before the orphan check (every 0.5 s) notices the end
  CHECK(b.ops.procs[7001].signals.empty());
  b.step(1);
  REQUIRE(b.result(id));
  CHECK(b.result(id)->state == task_state::finished);
}

#ifdef LEASEQ_BIN
// A supervised task (attempt a1, logs and status file in dir) that prints its pid, its process
// group and its LEASEQ_ATTEMPT, then exits 4.
static spawn_request reporting_request(const fs::path& dir) {
  spawn_request req;
  req.argv = {"/bin/sh", "-c", "echo $$ $(cut -d' ' -f5 /proc/$$/stat) $LEASEQ_ATTEMPT; exit 4"};
  req.cwd = dir.string();
  req.env = merged_environment({{"LEASEQ_ATTEMPT", "a1"}});
  req.stdout_path = (dir / "o").string();
  req.stderr_path = (dir / "e").string();
  req.supervisor = LEASEQ_BIN;
  req.status_path = (dir / "s.exit").string();
  req.attempt = "a1";
  return req;
}

TEST_CASE("runner: tasks under the leaseq supervisor, through posix process ops", "[runner]") {
  temp_dir t;
  posix_process_ops ops;
  spawn_request req = reporting_request(t.path());
  spawn_outcome s = ops.spawn(req);
  REQUIRE(s.pid > 0);
  std::optional<child_exit> e;
  REQUIRE(test_support::wait_until([&] { return (e = ops.reap()).has_value(); }));
  CHECK(e->pid == s.pid);
  CHECK(e->exit_code == 4);  // the supervisor exits as its task did
  std::istringstream out(test_support::read_text(t / "o"));
  std::string task_pid, pgid, attempt;
  out >> task_pid >> pgid >> attempt;
  CHECK(task_pid != std::to_string(s.pid));  // the task is the supervisor's child ...
  CHECK(pgid == std::to_string(s.pid));      // ... in the group a cancel signals
  CHECK(attempt == "a1");
  auto st = read_exit_status(t / "s.exit", "a1");
  REQUIRE(st);
  CHECK(st->exit_code == 4);

  // A missing program: the supervisor starts, the program does not.
  bench b;
  std::string missing = b.submit();
  auto cfg = b.config(1);
  cfg.supervisor = LEASEQ_BIN;
  b.r = std::make_unique<runner>(cfg, b.lease, ops);
  b.r->start(b.clock.now());
  b.step();
  REQUIRE(test_support::wait_until([&] {
    b.step();
    return b.result(missing).has_value();
  }));
  CHECK(b.result(missing)->state == task_state::failed);
  CHECK(b.result(missing)->reason == "spawn_failed: work: No such file or directory");
  CHECK_FALSE(b.result(missing)->exit_code);
}

TEST_CASE("runner: a time limit reaches the leaseq supervisor through posix process ops",
          "[runner]") {
  temp_dir t;
  posix_process_ops ops;
  spawn_request req;
  req.argv = {"sleep", "30"};
  req.cwd = t.path().string();
  req.env = merged_environment({});
  req.stdout_path = (t / "o").string();
  req.stderr_path = (t / "e").string();
  req.supervisor = LEASEQ_BIN;
  req.status_path = (t / "s.exit").string();
  req.attempt = "a1";
  req.time_limit_s = 1e-7;  // written exactly, never rounded to 0
  req.grace_s = 5;
  spawn_outcome s = ops.spawn(req);
  REQUIRE(s.pid > 0);
  std::optional<child_exit> e;
  REQUIRE(test_support::wait_until([&] { return (e = ops.reap()).has_value(); }));
  CHECK(e->signal == SIGTERM);
  auto st = read_exit_status(t / "s.exit", "a1");
  REQUIRE(st);
  CHECK(st->time_limit);
}

TEST_CASE("runner: with a spawn server, the task leads its session and the server reports its end",
          "[runner]") {
  temp_dir t;
  posix_process_ops ops;
  ops.start_spawn_server();
  REQUIRE(ops.event_fd() >= 0);
  spawn_request req = reporting_request(t.path());
  spawn_outcome s = ops.spawn(req);
  REQUIRE(s.pid > 0);
  CHECK(s.start_ticks > 0);
  std::optional<child_exit> e;
  REQUIRE(test_support::wait_until([&] { return (e = ops.reap()).has_value(); }));
  CHECK(e->pid == s.pid);
  CHECK(e->exit_code == 4);
  std::istringstream out(test_support::read_text(t / "o"));
  std::string task_pid, pgid, attempt;
  out >> task_pid >> pgid >> attempt;
  CHECK(task_pid == std::to_string(s.pid));  // the recorded pid is the task's ...
  CHECK(pgid == std::to_string(s.pid));      // ... and leads the group a cancel signals
  CHECK(attempt == "a1");
  auto st = read_exit_status(t / "s.exit", "a1");
  REQUIRE(st);
  CHECK(st->exit_code == 4);
  // A missing program: told at once, with the supervisor's words.
  req.argv = {"no-such-program-leaseq"};
  spawn_outcome bad = ops.spawn(req);
  CHECK(bad.pid <= 0);
  CHECK(bad.error == "no-such-program-leaseq: No such file or directory");
  // A cancel through the server reaches the task's group.
  req.argv = {"sleep", "30"};
  spawn_outcome slow = ops.spawn(req);
  REQUIRE(slow.pid > 0);
  ops.signal_group(slow.pid, SIGTERM);
  REQUIRE(test_support::wait_until([&] { return (e = ops.reap()).has_value(); }));
  CHECK(e->pid == slow.pid);
  CHECK(e->signal == SIGTERM);
}
#endif

TEST_CASE("runner: a task whose supervisor died is watched by pid, and ends with what is on file",
          "[runner]") {
  struct losing_ops : fake_ops {
    std::vector<pid_t> lost;
    std::vector<pid_t> take_lost() override { return std::exchange(lost, {}); }
  };
  temp_dir tmp;
  lease_paths lease{tmp / "lease"};
  losing_ops ops;
  manual_clock clock;
  runner_config c;
  c.lease_id = "local:h";
  c.node = "n1";
  c.slots = 2;
  c.grace_s = 5;
  submit_request sr;
  sr.argv = {"work"};
  std::string recorded = submit_task(lease, "local:h", sr).id;
  std::string unrecorded = submit_task(lease, "local:h", sr).id;
  runner r(c, lease, ops);
  r.start(clock.now());
  clock.advance(0.1);
  r.step(clock.now());
  pid_t a = ops.pid_of(recorded), b = ops.pid_of(unrecorded);
  REQUIRE(a > 0);
  REQUIRE(b > 0);
  ops.lost = {a, b};
  ops.foreign_alive = {a, b};
  clock.advance(0.1);
  r.step(clock.now());
  CHECK(r.running_count() == 2);  // still running, now watched by pid
  // The end of one was recorded (by the supervisor before it died); the other's was not.
  json_outcome claim = read_json_tolerant(lease.claimed_task("n1", recorded));
  REQUIRE(claim.ok());
  std::string attempt = (*claim.value)["starting"].get<std::string>();
  write_json_atomic(lease.logs("n1") / (recorded + ".exit"),
                    json{{"attempt", attempt}, {"exit_code", 0}, {"signal", nullptr}});
  ops.foreign_alive.clear();
  clock.advance(1);
  r.step(clock.now());
  auto result = [&](const std::string& id) {
    task_result res;
    from_json(*read_json_tolerant(lease.result("n1", id)).value, res);
    return res;
  };
  REQUIRE(fs::exists(lease.result("n1", recorded)));
  REQUIRE(fs::exists(lease.result("n1", unrecorded)));
  CHECK(result(recorded).state == task_state::finished);
  CHECK(result(unrecorded).reason == "runner_lost");
}

#ifdef LEASEQ_BIN
TEST_CASE("runner: a starting attempt is found by LEASEQ_ATTEMPT under its supervisor",
          "[runner]") {
  bench b;
  std::string id = b.submit();
  ensure_dir(b.lease.claimed("n1"));
  ensure_dir(b.lease.logs("n1"));
  // A crashed runner wrote "starting", spawned the supervisor, and died before the pid.
  std::string attempt = "n1-dead-" + id;
  posix_process_ops real;
  spawn_request req;
  req.argv = {"sleep", "30"};
  req.env = merged_environment({{"LEASEQ_ATTEMPT", attempt}});
  req.stdout_path = (b.tmp / "o").string();
  req.stderr_path = (b.tmp / "e").string();
  req.supervisor = LEASEQ_BIN;
  req.status_path = (b.lease.logs("n1") / (id + ".exit")).string();
  req.attempt = attempt;
  spawn_outcome s = real.spawn(req);
  REQUIRE(s.pid > 0);
  // Both the supervisor and its task carry the attempt: wait until the task runs too, exec'd
  // (a forked child still ignores SIGTERM, as its supervisor does, until it has put the
  // dispositions back just before exec: a SIGTERM then would be lost).
  REQUIRE(test_support::wait_until([&] {
    std::string kids = test_support::read_text("/proc/" + std::to_string(s.pid) + "/task/" +
                                               std::to_string(s.pid) + "/children");
    if (kids.empty()) return false;
    std::string kid = kids.substr(0, kids.find(' '));
    return test_support::read_text("/proc/" + kid + "/comm") == "sleep\n";
  }));
  json t = *read_json_tolerant(b.lease.inbox_task("_any", id)).value;
  t["claimed"] = 5.0;
  t["starting"] = attempt;
  write_json_atomic(b.lease.claimed_task("n1", id), t);
  fs::remove(b.lease.inbox_task("_any", id));
  b.ops.foreign_alive = {s.pid};  // only the supervisor, the group's leader, counts
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  CHECK(b.ops.procs.empty());
  CHECK(b.hb().running == std::vector<std::string>{id});
  ::kill(-s.pid, SIGTERM);  // the task dies of it; its supervisor records that and follows
  int ws = 0;
  ::waitpid(s.pid, &ws, 0);
  CHECK(WIFSIGNALED(ws));
  b.ops.foreign_alive.clear();
  b.step(1);
  REQUIRE(b.result(id));
  CHECK(b.result(id)->state == task_state::failed);
  CHECK(b.result(id)->signal == SIGTERM);
  CHECK_FALSE(b.result(id)->reason);  // not runner_lost: its end is known
}
#endif

// ---- protocol version 3: dependencies, time limits, retries ----

namespace {

std::string submit_v3(bench& b, const std::function<void(submit_request&)>& set) {
  submit_request r;
  r.argv = {"work"};
  set(r);
  return submit_task(b.lease, "local:h", r).id;
}

// A task told SIGTERM gets SIGKILL once the grace (5 s) is over, and dies of it.
task_result killed_after_grace(bench& b, pid_t p, const std::string& id) {
  CHECK(b.ops.procs[p].signals == std::vector<int>{SIGTERM});
  b.step(5.5);
  CHECK(b.ops.procs[p].signals == std::vector<int>{SIGTERM, SIGKILL});
  b.ops.exit_signal(p, SIGKILL);
  b.step();
  auto res = b.result(id);
  REQUIRE(res);
  return *res;
}

bool logged(const bench& b, const std::string& text) {
  return std::any_of(b.logs.begin(), b.logs.end(),
                     [&](const std::string& l) { return l.find(text) != std::string::npos; });
}

}  // namespace

TEST_CASE("runner: a task waits for its dependencies without blocking the lane", "[runner]") {
  bench b;
  std::string first = b.submit();
  std::string second = submit_v3(b, [&](submit_request& r) { r.after = {first}; });
  std::string free = b.submit();
  b.r = b.make(b.config(2));
  b.r->start(b.clock.now());
  b.step();
  CHECK(b.ops.pid_of(first) > 0);
  CHECK(b.ops.pid_of(second) < 0);  // waits, and the task behind it runs
  CHECK(b.ops.pid_of(free) > 0);
  b.ops.exit_code(b.ops.pid_of(free), 0);
  b.step(2);
  CHECK(b.ops.pid_of(second) < 0);  // a free slot, but its dependency still runs
  CHECK(fs::exists(b.lease.inbox_task("_any", second)));
  b.ops.exit_code(b.ops.pid_of(first), 0);
  b.step();
  b.step(1.1);  // the dependency's end is looked at again within a second
  REQUIRE(b.ops.pid_of(second) > 0);
  b.ops.exit_code(b.ops.pid_of(second), 0);
  b.step();
  CHECK(b.result(second)->state == task_state::finished);
  CHECK(b.result(second)->task.after == std::vector<std::string>{first});
}

TEST_CASE("runner: a dependency that failed cancels its dependants, never runs them", "[runner]") {
  bench b;
  std::string bad = b.submit();
  std::string child = submit_v3(b, [&](submit_request& r) { r.after = {bad}; });
  std::string grandchild = submit_v3(b, [&](submit_request& r) { r.after = {child, bad}; });
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  b.ops.exit_code(b.ops.pid_of(bad), 3);
  for (int i = 0; i < 6; ++i) b.step(0.5);
  auto c = b.result(child);
  REQUIRE(c);
  CHECK(c->state == task_state::cancelled);
  CHECK(c->reason == "dependency_failed: " + bad + " FAILED");
  CHECK_FALSE(c->attempt);
  CHECK(logged(b, child + ": dependency " + bad + " ended FAILED: cancelled"));
  auto g = b.result(grandchild);
  REQUIRE(g);
  CHECK(g->state == task_state::cancelled);
  CHECK(b.ops.pid_of(child) < 0);
  CHECK(b.ops.pid_of(grandchild) < 0);
  CHECK(detail::list_dir(b.lease.claimed("n1").string()).names.empty());
}

TEST_CASE("runner: a task of another lane's dependency is seen in any node's done/", "[runner]") {
  bench b;
  std::string elsewhere = b.submit(std::string("n2"));
  std::string mine = submit_v3(b, [&](submit_request& r) { r.after = {elsewhere}; });
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  CHECK(b.ops.pid_of(mine) < 0);
  // The runner of n2 ran it: its result sits in done/n2.
  json t = *read_json_tolerant(b.lease.inbox_task("n2", elsewhere)).value;
  t["state"] = "FINISHED";
  t["exit_code"] = 0;
  ensure_dir(b.lease.done("n2"));
  write_json_atomic(b.lease.result("n2", elsewhere), t);
  fs::remove(b.lease.inbox_task("n2", elsewhere));
  b.step(1.1);
  CHECK(b.ops.pid_of(mine) > 0);
}

TEST_CASE("runner: a FAILED attempt runs again after its delay, every attempt kept", "[runner]") {
  bench b;
  std::string id = submit_v3(b, [](submit_request& r) {
    r.retries = 2;
    r.retry_delay = 10;
  });
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  pid_t p1 = b.ops.pid_of(id);
  std::string attempt1 = b.ops.env_of(p1, "LEASEQ_ATTEMPT");
  b.ops.exit_code(p1, 3);
  b.step();
  CHECK_FALSE(b.result(id));
  json queued = *read_json_tolerant(b.lease.inbox_task("_any", id)).value;
  CHECK(queued["attempts"].size() == 1);
  CHECK(queued["attempts"][0]["exit_code"] == 3);
  CHECK(queued["attempts"][0]["attempt"] == attempt1);
  CHECK(queued["not_before"].get<double>() > b.clock.now());
  CHECK_FALSE(queued.contains("pid"));
  CHECK_FALSE(queued.contains("starting"));
  std::string other = b.submit();
  b.step(1);
  CHECK(b.ops.pid_of(other) > 0);  // the delayed retry does not block the lane
  b.ops.exit_code(b.ops.pid_of(other), 0);
  b.step(1);
  CHECK(b.ops.procs.size() == 2);
  b.step(9);
  b.step();
  REQUIRE(b.ops.procs.size() == 3);
  pid_t p2 = b.ops.procs.rbegin()->first;
  CHECK(b.ops.env_of(p2, "LEASEQ_TASK_ID") == id);
  CHECK(b.ops.env_of(p2, "LEASEQ_ATTEMPT") != attempt1);
  b.ops.exit_signal(p2, SIGSEGV);  // a signal the runner did not send: retried too
  for (int i = 0; i < 4; ++i) b.step(1);
  b.step(10);
  b.step();
  REQUIRE(b.ops.procs.size() == 4);
  b.ops.exit_code(b.ops.procs.rbegin()->first, 0);
  b.step();
  auto res = b.result(id);
  REQUIRE(res);
  CHECK(res->state == task_state::finished);
  REQUIRE(res->task.attempts.size() == 3);
  CHECK(res->task.attempts[0].exit_code == 3);
  CHECK(res->task.attempts[1].signal == SIGSEGV);
  CHECK(res->task.attempts[2].exit_code == 0);
  CHECK(res->task.attempts[2].attempt == res->attempt.value_or(""));
  CHECK(res->task.attempts[2].node == "n1");
  CHECK_FALSE(res->task.not_before);
}

TEST_CASE("runner: the last attempt's failure is the result, and a cancel is never retried",
          "[runner]") {
  bench b;
  std::string once = submit_v3(b, [](submit_request& r) { r.retries = 1; });
  std::string cancelled = submit_v3(b, [](submit_request& r) { r.retries = 3; });
  b.r = b.make(b.config(2));
  b.r->start(b.clock.now());
  b.step();
  b.ops.exit_code(b.ops.pid_of(once), 1);
  write_cancel(b.lease, "n1", cancelled);
  b.step();
  b.ops.exit_signal(b.ops.pid_of(cancelled), SIGTERM);
  b.step();
  auto c = b.result(cancelled);
  REQUIRE(c);
  CHECK(c->state == task_state::cancelled);
  CHECK(c->task.attempts.size() == 1);
  b.step();
  pid_t again = -1;
  for (const auto& [pid, p] : b.ops.procs)
    if (b.ops.env_of(pid, "LEASEQ_TASK_ID") == once) again = pid;
  REQUIRE(again != b.ops.pid_of(once));
  b.ops.exit_code(again, 2);
  b.step();
  auto r = b.result(once);
  REQUIRE(r);
  CHECK(r->state == task_state::failed);
  CHECK(r->exit_code == 2);
  CHECK(r->task.attempts.size() == 2);
}

TEST_CASE("runner: without a supervisor the runner enforces the time limit itself", "[runner]") {
  bench b;
  std::string id = submit_v3(b, [](submit_request& r) {
    r.time_limit = 30;
    r.retries = 2;  // a time limit is not retried
  });
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  pid_t p = b.ops.pid_of(id);
  b.step(29);
  CHECK(b.ops.procs[p].signals.empty());
  CHECK(b.r->next_deadline(b.clock.now()) <= 1.01);
  b.step(1.5);
  task_result res = killed_after_grace(b, p, id);
  CHECK(res.state == task_state::failed);
  CHECK(res.reason == "time_limit");
  CHECK(b.ops.procs.size() == 1);
}

TEST_CASE("runner: a task lost with its runner runs again when retries are left", "[runner]") {
  bench b;
  std::string id = submit_v3(b, [](submit_request& r) { r.retries = 1; });
  leave_orphan(b, id, 4343, "n1-1-aaaaaaaaaaaa");  // its process is gone, no .exit file
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  CHECK_FALSE(b.result(id));
  b.step();
  pid_t p = b.ops.pid_of(id);
  REQUIRE(p > 0);
  b.ops.exit_code(p, 0);
  b.step();
  auto res = b.result(id);
  REQUIRE(res);
  CHECK(res->state == task_state::finished);
  REQUIRE(res->task.attempts.size() == 2);
  CHECK(res->task.attempts[0].reason == "runner_lost");
  CHECK(res->task.attempts[0].attempt == "n1-1-aaaaaaaaaaaa");
}

TEST_CASE("runner: an orphan its supervisor stopped at the time limit ends time_limit",
          "[runner]") {
  bench b;
  std::string id = submit_v3(b, [](submit_request& r) {
    r.time_limit = 5;
    r.retries = 1;
  });
  leave_orphan(b, id, 4343, "n1-1-bbbbbbbbbbbb");
  write_exit_file(b, id,
                  {{"attempt", "n1-1-bbbbbbbbbbbb"},
                   {"exit_code", nullptr},
                   {"signal", SIGTERM},
                   {"finished", 6.0},
                   {"time_limit", true}});
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  auto res = b.result(id);
  REQUIRE(res);
  CHECK(res->state == task_state::failed);
  CHECK(res->reason == "time_limit");
  CHECK(res->signal == SIGTERM);
}

namespace {

int supervise_with_limit(const fs::path& status, const std::string& limit, const std::string& grace,
                         const std::string& script) {
  return supervise_in_child(status, "a1", {"/bin/sh", "-c", script},
                            {"--time-limit", limit, "--grace", grace});
}

}  // namespace

TEST_CASE("runner: the supervisor stops a task at its time limit, SIGKILL after the grace",
          "[runner]") {
  temp_dir t;
  fs::path st = t / "T001.exit";
  int ws = supervise_with_limit(st, "0.2", "5", "exec sleep 30");
  CHECK(WIFSIGNALED(ws));
  CHECK(WTERMSIG(ws) == SIGTERM);
  auto s = read_exit_status(st, "a1");
  REQUIRE(s);
  CHECK(s->time_limit);
  CHECK(s->signal == SIGTERM);

  // A task that ignores SIGTERM is killed once the grace is over, its children with it.
  fs::path child_pid = t / "child.pid";
  ws = supervise_with_limit(st, "0.2", "0.2",
                            "trap '' TERM; sleep 30 & echo $! > " + child_pid.string() + "; wait");
  CHECK(WIFSIGNALED(ws));
  CHECK(WTERMSIG(ws) == SIGKILL);
  s = read_exit_status(st, "a1");
  REQUIRE(s);
  CHECK(s->time_limit);
  CHECK(s->signal == SIGKILL);
  pid_t sleeper = std::stoi(test_support::read_text(child_pid));
  auto gone = [&] {  // dead, or a zombie its new parent has not reaped yet
    std::string stat = test_support::read_text("/proc/" + std::to_string(sleeper) + "/stat");
    auto paren = stat.rfind(')');
    return stat.empty() || (paren != std::string::npos && stat.compare(paren, 3, ") Z") == 0);
  };
  CHECK(test_support::wait_until(gone));

  // A task that ends in time says nothing of a limit; bad options are a usage error.
  ws = supervise_with_limit(st, "30", "1", "exit 4");
  CHECK(WEXITSTATUS(ws) == 4);
  CHECK_FALSE(read_exit_status(st, "a1")->time_limit);
  ws = supervise_with_limit(st, "-1", "1", "exit 0");
  CHECK(WEXITSTATUS(ws) == 2);
}

// ---- protocol version 4: priority ----

TEST_CASE("runner: a lane is claimed by priority, highest first, then by seq", "[runner]") {
  bench b;
  std::string plain1 = b.submit();
  std::string low = submit_v3(b, [](submit_request& r) { r.priority = -5; });
  std::string plain2 = b.submit();
  std::string mid = submit_v3(b, [](submit_request& r) { r.priority = 2; });
  std::string high = submit_v3(b, [](submit_request& r) { r.priority = 9; });
  std::string mid2 = submit_v3(b, [](submit_request& r) { r.priority = 2; });
  // Markers only for priorities above 0, named after the task and its priority.
  CHECK(fs::exists(b.lease.priority("_any") / (high + ".p9")));
  CHECK(fs::exists(b.lease.priority("_any") / (mid + ".p2")));
  CHECK(detail::list_dir(b.lease.priority("_any").string()).names.size() == 3);
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  std::vector<std::string> order;
  for (int i = 0; i < 6; ++i) {
    b.step();
    REQUIRE(b.ops.procs.size() == static_cast<std::size_t>(i + 1));
    pid_t pid = b.ops.procs.rbegin()->first;
    order.push_back(b.ops.env_of(pid, "LEASEQ_TASK_ID"));
    b.ops.exit_code(pid, 0);
    b.step();
  }
  CHECK(order == std::vector<std::string>{high, mid, mid2, plain1, plain2, low});
  // The claims removed the markers.
  CHECK(detail::list_dir(b.lease.priority("_any").string()).names.empty());
  CHECK(b.result(high)->task.priority == 9);
}

TEST_CASE("runner: a task submitted later with a higher priority overtakes the queue", "[runner]") {
  bench b;
  std::vector<std::string> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(b.submit(std::string("n1")));
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  pid_t first = b.ops.pid_of(queued[0]);
  REQUIRE(first > 0);
  std::string urgent = submit_v3(b, [](submit_request& r) {
    r.node = "n1";
    r.priority = 1;
  });
  b.ops.exit_code(first, 0);
  b.step();
  CHECK(b.ops.pid_of(urgent) > 0);  // before queued[1], whose listing was cached already
  CHECK(b.ops.pid_of(queued[1]) < 0);
}

TEST_CASE("runner: a retried attempt gets its priority marker back, a stale marker goes",
          "[runner]") {
  bench b;
  std::string id = submit_v3(b, [](submit_request& r) {
    r.priority = 3;
    r.retries = 1;
    r.retry_delay = 30;
  });
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  pid_t p1 = b.ops.pid_of(id);
  REQUIRE(p1 > 0);
  CHECK_FALSE(fs::exists(b.lease.priority("_any") / (id + ".p3")));
  b.ops.exit_code(p1, 1);
  b.step();
  CHECK(fs::exists(b.lease.inbox_task("_any", id)));
  CHECK(fs::exists(b.lease.priority("_any") / (id + ".p3")));  // queued again, marked again
  b.step(31);
  b.step();
  REQUIRE(b.ops.procs.size() == 2);
  CHECK_FALSE(fs::exists(b.lease.priority("_any") / (id + ".p3")));
  b.ops.exit_code(b.ops.procs.rbegin()->first, 0);
  b.step();
  CHECK(b.result(id)->state == task_state::finished);

  // A marker whose task is nowhere in the lane (a claim by a runner that died before removing
  // it) is removed once older than lag explains; a young one stays.
  fs::path stale = b.lease.priority("_any") / "T077.p4";
  write_file_atomic(stale, "");
  b.step(1.1);
  CHECK(fs::exists(stale));
  struct timespec old[2] = {{0, UTIME_OMIT}, {static_cast<time_t>(b.clock.now()) - 120, 0}};
  REQUIRE(::utimensat(AT_FDCWD, stale.c_str(), old, 0) == 0);
  b.step(1.1);
  CHECK_FALSE(fs::exists(stale));
}

TEST_CASE("runner: priority markers are hints, the task file decides what runs", "[runner]") {
  bench b;
  std::string plain = b.submit();
  // A marker naming a priority the file does not have, and one for a task that waits on a
  // dependency: neither runs a task out of turn wrongly or twice.
  std::string dep = b.submit();
  std::string waits = submit_v3(b, [&](submit_request& r) {
    r.after = {dep};
    r.priority = 7;
  });
  write_file_atomic(b.lease.priority("_any") / (plain + ".p100"), "");
  write_file_atomic(b.lease.priority("_any") / "garbage", "");
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  b.step();
  CHECK(b.ops.pid_of(plain) > 0);  // by its marker: the file's priority 0 is only shown
  b.ops.exit_code(b.ops.pid_of(plain), 0);
  b.step();
  CHECK(b.ops.pid_of(dep) > 0);
  CHECK(b.ops.pid_of(waits) < 0);
  b.ops.exit_code(b.ops.pid_of(dep), 0);
  b.step();
  b.step(1.1);
  CHECK(b.ops.pid_of(waits) > 0);
  CHECK(b.ops.procs.size() == 3);
}

// Audit of issue 15: the task logs were opened by path, so a logs/<node> swapped for a link
// after the runner's check received them. With an anchor they are opened from a directory
// walked without following links.
TEST_CASE("runner: posix process ops refuse a symlinked log directory under the anchor",
          "[runner]") {
  temp_dir t;
  fs::create_directories(t / "home" / "logs");
  fs::create_directories(t / "outside");
  fs::create_directory_symlink(t / "outside", t / "home" / "logs" / "n1");
  posix_process_ops ops;
  spawn_request req;
  req.argv = {"true"};
  req.env = merged_environment({});
  req.anchor = (t / "home").string();
  req.stdout_path = (t / "home" / "logs" / "n1" / "T001.out").string();
  req.stderr_path = (t / "home" / "logs" / "n1" / "T001.err").string();
  spawn_outcome s = ops.spawn(req);
  CHECK(s.pid < 0);
  CHECK(s.error.find("symbolic link") != std::string::npos);
  CHECK(fs::directory_iterator(t / "outside") == fs::directory_iterator());
}

// Audit of issue 15: signals to a pid read from disk go only to the recorded process.
TEST_CASE("runner: a recorded process is signalled only while it is the same one", "[runner]") {
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::setpgid(0, 0);
    ::execlp("sleep", "sleep", "60", static_cast<char*>(nullptr));  // not Catch's handlers
    ::_exit(127);
  }
  REQUIRE(test_support::wait_until([&] { return ::getpgid(child) == child; }));
  auto start = detail::process_start_ticks(child);
  REQUIRE(start);
  // Another start time, another boot: not the recorded process, nothing sent.
  CHECK(detail::signal_recorded_process(child, *start + 1, detail::boot_id(), SIGTERM) == ESRCH);
  CHECK(detail::signal_recorded_process(child, *start, "another-boot", SIGTERM) == ESRCH);
  // Not a group leader: its group is not signalled.
  CHECK(detail::signal_recorded_process(::getpid(), *detail::process_start_ticks(::getpid()),
                                        detail::boot_id(), 0,
                                        true) == (::getpgid(0) == ::getpid() ? 0 : ESRCH));
  CHECK(::waitpid(child, nullptr, WNOHANG) == 0);
  CHECK(detail::signal_recorded_process(child, *start, detail::boot_id(), SIGTERM, true) == 0);
  int status = 0;
  CHECK(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
}

TEST_CASE("runner: the temp names a runner writes, and their writer's pid", "[runner]") {
  using detail::runner_temp_writer;
  CHECK(runner_temp_writer(".T001.result.json.tmp.4242.0.a1b2c3", ".result.json") == 4242);
  CHECK(runner_temp_writer(".T1000.result.json.tmp.77.12.ff.3", ".result.json") == 77);
  CHECK(runner_temp_writer(".T014.json.tmp.9.1.0", ".json") == 9);
  for (const char* other :
       {"T001.result.json", ".T001.result.json", ".T001.result.json.tmp.", ".notes",
        ".T001.result.json.tmp.x.0.ab", ".T001.result.json.tmp.1.0.AB", ".T0001.json.tmp.1.0.a",
        ".T001.result.json.tmp.1.0", ".T001.result.json.tmp.1.0.a.1.2", ".results",
        ".T001.result.json.tmp.0.0.a", ".T001.result.json.tmp.1.0.ab.x", ".taken.1.pause.json"}) {
    INFO(other);
    CHECK_FALSE(runner_temp_writer(other, ".result.json"));
    CHECK_FALSE(runner_temp_writer(other, ".json"));
  }
}

TEST_CASE("runner: at start, removes the temp files of writers that are gone, only those",
          "[runner]") {
  bench b;
  fs::create_directories(b.lease.done("n1"));
  fs::create_directories(b.lease.claimed("n1"));
  pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  std::string dead = std::to_string(gone), live = std::to_string(::getppid());
  const std::vector<std::string> stale = {".T001.result.json.tmp." + dead + ".3.ab.0",
                                          ".T002.result.json.tmp." + dead + ".4.9f"};
  const std::vector<std::string> kept = {".T003.result.json.tmp." + live + ".3.ab.1", ".notes",
                                         ".T004.result.json.mine"};
  for (const auto& n : stale) test_support::write_text(b.lease.done("n1") / n, "{}");
  for (const auto& n : kept) test_support::write_text(b.lease.done("n1") / n, "{}");
  test_support::write_text(b.lease.claimed("n1") / (".T005.json.tmp." + dead + ".1.c"), "{}");
  b.r = b.make(b.config(1));
  b.r->start(b.clock.now());
  for (const auto& n : stale) CHECK_FALSE(fs::exists(b.lease.done("n1") / n));
  for (const auto& n : kept) CHECK(fs::exists(b.lease.done("n1") / n));
  CHECK_FALSE(fs::exists(b.lease.claimed("n1") / (".T005.json.tmp." + dead + ".1.c")));
}
