// One-shot status benchmark (issue 19 goal 1): `leaseq status --json`, the text `leaseq status`,
// `leaseq tasks --state RUNNING --json`, the text `leaseq tasks` (its first rows) and `leaseq
// tasks --state FAILED` as subprocesses on a lease of TASKS tasks over 64 nodes (half done, one
// running per node, the rest pending; bench_tree.hpp), wall time and peak RSS (wait4). Cases:
//   with the results index (protocol 5, done/<node>/.results, as runners write it);
//   the same tree without the index files (what a protocol 4 tree costs: every result parsed);
//   every task and result file read and parsed (`tasks --grep ' ' --limit 1`: a search every
//   command matches, which reads every file as the full scan that status ran before did);
// baseline, same run: a bare opendir/readdir loop over the same directories. The JSON of
// status is checked to be the same with and without the index (heartbeat ages and health left
// out), and the text form's counts to be the JSON's.
//
//   leaseq_bench_status LEASEQ_BINARY [TASKS] [DIR]    (defaults: 1000000, /dev/shm)
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <leaseq/file_io.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/results_index.hpp>

#include "bench_tree.hpp"

using namespace leaseq;
using clk = std::chrono::steady_clock;
using namespace bench_tree;

namespace {

double ms_since(clk::time_point t0) {
  return std::chrono::duration<double, std::milli>(clk::now() - t0).count();
}

struct run_result {
  double wall_ms = 0;
  double max_rss_mb = 0;
  int status = 0;
  std::string out;
};

// Runs argv with `env` added, stdout captured; wall time and peak RSS of the child.
run_result run(const std::vector<std::string>& argv, const std::string& env) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) std::abort();
  auto t0 = clk::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    ::putenv(const_cast<char*>(env.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  run_result r;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n <= 0) break;
    r.out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipefd[0]);
  struct rusage ru {};
  ::wait4(pid, &r.status, 0, &ru);
  r.wall_ms = ms_since(t0);
  r.max_rss_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;
  return r;
}

// Best wall time of n runs, and the largest peak RSS among them.
run_result best_of(int n, const std::vector<std::string>& argv, const std::string& env) {
  run_result best;
  best.wall_ms = 1e18;
  double rss = 0;
  for (int i = 0; i < n; ++i) {
    run_result r = run(argv, env);
    if (r.status != 0) std::fprintf(stderr, "  %s exited %d\n", argv[1].c_str(), r.status);
    rss = std::max(rss, r.max_rss_mb);
    if (r.wall_ms < best.wall_ms) best = std::move(r);
  }
  best.max_rss_mb = rss;
  return best;
}

// Baseline: one opendir/readdir pass over every directory a scan lists.
double bare_readdir_ms(const lease_paths& lp, long& entries) {
  auto t0 = clk::now();
  entries = bare_readdir(lp);
  return ms_since(t0);
}

// Heartbeat ages and the health they give change between runs (a 1M-task run outlasts
// ui.hb_stale_s): left out of the comparison.
std::string without_ages(const std::string& json_text) {
  std::string t =
      std::regex_replace(json_text, std::regex("\"hb_age_s\": [0-9.e+-]+"), "\"hb_age_s\": _");
  return std::regex_replace(t, std::regex("\"health\": \"[A-Z]+\""), "\"health\": _");
}

