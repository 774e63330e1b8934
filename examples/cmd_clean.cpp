// clean and lease forget: the commands that make a lease, or the list of leases, smaller.
// clean moves ended tasks into the lease's archive (archive.hpp); forget drops an ended lease
// from index.json and leaves its tree on disk.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>
#include <leaseq/leaseq.hpp>
#include <leaseq/trust.hpp>

#include "commands.hpp"

namespace leaseq_cli {

namespace {

using namespace leaseq;

struct clean_options {
  std::string lease, older_than;
  std::vector<std::string> states;
  bool keep_logs = false, dry_run = false, yes = false;
};

// FINISHED, FAILED, CANCELLED from a comma list (repeatable); all three when none is given.
std::vector<task_state> clean_states(const std::vector<std::string>& given) {
  std::vector<task_state> out;
  for (const auto& arg : given) {
    std::size_t at = 0;
    while (at <= arg.size()) {
      std::size_t comma = arg.find(',', at);
      std::string word =
          arg.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
      at = comma == std::string::npos ? arg.size() + 1 : comma + 1;
      for (auto& c : word)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      if (word == "DONE") word = "FINISHED";
      if (word == "FAIL") word = "FAILED";
      auto st = parse_task_state(word);
      if (!st || !is_done(*st))
        throw usage_error("--state " + detail::quote_for_message(word) +
                          ": only ended tasks with a result are archived (FINISHED, FAILED, "
                          "CANCELLED)");
      out.push_back(*st);
    }
  }
  if (out.empty()) out = {task_state::finished, task_state::failed, task_state::cancelled};
  return out;
}

std::string bytes_text(std::uint64_t b) {
  if (b < 1024) return fmt::format("{} B", b);
  if (b < 1024 * 1024) return fmt::format("{:.1f} KiB", static_cast<double>(b) / 1024);
  if (b < (1ull << 30)) return fmt::format("{:.1f} MiB", static_cast<double>(b) / (1 << 20));
  return fmt::format("{:.2f} GiB", static_cast<double>(b) / (1ull << 30));
}

// The lease a writer acts on: --lease, else the index's default, else this host's local lease.
std::string clean_lease_id(const home_paths& home, const std::string& given) {
  std::string id = given;
  if (id.empty()) {
    index_read idx = read_index(home);
    if (!idx.error.empty())
      throw error(idx.error + "; cannot tell the default lease: pass --lease ID");
    if (idx.index.default_lease) id = *idx.index.default_lease;
  }
  if (id.empty()) id = local_lease_id(short_hostname());
  return check_lease_id(id);
}

void confirm(const std::string& what, bool yes) {
  if (yes) return;
  if (!::isatty(STDIN_FILENO)) throw error(what + "; not on a terminal, so pass --yes to confirm");
  std::fprintf(stderr, "%s. Go on? [y/N] ", what.c_str());
  std::string answer;
  std::getline(std::cin, answer);
  if (answer != "y" && answer != "Y" && answer != "yes") throw error("nothing was done");
}

void cmd_clean(const clean_options& o) {
  std::vector<task_state> states = clean_states(o.states);
  std::optional<double> older;
  if (!o.older_than.empty()) {
    try {
      older = static_cast<double>(parse_duration(o.older_than));
    } catch (const error& e) {
      throw usage_error(std::string("--older-than: ") + e.what());
    }
  }
  home_paths home = home_paths::from_env();
  check_home_trust(home, home_use::write);
  std::string lease_id = clean_lease_id(home, o.lease);
  lease_paths lease(home, lease_id);
  if (!fs::is_directory(lease.root()))
    throw error("no lease " + lease_id + " under " + home.runs().string());
  store_options so;
  so.ui = load_config(home.config()).ui;
  snapshot_store<> store(lease, lease_id, so);
  auto s = store.refresh();
  double now = unix_now();

  // A task some task still waits for stays: its runner looks for the result in done/.
  std::unordered_set<std::string> needed;
  for (const auto& t : s->tasks())
    if (!is_done(t.state) && t.spec)
      for (const auto& a : t.spec->after) needed.insert(a);

  std::vector<archive_candidate> go, dup;
  std::size_t waited_on = 0, still_claimed = 0;
  for (const auto& t : s->tasks()) {
    if (!t.result || t.unknown || !is_done(t.state) || !is_valid_node(t.node)) continue;
    archive_candidate c{t.node, t.id, t.seq, t.state};
    if (s->archive && s->archive->contains(t.seq)) {  // a clean killed before its unlinks
      dup.push_back(c);
      continue;
    }
    if (std::find(states.begin(), states.end(), t.state) == states.end()) continue;
    if (older && (!t.finished() || now - *t.finished() < *older)) continue;
    if (needed.count(t.id)) {
      ++waited_on;
      continue;
    }
    // A claimed file left beside the result (a runner killed between the two) would look like
    // a task to run once the result is gone.
    struct stat st;
    if (::lstat(lease.claimed_task(t.node, t.id).c_str(), &st) == 0) {
      ++still_claimed;
      continue;
    }
    go.push_back(c);
  }
  if (waited_on > 0)
    std::fprintf(stderr, "leaseq: note: %zu ended task(s) kept: tasks not yet run wait for them\n",
                 waited_on);
  if (still_claimed > 0)
    std::fprintf(stderr,
                 "leaseq: note: %zu ended task(s) kept: their claimed file is still there\n",
                 still_claimed);
  if (o.dry_run) {
    for (const auto& c : go)
      std::printf("%s %s %s\n", c.id.c_str(), std::string(to_string(c.state)).c_str(),
                  c.node.c_str());
    std::printf("would archive %zu task(s) of lease %s%s\n", go.size(), lease_id.c_str(),
                o.keep_logs ? " (logs kept)" : " and delete their logs");
    return;
  }
  if (go.empty() && dup.empty()) {
    std::printf("nothing to archive in lease %s\n", lease_id.c_str());
    return;
  }
  if (go.size() > 1) {
    std::string shown;
    for (std::size_t i = 0; i < go.size() && i < 5; ++i) shown += (i ? " " : "") + go[i].id;
    if (go.size() > 5) shown += " ...";
    confirm(fmt::format("{} tasks of lease {} would be archived{} ({})", go.size(), lease_id,
                        o.keep_logs ? "" : " and their logs deleted", shown),
            o.yes);
  }
  archive_outcome r = archive_results(lease, lease_id, go, dup, o.keep_logs, now);
  for (const auto& e : r.errors)
    std::fprintf(stderr, "leaseq: warning: %s\n", sanitize_inline(e).c_str());
  if (r.skipped > 0)
    std::fprintf(stderr, "leaseq: note: %zu task(s) skipped: their result changed or vanished\n",
                 r.skipped);
  if (r.archived > 0)
    std::printf("archived %zu tasks of lease %s into %s; freed %s\n", r.archived, lease_id.c_str(),
                (lease.archive_dir() / r.file).c_str(), bytes_text(r.bytes_freed).c_str());
  else
    std::printf("archived 0 tasks of lease %s; freed %s\n", lease_id.c_str(),
                bytes_text(r.bytes_freed).c_str());
  if (!r.errors.empty())
    throw error(fmt::format("{} file(s) could not be removed", r.errors.size()));
}

void cmd_forget(const std::string& id_arg, bool yes) {
  std::string id = check_lease_id(id_arg);
  home_paths home = home_paths::from_env();
  check_home_trust(home, home_use::write);
  index_read idx = read_index(home);
  if (!idx.error.empty()) throw error(idx.error);
  if (!idx.index.find(id))
    throw error("unknown lease " + detail::quote_for_message(id) + " (see `leaseq lease ls`)");
  config cfg = load_config(home.config());
  lease_listing listing = list_leases(home, cfg.ui);
  std::string state = "UNKNOWN";
  std::string kind = is_local_lease(id) ? "local" : "slurm";
  for (const auto& row : listing.rows)
    if (row.id == id) {
      state = row.state;
      kind = row.kind;
    }
  bool ended = kind == "local" ? state != "RUNNING" : slurm_state_is_final(state);
  if (!ended)
    throw error(fmt::format(
        "lease {} is {} ({}): only an ended lease can be forgotten{}", id, sanitize_inline(state),
        kind,
        kind == "local" ? "; stop its runner first (`leaseq lease local stop`)"
                        : "; release it first (`leaseq lease release " + id + "`), or wait"));
  if (!yes) {
    if (!::isatty(STDIN_FILENO))
      throw error("forget removes lease " + id +
                  " from the list; not on a terminal, so pass --yes to confirm");
    std::fprintf(stderr, "Forget lease %s (%s, %s)? Its tree %s stays on disk. [y/N] ", id.c_str(),
                 kind.c_str(), sanitize_inline(state).c_str(), home.lease_dir(id).c_str());
    std::string answer;
    if (!std::getline(std::cin, answer) || (answer != "y" && answer != "Y" && answer != "yes"))
      throw error("not forgotten");
  }
  bool was_default = false;
  update_index(home, [&](lease_index& x) {
    auto it = std::remove_if(x.leases.begin(), x.leases.end(),
                             [&](const index_entry& e) { return e.id == id; });
    x.leases.erase(it, x.leases.end());
    if (x.default_lease && *x.default_lease == id) {
      x.default_lease.reset();
      was_default = true;
    }
  });
  std::printf(
      "forgot lease %s%s; its tree %s stays (remove it by hand when its results are no "
      "longer needed)\n",
      id.c_str(), was_default ? " (it was the default: there is none now)" : "",
      home.lease_dir(id).c_str());
}

}  // namespace

void add_clean_commands(CLI::App& app, CLI::App& lease) {
  auto o = std::make_shared<clean_options>();
  CLI::App* c = app.add_subcommand(
      "clean",
      "Move ended tasks (FINISHED, FAILED, CANCELLED) out of the live tree into the lease's "
      "archive (runs/<lease>/archive/), so scans stay fast; status and the dashboard still count "
      "them, tasks --archived "
      "lists them. Their logs are deleted unless --keep-logs");
  add_lease_option(*c, o->lease);
  c->add_option("--state", o->states,
                "Only tasks in these states (FINISHED, FAILED, CANCELLED; comma list or "
                "repeated; default: all three)");
  c->add_option("--older-than", o->older_than,
                "Only tasks that finished longer ago than this (30s, 5m, 2h, 7d)");
  c->add_flag("--keep-logs", o->keep_logs,
              "Keep the tasks' logs (logs/<node>/<id>.out, .err, .exit); by default they are "
              "deleted with the task");
  c->add_flag("--dry-run,-n", o->dry_run, "List what would be archived; change nothing");
  c->add_flag("--yes,-y", o->yes, "Do not ask when more than one task is archived");
  c->callback([o] { cmd_clean(*o); });

  auto id = std::make_shared<std::string>();
  auto yes = std::make_shared<bool>(false);
  CLI::App* f = lease.add_subcommand(
      "forget",
      "Remove an ended lease (a Slurm job that ended, a local lease with no live runner) from "
      "the list; its tree runs/<lease>/ stays on disk");
  f->add_option("id", *id, "Lease id")->required();
  f->add_flag("--yes,-y", *yes, "Do not ask for confirmation");
  f->callback([id, yes] { cmd_forget(*id, *yes); });
}

}  // namespace leaseq_cli
