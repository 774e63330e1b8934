#include <sys/stat.h>
#include <unistd.h>

#include <leaseq/file_io.hpp>
#include <leaseq/fs.hpp>
#include <leaseq/results_index.hpp>

#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;

namespace {

std::string line(std::int64_t seq, task_state st, std::optional<int> code, std::uint64_t ino) {
  return format_results_index_line(seq, st, code, ino);
}

std::uint64_t file_inode(const fs::path& p) {
  struct stat st;
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return static_cast<std::uint64_t>(st.st_ino);
}

void append_raw(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::app);
  f << s;
}

}  // namespace

TEST_CASE("results index: a line round-trips and names its fields", "[results_index]") {
  std::string l = line(14, task_state::finished, 0, 1183042);
  CHECK(l.rfind("T014 FINISHED 0 1183042 ", 0) == 0);
  CHECK(l.back() == '\n');
  auto e = parse_results_index_line(std::string_view(l).substr(0, l.size() - 1));
  REQUIRE(e);
  CHECK(e->seq == 14);
  CHECK(e->ino == 1183042);
  CHECK(e->state == task_state::finished);
  CHECK(e->exit_code == 0);
  auto f = parse_results_index_line(line(7, task_state::cancelled, std::nullopt, 9));
  CHECK_FALSE(f);  // the newline is not part of a line
  std::string c = line(7, task_state::failed, -3, 9);
  auto g = parse_results_index_line(std::string_view(c).substr(0, c.size() - 1));
  REQUIRE(g);
  CHECK(g->exit_code == -3);
  std::string d = line(8, task_state::cancelled, std::nullopt, 10);
  auto h = parse_results_index_line(std::string_view(d).substr(0, d.size() - 1));
  REQUIRE(h);
  CHECK_FALSE(h->exit_code);
}

TEST_CASE("results index: garbage, control characters and bad checksums are skipped",
          "[results_index]") {
  std::string good = line(1, task_state::finished, 0, 5);
  std::string body = good.substr(0, good.size() - 10);  // without " <checksum>\n"
  std::string text = good;
  text += "garbage\n";
  text += "\n";
  text += body + " 00000000\n";                                     // wrong checksum
  text += "T002 FINISHED 0 6\n";                                    // no checksum
  text += std::string("T003\x1b[2J FINISHED 0 7 ") + "deadbeef\n";  // control bytes
  text += line(4, task_state::pending, 0, 8);                       // not an ended state: refused
  text += line(5, task_state::failed, 1, 0);                        // inode 0: refused
  text += std::string(300, 'x') + "\n";                             // far too long
  text += "T0004 FINISHED 0 9 " + std::string(8, '0') + "\n";       // non-canonical id
  auto idx = parse_results_index(text, false);
  REQUIRE(idx.size() == 1);
  CHECK(idx[0].seq == 1);
  // A line whose checksum holds but whose fields are forged still needs every field valid.
  std::string forged = "T006 FINISHED 0 x12";
  forged += " " + fmt::format("{:08x}", detail::fnv1a32(forged.substr(0, forged.size())));
  CHECK_FALSE(parse_results_index_line(forged));
}

TEST_CASE("results index: a torn last line is not used, nor a tail's first fragment",
          "[results_index]") {
  std::string a = line(1, task_state::finished, 0, 5), b = line(2, task_state::failed, 2, 6);
  auto idx = parse_results_index(a + b.substr(0, b.size() - 1), false);
  REQUIRE(idx.size() == 1);
  CHECK(idx[0].seq == 1);
  // A torn line glued to the next write: neither half counts, the next whole line does.
  std::string c = line(3, task_state::finished, 0, 7);
  idx = parse_results_index(a + b.substr(0, 9) + c + line(4, task_state::finished, 0, 8), false);
  REQUIRE(idx.size() == 2);
  CHECK(idx[0].seq == 1);
  CHECK(idx[1].seq == 4);
  // Read from the middle of a file: the first (partial, or maybe whole) line is dropped.
  idx = parse_results_index(a.substr(3) + b, true);
  REQUIRE(idx.size() == 1);
  CHECK(idx[0].seq == 2);
}

