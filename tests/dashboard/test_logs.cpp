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

TEST_CASE("/ in the log pane finds text, n finds the next match upwards", "[dashboard][logs]") {
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
}
