// Hostile input against the real program (issues 14 and 15): options that swallow `--`, empty
// values, bytes that are not UTF-8 in a command, a seq file pushed past the last task id, a
// forged runner pid, and names, Slurm reasons and commands holding terminal escapes, bidi
// overrides and invisible characters. Each case failed before its fix.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <leaseq/detail/process_identity.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/paths.hpp>

#include "test_support.hpp"

using leaseq::json;
using test_support::read_text;
using test_support::run_command;
using test_support::shell_quote;
using test_support::temp_dir;
using test_support::wait_until;
using test_support::write_text;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string rlo = "\xe2\x80\xae";   // U+202E RIGHT-TO-LEFT OVERRIDE
const std::string lri = "\xe2\x81\xa6";   // U+2066 LEFT-TO-RIGHT ISOLATE
const std::string zwsp = "\xe2\x80\x8b";  // U+200B ZERO WIDTH SPACE
const std::string csi8 = "\xc2\x9b";      // U+009B, the 8-bit CSI

// A LEASEQ_HOME of its own and the local lease "local:box" in it.
struct cli {
  temp_dir tmp;
  fs::path home = tmp / "home";
  std::string lease = "local:box";
  pid_t runner = -1;

  ~cli() {
    if (runner > 1) ::kill(runner, SIGTERM);
  }
  // `leaseq ARGS` with stdout and stderr together; `prefix` goes before it (cd, env).
  test_support::command_result run(const std::string& args, const std::string& prefix = "") {
    return run_command(prefix + "LEASEQ_HOME=" + shell_quote(home.string()) + " " +
                       shell_quote(LEASEQ_BIN) + " " + args + " 2>&1");
  }
  fs::path lease_dir() const { return home / "runs" / lease; }
  std::vector<fs::path> pending() const {
    std::vector<fs::path> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(lease_dir() / "inbox", ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file() && it->path().filename().string()[0] != '.')
        out.push_back(it->path());
    return out;
  }
  json task_file(const std::string& lane, const std::string& id) const {
    return json::parse(read_text(lease_dir() / "inbox" / lane / (id + ".json")));
  }
  void start_runner() {
    auto r = run_command("LEASEQ_HOME=" + shell_quote(home.string()) + " " +
                         shell_quote(LEASEQ_BIN) + " runner --detach --lease " + lease +
                         " --node n1 --gpus none 2>/dev/null");  // stdout: the pid
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    runner = std::stoi(r.out);
  }
  bool done(const std::string& id) const {
    return fs::exists(lease_dir() / "done" / "n1" / (id + ".result.json"));
  }
};

bool all_ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

// Bytes that must never reach a terminal from text leaseq did not write itself.
void check_terminal_safe(const std::string& out) {
  CHECK(out.find('\x1b') == std::string::npos);
  CHECK(out.find('\x07') == std::string::npos);
  CHECK(out.find(csi8) == std::string::npos);
  CHECK(out.find('\xff') == std::string::npos);
  for (const std::string& hidden : {rlo, lri, zwsp}) CHECK(out.find(hidden) == std::string::npos);
}

}  // namespace

// Issue 14.4.
TEST_CASE("hostile input: everything after -- is the command, whatever option comes before",
          "[e2e][hostile_input]") {
  cli c;
  auto r =
      c.run("submit --lease " + c.lease + " --env OMP=8 -- ./train --node gpu7 --gpus 2 --key k1");
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  json t = c.task_file("_any", "T001");
  CHECK(t["argv"] == json({"./train", "--node", "gpu7", "--gpus", "2", "--key", "k1"}));
  CHECK(t["node"].is_null());
  CHECK(t["gpus"] == 0);
  CHECK(t["key"].is_null());
  CHECK(t["env"] == json({{"OMP", "8"}}));

  r = c.run("submit --lease " + c.lease +
            " --env OMP=8 --env B=2 -- python3 train.py --cfg a.yaml --env C=3 -- x");
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  t = c.task_file("_any", "T002");
  CHECK(t["argv"] == json({"python3", "train.py", "--cfg", "a.yaml", "--env", "C=3", "--", "x"}));
  CHECK(t["env"] == json({{"OMP", "8"}, {"B", "2"}}));

  // A repeatable option takes one value per use: a second word is not another K=V.
  r = c.run("submit --lease " + c.lease + " --env A=1 B=2");
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  t = c.task_file("_any", "T003");
  CHECK(t["argv"] == json({"B=2"}));
  CHECK(t["env"] == json({{"A", "1"}}));
}

