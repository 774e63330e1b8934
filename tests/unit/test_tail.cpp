#include <leaseq/clock.hpp>
#include <leaseq/tail.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::run_command;
using test_support::shell_quote;
using test_support::temp_dir;
using test_support::wait_until;

namespace {

// Polls until pred(events so far) holds; every event is kept.
template <class F>
bool poll_until(F& follower, std::vector<tail_event>& events,
                const std::function<bool(const std::vector<tail_event>&)>& pred) {
  return wait_until([&] {
    follower.poll(events);
    return pred(events);
  });
}

std::vector<std::string> lines_of(const std::vector<tail_event>& ev,
                                  log_stream s = log_stream::out) {
  std::vector<std::string> out;
  for (const auto& e : ev)
    if (e.what == tail_event::kind::line && e.stream == s) out.push_back(e.text);
  return out;
}

bool has_kind(const std::vector<tail_event>& ev, tail_event::kind k) {
  for (const auto& e : ev)
    if (e.what == k) return true;
  return false;
}

// A clock the test moves by hand, shared with the follower.
struct ref_clock {
  manual_clock* c;
  double now() const { return c->now(); }
};

void sh(const std::string& script) {
  auto r = run_command("/bin/sh -c " + shell_quote(script) + " 2>&1");
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
}

}  // namespace

TEST_CASE("tail waits for a missing file, then follows a real writer", "[tail]") {
  temp_dir tmp;
  fs::path log = tmp / "T001.out";
  tail_follower<> f(log);
  std::vector<tail_event> ev;
  f.poll(ev);
  f.poll(ev);
  REQUIRE(ev.size() == 1);  // said once
  CHECK(ev[0].what == tail_event::kind::waiting);

  // A writer process that appends 200 numbered lines with small pauses.
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c",
            ("i=0; while [ $i -lt 200 ]; do echo line$i >> " + shell_quote(log.string()) +
             "; i=$((i+1)); if [ $((i % 50)) = 0 ]; then sleep 0.05; fi; done")
                .c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool got = poll_until(f, ev, [](const auto& e) { return lines_of(e).size() >= 200; });
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(got);
  auto lines = lines_of(ev);
  REQUIRE(lines.size() == 200);
  for (int i = 0; i < 200; ++i)
    CHECK(lines[static_cast<std::size_t>(i)] == "line" + std::to_string(i));
  CHECK(has_kind(ev, tail_event::kind::appeared));
}

TEST_CASE("tail restarts from 0 on truncation and says so", "[tail]") {
  temp_dir tmp;
  fs::path log = tmp / "t.out";
  sh("for i in 1 2 3 4 5 6 7 8 9 10; do echo old-line-$i; done > " + shell_quote(log.string()));
  tail_follower<> f(log);
  std::vector<tail_event> ev;
  REQUIRE(poll_until(f, ev, [](const auto& e) { return lines_of(e).size() == 10; }));
  sh(": > " + shell_quote(log.string()) + "; echo new1 >> " + shell_quote(log.string()));
  REQUIRE(poll_until(f, ev, [](const auto& e) { return lines_of(e).size() == 11; }));
  CHECK(has_kind(ev, tail_event::kind::truncated));
  CHECK(lines_of(ev).back() == "new1");
}

