// runner, lease local start|stop|status.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <leaseq/leaseq.hpp>

#include "commands.hpp"
#include "engine_common.hpp"

namespace leaseq_cli {

namespace {

using namespace leaseq;

void stamp_log(const std::string& node, const std::string& msg) {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::fprintf(stderr, "%s leaseq runner %s: %s\n", buf, node.c_str(), msg.c_str());
  std::fflush(stderr);
}

struct runner_options {
  std::string lease, node, gpus = "auto", slots = "1";
  bool detach = false;
  double grace = 10, heartbeat = 2;
};

// This program's own file, to run each task under `leaseq __supervise`: by /proc/self/exe, not
// argv[0], which may be a relative path or a name looked up in PATH. Resolved once, at start:
// a binary replaced on disk (an upgrade) later still leaves a runnable path, the new binary.
// Empty when /proc is not mounted: tasks then run without a supervisor, as before.
std::string own_executable() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec || !self.is_absolute()) return {};
  std::string s = self.string();
  // A binary deleted or replaced since it started shows as "path (deleted)": not runnable.
  if (s.size() > 10 && s.compare(s.size() - 10, 10, " (deleted)") == 0) return {};
  return s;
}

// CPUs this process may run on (its affinity mask: a Slurm step's cgroup, taskset).
int host_cpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::thread::hardware_concurrency());
}

// Another runner holds the node's lock: `lease local start` says so and succeeds.
struct runner_already_running : error {
  using error::error;
};

// Takes the node's runner lock (runner-<node>.lock, flock LOCK_EX | LOCK_NB) for the runner
// about to start, before anything reports that it started: a detached runner inherits it
// across fork (the same open file description), so of four concurrent starts exactly one
// reports "started" and its runner holds the lock for its whole life. An invalid fd (-1) when
// the filesystem refuses flock: the runner then warns as it does without this.
detail::unique_fd take_runner_lock(const lease_paths& lease, const runner_config& cfg) {
  fs::path p = lease.runner_lock(cfg.node);
  detail::unique_fd fd(::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) throw io_error("cannot open runner lock", p.string(), errno);
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK)
      throw runner_already_running(
          fmt::format("a runner for {} node {} is already running (it holds {})", cfg.lease_id,
                      cfg.node, p.string()));
    if (file_lock::unsupported(errno)) return detail::unique_fd();
    throw io_error("cannot lock", p.string(), errno);
  }
  return fd;
}

// Starts the runner; with detach the parent prints the runner's pid and returns at once.
void start_runner(const runner_options& o) {
  // Bounded before anything is created, started or logged (the runner checks the same bounds).
  if (!(o.grace >= 0 && o.grace <= 86400))
    throw usage_error(fmt::format("--grace must be 0 to 86400 seconds (got {})", o.grace));
  // 1e-300 would rewrite hb/ in a loop; days would make the runner read as dead.
  if (!(o.heartbeat >= 0.1 && o.heartbeat <= 600))
    throw usage_error(fmt::format("--heartbeat must be 0.1 to 600 seconds (got {})", o.heartbeat));
  home_paths home = home_paths::from_env();
  if (!o.node.empty()) check_node(o.node);          // before anything is created on disk
  std::optional<int> slots = parse_slots(o.slots);  // nullopt: auto, once the GPUs are known
  std::string lease_id = resolve_lease(home, o.lease, true);
  lease_paths lease(home, lease_id);
  runner_config cfg;
  cfg.lease_id = lease_id;
  cfg.host = short_hostname();
  cfg.node = o.node.empty() ? cfg.host : o.node;
  check_node(cfg.node);
  cfg.grace_s = o.grace;
  cfg.heartbeat_s = o.heartbeat;
  cfg.supervisor = own_executable();
  gpu_spec gspec = parse_gpu_spec(o.gpus);
  ensure_lease_dir(lease, lease.root());
  prepare_ids(lease);
  // Two runners of one node would take over each other's tasks: refuse a second one here.
  if (auto other = live_local_runner(lease, cfg.node).hb;
      other && other->host == cfg.host && other->pid != ::getpid())
    throw runner_already_running(fmt::format("a runner for {} node {} is already running (pid {})",
                                             lease_id, cfg.node, other->pid));
  // Held from here on: inherited by the detached child, kept by the runner (cfg.node_lock_fd).
  detail::unique_fd node_lock = take_runner_lock(lease, cfg);
  cfg.node_lock_fd = node_lock.get();

  if (o.detach) {
    fs::path log_path = lease.runner_log(cfg.node);
    int log_fd =
        ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (log_fd < 0) throw io_error("cannot open runner log", log_path.string(), errno);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw io_error("cannot fork", "runner", errno);
    if (pid > 0) {
      ::close(log_fd);
      std::printf("%d\n", pid);
      std::fprintf(stderr, "leaseq: runner for %s node %s started (pid %d, log %s)\n",
                   lease_id.c_str(), cfg.node.c_str(), pid, log_path.c_str());
      return;
    }
    ::setsid();  // outlives the SSH session that started it
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
  }
  cfg.gpu_ids = resolve_gpus(gspec);
  cfg.slots = slots ? *slots : auto_slots(cfg.gpu_ids.size(), std::getenv, host_cpus());
  stamp_log(cfg.node, fmt::format("starting: lease {}, pid {}, {} slot(s), gpus [{}]", lease_id,
                                  ::getpid(), cfg.slots, fmt::join(cfg.gpu_ids, ",")));
  run_runner(cfg, lease, [node = cfg.node](const std::string& m) { stamp_log(node, m); });
  stamp_log(cfg.node, "stopped");
}

