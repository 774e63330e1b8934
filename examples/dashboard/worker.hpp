#pragma once

// The dashboard's I/O, off the UI thread. Six threads, so that no effect waits behind a
// slower one:
//   scan    the snapshot store (cadence from the store: 2 s heartbeats, 2-5 s task dirs) and
//           paged reads of log files;
//   logs    the live log pane (log_follow.hpp): woken by inotify, else polled every 250 ms;
//   slurm   the lease list (index + lease.json + Slurm state through the shared cache), every
//           ui.refresh_s; a hanging squeue delays only this list;
//   action  control files, retries, `lease use`, and sbatch / scancel (through this program's
//           own `lease create` / `lease release`, so the dashboard does exactly what the CLI does);
//   load    the full first scan of a big lease, while the scan thread already serves a quick
//           one (results from the results index, pending tasks by name);
//   derive  filtering and sorting of a big task table (req_derive), newest request only.
// Requests come in with send(); results go out as messages that take() hands to the loop.

#include "dashboard/derive.hpp"
#include "dashboard/log_follow.hpp"
#include "dashboard/model.hpp"
#include "dashboard/wake_signal.hpp"

#include <leaseq/command.hpp>
#include <leaseq/config.hpp>
#include <leaseq/engine/control.hpp>
#include <leaseq/engine/submit.hpp>
#include <leaseq/fs.hpp>
#include <leaseq/index.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/sanitize.hpp>
#include <leaseq/slurm/leases.hpp>
#include <leaseq/slurm/slurm.hpp>
#include <leaseq/store.hpp>
#include <leaseq/tail.hpp>
#include <leaseq/task_file.hpp>
#include <leaseq/task_filter.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace leaseq_dash {

// One thread running posted jobs in order, plus an optional periodic function run after each
// wake-up: a job, `period` gone by, or (when given) the descriptor wait_fd() returns became
// readable (the periodic function must then read it).
class job_thread {
 public:
  explicit job_thread(std::function<void()> periodic = {},
                      std::chrono::milliseconds period = std::chrono::milliseconds(100),
                      std::function<int()> wait_fd = {})
      : periodic_(std::move(periodic)),
        period_(period),
        wait_fd_(std::move(wait_fd)),
        thread_([this] { loop(); }) {}
  job_thread(const job_thread&) = delete;
  job_thread& operator=(const job_thread&) = delete;
  ~job_thread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify();
    thread_.join();
  }

  void post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(std::move(job));
    }
    wake_.notify();
  }

 private:
  void loop() {
    for (;;) {
      wake_.wait(wait_fd_ ? wait_fd_() : -1, static_cast<int>(period_.count()));
      std::deque<std::function<void()>> jobs;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
        jobs.swap(jobs_);
      }
      for (auto& j : jobs) run_guarded(j);
      if (periodic_) run_guarded(periodic_);
    }
  }
  static void run_guarded(const std::function<void()>& f) {
    try {
      f();
    } catch (...) {
      // Each job reports its own errors as messages; nothing may end the thread.
    }
  }

  std::function<void()> periodic_;
  std::chrono::milliseconds period_;
  std::function<int()> wait_fd_;
  wake_signal wake_;
  std::mutex mu_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once everything above exists
};

// What a terminal shows of a line rewritten with \r (a progress bar): the text after the last
// \r; the \r that end the line are the first half of a \r\n.
inline std::string last_cr_state(std::string line) {
  while (!line.empty() && line.back() == '\r') line.pop_back();
  auto cr = line.rfind('\r');
  return cr == std::string::npos ? line : line.substr(cr + 1);
}

// A lease with more tasks than this opens with a quick scan first (the full one follows).
inline constexpr std::size_t quick_first_scan_min_tasks = 20000;

// The store the dashboard scans with. quick: counts without reading what need not be read
// (store_options::results_from_index, pending_unread): the first frame of a million-task lease
// in about two seconds, where reading every file takes ten times that.
inline leaseq::store_options dashboard_store_options(const leaseq::ui_config& ui, bool quick) {
  leaseq::store_options o;
  o.ui = ui;
  o.results_from_index = quick;
  o.pending_unread = quick;
  return o;
}

