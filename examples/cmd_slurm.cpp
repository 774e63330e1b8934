// lease create, ls, use, release.
#include "commands.hpp"

namespace leaseq_cli {

void add_slurm_commands(CLI::App&, CLI::App&) {}

}  // namespace leaseq_cli
