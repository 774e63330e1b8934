// Hostile input against the real program and the reading API: terminal escapes and binary junk
// in task output, hostile names on disk and on the command line, malformed and huge JSON, logs
// replaced by a FIFO or a symlink to /dev/zero, unreadable directories. Each must give a safe
// display or a clear error: no crash, no hang, bounded memory, nothing lost from the files.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/fs.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/store.hpp>
#include <leaseq/tail.hpp>

#include "lease_tree.hpp"
#include "test_support.hpp"

using namespace leaseq;
using test_support::read_text;
using test_support::shell_quote;
using test_support::temp_dir;
using test_support::wait_until;
using test_support::write_text;
using namespace std::chrono_literals;

namespace {

// A child run to completion (or killed at the deadline) with its peak memory.
struct measured {
  int exit_code = -1;
  bool timed_out = false;
  long maxrss_kb = 0;
  std::string out;  // stdout and stderr together
};

// Runs `sh -c cmd` with stdout+stderr captured to a file, kills its process group after
// timeout, and reports the peak RSS of the child and everything it waited for.
measured run_measured(const std::string& cmd, const fs::path& scratch,
                      std::chrono::seconds timeout = 60s) {
  fs::path out_file = scratch / ("measured-" + std::to_string(::getpid()) + ".out");
  measured m;
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setpgid(0, 0);
    int fd = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int in = ::open("/dev/null", O_RDONLY);
    if (fd < 0 || in < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto end = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  struct rusage ru {};
  for (;;) {
    pid_t r = ::wait4(pid, &status, WNOHANG, &ru);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() > end && !m.timed_out) {
      m.timed_out = true;
      ::kill(-pid, SIGKILL);
    }
    std::this_thread::sleep_for(10ms);
  }
  m.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  m.maxrss_kb = ru.ru_maxrss;
  m.out = read_text(out_file);
  fs::remove(out_file);
  return m;
}

std::string env_prefix(const fs::path& home) {
  return "LEASEQ_HOME=" + shell_quote(home.string()) + " ";
}

// Runs the program on a pseudo-terminal (script(1)) so it takes its terminal path.
measured run_on_tty(const fs::path& home, const std::string& args, const fs::path& scratch) {
  std::string inner = env_prefix(home) + shell_quote(LEASEQ_BIN) + " " + args;
  return run_measured("script -qec " + shell_quote(inner) + " /dev/null", scratch);
}

measured run_plain(const fs::path& home, const std::string& args, const fs::path& scratch,
                   std::chrono::seconds timeout = 60s) {
  return run_measured(env_prefix(home) + shell_quote(LEASEQ_BIN) + " " + args, scratch, timeout);
}

// Peak RSS of `leaseq --version` measured the same way. A child forked from this test process
// starts with its resident pages counted (Linux keeps the high-water mark across exec), which
// under ASan is already about 100 MB: memory bounds are growth over this baseline.
long baseline_rss_kb(const fs::path& home, const fs::path& scratch) {
  auto b = run_plain(home, "--version", scratch);
  REQUIRE(b.maxrss_kb > 0);
  return b.maxrss_kb;
}

// What a terminal must never receive from task output. The pty turns "\n" into "\r\n", so a
// \r is allowed only right before \n.
std::string first_unsafe_byte(const std::string& s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
      return "control byte " + std::to_string(c) + " at " + std::to_string(i) + " near \"" +
             s.substr(i > 20 ? i - 20 : 0, 40) + "\"";
    if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(s[i + 1]) <= 0x9f)
      return "C1 control at " + std::to_string(i);
  }
  // Invalid UTF-8 (a raw 0x9B is one) must have become U+FFFD.
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n < 0 || i + static_cast<std::size_t>(n) >= s.size() + (n == 0 ? 1 : 0))
      return "invalid UTF-8 lead byte " + std::to_string(c) + " at " + std::to_string(i);
    for (int k = 1; k <= n; ++k)
      if ((static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]) >> 6) != 2)
        return "invalid UTF-8 at " + std::to_string(i);
    i += static_cast<std::size_t>(n) + 1;
  }
  return "";
}

const std::size_t big_line = 10u << 20;

