// Task list: filters, search, sort, details, actions, marks, warnings.
#include "fixtures.hpp"

#include <algorithm>
#include <sstream>

#include <catch2/catch.hpp>

using namespace dash_test;
namespace tui = leaseq::tui;

namespace {
std::vector<std::string> visible_ids(const model& m) {
  std::vector<std::string> out;
  for (const auto* t : m.visible) out.push_back(t->id);
  return out;
}
}  // namespace

TEST_CASE("default sort: state priority, then start time desc, S toggles seq in lane",
          "[dashboard][tasks]") {
  model m = dashboard_model();
  auto ids = visible_ids(m);
  REQUIRE(ids.size() == 6);
  CHECK(ids[0] == "T003");  // RUNNING
  CHECK(ids[1] == "T005");  // LOST?
  CHECK(ids[2] == "T004");  // PENDING
  CHECK(ids[3] == "T002");  // FAILED
  press(m, 'S');
  CHECK(m.sort == leaseq::task_sort::seq_in_lane);
  ids = visible_ids(m);
  CHECK(ids.front() == "T004");  // lane _any sorts first
  CHECK(contains(screen_text(m), "sort:lane"));
}

TEST_CASE("quick filters 1/2/3/4/5, 0 clears, e has-stderr", "[dashboard][tasks]") {
  model m = dashboard_model();
  press(m, '1');
  CHECK(visible_ids(m) == std::vector<std::string>{"T004"});
  press(m, '2');
  CHECK(visible_ids(m) == std::vector<std::string>{"T003"});
  press(m, '3');
  CHECK(visible_ids(m) == std::vector<std::string>{"T002"});
  press(m, '4');
  CHECK(visible_ids(m) == std::vector<std::string>{"T001"});
  CHECK(filters_text(m) == "state:DONE");
  press(m, '4');  // again: off
  CHECK(visible_ids(m).size() == 6);
  press(m, '5');
  CHECK(visible_ids(m) == std::vector<std::string>{"T005"});
  press(m, '0');
  CHECK(visible_ids(m).size() == 6);
  press(m, 'e');
  REQUIRE(last_request<req_stderr_probe>(m));
  CHECK(last_request<req_stderr_probe>(m)->on);
  CHECK(visible_ids(m) == std::vector<std::string>{"T002", "T006"});  // exit 3
  update(m, message{msg_stderr{{"T003"}}});                           // T003's .err is not empty
  auto ids = visible_ids(m);
  CHECK(std::find(ids.begin(), ids.end(), "T003") != ids.end());
  CHECK(filters_text(m) == "stderr");
}

TEST_CASE("node filter via Enter in the nodes pane, s shows node stats", "[dashboard][tasks]") {
  model m = dashboard_model();
  press(m, tui::key_code::tab);
  press(m, tui::key_code::tab);
  REQUIRE(m.focus == pane::nodes);
  press(m, tui::key_code::enter);  // nodeA
  CHECK(m.filter.node == "nodeA");
  CHECK(visible_ids(m) == std::vector<std::string>{"T003", "T001"});
  CHECK(contains(status_left(m), "filters=node:nodeA"));
  press(m, tui::key_code::enter);
  CHECK(m.filter.node.empty());
  press(m, 'j');
  press(m, 'j');
  press(m, 's');
  CHECK(m.ov == overlay::stats);
  std::string s = screen_text(m);
  CHECK(contains(s, "node stats"));
  CHECK(contains(s, "nodeC"));
  CHECK(contains(s, "STALE"));
  CHECK(contains(s, "95s"));
  CHECK(contains(s, "T005"));
  press(m, 'x');
  CHECK(m.ov == overlay::none);
  press(m, 'P');
  REQUIRE(last_request<req_lane>(m));
  CHECK(last_request<req_lane>(m)->node == "nodeC");
  CHECK(last_request<req_lane>(m)->pause);
  press(m, 'U');
  CHECK_FALSE(last_request<req_lane>(m)->pause);
}

