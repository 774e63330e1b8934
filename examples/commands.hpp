#pragma once

// The leaseq program's command groups. Each cmd_*.cpp registers one group on the CLI11 app.

#include <string>

#include <CLI/CLI.hpp>

namespace leaseq_cli {

// Exit codes shared by every command (exit_status_help is the table --help and the man page show).
inline constexpr int exit_ok = 0;
inline constexpr int exit_error = 1;
inline constexpr int exit_usage = 2;
inline constexpr const char* exit_status_help =
    "Exit status:\n"
    "  0    success\n"
    "  1    the command failed (refused, not found, I/O error); the message says why\n"
    "  2    usage error: unknown command or option, missing or invalid value\n"
    "  follow exits with the followed task's own code (128+N when signal N ended it,\n"
    "  1 when it was lost); other codes are documented by the command's --help.";

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
// clean, lease forget
void add_clean_commands(CLI::App& app, CLI::App& lease);
// tui
void add_tui_command(CLI::App& app);
// __complete (hidden): candidates for the bash completion script
void add_complete_command(CLI::App& app);

}  // namespace leaseq_cli
