// The generated single header, in one translation unit: it compiles alone (through the shim
// directory, every <leaseq/X.hpp> here is single_include/leaseq/leaseq.hpp) and its main
// templates work when instantiated from it. tools/amalgamate --check (single_header.is_fresh)
// proves it holds the same code as include/leaseq/, which the unit suite tests in full.
#include <leaseq/leaseq.hpp>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "lease_tree.hpp"
#include "test_support.hpp"

using namespace leaseq;

TEST_CASE("single header: submit, then the store and the diff see the tasks",
          "[single]") {
  test_support::temp_dir tmp;
  home_paths home(tmp.path() / "home");
  home.ensure_root();
  lease_paths lease(home, "local:single");
  submit_request r;
  r.argv = {"/bin/echo", "hi"};
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(submit_task(lease, "local:single", r).id);
  CHECK(ids == std::vector<std::string>{"T001", "T002", "T003"});

  snapshot_store<> store(lease, "local:single", store_options{});
  auto first = store.refresh();
  REQUIRE(first->complete);
  CHECK(first->count(task_state::pending) == 3);
  CHECK(first->find_task("T002")->command() == "/bin/echo hi");

  // A result appears: the next scan sees it, and the diff says which task changed.
  test_support::lease_tree t;
  t.done(2, "n1");
  snapshot_store<> hand_made(t.paths, t.lease, store_options{});
  auto s = hand_made.refresh();
  CHECK(s->count(task_state::finished) == 1);
  t.pending(3, "_any");
  auto s2 = hand_made.refresh_all();  // refresh() runs only the scans that are due
  CHECK(s2->count(task_state::pending) == 1);
  std::vector<snapshot_event> d = diff(*s, *s2);
  REQUIRE(d.size() == 1);
  CHECK(d[0].kind == event_kind::task_added);
  CHECK(d[0].name == "T003");
}

TEST_CASE("single header: a log is tailed line by line", "[single]") {
  test_support::temp_dir tmp;
  fs::path log = tmp.path() / "out.log";
  tail_follower<> f(log, log_stream::out, tail_options{});
  std::vector<tail_event> events;
  test_support::write_text(log, "one\ntwo\npart");
  f.poll(events);
  std::vector<std::string> lines;
  for (const auto& e : events)
    if (e.what == tail_event::kind::line && e.complete) lines.push_back(e.text);
  CHECK(lines == std::vector<std::string>{"one", "two"});
}