TEST_CASE("/ searches commands in the task list, leases in the leases pane", "[dashboard][tasks]") {
  model m = dashboard_model();
  press(m, '/');
  CHECK(m.ov == overlay::search);
  type(m, "TRAIN");
  CHECK(visible_ids(m) == std::vector<std::string>{"T003"});
  CHECK(contains(screen_text(m), "search task commands: TRAIN"));
  press(m, tui::key_code::enter);
  CHECK(m.ov == overlay::none);
  CHECK(filters_text(m) == "cmd:TRAIN");
  press(m, '/');
  press(m, tui::key_code::escape);
  CHECK(visible_ids(m).size() == 6);
  m.focus = pane::leases;
  press(m, '/');
  type(m, "train");
  CHECK(visible_leases(m).size() == 1);
}

TEST_CASE("task details: fields, env collapsed, LOST? evidence", "[dashboard][tasks]") {
  model m = dashboard_model();
  m.task_table.selected = 1;  // T005 LOST?
  press(m, tui::key_code::enter);
  REQUIRE(m.ov == overlay::details);
  std::string s = screen_text(m);
  CHECK(contains(s, "LOST?"));
  CHECK(contains(s, "⚠ evidence"));
  CHECK(contains(s, "last seen"));
  CHECK(contains(s, "on nodeC"));
  CHECK(contains(s, "nodeC heartbeat 95s old (STALE)"));
  CHECK(contains(s, "99887766 RUNNING"));
  CHECK(contains(s, "python lost.py"));
  CHECK(contains(s, "/work/dir"));
  CHECK(contains(s, "2 variable(s)"));
  CHECK_FALSE(contains(s, "SECRET_TOKEN"));
  press(m, 'e');
  CHECK(contains(screen_text(m), "SECRET_TOKEN=abc"));
  press(m, 'c');
  CHECK(m.clipboard == "python lost.py");
  press(m, 'y');
  CHECK(m.clipboard == "T005");
  press(m, tui::key_code::escape);
  m.task_table.selected = 3;  // T002 FAILED
  m.selected_task = "T002";
  press(m, tui::key_code::enter);
  s = screen_text(m);
  CHECK(contains(s, "exit code 3"));
  CHECK(contains(s, "/home/u/.leaseq/runs/99887766/logs/nodeB/T002.out"));
  CHECK(contains(s, "/home/u/.leaseq/runs/99887766/logs/nodeB/T002.err"));
  for (const char* f : {"created", "claimed", "finished"}) CHECK(contains(s, f));
  press(m, 'E');
  CHECK(m.ov == overlay::none);
  REQUIRE(last_request<req_follow>(m));
  CHECK(last_request<req_follow>(m)->target.mode == log_mode::err);
  CHECK(last_request<req_follow>(m)->target.tasks[0].task == "T002");
}

TEST_CASE("X asks, then cancels, R retries, c copies the task id", "[dashboard][tasks]") {
  model m = dashboard_model();
  press(m, 'X');  // T003 RUNNING
  REQUIRE(m.ov == overlay::confirm);
  CHECK(contains(screen_text(m), "Cancel T003"));
  press(m, 'y');
  REQUIRE(last_request<req_cancel>(m));
  CHECK(last_request<req_cancel>(m)->task == "T003");
  press(m, 'R');
  REQUIRE(last_request<req_retry>(m));
  CHECK(last_request<req_retry>(m)->task == "T003");
  press(m, 'c');
  CHECK(m.clipboard == "T003");
  m.task_table.selected = 5;  // FINISHED: no cancel
  press(m, 'X');
  CHECK(m.ov == overlay::none);
  CHECK(contains(m.message, "already ended"));
  update(m, message{msg_action{true, "retried T003 as T007"}});
  CHECK(contains(screen_text(m), "retried T003 as T007"));
}

TEST_CASE("LOST? rows carry a warning mark, Slurm lease near its end warns running tasks",
          "[dashboard][tasks]") {
  model m = dashboard_model();
  std::string s = screen_text(m);
  CHECK(contains(s, "⚠  T005"));
  CHECK_FALSE(contains(s, "lease ends in"));
  auto listing = make_leases();
  listing.rows[1].time_left = "8:30";
  update(m, message{msg_leases{listing}});
  s = screen_text(m);
  CHECK(contains(s, "lease ends in 8m"));
  CHECK(contains(s, "⚠  T003"));
  m.task_table.selected = 0;
  press(m, tui::key_code::enter);
  CHECK(contains(screen_text(m), "this task may be killed"));
}

