// The worker against a real lease tree on disk: snapshots, log follow with task prefixes,
// paged reads, control files, retries, `lease use`, the lease list.
#include <dashboard/worker.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>

#include <fstream>

#include <catch2/catch.hpp>
#include <leaseq/index.hpp>

#include "lease_tree.hpp"

using namespace leaseq_dash;
using namespace std::chrono_literals;
using test_support::lease_tree;
using test_support::wait_until;

namespace {

// Collects the worker's messages until one of type T satisfies pred.
template <class T>
std::optional<T> wait_message(worker& w, std::vector<message>& seen,
                              const std::function<bool(const T&)>& pred = {}) {
  std::optional<T> found;
  wait_until(
      [&] {
        for (auto& m : w.take()) seen.push_back(std::move(m));
        for (const auto& m : seen)
          if (const auto* t = std::get_if<T>(&m); t && (!pred || pred(*t))) {
            found = *t;
            return true;
          }
        return false;
      },
      20s);
  return found;
}

}  // namespace

TEST_CASE("worker: snapshots, merged follow with prefixes, pages", "[dashboard][worker]") {
  lease_tree t;
  t.register_default();
  double now = leaseq::unix_now();
  t.claimed(1, "nodeA");
  t.claimed(2, "nodeB");
  t.hb("nodeA", now, {"T001"});
  t.hb("nodeB", now, {"T002"});
  leaseq::ensure_dir(t.paths.logs("nodeA"));
  leaseq::ensure_dir(t.paths.logs("nodeB"));
  test_support::write_text(t.paths.stdout_log("nodeA", "T001"), "alpha 1\nalpha \x1b[31m2\n");
  test_support::write_text(t.paths.stdout_log("nodeB", "T002"), "beta 1\n");
  test_support::write_text(t.paths.stderr_log("nodeB", "T002"), "beta err\n");

  leaseq::config cfg;
  worker w(t.home.string(), cfg, "/nonexistent/leaseq");
  std::vector<message> seen;
  w.send(req_open_lease{t.lease});
  auto snap = wait_message<msg_snapshot>(w, seen);
  REQUIRE(snap);
  CHECK(snap->snap->lease_id == t.lease);
  CHECK(snap->snap->tasks().size() == 2);
  auto leases = wait_message<msg_leases>(w, seen);
  REQUIRE(leases);
  REQUIRE(leases->listing.rows.size() == 1);
  CHECK(leases->listing.rows[0].id == t.lease);

  follow_target ft;
  ft.id = 7;
  ft.mode = log_mode::merged;
  ft.tasks.push_back({"T001", "nodeA", t.paths.stdout_log("nodeA", "T001").string(),
                      t.paths.stderr_log("nodeA", "T001").string()});
  ft.tasks.push_back({"T002", "nodeB", t.paths.stdout_log("nodeB", "T002").string(),
                      t.paths.stderr_log("nodeB", "T002").string()});
  w.send(req_follow{ft});
  auto has = [](const msg_log& l, const std::string& s) {
    return std::find(l.lines.begin(), l.lines.end(), s) != l.lines.end();
  };
  auto log = wait_message<msg_log>(w, seen, [&](const msg_log& l) {
    return l.follow_id == 7 && has(l, "T001 out│ alpha 2") && has(l, "T002 err│ beta err");
  });
  REQUIRE(log);
  CHECK(has(*log, "T001 out│ alpha 1"));
  CHECK(has(*log, "T002 out│ beta 1"));
  CHECK(log->mtime.has_value());
  for (const auto& l : log->lines) CHECK(l.find('\x1b') == std::string::npos);
  // Appended lines arrive.
  {
    std::ofstream out(t.paths.stdout_log("nodeB", "T002"), std::ios::app);
    out << "beta 2\n";
  }
  CHECK(
      wait_message<msg_log>(w, seen, [&](const msg_log& l) { return has(l, "T002 out│ beta 2"); }));

  std::string big;
  for (int i = 0; i < 5000; ++i) big += "line " + std::to_string(i) + "\n";
  test_support::write_text(t.paths.stdout_log("nodeA", "T009"), big);
  w.send(req_page{t.paths.stdout_log("nodeA", "T009").string(), 100, 10, 3});
  auto page =
      wait_message<msg_page>(w, seen, [](const msg_page& p) { return p.gen == 3 && p.total; });
  REQUIRE(page);
  CHECK(*page->total == 5000);
  REQUIRE(page->lines.size() == 10);
  CHECK(page->lines[0] == "line 100");
  w.send(req_page{t.paths.stdout_log("nodeA", "T009").string(), UINT64_MAX / 2, 10, 4});
  auto end = wait_message<msg_page>(w, seen, [](const msg_page& p) { return p.gen == 4; });
  REQUIRE(end);
  CHECK(end->first == 4990);
  CHECK(end->lines.back() == "line 4999");
  w.send(req_page{(t.home / "missing.out").string(), 0, 10, 5});
  auto missing = wait_message<msg_page>(w, seen, [](const msg_page& p) { return p.gen == 5; });
  REQUIRE(missing);
  CHECK_FALSE(missing->error.empty());
}

