#include <leaseq/engine/submit.hpp>

#include <set>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;

namespace {

task_spec read_task(const fs::path& p) {
  json_outcome r = read_json_tolerant(p);
  REQUIRE(r.ok());
  task_spec t;
  from_json(*r.value, t);
  return t;
}

submit_request echo_request(const std::string& word) {
  submit_request r;
  r.argv = {"echo", word};
  r.cwd = "/tmp";
  return r;
}

}  // namespace

TEST_CASE("submit: one task into _any and into a node lane", "[submit]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  submit_request r = echo_request("hi there");
  r.env = {{"OMP_NUM_THREADS", "8"}};
  r.gpus = 2;
  auto a = submit_task(lease, "local:myhost", r, 100.5);
  CHECK(a.id == "T001");
  CHECK_FALSE(a.existing);
  task_spec ta = read_task(lease.inbox_task("_any", "T001"));
  CHECK(ta.seq == 1);
  CHECK(ta.lease == "local:myhost");
  CHECK_FALSE(ta.node);
  CHECK(ta.argv == std::vector<std::string>{"echo", "hi there"});
  CHECK(ta.cmd == "echo 'hi there'");
  CHECK(ta.cwd == "/tmp");
  CHECK(ta.env.at("OMP_NUM_THREADS") == "8");
  CHECK(ta.gpus == 2);
  CHECK(ta.created == 100.5);
  CHECK_FALSE(ta.retry_of);
  // node is written as null for _any
  CHECK(read_json_tolerant(lease.inbox_task("_any", "T001")).value->at("node").is_null());

  r.node = "nodeA";
  auto b = submit_task(lease, "local:myhost", r);
  CHECK(b.id == "T002");
  CHECK(read_task(lease.inbox_task("nodeA", "T002")).node == "nodeA");
}

TEST_CASE("submit: bad input is refused and writes nothing", "[submit]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  submit_request empty;
  CHECK_THROWS_AS(submit_task(lease, "local:h", empty), error);
  submit_request r = echo_request("x");
  r.node = "../evil";
  CHECK_THROWS_AS(submit_task(lease, "local:h", r), name_error);
  r.node.reset();
  r.key = "bad/key";
  CHECK_THROWS_AS(submit_task(lease, "local:h", r), name_error);
  r.key.reset();
  r.env = {{"A=B", "c"}};
  CHECK_THROWS_AS(submit_task(lease, "local:h", r), error);
  r.env.clear();
  CHECK_THROWS_AS(submit_task(lease, "../x", r), name_error);
  CHECK_FALSE(fs::exists(lease.inbox_root()));
  CHECK(submit_task(lease, "local:h", r).id == "T001");
}

TEST_CASE("submit: an idempotency key enqueues once, even when racing", "[submit]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  submit_request r = echo_request("once");
  r.key = "job-42";
  auto a = submit_task(lease, "local:h", r);
  auto b = submit_task(lease, "local:h", r);
  CHECK(a.id == b.id);
  CHECK(b.existing);
  CHECK(test_support::read_text(lease.key("job-42")).rfind(a.id + "\n", 0) == 0);
  CHECK(detail::list_dir(lease.inbox("_any").string()).names.size() == 1);

  // 8 processes race with one new key: exactly one task.
  r.key = "race";
  int failures = test_support::run_in_children(8, [&](int) {
    auto s = submit_task(lease, "local:h", r);
    return is_valid_task_id(s.id) ? 0 : 1;
  });
  CHECK(failures == 0);
  std::string raced = test_support::read_text(lease.key("race"));
  int with_key = 0;
  for (const auto& n : detail::list_dir(lease.inbox("_any").string()).names)
    if (read_task(lease.inbox("_any") / n).key == std::string("race")) ++with_key;
  CHECK(with_key == 1);
}

TEST_CASE("submit: a corrupt key file is reported, not overwritten", "[submit]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  test_support::write_text(lease.key("k"), "garbage");
  submit_request r = echo_request("x");
  r.key = "k";
  CHECK_THROWS_AS(submit_task(lease, "local:h", r), error);
  CHECK(test_support::read_text(lease.key("k")) == "garbage");
}

