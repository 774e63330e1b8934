#include <leaseq/snapshot.hpp>
#include <leaseq/task_filter.hpp>

#include <memory>
#include <vector>

#include <catch2/catch.hpp>

using namespace leaseq;

namespace {

task_view make(std::int64_t seq, task_state s, const std::string& node, const std::string& cmd,
               double created, std::optional<double> started = std::nullopt,
               std::optional<int> exit_code = std::nullopt) {
  task_view v;
  v.id = format_task_id(seq);
  v.seq = seq;
  v.state = s;
  v.node = node;
  auto spec = std::make_shared<task_spec>();
  spec->id = v.id;
  spec->cmd = cmd;
  spec->argv = {"/bin/sh", "-c", cmd};
  spec->created = created;
  v.spec = spec;
  if (started || exit_code) {
    auto r = std::make_shared<task_result>();
    r->task = *spec;
    r->state = s;
    r->started = started;
    r->exit_code = exit_code;
    v.result = r;
  }
  return v;
}

snapshot sample() {
  std::vector<task_view> t;
  t.push_back(make(1, task_state::finished, "nodeA", "python train.py --cfg a.yaml", 10, 20, 0));
  t.push_back(make(2, task_state::failed, "nodeB", "python eval.py", 11, 21, 2));
  t.push_back(make(3, task_state::running, "nodeA", "Python Train.py --cfg b.yaml", 12, 30));
  t.push_back(make(4, task_state::pending, "", "echo hi", 13));
  t.push_back(make(5, task_state::pending, "nodeB", "echo there", 14));
  t.push_back(make(6, task_state::running, "nodeB", "sleep 100", 15, 40));
  t.push_back(make(7, task_state::finished, "nodeB", "echo ok", 16, 25, 0));
  t.push_back(make(8, task_state::lost_maybe, "nodeA", "sleep 5", 17, 35));
  snapshot s;
  s.task_table = std::make_shared<const std::vector<task_view>>(std::move(t));
  return s;
}

std::vector<std::string> ids(const task_selection& sel) {
  std::vector<std::string> out;
  for (auto* t : sel.tasks) out.push_back(t->id);
  return out;
}

}  // namespace

TEST_CASE("default sort: state priority, then start time descending", "[task_filter]") {
  auto s = sample();
  auto sel = select_tasks(s, {}, task_sort::state_priority, 100);
  CHECK(sel.total == 8);
  CHECK(ids(sel) ==
        std::vector<std::string>{"T006", "T003", "T008", "T005", "T004", "T002", "T007", "T001"});
}

TEST_CASE("sort by seq within lane", "[task_filter]") {
  auto s = sample();
  auto sel = select_tasks(s, {}, task_sort::seq_in_lane, 100);
  CHECK(ids(sel) ==
        std::vector<std::string>{"T004", "T001", "T003", "T008", "T002", "T005", "T006", "T007"});
}

TEST_CASE("filters by state, node and command substring", "[task_filter]") {
  auto s = sample();
  task_filter f;
  f.states = {task_state::running, task_state::pending};
  CHECK(select_tasks(s, f, task_sort::seq_in_lane, 100).total == 4);
  f.node = "nodeB";
  CHECK(ids(select_tasks(s, f, task_sort::seq_in_lane, 100)) ==
        std::vector<std::string>{"T005", "T006"});
  task_filter g;
  g.command = "TRAIN.PY";
  CHECK(ids(select_tasks(s, g, task_sort::seq_in_lane, 100)) ==
        std::vector<std::string>{"T001", "T003"});
  task_filter lost;
  lost.states = {task_state::lost_maybe};
  CHECK(select_tasks(s, lost, task_sort::state_priority, 100).total == 1);
}

TEST_CASE("has-stderr-output filter: non-zero exit or a non-empty .err", "[task_filter]") {
  auto s = sample();
  task_filter f;
  f.has_stderr_output = true;
  CHECK(ids(select_tasks(s, f, task_sort::seq_in_lane, 100)) == std::vector<std::string>{"T002"});
  auto probe = [](const task_view& t) { return t.id == "T007"; };
  CHECK(ids(select_tasks(s, f, task_sort::seq_in_lane, 100, probe)) ==
        std::vector<std::string>{"T002", "T007"});
}

