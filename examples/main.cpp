// The leaseq program: a thin CLI over the header-only library, plus the dashboard.
#include <cstdio>
#include <exception>

#include <leaseq/leaseq.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"leaseq: a file-based task queue over leases (local host or Slurm jobs)", "leaseq"};
  app.set_version_flag("--version", std::string("leaseq ") + leaseq::version);
  app.require_subcommand(1);
  app.fallthrough(false);
  CLI::App& lease = *app.add_subcommand("lease", "Create, list, use and release leases");
  lease.require_subcommand(1);

  leaseq_cli::add_engine_commands(app, lease);
  leaseq_cli::add_read_commands(app);
  leaseq_cli::add_slurm_commands(app, lease);
  leaseq_cli::add_tui_command(app);
  leaseq_cli::add_complete_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const leaseq::error& e) {
    std::fprintf(stderr, "leaseq: error: %s\n", e.what());
    return leaseq_cli::exit_error;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "leaseq: internal error: %s\n", e.what());
    return leaseq_cli::exit_error;
  }
  return leaseq_cli::exit_ok;
}