TEST_CASE("submit: a batch takes one seq range and keeps order", "[submit]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  submit_task(lease, "local:h", echo_request("first"));
  std::vector<submit_request> batch;
  for (int i = 0; i < 500; ++i) {
    submit_request r;
    r.argv = shell_argv("echo " + std::to_string(i));
    r.node = i % 2 ? std::optional<std::string>("b") : std::nullopt;
    batch.push_back(r);
  }
  batch[10].key = "ten";
  auto out = submit_batch(lease, "local:h", batch, 5.0);
  REQUIRE(out.size() == 500);
  for (int i = 0; i < 500; ++i) CHECK(out[i].id == format_task_id(2 + i));
  task_spec t7 = read_task(lease.inbox_task("b", out[7].id));
  CHECK(t7.cmd == "echo 7");
  CHECK(t7.argv == std::vector<std::string>{"/bin/sh", "-c", "echo 7"});
  CHECK(detail::list_dir(lease.inbox("_any").string()).names.size() == 251);
  CHECK(detail::list_dir(lease.inbox("b").string()).names.size() == 250);

  // Submitting the same keyed line again returns the earlier id and enqueues nothing new.
  auto again = submit_batch(lease, "local:h", {batch[10]});
  CHECK(again[0].id == out[10].id);
  CHECK(again[0].existing);
  CHECK(detail::list_dir(lease.inbox("_any").string()).names.size() == 251);
  // Nothing half-written or temporary is left behind (list_dir hides dot names: look at all).
  for (const fs::path& dir : {lease.inbox("b"), lease.inbox("_any"), lease.keys_dir()})
    for (const auto& e : fs::directory_iterator(dir))
      CHECK(e.path().filename().string().rfind(".", 0) != 0);
}

TEST_CASE("submit: a large batch (two writer threads) with keys, repeated ones included",
          "[submit]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  submit_request earlier = echo_request("earlier");
  earlier.key = "k-7";
  std::string earlier_id = submit_task(lease, "local:h", earlier).id;
  std::vector<submit_request> batch;
  for (int i = 0; i < 5000; ++i) {
    submit_request r;
    r.argv = shell_argv("echo " + std::to_string(i));
    r.cmd = "echo " + std::to_string(i);
    r.node = i % 3 == 0 ? std::optional<std::string>("n" + std::to_string(i % 4)) : std::nullopt;
    if (i % 10 == 7) r.key = "k-" + std::to_string(i);
    batch.push_back(r);
  }
  batch[4000].key = "k-17";  // the same key twice in one batch: the first one wins
  auto out = submit_batch(lease, "local:h", batch, 7.0);
  REQUIRE(out.size() == batch.size());
  CHECK(out[7].existing);  // k-7 was taken before the batch
  CHECK(out[7].id == earlier_id);
  CHECK(out[4000].existing);
  CHECK(out[4000].id == out[17].id);
  std::size_t files = 0, fresh = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (out[i].existing) continue;
    ++fresh;
    CHECK(out[i].id == format_task_id(2 + static_cast<std::int64_t>(i)));
    if (batch[i].key)
      CHECK(test_support::read_text(lease.key(*batch[i].key)).rfind(out[i].id + "\n", 0) == 0);
  }
  for (const auto& lane : {"_any", "n0", "n1", "n2", "n3"}) {
    if (!fs::exists(lease.inbox(lane))) continue;
    for (const auto& e : fs::directory_iterator(lease.inbox(lane))) {
      std::string name = e.path().filename().string();
      CHECK(name.rfind(".", 0) != 0);  // no temp file left
      ++files;
    }
  }
  CHECK(files == fresh + 1);  // and the earlier task
  CHECK(fresh == batch.size() - 2);
  task_spec t4999 = read_task(lease.inbox_task("_any", out[4999].id));
  CHECK(t4999.cmd == "echo 4999");
  CHECK(t4999.created == 7.0);
  task_spec t3 = read_task(lease.inbox_task("n3", out[3].id));
  CHECK(t3.node == "n3");
  // The ids reserved for the two requests a key answered were given back; every id published
  // is committed and published on its ticket (docs/protocol.md, Sequence numbers).
  CHECK_FALSE(fs::exists(lease.ids_dir() / std::to_string(2 + 7)));
  CHECK_FALSE(fs::exists(lease.ids_dir() / std::to_string(2 + 4000)));
  for (std::size_t i : {std::size_t{0}, std::size_t{17}, std::size_t{4999}}) {
    std::int64_t seq = *task_seq(out[i].id);
    auto ticket =
        detail::parse_ticket(test_support::read_text(lease.ids_dir() / std::to_string(seq)));
    REQUIRE(ticket);
    CHECK(ticket->published);
    REQUIRE(ticket->committed_through);
    CHECK(*ticket->committed_through >= seq);
  }
}

