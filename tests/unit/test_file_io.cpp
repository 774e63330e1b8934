#include <leaseq/detail/dir.hpp>
#include <leaseq/file_io.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;
using test_support::temp_dir;

TEST_CASE("atomic write leaves no temp file and sets mode 0600", "[file_io]") {
  temp_dir t;
  fs::path p = t / "a" / "b.json";
  ensure_dir(p.parent_path());
  write_json_atomic(p, json{{"x", 1}});
  auto r = read_json_tolerant(p);
  REQUIRE(r.ok());
  CHECK((*r.value)["x"] == 1);
  struct stat st;
  REQUIRE(::stat(p.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(detail::list_dir(p.parent_path().string()).names == std::vector<std::string>{"b.json"});
}

TEST_CASE("ensure_dir creates parents with 0700", "[file_io]") {
  temp_dir t;
  ensure_dir(t / "x/y/z");
  struct stat st;
  REQUIRE(::stat((t / "x/y").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  test_support::write_text(t / "file", "x");
  CHECK_THROWS_AS(ensure_dir(t / "file"), io_error);
}

TEST_CASE("atomic write never follows a planted symlink", "[file_io]") {
  temp_dir t;
  test_support::write_text(t / "victim", "keep");
  fs::create_symlink(t / "victim", t / "target.json");
  write_file_atomic(t / "target.json", "new");
  CHECK(test_support::read_text(t / "victim") == "keep");  // the link was replaced, not followed
  CHECK(test_support::read_text(t / "target.json") == "new");
  CHECK_FALSE(fs::is_symlink(t / "target.json"));
}

TEST_CASE("tolerant read reports, never throws", "[file_io]") {
  temp_dir t;
  SECTION("missing") {
    auto r = read_json_tolerant(t / "nope.json");
    CHECK_FALSE(r.ok());
    CHECK(r.err == ENOENT);
    CHECK(r.reason == "missing");
  }
  SECTION("empty, truncated, invalid") {
    for (const char* text : {"", "{\"id\": \"T0", "{]", "null garbage", "\xff\xfe"}) {
      test_support::write_text(t / "bad.json", text);
      auto r = read_json_tolerant(t / "bad.json");
      CHECK_FALSE(r.ok());
      CHECK_FALSE(r.reason.empty());
    }
  }
  SECTION("deep nesting is refused before parsing") {
    test_support::write_text(t / "deep.json", std::string(100000, '[') + std::string(100000, ']'));
    auto r = read_json_tolerant(t / "deep.json");
    CHECK_FALSE(r.ok());
    CHECK(r.reason.find("nested") != std::string::npos);
  }
  SECTION("a file over the limit is not loaded") {
    test_support::write_text(t / "big.json", std::string(2000, ' '));
    auto r = read_json_tolerant(t / "big.json", 1000);
    CHECK_FALSE(r.ok());
    CHECK(r.reason.find("too large") != std::string::npos);
  }
  SECTION("a FIFO is refused without blocking") {
    REQUIRE(::mkfifo((t / "fifo.json").c_str(), 0600) == 0);
    auto r = read_json_tolerant(t / "fifo.json");
    CHECK_FALSE(r.ok());
    CHECK(r.reason == "not a regular file");
  }
  SECTION("a directory is refused") {
    fs::create_directories(t / "dir.json");
    CHECK_FALSE(read_json_tolerant(t / "dir.json").ok());
  }
  SECTION("EACCES is reported with errno") {
    if (::geteuid() == 0) return;  // root reads everything
    test_support::write_text(t / "secret.json", "{}");
    ::chmod((t / "secret.json").c_str(), 0);
    auto r = read_json_tolerant(t / "secret.json");
    CHECK(r.err == EACCES);
  }
  SECTION("a bad read never deletes the file") {
    test_support::write_text(t / "half.json", "{\"a\":");
    read_json_tolerant(t / "half.json");
    CHECK(fs::exists(t / "half.json"));
  }
}

TEST_CASE("a read leaves the file's access time alone", "[file_io]") {
  temp_dir t;
  test_support::write_text(t / "hb.json", "{}");
  // An access time before the modification: relatime would move it on the next read.
  struct timespec times[2] = {{1000000000, 0}, {0, UTIME_OMIT}};
  REQUIRE(::utimensat(AT_FDCWD, (t / "hb.json").c_str(), times, 0) == 0);
  REQUIRE(read_file_tolerant(t / "hb.json", 1024).ok);
  struct stat st;
  REQUIRE(::stat((t / "hb.json").c_str(), &st) == 0);
  CHECK(st.st_atim.tv_sec == 1000000000);
}

TEST_CASE("create_file_exclusive creates once", "[file_io]") {
  temp_dir t;
  CHECK(create_file_exclusive(t / "k", "T001"));
  CHECK_FALSE(create_file_exclusive(t / "k", "T002"));
  CHECK(test_support::read_text(t / "k") == "T001");
  CHECK(detail::list_dir(t.path().string()).names.size() == 1);
}

TEST_CASE("list_dir skips dot names and treats a missing directory as empty", "[file_io]") {
  temp_dir t;
  test_support::write_text(t / "a.json", "{}");
  test_support::write_text(t / ".a.json.tmp.1", "{");
  test_support::write_text(t / ".nfs0001", "");
  auto l = detail::list_dir(t.path().string());
  CHECK(l.names == std::vector<std::string>{"a.json"});
  auto missing = detail::list_dir((t / "none").string());
  CHECK(missing.names.empty());
  CHECK(missing.err == ENOENT);
}