TEST_CASE("tail follows a rotation to the new file after the old one's last lines", "[tail]") {
  temp_dir tmp;
  fs::path log = tmp / "t.out";
  std::string q = shell_quote(log.string());
  sh("echo first > " + q);
  tail_follower<> f(log);
  std::vector<tail_event> ev;
  REQUIRE(poll_until(f, ev, [](const auto& e) { return lines_of(e).size() == 1; }));
  sh("echo last-old >> " + q + "; mv " + q + " " + q + ".1; echo new-first > " + q);
  REQUIRE(poll_until(f, ev, [](const auto& e) { return lines_of(e).size() == 3; }));
  auto lines = lines_of(ev);
  CHECK(lines == std::vector<std::string>{"first", "last-old", "new-first"});
  // The rotation notice sits between the old file's last line and the new file's first.
  std::size_t rot = 0, last_old = 0;
  for (std::size_t i = 0; i < ev.size(); ++i) {
    if (ev[i].what == tail_event::kind::rotated) rot = i;
    if (ev[i].text == "last-old") last_old = i;
  }
  CHECK(rot > last_old);
  // The name disappearing for a while is waited out.
  sh("rm " + q);
  f.poll(ev);
  sh("echo after-gap > " + q);
  REQUIRE(poll_until(f, ev, [](const auto& e) { return lines_of(e).size() == 4; }));
  CHECK(lines_of(ev).back() == "after-gap");
}

TEST_CASE("tail holds a partial line until its newline, or shows it after 1 s", "[tail]") {
  temp_dir tmp;
  fs::path log = tmp / "p.out";
  sh("printf 'done\\nhalf' > " + shell_quote(log.string()));
  manual_clock clock;
  tail_follower<ref_clock> f(log, log_stream::out, {}, ref_clock{&clock});
  std::vector<tail_event> ev;
  f.poll(ev);
  CHECK(lines_of(ev) == std::vector<std::string>{"done"});
  CHECK(f.bytes_held() == 4);
  clock.advance(0.5);
  f.poll(ev);
  CHECK(lines_of(ev).size() == 1);
  clock.advance(0.6);
  f.poll(ev);
  REQUIRE(lines_of(ev).size() == 2);
  CHECK(ev.back().text == "half");
  CHECK_FALSE(ev.back().complete);
  sh("printf ' more\\n' >> " + shell_quote(log.string()));
  f.poll(ev);
  REQUIRE(lines_of(ev).size() == 3);
  CHECK(ev.back().text == " more");
  CHECK(ev.back().complete);

  line_ring ring(10);
  ring.push_all(ev);
  REQUIRE(ring.size() == 2);  // "done", "half more"
  CHECK(ring[1].text == "half more");
  CHECK(ring[1].complete);
}

TEST_CASE("tail cuts a 10 MB line without newline and keeps memory bounded", "[tail]") {
  temp_dir tmp;
  fs::path log = tmp / "big.out";
  sh("head -c 10485760 /dev/zero | tr '\\0' x > " + shell_quote(log.string()));
  tail_options o;
  o.max_line_bytes = 4096;
  o.max_read_per_poll = 1 << 20;
  tail_follower<> f(log, log_stream::out, o);
  std::vector<tail_event> ev;
  for (int i = 0; i < 12; ++i) {
    f.poll(ev);
    CHECK(f.bytes_held() <= 4096);
  }
  auto lines = lines_of(ev);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == std::string(4096, 'x'));
  CHECK(ev.back().cut);
  CHECK(f.offset() == 10485760u);
  CHECK(f.bytes_dropped() == 10485760u - 4096u);
  sh("printf '\\nnext\\n' >> " + shell_quote(log.string()));
  f.poll(ev);
  CHECK(lines_of(ev).back() == "next");
}

TEST_CASE("merged follower tags stdout and stderr lines from a real process", "[tail]") {
  temp_dir tmp;
  fs::path out = tmp / "T001.out", err = tmp / "T001.err";
  merged_follower<> m(out, err);
  std::vector<tail_event> ev;
  m.poll(ev);
  sh("(echo out1; echo err1 >&2; sleep 0.1; echo out2; echo err2 >&2) > " +
     shell_quote(out.string()) + " 2> " + shell_quote(err.string()));
  REQUIRE(poll_until(m, ev, [](const auto& e) {
    return lines_of(e, log_stream::out).size() == 2 && lines_of(e, log_stream::err).size() == 2;
  }));
  CHECK(lines_of(ev, log_stream::out) == std::vector<std::string>{"out1", "out2"});
  CHECK(lines_of(ev, log_stream::err) == std::vector<std::string>{"err1", "err2"});
  line_ring ring(3);
  ring.push_all(ev);
  CHECK(ring.size() == 3);
  CHECK(ring.evicted() == 2);  // the "waiting for the file" notice and the first line
  for (const auto& l : ring) CHECK_FALSE(l.notice);
}

