// Follow benchmark (issue 19): `leaseq follow` (the real binary) prints a running task's log
// into a pipe while this program appends numbered lines to it, a few ms apart; each line's
// latency is the time from its write() to its arrival on the pipe. Cases: follow (inotify),
// follow with LEASEQ_NO_INOTIFY=1 (polling only), and `tail -f` of the same file as the
// same-run baseline. Then, on a lease of TASKS tasks: the time from starting follow to its
// first line (baseline: the same on a one-task lease, and `leaseq status`, one scan of the big
// lease), follow's CPU while the task is quiet (baseline: `tail -f`), and its peak RSS while
// the task writes 50 MB/s.
//
//   leaseq_bench_follow LEASEQ_BINARY [TASKS] [LINES] [DIR]
//   (defaults: 100000 tasks, 500 lines per latency case, $TMPDIR or /tmp)
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <leaseq/file_io.hpp>
#include <leaseq/paths.hpp>

#include "bench_tree.hpp"
#include "latency_stats.hpp"

extern char** environ;

using namespace leaseq;
using namespace bench_tree;
using bench_stats::latency_stats;
using bench_stats::summarize;
using clk = std::chrono::steady_clock;

namespace {

double ms_between(clk::time_point a, clk::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// A child whose stdout is a pipe this program reads, line by line, on a thread of its own,
// noting when each line arrived.
class child {
 public:
  child(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) std::exit(1);
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    ::posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    std::vector<char*> args, envp;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (char** e = environ; *e; ++e) envp.push_back(*e);
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    started_ = clk::now();
    if (::posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), envp.data()) != 0) std::exit(1);
    ::posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    fd_ = p[0];
    reader_ = std::thread([this] { read_lines(); });
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  ~child() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    reader_.join();
    ::close(fd_);
  }

  pid_t pid() const { return pid_; }
  clk::time_point started() const { return started_; }
  std::size_t lines() {
    std::lock_guard<std::mutex> l(mu_);
    return arrivals_.size();
  }
  // The arrival time of line i (0-based), and its text.
  std::pair<clk::time_point, std::string> line(std::size_t i) {
    std::lock_guard<std::mutex> l(mu_);
    return {arrivals_[i], texts_[i]};
  }
  bool wait_lines(std::size_t n, double timeout_s = 30) {
    auto end = clk::now() + std::chrono::duration<double>(timeout_s);
    while (lines() < n) {
      if (clk::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return true;
  }
  // Drops what was read so far (keeps reading).
  void forget() {
    std::lock_guard<std::mutex> l(mu_);
    arrivals_.clear();
    texts_.clear();
  }

 private:
  void read_lines() {
    std::string buf;
    char chunk[65536];
    for (;;) {
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) return;
      auto now = clk::now();
      buf.append(chunk, static_cast<std::size_t>(n));
      std::size_t start = 0, nl;
      std::lock_guard<std::mutex> l(mu_);
      while ((nl = buf.find('\n', start)) != std::string::npos) {
        arrivals_.push_back(now);
        // Only short lines are kept: the 50 MB/s case would keep the whole stream otherwise.
        texts_.push_back(nl - start <= 64 ? buf.substr(start, nl - start) : std::string());
        start = nl + 1;
      }
      buf.erase(0, start);
    }
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  clk::time_point started_;
  std::mutex mu_;
  std::vector<clk::time_point> arrivals_;
  std::vector<std::string> texts_;
  std::thread reader_;
};

// CPU seconds (user + system) a process used so far.
double cpu_s(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(s.substr(s.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::atof(field.c_str());
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Peak resident memory of a process (VmHWM), in MiB.
double peak_rss_mib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return 0;
}

// Appends `lines` numbered lines to `log`, 2 to 10 ms apart, and returns each line's
// write-to-print latency as `c` saw it (lines it never printed are left out).
latency_stats latency(child& c, const fs::path& log, int lines) {
  int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) std::exit(1);
  // A first line, and the reader has caught up with what the file held.
  std::string first = "ready " + std::to_string(c.pid()) + "\n";
  if (::write(fd, first.data(), first.size()) < 0) std::exit(1);
  for (;;) {
    if (c.wait_lines(1) && c.line(c.lines() - 1).second == first.substr(0, first.size() - 1)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  c.forget();
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> gap_us(2000, 10000);
  std::vector<clk::time_point> written;
  for (int i = 0; i < lines; ++i) {
    std::string text = "line " + std::to_string(i) + "\n";
    written.push_back(clk::now());
    if (::write(fd, text.data(), text.size()) < 0) std::exit(1);
    std::this_thread::sleep_for(std::chrono::microseconds(gap_us(rng)));
  }
  ::close(fd);
  c.wait_lines(static_cast<std::size_t>(lines), 5);
  std::vector<double> ms;
  for (std::size_t i = 0; i < c.lines(); ++i) {
    auto [at, text] = c.line(i);
    if (text.rfind("line ", 0) != 0) continue;
    std::size_t k = std::strtoul(text.c_str() + 5, nullptr, 10);
    if (k < written.size()) ms.push_back(ms_between(written[k], at));
  }
  return summarize(ms);
}

void print_latency(const char* name, const latency_stats& s, int lines) {
  std::printf("  %-34s mean %7.2f ms  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (%zu/%d lines)\n",
              name, s.mean, s.p50, s.p99, s.max, s.n, lines);
}

// A lease of one running task T000001 on node-a, for the latency cases.
void one_task_lease(const lease_paths& lp, const std::string& lease) {
  ensure_dir(lp.claimed("node-a"));
  ensure_dir(lp.logs("node-a"));
  json t = task_json(1, "node-a", lease);
  t["claimed"] = unix_now();
  write_plain(lp.claimed_task("node-a", format_task_id(1)), t.dump());
  write_plain(lp.stdout_log("node-a", format_task_id(1)), "");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s LEASEQ_BINARY [TASKS] [LINES] [DIR]\n", argv[0]);
    return 2;
  }
  std::string bin = argv[1];
  int tasks = argc > 2 ? std::atoi(argv[2]) : 100000;
  int lines = argc > 3 ? std::atoi(argv[3]) : 500;
  const char* tmpdir = std::getenv("TMPDIR");
  fs::path base = argc > 4 ? fs::path(argv[4]) : fs::path(tmpdir && *tmpdir ? tmpdir : "/tmp");
  fs::path root = base / ("leaseq-bench-follow-" + std::to_string(::getpid()));
  std::string small_lease = "11111111", big_lease = "22222222";
  home_paths home(root / "home");
  ensure_dir(home.root(), 0700);
  ensure_dir(home.runs(), 0700);
  std::string home_env = "LEASEQ_HOME=" + home.root().string();
  auto follow_argv = [&](const std::string& lease, const std::string& id) {
    return std::vector<std::string>{bin, "follow", "--lease", lease, id};
  };

  // ---- write -> print latency ------------------------------------------------------------
  lease_paths small(home, small_lease);
  one_task_lease(small, small_lease);
  fs::path log = small.stdout_log("node-a", format_task_id(1));
  std::printf("write -> print latency, %d lines 2-10 ms apart, one running task (%s):\n", lines,
              log.parent_path().c_str());
  {
    child c(follow_argv(small_lease, format_task_id(1)), {home_env});
    print_latency("leaseq follow (inotify)", latency(c, log, lines), lines);
  }
  {
    child c(follow_argv(small_lease, format_task_id(1)), {home_env, "LEASEQ_NO_INOTIFY=1"});
    print_latency("leaseq follow, LEASEQ_NO_INOTIFY=1", latency(c, log, lines), lines);
  }
  {
    child c({"/usr/bin/tail", "-n", "+1", "-f", log.string()}, {});
    print_latency("baseline: tail -f", latency(c, log, lines), lines);
  }

  // ---- a big lease: first line, idle CPU, memory at 50 MB/s --------------------------------
  lease_paths big(home, big_lease);
  std::printf("\nbuilding a lease of %d tasks over %d nodes ...\n", tasks, nodes);
  auto t0 = clk::now();
  build_tree(big, big_lease, tasks);
  std::printf("  built in %.0f ms\n", ms_between(t0, clk::now()));
  // A task the tree has RUNNING (claimed/), with a log.
  int seq = tasks / 2 + 1;
  std::string node = node_name(seq % nodes), id = format_task_id(seq);
  fs::path big_log = big.stdout_log(node, id);
  write_plain(big_log, "hello\n");
  auto first_line = [&](const std::string& lease, const std::string& task) {
    child c(follow_argv(lease, task), {home_env});
    c.wait_lines(1);
    return ms_between(c.started(), c.line(0).first);
  };
  double first_small = first_line(small_lease, format_task_id(1));
  double first_big = first_line(big_lease, id);
  std::printf("time to the first line:  %d-task lease %.1f ms; baseline, 1-task lease %.1f ms\n",
              tasks, first_big, first_small);
  {
    // What follow used to pay before its first line: one scan of the whole lease.
    t0 = clk::now();
    std::string cmd = home_env + " " + bin + " status --lease " + big_lease + " >/dev/null 2>&1";
    int rc = std::system(cmd.c_str());
    std::printf("  baseline: `leaseq status` (one scan of the %d-task lease) %.0f ms (rc %d)\n",
                tasks, ms_between(t0, clk::now()), rc);
  }
  const double idle_s = 10;
  {
    child f(follow_argv(big_lease, id), {home_env});
    child tl({"/usr/bin/tail", "-n", "+1", "-f", big_log.string()}, {});
    f.wait_lines(1);
    tl.wait_lines(1);
    double f0 = cpu_s(f.pid()), tl0 = cpu_s(tl.pid());
    std::this_thread::sleep_for(std::chrono::duration<double>(idle_s));
    std::printf(
        "CPU while the task is quiet, %.0f s: follow %.2f%% of a core; baseline tail -f %.2f%%\n",
        idle_s, 100 * (cpu_s(f.pid()) - f0) / idle_s, 100 * (cpu_s(tl.pid()) - tl0) / idle_s);
  }
  {
    // 50 MB/s of 100-byte lines for 3 s, in 10 ms slices.
    child f(follow_argv(big_lease, id), {home_env});
    f.wait_lines(1);
    double c0 = cpu_s(f.pid());
    int fd = ::open(big_log.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    std::string slice;
    std::string line(99, 'x');
    line += '\n';
    while (slice.size() < 500000) slice += line;
    t0 = clk::now();
    std::size_t written = 0;
    for (int i = 0; i < 300; ++i) {
      if (::write(fd, slice.data(), slice.size()) < 0) break;
      written += slice.size();
      std::this_thread::sleep_until(t0 + std::chrono::milliseconds(10 * (i + 1)));
    }
    double secs = ms_between(t0, clk::now()) / 1000;
    ::close(fd);
    std::size_t want = 1 + written / line.size();
    bool kept_up = f.wait_lines(want, 30);
    std::printf(
        "task writing %.1f MB/s for %.1f s: follow printed %zu of %zu lines, peak RSS %.1f MiB, "
        "CPU %.0f%% of a core\n",
        static_cast<double>(written) / 1e6 / secs, secs, f.lines(), want, peak_rss_mib(f.pid()),
        100 * (cpu_s(f.pid()) - c0) / secs);
    if (!kept_up) std::printf("  (it had not caught up 30 s after the writer stopped)\n");
  }
  std::error_code ec;
  if (!std::getenv("LEASEQ_BENCH_KEEP")) fs::remove_all(root, ec);
  return 0;
}
