#pragma once

// The leaseq program's command groups. Each cmd_*.cpp registers one group on the CLI11 app.

#include <string>

#include <CLI/CLI.hpp>

namespace leaseq_cli {

// Exit codes shared by every command.
inline constexpr int exit_ok = 0;
inline constexpr int exit_error = 1;
inline constexpr int exit_usage = 2;

// runner, submit, cancel, retry, pause, resume, lease local start|stop|status
void add_engine_commands(CLI::App& app, CLI::App& lease);
// status, tasks, follow, logs
void add_read_commands(CLI::App& app);
// wait
void add_wait_command(CLI::App& app);
// The lease a read-only command looks at (--lease, else the default, else the local lease's
// tree), its home checked for reading; throws leaseq::error when there is none.
std::string resolve_read_lease(const std::string& lease_opt);
// lease create|ls|use|release
void add_slurm_commands(CLI::App& app, CLI::App& lease);
// tui
void add_tui_command(CLI::App& app);
// __complete (hidden): candidates for the bash completion script
void add_complete_command(CLI::App& app);

}  // namespace leaseq_cli
