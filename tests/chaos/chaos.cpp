// Fault-injection chaos driver: real `leaseq runner` processes on one lease, killed with SIGKILL
// at random and restarted, while their claims see renames that "fail" although they happened.
//
//   leaseq_chaos [--tasks N] [--runners R] [--slots S] [--kill-min-ms A] [--kill-max-ms B]
//                [--fault SPEC] [--task-ms M] [--timeout-s T] [--seed X] [--leaseq PATH] [--keep]
//                [--views V1:V2:...|auto] [--max-duplicates D]
//
// It submits N tasks in one batch (each appends "start <task id> <attempt id> <pid> <time>" to
// a shared file as it starts, sleeps M/5 .. M ms, default 500, then appends "end ..." the same
// way), starts R runners with S slots each and LEASEQ_FAULT=SPEC (default
// claim_rename_lies=1/5), kills a random runner every A..B ms and restarts it, until every task
// has a result. Then it prints
//   tasks, kills, lost (no result), duplicate executions, concurrent double executions,
//   executions, distinct attempt ids, results by state, results of tasks that never started
// and exits 0 only when nothing is lost, no two executions of one task overlapped in time (an
// execution without an "end" line counts as lasting to the end of the run), duplicates <= D
// (default: the number of kills), and every execution carried an attempt id of its own.
//
// --views puts the lease home on a shared filesystem seen through several mounts (the test bed
// of tools/sharedfs: `auto` takes its views from LEASEQ_SHAREDFS_VIEWS or its default layout):
// runner i uses view i mod (V-1), the submit and the final count the last view, all at the same
// relative directory, so runners claim through caches that lag and locks that exclude nothing
// across views. With `auto` and no bed running it prints "skipped: ..." and exits 77.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <leaseq/detail/dir.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/model.hpp>
#include <leaseq/names.hpp>
#include <leaseq/paths.hpp>

#include "sharedfs.hpp"

