// tui: the dashboard (examples/tui.cpp holds the entry point, examples/dashboard/ the
// model/update/view).
#include <memory>

#include <leaseq/paths.hpp>
#include <leaseq/trust.hpp>

#include "commands.hpp"
#include "dashboard/entry.hpp"

namespace leaseq_cli {

void add_tui_command(CLI::App& app) {
  auto opt = std::make_shared<leaseq_dash::options>();
  CLI::App* tui = app.add_subcommand(
      "tui",
      "Open the dashboard: leases, nodes/runners, tasks and logs (opens the default lease, or "
      "the lease list when there is none; press ? inside for every key)");
  auto* lease = add_lease_option(*tui, opt->lease, "Open this lease's dashboard directly");
  auto* local = tui->add_flag("--local", opt->local, "Open the local lease local:<hostname>");
  auto* slurm = tui->add_flag("--slurm", opt->slurm, "Open the lease list, filtered to Slurm");
  lease->excludes(local)->excludes(slurm);
  local->excludes(slurm);
  tui->callback([opt] {
    // The dashboard cancels, retries, pauses and creates leases: a writer.
    leaseq::check_home_trust(leaseq::home_paths::from_env(), leaseq::home_use::write);
    int rc = leaseq_dash::run(*opt);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace leaseq_cli
