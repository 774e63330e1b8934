// The lease list, the split view, the status bar, layouts from 200x60 down to 2x2.
#include "fixtures.hpp"

#include <catch2/catch.hpp>

using namespace dash_test;
namespace tui = leaseq::tui;

TEST_CASE("lease list shows the spec's columns and each lease", "[dashboard][screens]") {
  model m = lease_list_model();
  std::string s = screen_text(m);
  for (const char* col : {"ID", "TYPE", "STATE", "CAPACITY", "LEFT", "NAME"})
    CHECK(contains(s, col));
  CHECK(contains(s, "*local:myhost"));
  CHECK(contains(s, "gpus=8"));
  CHECK(contains(s, "99887766"));
  CHECK(contains(s, "nodes=4 gpn=8"));
  CHECK(contains(s, "10:42"));
  CHECK(contains(s, "train"));
  CHECK(contains(s, "PEND "));  // abbreviated at 80 columns, like the task states
  CHECK(contains(s, "Resources"));
  model wide = lease_list_model(120, 24);
  CHECK(contains(screen_text(wide), "PENDING"));
}

TEST_CASE("lease list keys: j/k, Enter, l, x, f, n", "[dashboard][screens]") {
  model m = lease_list_model();
  press(m, 'j');
  CHECK(m.lease_table.selected == 1);
  press(m, 'l');
  REQUIRE(last_request<req_set_default>(m));
  CHECK(last_request<req_set_default>(m)->lease_id == "99887766");
  press(m, 'x');
  CHECK(m.ov == overlay::confirm);
  CHECK(contains(screen_text(m), "Release lease 99887766"));
  press(m, 'n');  // No: nothing released
  CHECK(m.ov == overlay::none);
  CHECK_FALSE(last_request<req_release>(m));
  press(m, 'x');
  press(m, 'y');
  REQUIRE(last_request<req_release>(m));
  CHECK(last_request<req_release>(m)->lease_id == "99887766");
  press(m, 'k');
  press(m, 'x');  // the local lease cannot be released
  CHECK(m.ov == overlay::none);
  CHECK(m.message_error);
  CHECK(contains(m.message, "only Slurm leases"));
  press(m, 'f');
  CHECK(m.lease_filter == lease_filter_mode::local);
  press(m, 'f');
  CHECK(m.lease_filter == lease_filter_mode::slurm);
  std::string s = screen_text(m);
  CHECK(contains(s, "leases (slurm)"));
  CHECK_FALSE(contains(s, "local:myhost"));
  press(m, 'f');
  press(m, 'f');  // pending
  s = screen_text(m);
  CHECK(contains(s, "11223344"));
  CHECK_FALSE(contains(s, "99887766"));
  press(m, 'f');  // back to all
  CHECK(m.lease_filter == lease_filter_mode::all);
  press(m, 'n');
  CHECK(m.ov == overlay::form);
  press(m, tui::key_code::escape);
  m.outbox.clear();
  press(m, 'j');
  press(m, tui::key_code::enter);
  CHECK(m.screen == screen_kind::dashboard);
  CHECK(m.lease_id == "99887766");
  REQUIRE(last_request<req_open_lease>(m));
  CHECK(last_request<req_open_lease>(m)->lease_id == "99887766");
}

TEST_CASE("split view: leases, nodes/runners, task list, log, Tab and Shift+Tab",
          "[dashboard][screens]") {
  model m = dashboard_model();
  std::string s = screen_text(m);
  CHECK(contains(s, "leases"));
  CHECK(contains(s, "nodes/runners"));
  CHECK(contains(s, "tasks 6/6"));
  CHECK(contains(s, "nodeC"));
  CHECK(contains(s, "STALE"));
  CHECK(contains(s, "hb 95s"));
  CHECK(contains(s, "hb 2s"));
  CHECK(contains(s, "T003"));
  CHECK(m.focus == pane::tasks);
  press(m, tui::key_code::tab);
  CHECK(m.focus == pane::leases);  // no log open: leases, nodes, tasks
  press(m, tui::key_code::tab);
  CHECK(m.focus == pane::nodes);
  press(m, tui::key::of(tui::key_code::backtab));
  CHECK(m.focus == pane::leases);
  press(m, tui::key_code::escape);  // from the leases pane: back to the lease list screen
  CHECK(m.screen == screen_kind::lease_list);
}

