#include <leaseq/command.hpp>

#include <catch2/catch.hpp>

using namespace leaseq;

TEST_CASE("run_command captures stdout, stderr and the exit code", "[command]") {
  auto r = run_command({"sh", "-c", "echo out; echo err >&2; exit 3"});
  CHECK(r.exit_code == 3);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");
  CHECK_FALSE(r.ok());
  CHECK(r.error.find("exit code 3") != std::string::npos);
  CHECK(run_command({"true"}).ok());
}

TEST_CASE("run_command never runs a shell string", "[command]") {
  auto r = run_command({"echo", "a; rm -rf /nonexistent", "$(id)"});
  CHECK(r.out == "a; rm -rf /nonexistent $(id)\n");
}

TEST_CASE("a missing binary is a spawn failure with a clear error", "[command]") {
  auto r = run_command({"leaseq-no-such-binary-xyz"});
  CHECK(r.spawn_failed);
  CHECK(r.error.find("leaseq-no-such-binary-xyz") != std::string::npos);
  CHECK(r.error.find("No such file") != std::string::npos);
}

TEST_CASE("a hanging command is killed with its children at the timeout", "[command]") {
  command_options opt;
  opt.timeout = std::chrono::milliseconds(300);
  auto r = run_command({"sh", "-c", "sleep 30 & sleep 30"}, opt);
  CHECK(r.timed_out);
  CHECK_FALSE(r.ok());
  CHECK(r.error.find("timed out") != std::string::npos);
}

TEST_CASE("stdin data is fed and output is capped", "[command]") {
  command_options opt;
  opt.stdin_data = "hello\n";
  CHECK(run_command({"cat"}, opt).out == "hello\n");
  command_options capped;
  capped.max_output = 1000;
  auto r = run_command({"sh", "-c", "yes | head -c 100000"}, capped);
  CHECK(r.ok());
  CHECK(r.out.size() == 1000);
}
