// The Slurm lease form, the help overlay, copy, quitting.
#include "fixtures.hpp"

#include <catch2/catch.hpp>

using namespace dash_test;
namespace tui = leaseq::tui;

TEST_CASE("create form: every field, live preview, test-only before submit", "[dashboard][form]") {
  model m = lease_list_model(100, 40);
  press(m, 'n');
  REQUIRE(m.ov == overlay::form);
  std::string s = screen_text(m);
  for (const char* f : {"name", "nodes", "time", "partition", "qos", "account", "constraint",
                        "reservation", "gpus-per-node", "slots", "sbatch arg 1"})
    CHECK(contains(s, f));
  CHECK(m.create.form.fields[8].value == "0");  // gpus-per-node defaults to 0
  CHECK(contains(s, "slots per node: 1 (the default"));
  CHECK(contains(s, "sbatch --parsable --job-name=leaseq --nodes=1"));
  CHECK(contains(s, "keeper script: /home/u/.leaseq/keepers/keeper-"));
  type(m, "exp1");
  press(m, tui::key_code::tab);
  press(m, tui::key_code::backspace);
  type(m, "3");
  m.create.form.focused = 3;
  type(m, "debug");
  m.create.form.focused = 9;  // slots
  type(m, "auto");
  CHECK(contains(screen_text(m), "slots per node: auto (one per CPU"));
  m.create.form.focused = 10;
  type(m, "--exclusive");
  CHECK(m.create.form.fields.size() == 12);  // a new empty extra arg appeared
  CHECK(m.create.form.fields[11].label == "sbatch arg 2");
  press(m, tui::key_code::down);
  type(m, "--mem=0");
  s = screen_text(m);
  CHECK(contains(s, "--job-name=leaseq-exp1"));
  CHECK(contains(s, "--nodes=3"));
  CHECK(contains(s, "--partition=debug"));
  CHECK(contains(s, "--exclusive"));
  CHECK(contains(s, "--mem=0"));
  press(m, tui::key_code::enter);
  REQUIRE(last_request<req_create>(m));
  auto req = *last_request<req_create>(m);
  CHECK(req.test_only);
  CHECK(req.req.nodes == 3);
  CHECK(*req.req.name == "exp1");
  CHECK(req.req.extra_args == std::vector<std::string>{"--exclusive", "--mem=0"});
  CHECK(req.req.slots == "auto");
  CHECK(m.create.phase == form_phase::testing);
  update(m, message{msg_test_only{true, "sbatch: Job 12 to start at 2026-01-01 using 3 CPUs"}});
  CHECK(m.create.phase == form_phase::tested_ok);
  CHECK(contains(screen_text(m), "Job 12 to start"));
  m.outbox.clear();
  press(m, tui::key_code::enter);
  REQUIRE(last_request<req_create>(m));
  CHECK_FALSE(last_request<req_create>(m)->test_only);
  update(m, message{msg_created{true, "12"}});
  CHECK(m.ov == overlay::none);
  CHECK(contains(m.message, "created Slurm lease 12"));
  CHECK(last_request<req_refresh>(m));
}

TEST_CASE("create form: bad input is refused before Slurm is asked, edits re-test",
          "[dashboard][form]") {
  model m = lease_list_model(100, 40);
  press(m, 'n');
  m.create.form.focused = 1;
  press(m, tui::key::ctrl_of('u'));
  type(m, "x");
  press(m, tui::key_code::enter);
  CHECK_FALSE(last_request<req_create>(m));
  CHECK(contains(m.create.status, "nodes"));
  press(m, tui::key_code::backspace);
  type(m, "2");
  press(m, tui::key_code::enter);
  REQUIRE(last_request<req_create>(m));
  update(m, message{msg_test_only{false, "sbatch: error: invalid partition specified: nope"}});
  CHECK(m.create.phase == form_phase::tested_fail);
  CHECK(contains(screen_text(m), "invalid partition"));
  m.outbox.clear();
  press(m, tui::key_code::enter);  // after a failure Enter tests again, never submits
  REQUIRE(last_request<req_create>(m));
  CHECK(last_request<req_create>(m)->test_only);
  update(m, message{msg_test_only{true, "ok"}});
  type(m, "3");  // an edit after the test: back to editing
  CHECK(m.create.phase == form_phase::editing);
  press(m, tui::key_code::escape);
  CHECK(m.ov == overlay::none);
}

