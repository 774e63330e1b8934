// Follow semantics, the log viewer's keys, merged follow of marked tasks, paged logs.
#include "fixtures.hpp"

#include <catch2/catch.hpp>

using namespace dash_test;
namespace tui = leaseq::tui;

namespace {
std::shared_ptr<const leaseq::snapshot> with_second_runner(const std::string& lease) {
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot(lease));
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>(snap->tasks());
  tasks->push_back(make_task(7, task_state::running, "nodeB", "echo second"));
  snap->task_table = tasks;
  snap->generation = 5;
  return snap;
}

// The page the worker would send for `req`: lines first..first+count of a 1000-line log with
// "ERROR at N" every 100 lines from 42.
msg_page fake_page(const req_page& req, std::uint64_t first) {
  msg_page p;
  p.gen = req.gen;
  p.first = first;
  for (std::uint64_t i = first; i < first + static_cast<std::uint64_t>(req.count) && i < 1000; ++i)
    p.lines.push_back(i % 100 == 42 ? "x ERROR at " + std::to_string(i)
                                    : "ok " + std::to_string(i));
  p.total = 1000;
  return p;
}

// Where `text` starts on screen (column, row), or (-1, -1).
std::pair<int, int> find_on_screen(const tui::buffer& b, const std::string& text) {
  for (int y = 0; y < b.height(); ++y) {
    std::string row = b.row_text(y);
    if (auto at = row.find(text); at != std::string::npos)
      return {leaseq::detail::display_width(row.substr(0, at)), y};
  }
  return {-1, -1};
}
}  // namespace

TEST_CASE("f follows the only RUNNING task", "[dashboard][logs]") {
  model m = dashboard_model();
  press(m, 'f');
  REQUIRE(last_request<req_follow>(m));
  const auto& t = last_request<req_follow>(m)->target;
  REQUIRE(t.tasks.size() == 1);
  CHECK(t.tasks[0].task == "T003");
  CHECK(t.tasks[0].out_path == "/home/u/.leaseq/runs/99887766/logs/nodeA/T003.out");
  CHECK(t.mode == log_mode::out);
  CHECK(m.log_open);
  update(m, message{msg_log{t.id, {"epoch 1 loss 0.5", "epoch 2 loss 0.4"}, now - 3}});
  std::string s = screen_text(m);
  CHECK(contains(s, "[stdout] T003"));
  CHECK(contains(s, "epoch 2 loss 0.4"));
  CHECK(contains(s, "log updated 3s ago"));
  update(m, message{msg_log{t.id + 100, {"stale follower line"}, now}});
  CHECK_FALSE(contains(screen_text(m), "stale follower line"));
}

TEST_CASE("f with several RUNNING tasks opens a selector", "[dashboard][logs]") {
  model m = dashboard_model();
  update(m, message{msg_snapshot{with_second_runner("99887766")}});
  press(m, 'f');
  REQUIRE(m.ov == overlay::selector);
  std::string s = screen_text(m);
  CHECK(contains(s, "follow which RUNNING task?"));
  CHECK(contains(s, "T003"));
  CHECK(contains(s, "T007"));
  press(m, 'j');
  press(m, tui::key_code::enter);
  CHECK(m.ov == overlay::none);
  REQUIRE(last_request<req_follow>(m));
  CHECK(last_request<req_follow>(m)->target.tasks[0].task == "T007");
}

TEST_CASE("F / E / A follow the selected task, marked tasks follow merged", "[dashboard][logs]") {
  model m = dashboard_model();
  press(m, 'A');
  CHECK(last_request<req_follow>(m)->target.mode == log_mode::merged);
  press(m, 'E');
  CHECK(last_request<req_follow>(m)->target.mode == log_mode::err);
  m.focus = pane::tasks;
  press(m, 'v');  // marks T003, moves to T005
  press(m, ' ');  // marks T005
  CHECK(m.marked.size() == 2);
  CHECK(contains(screen_text(m), "marked:2"));
  press(m, 'F');
  const auto& t = last_request<req_follow>(m)->target;
  REQUIRE(t.tasks.size() == 2);
  CHECK(t.mode == log_mode::out);
  CHECK(contains(screen_text(m), "2 tasks merged"));
}

