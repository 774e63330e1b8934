// The fast reader for task and result files must agree with the general path (parse +
// from_json) on everything it accepts, and give up on everything else.
#include <leaseq/detail/task_sax.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/model.hpp>

#include <random>
#include <string>

#include <catch2/catch.hpp>

using namespace leaseq;

namespace {

const std::string task_text = R"({"id": "T014", "seq": 14, "lease": "99887766", "node": "nodeA",
  "argv": ["python", "train.py", "--cfg", "a.yaml"], "cmd": "python train.py --cfg a.yaml",
  "cwd": "/home/u/proj", "env": {"OMP_NUM_THREADS": "8", "X": "a\"b\\c\n"}, "gpus": 0,
  "key": "6f1c", "created": 1764365000.123, "retry_of": "T012", "claimed": 1764365001, "pid": 42})";

const std::string result_text = R"({"id": "T014", "seq": 14, "lease": "99887766", "node": null,
  "argv": ["/bin/sh", "-c", "exit 3"], "cmd": "exit 3", "cwd": "/tmp", "env": {}, "gpus": 2,
  "key": null, "created": 1764365000.5, "state": "FAILED", "exit_code": 3, "signal": null,
  "reason": null, "claimed": 1764365001.0, "started": 1764365001.1, "finished": 1.7643651009e9,
  "stdout": "logs/nodeA/T014.out", "stderr": "logs/nodeA/T014.err", "attempt": "a1"})";

// What the general path makes of text, as JSON (or null when it refuses).
json general(const std::string& text, bool is_result) {
  json_outcome j = parse_json_tolerant(text);
  if (!j.ok()) return nullptr;
  try {
    if (is_result) {
      task_result r;
      from_json(*j.value, r);
      return json(r);
    }
    task_spec t;
    from_json(*j.value, t);
    return json(t);
  } catch (const std::exception&) {
    return nullptr;
  }
}

// The fast path's reading, as JSON, or null when it gives up.
json fast(const std::string& text, bool is_result) {
  if (is_result) {
    task_result r;
    if (!detail::task_sax::parse_result(text, r)) return nullptr;
    return json(r);
  }
  task_spec t;
  if (!detail::task_sax::parse_task(text, t)) return nullptr;
  return json(t);
}

}  // namespace

TEST_CASE("task_sax reads well-formed task and result files like from_json", "[task_sax]") {
  json f = fast(task_text, false);
  REQUIRE_FALSE(f.is_null());
  CHECK(f == general(task_text, false));
  CHECK(f["env"]["X"] == "a\"b\\c\n");
  json r = fast(result_text, true);
  REQUIRE_FALSE(r.is_null());
  CHECK(r == general(result_text, true));
  CHECK(r["state"] == "FAILED");
  CHECK(r["exit_code"] == 3);
}

TEST_CASE("task_sax gives up on what it does not handle", "[task_sax]") {
  CHECK(fast(R"({"id": "T001", "argv": ["a"], "extra": 1})", false).is_null());  // unknown field
  CHECK(fast(R"({"id": "T001", "argv": ["a"], "cmd": "\u00e9"})", false).is_null());
  CHECK(fast("{\"id\": \"T001\", \"argv\": [\"\xe9\"]}", false).is_null());  // not UTF-8
  CHECK(fast("{\"id\": \"T001\", \"argv\": [\"\xc3\"]}", false).is_null());  // truncated
  CHECK(fast(R"({"id": "T001", "argv": ["a"], "gpus": 1.0})", false).is_null());
  CHECK(fast(R"({"id": "T001", "argv": ["a"], "id": "T002"})", false).is_null());  // duplicate
  CHECK(fast(R"({"id": "T001", "argv": []})", false).is_null());
  CHECK(fast(R"({"id": "T1", "argv": ["a"]})", false).is_null());
  CHECK(fast(R"({"id": "T001", "argv": ["a"], "node": "../x"})", false).is_null());
  CHECK(fast(R"({"id": "T001", "argv": ["a"], "state": "FINISHED"})", false).is_null());
  CHECK(fast(R"({"id": "T001", "argv": ["a"], "state": "RUNNING"})", true).is_null());
  CHECK(fast(R"({"id": "T001", "argv": ["a"]} x)", false).is_null());
  CHECK(fast(R"({"id": "T001", "argv": ["a"],})", false).is_null());
  CHECK(fast(R"({"id": "T001", "argv": ["a"], "seq": 01})", false).is_null());
  CHECK(fast(R"({"id": "T001", "argv": ["a"], "env": {"A": {"B": "c"}}})", false).is_null());
  CHECK(fast("", false).is_null());
  CHECK(fast(R"({"id": "T001", "argv": ["a"], "seq": 99999999999999999999})", false).is_null());
}

