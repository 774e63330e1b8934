// cancel, retry, pause, resume.
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
      throw usage_error("--state " + detail::quote_for_message(o.state) + ": " + what);
    states = {*st};
  }
  task_filter f;
  f.states = states;
  f.node = o.node;
  if (!o.label.empty()) f.labels = {o.label};
  store_options so;
  so.ui = load_config(home.config()).ui;
  // A state, a node and an id are in the names (and the results index): only --label needs the
  // files. A million-task lease is then selected in a second, not parsed whole.
  so.results_from_index = so.pending_unread = o.label.empty();
  snapshot_store<> store(lease, lease_id, so);
  std::vector<std::string> ids;
  for (const task_view& t : store.refresh()->tasks())
    if (matches(t, f)) ids.push_back(t.id);
  return ids;
}

// Asks before `verb` hits more than one task, unless --yes; off a terminal it refuses.
void confirm_bulk(const char* verb, const std::vector<std::string>& ids, bool yes) {
  if (ids.size() <= 1 || yes) return;
  std::string shown = detail::join(
      std::vector<std::string>(ids.begin(), ids.begin() + std::min<std::size_t>(ids.size(), 5)),
      " ");
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
  std::printf("cancel of %s sent to %s\n", id.c_str(), detail::join(c.nodes, " ").c_str());
}

// Checks the ids and options of a bulk command, lists the tasks it hits (nothing: says so and
// returns none) and asks first; then `act` each, one failure not stopping the others.
void run_bulk(const bulk_options& o, const char* verb, std::initializer_list<task_state> states,
              const char* states_text,
              const std::function<void(const home_paths&, const std::string&, const lease_paths&,
                                       const std::string&)>& act) {
  const bool select = !o.state.empty() || !o.label.empty();
  if (select == !o.tasks.empty())
    throw usage_error(
        fmt::format("give task ids, or --state {} and/or --label L (not both)", states_text));
  if (!o.node.empty() && !select) throw usage_error("--node goes with --state or --label");
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
  if (!o.key.empty() && ids.size() > 1)
    throw usage_error("--key names one new task: give one task id");
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

}  // namespace

void add_control_commands(CLI::App& app) {
  // ---- cancel / retry / pause / resume ----
  auto lease_opt = std::make_shared<std::string>();
  // cancel and retry act on task ids or on every task in a state (of a node).
  auto add_bulk = [&app](const char* name, const char* help, const char* states,
                         void (*run)(const bulk_options&)) {
    auto o = std::make_shared<bulk_options>();
    CLI::App* c = app.add_subcommand(name, help);
    add_lease_option(*c, o->lease);
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
    add_lease_option(*c, *lease_opt);
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
}

}  // namespace leaseq_cli