TEST_CASE("worker: the log pane learns of a new line from inotify, not from its poll",
          "[dashboard][worker]") {
  lease_tree t;
  t.register_default();
  t.claimed(1, "nodeA");
  t.hb("nodeA", leaseq::unix_now(), {"T001"});
  leaseq::ensure_dir(t.paths.logs("nodeA"));
  test_support::write_text(t.paths.stdout_log("nodeA", "T001"), "first\n");

  leaseq::config cfg;
  // Polled once an hour: a line that shows up within the wait below came through inotify.
  worker w(t.home.string(), cfg, "/nonexistent/leaseq", 3600.0);
  REQUIRE(w.wake_fd() >= 0);
  std::vector<message> seen;
  follow_target ft;
  ft.id = 3;
  ft.tasks.push_back({"T001", "nodeA", t.paths.stdout_log("nodeA", "T001").string(),
                      t.paths.stderr_log("nodeA", "T001").string()});
  w.send(req_follow{ft});
  auto has = [](const msg_log& l, const std::string& s) {
    return std::find(l.lines.begin(), l.lines.end(), s) != l.lines.end();
  };
  REQUIRE(wait_message<msg_log>(w, seen, [&](const msg_log& l) { return has(l, "first"); }));
  // The UI's descriptor is readable while a message waits.
  {
    std::ofstream out(t.paths.stdout_log("nodeA", "T001"), std::ios::app);
    out << "second\n";
  }
  struct pollfd p {
    w.wake_fd(), POLLIN, 0
  };
  REQUIRE(::poll(&p, 1, 20000) == 1);
  CHECK(wait_message<msg_log>(w, seen, [&](const msg_log& l) { return has(l, "second"); }));
  // A file that appears after the follow began (the task's stderr) is seen the same way.
  ft.id = 4;
  ft.mode = log_mode::merged;
  w.send(req_follow{ft});
  REQUIRE(wait_message<msg_log>(w, seen, [&](const msg_log& l) { return l.follow_id == 4; }));
  test_support::write_text(t.paths.stderr_log("nodeA", "T001"), "oops\n");
  CHECK(wait_message<msg_log>(
      w, seen, [&](const msg_log& l) { return l.follow_id == 4 && has(l, "err│ oops"); }));
}

