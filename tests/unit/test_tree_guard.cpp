#include <leaseq/detail/tree_guard.hpp>

#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using leaseq::detail::unsafe_dir;
using test_support::temp_dir;
namespace fs = std::filesystem;

TEST_CASE("unsafe_dir: real directories, missing ones and a symlinked root are fine",
          "[tree_guard]") {
  temp_dir tmp;
  fs::path root = tmp / "lease";
  fs::create_directories(root / "done" / "n1");
  CHECK_FALSE(unsafe_dir(root, root / "done" / "n1"));
  CHECK_FALSE(unsafe_dir(root, root / "claimed" / "n1"));  // created later by ensure_dir
  fs::create_directory_symlink(root, tmp / "link-to-lease");
  CHECK_FALSE(unsafe_dir(tmp / "link-to-lease", tmp / "link-to-lease" / "done" / "n1"));
}

TEST_CASE("unsafe_dir: a symlink or a file below the root is refused with its path",
          "[tree_guard]") {
  temp_dir tmp;
  fs::path root = tmp / "lease";
  fs::path outside = tmp / "outside";
  fs::create_directories(root / "logs");
  fs::create_directories(outside);
  fs::create_directory_symlink(outside, root / "logs" / "n1");
  auto why = unsafe_dir(root, root / "logs" / "n1");
  REQUIRE(why);
  CHECK_THAT(*why, Catch::Contains((root / "logs" / "n1").string()));
  CHECK_THAT(*why, Catch::Contains("symbolic link"));

  fs::create_directory_symlink(outside, root / "done");
  why = unsafe_dir(root, root / "done" / "n1");
  REQUIRE(why);
  CHECK_THAT(*why, Catch::Contains((root / "done").string()));

  test_support::write_text(root / "hb", "not a directory");
  why = unsafe_dir(root, root / "hb");
  REQUIRE(why);
  CHECK_THAT(*why, Catch::Contains("not a directory"));

  CHECK(unsafe_dir(root, tmp / "elsewhere"));
}