TEST_CASE("the cap keeps the first N and the total", "[task_filter]") {
  auto s = sample();
  auto sel = select_tasks(s, {}, task_sort::state_priority, 3);
  CHECK(sel.total == 8);
  CHECK(ids(sel) == std::vector<std::string>{"T006", "T003", "T008"});
  CHECK(select_tasks(s, {}, task_sort::state_priority, 0).tasks.empty());
}

TEST_CASE("filters by labels: the task carries every one asked for", "[task_filter]") {
  std::vector<task_view> t;
  auto labelled = [](std::int64_t seq, std::vector<std::string> labels) {
    task_view v = make(seq, task_state::pending, "", "echo " + std::to_string(seq), 1);
    auto spec = std::make_shared<task_spec>(*v.spec);
    spec->labels = std::move(labels);
    v.spec = spec;
    return v;
  };
  t.push_back(labelled(1, {"sweep", "lr:0.1"}));
  t.push_back(labelled(2, {"sweep"}));
  t.push_back(labelled(3, {}));
  snapshot s;
  s.task_table = std::make_shared<const std::vector<task_view>>(std::move(t));
  task_filter f;
  f.labels = {"sweep"};
  CHECK(ids(select_tasks(s, f, task_sort::seq_in_lane, 100)) ==
        std::vector<std::string>{"T001", "T002"});
  f.labels = {"sweep", "lr:0.1"};
  CHECK(ids(select_tasks(s, f, task_sort::seq_in_lane, 100)) == std::vector<std::string>{"T001"});
  f.labels = {"Sweep"};  // labels are exact
  CHECK(select_tasks(s, f, task_sort::seq_in_lane, 100).total == 0);
}

TEST_CASE("a dashboard search reads label:NAME words as label filters", "[task_filter]") {
  task_filter f;
  set_task_search(f, "label:sweep  train.py label:lr:0.1 --cfg");
  CHECK(f.labels == std::vector<std::string>{"sweep", "lr:0.1"});
  CHECK(f.command == "train.py --cfg");
  CHECK(task_search_text(f) == "label:sweep label:lr:0.1 train.py --cfg");
  set_task_search(f, "label:");  // no name: searched for as text
  CHECK(f.labels.empty());
  CHECK(f.command == "label:");
  set_task_search(f, "");
  CHECK(f.labels.empty());
  CHECK(f.command.empty());
}

TEST_CASE("the command search matches the command as shown, in any case, at any place",
          "[task_filter]") {
  using detail::contains_ci;
  CHECK(contains_ci("python train.py", ""));
  CHECK(contains_ci("python train.py", "PY"));
  CHECK(contains_ci("python train.py", "n.py"));  // at the very end
  CHECK(contains_ci("Python", "python"));         // the whole of it
  CHECK_FALSE(contains_ci("py", "python"));       // longer than the text
  CHECK_FALSE(contains_ci("", "a"));
  CHECK(contains_ci("aab", "ab"));  // a false start on the first byte
  CHECK_FALSE(contains_ci("a_b", "a-b"));
  CHECK(contains_ci("x[1]-Y", "[1]-y"));  // punctuation compares as itself

  // A task stored with argv alone (no cmd) is searched in argv's display form, quotes and all,
  // as the list shows it; a `/bin/sh -c` script as it is.
  std::vector<task_view> t;
  t.push_back(make(1, task_state::pending, "", "", 1));
  auto quoted = std::make_shared<task_spec>(*t[0].spec);
  quoted->argv = {"python", "train.py", "--name", "run one"};
  t[0].spec = quoted;
  t.push_back(make(2, task_state::pending, "", "echo 'run one'", 2));
  auto script = std::make_shared<task_spec>(*t[1].spec);
  script->cmd.clear();
  t[1].spec = script;
  snapshot s;
  s.task_table = std::make_shared<const std::vector<task_view>>(std::move(t));
  task_filter f;
  f.command = "--NAME 'RUN";
  CHECK(ids(select_tasks(s, f, task_sort::seq_in_lane, 10)) == std::vector<std::string>{"T001"});
  f.command = "echo 'run one'";
  CHECK(ids(select_tasks(s, f, task_sort::seq_in_lane, 10)) == std::vector<std::string>{"T002"});
  f.command = "run one";
  CHECK(select_tasks(s, f, task_sort::seq_in_lane, 10).total == 2);
  std::string scratch;
  CHECK(s.tasks()[0].command_view(scratch) == s.tasks()[0].command());
  CHECK(s.tasks()[1].command_view(scratch) == "echo 'run one'");
}