TEST_CASE("worker: cancel, retry, pause/resume, lease use write what the CLI writes",
          "[dashboard][worker]") {
  lease_tree t;
  t.register_default();
  double now = leaseq::unix_now();
  t.claimed(1, "nodeA");
  t.done(2, "nodeA", "FAILED", 3);
  t.hb("nodeA", now, {"T001"});
  leaseq::config cfg;
  worker w(t.home.string(), cfg, "/nonexistent/leaseq");
  std::vector<message> seen;
  w.send(req_open_lease{t.lease});
  REQUIRE(wait_message<msg_snapshot>(w, seen));

  w.send(req_cancel{"T001"});
  auto a = wait_message<msg_action>(
      w, seen, [](const msg_action& m) { return m.text.find("cancel") != std::string::npos; });
  REQUIRE(a);
  CHECK(a->ok);
  bool found = false;
  for (const auto& f : leaseq::fs::directory_iterator(t.paths.control("nodeA")))
    if (f.path().filename().string().rfind("cancel_T001_", 0) == 0) found = true;
  CHECK(found);

  seen.clear();
  w.send(req_retry{"T002"});
  auto r = wait_message<msg_action>(w, seen);
  REQUIRE(r);
  CHECK(r->ok);
  CHECK(r->text == "retried T002 as T003");
  // Same lane as T002 (its node), new seq, new key.
  auto spec = leaseq::read_json_tolerant(t.paths.inbox_task("nodeA", "T003"));
  REQUIRE(spec.ok());
  CHECK(spec.value->value("retry_of", "") == "T002");
  CHECK(spec.value->value("key", "").rfind("retry-T002-", 0) == 0);

  seen.clear();
  w.send(req_lane{"nodeA", true});
  REQUIRE(wait_message<msg_action>(w, seen));
  CHECK(leaseq::fs::exists(t.paths.control("nodeA") / "pause.json"));
  seen.clear();
  w.send(req_lane{"nodeA", false});
  REQUIRE(wait_message<msg_action>(w, seen));
  CHECK(leaseq::fs::exists(t.paths.control("nodeA") / "resume.json"));

  leaseq::register_lease(leaseq::home_paths(t.home),
                         {"4242", "slurm", std::nullopt, now, leaseq::json::object()});
  seen.clear();
  w.send(req_set_default{"4242"});
  auto u = wait_message<msg_action>(w, seen);
  REQUIRE(u);
  CHECK(u->ok);
  CHECK(*leaseq::read_index(leaseq::home_paths(t.home)).index.default_lease == "4242");
  seen.clear();
  w.send(req_set_default{"777"});
  auto bad = wait_message<msg_action>(w, seen);
  REQUIRE(bad);
  CHECK_FALSE(bad->ok);
  seen.clear();
  w.send(req_cancel{"T099"});
  auto unknown = wait_message<msg_action>(w, seen);
  REQUIRE(unknown);
  CHECK_FALSE(unknown->ok);
  CHECK(unknown->text.find("not found") != std::string::npos);
}