TEST_CASE("results index: duplicates agree or are not used, and a newer file's line wins",
          "[results_index]") {
  std::string t = line(1, task_state::finished, 0, 5) + line(1, task_state::finished, 0, 5) +
                  line(2, task_state::finished, 0, 6) + line(2, task_state::failed, 1, 6) +
                  line(3, task_state::finished, 0, 7) + line(3, task_state::failed, 1, 8);
  auto idx = parse_results_index(t, false);
  REQUIRE(idx.size() == 2);
  CHECK(idx[0].seq == 1);
  CHECK(idx[1].seq == 3);
  CHECK(idx[1].ino == 8);
  CHECK(idx[1].state == task_state::failed);
  CHECK(find_results_index_entry(idx, 3, 8) != nullptr);
  CHECK(find_results_index_entry(idx, 3, 7) == nullptr);  // the listing shows another file
  CHECK(find_results_index_entry(idx, 2, 6) == nullptr);  // disagreeing lines: parse it
  CHECK(find_results_index_entry(idx, 9, 5) == nullptr);  // no line
}

TEST_CASE("results index: read_tail reads a big index from its end, never through a symlink",
          "[results_index]") {
  temp_dir tmp;
  fs::path idx = tmp.path() / ".results";
  std::string text;
  for (int i = 1; i <= 1000; ++i) text += line(i, task_state::finished, 0, 100 + i);
  append_raw(idx, text);
  posix_fs pfs;
  file_read r = pfs.read_tail(idx, 400);
  REQUIRE(r.ok);
  CHECK(r.content.size() == 400);
  CHECK(r.info.size == text.size());
  auto entries = parse_results_index(r.content, r.content.size() < r.info.size);
  REQUIRE_FALSE(entries.empty());
  CHECK(entries.back().seq == 1000);  // the newest lines
  CHECK(entries.size() < 15);
  file_read whole = pfs.read_tail(idx, results_index_read_limit(1000));
  REQUIRE(whole.ok);
  CHECK(parse_results_index(whole.content, whole.content.size() < whole.info.size).size() == 1000);

  fs::path link = tmp.path() / "linked";
  fs::create_directory(link);
  fs::create_symlink(idx, link / ".results");
  file_read l = pfs.read_tail(link / ".results", 1 << 20);
  CHECK_FALSE(l.ok);
  CHECK(l.err == ELOOP);
  fs::path fifo = tmp.path() / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  file_read f = pfs.read_tail(fifo, 1 << 20);  // never blocks, never read
  CHECK_FALSE(f.ok);
}

TEST_CASE("results index: the runner's append names the durable result's inode",
          "[results_index]") {
  temp_dir tmp;
  fs::path done = tmp.path() / "done" / "nodeA";
  fs::create_directories(done);
  fs::path r1 = done / "T001.result.json", r2 = done / "T002.result.json";
  write_file_atomic(r1, "{}\n");
  write_file_atomic(r2, "{}\n");
  REQUIRE(append_results_index(r1, 1, task_state::finished, 0));
  // A write torn by a crash: the next append ends it first, so only its own line is lost.
  append_raw(done / ".results", "T009 FINI");
  REQUIRE(append_results_index(r2, 2, task_state::failed, 3));
  CHECK_FALSE(append_results_index(done / "T003.result.json", 3, task_state::finished, 0));
  posix_fs pfs;
  file_read r = pfs.read_tail(done / ".results", 1 << 20);
  REQUIRE(r.ok);
  auto idx = parse_results_index(r.content, false);
  REQUIRE(idx.size() == 2);
  CHECK(find_results_index_entry(idx, 1, file_inode(r1)) != nullptr);
  const results_index_entry* e = find_results_index_entry(idx, 2, file_inode(r2));
  REQUIRE(e);
  CHECK(e->state == task_state::failed);
  CHECK(e->exit_code == 3);

  // A symlink planted as the index is never written through.
  fs::path other = tmp.path() / "done" / "nodeB";
  fs::create_directories(other);
  fs::path target = tmp.path() / "target";
  append_raw(target, "");
  fs::create_symlink(target, other / ".results");
  fs::path r3 = other / "T004.result.json";
  write_file_atomic(r3, "{}\n");
  CHECK_FALSE(append_results_index(r3, 4, task_state::finished, 0));
  CHECK(fs::file_size(target) == 0);
}
