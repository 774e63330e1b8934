#include <leaseq/detail/dir_watch.hpp>
#include <leaseq/file_io.hpp>

#include <poll.h>
#include <stdlib.h>

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