TEST_CASE("log viewer keys: Space, PgUp/PgDn, g/G, o, m, Esc", "[dashboard][logs]") {
  model m = dashboard_model();
  press(m, 'F');
  std::vector<std::string> lines;
  for (int i = 0; i < 100; ++i) lines.push_back("line " + std::to_string(i));
  update(m, message{msg_log{m.follow.id, lines, now}});
  m.focus = pane::log;
  CHECK(m.log_view.follow);
  press(m, ' ');
  CHECK_FALSE(m.log_view.follow);
  CHECK(contains(screen_text(m), "follow paused"));
  press(m, 'g');
  CHECK(m.log_view.offset == 0);
  CHECK(contains(screen_text(m), "line 0"));
  press(m, tui::key_code::page_down);
  CHECK(m.log_view.offset > 0);
  int off = m.log_view.offset;
  press(m, tui::key_code::page_up);
  CHECK(m.log_view.offset < off);
  press(m, 'G');  // the bottom: following again, like tail -f
  CHECK(contains(screen_text(m), "line 99"));
  CHECK(m.log_view.follow);
  press(m, ' ');
  CHECK_FALSE(m.log_view.follow);
  press(m, ' ');
  CHECK(m.log_view.follow);
  press(m, 'o');
  CHECK(m.follow.mode == log_mode::err);
  CHECK(contains(screen_text(m), "[stderr]"));
  press(m, 'o');
  CHECK(m.follow.mode == log_mode::out);
  press(m, 'm');
  CHECK(m.follow.mode == log_mode::merged);
  CHECK(contains(screen_text(m), "[stdout+stderr]"));
  press(m, 'm');
  CHECK(m.follow.mode == log_mode::out);
  m.focus = pane::log;
  press(m, tui::key_code::escape);
  CHECK_FALSE(m.log_open);
  CHECK(m.focus == pane::tasks);
}

TEST_CASE("ui.follow_auto_latest follows the newest RUNNING task", "[dashboard][logs]") {
  model m = lease_list_model(100, 30);
  m.ui.follow_auto_latest = true;
  open_lease(m, "99887766");
  update(m, message{msg_snapshot{with_second_runner("99887766")}});
  REQUIRE(last_request<req_follow>(m));
  CHECK(last_request<req_follow>(m)->target.tasks.size() == 1);
  CHECK(last_request<req_follow>(m)->target.tasks[0].task == "T007");
  model off = lease_list_model(100, 30);
  open_lease(off, "99887766");
  off.outbox.clear();
  update(off, message{msg_snapshot{with_second_runner("99887766")}});
  CHECK_FALSE(last_request<req_follow>(off));
}

TEST_CASE("L opens a paged view of the log that pages through the worker", "[dashboard][logs]") {
  model m = dashboard_model();
  press(m, 'L');
  REQUIRE(m.ov == overlay::paged);
  REQUIRE(last_request<req_page>(m));
  auto req = *last_request<req_page>(m);
  CHECK(req.first == 0);
  CHECK(req.path == "/home/u/.leaseq/runs/99887766/logs/nodeA/T003.out");
  msg_page p;
  p.gen = req.gen;
  p.first = 0;
  for (int i = 0; i < req.count; ++i) p.lines.push_back("row " + std::to_string(i));
  p.total = 1000000;
  update(m, message{p});
  std::string s = screen_text(m);
  CHECK(contains(s, "row 0"));
  CHECK(contains(s, "of 1000000"));
  press(m, tui::key_code::page_down);
  CHECK(last_request<req_page>(m)->first == static_cast<std::uint64_t>(req.count));
  press(m, 'G');
  CHECK(last_request<req_page>(m)->first == 1000000 - static_cast<std::uint64_t>(req.count));
  press(m, 'g');
  CHECK(last_request<req_page>(m)->first == 0);
  press(m, 'o');
  CHECK(contains(last_request<req_page>(m)->path, "T003.err"));
  press(m, tui::key_code::escape);
  CHECK(m.ov == overlay::none);
}

TEST_CASE("a pending task's follow waits, then re-follows once it has a node",
          "[dashboard][logs]") {
  model m = dashboard_model();
  m.task_table.selected = 2;  // T004 PENDING, no node
  m.selected_task = "T004";
  press(m, 'F');
  REQUIRE(last_request<req_follow>(m));
  CHECK(last_request<req_follow>(m)->target.tasks[0].out_path.empty());
  m.outbox.clear();
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>(snap->tasks());
  (*tasks)[3] = make_task(4, task_state::running, "nodeB", "echo waiting");
  snap->task_table = tasks;
  update(m, message{msg_snapshot{snap}});
  REQUIRE(last_request<req_follow>(m));
  CHECK(last_request<req_follow>(m)->target.tasks[0].out_path ==
        "/home/u/.leaseq/runs/99887766/logs/nodeB/T004.out");
}

TEST_CASE("/ in the log pane finds text, n and N step up and down, matches marked",
          "[dashboard][logs]") {
  model m = dashboard_model();
  press(m, 'F');
  std::vector<std::string> lines;
  for (int i = 0; i < 100; ++i)
    lines.push_back(i % 30 == 5 ? "ERROR at " + std::to_string(i) : "ok " + std::to_string(i));
  update(m, message{msg_log{m.follow.id, lines, now}});
  m.focus = pane::log;
  press(m, '/');
  CHECK(contains(screen_text(m), "search log:"));
  type(m, "error");
  press(m, tui::key_code::enter);
  CHECK_FALSE(m.log_view.follow);
  CHECK(m.log_view.offset == 95);
  press(m, 'n');
  CHECK(m.log_view.offset == 65);
  press(m, 'n');
  CHECK(m.log_view.offset == 35);
  // N goes back down; matches are marked; a text that is not there is said.
  press(m, 'N');
  CHECK(m.log_view.offset == 65);
  tui::buffer b(m.width, m.height);
  view(m, b);
  auto [x, y] = find_on_screen(b, "ERROR at 65");
  REQUIRE(x >= 0);
  CHECK(b.at(x, y).st == tui::default_theme().match);
  press(m, 'N');
  press(m, 'N');
  CHECK(m.log_view.offset == 95);
  press(m, 'N');
  CHECK(m.log_view.offset == 95);
  CHECK(contains(screen_text(m), "no match for \"error\" further down"));
  press(m, '/');  // the prompt starts with the last search: Ctrl-U clears it
  press(m, tui::key::ctrl_of('u'));
  type(m, "nothing-like-this");
  press(m, tui::key_code::enter);
  CHECK(contains(screen_text(m), "no match for \"nothing-like-this\" in the log"));
}

