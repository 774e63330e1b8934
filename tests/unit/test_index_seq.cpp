#include <leaseq/engine/seq.hpp>
#include <leaseq/index.hpp>
#include <leaseq/lock.hpp>
#include <leaseq/slurm/leases.hpp>

#include <algorithm>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;

TEST_CASE("index.json: register, default, round trip", "[index]") {
  temp_dir t;
  home_paths home(t / "home");
  CHECK(read_index(home).index.leases.empty());
  register_lease(home, {"local:myhost", "local", std::nullopt, 1.0, json::object()});
  register_lease(home, {"99887766", "slurm", std::string("train"), 2.0, json::object()});
  register_lease(home, {"local:myhost", "local", std::nullopt, 3.0, json::object()});
  auto r = read_index(home);
  REQUIRE(r.error.empty());
  CHECK(r.index.leases.size() == 2);
  CHECK(r.index.default_lease == "local:myhost");
  CHECK(r.index.find("99887766")->name == "train");
  struct stat st;
  REQUIRE(::stat(home.root().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
}

TEST_CASE("index.json: a corrupt index is reported and never overwritten", "[index]") {
  temp_dir t;
  home_paths home(t / "home");
  home.ensure_root();
  test_support::write_text(home.index(), "{\"version\": 1, \"leases\": [");
  auto r = read_index(home);
  CHECK_FALSE(r.error.empty());
  CHECK_THROWS_AS(register_lease(home, {"1", "slurm", std::nullopt, 1.0, json::object()}), error);
  CHECK(test_support::read_text(home.index()) == "{\"version\": 1, \"leases\": [");
  test_support::write_text(home.index(), R"({"leases": [{"id": "../x"}]})");
  CHECK(read_index(home).error.find("lease id") != std::string::npos);
}

TEST_CASE("index.json: unknown fields written by other tools survive a rewrite", "[index]") {
  temp_dir t;
  home_paths home(t / "home");
  home.ensure_root();
  test_support::write_text(
      home.index(),
      R"({"version": 1, "default": null, "x-tool": 7, "leases": [{"id": "5", "kind": "slurm", "name": null, "created": 1, "color": "red"}]})");
  register_lease(home, {"6", "slurm", std::nullopt, 2.0, json::object()});
  auto j = json::parse(test_support::read_text(home.index()));
  CHECK(j["x-tool"] == 7);
  CHECK(j["leases"][0]["color"] == "red");
  CHECK(j["leases"].size() == 2);
}

TEST_CASE("index.json: 8 processes adding 50 leases each lose none", "[index][processes]") {
  temp_dir t;
  home_paths home(t / "home");
  int failures = test_support::run_in_children(8, [&](int child) {
    for (int i = 0; i < 50; ++i)
      register_lease(home, {std::to_string(1000 * (child + 1) + i), "slurm", std::nullopt, 1.0,
                            json::object()});
    return 0;
  });
  REQUIRE(failures == 0);
  auto r = read_index(home);
  REQUIRE(r.error.empty());
  std::set<std::string> ids;
  for (auto& e : r.index.leases) ids.insert(e.id);
  CHECK(ids.size() == 400);
  CHECK(r.index.leases.size() == 400);
}

TEST_CASE("seq: starts at 1, allocates ranges, survives a lost counter", "[seq]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  CHECK(allocate_seq(lease) == 1);
  CHECK(allocate_seq(lease) == 2);
  CHECK(allocate_seq(lease, 10) == 3);
  CHECK(allocate_seq(lease) == 13);
  CHECK(test_support::read_text(lease.seq()) == "14\n");
  // The counter is lost, but tasks up to T020 exist: never hand out a taken id.
  fs::remove(lease.seq());
  test_support::write_text(lease.result("nodeA", "T020"), "{}");
  test_support::write_text(lease.inbox_task("_any", "T007"), "{}");
  CHECK(allocate_seq(lease) == 21);
  test_support::write_text(lease.seq(), "garbage");
  CHECK(allocate_seq(lease) == 22);  // 21 stays reserved in ids/ although no task names it
}

TEST_CASE("seq: every id is reserved exclusively in ids/, a stale seq file skips taken ones",
          "[seq]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  for (int i = 1; i <= 5; ++i) CHECK(allocate_seq(lease) == i);
  for (int i = 1; i <= 5; ++i) CHECK(fs::exists(lease.ids_dir() / std::to_string(i)));
  CHECK(test_support::read_text(lease.ids_floor()) == "1\n");
  test_support::write_text(lease.seq(), "2\n");  // edited, or another client's stale view
  CHECK(allocate_seq(lease) == 6);
  test_support::write_text(lease.seq(), "0\n");
  CHECK(allocate_seq(lease) == 7);
  // A hint 100 ids behind jumps past the reservations instead of probing each.
  for (int i = 0; i < 100; ++i) allocate_seq(lease);
  test_support::write_text(lease.seq(), "1\n");
  CHECK(allocate_seq(lease) == 108);
}

TEST_CASE("seq: a protocol 1 tree gets a floor above every task it holds", "[seq]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  test_support::write_text(lease.inbox_task("_any", "T001"), "{}");
  test_support::write_text(lease.inbox_task("nodeA", "T004"), "{}");
  test_support::write_text(lease.result("nodeB", "T003"), "{}");
  test_support::write_text(lease.seq(), "2\n");  // wrong: T004 exists
  CHECK(allocate_seq(lease) == 5);
  CHECK(test_support::read_text(lease.ids_floor()) == "5\n");
  test_support::write_text(lease.seq(), "3\n");
  CHECK(allocate_seq(lease) == 6);  // never below the floor, whatever the seq file says
}

TEST_CASE("seq: ids/ and its floor are made with the lease tree, before any submit", "[seq]") {
  // A reader whose mount cached "no ids/" from before the first submit would otherwise read
  // the tree by protocol 1 rules and count ids that submits gave back (sharedfs e2e).
  temp_dir t;
  home_paths home(t.path());
  lease_paths fresh(home, "local:fresh");
  REQUIRE(create_lease_json(fresh, json{{"id", "local:fresh"}}));
  CHECK(test_support::read_text(fresh.ids_floor()) == "1\n");
  CHECK(leaseq::detail::list_dir(fresh.ids_dir().string()).names ==
        std::vector<std::string>{"floor"});
  CHECK_FALSE(fs::exists(fresh.seq()));  // no id handed out yet

  // A protocol 1 tree another program wrote: the floor above every task, as a submit makes it.
  lease_paths old(home, "local:old");
  test_support::write_text(old.inbox_task("_any", "T004"), "{}");
  test_support::write_text(old.seq(), "2\n");
  write_lease_json(old, json{{"id", "local:old"}});
  CHECK(test_support::read_text(old.ids_floor()) == "5\n");
  CHECK(allocate_seq(old) == 5);

  // Best effort: a floor that is not a number, or a planted ids/ link, is left for the submit
  // to report; nothing is written through the link.
  lease_paths bad(home, "local:bad");
  test_support::write_text(bad.ids_floor(), "garbage\n");
  CHECK_NOTHROW(prepare_ids(bad));
  CHECK(test_support::read_text(bad.ids_floor()) == "garbage\n");
  lease_paths planted(home, "local:planted");
  fs::create_directories(planted.root());
  fs::create_directories(t / "outside");
  fs::create_directory_symlink(t / "outside", planted.ids_dir());
  CHECK_NOTHROW(prepare_ids(planted));
  CHECK(fs::is_empty(t / "outside"));
}

TEST_CASE("seq: a seq file beyond the largest id is named as the cause", "[seq]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  allocate_seq(lease);
  test_support::write_text(lease.seq(), "1000000000000000000\n");
  try {
    allocate_seq(lease);
    FAIL("accepted a seq of 10^18");
  } catch (const error& e) {
    CHECK_THAT(e.what(), Catch::Contains(lease.seq().string()));
    CHECK_THAT(e.what(), Catch::Contains("remove it"));
  }
}

TEST_CASE("seq: batches reserve distinct ids even when flock excludes nothing",
          "[seq][processes]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  fs::create_directories(t / "out");
  int failures = test_support::run_in_children(6, [&](int child) {
    std::string got;
    detail::reservation_maker maker(lease);
    for (int i = 0; i < 60; ++i)
      for (std::int64_t s : reserve_seqs(lease, 1 + (i % 5), maker, /*take_lock=*/false))
        got += std::to_string(s) + "\n";
    maker.mark_published();
    test_support::write_text(t / "out" / std::to_string(child), got);
    return 0;
  });
  REQUIRE(failures == 0);
  std::vector<std::int64_t> all;
  for (int c = 0; c < 6; ++c) {
    std::istringstream in(test_support::read_text(t / "out" / std::to_string(c)));
    std::int64_t v;
    while (in >> v) all.push_back(v);
  }
  REQUIRE(all.size() == 6u * (12 * (1 + 2 + 3 + 4 + 5)));
  std::set<std::int64_t> distinct(all.begin(), all.end());
  CHECK(distinct.size() == all.size());
  // Every reservation is marked published by its maker, and names its owner.
  auto ticket = detail::parse_ticket(test_support::read_text(lease.ids_dir() / "1"));
  REQUIRE(ticket);
  CHECK(ticket->published);
  CHECK(ticket->owner);
}

TEST_CASE("seq: a ticket commits to its ids only when told, in place", "[seq]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  auto ticket_of = [&](std::int64_t seq) {
    auto tk = detail::parse_ticket(test_support::read_text(lease.ids_dir() / std::to_string(seq)));
    REQUIRE(tk);
    return *tk;
  };
  {
    detail::reservation_maker maker(lease);
    auto seqs = reserve_seqs(lease, 3, maker);
    REQUIRE(seqs == std::vector<std::int64_t>{1, 2, 3});
    // Reserved, not committed: a reader does not count them yet.
    CHECK_FALSE(ticket_of(1).published);
    CHECK(ticket_of(1).owner);
    CHECK(ticket_of(1).committed_through == 0);
    maker.commit_through(2);
    CHECK(ticket_of(3).committed_through == 2);  // one inode: every link says the same
    maker.commit_through(1);                     // never backwards
    CHECK(ticket_of(1).committed_through == 2);
    maker.release(3);
    CHECK_FALSE(fs::exists(lease.ids_dir() / "3"));
    maker.mark_published();
    CHECK(ticket_of(2).published);
  }
  // allocate_seq's caller publishes what it returns: committed at once.
  std::int64_t first = allocate_seq(lease, 4);
  CHECK(ticket_of(first + 3).committed_through == first + 3);
  // A ticket of protocols 2 to 5 has no such line.
  test_support::write_text(lease.ids_dir() / "99", "R host 2 1 -\n");
  CHECK_FALSE(ticket_of(99).committed_through);
  CHECK(ticket_of(99).owner);
}

TEST_CASE("seq: 8 processes x 1000 allocations are distinct and gap-free", "[seq][processes]") {
  temp_dir t;
  lease_paths lease(t / "lease");
  fs::create_directories(t / "out");
  int failures = test_support::run_in_children(8, [&](int child) {
    std::string got;
    for (int i = 0; i < 1000; ++i) got += std::to_string(allocate_seq(lease)) + "\n";
    test_support::write_text(t / "out" / std::to_string(child), got);
    return 0;
  });
  REQUIRE(failures == 0);
  std::vector<std::int64_t> all;
  for (int c = 0; c < 8; ++c) {
    std::istringstream in(test_support::read_text(t / "out" / std::to_string(c)));
    std::int64_t v;
    while (in >> v) all.push_back(v);
  }
  REQUIRE(all.size() == 8000);
  std::sort(all.begin(), all.end());
  for (std::size_t i = 0; i < all.size(); ++i) REQUIRE(all[i] == static_cast<std::int64_t>(i + 1));
}

TEST_CASE("dot_lock: 6 processes incrementing one counter without flock lose nothing",
          "[index][processes]") {
  temp_dir t;
  fs::path counter = t / "counter";
  test_support::write_text(counter, "0");
  int failures = test_support::run_in_children(6, [&](int) {
    for (int i = 0; i < 40; ++i) {
      dot_lock lock(t / "counter.lock");
      int v = std::stoi(test_support::read_text(counter));
      write_file_atomic_nosync(counter, std::to_string(v + 1));
    }
    return 0;
  });
  REQUIRE(failures == 0);
  CHECK(test_support::read_text(counter) == "240");
  CHECK_FALSE(fs::exists(t / "counter.lock"));
}

TEST_CASE("dot_lock: a lock left by a dead process on this host is broken", "[index]") {
  temp_dir t;
  detail::process_identity dead = detail::process_identity::of_self();
  dead.start_ticks += 1;
  test_support::write_text(t / "x.lock", dead.to_line() + "\n");
  { dot_lock lock(t / "x.lock", 5); }
  CHECK_FALSE(fs::exists(t / "x.lock"));
  // One whose owner lives is waited for, up to the timeout.
  test_support::write_text(t / "y.lock", detail::process_identity::of_self().to_line() + "\n");
  CHECK_THROWS_WITH(dot_lock(t / "y.lock", 0.2), Catch::Contains("timed out"));
}

namespace {
// The slow breaker's side of the test below: stage 0 (judged stale, about to move it aside)
// waits for the test's "go"; stage 1 (moved aside and checked) says so.
fs::path slow_breaker_dir;
void slow_breaker_hook(const fs::path&, int stage) {
  if (stage == 0) {
    test_support::write_text(slow_breaker_dir / "judged", "");
    test_support::wait_until([] { return fs::exists(slow_breaker_dir / "go"); },
                             std::chrono::seconds(60));
  } else {
    test_support::write_text(slow_breaker_dir / "broke", "");
  }
}
}  // namespace

TEST_CASE("dot_lock: a slow breaker of a stale lock never removes the lock taken meanwhile",
          "[index][processes]") {
  temp_dir t;
  fs::path lock_path = t / "z.lock";
  detail::process_identity dead = detail::process_identity::of_self();
  dead.start_ticks += 1;
  test_support::write_text(lock_path, dead.to_line() + "\n");
  slow_breaker_dir = t.path();
  pid_t slow = ::fork();
  REQUIRE(slow >= 0);
  if (slow == 0) {
    int rc = 1;
    try {
      detail::dot_lock_break_hook = slow_breaker_hook;
      dot_lock lock(lock_path, 60);
      test_support::write_text(t / "slow_held", "");
      rc = 0;
    } catch (...) {
    }
    ::_exit(rc);
  }
  // The slow breaker judged the lock stale; this process breaks it first and takes the lock.
  REQUIRE(
      test_support::wait_until([&] { return fs::exists(t / "judged"); }, std::chrono::seconds(60)));
  std::string mine;
  {
    dot_lock lock(lock_path, 60);
    mine = test_support::read_text(lock_path);
    CHECK(mine.find(detail::process_identity::of_self().to_line()) == 0);
    test_support::write_text(t / "go", "");
    // The slow breaker moved our live lock aside, saw it was not the one it judged, and put
    // it back: the lock is still ours while we hold it.
    REQUIRE(test_support::wait_until([&] { return fs::exists(t / "broke"); },
                                     std::chrono::seconds(60)));
    CHECK(fs::exists(lock_path));
    CHECK(test_support::read_text(lock_path) == mine);
    CHECK_FALSE(fs::exists(t / "slow_held"));
  }
  int status = 0;
  ::waitpid(slow, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(fs::exists(t / "slow_held"));  // it took the lock once we let go
  CHECK_FALSE(fs::exists(lock_path));
  std::size_t left = 0;  // no ".stale." names left behind
  for (const auto& e : fs::directory_iterator(t.path()))
    left += e.path().filename().string().find(".stale.") != std::string::npos;
  CHECK(left == 0);
}
