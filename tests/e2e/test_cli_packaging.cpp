// The program's packaging: --version, --help everywhere, the man page and bash completion.
#include <leaseq/file_io.hpp>
#include <leaseq/index.hpp>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace test_support;

namespace {

const std::string bin = LEASEQ_BIN;

std::vector<std::string> subcommands_of(const std::string& help) {
  std::vector<std::string> out;
  std::istringstream in(help);
  std::string line;
  bool in_section = false;
  while (std::getline(in, line)) {
    if (line == "Subcommands:") {
      in_section = true;
      continue;
    }
    if (!in_section) continue;
    if (line.size() > 2 && line[0] == ' ' && line[2] != ' ')
      out.push_back(line.substr(2, line.find(' ', 2) - 2));
    else
      in_section = false;
  }
  return out;
}

std::string complete(const fs::path& home, const std::string& words) {
  std::string script =
      "source " + shell_quote(std::string(LEASEQ_SOURCE_DIR) + "/share/bash-completion/leaseq") +
      "; leaseq() { " + shell_quote(bin) + " \"$@\"; }; COMP_WORDS=(" + words +
      "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _leaseq; "
      "printf '%s\\n' \"${COMPREPLY[@]}\" | sort";
  auto r = run_command("LEASEQ_HOME=" + shell_quote(home.string()) + " bash -c " +
                       shell_quote(script) + " 2>&1");
  return r.out;
}

// The zsh and fish completions, run the way each shell runs them, with `leaseq` on PATH. zsh:
// the function with a stub compadd that prints the candidates; fish: `complete -C`.
std::string complete_in(const std::string& shell, const fs::path& home, const std::string& line) {
  temp_dir bindir;
  write_text(bindir / "leaseq", "#!/bin/sh\nexec " + shell_quote(bin) + " \"$@\"\n");
  ::chmod((bindir / "leaseq").c_str(), 0755);
  std::string env = "PATH=" + shell_quote(bindir.path().string()) +
                    ":\"$PATH\" LEASEQ_HOME=" + shell_quote(home.string()) + " ";
  std::string src = std::string(LEASEQ_SOURCE_DIR) + "/share/";
  std::string script;
  if (shell == "zsh") {
    script = "compadd() { [[ $1 == -a ]] && print -l -- ${(P)2} }; source <(sed '$d' " +
             shell_quote(src + "zsh/_leaseq") + "); words=(" + line +
             " ''); CURRENT=${#words}; _leaseq | sort";
  } else {
    script = "source " + shell_quote(src + "fish/leaseq.fish") + "; complete -C " +
             shell_quote(line + " ") + " | sort";
  }
  return run_command(env + shell + " -c " + shell_quote(script) + " 2>&1").out;
}

// A home with two leases; local:box holds T001 pending on _any and T002 claimed on nodeA.
leaseq::lease_paths completion_home(const fs::path& home) {
  leaseq::home_paths hp(home);
  leaseq::register_lease(hp, {"local:box", "local", std::nullopt, 1.0, leaseq::json::object()});
  leaseq::register_lease(hp, {"4242", "slurm", std::nullopt, 2.0, leaseq::json::object()});
  leaseq::lease_paths lease(hp, "local:box");
  write_text(lease.inbox_task("_any", "T001"), "{}");
  write_text(lease.claimed_task("nodeA", "T002"), "{}");
  return lease;
}

}  // namespace

TEST_CASE("leaseq --version and --help", "[cli][packaging]") {
  auto v = run_command(shell_quote(bin) + " --version");
  CHECK(v.exit_code == 0);
  CHECK(v.out.find("leaseq 0.1.0") != std::string::npos);
  auto h = run_command(shell_quote(bin) + " --help");
  CHECK(h.exit_code == 0);
  CHECK(h.out.find("Usage: leaseq") != std::string::npos);
  CHECK(h.out.find("__complete") == std::string::npos);  // hidden
  CHECK(h.out.find("Exit status:") != std::string::npos);
  // Every usage error exits 2 (CLI11's own codes are 105-114).
  for (const char* args : {"no-such-command", "tasks --no-such-option", "tasks --limit x",
                           "submit --key '' -- true", "lease"}) {
    auto bad = run_command(shell_quote(bin) + " " + args + " 2>&1");
    INFO(args << ": " << bad.out);
    CHECK(bad.exit_code == 2);
  }
  // ... and so do values and combinations a command checks itself, before it touches anything.
  temp_dir tmp;
  std::string env = "LEASEQ_HOME=" + shell_quote((tmp / "home").string()) + " timeout 20 ";
  for (const char* args :
       {"runner --lease local:x --grace 1e9", "runner --lease local:x --heartbeat 0",
        "submit --lease local:x --priority 1000001 -- true",
        "submit --lease local:x --retry-delay 5 -- true",
        "submit --lease local:x --env NOEQUALS -- true",
        "submit --lease local:x --array 1-2 --each-line f",
        "tasks --lease local:x --format '{id}' --json", "cancel --lease local:x --node n1",
        "lease create --dry-run --test-only --nodes 1 --time 1:00",
        "submit --lease local:x --each-line f -- true", "submit --lease local:x --shell -- ' '"}) {
    auto bad = run_command(env + shell_quote(bin) + " " + args + " 2>&1");
    INFO(args << ": " << bad.out);
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.out, Catch::Contains("leaseq: error: "));
  }
  CHECK_FALSE(fs::exists(tmp / "home" / "runs" / "local:x"));
}