TEST_CASE("submit: a final name already taken is never replaced: that task gets a fresh id",
          "[submit]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  CHECK(submit_task(lease, "local:h", echo_request("first")).id == "T001");
  std::vector<submit_request> batch;
  for (int i = 0; i < 3000; ++i) batch.push_back(echo_request(std::to_string(i)));
  // The batch is T002..T3001; T2001's final name is taken (by a directory, here).
  fs::create_directories(lease.inbox_task("_any", "T2001"));
  auto out = submit_batch(lease, "local:h", batch);
  CHECK(out[1998].id == "T2000");
  CHECK(out[1999].id == "T3002");  // T2001 was taken
  CHECK(out[2000].id == "T2002");
  CHECK(fs::is_directory(lease.inbox_task("_any", "T2001")));
  CHECK(read_task(lease.inbox_task("_any", "T3002")).argv[1] == "1999");
  std::size_t tasks = 0;
  for (const auto& e : fs::directory_iterator(lease.inbox("_any"))) {
    std::string name = e.path().filename().string();
    CHECK(name.rfind(".", 0) != 0);
    if (e.is_regular_file()) ++tasks;
  }
  CHECK(tasks == 3001);
  CHECK(submit_task(lease, "local:h", echo_request("next")).id == "T3003");
}

TEST_CASE("submit: retry is a new task naming the old one", "[submit]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  submit_request r = echo_request("again");
  r.env = {{"X", "1"}};
  r.gpus = 1;
  r.node = "n1";
  auto first = submit_task(lease, "local:h", r);
  // Move it to done/ as a runner would.
  task_result res;
  res.task = read_task(lease.inbox_task("n1", first.id));
  res.state = task_state::failed;
  res.exit_code = 1;
  ensure_dir(lease.done("n1"));
  write_json_atomic(lease.result("n1", first.id), json(res));
  fs::remove(lease.inbox_task("n1", first.id));

  auto again = retry_task(lease, "local:h", first.id);
  CHECK(again.id == "T002");
  task_spec t2 = read_task(lease.inbox_task("n1", "T002"));
  CHECK(t2.retry_of == first.id);
  CHECK(t2.argv == r.argv);
  CHECK(t2.cwd == r.cwd);
  CHECK(t2.env == r.env);
  CHECK(t2.gpus == 1);
  CHECK_THROWS_AS(retry_task(lease, "local:h", "T999"), error);
}

TEST_CASE("submit: display form of argv", "[submit]") {
  CHECK(display_command({"python", "train.py", "--cfg", "a.yaml"}) ==
        "python train.py --cfg a.yaml");
  CHECK(display_command({"echo", "it's"}) == "echo 'it'\\''s'");
  CHECK(display_command({"echo", ""}) == "echo ''");
  CHECK(display_command(shell_argv("ls | wc -l")) == "ls | wc -l");
}

TEST_CASE("submit: a key whose submit died before publishing is taken over", "[submit]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  // A dead owner on this host: a child that has exited (its pid and start time name nobody).
  detail::process_identity dead = detail::process_identity::of_self();
  dead.start_ticks += 1;  // this pid, another start: not this process
  test_support::write_text(lease.key("orphan"), "T077\n" + dead.to_line() + "\n");
  test_support::write_text(lease.ids_dir() / "77", "R " + dead.to_line() + "\n");  // unpublished
  submit_request r = echo_request("again");
  r.key = "orphan";
  auto s = submit_task(lease, "local:h", r);
  CHECK_FALSE(s.existing);
  CHECK(s.id != "T077");
  CHECK(fs::exists(lease.inbox_task("_any", s.id)));
  CHECK(test_support::read_text(lease.key("orphan")).rfind(s.id + "\n", 0) == 0);
  // Now bound to a task that exists: answered, nothing new.
  auto again = submit_task(lease, "local:h", r);
  CHECK(again.existing);
  CHECK(again.id == s.id);

  // A key of another host, young, whose task is not visible: trusted (its submit may still
  // be publishing, or this client's cache lags).
  detail::process_identity elsewhere = dead;
  elsewhere.host = "some-other-host";
  test_support::write_text(lease.key("far"), "T078\n" + elsewhere.to_line() + "\n");
  test_support::write_text(lease.ids_dir() / "78", "R " + elsewhere.to_line() + "\n");
  // And a key whose submit ended after publishing (ticket 'P'), its task not visible here:
  // lag, never an orphan, even with its owner gone.
  test_support::write_text(lease.key("lag"), "T079\n" + dead.to_line() + "\n");
  test_support::write_text(lease.ids_dir() / "79", "P " + dead.to_line() + "\n");
  r.key = "lag";
  auto lag = submit_task(lease, "local:h", r);
  CHECK(lag.existing);
  CHECK(lag.id == "T079");
  r.key = "far";
  auto far = submit_task(lease, "local:h", r);
  CHECK(far.existing);
  CHECK(far.id == "T078");
}

