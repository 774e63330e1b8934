#pragma once

// The Slurm adapter: lease state from squeue/scontrol, shared by every leaseq process of the
// user through a rate-limited cache file, so a dozen dashboards cost one squeue per interval.
//
//   <LEASEQ_HOME>/slurm_state.json   the cache (format below), written atomically
//   <LEASEQ_HOME>/slurm_state.lock   flock(2): held by the one process that refreshes
//
// One refresh = one batched `squeue -h -t all -j ID1,ID2,... -o <squeue_format>`, then
// `scontrol show job ID` for each id squeue no longer lists, then, for a job Slurm has
// forgotten (MinJobAge), the last state we saw, marked stale. Every command runs through
// run_command with a timeout, so a hanging Slurm never freezes the caller; its error and
// stderr are kept for display and the state is UNKNOWN.

#include <fcntl.h>
#include <sys/file.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "leaseq/clock.hpp"
#include "leaseq/command.hpp"
#include "leaseq/config.hpp"
#include "leaseq/detail/json_fields.hpp"
#include "leaseq/detail/posix.hpp"
#include "leaseq/detail/strings.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/lock.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/slurm/slurm_parse.hpp"

namespace leaseq {

// Which Slurm commands to run and how long to wait for each.
struct slurm_options {
  std::string squeue = "squeue";
  std::string scontrol = "scontrol";
  std::string sbatch = "sbatch";
  std::string scancel = "scancel";
  std::chrono::milliseconds timeout{10000};

  // Defaults, with LEASEQ_SLURM_TIMEOUT_S (seconds) overriding the timeout.
  static slurm_options from_env() {
    slurm_options o;
    if (const char* t = std::getenv("LEASEQ_SLURM_TIMEOUT_S"); t && *t) {
      char* end = nullptr;
      double s = std::strtod(t, &end);
      if (end && *end == '\0' && s > 0 && s <= 3600)
        o.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
    }
    return o;
  }
};

// The state of one Slurm lease as leaseq shows it.
struct slurm_lease_state {
  std::string id;
  std::string state = "UNKNOWN";  // Slurm's word, or UNKNOWN
  std::string reason;             // Slurm's reason ("Resources", "TimeLimit"); "" for None
  slurm_duration time_left;       // as of `seen`
  std::optional<std::int64_t> nodes;
  std::string nodelist;
  std::string source;      // "squeue", "scontrol", "last_seen", or "" when never seen
  double seen = 0;         // when Slurm last described the job
  bool stale = false;      // Slurm has forgotten the job: this is the last state seen
  std::string error;       // why the state is UNKNOWN: the command's error and its stderr
  std::string last_state;  // with an error: the last state seen before it, if any