class worker {
 public:
  // log_poll_s: how often followed log files are read when inotify says nothing;
  // quick_scan_min_tasks: from how many tasks a lease opens with a quick scan first.
  worker(std::string home, leaseq::config cfg, std::string self_binary, double log_poll_s = 0.25,
         std::size_t quick_scan_min_tasks = quick_first_scan_min_tasks)
      : home_(std::move(home)),
        cfg_(std::move(cfg)),
        self_(std::move(self_binary)),
        quick_min_(quick_scan_min_tasks),
        follow_(static_cast<std::size_t>(std::max<std::int64_t>(1, cfg_.ui.log_tail_lines)),
                log_poll_s),
        scan_([this] { scan_tick(); }),
        slurm_([this] { slurm_tick(); }),
        logs_([this] { log_tick(); }, std::chrono::milliseconds(250),
              [this] { return follow_.wake_fd(); }),
        action_(),
        load_(),
        derive_() {}

  void send(request r) {
    std::visit([this](auto&& x) { dispatch(std::move(x)); }, std::move(r));
  }

  std::vector<message> take() {
    ui_wake_.clear();
    std::lock_guard<std::mutex> lock(out_mu_);
    return std::exchange(out_, {});
  }

  // Readable while messages wait for take(): the UI loop polls it next to the terminal.
  int wake_fd() const { return ui_wake_.fd(); }

 private:
  void emit(message m) {
    {
      std::lock_guard<std::mutex> lock(out_mu_);
      out_.push_back(std::move(m));
    }
    ui_wake_.notify();
  }
  void say(bool ok, std::string text) { emit(msg_action{ok, std::move(text)}); }

  leaseq::home_paths home() const { return leaseq::home_paths(home_); }

  // ---- dispatch --------------------------------------------------------------------------

