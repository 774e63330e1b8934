#include <leaseq/archive.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/paths.hpp>
#include <leaseq/store.hpp>

#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "lease_tree.hpp"
#include "test_support.hpp"

using namespace leaseq;
using test_support::lease_tree;

namespace {

std::vector<archive_candidate> archive_test_candidates(int from, int to, const std::string& node,
                                                       task_state st = task_state::finished) {
  std::vector<archive_candidate> out;
  for (int s = from; s <= to; ++s) out.push_back({node, format_task_id(s), s, st});
  return out;
}

std::shared_ptr<const snapshot> archive_test_scan(const lease_tree& t) {
  snapshot_store<> store(t.paths, t.lease);
  return store.refresh();
}

std::size_t archive_test_unknown(const snapshot& s) {
  return s.count(task_state::unknown);
}

}  // namespace

TEST_CASE("archive header: ranges per state round-trip", "[archive]") {
  std::vector<std::pair<std::int64_t, task_state>> v = {{1, task_state::finished},
                                                        {2, task_state::finished},
                                                        {3, task_state::failed},
                                                        {5, task_state::finished}};
  auto ranges = make_archive_ranges(v);
  REQUIRE(ranges.size() == 3);
  std::string line = archive_header_line("99887766", 1000, "h", ranges, 4);
  REQUIRE(line.back() == '\n');
  std::string why;
  auto h = parse_archive_header(line.substr(0, line.size() - 1), why);
  REQUIRE(h);
  CHECK(h->count == 4);
  REQUIRE(h->ranges.size() == 3);
  CHECK(h->ranges[1].lo == 3);
  CHECK(h->ranges[1].state == task_state::failed);
  CHECK_FALSE(parse_archive_header("{\"x\":1}", why));
  CHECK_FALSE(parse_archive_header(R"({"leaseq_archive":1,"ranges":{"RUNNING":[[1,2]]}})", why));
  CHECK_FALSE(parse_archive_header(
      R"({"leaseq_archive":1,"ranges":{"FINISHED":[[1,4]],"FAILED":[[3,3]]}})", why));
  CHECK(is_archive_file_name("2026-12-host-1.2.ab.jsonl"));
  CHECK_FALSE(is_archive_file_name(".2026-12.jsonl"));
  CHECK_FALSE(is_archive_file_name("../x.jsonl"));
  CHECK_FALSE(is_archive_file_name("x.json"));
}

TEST_CASE("archive index: a task in two files counts once", "[archive]") {
  archive_file_summary a{"a.jsonl", 10, 0, {{1, 10, task_state::finished}}};
  archive_file_summary b{
      "b.jsonl", 6, 0, {{5, 9, task_state::finished}, {11, 11, task_state::failed}}};
  archive_index idx = merge_archive_files({b, a});
  CHECK(idx.total == 11);
  CHECK(idx.counts[state_index(task_state::finished)] == 10);
  CHECK(idx.counts[state_index(task_state::failed)] == 1);
  CHECK(idx.contains(1));
  CHECK(idx.contains(11));
  CHECK_FALSE(idx.contains(12));
  CHECK_FALSE(idx.contains(0));
}

TEST_CASE("archive: results move out of done/, counts stay, nothing UNKNOWN", "[archive]") {
  lease_tree t;
  for (int s = 1; s <= 10; ++s) {
    t.reserve(s, true);
    t.done(s, "nodeA", s == 3 ? "FAILED" : "FINISHED", s == 3 ? 2 : 0);
  }
  ensure_dir(t.paths.logs("nodeA"));
  write_file_atomic(t.paths.stdout_log("nodeA", "T002"), "hello\n");
  auto before = archive_test_scan(t);
  REQUIRE(before->count(task_state::finished) == 9);

  auto cands = archive_test_candidates(1, 6, "nodeA");
  cands[2].state = task_state::failed;
  archive_outcome o = archive_results(t.paths, t.lease, cands, {}, false);
  CHECK(o.archived == 6);
  CHECK(o.skipped == 0);
  CHECK(o.errors.empty());
  CHECK(o.bytes_freed > 0);
  CHECK_FALSE(fs::exists(t.paths.result("nodeA", "T001")));
  CHECK_FALSE(fs::exists(t.paths.stdout_log("nodeA", "T002")));
  CHECK(fs::exists(t.paths.result("nodeA", "T007")));

  auto after = archive_test_scan(t);
  CHECK(after->tasks().size() == 4);
  CHECK(after->archived == 6);
  CHECK(after->archived_counts[state_index(task_state::failed)] == 1);
  CHECK(after->count(task_state::finished) == 9);
  CHECK(after->count(task_state::failed) == 1);
  CHECK(archive_test_unknown(*after) == 0);
  REQUIRE(after->archive);
  REQUIRE(after->archive->files.size() == 1);

  std::vector<task_view> rec;
  std::size_t bad = read_archive_records(t.paths.archive_dir() / after->archive->files[0].name,
                                         [&](task_view&& v) { rec.push_back(std::move(v)); });
  CHECK(bad == 0);
  REQUIRE(rec.size() == 6);
  CHECK(rec[2].id == "T003");
  CHECK(rec[2].state == task_state::failed);
  CHECK(rec[2].exit_code() == 2);
  CHECK(rec[2].node == "nodeA");
  CHECK(rec[0].command() == "echo T001");
  // A writer asking about one id (an idempotency key's task) finds it in the archive.
  CHECK(task_archived(t.paths, "T003"));
  CHECK_FALSE(task_archived(t.paths, "T007"));
}

