#include <leaseq/duration.hpp>

#include <catch2/catch.hpp>

using namespace leaseq;

TEST_CASE("durations in units, clock forms and plain seconds", "[duration]") {
  CHECK(parse_duration("30s") == 30);
  CHECK(parse_duration("5m") == 300);
  CHECK(parse_duration("1h") == 3600);
  CHECK(parse_duration("2d") == 172800);
  CHECK(parse_duration("1h30m") == 5400);
  CHECK(parse_duration("1h30m15s") == 5415);
  CHECK(parse_duration("90") == 90);
  CHECK(parse_duration("0") == 0);
  CHECK(parse_duration("5:00") == 300);
  CHECK(parse_duration("2:00:00") == 7200);
  CHECK(parse_duration("0:00:05") == 5);
  CHECK(parse_duration("1-00:00:00") == 86400);
  CHECK(parse_duration("1-02:03:04") == 86400 + 7200 + 180 + 4);
  CHECK(parse_duration("1000d") == max_duration_s);
}

TEST_CASE("bad durations are refused with the accepted forms", "[duration]") {
  for (const char* bad : {"", "s", "5x", "-5", "1.5h", "5m5m", "1:2:3", "1:60", "1:00:60",
                          "1:00:00:00", "abc", "5 m", ":30", "2:", "1-", "h1", "-1:00:00"}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse_duration(bad), Catch::Contains("expected e.g. 30s"));
  }
  for (const char* huge : {"1001d", "9999999999999", "99999999999999999999s", "24001h"}) {
    INFO(huge);
    CHECK_THROWS_WITH(parse_duration(huge), Catch::Contains("longer than 1000 days"));
  }
}

TEST_CASE("durations print in their short form", "[duration]") {
  CHECK(format_duration(0) == "0s");
  CHECK(format_duration(45) == "45s");
  CHECK(format_duration(300) == "5m");
  CHECK(format_duration(5415) == "1h30m15s");
  CHECK(format_duration(86400 + 3600) == "1d1h");
}
