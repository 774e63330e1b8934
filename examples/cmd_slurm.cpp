// lease create, ls, use, release.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <leaseq/leaseq.hpp>
#include <leaseq/trust.hpp>

#include "commands.hpp"

namespace leaseq_cli {

namespace {

namespace fs = std::filesystem;
using leaseq::json;

// The leaseq binary a keeper runs: $LEASEQ_BIN, else this very program.
fs::path leaseq_binary() {
  if (const char* b = std::getenv("LEASEQ_BIN"); b && *b) return fs::absolute(b);
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw leaseq::error("cannot find the leaseq binary (/proc/self/exe): set LEASEQ_BIN");
  return self;
}

// Text from Slurm's commands or from the user's own arguments, on its way to a terminal.
void put_text(const std::string& text, std::FILE* to) {
  std::string safe = leaseq::sanitize(text);
  std::fwrite(safe.data(), 1, safe.size(), to);
}

// Slurm's own message on stderr (sanitized, otherwise verbatim); then the exit code.
[[noreturn]] void fail_with(const leaseq::command_output& r, const std::string& what) {
  if (!r.out.empty()) put_text(r.out, stderr);
  if (!r.err.empty()) put_text(r.err, stderr);
  if (r.spawn_failed || r.timed_out || r.err.empty())
    std::fprintf(stderr, "leaseq: error: %s: %s\n", what.c_str(),
                 leaseq::sanitize_inline(r.error).c_str());
  throw CLI::RuntimeError(r.exit_code > 0 && r.exit_code < 256 ? r.exit_code : exit_error);
}

struct create_args {
  leaseq::lease_request req;
  std::string name, partition, qos, account, constraint, reservation;
  bool dry_run = false, test_only = false;
};

std::optional<std::string> opt_of(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

// What --slots gives each runner, in words, for the --dry-run preview.
void run_create(create_args& a) {
  leaseq::lease_request& r = a.req;
  if (!a.name.empty()) leaseq::check_lease_name(a.name);
  r.name = opt_of(a.name);
  r.partition = opt_of(a.partition);
  r.qos = opt_of(a.qos);
  r.account = opt_of(a.account);
  r.constraint = opt_of(a.constraint);
  r.reservation = opt_of(a.reservation);
  leaseq::validate(r);
  if (a.dry_run && a.test_only) throw usage_error("--dry-run and --test-only exclude each other");

  auto home = leaseq::home_paths::from_env();
  leaseq::check_home_trust(home, leaseq::home_use::write);
  leaseq::slurm_options opt = leaseq::slurm_options::from_env();
  leaseq::lease_plan plan = leaseq::plan_slurm_lease(home, r, leaseq_binary(), a.test_only, opt);
  if (a.dry_run) {
    put_text(fmt::format("sbatch command (not run):\n  {}\nkeeper script: {}\nslots per node: {}\n",
                         leaseq::shell_join(plan.sbatch), plan.script_path.string(),
                         leaseq::slots_preview(r)),
             stdout);
    put_text("----- keeper script -----\n" + plan.script, stdout);
    return;
  }
  leaseq::lease_submit res = leaseq::submit_slurm_lease(home, r, plan, a.test_only, opt);
  if (a.test_only) {
    if (!res.error.empty()) fail_with(res.sbatch, "sbatch --test-only");
    // sbatch --test-only answers on stderr ("Job 5 to start at ... using 3 processors ...").
    put_text(res.sbatch.out, stdout);
    put_text(res.sbatch.err, stdout);
    return;
  }
  if (!res.job_id) {
    if (res.sbatch.timed_out)
      std::fprintf(stderr, "leaseq: warning: %s\n", leaseq::sanitize_inline(res.error).c_str());
    if (!res.sbatch.ok()) fail_with(res.sbatch, "sbatch");
    put_text(res.sbatch.err, stderr);
    throw leaseq::error(leaseq::sanitize_inline(res.error));
  }
  if (!res.sbatch.err.empty()) put_text(res.sbatch.err, stderr);  // sbatch's warnings
  std::printf("%s\n", res.job_id->c_str());
}

std::string or_dash(const std::optional<std::string>& s) {
  return s && !s->empty() ? *s : "-";
}
std::string or_dash(const std::optional<std::int64_t>& v) {
  return v ? std::to_string(*v) : std::string("-");
}

void run_ls(bool as_json) {
  auto home = leaseq::home_paths::from_env();
  leaseq::check_home_trust(home, leaseq::home_use::read);
  leaseq::config cfg = leaseq::load_config(home.config());
  print_config_warnings(cfg);
  leaseq::lease_listing list = leaseq::list_leases(home, cfg.ui, leaseq::slurm_options::from_env());
  if (!list.index_error.empty())
    std::fprintf(stderr, "leaseq: warning: %s\n",
                 leaseq::sanitize_inline(list.index_error).c_str());
  if (as_json) {
    json out = json::array();
    for (const auto& r : list.rows) out.push_back(r);
    // As `status --json`: ASCII only (\u escapes), so no byte of a name or a Slurm reason can
    // reach a terminal raw, and bytes that are not UTF-8 cannot stop the listing.
    std::string text = out.dump(2, ' ', true, json::error_handler_t::replace);
    std::printf("%s\n", text.c_str());
    return;
  }
  if (list.rows.empty()) {
    std::printf("no leases (create one with `leaseq lease create` or start `leaseq runner`)\n");
    return;
  }
  std::vector<std::vector<std::string>> table{
      {"ID", "KIND", "NAME", "STATE", "REASON", "LEFT", "NODES", "GPN", "SLOTS", "DEFAULT"}};
  for (const auto& r : list.rows) {
    std::string reason = r.reason;
    if (!r.error.empty()) reason = (reason.empty() ? "" : reason + "; ") + r.error;
    // Names come from index.json and reasons from squeue: anyone's bytes.
    std::vector<std::string> row{r.id,
                                 r.kind,
                                 or_dash(r.name),
                                 r.state,
                                 reason.empty() ? "-" : reason,
                                 r.time_left.empty() ? "-" : r.time_left,
                                 or_dash(r.nodes),
                                 or_dash(r.gpus_per_node),
                                 r.slots.empty()         ? "-"
                                 : r.slots == "\"auto\"" ? "auto"
                                                         : r.slots,
                                 r.is_default ? "*" : ""};
    for (auto& cell : row) cell = leaseq::sanitize_inline(cell);
    table.push_back(std::move(row));
  }
  auto cells = [](const std::string& s) {
    return static_cast<std::size_t>(std::max(0, leaseq::detail::display_width(s)));
  };
  std::vector<std::size_t> width(table[0].size(), 0);
  for (const auto& row : table)
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], cells(row[i]));
  for (const auto& row : table) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - cells(row[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

void run_use(const std::string& id) {
  leaseq::check_lease_id(id);
  auto home = leaseq::home_paths::from_env();
  leaseq::check_home_trust(home, leaseq::home_use::write);
  leaseq::update_index(home, [&](leaseq::lease_index& idx) {
    if (!idx.find(id))
      throw leaseq::error("unknown lease " + leaseq::detail::quote_for_message(id) +
                          " (see `leaseq lease ls`)");
    idx.default_lease = id;
  });
  std::printf("default lease: %s\n", id.c_str());
}

void run_release(const std::string& id, bool yes) {
  leaseq::check_lease_id(id);
  auto home = leaseq::home_paths::from_env();
  leaseq::check_home_trust(home, leaseq::home_use::write);
  leaseq::check_releasable(home, id);
  if (!yes) {
    if (!::isatty(0))
      throw leaseq::error("release cancels Slurm job " + id +
                          "; not on a terminal, so pass --yes to confirm");
    std::fprintf(stderr, "Release lease %s (scancel %s)? Its running tasks are stopped. [y/N] ",
                 id.c_str(), id.c_str());
    std::string answer;
    if (!std::getline(std::cin, answer) || (answer != "y" && answer != "Y" && answer != "yes")) {
      std::fprintf(stderr, "not released\n");
      throw CLI::RuntimeError(exit_error);
    }
  }
  leaseq::command_output r =
      leaseq::release_slurm_lease(home, id, leaseq::slurm_options::from_env());
  if (!r.ok()) fail_with(r, "scancel");
  if (!r.err.empty()) put_text(r.err, stderr);
  std::printf("released %s (scancel sent; its runners stop their tasks)\n", id.c_str());
}

}  // namespace

void add_slurm_commands(CLI::App&, CLI::App& lease) {
  auto ca = std::make_shared<create_args>();
  CLI::App* create = lease.add_subcommand(
      "create",
      "Submit a Slurm job (the keeper) that runs one leaseq runner per node and register it as a "
      "lease; prints the job id");
  create->add_option("--name", ca->name, "A name for the lease (job name leaseq-<name>)");
  create->add_option("--nodes,-N", ca->req.nodes, "Number of nodes")->required();
  create->add_option("--time,-t", ca->req.time, "Time limit, as sbatch --time (e.g. 2:00:00)")
      ->required();
  create->add_option("--partition,-p", ca->partition, "Slurm partition");
  create->add_option("--qos", ca->qos, "Slurm QOS");
  create->add_option("--account,-A", ca->account, "Slurm account");
  create->add_option("--constraint,-C", ca->constraint, "Slurm node constraint");
  create->add_option("--reservation", ca->reservation, "Slurm reservation");
  create->add_option("--gpus-per-node", ca->req.gpus_per_node, "GPUs per node (default 0)");
  create->add_option("--slots", ca->req.slots,
                     "Tasks each node's runner runs at once: a number, or auto (one per GPU when "
                     "--gpus-per-node is given, else one per CPU Slurm gives the job on the "
                     "node); default 1");
  create
      ->add_option("--sbatch-arg", ca->req.extra_args,
                   "One more sbatch argument, passed as one argv element (repeatable), e.g. "
                   "--sbatch-arg=--exclusive")
      ->allow_extra_args(false);
  create->add_flag("--dry-run", ca->dry_run,
                   "Print the sbatch command and the keeper script; submit nothing");
  create->add_flag("--test-only", ca->test_only,
                   "Ask Slurm (sbatch --test-only) whether and when the lease would start; submit "
                   "nothing");
  create->callback([ca] { run_create(*ca); });

  auto as_json = std::make_shared<bool>(false);
  CLI::App* ls = lease.add_subcommand(
      "ls",
      "List leases: id, kind, name, state, reason, time left, nodes, GPUs per node, slots, "
      "default");
  ls->add_flag("--json", *as_json, "Print a JSON array");
  ls->callback([as_json] { run_ls(*as_json); });

  auto use_id = std::make_shared<std::string>();
  CLI::App* use = lease.add_subcommand("use", "Make a lease the default one");
  use->add_option("id", *use_id, "Lease id (a Slurm job id or local:<host>)")->required();
  use->callback([use_id] { run_use(*use_id); });

  auto rel_id = std::make_shared<std::string>();
  auto yes = std::make_shared<bool>(false);
  CLI::App* release = lease.add_subcommand(
      "release", "Release a Slurm lease (scancel); its runners stop their tasks and exit");
  release->add_option("id", *rel_id, "Slurm job id of the lease")->required();
  release->add_flag("--yes,-y", *yes, "Do not ask for confirmation");
  release->callback([rel_id, yes] { run_release(*rel_id, *yes); });
}

}  // namespace leaseq_cli
