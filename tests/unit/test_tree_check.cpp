#include <leaseq/engine/tree_check.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using leaseq::detail::tree_check;
using test_support::temp_dir;
namespace fs = std::filesystem;

namespace {

// What the runner asked before tree_check: unsafe_dir, then subdir_distrust.
std::optional<std::string> two_checks(const fs::path& anchor, const fs::path& root,
                                      const fs::path& dir, bool& link) {
  auto why = leaseq::detail::unsafe_dir(anchor, dir);
  link = why.has_value();
  if (!why) why = leaseq::detail::subdir_distrust(root, dir);
  return why;
}

void same_answers(tree_check& c, const fs::path& anchor, const fs::path& root,
                  const std::vector<fs::path>& dirs) {
  c.forget();
  for (const auto& d : dirs) {
    INFO(d.string());
    bool link_a = false, link_b = false;
    auto a = c.why(d, link_a);
    auto b = two_checks(anchor, root, d, link_b);
    CHECK(a == b);
    if (a) CHECK(link_a == link_b);
  }
}

}  // namespace

TEST_CASE("tree_check: the answers of unsafe_dir and subdir_distrust, one lstat per component",
          "[tree_check]") {
  temp_dir tmp;
  fs::path home = tmp / "home";
  fs::path root = home / "runs" / "local:x";
  fs::path outside = tmp / "outside";
  for (const char* d : {"inbox/n1", "inbox/_any", "claimed/n1", "done/n1", "hb", "control/n1"})
    fs::create_directories(root / d);
  fs::create_directories(outside);
  std::vector<fs::path> dirs = {
      root / "inbox" / "n1", root / "inbox" / "_any", root / "claimed" / "n1", root / "done" / "n1",
      root / "logs" / "n1",  // missing: fine
      root / "hb",           root / "control" / "n1", tmp / "elsewhere"};
  tree_check c(home, root);
  same_answers(c, home, root, dirs);
  bool link = true;
  CHECK_FALSE(c.why(root / "done" / "n1", link));

  // A lane others may write, a symlinked claimed/, a file in place of hb/.
  ::chmod((root / "inbox" / "_any").c_str(), 0770);
  fs::remove_all(root / "claimed");
  fs::create_directory_symlink(outside, root / "claimed");
  fs::remove_all(root / "hb");
  test_support::write_text(root / "hb", "not a directory");
  same_answers(c, home, root, dirs);
  auto lane = c.why(root / "inbox" / "_any", link);
  REQUIRE(lane);
  CHECK_FALSE(link);
  auto claimed = c.why(root / "claimed" / "n1", link);
  REQUIRE(claimed);
  CHECK(link);
  CHECK_THAT(*claimed, Catch::Contains("symbolic link"));

  // Within a pass the answer is the one looked at first; forget() looks again.
  fs::remove(root / "claimed");
  fs::create_directories(root / "claimed" / "n1");
  CHECK(c.why(root / "claimed" / "n1", link));
  c.forget();
  CHECK_FALSE(c.why(root / "claimed" / "n1", link));
}