TEST_CASE("submit: a batch that fails leaves no key and gives its ids back", "[submit]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  submit_task(lease, "local:h", echo_request("first"));
  // inbox/nodeZ is a file: the batch cannot write that request's task.
  test_support::write_text(lease.inbox_root() / "nodeZ", "not a directory");
  std::vector<submit_request> batch(3, echo_request("x"));
  batch[0].key = "b0";
  batch[1].key = "b1";
  batch[2].node = "nodeZ";
  CHECK_THROWS_AS(submit_batch(lease, "local:h", batch), error);
  CHECK_FALSE(fs::exists(lease.key("b0")));
  CHECK_FALSE(fs::exists(lease.key("b1")));
  for (const auto& n : detail::list_dir(lease.ids_dir().string()).names)
    CHECK((n == "1" || n == "floor"));
  for (const auto& n : detail::list_dir(lease.inbox("_any").string()).names)
    CHECK(n == "T001.json");
}

TEST_CASE("submit: a task file is never replaced, even with a stale seq file", "[submit]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  for (int i = 0; i < 5; ++i) submit_task(lease, "local:h", echo_request("old"));
  // A protocol 1 writer put T006 in a lane without reserving it; the seq file lags.
  test_support::write_text(lease.inbox_task("_any", "T006"), "{\"id\":\"T006\"}");
  test_support::write_text(lease.seq(), "2\n");
  auto s = submit_task(lease, "local:h", echo_request("NEW"));
  CHECK(s.id == "T007");
  CHECK(test_support::read_text(lease.inbox_task("_any", "T006")) == "{\"id\":\"T006\"}");
  CHECK(read_task(lease.inbox_task("_any", "T002")).argv[1] == "old");
}

TEST_CASE("submit: array ranges parse and bad ones are refused", "[submit][array]") {
  array_range r = parse_array_range("0-9");
  CHECK(r.count() == 10);
  CHECK(r.at(9) == 9);
  r = parse_array_range("1-10:3");
  CHECK(r.count() == 4);  // 1 4 7 10
  CHECK(r.at(3) == 10);
  r = parse_array_range("5-5");
  CHECK(r.count() == 1);
  CHECK(parse_array_range("0-999999").count() == max_array_size);
  for (const char* bad : {"", "-", "0-", "-5", "5-3", "a-b", "1-5:0", "1-5:", "1:5", "5", "1-2-3",
                          "1 -5", "0x1-5", "0-1000000", "0-99999999999999999"}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse_array_range(bad), Catch::StartsWith("--array "));
  }
  CHECK_THROWS_WITH(parse_array_range("0-1000000"), Catch::Contains("at most 1000000"));
  CHECK_THROWS_WITH(parse_array_range("5-3"), Catch::Contains("END is below START"));
}

TEST_CASE("submit: an array batch names every task after its first", "[submit][array]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  submit_task(lease, "local:myhost", echo_request("before"));
  std::vector<submit_request> batch;
  for (std::int64_t i : {4, 6, 8}) {
    submit_request r = echo_request("x");
    r.array_index = i;
    batch.push_back(r);
  }
  auto out = submit_batch(lease, "local:myhost", batch);
  REQUIRE(out.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    task_spec s = read_task(lease.inbox_task("_any", out[i].id));
    auto a = array_member_of(s);
    REQUIRE(a);
    CHECK(a->id == "T002");
    CHECK(a->index == 4 + 2 * static_cast<std::int64_t>(i));
    auto env = array_environment(s);
    CHECK(env ==
          std::vector<std::pair<std::string, std::string>>{
              {"LEASEQ_ARRAY_ID", "T002"}, {"LEASEQ_ARRAY_INDEX", std::to_string(a->index)}});
  }
  // A plain task is no array's; a retry of an array task keeps its place.
  CHECK_FALSE(array_member_of(read_task(lease.inbox_task("_any", "T001"))));
  CHECK(array_environment(read_task(lease.inbox_task("_any", "T001"))).empty());
  auto re = retry_task(lease, "local:myhost", "T003");
  auto a = array_member_of(read_task(lease.inbox_task("_any", re.id)));
  REQUIRE(a);
  CHECK(a->id == "T002");
  CHECK(a->index == 6);
}