TEST_CASE("archive: a live copy of an archived task counts once", "[archive]") {
  lease_tree t;
  for (int s = 1; s <= 5; ++s) {
    t.reserve(s, true);
    t.done(s, "nodeA");
  }
  archive_results(t.paths, t.lease, archive_test_candidates(1, 5, "nodeA"), {}, true);
  // As if clean was killed after publishing: the results are back.
  for (int s = 1; s <= 3; ++s) t.done(s, "nodeA");
  // And a second clean published an overlapping file.
  t.done(4, "nodeA");
  archive_results(t.paths, t.lease, archive_test_candidates(4, 4, "nodeA"), {}, true);
  auto s = archive_test_scan(t);
  CHECK(s->count(task_state::finished) == 5);
  CHECK(s->archived == 2);
  CHECK(s->tasks().size() == 3);
  CHECK(archive_test_unknown(*s) == 0);
  // Finishing the job: unlink-only of the live duplicates.
  archive_results(t.paths, t.lease, {}, archive_test_candidates(1, 3, "nodeA"), true);
  auto s2 = archive_test_scan(t);
  CHECK(s2->count(task_state::finished) == 5);
  CHECK(s2->archived == 5);
  CHECK(s2->tasks().empty());
}

TEST_CASE("archive: a store that saw the task keeps counting it once it is archived", "[archive]") {
  lease_tree t;
  for (int s = 1; s <= 4; ++s) {
    t.reserve(s, true);
    t.done(s, "nodeA");
  }
  snapshot_store<> store(t.paths, t.lease);
  CHECK(store.refresh_all()->count(task_state::finished) == 4);
  archive_results(t.paths, t.lease, archive_test_candidates(1, 2, "nodeA"), {}, true);
  auto s = store.refresh_all();
  CHECK(s->count(task_state::finished) == 4);
  CHECK(s->archived == 2);
  CHECK(s->tasks().size() == 2);
  CHECK_FALSE(s->fs_lag);
}

TEST_CASE("archive: a symlinked archive/ is refused and nothing is unlinked", "[archive]") {
  lease_tree t;
  t.done(1, "nodeA");
  test_support::temp_dir elsewhere;
  fs::create_symlink(elsewhere.path(), t.paths.archive_dir());
  CHECK_THROWS_WITH(
      archive_results(t.paths, t.lease, archive_test_candidates(1, 1, "nodeA"), {}, false),
      Catch::Contains("symbolic link"));
  CHECK(fs::exists(t.paths.result("nodeA", "T001")));
  CHECK(fs::is_empty(elsewhere.path()));
}

TEST_CASE("archive: a tree without archive/ reads as before, junk is reported", "[archive]") {
  lease_tree t;
  t.done(1, "nodeA");
  auto s = archive_test_scan(t);
  CHECK(s->archived == 0);
  CHECK_FALSE(s->archive);
  ensure_dir(t.paths.archive_dir());
  write_file_atomic(t.paths.archive_dir() / "2026-01-x.jsonl", "not json\n");
  write_file_atomic(t.paths.archive_dir() / "bad name.jsonl", "{}\n");
  auto s2 = archive_test_scan(t);
  CHECK(s2->archived == 0);
  CHECK(s2->errors.size() == 2);
  CHECK(s2->count(task_state::finished) == 1);
}

TEST_CASE("archive: a header that did not read is read again by the same store", "[archive]") {
  lease_tree t;
  for (int s = 1; s <= 3; ++s) t.done(s, "nodeA");
  archive_results(t.paths, t.lease, archive_test_candidates(1, 3, "nodeA"), {}, true);
  snapshot_store<> store(t.paths, t.lease);
  fs::path late = t.paths.archive_dir() / "2026-01-late.jsonl";
  std::string header = archive_header_line(t.lease, 1, "h", {{7, 8, task_state::cancelled}}, 2);
  test_support::write_text(late, header.substr(0, 10));  // caught half-written
  auto s = store.refresh_all();
  CHECK(s->archived == 3);
  CHECK_FALSE(s->errors.empty());
  {
    std::ofstream out(late, std::ios::app);  // in place: the directory's stamp does not move
    out << header.substr(10);
  }
  auto s2 = store.refresh_all();
  CHECK(s2->archived == 5);
  CHECK(s2->archived_counts[state_index(task_state::cancelled)] == 2);
  CHECK(s2->errors.empty());
  auto s3 = store.refresh_all();  // unchanged: nothing read, same counts
  CHECK(s3->archived == 5);
}