TEST_CASE("followers sanitize by default and pass bytes through when asked", "[tail]") {
  temp_dir tmp;
  fs::path log = tmp / "esc.out";
  sh("printf 'a\\033]52;c;SGk=\\007b\\033[31mc\\r\\n' > " + shell_quote(log.string()));
  tail_follower<> safe(log);
  std::vector<tail_event> ev;
  safe.drain(ev);
  CHECK(lines_of(ev) == std::vector<std::string>{"abc"});
  tail_options raw;
  raw.sanitize = false;
  tail_follower<> r(log, log_stream::out, raw);
  ev.clear();
  r.drain(ev);
  CHECK(lines_of(ev) == std::vector<std::string>{"a\x1b]52;c;SGk=\x07"
                                                 "b\x1b[31mc\r"});
}

TEST_CASE("line ring keeps the last N lines", "[tail]") {
  line_ring ring(3);
  for (int i = 0; i < 5; ++i) {
    tail_event e;
    e.text = std::to_string(i);
    ring.push(e);
  }
  REQUIRE(ring.size() == 3);
  CHECK(ring[0].text == "2");
  CHECK(ring[2].text == "4");
  CHECK(ring.evicted() == 2);
}

TEST_CASE("paged reader reads lines by number without loading the file", "[tail]") {
  temp_dir tmp;
  fs::path log = tmp / "many.out";
  sh("i=0; while [ $i -lt 5000 ]; do echo row$i; i=$((i+1)); done > " + shell_quote(log.string()) +
     "; printf 'tail-no-newline' >> " + shell_quote(log.string()));
  paged_reader p(log, 64 * 1024, 100);
  auto page = p.lines(2500, 3);
  CHECK(page == std::vector<std::string>{"row2500", "row2501", "row2502"});
  CHECK(p.lines(0, 1) == std::vector<std::string>{"row0"});
  CHECK(p.line_count() == 5001);
  CHECK(p.lines(4999, 10) == std::vector<std::string>{"row4999", "tail-no-newline"});
  CHECK(p.lines(6000, 10).empty());
  // Growth is seen after reload(); a replaced file is indexed afresh.
  sh("printf '\\nmore\\n' >> " + shell_quote(log.string()));
  REQUIRE(p.reload());
  CHECK(p.line_count() == 5002);
  CHECK(p.lines(5001, 1) == std::vector<std::string>{"more"});
  sh("printf 'x\\ny\\n' > " + shell_quote(log.string()) + ".new; mv " + shell_quote(log.string()) +
     ".new " + shell_quote(log.string()));
  REQUIRE(p.reload());
  CHECK(p.line_count() == 2);
  CHECK(p.lines(1, 5) == std::vector<std::string>{"y"});
}

TEST_CASE("paged reader cuts long lines and reports a missing file", "[tail]") {
  temp_dir tmp;
  fs::path log = tmp / "long.out";
  sh("head -c 300000 /dev/zero | tr '\\0' z > " + shell_quote(log.string()) + "; echo >> " +
     shell_quote(log.string()) + "; echo short >> " + shell_quote(log.string()));
  paged_reader p(log, 1000);
  auto l = p.lines(0, 2);
  REQUIRE(l.size() == 2);
  CHECK(l[0] == std::string(1000, 'z'));
  CHECK(l[1] == "short");
  paged_reader missing(tmp / "nope");
  CHECK_FALSE(missing.error().empty());
  CHECK(missing.lines(0, 5).empty());
  CHECK(missing.line_count() == 0);
}

