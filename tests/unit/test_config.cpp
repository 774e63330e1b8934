#include <leaseq/config.hpp>

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace leaseq;

TEST_CASE("config defaults follow the spec", "[config]") {
  test_support::temp_dir t;
  config c = load_config(t / "config.json");
  CHECK(c.warnings.empty());
  CHECK(c.ui.refresh_s == 2);
  CHECK(c.ui.slurm_refresh_s == 20);
  CHECK(c.ui.hb_stale_s == 60);
  CHECK(c.ui.lost_confirm_s == 30);
  CHECK(c.ui.follow_auto_latest == false);
  CHECK(c.ui.max_tasks_display == 5000);
  CHECK(c.ui.log_tail_lines == 200);
}

TEST_CASE("config reads values and keeps unknown keys", "[config]") {
  config c = parse_config(json::parse(
      R"({"ui": {"refresh_s": 1, "hb_stale_s": 5, "follow_auto_latest": true, "future": 1},
          "other": {"x": 2}})"));
  CHECK(c.warnings.empty());
  CHECK(c.ui.refresh_s == 1);
  CHECK(c.ui.hb_stale_s == 5);
  CHECK(c.ui.follow_auto_latest);
  CHECK(c.raw["other"]["x"] == 2);
  CHECK(c.raw["ui"]["future"] == 1);
}

TEST_CASE("a wrong type names the key path and falls back to the default", "[config]") {
  config c = parse_config(json::parse(
      R"({"ui": {"refresh_s": "fast", "max_tasks_display": 1.5, "follow_auto_latest": 1,
                 "log_tail_lines": -3}})"));
  CHECK(c.ui.refresh_s == 2);
  CHECK(c.ui.max_tasks_display == 5000);
  CHECK_FALSE(c.ui.follow_auto_latest);
  CHECK(c.ui.log_tail_lines == 200);
  REQUIRE(c.warnings.size() == 4);
  CHECK(c.warnings[0].find("ui.refresh_s") != std::string::npos);
  CHECK(c.warnings[0].find("string") != std::string::npos);
}

TEST_CASE("slurm refresh never goes under 10 s", "[config]") {
  config c = parse_config(json::parse(R"({"ui": {"slurm_refresh_s": 1}})"));
  CHECK(c.ui.slurm_refresh_s == 10);
  CHECK(c.warnings.size() == 1);
}

TEST_CASE("a corrupt config file gives defaults and a warning", "[config]") {
  test_support::temp_dir t;
  test_support::write_text(t / "config.json", "{\"ui\": ");
  config c = load_config(t / "config.json");
  CHECK(c.ui.refresh_s == 2);
  REQUIRE(c.warnings.size() == 1);
  CHECK(c.warnings[0].find("config.json") != std::string::npos);
  CHECK(parse_config(json::parse("[1]")).warnings.size() == 1);
  CHECK(parse_config(json::parse(R"({"ui": 3})")).warnings.size() == 1);
}

// Found by fuzz_json_readers (UBSan): a float too large for an integer setting was converted
// to int64 before its range was checked.
TEST_CASE("a huge or fractional number for an integer setting is refused, not converted",
          "[config]") {
  auto c = parse_config(json::parse(
      R"({"ui": {"log_tail_lines": 20222222222222222222222222221, "max_tasks_display": 2.5,
                 "refresh_s": 1e308}})"));
  CHECK(c.ui.log_tail_lines == ui_config{}.log_tail_lines);
  CHECK(c.ui.max_tasks_display == ui_config{}.max_tasks_display);
  CHECK(c.ui.refresh_s == ui_config{}.refresh_s);
  CHECK(c.warnings.size() == 3);
  auto d = parse_config(json::parse(R"({"ui": {"log_tail_lines": 300.0}})"));
  CHECK(d.ui.log_tail_lines == 300);
  CHECK(d.warnings.empty());
}