void print_row(const char* name, const run_result& r, double base_ms) {
  std::printf("  %-58s %9.0f ms  %6.1fx readdir  peak RSS %7.1f MB\n", name, r.wall_ms,
              r.wall_ms / base_ms, r.max_rss_mb);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: leaseq_bench_status LEASEQ_BINARY [TASKS] [DIR]\n");
    return 2;
  }
  std::string bin = argv[1];
  int tasks = argc > 2 ? std::atoi(argv[2]) : 1000000;
  fs::path base = argc > 3 ? fs::path(argv[3]) : fs::path("/dev/shm");
  fs::path root = base / ("leaseq-bench-status-" + std::to_string(::getpid()));
  home_paths home(root / "home");
  ensure_dir(home.root(), 0700);
  ensure_dir(home.runs(), 0700);
  std::string lease = "local:bench";
  std::string env = "LEASEQ_HOME=" + home.root().string();
  lease_paths lp(home, lease);

  std::printf("building a lease of %d tasks over %d nodes in %s ...\n", tasks, nodes, root.c_str());
  auto t0 = clk::now();
  build_tree(lp, lease, tasks);
  std::printf("  tree built in %.1f s\n", ms_since(t0) / 1e3);
  t0 = clk::now();
  write_results_index(lp, tasks);
  std::printf("  results index written in %.1f s\n", ms_since(t0) / 1e3);

  std::vector<std::string> status = {bin, "status", "--lease", lease, "--json"};
  std::vector<std::string> status_text = {bin, "status", "--lease", lease};
  std::vector<std::string> running = {bin,       "tasks",   "--lease", lease,
                                      "--state", "RUNNING", "--json"};
  std::vector<std::string> listing = {bin, "tasks", "--lease", lease};
  std::vector<std::string> failed = {bin, "tasks", "--lease", lease, "--state", "FAILED"};
  // A search whose text every command holds: every task and result file is read and parsed.
  std::vector<std::string> full = {bin,      "tasks", "--lease", lease, "--json",
                                   "--grep", " ",     "--limit", "1"};
  const int n = 3;
  long entries = 0;
  double base_ms = 1e18;
  for (int i = 0; i < n; ++i) base_ms = std::min(base_ms, bare_readdir_ms(lp, entries));
  std::printf("\nbest of %d runs (wall), warm page cache:\n", n);
  std::printf("  %-58s %9.0f ms  (%ld entries)\n",
              "baseline: bare readdir of every directory a scan lists", base_ms, entries);
  run_result s_idx = best_of(n, status, env);
  print_row("status --json, with the results index", s_idx, base_ms);
  run_result t_idx = best_of(n, status_text, env);
  print_row("status (text), with the results index", t_idx, base_ms);
  run_result r_idx = best_of(n, running, env);
  print_row("tasks --state RUNNING --json, with the index", r_idx, base_ms);
  print_row("tasks (text, the first ui.max_tasks_display rows)", best_of(n, listing, env), base_ms);
  print_row("tasks --state FAILED (text), with the index", best_of(n, failed, env), base_ms);

  for (int i = 0; i < nodes; ++i)
    fs::rename(lp.done(node_name(i)) / std::string(results_index_name),
               lp.done(node_name(i)) / ".results.off");
  run_result s_old = best_of(n, status, env);
  print_row("status --json, no index (a protocol 4 tree)", s_old, base_ms);
  run_result r_old = best_of(n, running, env);
  print_row("tasks --state RUNNING --json, no index", r_old, base_ms);
  run_result f_old = best_of(n, full, env);
  print_row("every file parsed (tasks --grep ' ' --limit 1)", f_old, base_ms);

  bool same = without_ages(s_idx.out) == without_ages(s_old.out);
  if (!same) {  // the first line that differs, to say why
    std::istringstream a(without_ages(s_idx.out)), b(without_ages(s_old.out));
    std::string la, lb;
    while (std::getline(a, la) && std::getline(b, lb) && la == lb) {
    }
    std::printf("  first difference: with the index \"%s\", without \"%s\"\n", la.c_str(),
                lb.c_str());
  }
  bool same_counts = true;
  json counts = json::parse(s_idx.out)["counts"];
  for (auto it = counts.begin(); it != counts.end(); ++it)
    if (it.value().get<long>() > 0)
      same_counts =
          same_counts && t_idx.out.find(it.key() + "=" + std::to_string(it.value().get<long>())) !=
                             std::string::npos;
  bool same_running = r_idx.out == r_old.out;
  std::printf(
      "\nstatus --json with and without the index: %s; tasks --state RUNNING: %s; the text "
      "form's counts: %s\n",
      same ? "same" : "DIFFERENT", same_running ? "same" : "DIFFERENT",
      same_counts ? "the JSON's" : "DIFFERENT");
  std::printf(
      "status with the index: %.2fx the wall time of parsing every file, %.2fx its peak RSS\n",
      s_idx.wall_ms / f_old.wall_ms, s_idx.max_rss_mb / f_old.max_rss_mb);
  fs::remove_all(root);
  return same && same_running && same_counts ? 0 : 1;
}