TEST_CASE("a follower with max_backlog skips to the newest data at a line start", "[tail]") {
  temp_dir tmp;
  fs::path log = tmp / "fast.out";
  sh("i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done > " +
     shell_quote(log.string()));
  tail_options o;
  o.max_backlog = 100;
  tail_follower<> f(log, log_stream::out, o);
  std::vector<tail_event> ev;
  f.poll(ev);
  CHECK(has_kind(ev, tail_event::kind::skipped));
  auto lines = lines_of(ev);
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.size() < 20);
  CHECK(lines.back() == "line-1999");
  for (const auto& l : lines) CHECK(l.rfind("line-", 0) == 0);  // whole lines only
  sh("echo line-2000 >> " + shell_quote(log.string()));
  ev.clear();
  f.poll(ev);
  CHECK(lines_of(ev) == std::vector<std::string>{"line-2000"});
  CHECK_FALSE(has_kind(ev, tail_event::kind::skipped));
}

TEST_CASE("line ring: moving lines in keeps partial-line merging", "[tail]") {
  line_ring ring(5);
  auto line = [](log_stream s, std::string text, bool complete) {
    tail_event e;
    e.stream = s;
    e.text = std::move(text);
    e.complete = complete;
    return e;
  };
  ring.push(line(log_stream::out, "par", false));
  ring.push(line(log_stream::err, "err line", true));
  ring.push(line(log_stream::out, "tial", true));
  ring.push(line(log_stream::out, "next", true));
  REQUIRE(ring.size() == 3);
  CHECK(ring[0].text == "partial");
  CHECK(ring[0].complete);
  CHECK(ring[1].text == "err line");
  CHECK(ring[2].text == "next");
}

// Found by fuzz_tail: invalid bytes become U+FFFD (3 bytes each), and the cut at
// max_line_bytes fell inside one, so a "sanitized" line was not valid UTF-8.
TEST_CASE("a sanitized line cut at its limit never ends inside a UTF-8 character",
          "[tail][hostile]") {
  temp_dir tmp;
  fs::path log = tmp / "T001.out";
  test_support::write_text(log, std::string(6, '\xff') + "\n" + "\xc3\xa9\xc3\xa9\xc3\xa9x\n");
  tail_options o;
  o.max_line_bytes = 16;
  tail_follower<manual_clock> f(log, log_stream::out, o);
  std::vector<tail_event> ev;
  f.drain(ev);
  auto lines = lines_of(ev);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // 15 bytes
  CHECK(is_terminal_safe(lines[0]));
  CHECK(lines[1] == "\xc3\xa9\xc3\xa9\xc3\xa9x");
  CHECK(f.bytes_dropped() == 3);

  o.max_line_bytes = 5;
  tail_follower<manual_clock> g(log, log_stream::out, o);
  std::vector<tail_event> ev2;
  g.drain(ev2);
  auto cut = lines_of(ev2);
  REQUIRE(cut.size() == 2);
  CHECK(cut[1] == "\xc3\xa9\xc3\xa9");
  CHECK(is_terminal_safe(cut[0]));

  // The ring completing a partial line cuts at a character boundary too.
  line_ring ring(4);
  tail_event part;
  part.text = "ab";
  part.complete = false;
  ring.push(part, 4);
  tail_event rest;
  rest.text = "\xc3\xa9\xc3\xa9";
  ring.push(rest, 4);
  REQUIRE(ring.size() == 1);
  CHECK(ring[0].text == "ab\xc3\xa9");
  CHECK(ring[0].cut);
}