  // Time left at `now`, counting down from what Slurm said at `seen` (the cache may be up to
  // slurm_refresh_s old). nullopt unless the job runs with a time limit.
  std::optional<std::int64_t> time_left_at(double now) const {
    if (state != "RUNNING" || stale || !time_left.has_seconds()) return std::nullopt;
    double left = static_cast<double>(time_left.seconds) - std::max(0.0, now - seen);
    return static_cast<std::int64_t>(std::max(0.0, left));
  }
  // The time-left column: "10:42", "UNLIMITED", or "-" when it does not apply.
  std::string time_left_text(double now) const {
    if (auto s = time_left_at(now)) return format_slurm_duration(*s);
    if (state == "RUNNING" && !stale && time_left.k == slurm_duration::kind::unlimited)
      return "UNLIMITED";
    return "-";
  }
};

inline json to_json(const slurm_duration& d) {
  if (d.has_seconds()) return d.seconds;
  return format_slurm_duration(d);
}

inline slurm_duration slurm_duration_from_json(const json& j) {
  if (j.is_number_integer()) return {slurm_duration::kind::seconds, j.get<std::int64_t>()};
  if (j.is_string()) return parse_slurm_duration(j.get<std::string>());
  return {};
}

inline void to_json(json& j, const slurm_lease_state& s) {
  j = json{{"id", s.id},
           {"state", s.state},
           {"reason", s.reason},
           {"time_left", to_json(s.time_left)},
           {"nodes", detail::or_null(s.nodes)},
           {"nodelist", s.nodelist},
           {"source", s.source},
           {"seen", s.seen},
           {"stale", s.stale}};
  if (!s.error.empty()) j["error"] = s.error;
  if (!s.last_state.empty()) j["last_state"] = s.last_state;
}

inline void from_json(const json& j, slurm_lease_state& s) {
  if (!j.is_object()) throw format_error(std::string("expected an object, got ") + j.type_name());
  s.id = check_lease_id(detail::req_string(j, "id"));
  s.state = detail::opt_string(j, "state").value_or("UNKNOWN");
  if (!is_slurm_state_word(s.state)) throw format_error("field 'state': not a Slurm state");
  s.reason = detail::opt_string(j, "reason").value_or("");
  if (auto it = j.find("time_left"); it != j.end()) s.time_left = slurm_duration_from_json(*it);
  s.nodes = detail::opt_int(j, "nodes");
  s.nodelist = detail::opt_string(j, "nodelist").value_or("");
  s.source = detail::opt_string(j, "source").value_or("");
  s.seen = detail::opt_number(j, "seen").value_or(0);
  s.stale = detail::bool_or(j, "stale", false);
  s.error = detail::opt_string(j, "error").value_or("");
  s.last_state = detail::opt_string(j, "last_state").value_or("");
}

// The cache file. `jobs` holds the last good observation of each job (kept across failed
// refreshes, so the last seen state survives); `error` is the last refresh's batch failure
// and `errors` the per-job ones.
struct slurm_cache {
  double refreshed = 0;            // when the last refresh finished; 0 forces the next one
  std::vector<std::string> asked;  // the ids that refresh covered
  std::string error;
  std::map<std::string, std::string> errors;
  std::map<std::string, slurm_lease_state> jobs;
};

inline void to_json(json& j, const slurm_cache& c) {
  j = json{{"version", 1}, {"refreshed", c.refreshed}, {"asked", c.asked}};
  j["error"] = c.error.empty() ? json(nullptr) : json(c.error);
  j["errors"] = c.errors;
  j["jobs"] = json::object();
  for (const auto& [id, s] : c.jobs) j["jobs"][id] = s;
}

// Never throws: entries that do not parse are dropped from the in-memory view (the file is
// rewritten only by a refresh, which then has fresher data for them anyway).
inline slurm_cache slurm_cache_from_json(const json& j) {
  slurm_cache c;
  if (!j.is_object()) return c;
  if (auto it = j.find("refreshed"); it != j.end() && it->is_number())
    c.refreshed = it->get<double>();
  if (auto it = j.find("asked"); it != j.end() && it->is_array())
    for (const auto& e : *it)
      if (e.is_string() && is_valid_lease_id(e.get<std::string>()))
        c.asked.push_back(e.get<std::string>());
  if (auto it = j.find("error"); it != j.end() && it->is_string()) c.error = it->get<std::string>();
  if (auto it = j.find("errors"); it != j.end() && it->is_object())
    for (const auto& [k, v] : it->items())
      if (v.is_string() && is_valid_lease_id(k)) c.errors[k] = v.get<std::string>();
  if (auto it = j.find("jobs"); it != j.end() && it->is_object())
    for (const auto& [k, v] : it->items()) {
      try {
        slurm_lease_state s;
        from_json(v, s);
        if (s.id == k) c.jobs[k] = std::move(s);
      } catch (const error&) {
      }
    }
  return c;
}

inline fs::path slurm_cache_path(const home_paths& home) {
  return home.root() / "slurm_state.json";
}
inline fs::path slurm_cache_lock_path(const home_paths& home) {
  return home.root() / "slurm_state.lock";
}

inline slurm_cache read_slurm_cache(const home_paths& home) {
  json_outcome r = read_json_tolerant(slurm_cache_path(home));
  if (!r.ok()) return {};
  return slurm_cache_from_json(*r.value);
}

namespace detail {

// A non-blocking flock(2): the refresher holds it; everyone else reads the cache. A lock file
// that cannot be opened (a home the reader may not write: another user's, a read-only archive)
// leaves nothing to share through: the caller counts as holding it and asks Slurm itself, and
// so does a filesystem that refuses locks (file_lock::unsupported: Lustre noflock, NFS without
// lockd), which would otherwise leave every caller waiting for a holder that does not exist.
class try_file_lock {
 public:
  explicit try_file_lock(const fs::path& path)
      : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) {}
  bool try_lock() {
    if (locked_) return true;
    if (!fd_) return locked_ = true;
    for (;;) {
      if (detail::flock_call(fd_.get(), LOCK_EX | LOCK_NB) == 0) return locked_ = true;
      if (file_lock::unsupported(errno)) return locked_ = true;
      if (errno != EINTR) return false;
    }
  }
  bool locked() const noexcept { return locked_; }