TEST_CASE("r refreshes now, p pauses auto-refresh", "[dashboard][tasks]") {
  model m = dashboard_model();
  press(m, 'r');
  CHECK(last_request<req_refresh>(m));
  press(m, 'p');
  REQUIRE(last_request<req_set_paused>(m));
  CHECK(last_request<req_set_paused>(m)->paused);
  press(m, 'p');
  CHECK_FALSE(last_request<req_set_paused>(m)->paused);
}

TEST_CASE("a snapshot for another lease is ignored, the selection keeps its row",
          "[dashboard][tasks]") {
  model m = dashboard_model();
  m.task_table.selected = 2;
  m.selected_task = "T004";
  update(m, message{msg_snapshot{make_snapshot("11223344")}});
  CHECK(m.snap->lease_id == "99887766");
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>(snap->tasks());
  tasks->push_back(make_task(7, task_state::running, "nodeB", "echo new"));
  snap->task_table = tasks;
  update(m, message{msg_snapshot{snap}});
  // T007 runs and sorts above T004; the selection stays on the third row (issue 16, item 2).
  CHECK(m.task_table.selected == 2);
  CHECK(selected_task(m)->id != "T004");
  CHECK(m.selected_task == selected_task(m)->id);
}

TEST_CASE("a PENDING task that cannot run shows why, in its row and its details",
          "[dashboard][tasks]") {
  // The local lease: its runners are all there is (a Slurm lease with fewer heartbeats than
  // nodes may still get the runner that has the GPUs, so it would give no reason yet).
  model m = dashboard_model("local:myhost", 140, 30);
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("local:myhost"));
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>(snap->tasks());
  for (auto& t : *tasks)
    if (t.id == "T004") {
      auto spec = std::make_shared<leaseq::task_spec>(*t.spec);
      spec->gpus = 2;  // no runner of the lease has a GPU
      t.spec = spec;
    }
  snap->task_table = tasks;
  snap->generation = 2;
  update(m, message{msg_snapshot{snap}});
  std::string screen = screen_text(m);
  INFO(screen);
  CHECK(contains(screen, "[needs 2 GPUs"));
  press(m, '1');  // PENDING only: T004 selected
  press(m, leaseq::tui::key_code::enter);
  screen = screen_text(m);
  INFO(screen);
  CHECK(contains(screen, "waiting"));
  CHECK(contains(screen, "needs 2 GPUs"));
}

TEST_CASE("task details: array, dependencies, time limit and every attempt", "[dashboard][tasks]") {
  model m = dashboard_model();
  auto t = make_task(7, task_state::failed, "nodeB", "./flaky");
  auto spec = std::const_pointer_cast<leaseq::task_spec>(t.spec);
  spec->after = {"T001", "T002"};
  spec->time_limit = 5400;
  spec->retries = 2;
  spec->extra["array_id"] = "T005";
  spec->extra["array_index"] = 3;
  leaseq::task_attempt first;
  first.attempt = "a1";
  first.node = "nodeA";
  first.exit_code = 3;
  leaseq::task_attempt second;
  second.attempt = "a2";
  second.node = "nodeB";
  second.signal = 9;
  second.reason = "runner_lost";
  auto r = std::const_pointer_cast<leaseq::task_result>(t.result);
  r->task = *spec;
  r->task.attempts = {first, second};
  std::string s;
  for (const auto& line : details_lines(m, t)) s += line.first + "\n";
  INFO(s);
  CHECK(contains(s, "array     T005 index 3"));
  CHECK(contains(s, "after     T001, T002"));
  CHECK(contains(s, "time limit 1h30m"));
  CHECK(contains(s, "attempts  attempt 2/3"));
  CHECK(contains(s, "a1 on nodeA: exit 3"));
  CHECK(contains(s, "a2 on nodeB: signal 9 (runner_lost)"));
  // A task that asked for none of it shows none of it.
  std::string plain;
  for (const auto& line : details_lines(m, make_task(8, task_state::finished, "nodeA", "true")))
    plain += line.first + "\n";
  CHECK_FALSE(contains(plain, "attempts"));
  CHECK_FALSE(contains(plain, "after"));
}