// Task output with every trick a hostile or merely careless program plays on a terminal.
std::string hostile_output() {
  std::string s;
  s += "A1 \x1b]52;c;ZXZpbA==\x07 A1end\n";  // OSC 52: clipboard write
  s += "A2 \x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\ A2end\n";  // OSC 8 hyperlink
  s += "A3 \x1b[2J\x1b[H\x1b[31m A3end\n";     // clear screen, home, colour
  s += "A4 \x1b]0;a title that never ends\n";  // unterminated OSC
  s += "A5 visible after the unterminated OSC\n";
  s += "A6 progress 10%\rprogress 100%\n";  // \r overwrite
  s += "A7 \xff\xfe\xc3\x28 \x9b"
       "31m \xed\xa0\x80 A7end\n";                 // invalid UTF-8, raw CSI byte
  s += std::string("A8 nul\0byte\0 A8end\n", 20);  // NUL bytes
  s += "A9 ";
  s += std::string(big_line, 'x');  // a 10 MB line
  s += " A9end\n";
  s += "A10 \x1bP+q544e\x1b\\ \x1b_apc\x1b\\ \x07\x08\x7f A10end\n";  // DCS, APC, BEL, BS, DEL
  s += "A11 last line\n";
  return s;
}

// A lease tree with one finished task T001 on nodeA whose stdout is `out`.
struct hostile_tree : test_support::lease_tree {
  explicit hostile_tree(const std::string& out) {
    register_default();
    done(1, "nodeA");
    hb("nodeA", unix_now() - 1);
    ensure_dir(paths.logs("nodeA"));
    write_text(paths.stdout_log("nodeA", "T001"), out);
    write_text(paths.stderr_log("nodeA", "T001"), "E1 \x1b]52;c;aGk=\x07 E1end\n");
  }
};

void check_safe_display(const std::string& shown) {
  INFO(first_unsafe_byte(shown));
  CHECK(first_unsafe_byte(shown).empty());
  for (const char* marker : {"A1end", "A2end", "link", "A3end", "A5 visible", "progress 100%",
                             "A7end", "A8end", "A10end", "A11 last line"}) {
    INFO(marker);
    CHECK(shown.find(marker) != std::string::npos);
  }
  CHECK(shown.find("52;c;") == std::string::npos);
  CHECK(shown.find("evil.example") == std::string::npos);
  CHECK(shown.find("a title that never ends") == std::string::npos);
  CHECK(shown.find("^@") != std::string::npos);  // NUL shown in caret notation
}

}  // namespace

TEST_CASE("leaseq logs on a terminal: hostile output is shown safely, the file is untouched",
          "[hostile]") {
  std::string out = hostile_output();
  hostile_tree t(out);
  auto m = run_on_tty(t.home, "logs T001", t.tmp.path());
  REQUIRE_FALSE(m.timed_out);
  REQUIRE(m.exit_code == 0);
  check_safe_display(m.out);
  // The 10 MB line is shown whole by `logs` (it streams); the file keeps every byte.
  CHECK(m.out.find(" A9end") != std::string::npos);
  CHECK(m.out.size() > big_line);
  CHECK(m.maxrss_kb < baseline_rss_kb(t.home, t.tmp.path()) + 150 * 1024);
  CHECK(read_text(t.paths.stdout_log("nodeA", "T001")) == out);

  auto err = run_on_tty(t.home, "logs --stderr T001", t.tmp.path());
  REQUIRE(err.exit_code == 0);
  CHECK(err.out.find("E1end") != std::string::npos);
  CHECK(first_unsafe_byte(err.out).empty());
}

TEST_CASE("leaseq logs into a pipe or file gives the exact bytes", "[hostile]") {
  std::string out = hostile_output();
  hostile_tree t(out);
  fs::path copy = t.tmp / "copy.out";
  auto m = run_plain(t.home, "logs T001 > " + shell_quote(copy.string()), t.tmp.path());
  REQUIRE(m.exit_code == 0);
  CHECK(read_text(copy) == out);
}

