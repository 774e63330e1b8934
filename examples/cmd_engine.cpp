// runner, submit, cancel, retry, pause, resume, lease local.
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

namespace leaseq_cli {

namespace {

using namespace leaseq;

// The lease a command acts on: --lease, else the index's default, else the local lease.
// `local_only_default`: the runner defaults to the local lease whatever the index says.
std::string resolve_lease(const home_paths& home, const std::string& given,
                          bool local_only_default = false) {
  check_home_trust(home, home_use::write);  // every engine command writes, or runs tasks
  std::string id = given;
  if (id.empty() && !local_only_default) {
    index_read idx = read_index(home);
    // An unreadable index hides which lease is the default: never guess (the local lease
    // would silently receive work meant for a Slurm lease).
    if (!idx.error.empty())
      throw error(idx.error + "; cannot tell the default lease: pass --lease ID");
    if (idx.index.default_lease) id = *idx.index.default_lease;
  }
  if (id.empty()) id = local_lease_id(short_hostname());
  check_lease_id(id);
  if (is_local_lease(id)) {
    // First use of the local lease: register it and write its lease.json.
    lease_paths lease(home, id);
    // The exists() check only saves work: the file is created exclusively, so a lease.json
    // another process wrote meanwhile (or that a lagging cache hid) is never replaced.
    if (!fs::exists(lease.lease_json())) {
      double now = unix_now();
      lease_record rec;
      rec.id = id;
      rec.kind = "local";
      rec.created = now;
      if (create_lease_json(lease, json(rec))) {
        try {
          register_lease(home, index_entry{id, "local", std::nullopt, now, json::object()});
        } catch (const error& e) {
          // The user named the lease: an index that cannot be rewritten only keeps it out of
          // `lease ls` for now (the next command registers it), it never blocks the work.
          std::fprintf(stderr, "leaseq: warning: %s\n", sanitize_inline(e.what()).c_str());
        }
      }
    }
  }
  return id;
}

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

// A node's heartbeat as this host's runner would have written it, or why it cannot be one.
struct local_heartbeat {
  std::optional<heartbeat> hb;
  std::string problem;  // set when the file exists but names no runner we may signal
};

// Whether some process holds runner-<node>.lock (a live runner holds it for its whole life).
// True as well when the filesystem refuses flock: then only the pid can tell.
bool runner_lock_held(const lease_paths& lease, const std::string& node) {
  detail::unique_fd fd(
      ::open(lease.runner_lock(node).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return false;  // no lock file: no runner of this version or later ever ran here
  for (;;) {
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
      ::flock(fd.get(), LOCK_UN);
      return false;
    }
    if (errno == EINTR) continue;
    return errno == EWOULDBLOCK || file_lock::unsupported(errno);
  }
}

// The heartbeat of a runner that still lives: fresh, not stopped, written on this host, and
// naming a pid that may be signalled and is alive. Anything read from the file is untrusted:
// a pid is only used once it has passed is_signallable_pid().
local_heartbeat live_local_runner(const lease_paths& lease, const std::string& node) {
  local_heartbeat out;
  json_outcome r = read_json_tolerant(lease.heartbeat(node));
  if (!r.ok()) return out;
  heartbeat hb;
  try {
    from_json(*r.value, hb);
  } catch (const error& e) {
    out.problem = lease.heartbeat(node).string() + " is unreadable: " + e.what();
    return out;
  }
  if (hb.stopped || unix_now() - hb.ts > 60) return out;
  if (!hb.host.empty() && hb.host != short_hostname()) {
    out.problem =
        fmt::format("{} was written on host {}, not this one ({})", lease.heartbeat(node).string(),
                    detail::quote_for_message(hb.host), short_hostname());
    return out;
  }
  if (!is_signallable_pid(hb.pid)) {
    out.problem = fmt::format("{} names pid {}, which no runner can have",
                              lease.heartbeat(node).string(), hb.pid);
    return out;
  }
  pid_t pid = static_cast<pid_t>(hb.pid);
  if (::kill(pid, 0) != 0 && errno == ESRCH) return out;
  if (hb.pid_start != 0 && !hb.boot_id.empty()) {
    // Protocol 4: the runner wrote who it is. A pid now held by another process (pids are
    // reused), or a heartbeat from an earlier boot, names no runner.
    if (!detail::is_same_process(pid, hb.pid_start, hb.boot_id)) return out;
  } else if (!runner_lock_held(lease, node)) {
    return out;  // an older runner's heartbeat tells only its pid: a live runner holds its lock
  }
  out.hb = hb;
  return out;
}

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
    throw error(fmt::format("--grace must be 0 to 86400 seconds (got {})", o.grace));
  // 1e-300 would rewrite hb/ in a loop; days would make the runner read as dead.
  if (!(o.heartbeat >= 0.1 && o.heartbeat <= 600))
    throw error(fmt::format("--heartbeat must be 0.1 to 600 seconds (got {})", o.heartbeat));
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

std::map<std::string, std::string> parse_env(const std::vector<std::string>& items) {
  std::map<std::string, std::string> env;
  for (const auto& kv : items) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw error("--env expects K=V, got " + detail::quote_for_message(kv));
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

std::string join_words(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += (s.empty() ? "" : " ") + w;
  return s;
}

struct submit_options {
  std::string lease, node, key, cwd, each_line, array, time_limit, retry_delay;
  std::vector<std::string> env, command, after, labels;
  int gpus = 0, retries = 0, priority = 0;
  bool shell = false, force = false;
};

// What the lease itself says beside its files: its kind and runner count from lease.json, and
// for a Slurm lease the job's state (shared, rate-limited Slurm cache; never throws for Slurm).
lease_condition lease_condition_of(const home_paths& home, const std::string& lease_id,
                                   const lease_paths& lease, const ui_config& ui) {
  std::string kind = is_local_lease(lease_id) ? "local" : "slurm";
  std::optional<std::int64_t> nodes;
  json_outcome rec = read_json_tolerant(lease.lease_json());
  if (rec.ok()) {
    try {
      lease_record r;
      from_json(*rec.value, r);
      kind = r.kind;
      nodes = r.nodes;
    } catch (const error&) {
    }
  }
  if (kind == "local") return lease_condition::local();
  auto states = slurm_lease_states(home, {lease_id}, ui.slurm_refresh_s);
  auto it = states.find(lease_id);
  return lease_condition::slurm(it != states.end() ? it->second.state : std::string(), nodes);
}

// Refuses a task that can certainly never run (submit_refusal in waiting.hpp): it would wait
// in the inbox forever, silently. --force queues it anyway (a runner may be started later).
void refuse_impossible(const home_paths& home, const std::string& lease_id,
                       const lease_paths& lease, const submit_request& r) {
  ui_config ui = load_config(home.config()).ui;
  lease_condition cond = lease_condition_of(home, lease_id, lease, ui);
  auto why =
      submit_refusal(r.gpus, r.node, read_heartbeats(lease), cond, unix_now(), ui.hb_stale_s);
  if (why)
    throw error("lease " + lease_id + ": " + *why +
                "; nothing was enqueued (--force queues it anyway)");
}

// Ids one per line (for scripts); on a terminal, a large batch as runs of consecutive ids.
void print_ids(const std::vector<submit_outcome>& ids) {
  std::string out;
  if (ids.size() > 10 && ::isatty(1)) {
    for (std::size_t i = 0; i < ids.size();) {
      std::size_t j = i;
      while (j + 1 < ids.size() && task_seq(ids[j + 1].id) && task_seq(ids[j].id) &&
             *task_seq(ids[j + 1].id) == *task_seq(ids[j].id) + 1)
        ++j;
      out += j == i ? ids[i].id + "\n"
                    : fmt::format("{}..{} ({} tasks)\n", ids[i].id, ids[j].id, j - i + 1);
      i = j + 1;
    }
  } else {
    for (const auto& s : ids) out += s.id + "\n";
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

// --after, --time-limit, --retries and --retry-delay into r; a bad one throws, naming it.
// The items of a repeatable option that also takes comma lists (--after T1,T2 --after T3);
// an empty item stays, for its check to refuse.
std::vector<std::string> comma_items(const std::vector<std::string>& uses) {
  std::vector<std::string> out;
  for (const std::string& list : uses)
    for (std::size_t at = 0; at <= list.size();) {
      std::size_t comma = std::min(list.find(',', at), list.size());
      out.push_back(list.substr(at, comma - at));
      at = comma + 1;
    }
  return out;
}

void set_submit_limits(const submit_options& o, submit_request& r) {
  for (const std::string& id : comma_items(o.after)) r.after.push_back(check_task_id(id));
  if (!o.time_limit.empty()) {
    r.time_limit = parse_submit_duration(o.time_limit, "--time-limit");
    if (*r.time_limit <= 0) throw error("--time-limit: must be above 0");
  }
  if (o.retries < 0 || o.retries > max_task_retries)
    throw error(fmt::format("--retries: must be 0 to {}", max_task_retries));
  r.retries = o.retries;
  if (!o.retry_delay.empty()) {
    if (o.retries == 0) throw error("--retry-delay needs --retries N");
    r.retry_delay = parse_submit_duration(o.retry_delay, "--retry-delay");
  }
  for (const std::string& label : comma_items(o.labels)) {
    if (!is_valid_label(label))
      throw error("--label " + detail::quote_for_message(label) + ": " + std::string(label_rule));
    if (std::find(r.labels.begin(), r.labels.end(), label) == r.labels.end())
      r.labels.push_back(label);
  }
  if (r.labels.size() > max_task_labels)
    throw error(fmt::format("--label: at most {} labels", max_task_labels));
  if (o.priority < -max_task_priority || o.priority > max_task_priority)
    throw error(fmt::format("--priority: must be {} to {}", -max_task_priority, max_task_priority));
  r.priority = o.priority;
}

void do_submit(const submit_options& o) {
  // Checked before anything is written (resolve_lease may register the local lease).
  std::optional<array_range> array;
  if (!o.array.empty()) {
    array = parse_array_range(o.array);
    if (!o.each_line.empty()) throw error("--array and --each-line exclude each other");
  }
  submit_request base;
  set_submit_limits(o, base);  // before anything is written
  home_paths home = home_paths::from_env();
  std::string lease_id = resolve_lease(home, o.lease);
  lease_paths lease(home, lease_id);
  base.cwd = o.cwd.empty() ? fs::current_path().string() : fs::absolute(o.cwd).string();
  base.env = parse_env(o.env);
  base.gpus = o.gpus;
  if (!o.node.empty()) base.node = check_node(o.node);
  if (!o.key.empty()) check_key(o.key);
  if (!o.force) refuse_impossible(home, lease_id, lease, base);

  if (!o.each_line.empty()) {
    if (!o.command.empty()) throw error("--each-line takes no command");
    std::ifstream file;
    std::istream* in = &std::cin;
    if (o.each_line != "-") {
      file.open(o.each_line);
      if (!file) throw io_error("cannot read", o.each_line, errno ? errno : ENOENT);
      in = &file;
    }
    std::vector<submit_request> batch;
    std::string line;
    std::int64_t line_no = 0;
    while (std::getline(*in, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      submit_request r = base;
      r.argv = shell_argv(line);
      r.cmd = line;
      r.array_index = line_no;  // LEASEQ_ARRAY_INDEX: the line's number in the file
      if (!o.key.empty()) r.key = o.key + "." + std::to_string(batch.size() + 1);
      batch.push_back(std::move(r));
    }
    print_ids(submit_batch(lease, lease_id, batch));
    return;
  }
  if (o.command.empty()) throw error("submit: no command given (leaseq submit -- CMD ARGS...)");
  // An empty program name can only fail at exec time, on the runner, long after this returns.
  if (o.command[0].empty() ||
      (o.shell && join_words(o.command).find_first_not_of(" \t") == std::string::npos))
    throw error("submit: the command is empty (leaseq submit -- CMD ARGS...)");
  submit_request r = base;
  if (o.shell) {
    r.argv = shell_argv(join_words(o.command));
    r.cmd = join_words(o.command);
  } else {
    r.argv = o.command;
  }
  if (array) {  // one task per index, in one batch; keys KEY.INDEX
    std::vector<submit_request> batch(static_cast<std::size_t>(array->count()), r);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      batch[i].array_index = array->at(static_cast<std::int64_t>(i));
      if (!o.key.empty()) batch[i].key = o.key + "." + std::to_string(*batch[i].array_index);
    }
    print_ids(submit_batch(lease, lease_id, batch));
    return;
  }
  if (!o.key.empty()) r.key = o.key;
  submit_outcome s = submit_task(lease, lease_id, r);
  std::printf("%s\n", s.id.c_str());
  if (s.existing)
    std::fprintf(stderr, "leaseq: key %s was already used: nothing enqueued\n", o.key.c_str());
}

// A PENDING task in a lane no live runner serves would wait for its cancel control file
// forever. The CLI then takes it out itself, as a runner does (runner.hpp, cancel()): the claim
// rename into claimed/<node> (so no runner can start it), a CANCELLED result in done/<node>,
// then the claimed file goes. It holds the node's runner lock meanwhile, so no runner of that
// node can start on this host and adopt the claimed file half-way. Returns false, having
// touched nothing, when a runner may serve the lane: the caller writes the control file.
bool cancel_unserved(const home_paths& home, const std::string& lease_id, const lease_paths& lease,
                     const task_location& loc) {
  const std::string& id = loc.spec.id;
  double stale_s = load_config(home.config()).ui.hb_stale_s;
  double now = unix_now();
  std::vector<heartbeat> hbs = read_heartbeats(lease);
  auto live = [&](const heartbeat& hb) {
    return compute_health(hb, now, stale_s) == node_health::ok &&
           (loc.dir == any_lane || hb.node == loc.dir);
  };
  if (std::any_of(hbs.begin(), hbs.end(), live)) return false;
  // The node whose directories take the task: its lane's, or for _any one that had a runner
  // (the local host for a local lease that never had one).
  std::string node = loc.dir;
  if (node == any_lane) {
    if (!hbs.empty())
      node = hbs.front().node;
    else if (is_local_lease(lease_id))
      node = lease_id.substr(6);
    else
      return false;  // a Slurm lease whose runners never came: no node to file it under
  }
  check_node(node);
  detail::unique_fd lock(
      ::open(lease.runner_lock(node).c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (lock) {
    while (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) return false;  // its runner lives, heartbeat or not
      break;  // flock refused by the filesystem: the heartbeats alone decide
    }
  }
  // Every directory through a descriptor walked from the home without following a link: a
  // symlinked claimed/<node> or done/<node> is refused, never written through.
  detail::unique_fd inbox_dir = detail::open_tree_dir(lease.anchor(), lease.inbox(loc.dir), false);
  detail::unique_fd claimed_dir = open_lease_dir(lease, lease.claimed(node));
  detail::unique_fd done_dir = open_lease_dir(lease, lease.done(node));
  const std::string name = id + ".json";
  fs::path from = lease.inbox_task(loc.dir, id);
  if (::renameat(inbox_dir.get(), name.c_str(), claimed_dir.get(), name.c_str()) != 0) {
    if (errno == ENOENT) return false;  // claimed meanwhile: it is a runner's now
    throw io_error("cannot take the task out of its inbox", from.string(), errno);
  }
  task_result r;
  r.task = loc.spec;
  r.task.claimed.reset();
  r.task.pid.reset();
  r.state = task_state::cancelled;
  r.reason = "cancelled";
  r.claimed = now;
  r.finished = now;
  r.stdout_path = lease_paths::relative_stdout(node, id);
  r.stderr_path = lease_paths::relative_stderr(node, id);
  try {
    detail::replace_file_at(done_dir.get(), id + ".result.json", json_file_text(json(r)),
                            lease.done(node));
  } catch (const error&) {
    // Without its result the claimed file would read as a task to run: give it back.
    ::renameat(claimed_dir.get(), name.c_str(), inbox_dir.get(), name.c_str());
    throw;
  }
  ::unlinkat(claimed_dir.get(), name.c_str(), 0);
  return true;
}

// cancel and retry: task ids, or every task in a state (of a node).
struct bulk_options {
  std::string lease, state, node, key, label;
  std::vector<std::string> tasks;
  bool yes = false;
};

// The tasks `--state S [--label L] [--node N]` hits, from one scan of the lease: without
// --state, every task in a state the command acts on (`allowed`; `what` says so in the refusal).
std::vector<std::string> tasks_selected(const home_paths& home, const std::string& lease_id,
                                        const lease_paths& lease, const bulk_options& o,
                                        std::initializer_list<task_state> allowed,
                                        const char* what) {
  std::vector<task_state> states(allowed);
  if (!o.state.empty()) {
    std::string word = o.state;
    for (auto& c : word)
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    auto st = parse_task_state(word);
    if (!st || std::find(allowed.begin(), allowed.end(), *st) == allowed.end())
      throw error("--state " + detail::quote_for_message(o.state) + ": " + what);
    states = {*st};
  }
  task_filter f;
  f.states = states;
  f.node = o.node;
  if (!o.label.empty()) f.labels = {o.label};
  store_options so;
  so.ui = load_config(home.config()).ui;
  snapshot_store<> store(lease, lease_id, so);
  std::vector<std::string> ids;
  for (const task_view& t : store.refresh()->tasks())
    if (matches(t, f)) ids.push_back(t.id);
  return ids;
}

// Asks before `verb` hits more than one task, unless --yes; off a terminal it refuses.
void confirm_bulk(const char* verb, const std::vector<std::string>& ids, bool yes) {
  if (ids.size() <= 1 || yes) return;
  std::string shown;
  for (std::size_t i = 0; i < ids.size() && i < 5; ++i) shown += (i ? " " : "") + ids[i];
  if (ids.size() > 5) shown += " ...";
  std::string what = fmt::format("{} tasks would be {} ({})", ids.size(), verb, shown);
  if (!::isatty(STDIN_FILENO)) throw error(what + "; not on a terminal, so pass --yes to confirm");
  std::fprintf(stderr, "%s. Go on? [y/N] ", what.c_str());
  std::string answer;
  std::getline(std::cin, answer);
  if (answer != "y" && answer != "Y" && answer != "yes")
    throw error(std::string("nothing was ") + verb);
}

// One task: taken out of a lane no runner serves at once, else a control file to its runner.
void cancel_one(const home_paths& home, const std::string& lease_id, const lease_paths& lease,
                const std::string& id) {
  if (auto loc = locate_task(lease, id);
      loc && loc->place == task_place::pending && cancel_unserved(home, lease_id, lease, *loc)) {
    std::printf("cancelled %s (pending in lane %s, which no live runner serves)\n", id.c_str(),
                loc->dir.c_str());
    return;
  }
  std::optional<std::string> fallback;
  if (is_local_lease(lease_id)) fallback = lease_id.substr(6);
  cancel_outcome c = cancel_task(lease, id, fallback);
  std::printf("cancel of %s sent to %s\n", id.c_str(), join_words(c.nodes).c_str());
}

// Checks the ids and options of a bulk command, lists the tasks it hits (nothing: says so and
// returns none) and asks first; then `act` each, one failure not stopping the others.
void run_bulk(const bulk_options& o, const char* verb, std::initializer_list<task_state> states,
              const char* states_text,
              const std::function<void(const home_paths&, const std::string&, const lease_paths&,
                                       const std::string&)>& act) {
  const bool select = !o.state.empty() || !o.label.empty();
  if (select == !o.tasks.empty())
    throw error(
        fmt::format("give task ids, or --state {} and/or --label L (not both)", states_text));
  if (!o.node.empty() && !select) throw error("--node goes with --state or --label");
  if (!o.node.empty()) check_node(o.node);
  if (!o.label.empty()) check_label(o.label);
  for (const auto& id : o.tasks) check_task_id(id);
  home_paths home = home_paths::from_env();
  std::string lease_id = resolve_lease(home, o.lease);
  lease_paths lease(home, lease_id);
  std::vector<std::string> ids = o.tasks;
  if (select) {
    ids = tasks_selected(home, lease_id, lease, o, states,
                         fmt::format("only {} tasks can be {}", states_text, verb).c_str());
    if (ids.empty()) {
      std::string what = (o.state.empty() ? std::string(states_text) : o.state) + " task";
      if (!o.label.empty()) what += " labelled " + o.label;
      std::printf("no %s\n", what.c_str());
      return;
    }
  }
  if (!o.key.empty() && ids.size() > 1) throw error("--key names one new task: give one task id");
  confirm_bulk(verb, ids, o.yes);
  std::size_t failed = 0;
  for (const auto& id : ids) {
    try {
      act(home, lease_id, lease, id);
    } catch (const error& e) {  // one task that ended meanwhile does not stop the others
      if (ids.size() == 1) throw;
      std::fprintf(stderr, "leaseq: %s\n", sanitize_inline(e.what()).c_str());
      ++failed;
    }
  }
  if (failed > 0) throw error(fmt::format("{} of {} tasks failed", failed, ids.size()));
}

void do_cancel(const bulk_options& o) {
  run_bulk(o, "cancelled", {task_state::pending, task_state::running}, "PENDING or RUNNING",
           cancel_one);
}

void do_retry(const bulk_options& o) {
  std::optional<std::string> key;
  if (!o.key.empty()) key = check_key(o.key);
  run_bulk(o, "retried", {task_state::failed, task_state::cancelled, task_state::lost},
           "FAILED, CANCELLED or LOST",
           [&](const home_paths&, const std::string& lease_id, const lease_paths& lease,
               const std::string& id) {
             std::printf("%s\n", retry_task(lease, lease_id, id, key).id.c_str());
           });
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
    throw CLI::RuntimeError(3);
  }
  std::printf("%s node %s: %s", id.c_str(), node.c_str(), std::string(to_string(h)).c_str());
  if (hb)
    std::printf(" (pid %lld, %zu running, %lld pending, %s, %lld slot(s), %lld GPU(s))",
                static_cast<long long>(hb->pid), hb->running.size(),
                static_cast<long long>(hb->pending), hb->paused ? "paused" : "active",
                static_cast<long long>(hb->slots), static_cast<long long>(hb->gpus));
  std::printf("\n");
  if (h != node_health::ok) throw CLI::RuntimeError(3);
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

void add_engine_commands(CLI::App& app, CLI::App& lease_cmd) {
  // ---- runner ----
  auto ro = std::make_shared<runner_options>();
  CLI::App* run = app.add_subcommand(
      "runner", "Run tasks of a lease on this node (claims from its lane, then from _any)");
  run->add_option("--lease", ro->lease, "Lease id (default: the local lease local:<host>)");
  run->add_option("--node", ro->node, "Node name (default: the short host name)");
  run->add_option("--slots", ro->slots,
                  "Tasks run at once: a number, or auto (one per GPU handed out; without GPUs "
                  "one per CPU Slurm gave this node, else per CPU)")
      ->capture_default_str();
  run->add_option("--gpus", ro->gpus, "GPUs to hand out: auto, none, or indices 0,1,...")
      ->capture_default_str();
  run->add_option("--grace", ro->grace, "Seconds between SIGTERM and SIGKILL on cancel/stop")
      ->capture_default_str();
  run->add_option("--heartbeat", ro->heartbeat, "Seconds between heartbeat rewrites")
      ->capture_default_str();
  run->add_flag(
      "--detach", ro->detach,
      "Daemonize (new session, output to runs/<lease>/runner-<node>.log); prints the pid");
  run->callback([ro] { start_runner(*ro); });

  // ---- submit ----
  auto so = std::make_shared<submit_options>();
  CLI::App* sub = app.add_subcommand(
      "submit", "Enqueue a task and print its id (leaseq submit [options] -- CMD ARGS...)");
  sub->add_option("--lease", so->lease, "Lease id (default: the default lease)");
  sub->add_option("--node", so->node, "Run on this node only (default: any runner, lane _any)");
  sub->add_option("--key", so->key,
                  "Idempotency key: submitting the same key again prints the earlier id");
  sub->add_option("--cwd", so->cwd, "Working directory (default: the current directory)");
  sub->add_option("--env", so->env, "Environment variable K=V for the task (repeatable)");
  sub->add_option("--gpus", so->gpus, "GPUs the task needs")->capture_default_str();
  sub->add_flag("--shell", so->shell, "Run the command words as one /bin/sh -c line");
  sub->add_flag("--force", so->force,
                "Queue even what cannot run: --gpus above every live runner's, --node no runner "
                "serves, a lease that ended");
  sub->add_option("--each-line", so->each_line,
                  "Submit one shell-command task per line of FILE (- for stdin), in one batch");
  sub->add_option("--array", so->array,
                  "START-END[:STEP]: one task per index, in one batch (at most 1000000); each "
                  "sees LEASEQ_ARRAY_INDEX and LEASEQ_ARRAY_ID (the first task's id)");
  sub->add_option("--after", so->after,
                  "Run once these tasks FINISHED (ID[,ID...], repeatable); cancelled when one "
                  "ends otherwise");
  sub->add_option("--time-limit", so->time_limit,
                  "Stop the task after this long (30s, 5m, 2h, 2:00:00): FAILED time_limit");
  sub->add_option("--retries", so->retries,
                  "Run a FAILED attempt again, up to N more times (not after a cancel or a time "
                  "limit)");
  sub->add_option("--retry-delay", so->retry_delay, "Wait this long before each retry (30s, 5m)");
  sub->add_option("--label", so->labels,
                  "Tag the task (repeatable, or a,b): tasks/cancel/retry --label select by it");
  sub->add_option("--priority", so->priority,
                  "Higher runs first within its lane (default 0; ties by submit order)")
      ->capture_default_str();
  sub->add_option("command", so->command, "The command and its arguments (after --)");
  sub->callback([so] { do_submit(*so); });

  // ---- cancel / retry / pause / resume ----
  auto lease_opt = std::make_shared<std::string>();
  // cancel and retry act on task ids or on every task in a state (of a node).
  auto add_bulk = [&app](const char* name, const char* help, const char* states,
                         void (*run)(const bulk_options&)) {
    auto o = std::make_shared<bulk_options>();
    CLI::App* c = app.add_subcommand(name, help);
    c->add_option("--lease", o->lease, "Lease id (default: the default lease)");
    c->add_option("--state", o->state, std::string("Every task in this state: ") + states);
    c->add_option("--label", o->label,
                  std::string("Every task with this label (in a state: ") + states + ")");
    c->add_option("--node", o->node,
                  "With --state or --label: only tasks of this node (lane or runner)");
    c->add_flag("--yes,-y", o->yes, "Do not ask when more than one task is hit");
    c->add_option("task", o->tasks, "Task ids (T014 ...)");
    c->callback([o, run] { run(*o); });
    return std::make_pair(c, o);
  };
  add_bulk("cancel",
           "Cancel tasks: a pending one never starts, a running one gets SIGTERM (cancel ID... or "
           "cancel --state PENDING|RUNNING [--label L] [--node N])",
           "PENDING or RUNNING", do_cancel);
  auto [ret, retry_opts] = add_bulk(
      "retry",
      "Enqueue tasks again as new tasks (new ids, retry_of names the old one): retry ID... or "
      "retry --state FAILED|CANCELLED|LOST [--label L] [--node N]",
      "FAILED, CANCELLED or LOST", do_retry);
  ret->add_option("--key", retry_opts->key, "Idempotency key for the new task (one task only)");

  auto node_arg = std::make_shared<std::string>();
  for (bool pause : {true, false}) {
    CLI::App* c = app.add_subcommand(
        pause ? "pause" : "resume",
        pause ? "Pause a node's runner: it claims nothing new, running tasks finish"
              : "Resume a paused node's runner");
    c->add_option("--lease", *lease_opt, "Lease id (default: the default lease)");
    c->add_option("node", *node_arg, "Node name")->required();
    c->callback([lease_opt, node_arg, pause] {
      home_paths home = home_paths::from_env();
      std::string id = resolve_lease(home, *lease_opt);
      lease_paths lease(home, id);
      if (pause)
        write_pause(lease, check_node(*node_arg));
      else
        write_resume(lease, check_node(*node_arg));
      std::printf("%s sent to %s\n", pause ? "pause" : "resume", node_arg->c_str());
    });
  }

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
  start->add_option("--gpus", lo->gpus, "GPUs: auto, none, or 0,1,...")->capture_default_str();
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