  void dispatch(req_open_lease r) {
    {
      std::lock_guard<std::mutex> lock(lease_mu_);
      requested_lease_ = r.lease_id;
    }
    scan_.post([this, id = r.lease_id] {
      ++open_seq_;
      store_.reset();
      if (!leaseq::is_valid_lease_id(id)) return;
      leaseq::lease_paths lp(home(), id);
      stderr_seen_.clear();
      lease_id_ = id;
      last_gen_ = 0;
      force_scan_ = true;
      partial_ = false;
      // A quick scan first; a small lease is then scanned in full at once, a big one on the
      // load thread while the quick store serves (its snapshots marked partial).
      auto quick = std::make_unique<leaseq::snapshot_store<>>(
          lp, id, dashboard_store_options(cfg_.ui, true));
      auto first = quick->refresh();
      if (first->tasks().size() < quick_min_) {
        store_ = std::make_unique<leaseq::snapshot_store<>>(
            lp, id, dashboard_store_options(cfg_.ui, false));
        return;
      }
      store_ = std::move(quick);
      partial_ = true;
      last_gen_ = first->generation;
      force_scan_ = false;
      emit(msg_snapshot{first, true});
      load_.post([this, lp, id, seq = open_seq_.load()] {
        // shared_ptr: std::function needs a copyable job.
        auto full = std::make_shared<std::unique_ptr<leaseq::snapshot_store<>>>(
            std::make_unique<leaseq::snapshot_store<>>(lp, id,
                                                       dashboard_store_options(cfg_.ui, false)));
        (*full)->refresh();
        scan_.post([this, full, seq] {
          if (seq != open_seq_) return;  // another lease opened meanwhile
          store_ = std::move(*full);
          partial_ = false;
          last_gen_ = 0;
          force_scan_ = true;
        });
      });
    });
  }
  void dispatch(req_derive r) {
    std::uint64_t seq = ++derive_seq_;
    derive_.post([this, r = std::move(r), seq] {
      auto cancelled = [this, seq] { return derive_seq_ != seq; };
      if (cancelled()) return;
      auto rows = derive_rows(r.from, r.stderr_ids, cancelled);
      if (rows) emit(msg_rows{r.from, std::move(*rows)});
    });
  }
  void dispatch(req_refresh) {
    scan_.post([this] {
      force_scan_ = true;
      force_quick_ = true;
      next_quick_ = 0;
    });
    // The lease list is read again now; Slurm itself is still asked at most every
    // ui.slurm_refresh_s (the shared cache), however often `r` is pressed.
    slurm_.post([this] { force_leases_ = true; });
  }
  void dispatch(req_set_paused r) {
    scan_.post([this, p = r.paused] { paused_ = p; });
    slurm_.post([this, p = r.paused] { slurm_paused_ = p; });
  }
  void dispatch(req_stderr_probe r) {
    scan_.post([this, on = r.on] {
      stderr_probe_ = on;
      if (on && store_) emit_stderr(*store_->latest());
    });
  }
  void dispatch(req_read_rows r) {
    // On the scan thread, which reads the lease anyway: a few dozen small files.
    scan_.post([this, r = std::move(r)] {
      if (!leaseq::is_valid_lease_id(r.lease_id)) return;
      leaseq::lease_paths lp(home(), r.lease_id);
      msg_rows_read out{r.lease_id, {}};
      for (const auto& t : r.rows)
        if (auto v = leaseq::read_view_in_full(lp, t)) out.rows.push_back(std::move(*v));
      if (!out.rows.empty()) emit(std::move(out));
    });
  }
  void dispatch(req_archived) {
    scan_.post([this] {
      if (!store_) return;
      try {
        emit(msg_archived{
            leaseq::archived_snapshot(leaseq::lease_paths(home(), lease_id_), *store_->latest())});
      } catch (const std::exception& e) {
        say(false, std::string("archived tasks: ") + e.what());
      }
    });
  }
  void dispatch(req_follow r) {
    logs_.post([this, t = std::move(r.target)] {
      if (auto m = follow_.set(t)) emit(std::move(*m));
    });
  }
  void dispatch(req_page r) {
    scan_.post([this, r] { read_page(r); });
  }
  void dispatch(req_cancel r) {
    action_.post([this, id = r.task, lease = lease_id_snapshot()] {
      try {
        leaseq::lease_paths lp(home(), lease);
        std::optional<std::string> fallback;
        if (leaseq::is_local_lease(lease)) fallback = lease.substr(6);
        auto out = leaseq::cancel_task(lp, id, fallback);
        std::string nodes;
        for (const auto& n : out.nodes) nodes += (nodes.empty() ? "" : ",") + n;
        say(true, "cancel sent for " + id + " (control/" + nodes + "/cancel_" + id + "_*.json)");
      } catch (const std::exception& e) {
        say(false, "cancel " + id + ": " + e.what());
      }
      scan_.post([this] { force_scan_ = true; });
    });
  }
  void dispatch(req_retry r) {
    action_.post([this, id = r.task, lease = lease_id_snapshot()] {
      try {
        leaseq::lease_paths lp(home(), lease);
        std::string key = "retry-" + id + "-" + leaseq::detail::random_uuid();
        auto out = leaseq::retry_task(lp, lease, id, key);
        say(true, "retried " + id + " as " + out.id);
      } catch (const std::exception& e) {
        say(false, "retry " + id + ": " + e.what());
      }
      scan_.post([this] { force_scan_ = true; });
    });
  }
  void dispatch(req_lane r) {
    action_.post([this, r, lease = lease_id_snapshot()] {
      try {
        leaseq::lease_paths lp(home(), lease);
        auto p = r.pause ? leaseq::write_pause(lp, r.node) : leaseq::write_resume(lp, r.node);
        say(true, std::string(r.pause ? "pause" : "resume") + " sent to " + r.node + " (" +
                      p.filename().string() + ")");
      } catch (const std::exception& e) {
        say(false, std::string(r.pause ? "pause " : "resume ") + r.node + ": " + e.what());
      }
    });
  }
  void dispatch(req_set_default r) {
    action_.post([this, id = r.lease_id] {
      try {
        leaseq::update_index(home(), [&](leaseq::lease_index& idx) {
          if (!idx.find(id)) throw leaseq::error("unknown lease " + id);
          idx.default_lease = id;
        });
        say(true, "default lease: " + id);
      } catch (const std::exception& e) {
        say(false, "lease use " + id + ": " + e.what());
      }
      slurm_.post([this] { force_leases_ = true; });
    });
  }
  void dispatch(req_release r) {
    action_.post([this, id = r.lease_id] {
      auto res = run_self({"lease", "release", id, "--yes"});
      if (res.ok())
        say(true, "released " + id + " (scancel sent)");
      else
        say(false, "release " + id + ": " + failure(res));
      slurm_.post([this] { force_leases_ = true; });
    });
  }
  void dispatch(req_create r) {
    action_.post([this, r] {
      std::vector<std::string> a{"lease",  "create",  "--nodes", std::to_string(r.req.nodes),
                                 "--time", r.req.time};
      auto opt = [&](const char* flag, const std::optional<std::string>& v) {
        if (v) {
          a.push_back(flag);
          a.push_back(*v);
        }
      };
      opt("--name", r.req.name);
      opt("--partition", r.req.partition);
      opt("--qos", r.req.qos);
      opt("--account", r.req.account);
      opt("--constraint", r.req.constraint);
      opt("--reservation", r.req.reservation);
      a.push_back("--gpus-per-node");
      a.push_back(std::to_string(r.req.gpus_per_node));
      if (!r.req.slots.empty()) a.push_back("--slots=" + r.req.slots);
      for (const auto& x : r.req.extra_args) a.push_back("--sbatch-arg=" + x);
      if (r.test_only) a.push_back("--test-only");
      auto res = run_self(a);
      if (r.test_only) {
        std::string text = res.out + res.err;
        while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
        emit(msg_test_only{res.ok(), res.ok() ? text : failure(res)});
        return;
      }
      std::string id = res.out;
      while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
      emit(msg_created{res.ok() && !id.empty(), res.ok() ? id : failure(res)});
      slurm_.post([this] { force_leases_ = true; });
    });
  }