TEST_CASE("leaseq follow on a terminal: hostile output is shown safely, long lines cut",
          "[hostile]") {
  std::string out = hostile_output();
  hostile_tree t(out);
  auto m = run_on_tty(t.home, "follow --both T001", t.tmp.path());
  REQUIRE_FALSE(m.timed_out);
  REQUIRE(m.exit_code == 0);
  check_safe_display(m.out);
  CHECK(m.out.find("E1end") != std::string::npos);
  // The follower cuts the 10 MB line at its line limit and keeps going.
  CHECK(m.out.size() < big_line);
  CHECK(m.out.find("A9 xxxx") != std::string::npos);
  CHECK(m.maxrss_kb < baseline_rss_kb(t.home, t.tmp.path()) + 150 * 1024);
  CHECK(read_text(t.paths.stdout_log("nodeA", "T001")) == out);
}

TEST_CASE("tail and paged reader over hostile output: sanitized lines, bounded memory",
          "[hostile]") {
  temp_dir tmp;
  std::string out = hostile_output();
  fs::path p = tmp / "T001.out";
  write_text(p, out);

  tail_follower<> f(p);
  std::vector<tail_event> ev;
  f.drain(ev);
  std::vector<std::string> lines;
  bool cut_seen = false;
  for (const auto& e : ev) {
    if (e.what != tail_event::kind::line) continue;
    INFO(e.text.substr(0, 80));
    CHECK(first_unsafe_byte(e.text).empty());
    CHECK(e.text.size() <= 64 * 1024);
    cut_seen = cut_seen || e.cut;
    lines.push_back(e.text);
  }
  CHECK(cut_seen);
  CHECK(f.bytes_held() == 0);
  CHECK(f.bytes_dropped() >= big_line - 64 * 1024);
  REQUIRE(lines.size() >= 12);
  CHECK(lines.back() == "A11 last line");
  bool a5 = false;
  for (const auto& l : lines) a5 = a5 || l.find("A5 visible") != std::string::npos;
  CHECK(a5);

  // Raw mode passes every byte through (for a pipe), still cutting the long line.
  tail_options raw;
  raw.sanitize = false;
  tail_follower<> r(p, log_stream::out, raw);
  std::vector<tail_event> rev;
  r.drain(rev);
  std::string joined;
  for (const auto& e : rev)
    if (e.what == tail_event::kind::line && !e.cut) joined += e.text + "\n";
  CHECK(joined.find(std::string("nul\0byte", 8)) != std::string::npos);

  paged_reader pr(p);
  CHECK(pr.line_count() == 11);  // A1 .. A11: a \r is not a line break for the raw reader
  auto nine = pr.lines(8, 1);
  REQUIRE(nine.size() == 1);
  CHECK(nine[0].size() == 64 * 1024);
  auto last = pr.lines(10, 5);
  REQUIRE(last.size() == 1);
  CHECK(last[0] == "A11 last line");
}

TEST_CASE("a log replaced by a FIFO or a symlink to /dev/zero: no hang, no memory growth",
          "[hostile]") {
  hostile_tree t("ordinary\n");
  fs::path out = t.paths.stdout_log("nodeA", "T001");
  fs::path err = t.paths.stderr_log("nodeA", "T001");
  fs::remove(out);
  fs::remove(err);
  REQUIRE(::mkfifo(out.c_str(), 0600) == 0);
  fs::create_symlink("/dev/zero", err);

  // Reading /dev/zero without a bound would add gigabytes over the baseline.
  long baseline = baseline_rss_kb(t.home, t.tmp.path());
  for (const char* args : {"logs T001", "logs --stderr T001", "follow T001", "follow --both T001",
                           "follow --stderr T001"}) {
    INFO(args << " (baseline " << baseline << " kB)");
    auto m = run_plain(t.home, args, t.tmp.path(), 60s);
    INFO(m.out);
    CHECK_FALSE(m.timed_out);
    CHECK(m.maxrss_kb < baseline + 64 * 1024);
    CHECK(m.out.find("not a regular file") != std::string::npos);
  }
  auto tty = run_on_tty(t.home, "follow --both T001", t.tmp.path());
  CHECK_FALSE(tty.timed_out);
  CHECK(tty.out.find("not a regular file") != std::string::npos);

  // The API: the follower reports the problem once and reads nothing; the paged reader
  // refuses to open either.
  for (const fs::path& p : {out, err}) {
    tail_follower<> f(p);
    std::vector<tail_event> ev;
    for (int i = 0; i < 3; ++i) f.poll(ev);
    f.drain(ev);
    int errors = 0;
    for (const auto& e : ev) {
      CHECK(e.what != tail_event::kind::line);
      if (e.what == tail_event::kind::error) ++errors;
    }
    CHECK(errors == 1);
    CHECK(f.offset() == 0);
    paged_reader pr(p);
    CHECK_FALSE(pr.error().empty());
    CHECK(pr.line_count() == 0);
  }
  // The FIFO and the symlink are still there: a reader never deletes.
  CHECK(fs::is_fifo(out));
  CHECK(fs::is_symlink(err));
}