TEST_CASE("status bar has the exact fields", "[dashboard][screens]") {
  model m = dashboard_model();
  CHECK(status_left(m) ==
        "lease=99887766  filters=none  refresh=2s  fs=lag  slurm=RUNNING/12s  q:quit  ?:help  "
        "f:follow");
  press(m, '2');
  press(m, 'p');
  CHECK(status_left(m) ==
        "lease=99887766  filters=state:RUN  refresh=paused  fs=lag  slurm=RUNNING/12s  q:quit  "
        "?:help  f:follow");
  model l = dashboard_model("local:myhost");
  CHECK(status_left(l) ==
        "lease=local:myhost  filters=none  refresh=2s  fs=lag  slurm=-  q:quit  ?:help  f:follow");
  auto listing = make_leases();
  listing.rows[1].state = "UNKNOWN";
  listing.rows[1].error = "squeue: timed out after 10 s";
  update(m, message{msg_leases{listing}});
  CHECK(contains(status_left(m), "slurm=error:squeue: timed out after 10 s"));
  std::string s = screen_text(m);
  // Too long for 100 columns with the Slurm error: single spaces, every field kept.
  CHECK(contains(s, "lease=99887766 filters=state:RUN refresh=paused fs=lag slurm=error:"));
  CHECK(contains(s, "q:quit ?:help f:follow"));
}

TEST_CASE("layouts never overlap and stay on screen, down to 2x2", "[dashboard][screens]") {
  for (int w : {2, 3, 10, 20, 40, 60, 80, 120, 200}) {
    for (int h : {1, 2, 5, 8, 12, 16, 24, 40, 60}) {
      for (pane f : {pane::leases, pane::nodes, pane::tasks, pane::log}) {
        model m = dashboard_model("99887766", w, h);
        m.log_open = true;
        m.focus = f;
        frame_layout lay = compute_layout(m);
        std::vector<tui::rect> rs{lay.leases, lay.nodes,   lay.tasks,
                                  lay.log,    lay.message, lay.status};
        for (std::size_t i = 0; i < rs.size(); ++i) {
          if (rs[i].empty()) continue;
          CHECK(rs[i].x >= 0);
          CHECK(rs[i].y >= 0);
          CHECK(rs[i].right() <= w);
          CHECK(rs[i].bottom() <= h);
          for (std::size_t j = i + 1; j < rs.size(); ++j)
            if (!rs[j].empty()) CHECK(rs[i].intersect(rs[j]).empty());
        }
        // The focused pane is always shown when there is room for anything.
        if (!lay.too_small) {
          tui::rect fr = f == pane::leases  ? lay.leases
                         : f == pane::nodes ? lay.nodes
                         : f == pane::tasks ? lay.tasks
                                            : lay.log;
          CHECK_FALSE(fr.empty());
        }
        for (overlay ov :
             {overlay::none, overlay::help, overlay::details, overlay::confirm, overlay::selector,
              overlay::form, overlay::stats, overlay::search, overlay::paged}) {
          m.ov = ov;
          m.details_task = "T005";
          m.selector_ids = {"T003", "T005"};
          if (ov == overlay::form) open_create_form(m);
          tui::buffer buf(w, h);
          view(m, buf);  // must not crash or write outside
        }
      }
    }
  }
}

TEST_CASE("80x24 shows every pane, 40x12 collapses to the focused one", "[dashboard][screens]") {
  model m = dashboard_model("99887766", 80, 24);
  m.log_open = true;
  frame_layout big = compute_layout(m);
  CHECK_FALSE(big.leases.empty());
  CHECK_FALSE(big.nodes.empty());
  CHECK_FALSE(big.tasks.empty());
  CHECK_FALSE(big.log.empty());
  m.width = 40;
  m.height = 12;
  frame_layout small = compute_layout(m);
  CHECK_FALSE(small.tasks.empty());
  CHECK(small.nodes.empty());
  CHECK(small.leases.empty());
  std::string s = screen_text(m);
  CHECK(contains(s, "tasks"));
  CHECK(contains(s, "lease=99887766"));
  m.width = 2;
  m.height = 2;
  CHECK_NOTHROW(screen_text(m));
}

