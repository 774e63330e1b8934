// status, tasks, follow, logs: the read-only commands. They read the lease tree through the
// snapshot store (one scan, no history: a heartbeat's `running` list is the evidence of "was
// RUNNING"), except `follow TASK`, which reads only that task's own files, and never write
// anything.
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>
#include <leaseq/detail/dir_watch.hpp>
#include <leaseq/leaseq.hpp>
#include <leaseq/trust.hpp>

#include "commands.hpp"

namespace leaseq_cli {

namespace {

using namespace leaseq;

struct lease_context {
  home_paths home;
  std::string lease_id;
  lease_paths paths;
  config cfg;
};

// --lease, else the index's default lease, else this host's local lease if it has a tree.
lease_context open_lease(const std::string& lease_opt) {
  home_paths home = home_paths::from_env();
  check_home_trust(home, home_use::read);  // anyone's home may be read; one's own must be safe
  std::string id = lease_opt;
  if (id.empty()) {
    index_read idx = read_index(home);
    if (!idx.error.empty()) throw error(idx.error);
    if (idx.index.default_lease) {
      id = *idx.index.default_lease;
    } else {
      std::string local = local_lease_id(short_hostname());
      if (is_valid_lease_id(local) && fs::exists(home.lease_dir(local))) id = local;
    }
    if (id.empty())
      throw error("no lease given and no default lease: pass --lease ID (see `leaseq lease ls`)");
  }
  check_lease_id(id);
  lease_paths paths(home, id);
  if (!fs::is_directory(paths.root()))
    throw error("no lease " + id + " under " + home.runs().string() + " (see `leaseq lease ls`)");
  config cfg = load_config(home.config());
  print_config_warnings(cfg);
  return {home, id, paths, cfg};
}

// What a one-shot command reads of the tasks. `need_results`: ended tasks' details (else their
// state may come from the results index, protocol 5); `need_pending`: pending tasks' files
// (else they are counted by name).
std::shared_ptr<const snapshot> scan_once(const lease_context& ctx, bool need_results = true,
                                          bool need_pending = true) {
  store_options o;
  o.ui = ctx.cfg.ui;
  o.results_from_index = !need_results;
  o.pending_unread = !need_pending;
  snapshot_store<> store(ctx.paths, ctx.lease_id, o);
  return store.refresh();
}

// Directory errors, then files that exist but cannot be read or parsed (shown with their last
// good view, or with no details): each with its reason, at most 20 of them. `read_later`: the
// problems of files a quick scan left unread that were read afterwards (check_pending,
// select_tasks_reading), by seq.
void print_scan_problems(const snapshot& s,
                         const std::map<std::int64_t, std::string>& read_later = {}) {
  for (const auto& e : s.errors)
    std::fprintf(stderr, "leaseq: warning: %s\n", sanitize_inline(e.message).c_str());
  std::vector<std::string> bad;
  for (const auto& n : s.nodes)
    if (n.hb_unknown && !n.hb_settling)  // settling: being replaced, lag (store.hpp)
      bad.push_back("heartbeat of " + n.name + " is unreadable: " + n.hb_reason);
  std::string invisible;  // handed out, visible nowhere: lag, not a broken file
  std::size_t invisible_count = 0;
  for (const auto& t : s.tasks()) {
    if ((t.state == task_state::unknown && !t.spec) || t.settling) {
      if (++invisible_count <= 10) invisible += " " + t.id;
      continue;
    }
    if (t.unknown && t.state != task_state::lost_maybe && t.state != task_state::lost)
      bad.push_back(t.id + " is unknown: " + t.unknown_reason);
    else if (!t.spec && !t.result)
      if (auto it = read_later.find(t.seq); it != read_later.end())
        bad.push_back(t.id + " is unknown: " + it->second);
  }
  if (invisible_count > 0)
    std::fprintf(stderr,
                 "leaseq: note: %zu task(s) not visible or not readable yet (shared filesystem "
                 "lag, or a submit in progress):%s%s\n",
                 invisible_count, invisible.c_str(), invisible_count > 10 ? " ..." : "");
  const std::size_t shown = 20;
  for (std::size_t i = 0; i < bad.size() && i < shown; ++i)
    std::fprintf(stderr, "leaseq: warning: %s\n", sanitize_inline(bad[i]).c_str());
  if (bad.size() > shown)
    std::fprintf(stderr, "leaseq: warning: ... and %zu more unreadable files\n",
                 bad.size() - shown);
}

json opt_json(const std::optional<double>& v) {
  return v ? json(*v) : json(nullptr);
}
json opt_json(const std::optional<int>& v) {
  return v ? json(*v) : json(nullptr);
}

void print_json(const json& j) {
  std::string text = j.dump(2, ' ', true, json::error_handler_t::replace);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

std::string age_text(std::optional<double> age) {
  if (!age) return "-";
  double a = *age;
  if (a < 120) return fmt::format("{:.0f}s", a);
  if (a < 7200) return fmt::format("{:.0f}m", a / 60);
  return fmt::format("{:.1f}h", a / 3600);
}

// Lease kind and state, the way `leaseq lease ls` shows them: a local lease from its runners'
// heartbeats, a Slurm lease through the shared, rate-limited Slurm state cache (slurm.hpp).
// `condition` is what waiting_reason() needs of the lease.
struct lease_facts {
  std::string kind;
  std::string state;  // sanitized, for display
  lease_condition condition;
  std::string state_inferred;  // "heartbeats": RUNNING on the runners' word, not Slurm's yet
  std::string reason;          // why, then (sanitized)
};

lease_facts read_lease_facts(const lease_context& ctx) {
  lease_row row;
  row.id = ctx.lease_id;
  row.kind = is_local_lease(ctx.lease_id) ? "local" : "slurm";
  std::optional<std::int64_t> nodes;
  json_outcome rec = read_json_tolerant(ctx.paths.lease_json());
  if (rec.ok()) {
    try {
      lease_record r;
      from_json(*rec.value, r);
      row.kind = r.kind;
      nodes = r.nodes;
    } catch (const std::exception&) {
    }
  }
  double now = unix_now();
  lease_condition cond;
  if (row.kind == "local") {
    local_lease_state(row, ctx.paths, now, ctx.cfg.ui.hb_stale_s);
    cond = lease_condition::local();
  } else {
    auto states = slurm_lease_states(ctx.home, {ctx.lease_id}, ctx.cfg.ui.slurm_refresh_s);
    std::string slurm_state;
    if (auto it = states.find(ctx.lease_id); it != states.end()) {
      apply_slurm_state(row, it->second, now);
      slurm_state = it->second.state;
    }
    // The cache may still hold the state seen at submit while the runners already heartbeat.
    if (reconcile_with_heartbeats(row, ctx.paths, now, ctx.cfg.ui.hb_stale_s))
      slurm_state = row.state;
    cond = lease_condition::slurm(slurm_state, nodes);
  }
  return {row.kind, sanitize_inline(row.state), cond, row.state_inferred,
          row.state_inferred.empty() ? std::string() : sanitize_inline(row.reason)};
}

std::vector<task_state> all_states() {
  return {task_state::pending,   task_state::running,    task_state::finished, task_state::failed,
          task_state::cancelled, task_state::lost_maybe, task_state::lost,     task_state::unknown};
}

void cmd_status(const std::string& lease_opt, bool as_json) {
  lease_context ctx = open_lease(lease_opt);
  // The lease's state (squeue, up to its timeout when the controller is slow) is asked for
  // while the tree is scanned, not after.
  auto facts_later = std::async(std::launch::async, [&ctx] { return read_lease_facts(ctx); });
  // Counts need no result parsed where the index vouches for it, nor any pending task's file:
  // the text form's "cannot run now" line reads those (their GPUs, dependencies, retry delays)
  // afterwards, without keeping them.
  auto s = scan_once(ctx, false, false);
  auto facts = facts_later.get();
  pending_check pending;
  if (!as_json) pending = check_pending(ctx.paths, *s, facts.condition);
  print_scan_problems(*s, pending.unreadable);
  const std::string& kind = facts.kind;
  const std::string& state = facts.state;
  if (as_json) {
    json j;
    j["lease"] = ctx.lease_id;
    j["kind"] = kind;
    j["state"] = state;
    j["state_inferred"] = facts.state_inferred.empty() ? json(nullptr) : json(facts.state_inferred);
    j["nodes"] = json::array();
    for (const auto& n : s->nodes) {
      j["nodes"].push_back({{"node", n.name},
                            {"health", std::string(to_string(n.health))},
                            {"hb_age_s", opt_json(n.hb_age_s)},
                            {"running", n.running},
                            {"pending", n.pending},
                            {"paused", n.paused}});
    }
    j["counts"] = json::object();
    for (auto st : all_states()) j["counts"][std::string(to_string(st))] = s->count(st);
    j["archived"] = s->archived;  // included in counts (leaseq clean, protocol 4)
    j["archived_counts"] = json::object();
    for (auto st : {task_state::finished, task_state::failed, task_state::cancelled})
      j["archived_counts"][std::string(to_string(st))] = s->archived_counts[state_index(st)];
    j["fs_lag"] = s->fs_lag;
    print_json(j);
    return;
  }
  std::string why = facts.reason.empty() ? std::string() : " (" + facts.reason + ")";
  std::printf("lease %s  %s  %s%s%s\n", ctx.lease_id.c_str(), kind.c_str(), state.c_str(),
              why.c_str(), s->fs_lag ? "  (fs lag: some files not visible yet)" : "");
  if (s->nodes.empty()) {
    std::printf("no nodes yet (no runner has written a heartbeat)\n");
  } else {
    std::printf("%-20s %-8s %6s  %-7s %-24s %s\n", "NODE", "HEALTH", "HB", "PENDING", "RUNNING",
                "PAUSED");
    for (const auto& n : s->nodes) {
      std::string running;
      for (const auto& r : n.running) running += (running.empty() ? "" : ",") + r;
      std::printf("%-20s %-8s %6s  %-7zu %-24s %s\n", n.name.c_str(),
                  std::string(to_string(n.health)).c_str(), age_text(n.hb_age_s).c_str(), n.pending,
                  running.empty() ? "-" : running.c_str(), n.paused ? "yes" : "no");
    }
  }
  std::string counts;
  for (auto st : all_states())
    if (s->count(st) > 0 || st == task_state::pending || st == task_state::running)
      counts += fmt::format("{}{}={}", counts.empty() ? "" : "  ", to_string(st), s->count(st));
  if (s->archived > 0) counts += fmt::format("  (archived {})", s->archived);
  std::printf("tasks: %s\n", counts.c_str());
  // Work that can never run must not wait silently: one line, the first task and its reason.
  if (pending.blocked > 0)
    std::printf("cannot run now: %zu PENDING task(s), e.g. %s\n", pending.blocked,
                sanitize_inline(pending.first_blocked).c_str());
}

std::optional<task_state> parse_state_arg(std::string s) {
  for (auto& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  if (s == "RUN") s = "RUNNING";
  if (s == "PEND") s = "PENDING";
  if (s == "FAIL") s = "FAILED";
  if (s == "DONE") s = "FINISHED";
  return parse_task_state(s);
}

struct tasks_args {
  std::string lease;
  std::vector<std::string> states, labels;
  std::string node, grep, sort = "state", format;
  bool as_json = false, has_stderr = false, archived = false;
  std::int64_t limit = 0;
};

// One task as `tasks --json` prints it; `tasks --format` takes its fields from the same object.
// `waiting`: why a PENDING task cannot run now (the reader works it out, never stored).
json task_json(const task_view& t, const std::optional<std::string>& waiting) {
  std::optional<std::string> reason = waiting;
  if (t.result && t.result->reason) reason = t.result->reason;
  json attempt = nullptr;
  if (t.result && t.result->attempt)
    attempt = *t.result->attempt;
  else if (t.spec && t.spec->extra.is_object() && t.spec->extra.contains("starting") &&
           t.spec->extra["starting"].is_string())
    attempt = t.spec->extra["starting"];
  // A running task started when its runner recorded its pid (at the claim's time).
  json started = nullptr;
  if (t.result && t.result->started)
    started = *t.result->started;
  else if (!t.result && t.state == task_state::running && t.spec && t.spec->pid && t.spec->claimed)
    started = *t.spec->claimed;
  json labels = json::array(), array_id = nullptr, array_index = nullptr;
  if (t.spec) labels = t.spec->labels;
  if (t.spec)
    if (auto a = array_member_of(*t.spec)) {
      array_id = a->id;
      array_index = a->index;
    }
  return {{"id", t.id},
          {"seq", t.seq},
          {"node", t.node.empty() ? json(nullptr) : json(t.node)},
          {"state", std::string(to_string(t.state))},
          {"exit_code", opt_json(t.exit_code())},
          {"signal", opt_json(t.result ? t.result->signal : std::nullopt)},
          {"cmd", t.command()},
          {"created", opt_json(t.created())},
          {"claimed", opt_json(t.claimed())},
          {"started", started},
          {"finished", opt_json(t.finished())},
          {"attempt", attempt},
          {"unknown", t.unknown ? json(t.unknown_reason) : json(nullptr)},
          {"reason", reason ? json(*reason) : json(nullptr)},
          {"labels", labels},
          {"priority", t.spec ? t.spec->priority : 0},
          {"array_id", array_id},
          {"array_index", array_index}};
}

// `tasks --format`: literal text and {field} placeholders; {{ and }} are literal braces.
struct format_piece {
  std::string text;
  std::string field;  // empty: text only
};

std::vector<format_piece> parse_task_format(const std::string& f) {
  static const char* const fields[] = {"id",        "seq",      "node",     "lane",       "state",
                                       "exit_code", "signal",   "cmd",      "created",    "claimed",
                                       "started",   "finished", "attempt",  "unknown",    "reason",
                                       "labels",    "priority", "array_id", "array_index"};
  auto usage = [&](const std::string& why) {
    std::string known;
    for (const char* k : fields) known += std::string(known.empty() ? "" : " ") + k;
    std::fprintf(stderr, "leaseq: error: --format %s: %s (fields: %s)\n",
                 detail::quote_for_message(f).c_str(), why.c_str(), known.c_str());
    return CLI::RuntimeError(exit_usage);
  };
  std::vector<format_piece> out{{}};
  for (std::size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if ((c == '{' || c == '}') && i + 1 < f.size() && f[i + 1] == c) {
      out.back().text += c;
      ++i;
    } else if (c == '}') {
      throw usage("a lone '}' (write }} for a literal brace)");
    } else if (c == '{') {
      std::size_t close = f.find('}', i);
      if (close == std::string::npos)
        throw usage("a '{' is never closed (write {{ for a literal brace)");
      std::string name = f.substr(i + 1, close - i - 1);
      if (std::find(std::begin(fields), std::end(fields), name) == std::end(fields))
        throw usage("unknown field " + detail::quote_for_message("{" + name + "}"));
      out.back().field = name;
      out.push_back({});
      i = close;
    } else {
      out.back().text += c;
    }
  }
  return out;
}

// A field's value as text: "-" for none, times as Unix seconds, labels comma-separated; every
// value sanitized (a command's control bytes never reach the terminal).
std::string format_value(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return sanitize_inline(v.get<std::string>());
  if (v.is_number_float()) return fmt::format("{:.3f}", v.get<double>());
  if (v.is_array()) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + format_value(x);
    return s.empty() ? "-" : s;
  }
  return v.dump();
}

void cmd_tasks(const tasks_args& a) {
  std::vector<format_piece> format;
  if (!a.format.empty()) {
    if (a.as_json) throw usage_error("--format and --json exclude each other");
    format = parse_task_format(a.format);
  }
  lease_context ctx = open_lease(a.lease);
  task_filter f;
  for (const auto& st : a.states) {
    auto parsed = parse_state_arg(st);
    if (!parsed) {
      std::fprintf(stderr,
                   "leaseq: error: unknown state %s (PENDING, RUNNING, FINISHED, FAILED, "
                   "CANCELLED, LOST?, LOST, UNKNOWN)\n",
                   detail::quote_for_message(st).c_str());
      throw CLI::RuntimeError(exit_usage);
    }
    f.states.push_back(*parsed);
  }
  if (!a.node.empty()) f.node = check_node(a.node);
  for (const auto& l : a.labels) f.labels.push_back(check_label(l));
  f.command = a.grep;
  f.has_stderr_output = a.has_stderr;
  // A quick scan (pending tasks by their names, ended ones by the results index); the files of
  // the rows shown, and of the tasks that decide which rows those are, are read afterwards.
  auto live = scan_once(ctx, false, false);
  std::shared_ptr<const snapshot> s = live;
  posix_fs pfs;
  auto probe = stderr_probe(pfs, ctx.paths);
  std::size_t cap = static_cast<std::size_t>(a.limit > 0 ? a.limit : ctx.cfg.ui.max_tasks_display);
  task_sort order = a.sort == "seq" ? task_sort::seq_in_lane : task_sort::state_priority;
  read_selection read;
  task_selection sel;
  if (a.archived) {  // the archive's records are whole: nothing more to read
    s = archived_snapshot(ctx.paths, *live, [](const fs::path& file, std::size_t n) {
      std::fprintf(stderr, "leaseq: warning: %zu unreadable record(s) in %s\n", n,
                   sanitize_inline(file.string()).c_str());
    });
    sel = select_tasks(*s, f, order, cap, probe);
  } else {
    read = select_tasks_reading(ctx.paths, *live, f, order, cap, probe);
    sel.total = read.total;
    for (const task_view& t : read.tasks) sel.tasks.push_back(&t);
  }
  print_scan_problems(*live, read.unreadable);
  // Reasons are worked out here, never stored: the lease's state is only asked for (Slurm,
  // through its shared cache) when some PENDING task is listed.
  std::optional<lease_condition> cond;
  auto reason_of = [&](const task_view& t) -> std::optional<std::string> {
    if (t.state != task_state::pending) return std::nullopt;
    if (!cond) cond = read_lease_facts(ctx).condition;
    return waiting_reason(t, *s, *cond);
  };
  if (a.as_json) {
    json j;
    j["lease"] = ctx.lease_id;
    j["total"] = sel.total;
    j["tasks"] = json::array();
    for (const task_view* t : sel.tasks) j["tasks"].push_back(task_json(*t, reason_of(*t)));
    print_json(j);
    return;
  }
  if (!format.empty()) {
    std::string out;
    for (const task_view* t : sel.tasks) {
      json j = task_json(*t, reason_of(*t));
      j["lane"] = std::string(t->lane());
      for (const auto& p : format) {
        out += p.text;
        if (!p.field.empty()) out += format_value(j[p.field]);
      }
      out += '\n';
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return;
  }
  std::size_t archived = a.archived ? 0 : s->archived;
  if (sel.tasks.empty()) {
    std::printf(
        "no %stasks%s\n", a.archived ? "archived " : "",
        sel.total == 0 && s->tasks().empty() && archived == 0 ? " in this lease" : " match");
    if (archived > 0) std::printf("%zu archived (leaseq tasks --archived)\n", archived);
    return;
  }
  std::printf("%-8s %-9s %-16s %4s  %s\n", "ID", "STATE", "NODE", "EXIT", "COMMAND");
  std::size_t marked = 0;
  for (const task_view* t : sel.tasks) {
    auto code = t->exit_code();
    std::string node(t->lane());
    // A task that cannot run now says why ahead of its command, on its own row: still one
    // line per task for grep and awk.
    std::string command;
    if (auto why = reason_of(*t)) {
      command = "! (" + *why + ") ";
      ++marked;
    }
    if (auto attempt = attempt_text(*t)) command += "[" + *attempt + "] ";
    command += t->command();
    std::printf("%-8s %-9s %-16s %4s  %s\n", t->id.c_str(),
                std::string(to_string(t->state)).c_str(), node.c_str(),
                code ? std::to_string(*code).c_str() : "-", sanitize_inline(command).c_str());
  }
  if (marked > 0)
    std::printf("! %zu PENDING task(s) cannot run now: the reason is in parentheses\n", marked);
  if (sel.tasks.size() < sel.total)
    std::printf("showing %zu of %zu tasks (--limit N to see more)\n", sel.tasks.size(), sel.total);
  if (archived > 0) std::printf("%zu more archived (leaseq tasks --archived)\n", archived);
}

// The exit code `follow` ends with: the task's own, 128 + signal, 1 for LOST or no code.
int task_exit_status(const task_view& t) {
  if (t.result) {
    if (t.result->exit_code) return *t.result->exit_code & 0xff;
    if (t.result->signal) return 128 + *t.result->signal;
    return t.state == task_state::finished ? 0 : 1;
  }
  return 1;
}

std::string choose_running(const snapshot& s) {
  auto running = s.running_tasks();
  if (running.empty()) throw error("no RUNNING task to follow; name one: leaseq follow TASK");
  if (running.size() == 1) return running[0]->id;
  bool interactive = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
  std::FILE* out = interactive ? stdout : stderr;
  std::fprintf(out, "%zu tasks are RUNNING:\n", running.size());
  for (std::size_t i = 0; i < running.size(); ++i)
    std::fprintf(out, "  %zu) %s  %s  %s\n", i + 1, running[i]->id.c_str(),
                 running[i]->node.c_str(), sanitize_inline(running[i]->command()).c_str());
  if (!interactive) {
    std::fprintf(stderr, "leaseq: name one: leaseq follow TASK\n");
    throw CLI::RuntimeError(exit_usage);
  }
  std::fprintf(stdout, "follow which one? [1-%zu] ", running.size());
  std::fflush(stdout);
  char buf[64] = {};
  if (!std::fgets(buf, sizeof buf, stdin)) throw CLI::RuntimeError(exit_usage);
  std::string answer(buf);
  while (!answer.empty() && (answer.back() == '\n' || answer.back() == ' ')) answer.pop_back();
  for (std::size_t i = 0; i < running.size(); ++i)
    if (answer == std::to_string(i + 1) || answer == running[i]->id) return running[i]->id;
  std::fprintf(stderr, "leaseq: no such choice: %s\n", sanitize_inline(answer).c_str());
  throw CLI::RuntimeError(exit_usage);
}

void write_out(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
}

// follow's cadence. Logs are read as inotify reports a write to them, and at least every
// follow_log_poll: on NFS and FUSE other clients' writes raise no event, and
// LEASEQ_NO_INOTIFY=1 turns events off. The task's own files are looked at as they change,
// and at least every follow_state_poll.
constexpr std::chrono::milliseconds follow_log_poll{200};
constexpr std::chrono::milliseconds follow_state_poll{1000};
constexpr std::chrono::milliseconds follow_claim_poll{500};

// Sleeps until one of the watches reports a change or `ms` pass (only sleeps when none has a
// descriptor); returns a bit per watch that reported one.
unsigned wait_for_watches(std::initializer_list<detail::dir_watch*> watches,
                          std::chrono::milliseconds ms) {
  std::vector<pollfd> fds;
  for (auto* w : watches) fds.push_back({w->fd(), POLLIN, 0});  // -1 is ignored by poll
  (void)::poll(fds.data(), fds.size(), static_cast<int>(std::max<std::int64_t>(0, ms.count())));
  unsigned fired = 0, bit = 1;
  for (auto* w : watches) {
    if (w->drain()) fired |= bit;
    bit <<= 1;
  }
  return fired;
}

// The task follow follows, found by its own files (task_tracker): no scan of the lease, so
// following one task costs the same in a lease of any size. A task those files do not show
// (an id handed out whose file is not visible yet, one that only a heartbeat lists) is looked
// for by scans of the lease, as a snapshot shows it, until its files show it.
class followed_task {
 public:
  followed_task(const lease_context& ctx, std::string id)
      : ctx_(ctx), id_(std::move(id)), tracker_(ctx.paths, id_, ctx.cfg.ui.lost_confirm_s) {
    tracker_.poll();
    if (!tracker_.found()) scan();
  }

  void look() {
    tracker_.poll();
    if (!tracker_.found()) scan();
  }

  // Null while neither its files nor a scan show it.
  const task_view* view() const {
    if (tracker_.found()) return &tracker_.view();
    return snap_ ? snap_->find_task(id_) : nullptr;
  }

  // Seen PENDING, then nowhere for ui.lost_confirm_s (task_tracker::gone()).
  bool gone() const { return tracker_.found() && tracker_.gone(); }

  const task_view& view_or_throw() const {
    const task_view* t = view();
    if (!t) throw error("no task " + id_ + " in lease " + ctx_.lease_id);
    return *t;
  }

 private:
  void scan() {
    if (!store_) {
      store_options o;
      o.ui = ctx_.cfg.ui;
      store_ = std::make_unique<snapshot_store<>>(ctx_.paths, ctx_.lease_id, o);
    }
    snap_ = store_->refresh_all();
  }

  const lease_context& ctx_;
  std::string id_;
  task_tracker tracker_;
  std::unique_ptr<snapshot_store<>> store_;
  std::shared_ptr<const snapshot> snap_;
};

bool has_ended(const task_view& t) {
  return is_done(t.state) || t.state == task_state::lost;
}

void cmd_follow(const std::string& lease_opt, std::string task, bool err_only, bool both) {
  lease_context ctx = open_lease(lease_opt);
  if (task.empty()) task = choose_running(*scan_once(ctx, false, false));  // running ones only
  check_task_id(task);
  followed_task ft(ctx, task);
  // Just submitted, or on a lagging NFS client: give it a few seconds to show up.
  for (int i = 0; i < 20 && !ft.view(); ++i) {
    if (i == 0) std::fprintf(stderr, "leaseq: waiting for %s to appear\n", task.c_str());
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    ft.look();
  }
  const task_view* t = &ft.view_or_throw();
  // A task that is not claimed yet has no node and no logs: wait for its claim, which renames
  // it out of the shared lane.
  if (t->node.empty() && !has_ended(*t)) {
    std::fprintf(stderr, "leaseq: %s is %s; waiting for a runner to claim it\n", task.c_str(),
                 std::string(to_string(t->state)).c_str());
    detail::dir_watch claim({ctx.paths.inbox(std::string(any_lane))}, IN_MOVED_FROM | IN_DELETE,
                            {task + ".json"});
    while (t->node.empty() && !has_ended(*t)) {
      wait_for_watches({&claim}, follow_claim_poll);
      ft.look();
      if (ft.gone())
        throw error("task " + task + " is gone from lease " + ctx.lease_id +
                    ": its file left inbox/ without a claim or a result (removed?)");
      t = &ft.view_or_throw();
    }
  }
  std::string node = t->node;
  if (node.empty()) throw error("task " + task + " never ran on a node: no logs to follow");
  bool tty = ::isatty(STDOUT_FILENO);
  tail_options topt;
  topt.sanitize = tty;
  // A terminal shows a progress bar redrawn with \r in its last state (redrawn in place while
  // it runs); a pipe or a file gets the bytes as they are.
  topt.overwrite_cr = tty;
  std::vector<std::unique_ptr<tail_follower<>>> followers;
  if (!err_only || both)
    followers.push_back(
        std::make_unique<tail_follower<>>(ctx.paths.stdout_log(node, task), log_stream::out, topt));
  if (err_only || both)
    followers.push_back(
        std::make_unique<tail_follower<>>(ctx.paths.stderr_log(node, task), log_stream::err, topt));
  std::vector<std::string> log_names;
  for (const auto& f : followers) log_names.push_back(f->path().filename().string());
  // Writes to its logs (IN_MODIFY), and its claimed file leaving or its result arriving.
  detail::dir_watch log_watch({ctx.paths.logs(node)}, IN_MODIFY | detail::dir_watch::name_appears,
                              log_names);
  detail::dir_watch end_watch({ctx.paths.claimed(node), ctx.paths.done(node)},
                              IN_DELETE | IN_MOVED_FROM | detail::dir_watch::name_appears,
                              {task + ".json", task + ".result.json"});
  bool mid_line[2] = {false, false};
  int cursor_on = -1;  // the stream whose partial line the cursor ends (a terminal only)
  auto print = [&](const std::vector<tail_event>& events) {
    for (const auto& e : events) {
      int si = e.stream == log_stream::out ? 0 : 1;
      if (e.what != tail_event::kind::line) {
        if (e.what == tail_event::kind::appeared || e.what == tail_event::kind::waiting) continue;
        std::fflush(stdout);
        std::fprintf(stderr, "leaseq: %s %s: %s\n", task.c_str(),
                     std::string(to_string(e.stream)).c_str(), sanitize_inline(e.text).c_str());
        continue;
      }
      if (e.rewrites && mid_line[si]) {
        // The partial line shown is replaced: redrawn where the cursor is on it, else the new
        // state goes on a line of its own.
        write_out(cursor_on == si ? "\r\x1b[K" : "\n");
        mid_line[si] = false;
      } else if (tty && cursor_on >= 0 && cursor_on != si) {
        write_out("\n");  // the other stream's partial line keeps its own line
        mid_line[cursor_on] = false;
      }
      if (both && !mid_line[si]) write_out(si == 0 ? "[stdout] " : "[stderr] ");
      write_out(e.text);
      if (e.complete) write_out("\n");
      mid_line[si] = !e.complete;
      cursor_on = e.complete ? -1 : si;
    }
    std::fflush(stdout);
  };
  std::vector<tail_event> events;
  using steady = std::chrono::steady_clock;
  bool look_now = true;  // an ended task is known at once: no wait for the first state poll
  auto next_look = steady::now();
  for (;;) {
    events.clear();
    for (auto& f : followers) f->poll(events);
    print(events);
    auto now = steady::now();
    if (look_now || now >= next_look) {
      next_look = now + follow_state_poll;
      ft.look();
      t = ft.view();
      if (!t) throw error("task " + task + " is gone from lease " + ctx.lease_id);
      if (has_ended(*t)) break;
    }
    auto until_look = std::chrono::ceil<std::chrono::milliseconds>(next_look - steady::now());
    look_now =
        wait_for_watches({&log_watch, &end_watch}, std::min(follow_log_poll, until_look)) & 2u;
  }
  events.clear();
  for (auto& f : followers) f->drain(events);
  print(events);
  if (tty && (mid_line[0] || mid_line[1])) write_out("\n");  // raw output stays byte-exact
  std::fflush(stdout);
  if (t->state == task_state::lost)
    std::fprintf(stderr, "leaseq: %s is LOST: its claimed file vanished without a result\n",
                 task.c_str());
  else if (t->state != task_state::finished)
    std::fprintf(stderr, "leaseq: %s %s%s\n", task.c_str(),
                 std::string(to_string(t->state)).c_str(),
                 t->exit_code() ? fmt::format(" (exit code {})", *t->exit_code()).c_str() : "");
  int code = task_exit_status(*t);
  if (code != 0) throw CLI::RuntimeError(code);
}

void cmd_logs(const std::string& lease_opt, const std::string& task, bool err) {
  lease_context ctx = open_lease(lease_opt);
  check_task_id(task);
  auto s = scan_once(ctx, false, false);  // its node is all it needs: the lane says it
  std::string node;
  if (const task_view* t = s->find_task(task)) node = t->node;
  if (node.empty()) {
    // Not in the tree any more (or not visible): look for its log under every node.
    posix_fs pfs;
    auto r = pfs.list_dir(ctx.paths.logs_root());
    for (const auto& e : r.entries)
      if (is_valid_node(e.name) && fs::exists(ctx.paths.stdout_log(e.name, task))) node = e.name;
  }
  if (node.empty()) throw error("no logs for " + task + " in lease " + ctx.lease_id + " yet");
  fs::path path = err ? ctx.paths.stderr_log(node, task) : ctx.paths.stdout_log(node, task);
  detail::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) throw io_error("cannot open log", path.string(), errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    throw error(path.string() + " is not a regular file");
  bool tty = ::isatty(STDOUT_FILENO);
  // A terminal gets each line as it would have shown it: a progress bar redrawn with \r in
  // its last state, then sanitized. Anything else gets the file's bytes.
  cr_folder fold;
  stream_sanitizer san;
  std::string folded, clean;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = detail::read_retry(fd.get(), buf, sizeof buf);
    if (n < 0) throw io_error("cannot read log", path.string(), errno);
    if (n == 0) break;
    if (tty) {
      folded.clear();
      clean.clear();
      fold.feed(std::string_view(buf, static_cast<std::size_t>(n)), folded);
      san.feed(folded, clean);
      write_out(clean);
    } else {
      std::fwrite(buf, 1, static_cast<std::size_t>(n), stdout);
    }
  }
  if (tty) {
    folded.clear();
    clean.clear();
    fold.finish(folded);
    san.feed(folded, clean);
    san.finish(clean);
    write_out(clean);
  }
  std::fflush(stdout);
}

}  // namespace

std::string resolve_read_lease(const std::string& lease_opt) {
  return open_lease(lease_opt).lease_id;
}

void add_read_commands(CLI::App& app) {
  {
    auto json_flag = std::make_shared<bool>(false);
    auto lease = std::make_shared<std::string>();
    CLI::App* c = app.add_subcommand(
        "status",
        "Show a lease: its nodes with health and heartbeat age, and task counts by state");
    add_lease_option(*c, *lease);
    c->add_flag("--json", *json_flag,
                "Print JSON: {lease, kind, state, state_inferred, nodes: [{node, health, "
                "hb_age_s, running, pending, paused}], counts, archived, archived_counts}; counts "
                "include the tasks `leaseq clean` archived (archived: how many); "
                "state_inferred: \"heartbeats\" "
                "when fresh runner heartbeats show RUNNING a lease Slurm's cached state still "
                "calls PENDING, else null");
    c->callback([=] { cmd_status(*lease, *json_flag); });
  }
  {
    auto a = std::make_shared<tasks_args>();
    CLI::App* c = app.add_subcommand(
        "tasks", "List a lease's tasks: RUNNING first, then PENDING, FAILED, FINISHED");
    add_lease_option(*c, a->lease);
    c->add_option("--state", a->states,
                  "Only tasks in this state (PENDING, RUNNING, FINISHED, FAILED, CANCELLED, "
                  "LOST?, LOST); repeatable");
    c->add_option("--node", a->node, "Only tasks that run or ran on this node");
    c->add_option("--label", a->labels, "Only tasks with this label (repeatable: all of them)");
    c->add_option("--grep", a->grep, "Only tasks whose command contains TEXT (case-insensitive)");
    c->add_flag("--has-stderr", a->has_stderr,
                "Only tasks with stderr output (a non-empty .err log) or a non-zero exit");
    c->add_option("--sort", a->sort, "state (default: state priority, newest first) or seq")
        ->check(CLI::IsMember({"state", "seq"}));
    c->add_option("--limit", a->limit, "Show at most N tasks (default: ui.max_tasks_display)");
    c->add_flag("--archived", a->archived,
                "List the tasks `leaseq clean` archived instead of the live ones (the same "
                "filters and output)");
    c->add_flag(
        "--json", a->as_json,
        "Print JSON: {lease, total, tasks: [{id, seq, node, state, exit_code, signal, cmd, "
        "created, claimed, started, finished, attempt, unknown, reason, labels, priority, "
        "array_id, array_index}]}; unknown: why its file cannot be read, or null; reason: why "
        "a PENDING task cannot run now, or why an ended one ended so, or null");
    c->add_option("--format", a->format,
                  "One line per task from a template: '{id} {state} {exit_code}'. Fields: id "
                  "seq node lane state exit_code signal cmd created claimed started finished "
                  "attempt unknown reason labels priority array_id array_index; none is '-'; "
                  "{{ and }} are literal braces");
    c->callback([=] { cmd_tasks(*a); });
  }
  {
    auto lease = std::make_shared<std::string>();
    auto task = std::make_shared<std::string>();
    auto err = std::make_shared<bool>(false);
    auto both = std::make_shared<bool>(false);
    CLI::App* c = app.add_subcommand(
        "follow",
        "Follow a task's output until it ends, then exit with its own exit code (128+N when "
        "signal N ended it, 1 when LOST). Without TASK: the "
        "only RUNNING task; with several, choose one (exit 2 without a terminal). On a "
        "terminal the output is sanitized and a line redrawn with \\r (a progress bar) shows "
        "its last state; otherwise the bytes are passed as they are");
    c->add_option("task", *task, "Task id (T014)");
    add_lease_option(*c, *lease);
    auto* e = c->add_flag("--stderr", *err, "Follow stderr instead of stdout");
    c->add_flag("--both", *both, "Follow stdout and stderr merged, each line tagged")->excludes(e);
    c->callback([=] { cmd_follow(*lease, *task, *err, *both); });
  }
  {
    auto lease = std::make_shared<std::string>();
    auto task = std::make_shared<std::string>();
    auto err = std::make_shared<bool>(false);
    CLI::App* c = app.add_subcommand(
        "logs",
        "Print a task's whole stdout (or stderr) log. On a terminal it is sanitized and a line "
        "redrawn with \\r (a progress bar) shows its last state; otherwise byte-exact");
    c->add_option("task", *task, "Task id (T014)")->required();
    add_lease_option(*c, *lease);
    c->add_flag("--stderr", *err, "Print the stderr log");
    c->callback([=] { cmd_logs(*lease, *task, *err); });
  }
}

}  // namespace leaseq_cli
