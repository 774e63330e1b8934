#include <leaseq/clock.hpp>
#include <leaseq/tail.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "memory_fs.hpp"
#include "test_support.hpp"

using namespace leaseq;
using test_support::memory_fs;
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

// A follower over the in-memory filesystem, with the test's clock.
using mem_follower = tail_follower<ref_clock, memory_fs>;

mem_follower follow(const memory_fs& mfs, const fs::path& p, manual_clock& clock,
                    tail_options o = {}) {
  return mem_follower(p, log_stream::out, o, ref_clock{&clock}, mfs);
}

void append_file(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::app) << text;
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
  memory_fs mfs;
  manual_clock clock;
  fs::path log = "/logs/t.out";
  for (int i = 1; i <= 10; ++i) mfs.append(log, "old-line-" + std::to_string(i) + "\n");
  auto f = follow(mfs, log, clock);
  std::vector<tail_event> ev;
  f.poll(ev);
  REQUIRE(lines_of(ev).size() == 10);
  mfs.truncate(log);
  mfs.append(log, "new1\n");
  f.poll(ev);
  REQUIRE(lines_of(ev).size() == 11);
  CHECK(has_kind(ev, tail_event::kind::truncated));
  CHECK(lines_of(ev).back() == "new1");
  CHECK(f.offset() == 5);
  // A truncation with a partial line held ends that line before the notice.
  mfs.append(log, "half");
  f.poll(ev);
  mfs.truncate(log, 2);
  ev.clear();
  f.poll(ev);
  REQUIRE(ev.size() >= 2);
  CHECK(ev[0].what == tail_event::kind::line);
  CHECK(ev[0].text == "half");
  CHECK(ev[1].what == tail_event::kind::truncated);
  CHECK(f.bytes_held() == 2);  // "ne", no newline yet
}

TEST_CASE("tail follows a rotation to the new file after the old one's last lines", "[tail]") {
  memory_fs mfs;
  manual_clock clock;
  fs::path log = "/logs/t.out";
  mfs.append(log, "first\n");
  auto f = follow(mfs, log, clock);
  std::vector<tail_event> ev;
  f.poll(ev);
  REQUIRE(lines_of(ev).size() == 1);
  mfs.append(log, "last-old\n");
  mfs.rename(log, "/logs/t.out.1");
  mfs.append(log, "new-first\n");
  f.poll(ev);
  REQUIRE(lines_of(ev).size() == 3);
  auto lines = lines_of(ev);
  CHECK(lines == std::vector<std::string>{"first", "last-old", "new-first"});
  // The rotation notice sits between the old file's last line and the new file's first.
  std::size_t rot = 0, last_old = 0;
  for (std::size_t i = 0; i < ev.size(); ++i) {
    if (ev[i].what == tail_event::kind::rotated) rot = i;
    if (ev[i].text == "last-old") last_old = i;
  }
  CHECK(rot > last_old);
  // The name disappearing for a while is waited out; the open file is still read meanwhile.
  mfs.append(log, "before-rm\n");
  mfs.remove(log);
  f.poll(ev);
  CHECK(lines_of(ev).back() == "before-rm");
  CHECK(f.is_open());
  mfs.append(log, "after-gap\n");
  f.poll(ev);
  REQUIRE(lines_of(ev).size() == 5);
  CHECK(lines_of(ev).back() == "after-gap");
  CHECK(has_kind(ev, tail_event::kind::rotated));
}

