// The dashboard for daily use (issue 16): what got in the way of a new user in the first hour.
#include "fixtures.hpp"

#include <catch2/catch.hpp>

using namespace dash_test;
namespace tui = leaseq::tui;

TEST_CASE("Ctrl-C quits like q, from the dashboard and from any overlay", "[dashboard][daily]") {
  model m = dashboard_model();
  CHECK_FALSE(update(m, tui::event{tui::key_event{tui::key::ctrl_of('c')}}));
  CHECK(m.quit);

  // In the search prompt q is text, but Ctrl-C still leaves.
  model s = dashboard_model();
  press(s, '/');
  REQUIRE(s.ov == overlay::search);
  press(s, 'q');
  CHECK_FALSE(s.quit);
  press(s, tui::key::ctrl_of('c'));
  CHECK(s.quit);

  model f = lease_list_model();
  press(f, 'n');
  REQUIRE(f.ov == overlay::form);
  press(f, tui::key::ctrl_of('c'));
  CHECK(f.quit);
}

namespace {

// The fixture's lease with `n` extra finished tasks, and `running` (seqs) RUNNING.
std::shared_ptr<const leaseq::snapshot> busy_snapshot(int n, const std::vector<int>& running) {
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>();
  for (int seq = 1; seq <= n; ++seq) {
    bool runs = std::find(running.begin(), running.end(), seq) != running.end();
    tasks->push_back(make_task(seq, runs ? task_state::running : task_state::finished, "nodeA",
                               "step " + std::to_string(seq)));
  }
  snap->task_table = tasks;
  snap->nodes.resize(1);
  return snap;
}

}  // namespace

TEST_CASE("the selection keeps its row when its task moves, the first row keeps the top in view",
          "[dashboard][daily]") {
  model m = dashboard_model("99887766", 100, 30);
  update(m, message{msg_snapshot{busy_snapshot(40, {40})}});
  REQUIRE(m.visible.front()->id == "T040");
  REQUIRE(m.task_table.selected == 0);
  // T040 ends, T041 starts: T040 sinks into the DONE block, the selection stays on top.
  update(m, message{msg_snapshot{busy_snapshot(41, {41})}});
  CHECK(m.task_table.selected == 0);
  CHECK(selected_task(m)->id == "T041");
  CHECK(m.selected_task == "T041");
  CHECK(contains(screen_text(m), "RUN"));
  CHECK(m.task_table.offset == 0);

  // A selection further down stays at its row as well.
  m.task_table.selected = 3;
  m.selected_task = m.visible[3]->id;
  std::string before = m.selected_task;
  update(m, message{msg_snapshot{busy_snapshot(42, {42})}});
  CHECK(m.task_table.selected == 3);
  CHECK(m.selected_task != before);

  // Moving is the user's: j/k move from the row, filters keep the task.
  press(m, 'k');
  CHECK(m.task_table.selected == 2);
  std::string chosen = m.selected_task;
  press(m, 'S');
  CHECK(m.selected_task == chosen);
  CHECK(selected_task(m)->id == chosen);
}

namespace {

// The row of the screen that holds `needle`, or "".
std::string line_with(const std::string& screen, const std::string& needle) {
  std::size_t p = screen.find(needle);
  if (p == std::string::npos) return {};
  std::size_t a = screen.rfind('\n', p);
  std::size_t b = screen.find('\n', p);
  return screen.substr(a == std::string::npos ? 0 : a + 1,
                       b == std::string::npos ? std::string::npos : b - a - 1);
}

std::shared_ptr<const leaseq::snapshot> with_tasks(std::vector<leaseq::task_view> tasks) {
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  snap->task_table = std::make_shared<std::vector<leaseq::task_view>>(std::move(tasks));
  return snap;
}

}  // namespace