// Issue 14.10.
TEST_CASE("hostile input: empty option values and an empty command are refused",
          "[e2e][hostile_input]") {
  cli c;
  for (const char* opt : {"--key", "--node", "--lease", "--cwd", "--env"}) {
    auto r = c.run(std::string("submit ") + opt + " '' -- echo hi");
    INFO(opt << ": " << r.out);
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.out, Catch::Contains(std::string(opt) + ": must not be empty"));
  }
  for (const char* cmd :
       {"submit --lease local:box -- ''", "submit --lease local:box --shell -- ' '"}) {
    auto r = c.run(cmd);
    INFO(cmd << ": " << r.out);
    CHECK(r.exit_code == 2);  // a usage error, refused before anything is written
    CHECK_THAT(r.out, Catch::Contains("the command is empty"));
  }
  CHECK(c.pending().empty());
  // The same rule holds for every command (a runner given --node '' would start for "").
  for (const char* cmd :
       {"timeout -s KILL 20 $LQ runner --node ''", "$LQ tasks --lease ''",
        "$LQ cancel --lease '' T001", "$LQ retry --key '' T001", "$LQ lease local stop --node ''",
        "$LQ lease create --name '' -N 1 -t 5"}) {
    auto r = run_command("LQ=" + shell_quote(LEASEQ_BIN) +
                         "; LEASEQ_HOME=" + shell_quote(c.home.string()) + " " + cmd + " 2>&1");
    INFO(cmd << ": " << r.out);
    CHECK(r.exit_code != 0);
    CHECK(r.exit_code != 137);
    CHECK_THAT(r.out, Catch::Contains("must not be empty"));
  }
}

// Issue 14.9.
TEST_CASE("hostile input: argv, cwd and env bytes that are not UTF-8 run exactly as given",
          "[e2e][hostile_input]") {
  cli c;
  fs::path dir = c.tmp / "d\xff";
  fs::create_directories(dir);
  fs::path out = c.tmp / "out";
  std::string script =
      "printf '%s|%s|%s' \"$1\" \"$LAT\" \"$(pwd)\" > " + shell_quote(out.string());
  auto r = c.run("submit --lease " + c.lease + " --node n1 --env " + shell_quote("LAT=caf\xe9") +
                     " -- sh -c " + shell_quote(script) + " sh " +
                     shell_quote(std::string("a\xff\x01"
                                             "b")),
                 "cd " + shell_quote(dir.string()) + " && ");
  INFO(r.out);
  REQUIRE(r.exit_code == 0);  // was: internal error: [json.exception.type_error.316]
  // The file is valid JSON (UTF-8) that any tool can read; the exact bytes sit beside.
  json t = c.task_file("n1", "T001");
  CHECK(t["argv"][4] ==
        "a\xef\xbf\xbd\x01"
        "b");
  CHECK(t["argv_b64"][4] == "Yf8BYg==");
  CHECK(t["cwd_b64"].is_string());
  CHECK(t["env_b64"].is_object());
  // Readers show it.
  r = c.run("tasks --lease " + c.lease);
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("a\xef\xbf\xbd^Ab"));
  r = c.run("tasks --json --lease " + c.lease);
  CHECK(r.exit_code == 0);
  CHECK(all_ascii(r.out));
  // The runner runs the exact bytes.
  c.start_runner();
  REQUIRE(wait_until([&] { return c.done("T001"); }, 30s));
  CHECK(read_text(out) ==
        "a\xff\x01"
        "b|caf\xe9|" +
            dir.string());
  json res = json::parse(read_text(c.lease_dir() / "done" / "n1" / "T001.result.json"));
  CHECK(res["state"] == "FINISHED");
  CHECK(res["argv_b64"] == t["argv_b64"]);
}

// Issue 14.11. The allocation is seq.hpp's; this holds the message to its promise.
TEST_CASE("hostile input: a seq file past the last task id is named as the cause",
          "[e2e][hostile_input]") {
  cli c;
  REQUIRE(c.run("submit --lease " + c.lease + " -- true").exit_code == 0);
  write_text(c.lease_dir() / "seq", "1000000000000000000\n");
  auto r = c.run("submit --lease " + c.lease + " -- true");
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains((c.lease_dir() / "seq").string()));
}

