#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <leaseq/detail/strings.hpp>

TEST_CASE("strings: trim", "[strings]") {
  CHECK(leaseq::detail::trim("") == "");
  CHECK(leaseq::detail::trim(" \t\r\n") == "");
  CHECK(leaseq::detail::trim("  a b \n") == "a b");
  CHECK(leaseq::detail::trim("x") == "x");
  CHECK(leaseq::detail::trim("\nx\t") == "x");
}

TEST_CASE("strings: ends_with and strip_suffix", "[strings]") {
  CHECK(leaseq::detail::ends_with("", ""));
  CHECK_FALSE(leaseq::detail::ends_with("", ".json"));
  CHECK(leaseq::detail::ends_with(".json", ".json"));
  CHECK(leaseq::detail::ends_with("T1.result.json", ".json"));
  CHECK_FALSE(leaseq::detail::ends_with("T1.jsonx", ".json"));
  CHECK(leaseq::detail::strip_suffix("T000012.json", ".json") ==
        std::optional<std::string_view>("T000012"));
  CHECK(leaseq::detail::strip_suffix("T000012.result.json", ".result.json") ==
        std::optional<std::string_view>("T000012"));
  // A name that is only the suffix names nothing; the wrong suffix is not stripped.
  CHECK_FALSE(leaseq::detail::strip_suffix(".json", ".json"));
  CHECK_FALSE(leaseq::detail::strip_suffix(".result.json", ".result.json"));
  CHECK_FALSE(leaseq::detail::strip_suffix("", ".json"));
  CHECK_FALSE(leaseq::detail::strip_suffix("json", ".json"));
  CHECK_FALSE(leaseq::detail::strip_suffix("T1.json.tmp", ".json"));
  CHECK(leaseq::detail::strip_suffix("x", "") == std::optional<std::string_view>("x"));
}

TEST_CASE("strings: join", "[strings]") {
  CHECK(leaseq::detail::join(std::vector<std::string>{}, ",") == "");
  CHECK(leaseq::detail::join(std::vector<std::string>{"a"}, ",") == "a");
  CHECK(leaseq::detail::join(std::vector<std::string>{"a", "", "c"}, ", ") == "a, , c");
  CHECK(leaseq::detail::join(std::vector<std::string_view>{"x", "y"}, "") == "xy");
}

TEST_CASE("strings: shell_quote and shell_join", "[strings]") {
  CHECK(leaseq::detail::shell_quote("") == "''");
  CHECK(leaseq::detail::shell_quote("plain/path-1.0_x:y=z,+%@") == "plain/path-1.0_x:y=z,+%@");
  CHECK(leaseq::detail::shell_quote("a b") == "'a b'");
  CHECK(leaseq::detail::shell_quote("it's") == "'it'\\''s'");
  CHECK(leaseq::detail::shell_quote("'") == "''\\'''");
  CHECK(leaseq::detail::shell_quote("\"q\"") == "'\"q\"'");
  CHECK(leaseq::detail::shell_quote("line1\nline2") == "'line1\nline2'");
  CHECK(leaseq::detail::shell_quote("$HOME") == "'$HOME'");
  CHECK(leaseq::detail::shell_join(std::vector<std::string>{}) == "");
  CHECK(leaseq::detail::shell_join(std::vector<std::string>{"echo", "a b", ""}) == "echo 'a b' ''");
}
