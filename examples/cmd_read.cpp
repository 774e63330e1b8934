// status, tasks, follow, logs.
#include "commands.hpp"

namespace leaseq_cli {

void add_read_commands(CLI::App&) {}

}  // namespace leaseq_cli