TEST_CASE("the ID column is as wide as the widest id, columns from content", "[dashboard][daily]") {
  model m = dashboard_model("99887766", 80, 24);
  std::vector<leaseq::task_view> tasks;
  tasks.push_back(make_task(100931, task_state::running, "nodeA", "python train.py --lr 0.1"));
  tasks.push_back(make_task(7, task_state::finished, "nodeA", "echo short"));
  update(m, message{msg_snapshot{with_tasks(tasks)}});
  std::string s = screen_text(m);
  CHECK(contains(s, "T100931 "));
  CHECK_FALSE(contains(s, "T1009…"));
  // The command gets the rest of the line, not 12 cells.
  CHECK(contains(s, "python train.py --lr 0.1"));

  // Nodes: a long name no longer takes the whole pane, UNKNOWN is not cut.
  auto snap = std::make_shared<leaseq::snapshot>(*with_tasks(tasks));
  snap->nodes[2].health = leaseq::node_health::unknown;
  update(m, message{msg_snapshot{snap}});
  s = screen_text(m);
  CHECK(contains(s, "UNKNOWN"));
  CHECK_FALSE(contains(s, "UNKNO…"));
}

TEST_CASE("80x24 with the log pane open: COMMAND keeps its width, the bar keeps its key hints",
          "[dashboard][daily]") {
  model m = dashboard_model("99887766", 80, 24);
  press(m, 'F');  // T003: the log pane opens, the nodes go beside the tasks
  update(m, message{msg_log{m.follow.id, {"epoch 1"}, now}});
  m.message.clear();
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  snap->nodes[1].health = leaseq::node_health::unknown;
  update(m, message{msg_snapshot{snap}});
  frame_layout f = compute_layout(m);
  REQUIRE(f.nodes.y == f.tasks.y);  // side by side
  CHECK(f.tasks.w >= 55);
  std::string s = screen_text(m);
  CHECK(contains(s, "python train.py --cfg"));  // not "python trai…"
  CHECK(contains(s, "UNKNOWN"));                // health and heartbeat whole
  CHECK(contains(s, "hb 95s"));
  CHECK_FALSE(contains(s, "UNKNO…"));
  CHECK(contains(s, "LOST?"));
  // The status bar fits 80 columns, with what f does here.
  CHECK(contains(s, "q:quit ?:help f:follow"));
  CHECK(status_left(m, 80).size() <= 80);
  CHECK(status_left(m, 200) == status_left(m));
  press(m, 'p');  // paused: the refresh field stays, as it says something
  CHECK(contains(status_left(m, 80), "refresh=paused"));
}

TEST_CASE("details taller than the screen scroll with j/k and say so", "[dashboard][daily]") {
  model m = dashboard_model("99887766", 80, 24);
  std::string cmd;
  for (int i = 0; i < 40; ++i) cmd += "--option-" + std::to_string(i) + " value ";
  update(m, message{msg_snapshot{with_tasks({make_task(3, task_state::running, "nodeA", cmd)})}});
  m.task_table.selected = 0;
  press(m, tui::key_code::enter);
  REQUIRE(m.ov == overlay::details);
  std::string s = screen_text(m);
  CHECK(contains(s, " j/k ┛"));  // the bottom border: which lines, how to see the rest
  CHECK_FALSE(contains(s, "F/E/A follow out/err/both"));
  for (int i = 0; i < 60; ++i) press(m, 'j');
  s = screen_text(m);
  CHECK(contains(s, "F/E/A follow out/err/both"));
  press(m, 'k');  // the scroll was clamped to the text: one k moves it at once
  CHECK(screen_text(m) != s);
  press(m, tui::key_code::escape);
  CHECK(m.ov == overlay::none);
}

TEST_CASE("lease states at 80 columns: abbreviated the same way, never cut", "[dashboard][daily]") {
  model m = lease_list_model(80, 24);
  auto l = make_leases();
  l.rows[1].state = "COMPLETING";
  l.rows[2].state = "CANCELLED";
  l.rows[0].state = "STOPPED";
  update(m, message{msg_leases{l}});
  std::string s = screen_text(m);
  CHECK(contains(s, "ENDING"));
  CHECK(contains(s, "CANC"));
  CHECK(contains(s, "runner=STOPPED"));
  CHECK_FALSE(contains(s, "…"));
  model wide = lease_list_model(140, 24);
  update(wide, message{msg_leases{l}});
  CHECK(contains(screen_text(wide), "COMPLETING"));
}