 private:
  unique_fd fd_;
  bool locked_ = false;
};

// "squeue: exit code 1: <first lines of stderr>", for display.
inline std::string command_failure(const command_output& r) {
  std::string msg = r.error.empty() ? std::string("failed") : r.error;
  std::string err(trim(r.err));
  if (err.size() > 400) err = err.substr(0, 400) + "...";
  if (!err.empty()) msg += ": " + err;
  return msg;
}

inline slurm_lease_state from_job(const slurm_job& j, const char* source, double now) {
  slurm_lease_state s;
  s.id = j.id;
  s.state = j.state;
  s.reason = j.reason == "None" ? "" : j.reason;
  s.time_left = j.time_left;
  s.nodes = j.nodes;
  s.nodelist = j.nodelist;
  s.source = source;
  s.seen = now;
  return s;
}

}  // namespace detail

// The production command runner; tests pass their own callable with the same signature.
struct default_command_runner {
  command_output operator()(const std::vector<std::string>& argv,
                            const command_options& opt) const {
    return run_command(argv, opt);
  }
};

// One refresh against Slurm, applied to `cache` (pure apart from `run`). Ids squeue does not
// list are asked of scontrol, except those already known to be forgotten.
template <typename Runner>
void refresh_slurm_cache(slurm_cache& cache, const std::vector<std::string>& ids, double now,
                         const slurm_options& opt, Runner&& run) {
  command_options copt;
  copt.timeout = opt.timeout;
  cache.asked = ids;
  cache.error.clear();
  cache.errors.clear();
  cache.refreshed = now;
  if (ids.empty()) return;

  command_output q = run({opt.squeue, "-h", "-t", "all", "-o", std::string(squeue_format), "-j",
                          detail::join(ids, ",")},
                         copt);
  // One unknown id alone makes squeue exit 1 with "Invalid job id specified"; that is an
  // answer (the job is gone), not a failure.
  bool answered = q.ok() || (!q.timed_out && !q.spawn_failed && says_invalid_job_id(q.err));
  if (!answered) {
    cache.error = detail::command_failure(q);
    return;
  }
  squeue_parse parsed = parse_squeue(q.out);
  std::vector<std::string> listed;
  for (const slurm_job& j : parsed.jobs) {
    if (std::find(ids.begin(), ids.end(), j.id) == ids.end()) continue;
    cache.jobs[j.id] = detail::from_job(j, "squeue", now);
    listed.push_back(j.id);
  }
  for (const std::string& id : ids) {
    if (std::find(listed.begin(), listed.end(), id) != listed.end()) continue;
    auto known = cache.jobs.find(id);
    if (known != cache.jobs.end() && known->second.stale) continue;  // Slurm will not remember
    command_output sc = run({opt.scontrol, "show", "job", id}, copt);
    if (sc.ok()) {
      if (auto j = parse_scontrol_job(sc.out); j && j->id == id) {
        cache.jobs[id] = detail::from_job(*j, "scontrol", now);
        continue;
      }
      cache.errors[id] = "scontrol show job " + id +
                         ": unexpected output: " + std::string(detail::trim(sc.out)).substr(0, 200);
      continue;
    }
    if (!sc.timed_out && !sc.spawn_failed && says_invalid_job_id(sc.err + sc.out)) {
      if (known != cache.jobs.end()) {
        known->second.stale = true;
        known->second.source = "last_seen";
      } else {
        cache.errors[id] = "Slurm does not know job " + id + " (" +
                           std::string(slurm_invalid_job_id) + ") and leaseq never saw it";
      }
      continue;
    }
    cache.errors[id] = detail::command_failure(sc);
  }
}