// Issue 15.1. A forged pid went through a cast to pid_t: 4294967295 became kill(-1, SIGTERM),
// every process the user may signal. Each case runs in a pid namespace of its own, so that a
// regression kills nothing outside it; a sleeper in its own session stands for everything else.
TEST_CASE("hostile input: a forged heartbeat pid makes lease local stop signal nothing",
          "[e2e][hostile_input]") {
  std::string ns;
  for (const char* u : {"unshare --pid --fork --mount-proc",
                        "unshare --user --map-root-user --pid --fork --mount-proc"})
    if (run_command(std::string(u) + " true 2>/dev/null").exit_code == 0) {
      ns = u;
      break;
    }
  if (ns.empty()) {
    WARN("no pid namespace (unshare): not run, since a regression would signal every process");
    return;
  }
  cli c;
  std::string host = leaseq::short_hostname();
  fs::path hb = c.home / "runs" / ("local:" + host) / "hb" / "n1.json";
  fs::create_directories(hb.parent_path());
  // Values a file can hold; the last one truncates to the sleeper's own pid.
  for (const char* pid :
       {"4294967295", "-1", "0", "1", "2147483648", "-4294967295", "$((4294967296 + s))"}) {
    std::string script =
        "setsid sleep 60 & s=$!; "
        "printf '{\"node\":\"n1\",\"host\":\"%s\",\"pid\":%s,\"ts\":%s,\"started\":1,"
        "\"running\":[],\"pending\":0,\"paused\":false,\"slots\":1,\"gpus\":0}' " +
        shell_quote(host) + " \"" + pid + "\" \"$(date +%s)\" > " + shell_quote(hb.string()) +
        "; LEASEQ_HOME=" + shell_quote(c.home.string()) + " " + shell_quote(LEASEQ_BIN) +
        " lease local stop --node n1 --wait 1 2>&1; echo \"rc=$?\"; sleep 0.3; "
        "kill -0 $s 2>/dev/null && echo sleeper-alive; kill $s";
    auto r = run_command(ns + " sh -c " + shell_quote(script));
    INFO("pid " << pid << ": " << r.out);
    CHECK_THAT(r.out, Catch::Contains("nothing was signalled"));
    CHECK_THAT(r.out, Catch::Contains("rc=1"));
    CHECK_THAT(r.out, Catch::Contains("sleeper-alive"));
  }
}

// Issues 14.9 and 15.5.
TEST_CASE("hostile input: lease names and Slurm reasons with escapes and bad bytes in lease ls",
          "[e2e][hostile_input]") {
  cli c;
  fs::path bin = c.tmp / "bin";
  // squeue's reason: OSC 0, OSC 52, the 8-bit CSI, a byte that is not UTF-8 and a bidi override.
  write_text(bin / "squeue",
             "#!/bin/sh\nprintf '424242|PENDING|Res\\033]0;pwn\\007\\033]52;c;ZXZpbA==\\007"
             "\\302\\23331m\\377\\342\\200\\256x|1:00:00|1:00:00|1|(null)|N/A|leaseq-x\\n'\n");
  fs::permissions(bin / "squeue", fs::perms::owner_all);
  const std::string name = "evil\x1b]0;title\x07\x1b]52;c;ZXZpbA==\x07" + csi8 + "31m" + rlo;
  fs::create_directories(c.home / "runs" / "424242");
  write_text(
      c.home / "index.json",
      json{{"version", 1},
           {"default", "424242"},
           {"leases", {{{"id", "424242"}, {"kind", "slurm"}, {"name", name}, {"created", 1}}}}}
          .dump());
  std::string path = "PATH=" + shell_quote(bin.string()) + ":\"$PATH\" ";

  auto r = c.run("lease ls", path);
  INFO(r.out);
  CHECK(r.exit_code == 0);  // was: the state cache write failed on the \377
  CHECK_THAT(r.out, Catch::Contains("PENDING"));
  CHECK_THAT(r.out, Catch::Contains("<U+202E>"));
  check_terminal_safe(r.out);

  r = c.run("lease ls --json", path);
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK(all_ascii(r.out));  // escaped like status --json
  json rows = json::parse(r.out);
  CHECK(rows[0]["name"] == name);  // escaped, not altered
  CHECK_THAT(rows[0]["reason"].get<std::string>(), Catch::Contains("\xef\xbf\xbd" + rlo));

  for (const char* cmd : {"status --lease 424242", "status --json --lease 424242"}) {
    r = c.run(cmd, path);
    INFO(cmd << ": " << r.out);
    CHECK(r.exit_code == 0);
    check_terminal_safe(r.out);
  }

  // Names given to lease create follow a rule, like node names; spaces stay allowed.
  r = c.run("lease create --dry-run --name " + shell_quote("x" + csi8 + "31m") + " -N 1 -t 5");
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("invalid lease name"));
  check_terminal_safe(r.out);
  for (const std::string& bad :
       {"a" + rlo, std::string("a\x1b[31m"), std::string("-x"), std::string(65, 'a')}) {
    r = c.run("lease create --dry-run --name " + shell_quote(bad) + " -N 1 -t 5");
    INFO(r.out);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.out, Catch::Contains("invalid lease name"));
  }
  r = c.run("lease create --dry-run --name 'my run.v2' -N 1 -t 5");
  INFO(r.out);
  CHECK(r.exit_code == 0);
}