TEST_CASE("task_sax never accepts what the general path refuses, and agrees on values",
          "[task_sax]") {
  // \xc3 and \xa9 make "é" or invalid UTF-8, depending on where they land.
  const std::string alphabet = "{}[]\":,0123456789.-+eE \\nTtrufalsex\x01\x80\xc3\xa9";
  std::mt19937 rng(7);
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    bool is_result = round % 2 == 1;
    std::string text = is_result ? result_text : task_text;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      std::size_t at = rng() % text.size();
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          text[at] = c;
          break;
        case 1:
          text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        default:
          text.erase(at, 1);
          break;
      }
    }
    json f = fast(text, is_result);
    if (f.is_null()) continue;
    ++accepted;
    INFO(text);
    REQUIRE(f == general(text, is_result));
  }
  CHECK(accepted > 100);  // the mutations do exercise the accepting side
}

TEST_CASE("task_sax reads UTF-8 text and the exact-bytes fields like from_json", "[task_sax]") {
  task_spec t;
  t.id = "T007";
  t.argv = {"echo", "caf\xc3\xa9", "a\xff", "\xfe\xfd"};  // no control: \u is the general path's
  t.cmd = "echo caf\xc3\xa9 \xe2\x80\xae";
  t.cwd = "/tmp/d\xff";
  t.env = {{"K\xfe", "v\xfd"}, {"OK", "\xc3\xa9"}};
  std::string text = json(t).dump();
  task_spec f;
  REQUIRE(detail::task_sax::parse_task(text, f));
  CHECK(f.argv == t.argv);
  CHECK(f.cwd == t.cwd);
  CHECK(f.env == t.env);
  CHECK(json(f) == general(text, false));

  task_result r;
  r.task = t;
  r.state = task_state::failed;
  r.reason = "spawn_failed: cannot chdir to /tmp/d\xff";
  text = json(r).dump();
  task_result fr;
  REQUIRE(detail::task_sax::parse_result(text, fr));
  CHECK(fr.task.argv == t.argv);
  CHECK(json(fr) == general(text, true));

  // What from_json refuses, the fast path gives up on.
  json bad = t;
  bad["argv"][0] = "edited";
  CHECK(fast(bad.dump(), false).is_null());
  CHECK(general(bad.dump(), false).is_null());
  bad = t;
  bad["cwd_b64"] = "L3Rt";
  CHECK(fast(bad.dump(), false).is_null());
}

TEST_CASE("task_sax gives up on a pid outside pid_t's positive range", "[task_sax]") {
  for (const char* pid : {"4294967295", "2147483648", "-1", "0", "1"}) {
    std::string text = R"({"id": "T001", "argv": ["a"], "pid": )" + std::string(pid) + "}";
    INFO(text);
    CHECK(fast(text, false).is_null());
    CHECK(general(text, false).is_null());
  }
  CHECK_FALSE(fast(R"({"id": "T001", "argv": ["a"], "pid": 2147483647})", false).is_null());
}

TEST_CASE("task_sax reads an array's task like from_json", "[task_sax]") {
  std::string text = task_text;
  text.insert(text.size() - 1, R"(, "array_id": "T010", "array_index": 4)");
  json f = fast(text, false);
  REQUIRE_FALSE(f.is_null());
  CHECK(f == general(text, false));
  CHECK(f["array_id"] == "T010");
  CHECK(f["array_index"] == 4);
  std::string res = result_text;
  res.insert(res.size() - 1, R"(, "array_index": 0, "array_id": "T014")");
  json r = fast(res, true);
  REQUIRE_FALSE(r.is_null());
  CHECK(r == general(res, true));
  CHECK(r["array_index"] == 0);
}

TEST_CASE("task_sax reads labels and priority like from_json", "[task_sax]") {
  std::string text = task_text;
  text.insert(text.size() - 1, R"(, "labels": ["sweep", "lr:0.1"], "priority": -4)");
  json f = fast(text, false);
  REQUIRE_FALSE(f.is_null());
  CHECK(f == general(text, false));
  CHECK(f["labels"] == json({"sweep", "lr:0.1"}));
  CHECK(f["priority"] == -4);
  // What from_json refuses, the fast path leaves to it.
  for (const char* bad : {R"(, "labels": ["a b"])", R"(, "labels": [""])",
                          R"(, "priority": 1000001)", R"(, "labels": "sweep")"}) {
    std::string t = task_text;
    t.insert(t.size() - 1, bad);
    CHECK(fast(t, false).is_null());
  }
}