TEST_CASE("escape sequences in commands never reach the screen", "[dashboard][screens]") {
  model m = dashboard_model();
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>(snap->tasks());
  (*tasks)[2] = make_task(3, task_state::running, "nodeA", "echo \x1b]52;c;SGVsbG8=\x07pwn\x1b[2J");
  snap->task_table = tasks;
  snap->generation = 2;
  update(m, message{msg_snapshot{snap}});
  leaseq::tui::buffer buf(m.width, m.height);
  view(m, buf);
  std::string s = buf.to_text();
  CHECK(s.find('\x1b') == std::string::npos);
  CHECK(s.find('\x07') == std::string::npos);
  CHECK(contains(s, "pwn"));
}

// Audit of issue 15: the screen buffer passed bidi controls and invisible characters (U+2066
// and U+202E have width 1 to it) into its cells, so a row holding them lost its right border.
TEST_CASE("bidi controls and invisible characters in commands never reach the screen",
          "[dashboard][screens]") {
  const std::string rlo = "\xe2\x80\xae", lri = "\xe2\x81\xa6", zwsp = "\xe2\x80\x8b";
  model m = dashboard_model();
  auto snap = std::make_shared<leaseq::snapshot>(*make_snapshot("99887766"));
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>(snap->tasks());
  (*tasks)[2] = make_task(3, task_state::running, "nodeA", "echo " + rlo + "gnp.exe" + lri + "x");
  snap->task_table = tasks;
  snap->generation = 2;
  update(m, message{msg_snapshot{snap}});
  leaseq::tui::buffer buf(m.width, m.height);
  view(m, buf);
  // Printed straight into the buffer too, as any widget might.
  buf.print(0, m.height - 1, "raw" + rlo + lri + zwsp + "end");
  leaseq::tui::buffer empty(m.width, m.height);
  for (const std::string& out : {buf.to_text(), leaseq::tui::present(empty, buf)})
    for (const std::string& hidden : {rlo, lri, zwsp}) CHECK_FALSE(contains(out, hidden));
  CHECK(contains(buf.row_text(m.height - 1), "raw"));
  CHECK(contains(buf.row_text(m.height - 1), "end"));
}

TEST_CASE("lease kind, state and filter are enums read from the row's text",
          "[dashboard][leases]") {
  for (lease_kind k : {lease_kind::local, lease_kind::slurm})
    CHECK(parse_lease_kind(to_string(k)) == k);
  CHECK(parse_lease_kind("cloud") == lease_kind::unknown);
  for (lease_state s :
       {lease_state::running, lease_state::pending, lease_state::unknown, lease_state::stale})
    CHECK(parse_lease_state(to_string(s)) == s);
  CHECK(parse_lease_state("COMPLETED") == lease_state::other);
  CHECK(parse_lease_state("running") == lease_state::other);  // Slurm's words are upper case

  leaseq::lease_row local, slurm;
  local.kind = "local";
  local.state = "RUNNING";
  slurm.kind = "slurm";
  slurm.state = "PENDING";
  lease_filter_mode f = lease_filter_mode::all;
  std::vector<std::string> names;
  do {
    names.push_back(to_string(f));
    f = next(f);
  } while (f != lease_filter_mode::all);
  CHECK(names == std::vector<std::string>{"all", "local", "slurm", "running", "pending"});
  CHECK(admits(lease_filter_mode::all, local));
  CHECK(admits(lease_filter_mode::local, local));
  CHECK_FALSE(admits(lease_filter_mode::local, slurm));
  CHECK(admits(lease_filter_mode::slurm, slurm));
  CHECK(admits(lease_filter_mode::running, local));
  CHECK_FALSE(admits(lease_filter_mode::running, slurm));
  CHECK(admits(lease_filter_mode::pending, slurm));
}