TEST_CASE("help lists every key of the spec", "[dashboard][form]") {
  using kc = key_context;
  using tui::key_code;
  auto ch = [](char32_t c) { return tui::key::ch(c); };
  auto code = [](key_code c) { return tui::key::of(c); };
  const std::vector<std::pair<kc, tui::key>> spec = {
      {kc::global, ch('q')},
      {kc::global, ch('?')},
      {kc::dashboard, code(key_code::tab)},
      {kc::dashboard, code(key_code::backtab)},
      {kc::global, ch('/')},
      {kc::global, ch('r')},
      {kc::global, ch('p')},
      {kc::tasks, ch('c')},
      {kc::leases, ch('j')},
      {kc::leases, code(key_code::down)},
      {kc::leases, code(key_code::enter)},
      {kc::leases, ch('l')},
      {kc::leases, ch('n')},
      {kc::leases, ch('x')},
      {kc::leases, ch('f')},
      {kc::nodes, code(key_code::enter)},
      {kc::nodes, ch('s')},
      {kc::nodes, ch('P')},
      {kc::nodes, ch('U')},
      {kc::tasks, code(key_code::enter)},
      {kc::tasks, ch('F')},
      {kc::tasks, ch('E')},
      {kc::tasks, ch('A')},
      {kc::tasks, ch('L')},
      {kc::tasks, ch('X')},
      {kc::tasks, ch('R')},
      {kc::tasks, ch('1')},
      {kc::tasks, ch('4')},
      {kc::tasks, ch('5')},
      {kc::tasks, ch('0')},
      {kc::tasks, ch('e')},
      {kc::tasks, ch('S')},
      {kc::tasks, ch('v')},
      {kc::tasks, ch('f')},
      {kc::log, ch(' ')},
      {kc::log, code(key_code::page_up)},
      {kc::log, code(key_code::page_down)},
      {kc::log, ch('g')},
      {kc::log, ch('G')},
      {kc::log, ch('o')},
      {kc::log, ch('m')},
      {kc::log, code(key_code::escape)},
      {kc::details, ch('y')},
      {kc::paged, ch('/')},
  };
  for (const auto& [c, k] : spec) {
    INFO(to_string(c) << ": " << key_text(k));
    const key_binding* b = find_binding(c, k);
    REQUIRE(b);
    CHECK(std::find(key_help().begin(), key_help().end(), std::make_pair(key_label(*b), b->help)) !=
          key_help().end());
  }
  model m = dashboard_model("99887766", 100, 60);
  press(m, '?');
  REQUIRE(m.ov == overlay::help);
  std::string s = screen_text(m);
  CHECK(contains(s, "Help"));
  CHECK(contains(s, "follow the current RUNNING task"));
  press(m, 'j');
  CHECK(m.ov == overlay::help);
  press(m, tui::key_code::escape);
  CHECK(m.ov == overlay::none);
}

TEST_CASE("q quits, a quit signal quits", "[dashboard][form]") {
  model m = dashboard_model();
  CHECK(update(m, tui::event{tui::key_event{tui::key::ch('q')}}) == false);
  model n = dashboard_model();
  CHECK(update(n, tui::event{tui::signal_event{15}}) == false);
  model o = dashboard_model();
  CHECK(update(o, tui::event{tui::resize_event{50, 14}}));
  CHECK(o.width == 50);
}

TEST_CASE("create form: slots take auto or a count, anything else is refused before Slurm",
          "[dashboard][form]") {
  model m = lease_list_model(100, 40);
  press(m, 'n');
  m.create.form.focused = 9;
  type(m, "0");
  press(m, tui::key_code::enter);
  CHECK_FALSE(last_request<req_create>(m));
  CHECK(contains(m.create.status, "slots"));
  press(m, tui::key_code::backspace);
  type(m, "4");
  m.create.form.focused = 8;
  press(m, tui::key_code::backspace);
  type(m, "2");
  CHECK(contains(screen_text(m), "slots per node: 4"));
  press(m, tui::key_code::enter);
  REQUIRE(last_request<req_create>(m));
  CHECK(last_request<req_create>(m)->req.slots == "4");
  CHECK(last_request<req_create>(m)->req.gpus_per_node == 2);
}