TEST_CASE("an UNKNOWN task (id handed out, visible nowhere) has its row, with why in details",
          "[dashboard][tasks]") {
  model m = dashboard_model();
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>(snap->tasks());
  leaseq::task_view u;
  u.id = "T007";
  u.seq = 7;
  u.state = task_state::unknown;
  u.unknown = true;
  u.unknown_reason = "not visible yet (shared filesystem lag?): the id was handed out";
  u.last_seen = now;
  tasks->push_back(u);
  snap->task_table = tasks;
  ++snap->counts[leaseq::state_index(task_state::unknown)];
  snap->generation = 2;
  update(m, message{msg_snapshot{snap}});
  std::string s = screen_text(m);
  INFO(s);
  bool row = false;
  std::istringstream lines(s);
  for (std::string l; std::getline(lines, l);)
    if (contains(l, "T007") && contains(l, "UNKN")) row = true;  // the state column: UNKN
  CHECK(row);
  auto ids = visible_ids(m);
  auto at = std::find(ids.begin(), ids.end(), "T007");
  REQUIRE(at != ids.end());
  m.task_table.selected = static_cast<int>(at - ids.begin());
  press(m, tui::key_code::enter);
  CHECK(contains(screen_text(m), "not visible yet"));
}

TEST_CASE("a heartbeat read torn while it is replaced is no problem until ui.hb_stale_s",
          "[dashboard][tasks]") {
  model m = dashboard_model();
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  snap->nodes[1].hb_unknown = true;
  snap->nodes[1].hb_settling = true;
  snap->nodes[1].hb_reason = "invalid or truncated JSON";
  snap->generation = 2;
  update(m, message{msg_snapshot{snap}});
  auto has_hb_problem = [&] {
    for (const auto& l : problem_lines(m))
      if (contains(l, "heartbeat of nodeB")) return true;
    return false;
  };
  CHECK_FALSE(has_hb_problem());
  auto old = std::make_shared<leaseq::snapshot>(*snap);
  old->nodes[1].hb_settling = false;
  old->generation = 3;
  update(m, message{msg_snapshot{old}});
  CHECK(has_hb_problem());
}

TEST_CASE("a lists the archived tasks instead of the live ones, and back", "[dashboard][tasks]") {
  model m = dashboard_model();
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  snap->archived = 1;
  snap->generation = 2;
  update(m, message{msg_snapshot{snap}});
  CHECK(contains(screen_text(m), "+1 archived (a: list)"));
  auto live = visible_ids(m);
  m.outbox.clear();
  press(m, U'a');
  REQUIRE(m.outbox.size() == 1);
  CHECK(std::holds_alternative<req_archived>(m.outbox[0]));
  CHECK(contains(screen_text(m), "ARCHIVED tasks: reading"));
  CHECK(visible_ids(m).empty());

  // What the worker reads: an archived snapshot of its own.
  auto archived = std::make_shared<leaseq::snapshot>(*snap);
  auto table = std::make_shared<std::vector<leaseq::task_view>>();
  leaseq::task_view old;
  old.id = "T001";
  old.seq = 1;
  old.node = "nodeA";
  old.state = task_state::finished;
  auto res = std::make_shared<leaseq::task_result>();
  res->task.id = "T001";
  res->task.argv = {"echo", "archived-one"};
  res->task.labels = {"sweep"};
  res->state = task_state::finished;
  res->exit_code = 0;
  old.spec = std::shared_ptr<const leaseq::task_spec>(res, &res->task);
  old.result = res;
  table->push_back(old);
  archived->task_table = table;
  update(m, message{msg_archived{archived}});
  CHECK(visible_ids(m) == std::vector<std::string>{"T001"});
  std::string s = screen_text(m);
  INFO(s);
  CHECK(contains(s, "ARCHIVED tasks 1/1"));
  CHECK(contains(s, "archived-one"));
  press(m, tui::key_code::enter);  // details of an archived task
  CHECK(contains(screen_text(m), "sweep"));
  press(m, tui::key_code::escape);
  // Filters apply to the archived list too; a again: the live tasks.
  press(m, U'a');
  CHECK(visible_ids(m) == live);
}

