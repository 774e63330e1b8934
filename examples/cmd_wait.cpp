// wait: block until tasks have ended. Reads only; writes nothing, so Ctrl-C leaves no trace.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <leaseq/leaseq.hpp>

#include "commands.hpp"

namespace leaseq_cli {

namespace {

using namespace leaseq;

std::atomic<bool> interrupted{false};

extern "C" void on_interrupt(int) {
  interrupted = true;
}

struct wait_args {
  std::vector<std::string> ids;
  bool all = false, as_json = false;
  std::string lease, timeout;
};

// How one waited task ended (or where it still is).
struct outcome {
  std::string id;
  task_state state = task_state::pending;
  std::optional<int> exit_code, signal;
  std::optional<std::string> reason;
  bool gone = false;  // task_tracker::gone(): removed without running; nothing more will come
};

bool ended(task_state s) {
  return is_done(s) || s == task_state::lost;
}
bool ended(const outcome& o) {
  return o.gone || ended(o.state);
}

outcome outcome_of(const task_result& r) {
  return {r.task.id, r.state, r.exit_code, r.signal, r.reason, false};
}

void sort_by_seq(std::vector<outcome>& v) {
  std::sort(v.begin(), v.end(), [](const outcome& a, const outcome& b) {
    return task_seq(a.id).value_or(0) < task_seq(b.id).value_or(0);
  });
}

// Listed tasks: only their own files are looked at (task_tracker), never the whole lease.
class listed_tasks {
 public:
  listed_tasks(const lease_paths& lease, const std::vector<std::string>& ids, double lost_confirm_s)
      : lease_(lease) {
    for (const auto& id : ids) tracked_.emplace(id, task_tracker(lease, id, lost_confirm_s));
  }

  // Ids no directory of the lease shows: unknown to it.
  std::vector<std::string> unknown() const {
    std::vector<std::string> out;
    for (const auto& [id, t] : tracked_)
      if (!locate_task(lease_, id)) out.push_back(id);
    return out;
  }

  void poll(double now = unix_now()) {
    std::vector<std::string> nodes = done_nodes(lease_);  // once for all of them
    for (auto& [id, t] : tracked_) t.poll(now, &nodes);
  }

  std::vector<outcome> outcomes() const {
    std::vector<outcome> out;
    for (const auto& [id, t] : tracked_) {
      const task_view& v = t.view();
      outcome o;
      if (v.result) o = outcome_of(*v.result);
      o.id = id;
      o.state = v.state;
      if (v.state == task_state::lost) o.reason = v.unknown_reason;
      if (t.gone()) {
        // Shown UNKNOWN (not FINISHED: wait exits 1), with why.
        o.gone = true;
        o.state = task_state::unknown;
        o.reason = "gone: its file left inbox/ without a claim or a result (removed?)";
      }
      out.push_back(std::move(o));
    }
    sort_by_seq(out);
    return out;
  }