TEST_CASE("worker: a line rewritten with \\r keeps its last state, in the pane and the pages",
          "[dashboard][worker][daily]") {
  lease_tree t;
  t.register_default();
  t.claimed(1, "nodeA");
  t.hb("nodeA", leaseq::unix_now(), {"T001"});
  leaseq::ensure_dir(t.paths.logs("nodeA"));
  auto log_path = t.paths.stdout_log("nodeA", "T001");
  // A tqdm-style bar, a CRLF line, and a bar still drawing (no newline yet).
  std::string content = "start\n 10%\r 50%\r100% done\nwindows line\r\nepoch 2  5%\repoch 2 40%";
  test_support::write_text(log_path, content);

  leaseq::config cfg;
  worker w(t.home.string(), cfg, "/nonexistent/leaseq");
  std::vector<message> seen;
  w.send(req_open_lease{t.lease});
  follow_target ft;
  ft.id = 3;
  ft.tasks.push_back({"T001", "nodeA", log_path.string(), ""});
  w.send(req_follow{ft});
  auto want = std::vector<std::string>{"start", "100% done", "windows line", "epoch 2 40%"};
  auto log = wait_message<msg_log>(w, seen, [&](const msg_log& l) { return l.lines == want; });
  REQUIRE(log);
  // The bar moves on: the partial line already shown is replaced, not continued.
  {
    std::ofstream f(log_path, std::ios::app);
    f << "\repoch 2 90%\repoch 2 100%\nafter\n";
  }
  want = {"start", "100% done", "windows line", "epoch 2 100%", "after"};
  seen.clear();
  log = wait_message<msg_log>(w, seen, [&](const msg_log& l) { return l.lines == want; });
  CHECK(log);
  CHECK(test_support::read_text(log_path).find(" 10%\r 50%\r") != std::string::npos);

  w.send(req_page{log_path.string(), 0, 10, 5});
  auto page = wait_message<msg_page>(w, seen, [](const msg_page& p) { return p.gen == 5; });
  REQUIRE(page);
  CHECK(page->lines ==
        std::vector<std::string>{"start", "100% done", "windows line", "epoch 2 100%", "after"});

  // A search matches the text as shown: " 50%" was rewritten away, "EPOCH 2 100" is there.
  w.send(req_page{log_path.string(), 0, 2, 6, page_find{"50%", 0, true}});
  page = wait_message<msg_page>(w, seen, [](const msg_page& p) { return p.gen == 6; });
  REQUIRE(page);
  CHECK(page->searched);
  CHECK_FALSE(page->match);
  CHECK(page->searched_all);
  CHECK(page->first == 0);  // no match: the page stays
  w.send(req_page{log_path.string(), 0, 2, 7, page_find{"EPOCH 2 100", 0, true}});
  page = wait_message<msg_page>(w, seen, [](const msg_page& p) { return p.gen == 7; });
  REQUIRE(page);
  REQUIRE(page->match);
  CHECK(*page->match == 3);
  CHECK(page->first == 3);  // off the 2-line page: the match goes to the top
  CHECK(page->lines == std::vector<std::string>{"epoch 2 100%", "after"});
  // Near the end of the file the page is the last full one, the match on it.
  w.send(req_page{log_path.string(), 0, 3, 9, page_find{"after", 0, true}});
  page = wait_message<msg_page>(w, seen, [](const msg_page& p) { return p.gen == 9; });
  REQUIRE(page);
  REQUIRE(page->match);
  CHECK(*page->match == 4);
  CHECK(page->first == 2);
  CHECK(page->lines == std::vector<std::string>{"windows line", "epoch 2 100%", "after"});
  w.send(req_page{log_path.string(), 2, 2, 8, page_find{"start", 1, false}});
  page = wait_message<msg_page>(w, seen, [](const msg_page& p) { return p.gen == 8; });
  REQUIRE(page);
  REQUIRE(page->match);
  CHECK(*page->match == 0);
  CHECK(page->first == 0);
}

TEST_CASE(
    "worker: a merged follow puts backlogs in write order, the ring keeps every task's newest",
    "[dashboard][worker][daily]") {
  lease_tree t;
  t.register_default();
  double now = leaseq::unix_now();
  t.claimed(1, "nodeA");
  t.claimed(2, "nodeB");
  leaseq::ensure_dir(t.paths.logs("nodeA"));
  leaseq::ensure_dir(t.paths.logs("nodeB"));
  std::string chatty;
  for (int i = 1; i <= 300; ++i) chatty += "a" + std::to_string(i) + "\n";
  test_support::write_text(t.paths.stdout_log("nodeA", "T001"), chatty);
  test_support::write_text(t.paths.stdout_log("nodeB", "T002"), "b1\nb2\nb3\nb4\nb5\n");
  // T002 wrote its lines a minute before T001's.
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>(now - 60);
  ts[0].tv_nsec = ts[1].tv_nsec = 0;
  REQUIRE(::utimensat(AT_FDCWD, t.paths.stdout_log("nodeB", "T002").c_str(), ts, 0) == 0);

  leaseq::config cfg;  // ui.log_tail_lines: 200
  worker w(t.home.string(), cfg, "/nonexistent/leaseq");
  std::vector<message> seen;
  follow_target ft;
  ft.id = 9;
  ft.tasks.push_back({"T001", "nodeA", t.paths.stdout_log("nodeA", "T001").string(), ""});
  ft.tasks.push_back({"T002", "nodeB", t.paths.stdout_log("nodeB", "T002").string(), ""});
  w.send(req_follow{ft});
  auto log = wait_message<msg_log>(w, seen, [](const msg_log& l) {
    return l.follow_id == 9 && !l.lines.empty() && l.lines.back() == "T001│ a300";
  });
  REQUIRE(log);
  REQUIRE(log->lines.size() == 200);
  CHECK(log->lines[0] == "T002│ b1");  // the older backlog first
  CHECK(log->lines[4] == "T002│ b5");
  CHECK(log->lines[5] == "T001│ a106");  // T001 gave up its oldest lines, T002 none
}