TEST_CASE("the task list is filtered and sorted again only when its inputs changed",
          "[dashboard][tasks]") {
  model m = dashboard_model();
  const std::uint64_t d0 = m.derivations;
  REQUIRE(d0 > 0);
  REQUIRE(m.visible.size() == 6);
  // Ticks and frames: ages move, the list is not derived again.
  for (int i = 1; i <= 3; ++i) {
    update(m, message{msg_tick{now + i}});
    screen_text(m);
  }
  CHECK(m.derivations == d0);
  // A snapshot that shares the task table (a scan that found no task changed): new node ages,
  // the same list.
  auto same_tasks = std::make_shared<leaseq::snapshot>(*m.snap);
  same_tasks->generation += 1;
  same_tasks->taken_at = now + 2;
  same_tasks->nodes[0].hb_age_s = 0;
  update(m, message{msg_snapshot{same_tasks}});
  CHECK(m.snap == same_tasks);
  CHECK(m.derivations == d0);
  CHECK(visible_ids(m).front() == "T003");
  update(m, message{msg_stderr{m.stderr_ids}});  // the probe found nothing new
  CHECK(m.derivations == d0);
  // A new table: derived once; T004 now runs and sorts first.
  auto next = std::make_shared<leaseq::snapshot>(*m.snap);
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>(m.snap->tasks());
  (*tasks)[3].state = task_state::running;
  (*tasks)[3].node = "nodeB";
  next->task_table = tasks;
  next->generation += 1;
  update(m, message{msg_snapshot{next}});
  CHECK(m.derivations == d0 + 1);
  CHECK(visible_ids(m).size() == 6);
  CHECK(m.visible[0]->state == task_state::running);
  CHECK(m.visible[1]->state == task_state::running);
  // The user's filter, search and sort: each derives it again.
  press(m, '2');
  CHECK(m.derivations == d0 + 2);
  CHECK(visible_ids(m).size() == 2);
  press(m, '0');
  CHECK(m.derivations == d0 + 3);
  press(m, 'S');
  CHECK(m.derivations == d0 + 4);
  CHECK(visible_ids(m).front() == "T001");  // T004 left _any for nodeB
  press(m, '/');
  type(m, "fail");
  press(m, tui::key_code::enter);
  CHECK(m.derivations > d0 + 4);
  CHECK(visible_ids(m) == std::vector<std::string>{"T002"});
  update(m, message{msg_tick{now + 10}});
  CHECK(visible_ids(m) == std::vector<std::string>{"T002"});
}

TEST_CASE("the problem count of the title follows the task table", "[dashboard][tasks]") {
  model m = dashboard_model();
  CHECK(problem_count(m) == problem_lines(m).size());
  auto next = std::make_shared<leaseq::snapshot>(*m.snap);
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>(m.snap->tasks());
  (*tasks)[3].unknown = true;  // T004, PENDING: its file stopped parsing
  (*tasks)[3].unknown_reason = "its task file does not parse";
  next->task_table = tasks;
  update(m, message{msg_snapshot{next}});
  CHECK(problem_count(m) == problem_lines(m).size());
  CHECK(contains(screen_text(m), "problem(s)"));
  auto fixed = std::make_shared<leaseq::snapshot>(*m.snap);
  fixed->task_table =
      std::make_shared<std::vector<leaseq::task_view>>(*make_snapshot("x")->task_table);
  update(m, message{msg_snapshot{fixed}});
  CHECK(problem_count(m) == problem_lines(m).size());
  CHECK_FALSE(contains(screen_text(m), "problem(s)"));
}