// What the cache says about each id (UNKNOWN with the error where it has none).
inline std::map<std::string, slurm_lease_state> slurm_states_from_cache(
    const slurm_cache& cache, const std::vector<std::string>& ids) {
  std::map<std::string, slurm_lease_state> out;
  for (const std::string& id : ids) {
    slurm_lease_state s;
    s.id = id;
    auto job = cache.jobs.find(id);
    bool asked = std::find(cache.asked.begin(), cache.asked.end(), id) != cache.asked.end();
    if (!cache.error.empty() && asked) {
      s.error = cache.error;
    } else if (auto e = cache.errors.find(id); e != cache.errors.end()) {
      s.error = e->second;
    } else if (job != cache.jobs.end()) {
      out[id] = job->second;
      continue;
    } else {
      s.error = "not queried yet";
    }
    if (job != cache.jobs.end()) {
      s.last_state = job->second.state;
      s.seen = job->second.seen;
    }
    out[id] = std::move(s);
  }
  return out;
}

// Lease states for these Slurm job ids, at most one Slurm refresh per `refresh_s` (floored at
// min_slurm_refresh_s) across every process sharing LEASEQ_HOME. Never throws for Slurm
// problems; waits at most about one command timeout for another process's refresh.
template <typename Clock = system_clock, typename Runner = default_command_runner>
std::map<std::string, slurm_lease_state> slurm_lease_states(
    const home_paths& home, std::vector<std::string> ids, double refresh_s,
    const slurm_options& opt = {}, const Clock& clock = {}, Runner&& run = {}) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  ids.erase(std::remove_if(
                ids.begin(), ids.end(),
                [](const std::string& id) { return !is_valid_lease_id(id) || is_local_lease(id); }),
            ids.end());
  if (ids.empty()) return {};
  refresh_s = std::max(refresh_s, min_slurm_refresh_s);
  home.ensure_root();

  auto covers = [&](const slurm_cache& c) {
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) {
      return std::find(c.asked.begin(), c.asked.end(), id) != c.asked.end();
    });
  };
  auto fresh = [&](const slurm_cache& c, double now) {
    return c.refreshed > 0 && c.refreshed <= now + 1 && now - c.refreshed < refresh_s && covers(c);
  };

  slurm_cache cache = read_slurm_cache(home);
  if (fresh(cache, clock.now())) return slurm_states_from_cache(cache, ids);

  detail::try_file_lock lock(slurm_cache_lock_path(home));
  if (!lock.try_lock()) {
    // Another process is asking Slurm right now. If the cache already knows these leases,
    // show that at once; otherwise wait (bounded) for its answer.
    if (covers(cache)) return slurm_states_from_cache(cache, ids);
    auto deadline = std::chrono::steady_clock::now() + opt.timeout * 2 + std::chrono::seconds(1);
    while (!lock.try_lock() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!lock.locked()) {
      auto out = slurm_states_from_cache(cache, ids);
      for (auto& [id, s] : out)
        if (s.error == "not queried yet") s.error = "another leaseq process is querying Slurm";
      return out;
    }
  }
  // Re-read under the lock: the previous holder may have just refreshed.
  cache = read_slurm_cache(home);
  if (fresh(cache, clock.now())) return slurm_states_from_cache(cache, ids);

  // Ask about every id the cache tracks, not only ours, so processes that list different
  // leases share one batched squeue instead of evicting each other's answers.
  // Only live jobs: a forgotten or never-seen id costs nothing once we stop asking.
  std::vector<std::string> all = ids;
  for (const auto& id : cache.asked) {
    auto job = cache.jobs.find(id);
    if (job != cache.jobs.end() && !job->second.stale &&
        std::find(all.begin(), all.end(), id) == all.end())
      all.push_back(id);
  }
  std::sort(all.begin(), all.end());
  refresh_slurm_cache(cache, all, clock.now(), opt, run);
  try {
    write_json_atomic(slurm_cache_path(home), json(cache));
  } catch (const error&) {
    // A read-only or full home: the answer is still good for this caller.
  }
  return slurm_states_from_cache(cache, ids);
}

// Forces the next slurm_lease_states call to ask Slurm (after sbatch or scancel), keeping the
// last seen states.
inline void invalidate_slurm_cache(const home_paths& home) {
  home.ensure_root();
  file_lock lock(slurm_cache_lock_path(home));
  json_outcome r = read_json_tolerant(slurm_cache_path(home));
  if (!r.ok()) return;
  slurm_cache c = slurm_cache_from_json(*r.value);
  c.refreshed = 0;
  write_json_atomic(slurm_cache_path(home), json(c));
}

}  // namespace leaseq