TEST_CASE(
    "worker: a big lease opens with a quick scan, its rows read when asked, then the full one",
    "[dashboard][worker]") {
  lease_tree t;
  t.register_default();
  double now = leaseq::unix_now();
  t.hb("nodeA", now, {});
  t.pending(1, "nodeA");
  t.pending(2, "_any");
  t.done(3, "nodeA", "FAILED", 3);
  // A pending file that does not parse: the quick scan counts it by its name, the full scan
  // shows it UNKNOWN.
  test_support::write_text(t.paths.inbox_task("nodeA", "T004"), "{not json");

  leaseq::config cfg;
  worker w(t.home.string(), cfg, "/nonexistent/leaseq", 0.25, 1);  // quick from 1 task
  std::vector<message> seen;
  w.send(req_open_lease{t.lease});
  auto quick = wait_message<msg_snapshot>(w, seen);
  REQUIRE(quick);
  CHECK(quick->partial);
  CHECK(quick->snap->tasks().size() == 4);
  // The rows it left unread are read from their files when the list asks (req_read_rows),
  // but for T004, which does not parse: that is the full scan's to show.
  req_read_rows ask{t.lease, {}};
  for (const char* id : {"T001", "T002", "T004"}) {
    const auto* v = quick->snap->find_task(id);
    REQUIRE(v);
    CHECK_FALSE(v->spec);
    ask.rows.push_back(*v);
  }
  w.send(ask);
  auto read = wait_message<msg_rows_read>(w, seen);
  REQUIRE(read);
  CHECK(read->lease_id == t.lease);
  REQUIRE(read->rows.size() == 2);
  CHECK(read->rows[0].command() == "echo T001");
  CHECK(read->rows[1].id == "T002");
  CHECK(read->rows[1].lane() == "_any");
  CHECK(read->rows[1].state == leaseq::task_state::pending);
  auto full = wait_message<msg_snapshot>(w, seen, [](const msg_snapshot& s) { return !s.partial; });
  REQUIRE(full);
  REQUIRE(full->snap->tasks().size() == 4);
  const auto* p = full->snap->find_task("T001");
  REQUIRE(p);
  REQUIRE(p->spec);
  CHECK(p->command() == "echo T001");
  const auto* done = full->snap->find_task("T003");
  REQUIRE(done);
  CHECK(done->exit_code() == 3);
  const auto* bad = full->snap->find_task("T004");
  REQUIRE(bad);
  CHECK(bad->unknown);
}

TEST_CASE("worker: the task list of a big table is derived on its own thread",
          "[dashboard][worker]") {
  lease_tree t;
  t.register_default();
  leaseq::config cfg;
  worker w(t.home.string(), cfg, "/nonexistent/leaseq");
  auto table = std::make_shared<std::vector<leaseq::task_view>>();
  for (int seq = 1; seq <= 3; ++seq) {
    leaseq::task_view v;
    v.id = leaseq::format_task_id(seq);
    v.seq = seq;
    v.state = seq == 2 ? leaseq::task_state::running : leaseq::task_state::pending;
    table->push_back(v);
  }
  visible_source from;
  from.table = table;
  from.filter.states = {leaseq::task_state::pending};
  from.cap = 10;
  std::vector<message> seen;
  w.send(req_derive{from, {}});
  auto rows = wait_message<msg_rows>(w, seen);
  REQUIRE(rows);
  CHECK(rows->asked == from);
  REQUIRE(rows->rows.tasks.size() == 2);
  CHECK(rows->rows.total == 2);
  CHECK(rows->rows.tasks[0]->id == "T001");
  CHECK(rows->rows.tasks[1]->id == "T003");
}