void lease_local_status(const std::string& node_opt) {
  home_paths home = home_paths::from_env();
  std::string node = node_opt.empty() ? short_hostname() : check_node(node_opt);
  std::string id = resolve_lease(home, "", true);
  lease_paths lease(home, id);
  json_outcome r = read_json_tolerant(lease.heartbeat(node));
  std::optional<heartbeat> hb;
  if (r.ok()) {
    try {
      heartbeat h;
      from_json(*r.value, h);
      hb = h;
    } catch (const error&) {
    }
  }
  double stale = load_config(home.config()).ui.hb_stale_s;
  node_health h = compute_health(hb, unix_now(), stale);
  if (h == node_health::ok && hb && !hb->stopped && !live_local_runner(lease, node).hb) {
    // Fresh, but the process it names is not that runner (it died; its pid may be reused).
    std::printf(
        "%s node %s: %s (its heartbeat names pid %lld, which is not the runner that "
        "wrote it)\n",
        id.c_str(), node.c_str(), std::string(to_string(node_health::down)).c_str(),
        static_cast<long long>(hb->pid));
    throw CLI::RuntimeError(exit_not_ok);
  }
  std::printf("%s node %s: %s", id.c_str(), node.c_str(), std::string(to_string(h)).c_str());
  if (hb)
    std::printf(" (pid %lld, %zu running, %lld pending, %s, %lld slot(s), %lld GPU(s))",
                static_cast<long long>(hb->pid), hb->running.size(),
                static_cast<long long>(hb->pending), hb->paused ? "paused" : "active",
                static_cast<long long>(hb->slots), static_cast<long long>(hb->gpus));
  std::printf("\n");
  if (h != node_health::ok) throw CLI::RuntimeError(exit_not_ok);
}

void lease_local_stop(const std::string& node_opt, double wait_s) {
  home_paths home = home_paths::from_env();
  std::string node = node_opt.empty() ? short_hostname() : check_node(node_opt);
  std::string id = resolve_lease(home, "", true);
  lease_paths lease(home, id);
  local_heartbeat live = live_local_runner(lease, node);
  if (!live.problem.empty())
    throw error(sanitize_inline(live.problem) +
                "; nothing was signalled (stop the runner by hand)");
  if (!live.hb) {
    std::printf("no runner running for %s node %s\n", id.c_str(), node.c_str());
    return;
  }
  pid_t pid = static_cast<pid_t>(live.hb->pid);  // in range: is_signallable_pid()
  // Still the runner that wrote the heartbeat when signalled (through a pidfd where the kernel
  // has them): the pid may have been reused since it was checked.
  std::uint64_t start = live.hb->pid_start;
  const std::string& boot = live.hb->boot_id;
  if (int err = detail::signal_recorded_process(pid, start, boot, SIGTERM); err == ESRCH) {
    std::printf("no runner running for %s node %s\n", id.c_str(), node.c_str());
    return;
  } else if (err != 0) {
    throw io_error("cannot signal runner", std::to_string(pid), err);
  }
  auto gone = [&] {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    return start != 0 && !detail::is_same_process(pid, start, boot);  // ended, pid reused
  };
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s);
  while (std::chrono::steady_clock::now() < end) {
    if (gone()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!gone()) throw error(fmt::format("runner pid {} still running after {:.0f} s", pid, wait_s));
  std::printf("stopped runner pid %d for %s node %s\n", pid, id.c_str(), node.c_str());
}

}  // namespace