TEST_CASE("help and details wrap at spaces", "[dashboard][daily]") {
  model m = dashboard_model("99887766", 80, 24);
  press(m, '?');
  std::string s = screen_text(m);
  // Each described key reads whole: no line ends inside a word of the description.
  CHECK(contains(s, "list the problems"));
  for (std::size_t p = 0; (p = s.find('\n', p)) != std::string::npos; ++p) {
    std::string line = s.substr(s.rfind('\n', p - 1) + 1, p - s.rfind('\n', p - 1) - 1);
    auto bar = line.rfind("┃");
    if (bar == std::string::npos || bar < 3) continue;
    // The cell before the right border is a space or the end of a whole word.
    std::string before = line.substr(0, bar);
    while (!before.empty() && before.back() == ' ') before.pop_back();
    CHECK_FALSE(before.size() + 1 == bar);  // text never runs into the border
  }
  CHECK(contains(wrap_cells("a long line of words that wraps", 12)[0], "a long line"));
  auto pieces = wrap_cells("command   python train.py --cfg experiments/a.yaml", 24);
  REQUIRE(pieces.size() >= 2);
  CHECK(pieces[0] == "command   python");
  CHECK(pieces[1] == "          train.py --cfg");
  // A word longer than the line is cut where it must be.
  CHECK(wrap_cells("stdout    /a/very/long/path/without/spaces", 20).size() == 4);
}

TEST_CASE("labels: the open lease, the confirm dialog's keys, what f does here",
          "[dashboard][daily]") {
  model m = dashboard_model();
  std::string s = screen_text(m);
  CHECK(contains(line_with(s, "99887766"), "[open] train"));
  CHECK(contains(s, "f:follow"));
  press(m, tui::key_code::tab);  // leases pane
  REQUIRE(m.focus == pane::leases);
  CHECK(contains(screen_text(m), "f:filter"));
  press(m, tui::key_code::tab);
  press(m, tui::key_code::tab);  // tasks
  press(m, 'X');
  REQUIRE(m.ov == overlay::confirm);
  s = screen_text(m);
  CHECK(contains(s, "[ y: Yes ]"));
  CHECK(contains(s, "[ n: No ]"));
}

TEST_CASE("pending order: the next to run on top of the PEND block, a TIME column",
          "[dashboard][daily]") {
  model m = dashboard_model("99887766", 120, 30);
  std::vector<leaseq::task_view> tasks;
  for (int seq = 10; seq <= 13; ++seq)
    tasks.push_back(make_task(seq, task_state::pending, "", "wait " + std::to_string(seq)));
  auto run = make_task(9, task_state::running, "nodeA", "train");
  std::const_pointer_cast<leaseq::task_spec>(run.spec)->claimed = now - 125;
  tasks.push_back(run);
  tasks.push_back(make_task(8, task_state::finished, "nodeA", "done before"));
  update(m, message{msg_snapshot{with_tasks(tasks)}});
  std::vector<std::string> ids;
  for (const auto* t : m.visible) ids.push_back(t->id);
  CHECK(ids == std::vector<std::string>{"T009", "T010", "T011", "T012", "T013", "T008"});
  std::string s = screen_text(m);
  CHECK(contains(s, "TIME"));
  CHECK(contains(line_with(s, "T009"), " 2m "));      // running for 125 s
  CHECK(contains(line_with(s, "T008"), " 3m "));      // ran 199 s
  CHECK_FALSE(contains(line_with(s, "T010"), "m "));  // never started
}

TEST_CASE("e counts a spawn failure (FAILED, no exit code) as a bad exit", "[dashboard][daily]") {
  model m = dashboard_model();
  auto spawn = make_task(7, task_state::failed, "nodeA", "/nonexistent/prog");
  std::const_pointer_cast<leaseq::task_result>(spawn.result)->exit_code.reset();
  std::const_pointer_cast<leaseq::task_result>(spawn.result)->started.reset();
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>(snap->tasks());
  tasks->push_back(spawn);
  snap->task_table = tasks;
  update(m, message{msg_snapshot{snap}});
  press(m, 'e');
  std::vector<std::string> ids;
  for (const auto* t : m.visible) ids.push_back(t->id);
  CHECK(std::find(ids.begin(), ids.end(), "T007") != ids.end());
  // Its details say it never started (the result's started is null).
  m.selected_task = "T007";
  for (std::size_t i = 0; i < m.visible.size(); ++i)
    if (m.visible[i]->id == "T007") m.task_table.selected = static_cast<int>(i);
  press(m, tui::key_code::enter);
  CHECK(contains(screen_text(m), "started   - (never started)"));
}

