#pragma once

// What the engine commands (cmd_engine.cpp, cmd_runner.cpp, cmd_submit.cpp, cmd_control.cpp)
// share: the lease a command acts on and the local runner's liveness.

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <leaseq/leaseq.hpp>

namespace leaseq_cli {

// The lease a command acts on: --lease, else the index's default, else the local lease.
// `local_only_default`: the runner defaults to the local lease whatever the index says.
std::string resolve_lease(const leaseq::home_paths& home, const std::string& given,
                          bool local_only_default = false);

// A node's heartbeat as this host's runner would have written it, or why it cannot be one.
struct local_heartbeat {
  std::optional<leaseq::heartbeat> hb;
  std::string problem;  // set when the file exists but names no runner we may signal
};

// The heartbeat of a runner that still lives: fresh, not stopped, written on this host, and
// naming a pid that may be signalled and is alive.
local_heartbeat live_local_runner(const leaseq::lease_paths& lease, const std::string& node);

// runner, lease local start|stop|status (cmd_runner.cpp)
void add_runner_commands(CLI::App& app, CLI::App& lease_cmd);
// submit (cmd_submit.cpp)
void add_submit_command(CLI::App& app);
// cancel, retry, pause, resume (cmd_control.cpp)
void add_control_commands(CLI::App& app);

}  // namespace leaseq_cli