TEST_CASE("tail reports a name that is not a file and a read error once each", "[tail]") {
  memory_fs mfs;
  manual_clock clock;
  fs::path log = "/logs/T001.out";
  auto f = follow(mfs, log, clock);
  std::vector<tail_event> ev;
  f.poll(ev);
  f.poll(ev);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].what == tail_event::kind::waiting);
  mfs.make_special(log);
  ev.clear();
  f.poll(ev);
  f.poll(ev);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].what == tail_event::kind::error);
  CHECK(ev[0].text == "/logs/T001.out: not a regular file");
  CHECK_FALSE(f.is_open());

  mfs.remove(log);
  mfs.append(log, "one\ntwo");
  mfs.fail_reads(log, EIO);
  ev.clear();
  f.poll(ev);
  f.poll(ev);
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].what == tail_event::kind::appeared);
  CHECK(ev[1].what == tail_event::kind::error);
  CHECK(ev[1].text.find("cannot read") != std::string::npos);
  mfs.fail_reads(log, 0);
  ev.clear();
  f.drain(ev);
  CHECK(lines_of(ev) == std::vector<std::string>{"one", "two"});
  CHECK_FALSE(ev.back().complete);  // drained: the file ends without a newline
}

TEST_CASE("tail with from_start = false starts at the end of an existing file only", "[tail]") {
  memory_fs mfs;
  manual_clock clock;
  fs::path log = "/logs/T001.out";
  mfs.append(log, "old\n");
  tail_options o;
  o.from_start = false;
  auto f = follow(mfs, log, clock, o);
  std::vector<tail_event> ev;
  f.poll(ev);
  CHECK(lines_of(ev).empty());
  mfs.append(log, "new\n");
  f.poll(ev);
  CHECK(lines_of(ev) == std::vector<std::string>{"new"});
  // A rotated-in file is read from its start.
  mfs.remove(log);
  mfs.append(log, "rotated\n");
  f.poll(ev);
  CHECK(lines_of(ev) == std::vector<std::string>{"new", "rotated"});
}

TEST_CASE("tail holds a partial line until its newline, or shows it after 1 s", "[tail]") {
  memory_fs mfs;
  fs::path log = "/logs/p.out";
  mfs.append(log, "done\nhalf");
  manual_clock clock;
  auto f = follow(mfs, log, clock);
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
  mfs.append(log, " more\n");
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
  memory_fs mfs;
  manual_clock clock;
  fs::path log = "/logs/big.out";
  mfs.append(log, std::string(10485760, 'x'));
  tail_options o;
  o.max_line_bytes = 4096;
  o.max_read_per_poll = 1 << 20;
  auto f = follow(mfs, log, clock, o);
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
  mfs.append(log, "\nnext\n");
  f.poll(ev);
  CHECK(lines_of(ev).back() == "next");
}

TEST_CASE("merged follower tags stdout and stderr lines", "[tail]") {
  memory_fs mfs;
  manual_clock clock;
  fs::path out = "/logs/T001.out", err = "/logs/T001.err";
  merged_follower<ref_clock, memory_fs> m(out, err, {}, ref_clock{&clock}, mfs);
  std::vector<tail_event> ev;
  m.poll(ev);
  mfs.append(out, "out1\n");
  mfs.append(err, "err1\n");
  m.poll(ev);
  mfs.append(out, "out2\n");
  mfs.append(err, "err2\n");
  m.poll(ev);
  CHECK(lines_of(ev, log_stream::out) == std::vector<std::string>{"out1", "out2"});
  CHECK(lines_of(ev, log_stream::err) == std::vector<std::string>{"err1", "err2"});
  line_ring ring(3);
  ring.push_all(ev);
  CHECK(ring.size() == 3);
  CHECK(ring.evicted() == 2);  // the "waiting for the file" notice and the first line
  for (const auto& l : ring) CHECK_FALSE(l.notice);
}