  std::string lease_id_snapshot() {
    std::lock_guard<std::mutex> lock(lease_mu_);
    return requested_lease_;
  }

  leaseq::command_output run_self(const std::vector<std::string>& args) {
    std::vector<std::string> argv{self_};
    argv.insert(argv.end(), args.begin(), args.end());
    leaseq::command_options o;
    o.timeout = std::chrono::seconds(120);
    return leaseq::run_command(argv, o);
  }
  static std::string failure(const leaseq::command_output& r) {
    std::string t = r.err.empty() ? r.out : r.err;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    if (t.empty()) t = r.error.empty() ? "exit code " + std::to_string(r.exit_code) : r.error;
    return t;
  }

  // ---- scan thread -----------------------------------------------------------------------

  void scan_tick() {
    double now = leaseq::unix_now();
    if (store_ && (force_scan_ || (!paused_ && store_->due(now)))) {
      if (force_scan_) store_->request_refresh();
      force_scan_ = false;
      auto s = store_->refresh();
      if (s->generation != last_gen_) {
        last_gen_ = s->generation;
        emit(msg_snapshot{s, partial_});
        if (stderr_probe_) emit_stderr(*s);
      }
    }
    quick_leases_tick(now);
  }

  // ---- log thread ------------------------------------------------------------------------

  void log_tick() {
    if (auto m = follow_.tick(leaseq::unix_now())) emit(std::move(*m));
  }

  // The `e` filter's set. An ended task's .err does not change until it runs again, which
  // writes a new result: it is looked at once per result, so a snapshot costs a stat per
  // running task, not one per task of the lease.
  void emit_stderr(const leaseq::snapshot& s) {
    msg_stderr out;
    leaseq::lease_paths lp(home(), lease_id_);
    auto has_stderr = leaseq::stderr_probe(fs_, lp);
    for (const auto& t : s.tasks()) {
      std::optional<double> ended;
      if (t.result && t.result->finished) ended = t.result->finished;
      auto known = ended ? stderr_seen_.find(t.id) : stderr_seen_.end();
      bool has = false;
      if (known != stderr_seen_.end() && known->second.node == t.node &&
          known->second.finished == *ended) {
        has = known->second.has;
      } else {
        has = has_stderr(t);
        if (ended) stderr_seen_[t.id] = {t.node, *ended, has};
      }
      if (has) out.ids.insert(t.id);
    }
    emit(std::move(out));
  }

  void read_page(const req_page& r) {
    msg_page out;
    out.gen = r.gen;
    if (!reader_ || reader_path_ != r.path) {
      reader_ = std::make_unique<leaseq::paged_reader>(r.path);
      reader_path_ = r.path;
    } else {
      reader_->reload();
    }
    if (!reader_->error().empty()) {
      out.error = reader_->error();
      emit(std::move(out));
      return;
    }
    std::uint64_t first = r.first;
    if (r.find) {
      // Matched as the page shows the line: its last \r state, sanitized.
      auto shown = [&](std::string_view l) {
        return leaseq::detail::contains_ci(leaseq::sanitize_inline(last_cr_state(std::string(l))),
                                           r.find->text);
      };
      auto res = reader_->find(shown, r.find->from, r.find->forward);
      out.searched = true;
      out.match = res.line;
      out.find_next = res.next;
      out.searched_all = res.searched_all;
      // A match off this page goes to the top of the page shown; near the end of the file,
      // the page is the last full one (the match further down on it).
      auto count = static_cast<std::uint64_t>(std::max(1, r.count));
      if (res.line && (*res.line < first || *res.line >= first + count)) {
        first = *res.line;
        std::uint64_t got = reader_->lines(first, static_cast<std::size_t>(count)).size();
        if (got < count) first = first + got > count ? first + got - count : 0;
      }
    }
    bool want_end = first >= UINT64_MAX / 4;
    if (want_end) {
      std::uint64_t total = reader_->line_count();
      first = total > static_cast<std::uint64_t>(r.count) ? total - r.count : 0;
      out.total = total;
    }
    auto lines = reader_->lines(first, static_cast<std::size_t>(std::max(0, r.count)));
    if (lines.empty() && first > 0 && !want_end) {
      std::uint64_t total = reader_->line_count();
      first = total > static_cast<std::uint64_t>(r.count) ? total - r.count : 0;
      lines = reader_->lines(first, static_cast<std::size_t>(std::max(0, r.count)));
      out.total = total;
    }
    out.first = first;
    for (auto& l : lines) out.lines.push_back(leaseq::sanitize_inline(last_cr_state(l)));
    emit(out);  // the page first, so a huge file shows at once
    if (!out.total) {
      msg_page counted = out;
      counted.total = reader_->line_count();
      emit(std::move(counted));
    }
  }