 private:
  const lease_paths& lease_;
  std::map<std::string, task_tracker> tracked_;
};

// --all: every task of the lease, those submitted while waiting included, through the snapshot
// store (it keeps history, so a task that vanished while RUNNING turns LOST).
std::vector<outcome> all_outcomes(snapshot_store<>& store) {
  store.request_refresh();
  auto s = store.refresh();
  std::vector<outcome> out;
  for (const auto& t : s->tasks()) {
    outcome o;
    if (t.result) o = outcome_of(*t.result);
    o.id = t.id;
    o.state = t.state;
    out.push_back(std::move(o));
  }
  sort_by_seq(out);
  return out;
}

// "3 tasks: 2 FINISHED, 1 FAILED (T012)": counts by state, then the first ids that did not
// finish.
std::string summary(const std::vector<outcome>& all) {
  std::map<task_state, std::size_t> counts;
  std::vector<std::string> bad;
  for (const auto& o : all) {
    ++counts[o.state];
    if (o.state != task_state::finished) bad.push_back(o.id);
  }
  std::string s = fmt::format("{} task{}:", all.size(), all.size() == 1 ? "" : "s");
  bool first = true;
  // Ended first (finished, then how the others ended), then those still waited for.
  for (task_state state :
       {task_state::finished, task_state::failed, task_state::cancelled, task_state::lost,
        task_state::lost_maybe, task_state::running, task_state::pending, task_state::unknown}) {
    if (!counts.count(state)) continue;
    s += fmt::format("{} {} {}", first ? "" : ",", counts[state], to_string(state));
    first = false;
  }
  if (!bad.empty()) {
    std::size_t shown = std::min<std::size_t>(bad.size(), 10);
    std::vector<std::string> head(bad.begin(), bad.begin() + static_cast<std::ptrdiff_t>(shown));
    s += fmt::format(" ({}{})", fmt::join(head, " "), bad.size() > shown ? " ..." : "");
  }
  return s;
}

json outcomes_json(const std::string& lease_id, const std::vector<outcome>& all, bool timed_out) {
  json j;
  j["lease"] = lease_id;
  j["total"] = all.size();
  j["timed_out"] = timed_out;
  j["counts"] = json::object();
  j["tasks"] = json::array();
  bool ok = !timed_out;
  for (const auto& o : all) {
    std::string state(to_string(o.state));
    j["counts"][state] = j["counts"].value(state, 0) + 1;
    ok = ok && o.state == task_state::finished;
    auto opt = [](const auto& v) { return v ? json(*v) : json(nullptr); };
    j["tasks"].push_back({{"id", o.id},
                          {"state", state},
                          {"exit_code", opt(o.exit_code)},
                          {"signal", opt(o.signal)},
                          {"reason", opt(o.reason)}});
  }
  j["ok"] = ok;
  return j;
}

void cmd_wait(const wait_args& a) {
  if (a.all == !a.ids.empty())
    throw usage_error("wait: name the tasks (wait T012 T013) or pass --all");
  std::optional<double> timeout;
  std::set<std::string> ids;
  try {
    if (!a.timeout.empty()) timeout = static_cast<double>(parse_duration(a.timeout));
    for (const auto& id : a.ids) ids.insert(check_task_id(id));
  } catch (const error& e) {
    throw usage_error(e.what());
  }
  std::string lease_id;
  try {
    lease_id = resolve_read_lease(a.lease);
  } catch (const error& e) {
    throw usage_error(e.what());
  }
  home_paths home = home_paths::from_env();
  lease_paths lease(home, lease_id);

  store_options so;
  so.ui = load_config(home.config()).ui;
  listed_tasks listed(lease, std::vector<std::string>(ids.begin(), ids.end()),
                      so.ui.lost_confirm_s);
  if (auto unknown = listed.unknown(); !unknown.empty())
    throw usage_error(fmt::format("lease {} has no task {}", lease_id, fmt::join(unknown, ", ")));
  snapshot_store<> store(lease, lease_id, so);

  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);

  using clock = std::chrono::steady_clock;
  auto start = clock::now();
  double pause_s = 0.1;  // grows to 1 s: a long wait costs a stat per task a second, no more
  std::vector<outcome> now;
  bool timed_out = false;
  while (true) {
    if (a.all) {
      now = all_outcomes(store);
    } else {
      listed.poll();
      now = listed.outcomes();
    }
    if (std::all_of(now.begin(), now.end(), [](const outcome& o) { return ended(o); })) break;
    double waited = std::chrono::duration<double>(clock::now() - start).count();
    if (timeout && waited >= *timeout) {
      timed_out = true;
      break;
    }
    double nap = timeout ? std::min(pause_s, *timeout - waited) : pause_s;
    auto until = clock::now() + std::chrono::duration<double>(nap);
    while (clock::now() < until) {
      if (interrupted) throw CLI::RuntimeError(exit_interrupt);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (interrupted) throw CLI::RuntimeError(exit_interrupt);
    pause_s = std::min(1.0, pause_s * 1.5);
  }
  bool all_finished = std::all_of(now.begin(), now.end(),
                                  [](const outcome& o) { return o.state == task_state::finished; });
  if (a.as_json) {
    std::string text =
        outcomes_json(lease_id, now, timed_out).dump(2, ' ', true, json::error_handler_t::replace);
    std::printf("%s\n", text.c_str());
  } else {
    std::string line = summary(now);
    if (timed_out)
      line =
          "timed out after " + format_duration(static_cast<std::int64_t>(*timeout)) + ": " + line;
    std::printf("%s\n", sanitize_inline(line).c_str());
  }
  std::fflush(stdout);
  if (timed_out) throw CLI::RuntimeError(exit_timeout);
  if (!all_finished) throw CLI::RuntimeError(exit_error);
}

}  // namespace

void add_wait_command(CLI::App& app) {
  auto a = std::make_shared<wait_args>();
  CLI::App* c = app.add_subcommand(
      "wait",
      "Block until tasks have ended; exit 0 when all FINISHED, 1 when any did not (not a task's "
      "own code: follow keeps that), 124 on timeout, 2 for an unknown task, 130 on Ctrl-C; "
      "prints a one-line summary");
  c->add_option("task", a->ids, "Task ids (T012 T013 ...)");
  c->add_flag("--all", a->all, "Every task of the lease, those submitted while waiting included");
  add_lease_option(*c, a->lease);
  c->add_option("--timeout", a->timeout,
                "Give up after this long (30s, 5m, 1h30m, 2:00:00, 90 = seconds): exit 124");
  c->add_flag("--json", a->as_json,
              "Print JSON: {lease, total, timed_out, ok, counts: {STATE: n}, tasks: [{id, state, "
              "exit_code, signal, reason}]}");
  c->callback([a] { cmd_wait(*a); });
}

}  // namespace leaseq_cli