TEST_CASE("paged view: / finds in the whole file, n and N step, matches marked, no match said",
          "[dashboard][logs]") {
  model m = dashboard_model("99887766", 80, 24);
  press(m, 'L');
  REQUIRE(m.ov == overlay::paged);
  update(m, message{fake_page(*last_request<req_page>(m), 0)});
  std::string s = screen_text(m);
  CHECK(contains(s, "/ find  n/N next/prev"));  // the key line
  CHECK(contains(s, "T003.out"));

  press(m, '/');
  type(m, "error");
  CHECK(contains(screen_text(m), "/error█  (Enter: find, Esc: cancel)"));
  m.outbox.clear();
  press(m, tui::key_code::enter);
  const req_page* req = last_request<req_page>(m);
  REQUIRE(req);
  REQUIRE(req->find);
  CHECK(req->find->text == "error");
  CHECK(req->find->from == 0);
  CHECK(req->find->forward);
  // 24 rows: the status bar, the box's borders, the note and key lines leave 19 lines, so
  // line 42 is off the first page and the worker puts it on top.
  CHECK(req->count == 19);
  msg_page p = fake_page(*req, 42);
  p.searched = true;
  p.match = 42;
  update(m, message{p});
  CHECK(m.paged.match == std::uint64_t{42});
  tui::buffer b(m.width, m.height);
  view(m, b);
  s = b.to_text();
  CHECK(contains(s, "\"error\" at line 43"));
  CHECK(contains(s, "/error"));  // in the title
  auto [x, y] = find_on_screen(b, "ERROR at 42");
  REQUIRE(x >= 0);
  CHECK(b.at(x, y).st == tui::default_theme().match);
  CHECK(b.at(x + 4, y).st == tui::default_theme().match);
  CHECK(b.at(x + 5, y).st != tui::default_theme().match);

  m.outbox.clear();
  press(m, 'n');
  req = last_request<req_page>(m);
  REQUIRE((req && req->find));
  CHECK(req->find->from == 43);
  CHECK(req->find->forward);
  p = fake_page(*req, 42);
  p.searched = true;  // searched to the end: nothing
  update(m, message{p});
  view(m, b);
  s = b.to_text();
  CHECK(contains(s, "no match for \"error\" from line 44 to the end"));
  auto [nx, ny] = find_on_screen(b, "no match for");
  CHECK(b.at(nx, ny).st == tui::default_theme().error);

  m.outbox.clear();
  press(m, 'N');
  req = last_request<req_page>(m);
  REQUIRE((req && req->find));
  CHECK(req->find->from == 41);
  CHECK_FALSE(req->find->forward);
  // The budget ran out before a match: the note says so and N goes on from there.
  p = fake_page(*req, 42);
  p.searched = true;
  p.searched_all = false;
  p.find_next = 20;
  update(m, message{p});
  CHECK(contains(screen_text(m), "no match for \"error\" in lines 21-42 yet (N: search on)"));
  m.outbox.clear();
  press(m, 'N');
  CHECK(last_request<req_page>(m)->find->from == 20);

  // Esc at the prompt leaves the search as it was; w wraps; Esc closes.
  press(m, '/');
  type(m, "zzz");
  press(m, tui::key_code::escape);
  CHECK(m.ov == overlay::paged);
  CHECK(m.paged.find == "error");
  press(m, 'w');
  CHECK(contains(screen_text(m), " wrap"));
  press(m, tui::key_code::escape);
  CHECK(m.ov == overlay::none);
}

TEST_CASE("paged view: wrapped long lines page without skipping a line", "[dashboard][logs]") {
  model m = dashboard_model("99887766", 40, 12);
  m.focus = pane::tasks;
  press(m, 'L');
  REQUIRE(m.ov == overlay::paged);
  const req_page* req = last_request<req_page>(m);
  REQUIRE(req);
  msg_page p;
  p.gen = req->gen;
  p.total = 100;
  for (int i = 0; i < req->count; ++i)
    p.lines.push_back(i == 1 ? std::string(100, 'w') + "END" : "line " + std::to_string(i));
  update(m, message{p});
  CHECK(contains(screen_text(m), "w›"));
  press(m, 'w');
  std::string s = screen_text(m);
  CHECK(contains(s, "END"));
  int shown = paged_lines_shown(m);
  CHECK(shown < req->count);  // the long line takes 3 rows
  m.outbox.clear();
  press(m, tui::key_code::page_down);
  CHECK(last_request<req_page>(m)->first == static_cast<std::uint64_t>(shown));
}