TEST_CASE("followers sanitize by default and pass bytes through when asked", "[tail]") {
  memory_fs mfs;
  manual_clock clock;
  fs::path log = "/logs/esc.out";
  mfs.append(log,
             "a\x1b]52;c;SGk=\x07"
             "b\x1b[31mc\r\n");
  auto safe = follow(mfs, log, clock);
  std::vector<tail_event> ev;
  safe.drain(ev);
  CHECK(lines_of(ev) == std::vector<std::string>{"abc"});
  tail_options raw;
  raw.sanitize = false;
  auto r = follow(mfs, log, clock, raw);
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
  std::string rows;
  for (int i = 0; i < 5000; ++i) rows += "row" + std::to_string(i) + "\n";
  test_support::write_text(log, rows + "tail-no-newline");
  paged_reader p(log, 64 * 1024, 100);
  auto page = p.lines(2500, 3);
  CHECK(page == std::vector<std::string>{"row2500", "row2501", "row2502"});
  CHECK(p.lines(0, 1) == std::vector<std::string>{"row0"});
  CHECK(p.line_count() == 5001);
  CHECK(p.lines(4999, 10) == std::vector<std::string>{"row4999", "tail-no-newline"});
  CHECK(p.lines(6000, 10).empty());
  // Growth is seen after reload(); a replaced file is indexed afresh.
  append_file(log, "\nmore\n");
  REQUIRE(p.reload());
  CHECK(p.line_count() == 5002);
  CHECK(p.lines(5001, 1) == std::vector<std::string>{"more"});
  test_support::write_text(log.string() + ".new", "x\ny\n");
  fs::rename(log.string() + ".new", log);
  REQUIRE(p.reload());
  CHECK(p.line_count() == 2);
  CHECK(p.lines(1, 5) == std::vector<std::string>{"y"});
}

TEST_CASE("paged reader cuts long lines and reports a missing file", "[tail]") {
  temp_dir tmp;
  fs::path log = tmp / "long.out";
  test_support::write_text(log, std::string(300000, 'z') + "\nshort\n");
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
  memory_fs mfs;
  manual_clock clock;
  fs::path log = "/logs/fast.out";
  for (int i = 0; i < 2000; ++i) mfs.append(log, "line-" + std::to_string(i) + "\n");
  tail_options o;
  o.max_backlog = 100;
  auto f = follow(mfs, log, clock, o);
  std::vector<tail_event> ev;
  f.poll(ev);
  CHECK(has_kind(ev, tail_event::kind::skipped));
  auto lines = lines_of(ev);
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.size() < 20);
  CHECK(lines.back() == "line-1999");
  for (const auto& l : lines) CHECK(l.rfind("line-", 0) == 0);  // whole lines only
  mfs.append(log, "line-2000\n");
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
  memory_fs mfs;
  manual_clock clock;
  fs::path log = "/logs/T001.out";
  mfs.append(log, std::string(6, '\xff') + "\n" + "\xc3\xa9\xc3\xa9\xc3\xa9x\n");
  tail_options o;
  o.max_line_bytes = 16;
  auto f = follow(mfs, log, clock, o);
  std::vector<tail_event> ev;
  f.drain(ev);
  auto lines = lines_of(ev);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // 15 bytes
  CHECK(is_terminal_safe(lines[0]));
  CHECK(lines[1] == "\xc3\xa9\xc3\xa9\xc3\xa9x");
  CHECK(f.bytes_dropped() == 3);

  o.max_line_bytes = 5;
  auto g = follow(mfs, log, clock, o);
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
  memory_fs mfs;
  fs::path log = "/logs/bar.out";
  mfs.append(log, "start\n 10%");
  manual_clock clock;
  tail_options o;
  o.overwrite_cr = true;
  auto f = follow(mfs, log, clock, o);
  std::vector<tail_event> ev;
  f.poll(ev);
  clock.advance(1.1);
  f.poll(ev);  // the bar so far, shown early
  REQUIRE(lines_of(ev) == std::vector<std::string>{"start", " 10%"});
  CHECK_FALSE(ev.back().complete);
  mfs.append(log, "\r 50%\r 90%\r100%\r\r\nnext\r\n");
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
  std::string rows;
  for (int i = 0; i < 3000; ++i)
    rows += (i % 1000 == 7 ? "ERROR " : "ok ") + std::to_string(i) + "\n";
  test_support::write_text(log, rows);
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
