// runner, submit, cancel, retry, pause, resume, lease local.
#include "commands.hpp"

namespace leaseq_cli {

void add_engine_commands(CLI::App&, CLI::App&) {}

}  // namespace leaseq_cli
