// The runner's background result writer: every job ends written (result durable, then the
// claimed file gone) or reported with its error, in the order given.
#include <leaseq/engine/result_writer.hpp>
#include <leaseq/names.hpp>

#include <atomic>
#include <map>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;

namespace {

// Collects outcomes until `count` arrived (or a few seconds passed).
std::map<std::string, std::optional<std::string>> collect_all(result_writer& w, std::size_t count) {
  std::map<std::string, std::optional<std::string>> got;
  test_support::wait_until([&] {
    for (auto& o : w.collect()) got[o.id] = o.error;
    return got.size() >= count;
  });
  return got;
}

}  // namespace

TEST_CASE("result_writer: writes results, then removes the claimed files", "[result_writer]") {
  temp_dir t;
  fs::create_directories(t / "done");
  fs::create_directories(t / "claimed");
  std::atomic<int> wakes{0};
  result_writer w([&] { ++wakes; });
  for (int i = 1; i <= 200; ++i) {
    std::string id = format_task_id(i);
    test_support::write_text(t / "claimed" / (id + ".json"), "{}");
    w.submit({id, t / "done" / (id + ".result.json"), "{\"id\": \"" + id + "\"}\n",
              t / "claimed" / (id + ".json")});
  }
  auto got = collect_all(w, 200);
  REQUIRE(got.size() == 200);
  for (const auto& [id, error] : got) {
    CHECK_FALSE(error);
    CHECK(test_support::read_text(t / "done" / (id + ".result.json")) ==
          "{\"id\": \"" + id + "\"}\n");
    CHECK_FALSE(fs::exists(t / "claimed" / (id + ".json")));
  }
  CHECK(wakes > 0);
  // No temp file is left in done/.
  for (const auto& e : fs::directory_iterator(t / "done"))
    CHECK(e.path().filename().string().rfind(".", 0) != 0);
}

TEST_CASE("result_writer: a failed write is reported and keeps the claimed file",
          "[result_writer]") {
  temp_dir t;
  fs::create_directories(t / "claimed");
  test_support::write_text(t / "claimed" / "T001.json", "{}");
  result_writer w;
  // done/ does not exist: the write fails.
  w.submit({"T001", t / "done" / "T001.result.json", "{}\n", t / "claimed" / "T001.json"});
  auto got = collect_all(w, 1);
  REQUIRE(got.count("T001"));
  REQUIRE(got["T001"]);
  CHECK(got["T001"]->find("cannot create") != std::string::npos);
  CHECK(fs::exists(t / "claimed" / "T001.json"));
  // A job without a claimed file to remove (its directory is not safe) only writes.
  fs::create_directories(t / "done");
  w.submit({"T001", t / "done" / "T001.result.json", "{}\n", std::nullopt});
  got = collect_all(w, 1);
  CHECK_FALSE(got["T001"]);
  CHECK(fs::exists(t / "done" / "T001.result.json"));
  CHECK(fs::exists(t / "claimed" / "T001.json"));
}

TEST_CASE("result_writer: destroyed with work queued, it stops without hanging",
          "[result_writer]") {
  temp_dir t;
  fs::create_directories(t / "done");
  {
    result_writer w;
    for (int i = 1; i <= 500; ++i) {
      std::string id = format_task_id(i);
      w.submit({id, t / "done" / (id + ".result.json"), "{}\n", std::nullopt});
    }
  }
  // Whatever was written is whole; no temp file is left.
  for (const auto& e : fs::directory_iterator(t / "done")) {
    CHECK(e.path().filename().string().rfind(".", 0) != 0);
    CHECK(test_support::read_text(e.path()) == "{}\n");
  }
}

TEST_CASE(
    "result_writer: in one group commit, a result that cannot be written keeps only its "
    "own claimed file",
    "[result_writer]") {
  temp_dir t;
  fs::create_directories(t / "done");
  fs::create_directories(t / "claimed");
  // Jobs queued while the writer is busy with the first are committed together; every third
  // one aims at a directory that does not exist.
  result_writer w;
  std::map<std::string, bool> good;
  for (int i = 1; i <= 60; ++i) {
    std::string id = format_task_id(i);
    bool ok = i % 3 != 0;
    good[id] = ok;
    test_support::write_text(t / "claimed" / (id + ".json"), "{}");
    fs::path dir = ok ? t / "done" : t / "missing";
    w.submit({id, dir / (id + ".result.json"), id + "\n", t / "claimed" / (id + ".json")});
  }
  auto got = collect_all(w, 60);
  REQUIRE(got.size() == 60);
  for (const auto& [id, error] : got) {
    CHECK(static_cast<bool>(error) == !good[id]);
    CHECK(fs::exists(t / "claimed" / (id + ".json")) == !good[id]);
    if (good[id]) CHECK(test_support::read_text(t / "done" / (id + ".result.json")) == id + "\n");
  }
  for (const auto& e : fs::directory_iterator(t / "done"))
    CHECK(e.path().filename().string().rfind(".", 0) != 0);
}