namespace {

using namespace leaseq;
using namespace std::chrono_literals;

struct options {
  int tasks = 1000;
  int runners = 4;
  int slots = 2;
  int kill_min_ms = 500;
  int kill_max_ms = 2000;
  int task_ms = 500;  // tasks sleep task_ms/5 .. task_ms
  std::string fault = "claim_rename_lies=1/5";
  double timeout_s = 900;
  std::uint64_t seed = 0;
  std::string leaseq = LEASEQ_BIN;
  bool keep = false;
  std::string views;        // colon-separated mount points of one shared directory, or "auto"
  int max_duplicates = -1;  // -1: as many as there were kills
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "leaseq_chaos: %s\n(see the comment at the top of tests/chaos/chaos.cpp)\n",
               why);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--tasks")
      o.tasks = std::stoi(value());
    else if (a == "--runners")
      o.runners = std::stoi(value());
    else if (a == "--slots")
      o.slots = std::stoi(value());
    else if (a == "--kill-min-ms")
      o.kill_min_ms = std::stoi(value());
    else if (a == "--kill-max-ms")
      o.kill_max_ms = std::stoi(value());
    else if (a == "--fault")
      o.fault = value();
    else if (a == "--task-ms")
      o.task_ms = std::stoi(value());
    else if (a == "--timeout-s")
      o.timeout_s = std::stod(value());
    else if (a == "--seed")
      o.seed = std::stoull(value());
    else if (a == "--leaseq")
      o.leaseq = value();
    else if (a == "--keep")
      o.keep = true;
    else if (a == "--views")
      o.views = value();
    else if (a == "--max-duplicates")
      o.max_duplicates = std::stoi(value());
    else
      usage(("unknown argument " + a).c_str());
  }
  if (o.tasks < 1 || o.runners < 1 || o.slots < 1 || o.kill_min_ms < 1 || o.task_ms < 0 ||
      o.kill_max_ms < o.kill_min_ms || o.max_duplicates < -1)
    usage("bad numbers");
  return o;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct chaos {
  options opt;
  fs::path home;
  std::string lease = "local:chaos";
  lease_paths paths{fs::path()};
  fs::path local_base;                 // executions log, runner output: never shared
  std::vector<fs::path> runner_homes;  // one per view; empty: every runner uses `home`
  fs::path exec_log;
  std::vector<pid_t> pids;
  int kills = 0, self_exits = 0;

  pid_t start_runner(int i) {
    std::string node = "n" + std::to_string(i + 1);
    fs::path log = local_base / ("runner-" + node + ".out");
    pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("fork");
      std::exit(1);
    }
    if (pid == 0) {
      const fs::path& h = runner_homes.empty() ? home : runner_homes[i % runner_homes.size()];
      ::setenv("LEASEQ_HOME", h.c_str(), 1);
      if (!opt.fault.empty()) ::setenv("LEASEQ_FAULT", opt.fault.c_str(), 1);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      int in = ::open("/dev/null", O_RDONLY);
      ::dup2(in, 0);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::string slots = std::to_string(opt.slots);
      ::execl(opt.leaseq.c_str(), "leaseq", "runner", "--lease", lease.c_str(), "--node",
              node.c_str(), "--slots", slots.c_str(), "--gpus", "none", "--heartbeat", "0.5",
              "--grace", "2", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    return pid;
  }

  // Reaps what ended: runners we killed and, as a subreaper, tasks orphaned by a killed runner.
  void reap_orphans() {
    int status;
    pid_t p;
    while ((p = ::waitpid(-1, &status, WNOHANG)) > 0) {
      for (std::size_t i = 0; i < pids.size(); ++i)
        if (pids[i] == p) {
          pids[i] = -1;
          if (WIFSIGNALED(status))
            std::fprintf(stderr, "leaseq_chaos: runner n%zu (pid %d) died of signal %d\n", i + 1,
                         static_cast<int>(p), WTERMSIG(status));
          else
            std::fprintf(stderr, "leaseq_chaos: runner n%zu (pid %d) exited with status %d\n",
                         i + 1, static_cast<int>(p), WEXITSTATUS(status));
        }
    }
  }

  std::size_t count_results() const {
    std::size_t n = 0;
    for (const auto& node : detail::list_dir(paths.done_root().string()).names)
      for (const auto& f : detail::list_dir((paths.done_root() / node).string()).names)
        if (f.size() > 12 && f.compare(f.size() - 12, 12, ".result.json") == 0) ++n;
    return n;
  }

  int run() {
    std::mt19937_64 rng(opt.seed ? opt.seed : std::random_device{}());
    char tmpl[] = "/tmp/leaseq-chaos-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      std::perror("mkdtemp");
      return 1;
    }
    fs::path base = tmpl;
    local_base = base;
    home = base / "home";
    fs::path shared;  // the run's directory on the shared filesystem, through the last view
    if (!opt.views.empty()) {
      std::vector<fs::path> views;
      if (opt.views == "auto") {
        std::string why;
        auto bed = test_support::find_sharedfs(why, 2);
        if (!bed) {
          std::printf("chaos: %s (%s)\n", test_support::sharedfs_skip_message, why.c_str());
          fs::remove_all(base);
          return 77;
        }
        views = bed->views;
      } else {
        views = test_support::detail::split_colon(opt.views);
      }
      if (views.size() < 2) usage("--views needs at least two mount points");
      std::string rel = "chaos-" + base.filename().string();
      for (std::size_t v = 0; v + 1 < views.size(); ++v)
        runner_homes.push_back(views[v] / rel / "home");
      shared = views.back() / rel;
      home = shared / "home";
    }
    paths = lease_paths(home / "runs" / lease);
    exec_log = base / "executions.log";
    ensure_dir(home);
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);

    // One batch of N tasks: each records its start, runs for a little while, records its end
    // (one short O_APPEND write per line: lines of concurrent tasks never interleave).
    fs::path lines = base / "tasks.txt";
    {
      std::ofstream f(lines);
      std::string log = shell_quote(exec_log.string());
      auto record = [&](const char* what) {
        return std::string("echo \"") + what +
               " $LEASEQ_TASK_ID $LEASEQ_ATTEMPT $$ $(date +%s.%N)\" >> " + log;
      };
      for (int i = 0; i < opt.tasks; ++i)
        f << record("start") << "; sleep " << (opt.task_ms * (1 + i % 5) / 5) / 1000.0 << "; "
          << record("end") << "\n";
    }
    for (int i = 0; i < opt.runners; ++i) pids.push_back(start_runner(i));
    std::string submit = "LEASEQ_HOME=" + shell_quote(home.string()) + " " +
                         shell_quote(opt.leaseq) + " submit --lease " + lease + " --each-line " +
                         shell_quote(lines.string()) + " > " + shell_quote((base / "ids").string());
    if (std::system(submit.c_str()) != 0) {
      std::fprintf(stderr, "leaseq_chaos: submit failed\n");
      return 1;
    }

    auto t0 = std::chrono::steady_clock::now();
    auto deadline = t0 + std::chrono::duration<double>(opt.timeout_s);
    std::uniform_int_distribution<int> gap(opt.kill_min_ms, opt.kill_max_ms);
    std::uniform_int_distribution<int> which(0, opt.runners - 1);
    auto next_kill = t0 + std::chrono::milliseconds(gap(rng));
    std::size_t results = 0;
    bool timed_out = false;
    while ((results = count_results()) < static_cast<std::size_t>(opt.tasks)) {
      auto now = std::chrono::steady_clock::now();
      if (now > deadline) {
        timed_out = true;
        break;
      }
      reap_orphans();
      for (int i = 0; i < opt.runners; ++i)
        if (pids[i] < 0) {  // exited on its own: a bug, but keep the lease served
          std::fprintf(stderr, "leaseq_chaos: runner n%d exited by itself; restarting\n", i + 1);
          pids[i] = start_runner(i);
          ++self_exits;
        }
      if (now >= next_kill) {
        int i = which(rng);
        if (pids[i] <= 1) continue;  // never kill(-1) or a process group
        ::kill(pids[i], SIGKILL);
        ::waitpid(pids[i], nullptr, 0);
        ++kills;
        pids[i] = start_runner(i);
        next_kill = now + std::chrono::milliseconds(gap(rng));
      }
      std::this_thread::sleep_for(50ms);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (pid_t p : pids)
      if (p > 0) ::kill(p, SIGTERM);
    for (pid_t p : pids)
      if (p > 0) ::waitpid(p, nullptr, 0);
    reap_orphans();
    return report(results, secs, timed_out, base, shared);
  }

  int report(std::size_t results, double secs, bool timed_out, const fs::path& base,
             const fs::path& shared) {
    // Executions: a "start" line per task process start, an "end" line when it ended.
    std::map<std::string, std::vector<std::string>> runs;
    std::set<std::string> attempts;
    std::map<std::string, std::pair<double, double>> spans;  // attempt -> [start, end]
    std::size_t executions = 0, no_attempt = 0, unended = 0;
    const double open_end = 1e300;  // no "end" line (killed): it may still have been running
    {
      std::ifstream f(exec_log);
      std::string line;
      while (std::getline(f, line)) {
        std::istringstream ss(line);
        std::string what, id, attempt, pid;
        double t = 0;
        ss >> what >> id >> attempt >> pid >> t;
        if (what == "end") {
          if (auto it = spans.find(attempt); it != spans.end()) it->second.second = t;
          continue;
        }
        ++executions;
        if (attempt.empty() || !is_valid_task_id(id) || what != "start" || t <= 0 ||
            spans.count(attempt))
          ++no_attempt;
        else
          attempts.insert(attempt);
        runs[id].push_back(attempt);
        spans.emplace(attempt, std::make_pair(t, open_end));
      }
    }
    // Two executions of one task whose [start, end] intervals overlap ran at the same time.
    std::size_t concurrent = 0;
    std::vector<std::string> concurrent_ids;
    for (const auto& [id, list] : runs) {
      std::vector<std::pair<double, double>> iv;
      for (const auto& a : list)
        if (auto it = spans.find(a); it != spans.end()) iv.push_back(it->second);
      std::sort(iv.begin(), iv.end());
      double last_end = -1;
      for (const auto& [start, end] : iv) {
        if (start < last_end) {
          ++concurrent;
          if (concurrent_ids.size() < 20) concurrent_ids.push_back(id);
        }
        last_end = std::max(last_end, end);
      }
    }
    for (const auto& [a, span] : spans) unended += span.second == open_end;
    std::size_t lost = 0, duplicates = 0, never_ran = 0;
    std::map<std::string, std::size_t> by_state;
    std::vector<std::string> lost_ids;
    for (int seq = 1; seq <= opt.tasks; ++seq) {
      std::string id = format_task_id(seq);
      std::optional<task_result> res;
      for (const auto& node : detail::list_dir(paths.done_root().string()).names) {
        if (!is_valid_node(node)) continue;
        json_outcome j = read_json_tolerant(paths.result(node, id));
        if (!j.ok()) continue;
        try {
          task_result r;
          from_json(*j.value, r);
          res = r;
        } catch (const error&) {
        }
      }
      if (!res) {
        ++lost;
        if (lost_ids.size() < 20) lost_ids.push_back(id);
        continue;
      }
      std::string key = std::string(to_string(res->state));
      if (res->reason) key += " (" + *res->reason + ")";
      ++by_state[key];
      auto it = runs.find(id);
      std::size_t n = it == runs.end() ? 0 : it->second.size();
      if (n == 0) ++never_ran;
      if (n > 1) duplicates += n - 1;
    }
    bool attempts_unique = no_attempt == 0 && attempts.size() == executions;
    std::printf("chaos: %d tasks, %d runners x %d slots, fault %s, %.1f s%s\n", opt.tasks,
                opt.runners, opt.slots, opt.fault.empty() ? "(none)" : opt.fault.c_str(), secs,
                timed_out ? " (TIMED OUT)" : "");
    if (!runner_homes.empty())
      std::printf("  shared filesystem          runners on %zu views, submit and count on %s\n",
                  runner_homes.size(), shared.c_str());
    std::printf("  tasks                      %d\n", opt.tasks);
    std::printf("  kills (SIGKILL + restart)  %d\n", kills);
    std::printf("  results                    %zu\n", results);
    std::printf("  lost tasks (no result)     %zu\n", lost);
    std::printf("  duplicate executions       %zu\n", duplicates);
    std::printf("  concurrent double executions: %zu\n", concurrent);
    std::printf("  executions                 %zu\n", executions);
    std::printf("  distinct attempt ids       %zu%s\n", attempts.size(),
                attempts_unique ? " (one per execution)" : " (NOT one per execution)");
    std::printf("  executions without an end  %zu\n", unended);
    std::printf("  results without a run      %zu\n", never_ran);
    for (const auto& [state, n] : by_state) std::printf("  result %-19s %zu\n", state.c_str(), n);
    if (self_exits) std::printf("  runners that exited by themselves: %d\n", self_exits);
    for (const auto& id : lost_ids) std::printf("  lost: %s\n", id.c_str());
    for (const auto& id : concurrent_ids) std::printf("  run twice at once: %s\n", id.c_str());
    std::size_t max_dup =
        static_cast<std::size_t>(opt.max_duplicates < 0 ? kills : opt.max_duplicates);
    bool ok = !timed_out && lost == 0 && concurrent == 0 && duplicates <= max_dup &&
              attempts_unique && self_exits == 0;
    std::printf("chaos: %s\n", ok ? "PASS" : "FAIL");
    if (opt.keep || !ok) {
      std::printf("chaos: tree kept in %s%s%s\n", base.c_str(), shared.empty() ? "" : " and ",
                  shared.c_str());
    } else {
      std::error_code ec;
      fs::remove_all(base, ec);
      if (!shared.empty()) fs::remove_all(shared, ec);
    }
    return ok ? 0 : 1;
  }
};

}  // namespace

int main(int argc, char** argv) {
  chaos c;
  c.opt = parse(argc, argv);
  return c.run();
}
