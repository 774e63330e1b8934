// submit.
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

std::map<std::string, std::string> parse_env(const std::vector<std::string>& items) {
  std::map<std::string, std::string> env;
  for (const auto& kv : items) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw usage_error("--env expects K=V, got " + detail::quote_for_message(kv));
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
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
    if (*r.time_limit <= 0) throw usage_error("--time-limit: must be above 0");
  }
  if (o.retries < 0 || o.retries > max_task_retries)
    throw usage_error(fmt::format("--retries: must be 0 to {}", max_task_retries));
  r.retries = o.retries;
  if (!o.retry_delay.empty()) {
    if (o.retries == 0) throw usage_error("--retry-delay needs --retries N");
    r.retry_delay = parse_submit_duration(o.retry_delay, "--retry-delay");
  }
  for (const std::string& label : comma_items(o.labels)) {
    if (!is_valid_label(label))
      throw usage_error("--label " + detail::quote_for_message(label) + ": " +
                        std::string(label_rule));
    if (std::find(r.labels.begin(), r.labels.end(), label) == r.labels.end())
      r.labels.push_back(label);
  }
  if (r.labels.size() > max_task_labels)
    throw usage_error(fmt::format("--label: at most {} labels", max_task_labels));
  if (o.priority < -max_task_priority || o.priority > max_task_priority)
    throw usage_error(
        fmt::format("--priority: must be {} to {}", -max_task_priority, max_task_priority));
  r.priority = o.priority;
}

void do_submit(const submit_options& o) {
  // Checked before anything is written (resolve_lease may register the local lease).
  std::optional<array_range> array;
  if (!o.array.empty()) {
    array = parse_array_range(o.array);
    if (!o.each_line.empty()) throw usage_error("--array and --each-line exclude each other");
  }
  submit_request base;
  set_submit_limits(o, base);  // before anything is written
  base.env = parse_env(o.env);
  base.gpus = o.gpus;
  if (!o.node.empty()) base.node = check_node(o.node);
  if (!o.key.empty()) check_key(o.key);
  if (!o.each_line.empty() && !o.command.empty()) throw usage_error("--each-line takes no command");
  if (o.each_line.empty()) {
    if (o.command.empty())
      throw usage_error("submit: no command given (leaseq submit -- CMD ARGS...)");
    // An empty program name can only fail at exec time, on the runner, long after this returns.
    if (o.command[0].empty() ||
        (o.shell && detail::join(o.command, " ").find_first_not_of(" \t") == std::string::npos))
      throw usage_error("submit: the command is empty (leaseq submit -- CMD ARGS...)");
  }
  home_paths home = home_paths::from_env();
  std::string lease_id = resolve_lease(home, o.lease);
  lease_paths lease(home, lease_id);
  base.cwd = o.cwd.empty() ? fs::current_path().string() : fs::absolute(o.cwd).string();
  if (!o.force) refuse_impossible(home, lease_id, lease, base);

  if (!o.each_line.empty()) {
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
  submit_request r = base;
  if (o.shell) {
    r.cmd = detail::join(o.command, " ");
    r.argv = shell_argv(r.cmd);
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

}  // namespace

void add_submit_command(CLI::App& app) {
  // ---- submit ----
  auto so = std::make_shared<submit_options>();
  CLI::App* sub = app.add_subcommand(
      "submit", "Enqueue a task and print its id (leaseq submit [options] -- CMD ARGS...)");
  add_lease_option(*sub, so->lease);
  sub->add_option("--node", so->node, "Run on this node only (default: any runner, lane _any)");
  sub->add_option("--key", so->key,
                  "Idempotency key: submitting the same key again prints the earlier id");
  sub->add_option("--cwd", so->cwd, "Working directory (default: the current directory)");
  sub->add_option("--env", so->env, "Environment variable K=V for the task (repeatable)");
  sub->add_option("--gpus", so->gpus,
                  "How many GPUs the task needs (a count; runner --gpu-ids lists devices)")
      ->capture_default_str();
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
}

}  // namespace leaseq_cli
