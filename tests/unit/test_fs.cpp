#include <leaseq/detail/dir.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/fs.hpp>

#include <algorithm>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;
using test_support::write_text;

TEST_CASE("posix_fs lists names with inodes, skips dot-names, stamps the directory", "[fs]") {
  temp_dir tmp;
  write_text(tmp / "d/T001.json", "{}");
  write_text(tmp / "d/.T002.json.tmp.1", "{}");
  write_text(tmp / "d/.nfs0001", "");
  posix_fs pfs;
  auto r = pfs.list_dir(tmp / "d");
  REQUIRE(r.err == 0);
  REQUIRE(r.entries.size() == 1);
  CHECK(r.entries[0].name == "T001.json");
  CHECK(r.entries[0].ino == pfs.stat(tmp / "d/T001.json").ino);
  CHECK(r.stamp.mtime > 0);
  CHECK_FALSE(r.unchanged);

  auto same = pfs.list_dir(tmp / "d", &r.stamp);
  CHECK(same.unchanged);
  CHECK(same.entries.empty());

  write_json_atomic(tmp / "d/T003.json", json::object());
  auto after = pfs.list_dir(tmp / "d", &r.stamp);
  CHECK_FALSE(after.unchanged);
  CHECK(after.entries.size() == 2);

  CHECK(pfs.list_dir(tmp / "missing").err == ENOENT);
  CHECK(pfs.list_dir(tmp / "d/T001.json").err == ENOTDIR);
}

TEST_CASE("posix_fs: an unchanged directory is found so without opening it", "[fs]") {
  temp_dir tmp;
  write_text(tmp / "d/T001.json", "{}");
  posix_fs pfs;
  auto r = pfs.list_dir(tmp / "d");
  REQUIRE(r.err == 0);
  // The stamp asked without opening (statx) is the very stamp an open + fstat gives.
  dir_stamp synced;
  int err = detail::synced_dir_stamp(tmp / "d", synced);
  if (err != ENOSYS) {
    REQUIRE(err == 0);
    CHECK(synced == r.stamp);
    CHECK(detail::synced_dir_stamp(tmp / "d/T001.json", synced) == ENOTDIR);
    CHECK(detail::synced_dir_stamp(tmp / "missing", synced) == ENOENT);
  }
  auto same = pfs.list_dir(tmp / "d", &r.stamp);
  CHECK(same.unchanged);
  CHECK(same.stamp == r.stamp);
  // Another directory in its place (same mtime and size, another inode) is listed.
  dir_stamp other = r.stamp;
  other.ino += 1;
  auto relisted = pfs.list_dir(tmp / "d", &other);
  CHECK_FALSE(relisted.unchanged);
  CHECK(relisted.entries.size() == 1);
  // Gone, or a file now: what an open says.
  CHECK(pfs.list_dir(tmp / "missing", &r.stamp).err == ENOENT);
  CHECK(pfs.list_dir(tmp / "d/T001.json", &r.stamp).err == ENOTDIR);
}

TEST_CASE("posix_fs reads with limits and never follows FIFOs", "[fs]") {
  temp_dir tmp;
  write_text(tmp / "a.json", "{\"x\": 1}");
  posix_fs pfs;
  auto r = pfs.read(tmp / "a.json", 1024);
  REQUIRE(r.ok);
  CHECK(r.content == "{\"x\": 1}");
  CHECK(r.info.size == 8);
  CHECK(r.info.is_regular);
  auto big = pfs.read(tmp / "a.json", 4);
  CHECK_FALSE(big.ok);
  CHECK(big.reason.find("too large") != std::string::npos);
  auto missing = pfs.read(tmp / "nope", 1024);
  CHECK(missing.err == ENOENT);
  REQUIRE(::mkfifo((tmp / "fifo").c_str(), 0600) == 0);
  auto fifo = pfs.read(tmp / "fifo", 1024);
  CHECK_FALSE(fifo.ok);
  CHECK(fifo.reason == "not a regular file");
  auto st = pfs.stat(tmp / "nope");
  CHECK(st.err == ENOENT);
}

TEST_CASE("detail::list_dir gives read_dir's names, dot-names only when asked", "[fs]") {
  temp_dir tmp;
  write_text(tmp / "d/b", "");
  write_text(tmp / "d/a", "");
  write_text(tmp / "d/.hidden", "");
  auto plain = detail::list_dir((tmp / "d").string());
  REQUIRE(plain.err == 0);
  std::sort(plain.names.begin(), plain.names.end());
  CHECK(plain.names == std::vector<std::string>{"a", "b"});
  auto all = detail::list_dir((tmp / "d").string(), true);
  std::sort(all.names.begin(), all.names.end());
  CHECK(all.names == std::vector<std::string>{".hidden", "a", "b"});  // never "." or ".."
  CHECK(detail::list_dir((tmp / "missing").string()).err == ENOENT);
  CHECK(detail::list_dir((tmp / "d/a").string()).err == ENOTDIR);
}

TEST_CASE("posix_fs opens a file to read by offset", "[fs]") {
  temp_dir tmp;
  write_text(tmp / "f", "hello world");
  posix_fs pfs;
  auto f = pfs.open(tmp / "f");
  REQUIRE(f);
  CHECK(f.stat().size == 11);
  CHECK(f.stat().is_regular);
  char buf[16];
  auto r = f.read_at(buf, 5, 6);
  CHECK(r.err == 0);
  CHECK(std::string(buf, r.n) == "world");
  CHECK(f.read_at(buf, sizeof buf, 11).n == 0);
  auto missing = pfs.open(tmp / "nope");
  CHECK_FALSE(missing);
  CHECK(missing.error() == ENOENT);
}