void add_runner_commands(CLI::App& app, CLI::App& lease_cmd) {
  // ---- runner ----
  auto ro = std::make_shared<runner_options>();
  CLI::App* run = app.add_subcommand(
      "runner", "Run tasks of a lease on this node (claims from its lane, then from _any)");
  add_lease_option(*run, ro->lease, "Lease id (default: the local lease local:<host>)");
  run->add_option("--node", ro->node, "Node name (default: the short host name)");
  run->add_option("--slots", ro->slots,
                  "Tasks run at once: a number, or auto (one per GPU handed out; without GPUs "
                  "one per CPU Slurm gave this node, else per CPU)")
      ->capture_default_str();
  add_gpu_ids_option(*run, ro->gpus);
  run->add_option("--grace", ro->grace, "Seconds between SIGTERM and SIGKILL on cancel/stop")
      ->capture_default_str();
  run->add_option("--heartbeat", ro->heartbeat, "Seconds between heartbeat rewrites")
      ->capture_default_str();
  run->add_flag(
      "--detach", ro->detach,
      "Daemonize (new session, output to runs/<lease>/runner-<node>.log); prints the pid");
  run->callback([ro] { start_runner(*ro); });

  // ---- lease local start|stop|status ----
  CLI::App* local =
      lease_cmd.add_subcommand("local", "Start, stop or inspect the local lease's runner");
  local->require_subcommand(1);
  auto lo = std::make_shared<runner_options>();
  lo->detach = true;
  CLI::App* start = local->add_subcommand("start", "Start a detached runner for local:<host>");
  start->add_option("--node", lo->node, "Node name (default: the short host name)");
  start->add_option("--slots", lo->slots, "Tasks run at once: a number, or auto (as runner)")
      ->capture_default_str();
  add_gpu_ids_option(*start, lo->gpus);
  start->add_option("--grace", lo->grace, "Seconds between SIGTERM and SIGKILL")
      ->capture_default_str();
  start->callback([lo] {
    home_paths home = home_paths::from_env();
    std::string node = lo->node.empty() ? short_hostname() : check_node(lo->node);
    std::string id = resolve_lease(home, "", true);
    if (auto hb = live_local_runner(lease_paths(home, id), node).hb) {
      std::printf("runner already running for %s node %s (pid %lld)\n", id.c_str(), node.c_str(),
                  static_cast<long long>(hb->pid));
      return;
    }
    try {
      start_runner(*lo);
    } catch (const runner_already_running& e) {
      // Another start won the race for the node's lock: its runner serves the node.
      std::printf("%s\n", sanitize_inline(e.what()).c_str());
    }
  });
  auto stop_node = std::make_shared<std::string>();
  auto stop_wait = std::make_shared<double>(30);
  CLI::App* stop = local->add_subcommand("stop", "Stop the local runner (SIGTERM; waits for it)");
  stop->add_option("--node", *stop_node, "Node name (default: the short host name)");
  stop->add_option("--wait", *stop_wait, "Seconds to wait for it to exit")->capture_default_str();
  stop->callback([stop_node, stop_wait] { lease_local_stop(*stop_node, *stop_wait); });
  CLI::App* st =
      local->add_subcommand("status", "Show the local runner's health (exit 3 if not OK)");
  st->add_option("--node", *stop_node, "Node name (default: the short host name)");
  st->callback([stop_node] { lease_local_status(*stop_node); });
}

}  // namespace leaseq_cli