TEST_CASE("hostile node and task names in a lease tree are skipped with a report", "[hostile]") {
  test_support::lease_tree t;
  t.register_default();
  t.done(1, "nodeA");
  t.pending(2, "_any");
  std::string long_name(255, 'n');
  // Directories and files whose names are not valid node / task names.
  for (const std::string& bad : {std::string("bad\nnode"), long_name, std::string("a b"),
                                 std::string("-rf"), std::string("\x1b[2J")}) {
    fs::create_directories(t.paths.claimed_root() / bad);
    write_text(t.paths.claimed_root() / bad / "T005.json", t.task(5, "nodeA").dump());
    fs::create_directories(t.paths.inbox_root() / bad);
    fs::create_directories(t.paths.done_root() / bad);
    fs::create_directories(t.paths.logs_root() / bad);
    write_text(t.paths.hb_dir() / (bad + ".json"), "{}");
  }
  for (const std::string& bad :
       {std::string("T003\n.json"), long_name.substr(0, 250) + ".json", std::string("T1.json"),
        std::string("T004.json.bak"), std::string("..T006.json")})
    write_text(t.paths.inbox(std::string(any_lane)) / bad, t.task(3, nullptr).dump());
  // A task file whose id field disagrees with its name, and one whose node field is a path.
  json lying = t.task(7, nullptr);
  lying["id"] = "T008";
  write_text(t.paths.inbox_task("_any", "T007"), lying.dump());
  json path_node = t.task(9, nullptr);
  path_node["node"] = "../../etc";
  write_text(t.paths.inbox_task("_any", "T009"), path_node.dump());

  std::string listing_before =
      test_support::run_command("find " + shell_quote(t.paths.root().string()) + " | sort").out;
  auto m = run_plain(t.home, "tasks --json", t.tmp.path());
  INFO(m.out);
  REQUIRE(m.exit_code == 0);
  CHECK_FALSE(m.timed_out);
  CHECK(m.out.find("not a valid node name") != std::string::npos);
  CHECK(m.out.find("not a task file name") != std::string::npos);
  CHECK(m.out.find("\\n") != std::string::npos);  // the newline is shown escaped
  CHECK(first_unsafe_byte(m.out).empty());
  auto j = json::parse(m.out.substr(m.out.find("{\n")), nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  std::set<std::string> ids;
  for (const auto& task : j["tasks"]) ids.insert(task["id"].get<std::string>());
  CHECK(ids.count("T001"));
  CHECK(ids.count("T002"));
  CHECK_FALSE(ids.count("T005"));
  auto st = run_plain(t.home, "status", t.tmp.path());
  CHECK(st.exit_code == 0);
  CHECK(first_unsafe_byte(st.out).empty());
  // Reading changed nothing in the lease tree.
  CHECK(test_support::run_command("find " + shell_quote(t.paths.root().string()) + " | sort").out ==
        listing_before);
}

TEST_CASE("hostile names as command-line arguments: a clear error, no path outside the tree",
          "[hostile]") {
  test_support::lease_tree t;
  t.register_default();
  t.done(1, "nodeA");
  fs::path outside = t.tmp / "outside";
  fs::create_directories(outside);
  std::string long_name(300, 'a');
  std::vector<std::string> bad = {
      "../../outside/x",           "../T001", "/etc/passwd", "T001/..", "a\nb", long_name,
      "T" + std::string(300, '1'), ".."};  // "" means "not given" (the default) for these options
  auto quote = [](const std::string& s) { return shell_quote(s); };
  std::string listing_before =
      test_support::run_command("find " + shell_quote(t.tmp.path().string()) + " | sort").out;
  for (const auto& b : bad) {
    std::vector<std::string> commands = {
        "logs " + quote(b),
        "follow " + quote(b),
        "logs T001 --lease " + quote(b),
        "tasks --node " + quote(b),
        "status --lease " + quote(b),
        "cancel " + quote(b),
        "retry " + quote(b),
        "pause " + quote(b),
        "resume " + quote(b),
        "submit --node " + quote(b) + " -- true",
        "submit --key " + quote(b) + " -- true",
        "submit --lease " + quote(b) + " -- true",
        "runner --node " + quote(b),
        "runner --lease " + quote(b),
        "lease local start --node " + quote(b),
        "lease local stop --node " + quote(b),
        "lease local status --node " + quote(b),
    };
    for (const auto& c : commands) {
      INFO(c);
      auto m = run_plain(t.home, c, t.tmp.path(), 30s);
      INFO(m.out);
      CHECK_FALSE(m.timed_out);
      CHECK(m.exit_code != 0);
      CHECK(m.exit_code < 128);  // an error, not a crash
      CHECK(m.out.find("error") != std::string::npos);
      CHECK(first_unsafe_byte(m.out).empty());
    }
  }
  CHECK(fs::is_empty(outside));
  CHECK(test_support::run_command("find " + shell_quote(t.tmp.path().string()) + " | sort").out ==
        listing_before);
}

namespace {

// Writes a file of `mb` megabytes of valid JSON (one huge string) without holding it twice.
void write_huge_json(const fs::path& p, std::size_t mb) {
  fs::create_directories(p.parent_path());
  std::FILE* f = std::fopen(p.c_str(), "wb");
  REQUIRE(f);
  std::fputs("{\"id\": \"T090\", \"argv\": [\"true\"], \"pad\": \"", f);
  std::string chunk(1 << 20, 'p');
  for (std::size_t i = 0; i < mb; ++i) std::fwrite(chunk.data(), 1, chunk.size(), f);
  std::fputs("\"}", f);
  std::fclose(f);
}

}  // namespace

TEST_CASE("malformed, huge and deeply nested JSON is reported as unknown with the reason",
          "[hostile]") {
  test_support::lease_tree t;
  t.register_default();
  t.done(1, "nodeA");
  t.hb("nodeA", unix_now() - 1);
  auto any = [&](int seq) { return t.paths.inbox_task("_any", format_task_id(seq)); };
  ensure_dir(t.paths.inbox("_any"));
  json wrong = t.task(10, nullptr);
  wrong["argv"] = "not a list";
  write_text(any(10), wrong.dump());
  json wrong2 = t.task(11, nullptr);
  wrong2["gpus"] = "eight";
  write_text(any(11), wrong2.dump());
  write_text(any(12), t.task(12, nullptr).dump().replace(0, 1, "{\"created\": 1e99999, "));
  write_text(any(13),
             "{\"id\": \"T013\", \"seq\": 999999999999999999999999999, \"argv\": [\"x\"]}");
  write_text(any(14), std::string(200000, '[') + std::string(200000, ']'));
  write_text(any(15), "[1, 2, 3]");
  write_text(any(16), "{\"id\": \"T016\", \"argv\": [\"a\", 1]}");
  write_text(any(17), "");
  write_text(any(18), "{\"id\": \"T018\", \"argv\": [\"true\"], \"gpus\": 1e300}");
  write_huge_json(any(19), 100);
  write_huge_json(t.paths.claimed_task("nodeA", "T020"), 100);
  write_huge_json(t.paths.result("nodeA", "T021"), 100);
  write_huge_json(t.paths.heartbeat("nodeB"), 100);
  write_text(t.paths.result("nodeA", "T022"),
             "{\"id\": \"T022\", \"argv\": [\"x\"], \"state\": \"FINISHED\", \"exit_code\": "
             "99999999999999}");
  write_text(t.paths.heartbeat("nodeC"), std::string(100000, '{'));
  // Unreadable for longer than ui.hb_stale_s: a problem (a fresh torn heartbeat is only lag).
  for (const char* node : {"nodeB", "nodeC"})
    fs::last_write_time(t.paths.heartbeat(node),
                        fs::last_write_time(t.paths.heartbeat(node)) - std::chrono::hours(1));

  long baseline = baseline_rss_kb(t.home, t.tmp.path());
  for (const char* args : {"tasks --json", "status --json", "tasks", "status"}) {
    INFO(args << " (baseline " << baseline << " kB)");
    auto m = run_plain(t.home, args, t.tmp.path(), 120s);
    INFO(m.out.substr(0, 4000));
    CHECK_FALSE(m.timed_out);
    CHECK(m.exit_code == 0);
    CHECK(m.maxrss_kb < baseline + 140 * 1024);  // a 100 MB file is never loaded
    CHECK(first_unsafe_byte(m.out).empty());
    // The CLI names each unreadable file with its reason; `status --json` counts pending
    // tasks by their names (protocol 5: a million-task lease in seconds), so it does not
    // open, and cannot name, a pending task file that does not parse.
    if (std::string(args) != "status --json")
      CHECK(m.out.find("T010 is unknown") != std::string::npos);
    CHECK(m.out.find("too large") != std::string::npos);
    CHECK(m.out.find("nested deeper") != std::string::npos);
    CHECK(m.out.find("heartbeat of nodeB is unreadable") != std::string::npos);
  }
  auto tasks = run_plain(t.home, "tasks --json 2>/dev/null", t.tmp.path());
  auto j = json::parse(tasks.out, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  std::size_t unknown = 0;
  for (const auto& task : j["tasks"])
    if (task["unknown"].is_string()) ++unknown;
  CHECK(unknown >= 12);

  // Through the API: each bad file shows as an unknown task with its reason.
  snapshot_store<> store(t.paths, t.lease);
  auto s = store.refresh();
  auto reason_of = [&](int seq) -> std::string {
    const task_view* v = s->find_task(format_task_id(seq));
    if (!v) return "(not listed)";
    return v->unknown ? v->unknown_reason : "(not unknown)";
  };
  CHECK_THAT(reason_of(10), Catch::Contains("argv"));
  CHECK_THAT(reason_of(11), Catch::Contains("gpus"));
  CHECK_THAT(reason_of(12), Catch::Contains("invalid"));  // 1e99999 overflows: not JSON
  CHECK_THAT(reason_of(13), Catch::Contains("seq"));
  CHECK_THAT(reason_of(14), Catch::Contains("nested deeper"));
  CHECK_THAT(reason_of(15), Catch::Contains("expected an object"));
  CHECK_THAT(reason_of(16), Catch::Contains("argv"));
  CHECK_THAT(reason_of(17), Catch::Contains("empty"));
  CHECK_THAT(reason_of(18), Catch::Contains("gpus"));
  CHECK_THAT(reason_of(19), Catch::Contains("too large"));
  CHECK_THAT(reason_of(20), Catch::Contains("too large"));
  CHECK_THAT(reason_of(21), Catch::Contains("too large"));
  CHECK_THAT(reason_of(22), Catch::Contains("out of range"));
  for (const auto& n : s->nodes) {
    if (n.name == "nodeB") CHECK_THAT(n.hb_reason, Catch::Contains("too large"));
    if (n.name == "nodeC") CHECK_THAT(n.hb_reason, Catch::Contains("nested deeper"));
  }
  // Nothing was deleted.
  for (int seq : {10, 11, 12, 13, 14, 15, 16, 17, 18, 19}) CHECK(fs::exists(any(seq)));
  CHECK(fs::exists(t.paths.claimed_task("nodeA", "T020")));
  CHECK(fs::exists(t.paths.result("nodeA", "T021")));
}

TEST_CASE("a real runner skips malformed and huge task files, runs the good ones, deletes none",
          "[hostile]") {
  temp_dir tmp;
  fs::path home = tmp / "home";
  std::string lease = "local:hostile";
  lease_paths lp(home / "runs" / lease);
  auto submit =
      run_plain(home, "submit --lease " + shell_quote(lease) + " -- /bin/echo good", tmp.path());
  REQUIRE(submit.exit_code == 0);
  std::string good = submit.out.substr(0, submit.out.find('\n'));
  REQUIRE(is_valid_task_id(good));
  // Hostile files before and after the good task in claim order.
  write_text(lp.inbox_task("_any", "T000"), std::string(100000, '['));
  write_huge_json(lp.inbox_task("_any", "T900"), 100);
  write_text(lp.inbox_task("_any", "T901"), "{\"id\": \"T901\", \"argv\": 5}");

  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setenv("LEASEQ_HOME", home.c_str(), 1);
    int fd = ::open((tmp / "runner.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(LEASEQ_BIN, "leaseq", "runner", "--lease", lease.c_str(), "--node", "n1", "--gpus",
            "none", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool done = wait_until([&] { return fs::exists(lp.result("n1", good)); }, 60s);
  // Another pass over the bad files: a second task is claimed only by scanning past them again.
  bool second_done = false;
  if (done) {
    auto again =
        run_plain(home, "submit --lease " + shell_quote(lease) + " -- /bin/true", tmp.path());
    std::string second = again.out.substr(0, again.out.find('\n'));
    second_done = again.exit_code == 0 && is_valid_task_id(second) &&
                  wait_until([&] { return fs::exists(lp.result("n1", second)); }, 60s);
  }
  ::kill(pid, SIGTERM);
  int status = 0;
  struct rusage ru {};
  ::wait4(pid, &status, 0, &ru);
  std::string log = read_text(tmp / "runner.log");
  INFO(log);
  REQUIRE(done);
  CHECK(second_done);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(ru.ru_maxrss <
        baseline_rss_kb(home, tmp.path()) + 140 * 1024);  // the 100 MB file: never read
  CHECK(log.find("nested deeper") != std::string::npos);
  CHECK(log.find("too large") != std::string::npos);
  CHECK(fs::exists(lp.inbox_task("_any", "T000")));
  CHECK(fs::exists(lp.inbox_task("_any", "T900")));
  CHECK(fs::exists(lp.inbox_task("_any", "T901")));
  CHECK(log.find("argv") != std::string::npos);
  CHECK(read_text(lp.stdout_log("n1", good)) == "good\n");
}

TEST_CASE("unreadable directories (EACCES): the reader names the path and keeps going",
          "[hostile]") {
  if (::geteuid() != 0) {
    WARN("needs root to switch to an unprivileged user; skipped");
    return;
  }
  test_support::lease_tree t;
  t.register_default();
  t.done(1, "nodeA");
  t.claimed(2, "nodeB");
  t.pending(3, "_any");
  t.hb("nodeA", unix_now() - 1);
  ensure_dir(t.paths.logs("nodeA"));
  write_text(t.paths.stdout_log("nodeA", "T001"), "hello\n");
  // The whole tree readable by `nobody`, except the parts made unreadable below.
  test_support::run_command("chmod -R a+rX " + shell_quote(t.tmp.path().string()));
  fs::path locked_claimed = t.paths.claimed("nodeB");
  fs::path locked_log = t.paths.stdout_log("nodeA", "T001");
  ::chmod(locked_claimed.c_str(), 0700);
  ::chmod(locked_log.c_str(), 0600);
  ::chmod(t.paths.hb_dir().c_str(), 0700);

  // Every directory above the tree must be traversable for the test to mean anything.
  std::string as_nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups ";
  auto probe = test_support::run_command(as_nobody + "test -r " +
                                         shell_quote(t.paths.lease_json().string()) + " ; echo $?");
  if (probe.out.find('0') != 0) {
    WARN("nobody cannot reach the temp dir (" << t.tmp.path() << "); skipped");
    return;
  }
  auto run_as = [&](const std::string& args) {
    return run_measured(
        as_nobody + "env " + env_prefix(t.home) + shell_quote(LEASEQ_BIN) + " " + args,
        t.tmp.path(), 30s);
  };
  auto st = run_as("status");
  INFO(st.out);
  CHECK(st.exit_code == 0);
  CHECK(st.out.find(locked_claimed.string()) != std::string::npos);
  CHECK(st.out.find("Permission denied") != std::string::npos);
  CHECK(st.out.find(t.paths.hb_dir().string()) != std::string::npos);
  auto tasks = run_as("tasks --json");
  INFO(tasks.out);
  CHECK(tasks.exit_code == 0);
  CHECK(tasks.out.find("T003") != std::string::npos);
  auto logs = run_as("logs T001");
  INFO(logs.out);
  CHECK(logs.exit_code == 1);
  CHECK(logs.out.find(locked_log.string()) != std::string::npos);
  CHECK(logs.out.find("Permission denied") != std::string::npos);
  // A home the user cannot read at all.
  ::chmod(t.home.c_str(), 0700);
  auto none = run_as("status");
  INFO(none.out);
  CHECK(none.exit_code == 1);
  CHECK(none.out.find(t.home.string()) != std::string::npos);
  CHECK(none.out.find("Permission denied") != std::string::npos);
}
