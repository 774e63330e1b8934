#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "leaseq/detail/exact_bytes.hpp"
#include "leaseq/detail/json_fields.hpp"
#include "leaseq/detail/strings.hpp"
#include "leaseq/names.hpp"

namespace leaseq {

using json = nlohmann::json;

// Task state as a reader derives it (protocol: "Task state as a reader derives it").
// `unknown`: the task exists (its id was handed out, protocol 2 ids/) but no reader can see its
// file right now: a shared filesystem's cache lags a move inbox -> claimed -> done.
enum class task_state { pending, running, finished, failed, cancelled, lost_maybe, lost, unknown };

inline constexpr std::string_view to_string(task_state s) noexcept {
  switch (s) {
    case task_state::pending:
      return "PENDING";
    case task_state::running:
      return "RUNNING";
    case task_state::finished:
      return "FINISHED";
    case task_state::failed:
      return "FAILED";
    case task_state::cancelled:
      return "CANCELLED";
    case task_state::lost_maybe:
      return "LOST?";
    case task_state::lost:
      return "LOST";
    case task_state::unknown:
      return "UNKNOWN";
  }
  return "?";
}

inline std::optional<task_state> parse_task_state(std::string_view s) noexcept {
  for (task_state t :
       {task_state::pending, task_state::running, task_state::finished, task_state::failed,
        task_state::cancelled, task_state::lost_maybe, task_state::lost, task_state::unknown})
    if (to_string(t) == s) return t;
  return std::nullopt;
}

inline bool is_done(task_state s) noexcept {
  return s == task_state::finished || s == task_state::failed || s == task_state::cancelled;
}

enum class node_health { ok, stale, down, unknown };

inline constexpr std::string_view to_string(node_health h) noexcept {
  switch (h) {
    case node_health::ok:
      return "OK";
    case node_health::stale:
      return "STALE";
    case node_health::down:
      return "DOWN";
    case node_health::unknown:
      return "UNKNOWN";
  }
  return "?";
}

// argv joined for display, each word quoted for sh only when it needs it.
inline std::string display_command(const std::vector<std::string>& argv) {
  if (argv.size() == 3 && argv[0] == "/bin/sh" && argv[1] == "-c") return argv[2];
  return detail::shell_join(argv);
}

// display_command without a copy: the script of a `/bin/sh -c` argv as it is, anything else
// joined into `scratch` (reused by a caller that goes through many tasks), which the view then
// points into.
inline std::string_view display_command_view(const std::vector<std::string>& argv,
                                             std::string& scratch) {
  if (argv.size() == 3 && argv[0] == "/bin/sh" && argv[1] == "-c") return argv[2];
  detail::shell_join_into(scratch, argv);
  return scratch;
}

// One execution of a task that ended (protocol version 3, "attempts"): a task with retries
// keeps every attempt's outcome, the earlier ones in its task file, all of them in its result.
struct task_attempt {
  std::string attempt;  // the attempt id (LEASEQ_ATTEMPT)
  std::string node;     // where it ran
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::optional<std::string> reason;
  std::optional<double> started;
  std::optional<double> finished;
};

// The most retries a task may ask for: each attempt is kept in its task file.
inline constexpr int max_task_retries = 100;

// Priorities run from -max_task_priority to max_task_priority.
inline constexpr int max_task_priority = 1000000;
// The most labels one task may carry.
inline constexpr std::size_t max_task_labels = 32;

// A task file: inbox/<lane>/<id>.json, and claimed/<node>/<id>.json after a claim.
struct task_spec {
  std::string id;
  std::int64_t seq = 0;
  std::string lease;
  std::optional<std::string> node;  // nullopt: the shared lane _any
  // argv, cwd and env are the exact bytes, not always UTF-8 (on disk: argv_b64, cwd_b64,
  // env_b64 beside a readable form).
  std::vector<std::string> argv;
  std::string cmd;  // for display only; argv is what runs
  std::string cwd;
  std::map<std::string, std::string> env;
  int gpus = 0;
  std::optional<std::string> key;
  double created = 0;
  std::optional<std::string> retry_of;
  std::optional<double> claimed;  // written by the runner when it claims
  std::optional<std::int64_t> pid;
  // Version 3 (written only when set, so other tasks stay exactly what version 2 wrote).
  std::vector<std::string> after;      // runs once every one of these tasks FINISHED
  std::optional<double> time_limit;    // seconds an attempt may run; then FAILED time_limit
  int retries = 0;                     // attempts after a FAILED one, at most
  double retry_delay = 0;              // seconds between a FAILED attempt and the next
  std::optional<double> not_before;    // a requeued attempt is not claimed before this time
  std::vector<task_attempt> attempts;  // the task file: earlier attempts; a result: all
  // Version 4.
  std::vector<std::string> labels;  // free tags for selecting tasks (tasks/cancel --label)
  int priority = 0;                 // higher is claimed first within a lane; ties by seq
  json extra = json::object();      // fields other tools wrote; kept on rewrite
};

inline constexpr std::initializer_list<const char*> task_spec_fields = {
    "id",         "seq",      "lease",  "node",    "argv",       "argv_b64", "cmd",
    "cwd",        "cwd_b64",  "env",    "env_b64", "gpus",       "key",      "created",
    "retry_of",   "claimed",  "pid",    "after",   "time_limit", "retries",  "retry_delay",
    "not_before", "attempts", "labels", "priority"};

// Which attempt of its task an execution is, counting from 1, and how many it may have.
inline int attempt_number(const task_spec& t) noexcept {
  return static_cast<int>(t.attempts.size()) + 1;
}
inline int attempts_allowed(const task_spec& t) noexcept {
  return t.retries + 1;
}

// A process id read from a file is only ever used as a pid_t. Anything outside pid_t's
// positive range would be truncated by the cast (4294967295 becomes -1: kill(-1) signals every
// process), so it is refused where the file is parsed, before any caller sees it.
inline constexpr std::int64_t max_pid = std::numeric_limits<std::int32_t>::max();

// True for a pid that may be signalled, or whose group may be: never 0 (our own group), 1
// (init, and kill(-1) is everyone) or a negative value (a process group).
inline constexpr bool is_signallable_pid(std::int64_t pid) noexcept {
  return pid > 1 && pid <= max_pid;
}

namespace detail {

// The pid field of a file, or nullopt when absent. `lowest`: 2 for a task's process (a child
// of its runner and its own process group, so never 0 or 1); 0 for a runner's heartbeat, where
// 0 has always meant "not known" and 1 is a runner started as a container's first process:
// both are read, and is_signallable_pid() keeps every caller from signalling them.
inline std::optional<std::int64_t> opt_pid(const json& obj, const char* name, std::int64_t lowest) {
  auto v = opt_int(obj, name);
  if (v && (*v < lowest || *v > max_pid))
    throw format_error("field '" + std::string(name) + "': " + std::to_string(*v) +
                       " is not a process id (" + std::to_string(lowest) + " to " +
                       std::to_string(max_pid) + ")");
  return v;
}

// The exact bytes of argv, cwd and env as the base64 fields hold them (docs/protocol.md, "Task
// file"); each is present only when a value is not valid UTF-8, and then holds the whole value.
struct exact_bytes_fields {
  std::optional<std::vector<std::string>> argv_b64;
  std::optional<std::string> cwd_b64;
  std::optional<std::vector<std::pair<std::string, std::string>>> env_b64;
};

inline std::string decode_b64_field(const std::string& field, const std::string& text) {
  auto bytes = base64_decode(text);
  if (!bytes) throw format_error("field '" + field + "': not canonical base64");
  return std::move(*bytes);
}

// Replaces t's display forms by the exact bytes. The display form must still be what the
// bytes show as, so a tool that edited one field and not the other is caught, not obeyed.
inline void apply_exact_bytes(task_spec& t, const exact_bytes_fields& f) {
  if (f.argv_b64) {
    if (f.argv_b64->size() != t.argv.size())
      throw format_error("field 'argv_b64': " + std::to_string(f.argv_b64->size()) +
                         " entries, but 'argv' has " + std::to_string(t.argv.size()));
    for (std::size_t i = 0; i < t.argv.size(); ++i) {
      std::string exact = decode_b64_field("argv_b64", (*f.argv_b64)[i]);
      if (to_valid_utf8(exact) != t.argv[i])
        throw format_error("field 'argv_b64': entry " + std::to_string(i) +
                           " does not match 'argv'");
      t.argv[i] = std::move(exact);
    }
  }
  if (f.cwd_b64) {
    std::string exact = decode_b64_field("cwd_b64", *f.cwd_b64);
    if (to_valid_utf8(exact) != t.cwd) throw format_error("field 'cwd_b64': does not match 'cwd'");
    t.cwd = std::move(exact);
  }
  if (f.env_b64) {
    std::map<std::string, std::string> env;
    for (const auto& [k, v] : *f.env_b64) {
      std::string name = decode_b64_field("env_b64", k);
      if (!t.env.count(to_valid_utf8(name)))
        throw format_error("field 'env_b64': holds a variable that 'env' lacks");
      env.insert_or_assign(std::move(name), decode_b64_field("env_b64", v));
    }
    for (const auto& kv : t.env) {
      bool shown = false;
      for (const auto& e : env) shown = shown || to_valid_utf8(e.first) == kv.first;
      if (!shown)
        throw format_error("field 'env_b64': lacks variable " + quote_for_message(kv.first));
    }
    t.env = std::move(env);
  }
}

}  // namespace detail

inline void to_json(json& j, const task_spec& t) {
  j = t.extra.is_object() ? t.extra : json::object();
  j["id"] = t.id;
  j["seq"] = t.seq;
  j["lease"] = t.lease;
  j["node"] = detail::or_null(t.node);
  // JSON text is UTF-8: bytes that are not go in base64 beside a readable form.
  bool argv_exact = true;
  for (const auto& a : t.argv) argv_exact = argv_exact && detail::is_valid_utf8(a);
  if (argv_exact) {
    j["argv"] = t.argv;
  } else {
    json shown = json::array(), exact = json::array();
    for (const auto& a : t.argv) {
      shown.push_back(detail::to_valid_utf8(a));
      exact.push_back(detail::base64_encode(a));
    }
    j["argv"] = std::move(shown);
    j["argv_b64"] = std::move(exact);
  }
  j["cmd"] = detail::to_valid_utf8(t.cmd);
  if (detail::is_valid_utf8(t.cwd)) {
    j["cwd"] = t.cwd;
  } else {
    j["cwd"] = detail::to_valid_utf8(t.cwd);
    j["cwd_b64"] = detail::base64_encode(t.cwd);
  }
  bool env_exact = true;
  for (const auto& [k, v] : t.env)
    env_exact = env_exact && detail::is_valid_utf8(k) && detail::is_valid_utf8(v);
  if (env_exact) {
    j["env"] = t.env;
  } else {
    json shown = json::object(), exact = json::object();
    for (const auto& [k, v] : t.env) {
      shown[detail::to_valid_utf8(k)] = detail::to_valid_utf8(v);
      exact[detail::base64_encode(k)] = detail::base64_encode(v);
    }
    j["env"] = std::move(shown);
    j["env_b64"] = std::move(exact);
  }
  j["gpus"] = t.gpus;
  j["key"] = detail::or_null(t.key);
  j["created"] = t.created;
  if (t.retry_of) j["retry_of"] = *t.retry_of;
  if (t.claimed) j["claimed"] = *t.claimed;
  if (t.pid) j["pid"] = *t.pid;
  if (!t.after.empty()) j["after"] = t.after;
  if (t.time_limit) j["time_limit"] = *t.time_limit;
  if (t.retries > 0) j["retries"] = t.retries;
  if (t.retry_delay > 0) j["retry_delay"] = t.retry_delay;
  if (t.not_before) j["not_before"] = *t.not_before;
  if (!t.attempts.empty()) {
    json list = json::array();
    for (const task_attempt& a : t.attempts) {
      json e = {{"attempt", a.attempt},
                {"node", a.node},
                {"exit_code", detail::or_null(a.exit_code)},
                {"signal", detail::or_null(a.signal)},
                {"reason", a.reason ? json(detail::to_valid_utf8(*a.reason)) : json(nullptr)},
                {"started", detail::or_null(a.started)},
                {"finished", detail::or_null(a.finished)}};
      list.push_back(std::move(e));
    }
    j["attempts"] = std::move(list);
  }
  if (!t.labels.empty()) j["labels"] = t.labels;
  if (t.priority != 0) j["priority"] = t.priority;
}

namespace detail {

// A duration field of a task file: a positive (or, with zero_ok, non-negative) finite number
// of seconds, at most a year.
inline std::optional<double> opt_seconds(const json& j, const char* name, bool zero_ok) {
  auto v = opt_number(j, name);
  if (v && !((zero_ok ? *v >= 0 : *v > 0) && *v <= 366 * 86400.0))
    throw format_error("field '" + std::string(name) + "': " + std::to_string(*v) +
                       " is not a duration in seconds (" + (zero_ok ? "0" : "above 0") +
                       " to a year)");
  return v;
}

inline std::vector<task_attempt> attempt_list(const json& j) {
  std::vector<task_attempt> out;
  const json* list = find_field(j, "attempts");
  if (!list || list->is_null()) return out;
  if (!list->is_array()) bad_field("attempts", "an array", *list);
  if (list->size() > static_cast<std::size_t>(max_task_retries) + 1)
    throw format_error("field 'attempts': more than " + std::to_string(max_task_retries + 1) +
                       " entries");
  for (const json& e : *list) {
    if (!e.is_object()) bad_field("attempts", "an array of objects", e);
    task_attempt a;
    a.attempt = opt_string(e, "attempt").value_or("");
    a.node = opt_string(e, "node").value_or("");
    auto small = [&](const char* name) -> std::optional<int> {
      auto v = opt_int(e, name);
      if (v && (*v < INT32_MIN || *v > INT32_MAX))
        throw format_error("field 'attempts': " + std::string(name) + " out of range");
      return v ? std::optional<int>(static_cast<int>(*v)) : std::nullopt;
    };
    a.exit_code = small("exit_code");
    a.signal = small("signal");
    a.reason = opt_string(e, "reason");
    a.started = opt_number(e, "started");
    a.finished = opt_number(e, "finished");
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace detail

// Throws format_error (or name_error) naming the bad field.
inline void from_json(const json& j, task_spec& t) {
  if (!j.is_object()) throw format_error(std::string("expected an object, got ") + j.type_name());
  t.id = check_task_id(detail::req_string(j, "id"));
  t.seq = detail::opt_int(j, "seq").value_or(task_seq(t.id).value_or(0));
  t.lease = detail::opt_string(j, "lease").value_or("");
  t.node = detail::opt_string(j, "node");
  if (t.node && *t.node == any_lane) t.node.reset();
  if (t.node) check_node(*t.node);
  t.argv = detail::string_list(j, "argv");
  if (t.argv.empty()) throw format_error("field 'argv': must hold at least one string");
  t.cmd = detail::opt_string(j, "cmd").value_or("");
  t.cwd = detail::opt_string(j, "cwd").value_or("");
  t.env = detail::string_map(j, "env");
  detail::exact_bytes_fields exact;
  auto given = [&](const char* name) {
    const json* v = detail::find_field(j, name);
    return v && !v->is_null();
  };
  if (given("argv_b64")) exact.argv_b64 = detail::string_list(j, "argv_b64");
  exact.cwd_b64 = detail::opt_string(j, "cwd_b64");
  if (given("env_b64")) {
    auto m = detail::string_map(j, "env_b64");
    exact.env_b64.emplace(m.begin(), m.end());
  }
  detail::apply_exact_bytes(t, exact);
  std::int64_t gpus = detail::int_or(j, "gpus", 0);
  if (gpus < 0 || gpus > 4096) throw format_error("field 'gpus': out of range");
  t.gpus = static_cast<int>(gpus);
  t.key = detail::opt_string(j, "key");
  t.created = detail::opt_number(j, "created").value_or(0);
  t.retry_of = detail::opt_string(j, "retry_of");
  t.claimed = detail::opt_number(j, "claimed");
  t.pid = detail::opt_pid(j, "pid", 2);
  t.after = detail::string_list(j, "after");
  for (const std::string& dep : t.after) {
    if (!is_valid_task_id(dep))
      throw format_error("field 'after': " + detail::quote_for_message(dep) + " is not a task id");
    if (dep == t.id) throw format_error("field 'after': the task names itself");
  }
  t.time_limit = detail::opt_seconds(j, "time_limit", false);
  std::int64_t retries = detail::int_or(j, "retries", 0);
  if (retries < 0 || retries > max_task_retries)
    throw format_error("field 'retries': " + std::to_string(retries) + " is not 0 to " +
                       std::to_string(max_task_retries));
  t.retries = static_cast<int>(retries);
  t.retry_delay = detail::opt_seconds(j, "retry_delay", true).value_or(0);
  t.not_before = detail::opt_number(j, "not_before");
  t.attempts = detail::attempt_list(j);
  t.labels = detail::string_list(j, "labels");
  if (t.labels.size() > max_task_labels)
    throw format_error("field 'labels': more than " + std::to_string(max_task_labels));
  for (const std::string& l : t.labels)
    if (!is_valid_label(l))
      throw format_error("field 'labels': " + detail::quote_for_message(l) + " is not a label");
  std::int64_t priority = detail::int_or(j, "priority", 0);
  if (priority < -max_task_priority || priority > max_task_priority)
    throw format_error("field 'priority': " + std::to_string(priority) + " is not " +
                       std::to_string(-max_task_priority) + " to " +
                       std::to_string(max_task_priority));
  t.priority = static_cast<int>(priority);
  t.extra = detail::unknown_fields(j, task_spec_fields);
}

// A result file: done/<node>/<id>.result.json. All task fields plus the outcome.
struct task_result {
  task_spec task;
  task_state state = task_state::finished;  // FINISHED, FAILED or CANCELLED
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::optional<std::string> reason;
  std::optional<double> claimed;
  std::optional<double> started;
  std::optional<double> finished;
  std::string stdout_path;  // relative to the lease root
  std::string stderr_path;
  std::optional<std::string> attempt;  // one id per execution (docs/protocol.md)
};

inline constexpr std::initializer_list<const char*> task_result_fields = {
    "state",   "exit_code", "signal", "reason", "claimed",
    "started", "finished",  "stdout", "stderr", "attempt"};

inline void to_json(json& j, const task_result& r) {
  to_json(j, r.task);
  j["state"] = std::string(to_string(r.state));
  j["exit_code"] = detail::or_null(r.exit_code);
  j["signal"] = detail::or_null(r.signal);
  j["reason"] = r.reason ? json(detail::to_valid_utf8(*r.reason)) : json(nullptr);
  j["claimed"] = detail::or_null(r.claimed);
  j["started"] = detail::or_null(r.started);
  j["finished"] = detail::or_null(r.finished);
  j["stdout"] = r.stdout_path;
  j["stderr"] = r.stderr_path;
  if (r.attempt) j["attempt"] = *r.attempt;
}

inline void from_json(const json& j, task_result& r) {
  from_json(j, r.task);
  for (const char* f : task_result_fields) r.task.extra.erase(f);
  std::string state = detail::req_string(j, "state");
  auto s = parse_task_state(state);
  if (!s || !is_done(*s))
    throw format_error("field 'state': expected FINISHED, FAILED or CANCELLED, got " +
                       detail::quote_for_message(state));
  r.state = *s;
  auto narrow = [](std::optional<std::int64_t> v) -> std::optional<int> {
    if (!v) return std::nullopt;
    if (*v < INT32_MIN || *v > INT32_MAX) throw format_error("exit code or signal out of range");
    return static_cast<int>(*v);
  };
  r.exit_code = narrow(detail::opt_int(j, "exit_code"));
  r.signal = narrow(detail::opt_int(j, "signal"));
  r.reason = detail::opt_string(j, "reason");
  r.claimed = detail::opt_number(j, "claimed");
  r.started = detail::opt_number(j, "started");
  r.finished = detail::opt_number(j, "finished");
  r.stdout_path = detail::opt_string(j, "stdout").value_or("");
  r.stderr_path = detail::opt_string(j, "stderr").value_or("");
  r.attempt = detail::opt_string(j, "attempt");
}

// A heartbeat file: hb/<node>.json.
struct heartbeat {
  std::string node;
  std::string host;
  std::int64_t pid = 0;
  double ts = 0;
  double started = 0;
  std::vector<std::string> running;
  std::optional<std::string> running_task_id;
  std::int64_t pending = 0;
  bool paused = false;
  std::int64_t slots = 1;
  std::int64_t gpus = 0;
  std::vector<std::string> gpu_ids;  // extension: the devices the runner hands out
  std::int64_t gpus_free = 0;        // extension
  std::string version;
  bool stopped = false;
  // Protocol 4: who the runner is beyond its pid (pids are reused): its start time
  // (/proc/PID/stat field 22) and the boot it started in. 0 and empty in older heartbeats.
  std::uint64_t pid_start = 0;
  std::string boot_id;
  json extra = json::object();
};

inline constexpr std::initializer_list<const char*> heartbeat_fields = {
    "node",    "host",      "pid",    "ts",   "started", "running",   "running_task_id",
    "pending", "paused",    "slots",  "gpus", "gpu_ids", "gpus_free", "version",
    "stopped", "pid_start", "boot_id"};

inline void to_json(json& j, const heartbeat& h) {
  j = h.extra.is_object() ? h.extra : json::object();
  j["node"] = h.node;
  j["host"] = detail::to_valid_utf8(h.host);
  j["pid"] = h.pid;
  j["ts"] = h.ts;
  j["started"] = h.started;
  j["running"] = h.running;
  j["running_task_id"] = detail::or_null(h.running_task_id);
  j["pending"] = h.pending;
  j["paused"] = h.paused;
  j["slots"] = h.slots;
  j["gpus"] = h.gpus;
  j["gpu_ids"] = h.gpu_ids;
  j["gpus_free"] = h.gpus_free;
  j["version"] = h.version;
  if (h.stopped) j["stopped"] = true;
  if (h.pid_start != 0) j["pid_start"] = h.pid_start;
  if (!h.boot_id.empty()) j["boot_id"] = detail::to_valid_utf8(h.boot_id);
}

inline void from_json(const json& j, heartbeat& h) {
  if (!j.is_object()) throw format_error(std::string("expected an object, got ") + j.type_name());
  h.node = check_node(detail::req_string(j, "node"));
  h.host = detail::opt_string(j, "host").value_or("");
  h.pid = detail::opt_pid(j, "pid", 0).value_or(0);
  h.ts = detail::req_number(j, "ts");
  h.started = detail::opt_number(j, "started").value_or(0);
  h.running = detail::string_list(j, "running");
  h.running_task_id = detail::opt_string(j, "running_task_id");
  h.pending = detail::int_or(j, "pending", 0);
  h.paused = detail::bool_or(j, "paused", false);
  h.slots = detail::int_or(j, "slots", 1);
  {
    const json* g = detail::find_field(j, "gpus");
    if (g && g->is_array())
      h.gpus = static_cast<std::int64_t>(g->size());  // tolerate a list
    else
      h.gpus = detail::int_or(j, "gpus", 0);
  }
  const json* ids = detail::find_field(j, "gpu_ids");
  h.gpu_ids.clear();
  if (ids && ids->is_array())
    for (const json& e : *ids) h.gpu_ids.push_back(e.is_string() ? e.get<std::string>() : e.dump());
  h.gpus_free = detail::int_or(j, "gpus_free", 0);
  h.version = detail::opt_string(j, "version").value_or("");
  h.stopped = detail::bool_or(j, "stopped", false);
  const json* start = detail::find_field(j, "pid_start");
  h.pid_start = start && start->is_number_unsigned() ? start->get<std::uint64_t>() : 0;
  h.boot_id = detail::opt_string(j, "boot_id").value_or("");
  h.extra = detail::unknown_fields(j, heartbeat_fields);
}

// runs/<id>/lease.json. For Slurm leases it also records how the job was submitted.
struct lease_record {
  std::string id;
  std::string kind = "local";  // "local" or "slurm"
  std::optional<std::string> name;
  double created = 0;
  std::optional<std::int64_t> nodes;
  std::optional<std::int64_t> gpus_per_node;
  std::optional<std::string> partition, qos, account, constraint, reservation, time;
  std::vector<std::string> extra_args;
  std::vector<std::string> sbatch;
  std::optional<std::string> keeper;
  json extra = json::object();
};

inline constexpr std::initializer_list<const char*> lease_record_fields = {
    "id",         "kind",   "name",    "created",    "nodes",       "gpus_per_node",
    "partition",  "qos",    "account", "constraint", "reservation", "time",
    "extra_args", "sbatch", "keeper"};

inline void to_json(json& j, const lease_record& l) {
  j = l.extra.is_object() ? l.extra : json::object();
  j["id"] = l.id;
  j["kind"] = l.kind;
  j["name"] = detail::or_null(l.name);
  j["created"] = l.created;
  if (l.kind == "slurm") {
    j["nodes"] = detail::or_null(l.nodes);
    j["gpus_per_node"] = detail::or_null(l.gpus_per_node);
    j["partition"] = detail::or_null(l.partition);
    j["qos"] = detail::or_null(l.qos);
    j["account"] = detail::or_null(l.account);
    j["constraint"] = detail::or_null(l.constraint);
    j["reservation"] = detail::or_null(l.reservation);
    j["time"] = detail::or_null(l.time);
    j["extra_args"] = l.extra_args;
    j["sbatch"] = l.sbatch;
    j["keeper"] = detail::or_null(l.keeper);
  }
}

inline void from_json(const json& j, lease_record& l) {
  if (!j.is_object()) throw format_error(std::string("expected an object, got ") + j.type_name());
  l.id = check_lease_id(detail::req_string(j, "id"));
  l.kind = detail::opt_string(j, "kind").value_or(is_local_lease(l.id) ? "local" : "slurm");
  if (l.kind != "local" && l.kind != "slurm")
    throw format_error("field 'kind': expected \"local\" or \"slurm\", got " +
                       detail::quote_for_message(l.kind));
  l.name = detail::opt_string(j, "name");
  l.created = detail::opt_number(j, "created").value_or(0);
  l.nodes = detail::opt_int(j, "nodes");
  l.gpus_per_node = detail::opt_int(j, "gpus_per_node");
  l.partition = detail::opt_string(j, "partition");
  l.qos = detail::opt_string(j, "qos");
  l.account = detail::opt_string(j, "account");
  l.constraint = detail::opt_string(j, "constraint");
  l.reservation = detail::opt_string(j, "reservation");
  l.time = detail::opt_string(j, "time");
  l.extra_args = detail::string_list(j, "extra_args");
  l.sbatch = detail::string_list(j, "sbatch");
  l.keeper = detail::opt_string(j, "keeper");
  l.extra = detail::unknown_fields(j, lease_record_fields);
}

}  // namespace leaseq