TEST_CASE("overwrite_cr: a progress bar is one line in its last state, \\r\\r\\n a line break",
          "[tail]") {
  temp_dir tmp;
  fs::path log = tmp / "bar.out";
  sh("printf 'start\\n 10%%' > " + shell_quote(log.string()));
  manual_clock clock;
  tail_options o;
  o.overwrite_cr = true;
  tail_follower<ref_clock> f(log, log_stream::out, o, ref_clock{&clock});
  std::vector<tail_event> ev;
  f.poll(ev);
  clock.advance(1.1);
  f.poll(ev);  // the bar so far, shown early
  REQUIRE(lines_of(ev) == std::vector<std::string>{"start", " 10%"});
  CHECK_FALSE(ev.back().complete);
  sh("printf '\\r 50%%\\r 90%%\\r100%%\\r\\r\\nnext\\r\\n' >> " + shell_quote(log.string()));
  ev.clear();
  f.poll(ev);
  REQUIRE(lines_of(ev) == std::vector<std::string>{"100%", "next"});
  CHECK(ev[0].rewrites);  // replaces " 10%", does not continue it
  CHECK(ev[0].complete);
  CHECK_FALSE(ev[1].rewrites);

  line_ring ring(10);
  tail_event first;
  first.text = " 10%";
  first.complete = false;
  ring.push(first);
  ring.push_all(ev);
  REQUIRE(ring.size() == 2);
  CHECK(ring[0].text == "100%");
  CHECK(ring[1].text == "next");
}

TEST_CASE("cr_folder keeps each rewritten line's last state, in any chunking", "[tail]") {
  const std::string in = "a\r\nbar 1%\rbar 50%\rbar 100%\ndone\r\r\nx\ry";
  const std::string want = "a\nbar 100%\ndone\ny";
  for (std::size_t chunk : {std::size_t{1}, std::size_t{2}, std::size_t{5}, in.size()}) {
    cr_folder f;
    std::string out;
    for (std::size_t i = 0; i < in.size(); i += chunk)
      f.feed(std::string_view(in).substr(i, chunk), out);
    f.finish(out);
    CHECK(out == want);
  }
  // A part longer than the hold limit goes out as it is; a rewrite after it starts a new line.
  cr_folder small(4);
  std::string out;
  small.feed("abcdefg\rxy\n", out);
  small.finish(out);
  CHECK(out == "abcd\nxy\n");
}

TEST_CASE("paged reader finds the next and the previous matching line, in bounded steps",
          "[tail]") {
  temp_dir tmp;
  fs::path log = tmp / "find.out";
  sh("i=0; while [ $i -lt 3000 ]; do if [ $((i % 1000)) -eq 7 ]; then echo ERROR $i; else echo "
     "ok $i; fi; i=$((i+1)); done > " +
     shell_quote(log.string()));
  paged_reader p(log, 64 * 1024, 100);
  auto is_error = [](std::string_view l) { return l.substr(0, 5) == "ERROR"; };
  auto r = p.find(is_error, 0, true);
  REQUIRE(r.line);
  CHECK(*r.line == 7);
  r = p.find(is_error, 8, true);
  REQUIRE(r.line);
  CHECK(*r.line == 1007);
  r = p.find(is_error, 2008, true);
  CHECK_FALSE(r.line);
  CHECK(r.searched_all);
  r = p.find(is_error, 2006, false);  // backward, from 2006 inclusive
  REQUIRE(r.line);
  CHECK(*r.line == 1007);
  r = p.find(is_error, 6, false);
  CHECK_FALSE(r.line);
  CHECK(r.searched_all);
  r = p.find(is_error, 1007, false);  // the line itself counts
  REQUIRE(r.line);
  CHECK(*r.line == 1007);
  // A budget of 500 lines stops short of the next match, and the search goes on from there.
  r = p.find(is_error, 1008, true, 500);
  CHECK_FALSE(r.line);
  CHECK_FALSE(r.searched_all);
  REQUIRE(r.next > 1008);
  r = p.find(is_error, r.next, true);
  REQUIRE(r.line);
  CHECK(*r.line == 2007);
  r = p.find(is_error, 2999, false, 300);
  CHECK_FALSE(r.line);
  CHECK_FALSE(r.searched_all);
  r = p.find(is_error, r.next, false);
  REQUIRE(r.line);
  CHECK(*r.line == 2007);
}