TEST_CASE("scan problems: ! lists which file and why, config keys too", "[dashboard][daily]") {
  model m = dashboard_model("99887766", 100, 30);
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  snap->errors.push_back({"inbox/nodeA/T0x9.json", 0, "inbox/nodeA: refused name \"T0x9.json\""});
  snap->errors.push_back({"claimed/nodeB", 13, "claimed/nodeB: cannot list: Permission denied"});
  update(m, message{msg_snapshot{snap}});
  m.config_warnings = {"config: ui.refresh_s: expected a number", "config: ui.bogus: unknown key"};
  std::string s = screen_text(m);
  CHECK(contains(s, "problem(s) (!: list)"));
  press(m, '!');
  REQUIRE(m.ov == overlay::problems);
  s = screen_text(m);
  CHECK(contains(s, "refused name"));
  CHECK(contains(s, "claimed/nodeB: cannot list: Permission denied"));
  CHECK(contains(s, "ui.refresh_s"));
  CHECK(contains(s, "ui.bogus"));
  CHECK(contains(s, "T005 is unknown") == false);  // LOST? is evidence, not a problem
  press(m, 'x');
  CHECK(m.ov == overlay::none);
}

TEST_CASE("wrong facts: LOST evidence, half-written result, empty log, live hb age, CJK",
          "[dashboard][daily]") {
  model m = dashboard_model("99887766", 120, 40);
  // A task only ever seen in a heartbeat, now LOST.
  leaseq::task_view hb;
  hb.id = "T008";
  hb.seq = 8;
  hb.node = "nodeA";
  hb.state = task_state::lost;
  hb.last_running_seen = now - 400;
  hb.missing_since = now - 300;
  hb.unknown_reason = "not in claimed/ or done/ for longer than ui.lost_confirm_s";
  // A result that does not parse yet: running, unknown, no command.
  leaseq::task_view half;
  half.id = "T009";
  half.seq = 9;
  half.node = "nodeB";
  half.state = task_state::running;
  half.unknown = true;
  half.unknown_reason = "its result file does not parse: unexpected end of input";
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>(snap->tasks());
  tasks->push_back(hb);
  tasks->push_back(half);
  snap->task_table = tasks;
  update(m, message{msg_snapshot{snap}});
  std::string s = screen_text(m);
  std::string row = line_with(s, "T009");
  CHECK(contains(row, "UNKN"));
  CHECK_FALSE(contains(row, " RUN "));
  CHECK(contains(row, "result file does not parse"));

  m.details_task = "T008";
  m.ov = overlay::details;
  s = screen_text(m);
  CHECK(contains(s, "last seen 19"));  // a space after the label, then the date
  CHECK(contains(s, "only ever seen in a heartbeat"));
  CHECK_FALSE(contains(s, "not in claimed/ or done/"));
  m.ov = overlay::none;

  // The heartbeat age ticks between scans.
  CHECK(contains(screen_text(m), "hb 2s"));
  update(m, message{msg_tick{now + 5}});
  CHECK(contains(screen_text(m), "hb 7s"));

  // An empty log's paged view.
  m.ov = overlay::paged;
  m.paged = {};
  m.paged.task = "T001";
  m.paged.gen = 1;
  update(m, message{msg_page{1, 0, {}, std::uint64_t{0}, ""}});
  s = screen_text(m);
  CHECK(contains(s, "empty log (0 lines)"));
  CHECK_FALSE(contains(s, "lines 1-0"));
  m.ov = overlay::none;

  // The follow selector cuts a CJK command by cells, not bytes.
  auto cjk = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  auto ct = std::make_shared<std::vector<leaseq::task_view>>(cjk->tasks());
  ct->push_back(make_task(10, task_state::running, "nodeB", "echo 学習を開始します 学習"));
  cjk->task_table = ct;
  update(m, message{msg_snapshot{cjk}});
  press(m, 'f');
  REQUIRE(m.ov == overlay::selector);
  CHECK(contains(screen_text(m), "echo 学習を開始します 学習"));
}