TEST_CASE("submit: a keyed array submitted again keeps its name", "[submit][array]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  auto array = [](int n) {
    std::vector<submit_request> batch;
    for (int i = 0; i < n; ++i) {
      submit_request r = echo_request("x");
      r.array_index = i;
      r.key = "sweep." + std::to_string(i);
      batch.push_back(r);
    }
    return batch;
  };
  auto first = submit_batch(lease, "local:myhost", array(2));
  REQUIRE(first.size() == 2);
  // Again, larger: the two keyed tasks answer with their ids, the new ones join the array.
  auto again = submit_batch(lease, "local:myhost", array(4));
  REQUIRE(again.size() == 4);
  CHECK(again[0].existing);
  CHECK(again[0].id == first[0].id);
  CHECK_FALSE(again[3].existing);
  for (std::size_t i : {2, 3}) {
    auto a = array_member_of(read_task(lease.inbox_task("_any", again[i].id)));
    REQUIRE(a);
    CHECK(a->id == first[0].id);
    CHECK(a->index == static_cast<std::int64_t>(i));
  }
}

TEST_CASE("submit: durations for --time-limit and --retry-delay", "[submit]") {
  CHECK(parse_submit_duration("30s", "--x") == 30);
  CHECK(parse_submit_duration("5m", "--x") == 300);
  CHECK(parse_submit_duration("1h", "--x") == 3600);
  CHECK(parse_submit_duration("1h30m", "--x") == 5400);
  CHECK(parse_submit_duration("2d", "--x") == 172800);
  CHECK(parse_submit_duration("2:00:00", "--x") == 7200);
  CHECK(parse_submit_duration("1:30", "--x") == 90);
  CHECK(parse_submit_duration("1-02:00:00", "--x") == 93600);
  CHECK(parse_submit_duration("0s", "--x") == 0);
  for (const char* bad : {"", "30", "5 m", "m", "5x", "1:3", "1:60:00", "1:2:3:4", "-5s", "1..5s",
                          ".s", "1.5h", "1-2", "3.5:00", "99999999999999999h"}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse_submit_duration(bad, "--time-limit"), Catch::Contains("--time-limit"));
  }
}

TEST_CASE("submit: --after names only tasks that exist, and limits are checked", "[submit]") {
  temp_dir tmp;
  lease_paths lease(tmp / "lease");
  submit_request first;
  first.argv = {"true"};
  std::string id = submit_task(lease, "local:h", first).id;
  submit_request r = first;
  r.after = {id, id};
  std::string dep = submit_task(lease, "local:h", r).id;
  CHECK(read_task(lease.inbox_task("_any", dep)).after == std::vector<std::string>{id});
  r.after = {id, "T777"};
  CHECK_THROWS_WITH(submit_task(lease, "local:h", r), Catch::Contains("T777"));
  r.after = {"T7"};
  CHECK_THROWS(submit_task(lease, "local:h", r));
  r.after.clear();
  r.time_limit = 0;
  CHECK_THROWS(submit_task(lease, "local:h", r));
  r.time_limit.reset();
  r.retries = -1;
  CHECK_THROWS(submit_task(lease, "local:h", r));
  // Nothing was enqueued by the refused submits.
  CHECK(detail::list_dir(lease.inbox("_any").string()).names.size() == 2);

  // A manual retry keeps the limits, not the dependencies.
  r = first;
  r.after = {id};
  r.time_limit = 60;
  r.retries = 2;
  std::string limited = submit_task(lease, "local:h", r).id;
  std::string again = retry_task(lease, "local:h", limited).id;
  task_spec t = read_task(lease.inbox_task("_any", again));
  CHECK(t.after.empty());
  CHECK(t.time_limit == 60);
  CHECK(t.retries == 2);
}
