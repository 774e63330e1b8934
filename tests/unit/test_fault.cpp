#include <leaseq/detail/fault.hpp>

#include <string>

#include <catch2/catch.hpp>

using leaseq::fault_point;
using leaseq::detail::fault_table;

TEST_CASE("fault table: unset means no fault anywhere", "[fault]") {
  fault_table t;
  t.parse("");
  CHECK_FALSE(t.any);
  for (int i = 0; i < 100; ++i) CHECK_FALSE(t.hit(fault_point::result_write_enospc));
  CHECK(t.problems.empty());
}

TEST_CASE("fault table: N fails the first N hits of that point only", "[fault]") {
  fault_table t;
  t.parse("result_write_enospc=3");
  CHECK(t.any);
  CHECK(t.hit(fault_point::result_write_enospc));
  CHECK_FALSE(t.hit(fault_point::claim_rename_lies));
  CHECK(t.hit(fault_point::result_write_enospc));
  CHECK(t.hit(fault_point::result_write_enospc));
  CHECK_FALSE(t.hit(fault_point::result_write_enospc));
  CHECK_FALSE(t.hit(fault_point::result_write_enospc));
}

TEST_CASE("fault table: 1/K fails every K-th hit, several points at once", "[fault]") {
  fault_table t;
  t.parse("claim_rename_lies=1/3,result_write_eio=1");
  std::string pattern;
  for (int i = 0; i < 7; ++i) pattern += t.hit(fault_point::claim_rename_lies) ? 'x' : '.';
  CHECK(pattern == "..x..x.");
  CHECK(t.hit(fault_point::result_write_eio));
  CHECK_FALSE(t.hit(fault_point::result_write_eio));
}

TEST_CASE("fault table: unknown points and bad specs are reported and ignored", "[fault]") {
  fault_table t;
  t.parse(
      "nonsense=3,result_write_eio=x,claim_rename_lies=1/0,result_write_enospc,,"
      "result_write_enospc=99999999999999999999");
  CHECK_FALSE(t.any);
  CHECK(t.problems.size() == 5);
  CHECK_FALSE(t.hit(fault_point::result_write_eio));
}