  // ---- slurm thread ----------------------------------------------------------------------

  void slurm_tick() {
    double now = leaseq::unix_now();
    if (!force_leases_ && (slurm_paused_ || now < next_leases_)) return;
    force_leases_ = false;
    next_leases_ = now + cfg_.ui.refresh_s;
    auto listing = leaseq::list_leases(home(), cfg_.ui, leaseq::slurm_options::from_env());
    emit(msg_leases{std::move(listing), false});
  }

  // On the scan thread, which never waits on Slurm: the lease list as the disk and the shared
  // Slurm cache have it. A hanging squeue holds up only the slurm thread's listing; until it
  // answers, local leases and the last Slurm states seen are on screen. (list_leases without
  // its Slurm call: the same index, lease.json and heartbeat reads.)
  void quick_leases_tick(double now) {
    if (now < next_quick_ || (paused_ && !force_quick_)) return;
    force_quick_ = false;
    next_quick_ = now + cfg_.ui.refresh_s;
    auto h = home();
    leaseq::lease_listing out = leaseq::index_rows(h);
    std::vector<std::string> slurm_ids = leaseq::slurm_lease_ids(out);
    std::set<std::string> asking;
    std::map<std::string, leaseq::slurm_lease_state> states;
    if (!slurm_ids.empty())
      states = leaseq::slurm_states_from_cache(leaseq::read_slurm_cache(h), slurm_ids);
    for (auto& row : out.rows) {
      if (row.kind != "slurm") {
        leaseq::local_lease_state(row, leaseq::lease_paths(h, row.id), now, cfg_.ui.hb_stale_s);
        continue;
      }
      auto it = states.find(row.id);
      if (it == states.end() || (it->second.state.empty() || it->second.state == "UNKNOWN")) {
        asking.insert(row.id);
        row.state = "UNKNOWN";
        row.reason = "asking Slurm...";
        if (it != states.end() && !it->second.last_state.empty())
          row.reason = "last seen " + it->second.last_state + "; asking Slurm...";
        continue;
      }
      leaseq::apply_slurm_state(row, it->second, now);
    }
    leaseq::reconcile_with_heartbeats(out, h, now, cfg_.ui.hb_stale_s);
    for (const auto& row : out.rows)
      if (row.state == "RUNNING") asking.erase(row.id);
    emit(msg_leases{std::move(out), true, std::move(asking)});
  }

  std::string home_;
  leaseq::config cfg_;
  std::string self_;
  std::size_t quick_min_;

  std::mutex out_mu_;
  std::vector<message> out_;
  wake_signal ui_wake_;
  std::mutex lease_mu_;
  std::string requested_lease_;

  // scan thread only
  leaseq::posix_fs fs_;
  std::unique_ptr<leaseq::snapshot_store<>> store_;
  std::string lease_id_;
  std::uint64_t last_gen_ = 0;
  bool partial_ = false;  // store_ is the quick one (the full first scan not done yet)
  std::atomic<std::uint64_t> open_seq_{0};  // lease opens, so a late full store is dropped
  bool force_scan_ = false, paused_ = false, stderr_probe_ = false, force_quick_ = true;
  double next_quick_ = 0;
  std::unique_ptr<leaseq::paged_reader> reader_;
  std::string reader_path_;
  struct stderr_seen {
    std::string node;
    double finished = 0;
    bool has = false;
  };
  std::unordered_map<std::string, stderr_seen> stderr_seen_;

  // slurm thread only
  bool force_leases_ = true, slurm_paused_ = false;
  double next_leases_ = 0;

  // log thread only
  log_follow follow_;

  // derive thread: the newest req_derive (older ones see it and give up)
  std::atomic<std::uint64_t> derive_seq_{0};

  // Last: the threads start once every member above exists, and stop first.
  job_thread scan_, slurm_, logs_, action_, load_, derive_;
};

}  // namespace leaseq_dash