TEST_CASE("every subcommand answers --help", "[cli][packaging]") {
  std::vector<std::vector<std::string>> queue;
  for (auto& s : subcommands_of(run_command(shell_quote(bin) + " --help").out))
    queue.push_back({s});
  REQUIRE_FALSE(queue.empty());
  while (!queue.empty()) {
    auto path = queue.back();
    queue.pop_back();
    std::string cmd = shell_quote(bin);
    for (auto& p : path) cmd += " " + p;
    auto r = run_command(cmd + " --help");
    INFO(cmd);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("Usage: leaseq") != std::string::npos);
    // A usage error exits 2 whatever the command, never CLI11's own 105-114; --lease without
    // its value is one too where the command takes it.
    auto bad = run_command(cmd + " --no-such-option 2>&1");
    INFO(bad.out);
    CHECK(bad.exit_code == 2);
    if (r.out.find("--lease") != std::string::npos) {
      auto no_value = run_command(cmd + " --lease 2>&1 </dev/null");
      INFO(no_value.out);
      CHECK(no_value.exit_code == 2);
    }
    for (auto& s : subcommands_of(r.out)) {
      auto next = path;
      next.push_back(s);
      queue.push_back(next);
    }
  }
}

TEST_CASE("the man page is generated from --help and covers every subcommand", "[cli][packaging]") {
  temp_dir t;
  auto r = run_command("python3 " + shell_quote(std::string(LEASEQ_SOURCE_DIR) + "/tools/gen-man") +
                       " " + shell_quote(bin) + " " + shell_quote((t / "leaseq.1").string()));
  REQUIRE(r.exit_code == 0);
  std::string page = read_text(t / "leaseq.1");
  CHECK(page.rfind(".TH LEASEQ 1", 0) == 0);
  for (const char* section : {".SH EXIT STATUS", ".SH ENVIRONMENT", ".SH FILES", ".SH EXAMPLES"})
    CHECK(page.find(section) != std::string::npos);
  for (auto& s : subcommands_of(run_command(shell_quote(bin) + " --help").out))
    CHECK(page.find(".SS leaseq " + s) != std::string::npos);
  // The one exit status table (examples/commands.hpp), shown by --help, once in the page.
  std::string help = run_command(shell_quote(bin) + " --help").out;
  for (const char* row : {"  2    usage error", "  3    lease local status", "  124  wait",
                          "  130  wait", "follow exits with the followed task's own code"}) {
    INFO(row);
    CHECK(help.find(row) != std::string::npos);
    auto at = page.find(row);
    CHECK(at != std::string::npos);
    CHECK(at > page.find(".SH EXIT STATUS"));
    CHECK(page.find(row, at + 1) == std::string::npos);
  }
  // The page renders without warnings where man is installed.
  if (run_command("command -v man").exit_code == 0) {
    auto rendered = run_command("MANWIDTH=80 man -l " + shell_quote((t / "leaseq.1").string()) +
                                " 2>&1 >/dev/null");
    CHECK(rendered.out.empty());
  }
}

TEST_CASE("bash completion offers subcommands, leases, tasks and nodes", "[cli][packaging]") {
  if (run_command("command -v bash").exit_code != 0) return;
  temp_dir t;
  fs::path home = t / "home";
  leaseq::lease_paths lease = completion_home(home);
  write_text(lease.result("nodeB", "T003"), "{}");
  write_text(lease.heartbeat("nodeC"), "{}");
  write_text(lease.inbox_root() / "bad name" / "T009.json", "{}");  // never offered

  CHECK(complete(home, "leaseq le").find("lease") != std::string::npos);
  CHECK(complete(home, "leaseq --lease ''") == "4242\nlocal:box\n");
  std::string tasks = run_command("LEASEQ_HOME=" + shell_quote(home.string()) + " " +
                                  shell_quote(bin) + " __complete tasks")
                          .out;
  CHECK(tasks == "T001\nT002\nT003\n");
  std::string nodes = run_command("LEASEQ_HOME=" + shell_quote(home.string()) + " " +
                                  shell_quote(bin) + " __complete nodes --lease local:box")
                          .out;
  CHECK(nodes == "nodeA\nnodeB\nnodeC\n");
}

TEST_CASE("zsh and fish completions offer what bash offers", "[cli][packaging]") {
  temp_dir t;
  fs::path home = t / "home";
  leaseq::lease_paths lease = completion_home(home);
  write_text(lease.heartbeat("nodeC"), "{}");
  for (const std::string shell : {"zsh", "fish"}) {
    INFO(shell);
    // tools/install-deps test installs both: a missing shell is a failure, not a skip.
    REQUIRE(run_command("command -v " + shell).exit_code == 0);
    CHECK(complete_in(shell, home, "leaseq lease").find("create\n") != std::string::npos);
    CHECK(complete_in(shell, home, "leaseq").find("submit\n") != std::string::npos);
    CHECK(complete_in(shell, home, "leaseq --lease") == "4242\nlocal:box\n");
    CHECK(complete_in(shell, home, "leaseq lease use") == "4242\nlocal:box\n");
    CHECK(complete_in(shell, home, "leaseq --lease local:box cancel") == "T001\nT002\n");
    CHECK(complete_in(shell, home, "leaseq pause --lease local:box") == "nodeA\nnodeC\n");
  }
}
