// tui: the dashboard (examples/tui.cpp holds the model/update/view).
#include "commands.hpp"

namespace leaseq_cli {

void add_tui_command(CLI::App&) {}

}  // namespace leaseq_cli
