// The embedding example the README shows: it builds (CMake target), runs, and the README holds
// exactly the file that the tests run.
#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace test_support;

TEST_CASE("the embedding example submits a task and reads it back", "[embed]") {
  temp_dir t;
  auto r = run_command("LEASEQ_HOME=" + shell_quote((t / "home").string()) + " " +
                       shell_quote(LEASEQ_EMBED_EXAMPLE) + " local:embed echo hello 2>&1");
  CHECK(r.exit_code == 0);
  CHECK(r.out == "submitted T001\nT001 PENDING echo hello\n");
  auto bad = run_command("LEASEQ_HOME=" + shell_quote((t / "home").string()) + " " +
                         shell_quote(LEASEQ_EMBED_EXAMPLE) + " ../x echo 2>&1");
  CHECK(bad.exit_code == 1);
  CHECK(bad.out.find("invalid lease id \"../x\"") != std::string::npos);
}

TEST_CASE("the README shows the embedding example verbatim", "[embed]") {
  std::string readme = read_text(fs::path(LEASEQ_SOURCE_DIR) / "README.md");
  std::string example = read_text(fs::path(LEASEQ_SOURCE_DIR) / "examples/embed/embed.cpp");
  REQUIRE_FALSE(example.empty());
  CHECK(readme.find("```cpp\n" + example + "```") != std::string::npos);
}