TEST_CASE("x on an ended lease does nothing, an unknown --lease shows the lease list",
          "[dashboard][daily]") {
  model m = lease_list_model();
  auto l = make_leases();
  l.rows[1].state = "COMPLETED";
  update(m, message{msg_leases{l}});
  m.lease_table.selected = 1;
  press(m, 'x');
  CHECK(m.ov == overlay::none);
  CHECK(contains(m.message, "already ended"));
  CHECK(m.outbox.empty());

  model u = lease_list_model();
  open_lease(u, "999");
  update(u, message{msg_leases{make_leases()}});
  CHECK(u.screen == screen_kind::lease_list);
  CHECK(contains(u.message, "unknown lease 999"));
  CHECK(contains(screen_text(u), "99887766"));
}

TEST_CASE("the lease list from the cache comes first, Slurm fills in", "[dashboard][daily]") {
  model m = lease_list_model();
  m.leases_loaded = false;
  m.slurm_answered = false;
  open_lease(m, "99887766");
  auto quick = make_leases();
  quick.rows[1].state = "UNKNOWN";
  quick.rows[1].reason = "asking Slurm...";
  update(m, message{msg_leases{quick, true, {"99887766"}}});
  std::string s = screen_text(m);
  CHECK(contains(s, "local:myhost"));
  CHECK(contains(s, "asking Slurm"));
  CHECK_FALSE(contains(s, "loading leases"));
  update(m, message{msg_leases{make_leases(), false, {}}});
  CHECK(contains(screen_text(m), "10:42"));
  // A later cache-only listing does not undo what Slurm said.
  update(m, message{msg_leases{quick, true, {"99887766"}}});
  CHECK(find_lease(m, "99887766")->state == "RUNNING");
}

TEST_CASE("[ and ] page through tasks past ui.max_tasks_display", "[dashboard][daily]") {
  model m = dashboard_model("99887766", 120, 30);
  m.ui.max_tasks_display = 4;
  recompute(m);
  REQUIRE(m.visible.size() == 4);
  CHECK(m.visible_total == 6);
  CHECK(contains(screen_text(m), "(rows 1-4 of 6 matches, [/]: page)"));
  std::vector<std::string> seen;
  for (const auto* t : m.visible) seen.push_back(t->id);
  press(m, ']');
  CHECK(m.task_page == 1);
  REQUIRE(m.visible.size() == 2);
  CHECK(contains(screen_text(m), "(rows 5-6 of 6 matches"));
  for (const auto* t : m.visible) seen.push_back(t->id);
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<std::string>{"T001", "T002", "T003", "T004", "T005", "T006"});
  press(m, ']');  // no page past the last
  CHECK(m.task_page == 1);
  press(m, '[');
  CHECK(m.task_page == 0);
  CHECK(m.visible.front()->id == "T003");
}

TEST_CASE("long log lines: cut with a marker, Left/Right scroll, w wraps, also in the pages",
          "[dashboard][daily]") {
  model m = dashboard_model("99887766", 80, 24);
  press(m, 'F');  // T003
  std::string longline(120, 'x');
  longline += "TAIL";
  update(m, message{msg_log{m.follow.id, {"short line", longline}, now}});
  std::string s = screen_text(m);
  CHECK(contains(s, "x›"));
  CHECK_FALSE(contains(s, "TAIL"));
  while (m.focus != pane::log) press(m, tui::key_code::tab);
  for (int i = 0; i < 8; ++i) press(m, tui::key_code::right);
  s = screen_text(m);
  CHECK(contains(s, "‹"));
  CHECK(contains(s, "TAIL"));
  press(m, 'w');
  s = screen_text(m);
  CHECK(contains(s, "TAIL"));
  CHECK(contains(s, "short line"));

  press(m, tui::key_code::escape);  // the log pane closes, the task list has focus
  press(m, 'L');
  REQUIRE(m.ov == overlay::paged);
  update(m, message{msg_page{m.paged.gen, 0, {longline}, std::uint64_t{1}, ""}});
  CHECK(contains(screen_text(m), "x›"));
  for (int i = 0; i < 8; ++i) press(m, tui::key_code::right);
  CHECK(contains(screen_text(m), "TAIL"));
}
