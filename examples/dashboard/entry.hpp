#pragma once

// `leaseq tui`: the dashboard's entry point (examples/tui.cpp), called by examples/cmd_tui.cpp.

#include <string>

namespace leaseq_dash {

struct options {
  std::string lease;   // --lease ID: open this lease's dashboard
  bool local = false;  // --local: open local:<hostname>
  bool slurm = false;  // --slurm: the lease list, filtered to Slurm leases
};

// Runs the dashboard until q or a signal. Returns the exit code (2: not a terminal); a quit
// signal is re-raised after the terminal is restored.
int run(const options& opt);

}  // namespace leaseq_dash
