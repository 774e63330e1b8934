#include <leaseq/index.hpp>
#include <leaseq/seq.hpp>

#include <algorithm>
#include <set>

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
  CHECK(allocate_seq(lease) == 21);
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