// Issue 15.6.
TEST_CASE("hostile input: bidi and invisible characters are shown, never obeyed",
          "[e2e][hostile_input]") {
  cli c;
  std::string word = "admin" + rlo + "nimda" + lri + "x" + zwsp + "y";
  auto r = c.run("submit --lease " + c.lease + " --node n1 --env " + shell_quote("NOTE=" + word) +
                 " -- printf '%s\\n' " + shell_quote(word));
  REQUIRE(r.exit_code == 0);
  r = c.run("tasks --lease " + c.lease);
  INFO(r.out);
  CHECK_THAT(r.out, Catch::Contains("admin<U+202E>nimda<U+2066>x<U+200B>y"));
  check_terminal_safe(r.out);

  c.start_runner();
  REQUIRE(wait_until([&] { return c.done("T001"); }, 30s));
  // Piped, `logs` is byte-exact (it is how logs are saved); on a terminal it is sanitized.
  r = c.run("logs --lease " + c.lease + " T001");
  CHECK(r.out == word + "\n");
  if (run_command("script -qc true /dev/null >/dev/null 2>&1").exit_code != 0) {
    WARN("script(1) is missing: the terminal case of logs is not checked");
    return;
  }
  for (const char* cmd : {"logs", "follow"}) {
    r = run_command(
        "LEASEQ_HOME=" + shell_quote(c.home.string()) + " script -qc " +
        shell_quote(shell_quote(LEASEQ_BIN) + " " + cmd + " --lease " + c.lease + " T001") +
        " /dev/null");
    INFO(cmd << ": " << r.out);
    CHECK_THAT(r.out, Catch::Contains("admin<U+202E>nimda<U+2066>x<U+200B>y"));
    check_terminal_safe(r.out);
  }
}

// Audit of issue 15: CLI11 quotes the argument it rejects, and that quote went to stderr raw.
TEST_CASE("hostile input: a usage error quoting the arguments reaches the terminal sanitized",
          "[e2e][hostile_input]") {
  cli c;
  std::string arg = "\x1b]52;c;ZXZpbA==\x07" + rlo + "x" + lri + csi8 + "\xff";
  auto r = c.run("tasks --lease " + c.lease + " " + shell_quote(arg));
  INFO(r.out);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("<U+202E>"));  // shown, not obeyed
  check_terminal_safe(r.out);
  // --help stays a success and still prints the usage.
  auto h = c.run("tasks --help");
  CHECK(h.exit_code == 0);
  CHECK_THAT(h.out, Catch::Contains("--lease"));
}

// Audit of issue 15: a fresh heartbeat naming a live but unrelated process (a reused pid, or a
// forged file) made `lease local stop` SIGTERM it and `lease local status` call it OK. The
// runner writes its start time and boot id (protocol 4); a heartbeat without them counts only
// while the node's runner lock is held.
TEST_CASE("hostile input: a fresh heartbeat naming an unrelated process is no runner",
          "[e2e][hostile_input]") {
  cli c;
  std::string host = leaseq::short_hostname();
  fs::path tree = c.home / "runs" / ("local:" + host);
  fs::path hb = tree / "hb" / "n1.json";
  REQUIRE(c.run("submit --lease local:" + host + " -- true").exit_code == 0);
  fs::create_directories(hb.parent_path());
  pid_t sleeper = ::fork();
  REQUIRE(sleeper >= 0);
  if (sleeper == 0) {
    ::setsid();
    ::execlp("sleep", "sleep", "60", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto alive = [&] { return ::waitpid(sleeper, nullptr, WNOHANG) == 0; };
  std::string boot = leaseq::detail::boot_id();
  // With an identity that is not the sleeper's (its start time differs), and with none at all.
  for (const std::string& identity :
       {",\"pid_start\":1,\"boot_id\":\"" + boot + "\"", std::string()}) {
    json j = json::parse("{\"node\":\"n1\",\"host\":\"" + host + "\",\"pid\":" +
                         std::to_string(sleeper) + ",\"started\":1,\"running\":[],\"pending\":0," +
                         "\"paused\":false,\"slots\":1,\"gpus\":0" + identity + "}");
    j["ts"] = static_cast<double>(::time(nullptr));
    write_text(hb, j.dump());
    auto stop = c.run("lease local stop --node n1 --wait 1");
    INFO(identity << ": " << stop.out);
    CHECK(stop.exit_code == 0);
    CHECK_THAT(stop.out, Catch::Contains("no runner running"));
    CHECK(alive());
    auto status = c.run("lease local status --node n1");
    INFO(status.out);
    CHECK(status.exit_code == 3);
    CHECK_THAT(status.out, !Catch::Contains(": OK"));
    auto start = c.run("lease local start --node n1 --gpus none");
    INFO(start.out);
    CHECK_THAT(start.out, !Catch::Contains("already running"));
    if (start.exit_code == 0) {
      REQUIRE(wait_until([&] { return c.run("lease local status --node n1").exit_code == 0; }));
      CHECK(c.run("lease local stop --node n1 --wait 20").exit_code == 0);
    }
  }
  ::kill(sleeper, SIGKILL);
  ::waitpid(sleeper, nullptr, 0);
}
