#pragma once

// Leases: the list (index.json + each runs/<id>/lease.json + the lease's state, Slurm through
// the shared cache in slurm.hpp, the local lease from its runner's heartbeat), and the
// effects of creating (sbatch of the keeper, registration) and releasing (scancel) a Slurm lease.

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "leaseq/clock.hpp"
#include "leaseq/config.hpp"
#include "leaseq/detail/dir.hpp"
#include "leaseq/detail/json_fields.hpp"
#include "leaseq/detail/strings.hpp"
#include "leaseq/detail/tree_guard.hpp"
#include "leaseq/engine/seq.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/health.hpp"
#include "leaseq/index.hpp"
#include "leaseq/model.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/slurm/keeper.hpp"
#include "leaseq/slurm/slurm.hpp"

namespace leaseq {

// One line of `leaseq lease ls`.
struct lease_row {
  std::string id;
  std::string kind;  // "local" or "slurm"
  std::optional<std::string> name;
  std::string state = "UNKNOWN";
  std::string reason;     // Slurm's pending/end reason, or why the state is what it is
  std::string time_left;  // "10:42", "UNLIMITED", "-"
  std::optional<std::int64_t> nodes;
  std::optional<std::int64_t> gpus_per_node;
  // A Slurm lease's `--slots`: a count or "auto", as JSON text; "" when not given.
  std::string slots;
  bool is_default = false;
  bool stale = false;  // Slurm forgot the job: state is the last one seen
  double seen = 0;     // when the state was observed (Slurm leases)
  std::string error;   // why the state is UNKNOWN, or why lease.json could not be read
  double created = 0;
  // Not Slurm's word but leaseq's reading of the evidence on disk: "heartbeats" when fresh
  // runner heartbeats made a lease Slurm (still) calls PENDING show RUNNING.
  std::string state_inferred;
};

inline void to_json(json& j, const lease_row& r) {
  j = json{{"id", r.id},
           {"kind", r.kind},
           {"name", detail::or_null(r.name)},
           {"state", r.state},
           {"reason", r.reason.empty() ? json(nullptr) : json(r.reason)},
           {"time_left", r.time_left},
           {"nodes", detail::or_null(r.nodes)},
           {"gpus_per_node", detail::or_null(r.gpus_per_node)},
           {"slots", r.slots.empty() ? json(nullptr) : json::parse(r.slots)},
           {"default", r.is_default},
           {"stale", r.stale},
           {"seen", r.seen > 0 ? json(r.seen) : json(nullptr)},
           {"error", r.error.empty() ? json(nullptr) : json(r.error)},
           {"created", r.created},
           {"state_inferred", r.state_inferred.empty() ? json(nullptr) : json(r.state_inferred)}};
}

// Every heartbeat of a lease, parsed; unreadable ones are skipped (not visible yet).
inline std::vector<heartbeat> read_heartbeats(const lease_paths& lease) {
  std::vector<heartbeat> out;
  auto listing = detail::list_dir(lease.hb_dir().string());
  for (const auto& name : listing.names) {
    if (!detail::strip_suffix(name, ".json")) continue;
    json_outcome r = read_json_tolerant(lease.hb_dir() / name);
    if (!r.ok()) continue;
    try {
      heartbeat hb;
      from_json(*r.value, hb);
      out.push_back(std::move(hb));
    } catch (const error&) {
    }
  }
  return out;
}

// The local lease is RUNNING while a runner's heartbeat is OK.
inline void local_lease_state(lease_row& row, const lease_paths& lease, double now,
                              double hb_stale_s) {
  auto hbs = read_heartbeats(lease);
  row.nodes = static_cast<std::int64_t>(hbs.size());
  if (hbs.empty()) {
    row.state = "STOPPED";
    row.reason = "no runner heartbeat";
    return;
  }
  std::optional<heartbeat> best;
  for (const auto& hb : hbs)
    if (compute_health(hb, now, hb_stale_s) == node_health::ok) best = hb;
  if (best) {
    row.state = "RUNNING";
    row.gpus_per_node = best->gpus;
    return;
  }
  const heartbeat& any = hbs.front();
  node_health h = compute_health(any, now, hb_stale_s);
  row.state = h == node_health::down ? "STOPPED" : "STALE";
  row.reason = h == node_health::down
                   ? "runner stopped"
                   : fmt::format("runner heartbeat {:.0f}s old", heartbeat_age(any, now));
}

// Copies a Slurm state into a row.
inline void apply_slurm_state(lease_row& row, const slurm_lease_state& s, double now) {
  row.state = s.state;
  row.reason = s.reason;
  row.time_left = s.time_left_text(now);
  row.stale = s.stale;
  row.seen = s.seen;
  if (!s.error.empty()) row.error = s.error;
  if (s.stale) {
    double ago = std::max(0.0, now - s.seen);
    std::string seen = ago < 120      ? fmt::format("{:.0f}s", ago)
                       : ago < 7200   ? fmt::format("{:.0f}m", ago / 60)
                       : ago < 172800 ? fmt::format("{:.0f}h", ago / 3600)
                                      : fmt::format("{:.0f}d", ago / 86400);
    row.reason = (row.reason.empty() ? "" : row.reason + ", ") + "last seen " + seen + " ago";
  }
  if (!row.nodes && s.nodes) row.nodes = s.nodes;
}

// Slurm's word for a lease can be a refresh old (the shared cache asks at most every
// ui.slurm_refresh_s): right after `lease create` it still says PENDING while the lease's
// runners already heartbeat. Fresh heartbeats are evidence on disk that the lease runs: the
// row says RUNNING, with state_inferred = "heartbeats" and Slurm's word in the reason, until
// Slurm is asked again. Returns whether it did.
inline bool reconcile_with_heartbeats(lease_row& row, const lease_paths& lease, double now,
                                      double hb_stale_s) {
  if (row.kind != "slurm" ||
      (row.state != "PENDING" && row.state != "UNKNOWN" && row.state != "CONFIGURING"))
    return false;
  int fresh = 0;
  for (const auto& hb : read_heartbeats(lease))
    if (compute_health(hb, now, hb_stale_s) == node_health::ok) ++fresh;
  if (fresh == 0) return false;
  row.reason =
      fmt::format("inferred from {} fresh runner heartbeat(s); Slurm said {}", fresh, row.state);
  row.state = "RUNNING";
  row.state_inferred = "heartbeats";
  row.error.clear();
  return true;
}

struct lease_listing {
  std::vector<lease_row> rows;
  std::optional<std::string> default_lease;
  std::string index_error;  // index.json exists but is unusable
};

// Every row of a listing, as above (a row whose id is not a valid lease id has no tree to
// look at).
inline void reconcile_with_heartbeats(lease_listing& listing, const home_paths& home, double now,
                                      double hb_stale_s) {
  for (auto& row : listing.rows)
    if (is_valid_lease_id(row.id))
      reconcile_with_heartbeats(row, lease_paths(home, row.id), now, hb_stale_s);
}

// The index's leases as rows, in index order, with what each lease.json says (name, nodes,
// GPUs, slots); states are left for the caller (list_leases, the dashboard's quick listing).
inline lease_listing index_rows(const home_paths& home) {
  lease_listing out;
  index_read idx = read_index(home);
  out.index_error = idx.error;
  out.default_lease = idx.index.default_lease;
  for (const auto& e : idx.index.leases) {
    lease_row row;
    row.id = e.id;
    row.kind = e.kind;
    row.name = e.name;
    row.created = e.created;
    row.time_left = "-";
    row.is_default = idx.index.default_lease && *idx.index.default_lease == e.id;
    json_outcome lr = read_json_tolerant(home.lease_dir(e.id) / "lease.json");
    if (lr.ok()) {
      try {
        lease_record rec;
        from_json(*lr.value, rec);
        if (!row.name) row.name = rec.name;
        row.nodes = rec.nodes;
        row.gpus_per_node = rec.gpus_per_node;
        if (auto sl = rec.extra.find("slots"); sl != rec.extra.end())
          if ((sl->is_string() && *sl == "auto") || sl->is_number_unsigned())
            row.slots = sl->dump();
      } catch (const error& ex) {
        row.error = "lease.json: " + std::string(ex.what());
      }
    }
    out.rows.push_back(std::move(row));
  }
  return out;
}

// The ids of the Slurm leases among rows.
inline std::vector<std::string> slurm_lease_ids(const lease_listing& listing) {
  std::vector<std::string> ids;
  for (const auto& row : listing.rows)
    if (row.kind == "slurm") ids.push_back(row.id);
  return ids;
}

// Lists the leases in the index (in index order) with their state. Slurm is asked through
// the shared, rate-limited cache; ui.slurm_refresh_s and ui.hb_stale_s come from `cfg`. A
// Slurm lease whose runners heartbeat shows RUNNING even while the cache still says PENDING
// (reconcile_with_heartbeats).
template <typename Clock = system_clock, typename Runner = default_command_runner>
lease_listing list_leases(const home_paths& home, const ui_config& cfg,
                          const slurm_options& opt = {}, const Clock& clock = {},
                          Runner&& run = {}) {
  lease_listing out = index_rows(home);
  std::vector<std::string> slurm_ids = slurm_lease_ids(out);
  double now = clock.now();
  std::map<std::string, slurm_lease_state> states;
  if (!slurm_ids.empty())
    states = slurm_lease_states(home, slurm_ids, cfg.slurm_refresh_s, opt, clock,
                                std::forward<Runner>(run));
  for (auto& row : out.rows) {
    if (row.kind == "slurm") {
      if (auto it = states.find(row.id); it != states.end())
        apply_slurm_state(row, it->second, now);
    } else {
      local_lease_state(row, lease_paths(home, row.id), now, cfg.hb_stale_s);
    }
  }
  reconcile_with_heartbeats(out, home, now, cfg.hb_stale_s);
  return out;
}

// A Slurm lease about to be submitted: the keeper's content, where it is written, and the
// sbatch argv. What `lease create --dry-run` prints and the dashboard's form previews.
struct lease_plan {
  fs::path script_path;
  std::string script;
  std::vector<std::string> sbatch;
};

// Writes runs/<lease>/lease.json (creating the tree), refusing a symlinked runs/ or runs/<lease>
// (tree_guard.hpp): a planted link must not receive the record. Every lease.json writer calls
// this, the local lease's as well as the Slurm lease's.
inline void write_lease_json(const lease_paths& lease, const json& record) {
  ensure_lease_dir(lease, lease.root());
  prepare_ids(lease);
  write_json_atomic(lease.lease_json(), record);
}

// Writes lease.json only if there is none (link of a complete temp file: never replaces one,
// whatever a lagging cache told the caller about its existence). False: one existed.
inline bool create_lease_json(const lease_paths& lease, const json& record) {
  ensure_lease_dir(lease, lease.root());
  prepare_ids(lease);
  return create_file_exclusive(lease.lease_json(), json_file_text(record));
}

// Validates the request (throws error) and plans it. `leaseq_bin` is what the keeper runs on
// every node; paths are made absolute, since the job runs elsewhere.
inline lease_plan plan_slurm_lease(const home_paths& home, const lease_request& r,
                                   const fs::path& leaseq_bin, bool test_only = false,
                                   const slurm_options& opt = {}) {
  validate(r);
  fs::path root = fs::absolute(home.root()).lexically_normal();
  lease_plan p;
  p.script_path = root / "keepers" /
                  fmt::format("keeper-{}-{}.sh", static_cast<long long>(unix_now() * 1000),
                              static_cast<long>(::getpid()));
  p.script = keeper_script(fs::absolute(leaseq_bin), root, keeper_slots_arg(r));
  p.sbatch = sbatch_argv(r, p.script_path, root, test_only, opt.sbatch);
  return p;
}

// What sbatch did. `job_id` is set only when the lease was submitted and registered.
struct lease_submit {
  std::optional<std::string> job_id;
  command_output sbatch;  // out/err verbatim, for the user
  std::string error;      // leaseq's own explanation when it failed
};

// Writes the keeper, runs sbatch (argv, with a timeout) and, only on success, moves the keeper
// to runs/<jobid>/keeper.sh, writes runs/<jobid>/lease.json and registers the lease in
// index.json. A failed or --test-only submit leaves nothing behind. Slurm errors are returned,
// not thrown; filesystem errors throw.
template <typename Runner = default_command_runner>
lease_submit submit_slurm_lease(const home_paths& home, const lease_request& r,
                                const lease_plan& plan, bool test_only = false,
                                const slurm_options& opt = {}, Runner&& run = {}) {
  home_paths abs_home(fs::absolute(home.root()).lexically_normal());
  abs_home.ensure_root();
  // The keeper runs on every node of the job: never let a planted keepers/ link place it.
  (void)detail::open_tree_dir(abs_home.root(), plan.script_path.parent_path());
  write_file_atomic(plan.script_path, plan.script, 0700);
  command_options copt;
  copt.timeout = opt.timeout * 3;  // sbatch may wait on a busy slurmctld
  // sbatch hands its umask to the job: Slurm's own output file is then 0600 like ours.
  mode_t old_mask = ::umask(077);
  lease_submit out;
  out.sbatch = run(plan.sbatch, copt);
  ::umask(old_mask);
  auto drop_script = [&] {
    std::error_code ec;
    fs::remove(plan.script_path, ec);
  };
  if (test_only || !out.sbatch.ok()) {
    drop_script();
    if (out.sbatch.timed_out)
      out.error =
          "sbatch did not answer in time; a job may have been submitted anyway: check "
          "squeue --me";
    else if (!out.sbatch.ok())
      out.error = out.sbatch.error;
    return out;
  }
  auto job = parse_sbatch_parsable(out.sbatch.out);
  if (!job) {
    drop_script();
    out.error = "sbatch printed no job id: " + shell_quote(out.sbatch.out);
    return out;
  }
  // Slurm has its own copy of the script: keep ours next to the lease as its record.
  lease_paths lease(abs_home, *job);
  ensure_lease_dir(lease, lease.root());
  fs::path final_script = lease.root() / "keeper.sh";
  if (std::rename(plan.script_path.c_str(), final_script.c_str()) != 0)
    final_script = plan.script_path;

  lease_record rec;
  rec.id = *job;
  rec.kind = "slurm";
  rec.name = r.name;
  rec.created = unix_now();
  rec.nodes = r.nodes;
  rec.gpus_per_node = r.gpus_per_node;
  rec.partition = r.partition;
  rec.qos = r.qos;
  rec.account = r.account;
  rec.constraint = r.constraint;
  rec.reservation = r.reservation;
  rec.time = r.time;
  rec.extra_args = r.extra_args;
  rec.sbatch = plan.sbatch;
  rec.keeper = final_script.string();
  if (!r.slots.empty()) {  // "slots": a count, or "auto" (protocol version 3)
    auto n = parse_slots(r.slots);
    rec.extra["slots"] = n ? json(*n) : json("auto");
  }
  write_lease_json(lease, json(rec));
  register_lease(abs_home, {rec.id, "slurm", rec.name, rec.created, json::object()});
  invalidate_slurm_cache(abs_home);
  out.job_id = job;
  return out;
}

// Throws error unless `id` is a registered Slurm lease (what release needs).
inline void check_releasable(const home_paths& home, const std::string& id) {
  check_lease_id(id);
  index_read idx = read_index(home);
  if (!idx.error.empty()) throw error(idx.error);
  const index_entry* e = idx.index.find(id);
  if (!e)
    throw error("unknown lease " + detail::quote_for_message(id) + " (see `leaseq lease ls`)");
  if (e->kind != "slurm")
    throw error("lease " + id +
                " is not a Slurm lease; stop a local runner with `leaseq lease local stop`");
}

// scancel of a registered Slurm lease; the runners get SIGTERM from Slurm and stop their
// tasks. Throws error for an unknown or local lease; returns scancel's output.
template <typename Runner = default_command_runner>
command_output release_slurm_lease(const home_paths& home, const std::string& id,
                                   const slurm_options& opt = {}, Runner&& run = {}) {
  check_releasable(home, id);
  command_options copt;
  copt.timeout = opt.timeout;
  command_output r = run({opt.scancel, id}, copt);
  if (r.ok()) invalidate_slurm_cache(home);
  return r;
}

}  // namespace leaseq