namespace {

// The derive requests update() left in the outbox (taken out of it).
std::vector<req_derive> take_derives(model& m) {
  std::vector<req_derive> out;
  for (auto& r : std::exchange(m.outbox, {}))
    if (auto* d = std::get_if<req_derive>(&r)) out.push_back(*d);
  return out;
}

// The worker's answer to a derive request.
message answer(const req_derive& d) {
  return msg_rows{d.from, *derive_rows(d.from, d.stderr_ids)};
}

}  // namespace

TEST_CASE("a big task table is filtered on the worker, the last list shown until it answers",
          "[dashboard][tasks]") {
  model m = dashboard_model();
  m.derive_inline_max = 3;  // the fixture's 6 tasks count as a big table
  REQUIRE(m.visible.size() == 6);
  const std::uint64_t d0 = m.derivations;
  press(m, '2');  // RUNNING only
  auto asked = take_derives(m);
  REQUIRE(asked.size() == 1);
  CHECK(asked[0].from.filter.states == std::vector<task_state>{task_state::running});
  CHECK(m.visible.size() == 6);  // nothing waited on: the old list stays
  CHECK(m.derivations == d0);
  CHECK(contains(screen_text(m), "(filtering...)"));
  update(m, answer(asked[0]));
  CHECK(visible_ids(m) == std::vector<std::string>{"T003"});
  CHECK(m.derivations == d0 + 1);
  CHECK_FALSE(contains(screen_text(m), "(filtering...)"));

  // Typing on: each key asks again; an answer to a request a newer one replaced is dropped.
  press(m, '/');
  type(m, "p");
  auto first = take_derives(m);
  type(m, "y");
  auto second = take_derives(m);
  REQUIRE(first.size() == 1);
  REQUIRE(second.size() == 1);
  update(m, answer(first[0]));
  CHECK(visible_ids(m) == std::vector<std::string>{"T003"});
  CHECK(m.deriving);
  update(m, answer(second[0]));
  CHECK(visible_ids(m) == std::vector<std::string>{"T003"});
  CHECK_FALSE(m.deriving);
  press(m, tui::key_code::escape);  // search cleared: RUNNING only again, asked again
  update(m, answer(take_derives(m).at(0)));

  // Back to the list shown before the answer came: nothing is waited for, a late answer is
  // dropped.
  press(m, '2');  // filter off
  auto off = take_derives(m);
  REQUIRE(off.size() == 1);
  press(m, '2');  // on again: what is shown
  CHECK(take_derives(m).empty());
  CHECK_FALSE(m.deriving);
  update(m, answer(off[0]));
  CHECK(visible_ids(m) == std::vector<std::string>{"T003"});
}

TEST_CASE("a new snapshot of a big table keeps the selected row until the rows arrive",
          "[dashboard][tasks]") {
  model m = dashboard_model();
  m.derive_inline_max = 3;
  press(m, 'j');
  const std::string selected = m.selected_task;
  REQUIRE_FALSE(selected.empty());
  auto next = std::make_shared<leaseq::snapshot>(*m.snap);
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>(m.snap->tasks());
  (*tasks)[3].state = task_state::running;
  next->task_table = tasks;
  next->generation += 1;
  update(m, message{msg_snapshot{next}});
  auto asked = take_derives(m);
  REQUIRE(asked.size() == 1);
  CHECK(m.selected_task == selected);
  update(m, answer(asked[0]));
  CHECK(m.visible.size() == 6);
  CHECK(m.task_table.selected == 1);  // the same row (keep_selection::row)
  CHECK(m.visible[0]->state == task_state::running);
  CHECK(m.visible[1]->state == task_state::running);
}

