// The leaseq program: a thin CLI over the header-only library, plus the dashboard.
#include <cstdio>
#include <cstring>
#include <exception>
#include <sstream>

#include <leaseq/leaseq.hpp>

#include "commands.hpp"

namespace {

// Rules for every option of every command, applied once all commands are registered so that
// no command can miss them:
//  - a repeatable option takes exactly one value per use (`--env A=1 --env B=2`). CLI11 lets a
//    list option take every following word and then swallow a `--`, so in
//    `submit --env OMP=8 -- ./train --node gpu7` the command's own `--node` became leaseq's.
//    Everything after `--` is the command, verbatim;
//  - an empty value is refused: no option gives "" a meaning, and taking it as "not given"
//    turned `--key ''` into "no idempotency" and `--lease ''` into "the default lease".
void harden_options(CLI::App& app) {
  static const CLI::Validator non_empty(
      [](std::string& value) { return value.empty() ? std::string("must not be empty") : ""; }, "",
      "non_empty");  // no description: --help stays as it was
  for (CLI::Option* o : app.get_options()) {
    if (o->get_positional() || o->get_items_expected_max() == 0) continue;  // flags
    if (o->get_items_expected_max() > 1) o->allow_extra_args(false);
    o->check(non_empty);
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) harden_options(*sub);
}

}  // namespace

int main(int argc, char** argv) {
  // The runner starts every task under `leaseq __supervise ...` (supervise.hpp). It is not a
  // command for people: it never reaches the CLI parser, so --help does not list it.
  if (argc > 1 && std::strcmp(argv[1], leaseq::supervise_verb) == 0)
    return leaseq::run_supervisor(argc, argv);
  CLI::App app{"leaseq: a file-based task queue over leases (local host or Slurm jobs)", "leaseq"};
  app.set_version_flag("--version", std::string("leaseq ") + leaseq::version);
  app.footer(leaseq_cli::exit_status_help);
  app.require_subcommand(1);
  app.fallthrough(false);
  CLI::App& lease = *app.add_subcommand("lease", "Create, list, use and release leases");
  lease.require_subcommand(1);

  leaseq_cli::add_engine_commands(app, lease);
  leaseq_cli::add_read_commands(app);
  leaseq_cli::add_wait_command(app);
  leaseq_cli::add_slurm_commands(app, lease);
  leaseq_cli::add_clean_commands(app, lease);
  leaseq_cli::add_tui_command(app);
  leaseq_cli::add_complete_command(app);
  harden_options(app);
  // No arguments at all: the help, on stdout, exit 0 (as cargo does; git exits 1). A person
  // typing `leaseq` asks what it does; it is not a mistake to report.
  if (argc <= 1) {
    std::fputs(app.help().c_str(), stdout);
    return leaseq_cli::exit_ok;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return app.exit(e);  // a command's own status (follow: the task's code)
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (105-114) mean "usage error": one code for all of them, as getopt
    // tools do. --help and --version are ParseErrors with status 0.
    // CLI11 quotes the arguments it rejects: anyone's bytes (a pasted escape sequence, a bidi
    // override), so its message goes through the sanitizer like every other one.
    std::ostringstream out, err;
    int code = app.exit(e, out, err);
    std::fputs(leaseq::sanitize(out.str()).c_str(), stdout);
    std::fputs(leaseq::sanitize(err.str()).c_str(), stderr);
    return code == 0 ? leaseq_cli::exit_ok : leaseq_cli::exit_usage;
  } catch (const leaseq_cli::usage_error& e) {
    std::fprintf(stderr, "leaseq: error: %s\n", leaseq::sanitize_inline(e.what()).c_str());
    return leaseq_cli::exit_usage;
  } catch (const leaseq::error& e) {
    // Messages quote paths and file contents: anyone's bytes.
    std::fprintf(stderr, "leaseq: error: %s\n", leaseq::sanitize_inline(e.what()).c_str());
    return leaseq_cli::exit_error;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "leaseq: internal error: %s\n", leaseq::sanitize_inline(e.what()).c_str());
    return leaseq_cli::exit_error;
  }
  return leaseq_cli::exit_ok;
}
