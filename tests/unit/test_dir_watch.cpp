#include <leaseq/detail/dir_watch.hpp>
#include <leaseq/file_io.hpp>

#include <poll.h>
#include <stdlib.h>
#include <sys/inotify.h>

#include <fstream>

#include <catch2/catch.hpp>

#include "test_support.hpp"

namespace fs = std::filesystem;
using leaseq::detail::dir_watch;
using test_support::temp_dir;

namespace {

// Whether the watch's descriptor is readable within ms.
bool dir_watch_ready(const dir_watch& w, int ms) {
  pollfd p{w.fd(), POLLIN, 0};
  return ::poll(&p, 1, ms) > 0;
}

}  // namespace

TEST_CASE("dir_watch: a name appearing in a watched directory wakes the poller", "[dir_watch]") {
  temp_dir tmp;
  fs::create_directories(tmp / "lane");
  dir_watch w({tmp / "lane", tmp / "later"});
  REQUIRE(w.fd() >= 0);
  CHECK_FALSE(w.drain());
  leaseq::write_file_atomic(tmp / "lane" / "T001.json", "{}");  // temp name, then rename
  CHECK(dir_watch_ready(w, 5000));
  CHECK(w.drain());
  CHECK_FALSE(w.drain());
  // A directory that did not exist is watched once it does.
  fs::create_directories(tmp / "later");
  w.add_missing();
  leaseq::write_file_atomic(tmp / "later" / "x", "");
  CHECK(dir_watch_ready(w, 5000));
  CHECK(w.drain());
  // Removing names (a claim renames out of the lane) wakes nobody.
  fs::remove(tmp / "lane" / "T001.json");
  CHECK_FALSE(dir_watch_ready(w, 50));
}

TEST_CASE("dir_watch: LEASEQ_NO_INOTIFY turns it off and the caller polls", "[dir_watch]") {
  temp_dir tmp;
  ::setenv("LEASEQ_NO_INOTIFY", "1", 1);
  dir_watch w({tmp.path()});
  ::unsetenv("LEASEQ_NO_INOTIFY");
  CHECK(w.fd() == -1);
  CHECK_FALSE(w.drain());
  w.add_missing();  // harmless
}

TEST_CASE("dir_watch: another mask, and only the names asked for count", "[dir_watch]") {
  temp_dir tmp;
  fs::create_directories(tmp / "logs");
  test_support::write_text(tmp / "logs" / "T001.out", "");
  test_support::write_text(tmp / "logs" / "T002.out", "");
  dir_watch w({tmp / "logs"}, IN_MODIFY | IN_DELETE, {"T001.out"});
  REQUIRE(w.fd() >= 0);
  auto append_to = [&](const char* name) {
    std::ofstream f(tmp / "logs" / name, std::ios::app);
    f << "line\n";
  };
  append_to("T002.out");  // another task's log: read, but it does not count
  CHECK(dir_watch_ready(w, 5000));
  CHECK_FALSE(w.drain());
  append_to("T001.out");
  CHECK(dir_watch_ready(w, 5000));
  CHECK(w.drain());
  fs::remove(tmp / "logs" / "T001.out");
  CHECK(dir_watch_ready(w, 5000));
  CHECK(w.drain());
}