TEST_CASE("while a big lease loads, the rows on screen are read in full, once each",
          "[dashboard][tasks]") {
  model m = lease_list_model(100, 12);
  open_lease(m, "99887766");
  m.outbox.clear();
  // A quick first scan: 39 pending tasks counted by name, one ended task by the results
  // index; none of their files read (no command, no exit code).
  auto quick = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  auto table = std::make_shared<std::vector<leaseq::task_view>>();
  for (int seq = 1; seq <= 40; ++seq) {
    leaseq::task_view t;
    t.id = leaseq::format_task_id(seq);
    t.seq = seq;
    t.node = "nodeA";
    t.state = seq == 1 ? task_state::failed : task_state::pending;
    table->push_back(t);
  }
  quick->task_table = table;
  quick->counts = {};
  update(m, message{msg_snapshot{quick, true}});
  const auto* ask = last_request<req_read_rows>(m);
  REQUIRE(ask);
  CHECK(ask->lease_id == "99887766");
  // The rows a screen's height around the selection, not the whole table.
  CHECK(ask->rows.size() == 13);
  std::set<std::string> asked;
  for (const auto& t : ask->rows) asked.insert(t.id);
  std::string s = screen_text(m);
  CHECK(contains(s, "(reading task files...)"));
  CHECK_FALSE(contains(s, "echo read-in-full"));

  // The worker's answer: what their files hold.
  auto answer = [](const std::vector<leaseq::task_view>& rows) {
    msg_rows_read read{"99887766", {}};
    for (const auto& t : rows)
      read.rows.push_back(
          make_task(static_cast<int>(t.seq), t.state, t.node, "echo read-in-full " + t.id));
    return read;
  };
  msg_rows_read first = answer(ask->rows);
  m.outbox.clear();
  update(m, message{first});
  CHECK_FALSE(last_request<req_read_rows>(m));  // nothing new on screen
  CHECK(contains(screen_text(m), "echo read-in-full"));

  // Moving down asks for the rows that come near, never one twice.
  press(m, tui::key_code::end);
  press(m, 'k');
  std::vector<leaseq::task_view> more;
  for (const auto& r : m.outbox)
    if (const auto* a = std::get_if<req_read_rows>(&r))
      for (const auto& t : a->rows) {
        CHECK(asked.insert(t.id).second);
        more.push_back(t);
      }
  CHECK(more.size() == 14);  // rows 27-39 (End), then 26 (k)
  update(m, message{answer(more)});
  REQUIRE(asked.count("T001"));  // first or last in the list

  const auto* failed = find_task(m, "T001");
  REQUIRE(failed);
  CHECK(failed->exit_code() == 3);
  CHECK(failed->command() == "echo read-in-full T001");
  // The row, the details and `c` see the same.
  for (std::size_t i = 0; i < m.visible.size(); ++i)
    if (m.visible[i]->id == "T001") m.task_table.selected = static_cast<int>(i);
  m.selected_task = "T001";
  CHECK(contains(screen_text(m), "echo read-in-full T001"));
  update(m, tui::event{tui::resize_event{100, 40}});  // room for the whole details modal
  press(m, tui::key_code::enter);
  REQUIRE(m.ov == overlay::details);
  CHECK(contains(screen_text(m), "exit code 3"));
  press(m, 'c');
  CHECK(m.clipboard == "echo read-in-full T001");
  press(m, tui::key_code::escape);

  // An answer for another lease, or the rows of a row that moved on, change nothing.
  msg_rows_read other{"11223344", {make_task(40, task_state::pending, "nodeA", "echo other")}};
  update(m, message{other});
  CHECK_FALSE(contains(screen_text(m), "echo other"));
  leaseq::task_view moved = make_task(2, task_state::pending, "nodeB", "echo stale lane");
  update(m, message{msg_rows_read{"99887766", {moved}}});
  CHECK(find_task(m, "T002")->command() != "echo stale lane");

  // A search that finds nothing yet says the files are still being read, not "no match".
  press(m, '/');
  type(m, "lost.py");
  press(m, tui::key_code::enter);
  CHECK(m.visible.empty());
  CHECK(contains(screen_text(m), "no match yet: task files still being read"));

  // The full scan's snapshot replaces what was read: nothing is kept or asked any more, and
  // the search finds what it holds.
  update(m, message{msg_snapshot{make_snapshot("99887766"), false}});
  CHECK(m.read_in_full.empty());
  CHECK(m.read_asked.empty());
  CHECK(visible_ids(m) == std::vector<std::string>{"T005"});
  press(m, '0');
  CHECK(visible_ids(m).size() == 6);
  m.outbox.clear();
  press(m, 'j');
  CHECK_FALSE(last_request<req_read_rows>(m));
}
