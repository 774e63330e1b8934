#pragma once

// The leaseq program's command groups. Each cmd_*.cpp registers one group on the CLI11 app.

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <leaseq/config.hpp>
#include <leaseq/error.hpp>
#include <leaseq/sanitize.hpp>

namespace leaseq_cli {

// Every exit code of the program. exit_status_help is the one table of them: `leaseq --help`
// shows it and tools/gen-man renders it as the man page's EXIT STATUS section.
inline constexpr int exit_ok = 0;
inline constexpr int exit_error = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_not_ok = 3;       // lease local status: the runner is not OK
inline constexpr int exit_timeout = 124;    // wait --timeout, as timeout(1)
inline constexpr int exit_interrupt = 130;  // wait: Ctrl-C, 128 + SIGINT
inline constexpr const char* exit_status_help =
    "Exit status:\n"
    "  0    success (leaseq without arguments prints this help and exits 0)\n"
    "  1    the command failed (refused, not found, I/O error); the message says why;\n"
    "       wait: a task ended other than FINISHED\n"
    "  2    usage error: unknown command or option, missing or invalid value;\n"
    "       wait: an unknown task\n"
    "  3    lease local status: the runner is not OK\n"
    "  124  wait: --timeout passed first\n"
    "  130  wait: interrupted (Ctrl-C)\n"
    "  follow exits with the followed task's own code (128+N when signal N ended it,\n"
    "  1 when it was lost); lease create and release pass on a failed Slurm command's code.";

// An option value or combination a command itself refuses (a range, a pair that excludes each
// other): a usage error like CLI11's own, so exit 2 (main.cpp), not 1.
struct usage_error : leaseq::error {
  using leaseq::error::error;
};

// The config file's warnings (unknown keys, bad values), on stderr before a command's output.
inline void print_config_warnings(const leaseq::config& cfg) {
  for (const auto& w : cfg.warnings)
    std::fprintf(stderr, "leaseq: warning: %s\n", leaseq::sanitize_inline(w).c_str());
}

// --lease, as every command declares it. Most commands act on the default lease (`lease use`)
// without it; the few whose default differs pass their own help (the runner: the local lease).
inline constexpr const char* lease_help = "Lease id (default: the default lease, see `lease use`)";
inline CLI::Option* add_lease_option(CLI::App& cmd, std::string& lease,
                                     const char* help = lease_help) {
  return cmd.add_option("--lease", lease, help);
}

// --gpu-ids: the GPUs a runner hands out (`runner`, `lease local start`), a device list, not
// the count `submit --gpus` asks for. `--gpus` stays a hidden alias there, for older scripts.
inline void add_gpu_ids_option(CLI::App& cmd, std::string& gpus) {
  CLI::Option* ids =
      cmd.add_option("--gpu-ids", gpus,
                     "GPUs to hand out: auto (every NVIDIA GPU found), none, or indices 0,1,...")
          ->capture_default_str();
  // Not ->excludes(ids): that would print "Excludes: --gpus" under --gpu-ids.
  cmd.add_option_function<std::string>(
         "--gpus",
         [&gpus, ids](const std::string& value) {
           if (ids->count() > 0)
             throw CLI::ValidationError("--gpus", "the former name of --gpu-ids: give one of them");
           gpus = value;
         },
         "Former name of --gpu-ids")
      ->group("");
}

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
