#include <leaseq/names.hpp>
#include <leaseq/paths.hpp>

#include <catch2/catch.hpp>

using namespace leaseq;

TEST_CASE("node names follow [A-Za-z0-9][A-Za-z0-9._-]{0,62}", "[names]") {
  for (const char* ok : {"nodeA", "gpu-017", "n1", "a.b_c-d", "0"}) CHECK(is_valid_node(ok));
  CHECK(is_valid_node(std::string(63, 'a')));
  CHECK_FALSE(is_valid_node(std::string(64, 'a')));
  for (const char* bad :
       {"", "_any", "../x", "a/b", ".hidden", "-x", "a b", "a\nb", "a\x1b[2J", "..", "caf\xc3\xa9"})
    CHECK_FALSE(is_valid_node(bad));
  CHECK(is_valid_lane("_any"));
  CHECK_FALSE(is_valid_lane("_other"));
}

TEST_CASE("task ids are T plus a zero-padded seq", "[names]") {
  for (const char* ok : {"T001", "T014", "T999", "T1000", "T123456"}) CHECK(is_valid_task_id(ok));
  for (const char* bad :
       {"T01", "T", "t001", "T0001", "T01000", "T00a", "T001/", "../T001", "", "T001\n"})
    CHECK_FALSE(is_valid_task_id(bad));
  CHECK(format_task_id(1) == "T001");
  CHECK(format_task_id(14) == "T014");
  CHECK(format_task_id(1000) == "T1000");
  CHECK(task_seq("T014") == 14);
  CHECK(task_seq("T1000") == 1000);
  CHECK_FALSE(task_seq("T0001"));
  for (std::int64_t s : {1, 9, 10, 99, 100, 999, 1000, 123456})
    CHECK(task_seq(format_task_id(s)) == s);
}

TEST_CASE("lease ids are Slurm job ids or local:<host>", "[names]") {
  for (const char* ok : {"99887766", "1", "local:myhost", "local:login-01.cluster"})
    CHECK(is_valid_lease_id(ok));
  for (const char* bad : {"", "local:", "local:../x", "local:a/b", "0123", "12a", "../1",
                          "local:\x1b]52;c;x\x07", "remote:x"})
    CHECK_FALSE(is_valid_lease_id(bad));
  CHECK(is_local_lease("local:x"));
  CHECK_FALSE(is_local_lease("123"));
}

TEST_CASE("a hostile name is refused with a message naming the value and the rule", "[names]") {
  try {
    check_node("../etc");
    FAIL("no error");
  } catch (const name_error& e) {
    std::string msg = e.what();
    CHECK(msg.find("\"../etc\"") != std::string::npos);
    CHECK(msg.find("[A-Za-z0-9._-]") != std::string::npos);
  }
  try {
    check_node(std::string("a\nb\x1b[31m"));
    FAIL("no error");
  } catch (const name_error& e) {
    std::string msg = e.what();
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(msg.find('\x1b') == std::string::npos);
    CHECK(msg.find("a\\nb\\x1b[31m") != std::string::npos);
  }
  try {
    check_task_id(std::string(300, 'T'));
    FAIL("no error");
  } catch (const name_error& e) {
    CHECK(std::string(e.what()).size() < 400);  // cut, not echoed whole
    CHECK(std::string(e.what()).find("...") != std::string::npos);
  }
  CHECK_THROWS_AS(check_task_id(""), name_error);
  CHECK_THROWS_AS(check_lease_id("a/b"), name_error);
  CHECK_THROWS_AS(check_key("../k"), name_error);
  CHECK_NOTHROW(check_key("6f1c-abc_1.2:x"));
}

TEST_CASE("paths refuse hostile names before joining them", "[names][paths]") {
  lease_paths lp("/tmp/x");
  CHECK_THROWS_AS(lp.inbox("../../etc"), name_error);
  CHECK_THROWS_AS(lp.claimed("a/b"), name_error);
  CHECK_THROWS_AS(lp.claimed("_any"), name_error);
  CHECK_THROWS_AS(lp.inbox_task("_any", "T001/../../x"), name_error);
  CHECK_THROWS_AS(lp.heartbeat(std::string(300, 'a')), name_error);
  CHECK_THROWS_AS(lp.key("../../k"), name_error);
  CHECK(lp.inbox("_any") == "/tmp/x/inbox/_any");
  CHECK(lp.result("nodeA", "T014") == "/tmp/x/done/nodeA/T014.result.json");
  CHECK(lease_paths::relative_stdout("nodeA", "T014") == "logs/nodeA/T014.out");
  home_paths home("/h");
  CHECK(home.lease_dir("local:myhost") == "/h/runs/local:myhost");
  CHECK_THROWS_AS(home.lease_dir(".."), name_error);
}

// Issue 15.5: a lease name reaches `lease ls`, the dashboard and squeue (job name leaseq-NAME).
TEST_CASE("lease names are ASCII words and spaces, like node names", "[names]") {
  for (const char* good : {"train", "my run", "sweep-3.v2", "A_b", "9"})
    CHECK(is_valid_lease_name(good));
  CHECK(is_valid_lease_name(std::string(64, 'a')));
  CHECK_FALSE(is_valid_lease_name(std::string(65, 'a')));
  for (const char* bad :
       {"", " lead", "-x", "_x",
        "x\xc2\x9b"
        "31m",
        "a\x1b[31m", "a\xe2\x80\xae", "caf\xc3\xa9", "a|b", "a/b", "a\tb", "a\nb"})
    CHECK_FALSE(is_valid_lease_name(bad));
  CHECK_THROWS_WITH(check_lease_name("x\xc2\x9b"
                                     "31m"),
                    Catch::Contains("invalid lease name \"x\\xc2\\x9b31m\""));
}
