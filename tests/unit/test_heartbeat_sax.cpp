// The fast reader for heartbeats must agree with the general path (parse + from_json) on
// everything it accepts, and give up on everything else.
#include <leaseq/detail/heartbeat_sax.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/model.hpp>

#include <random>
#include <string>

#include <catch2/catch.hpp>

using namespace leaseq;

namespace {

// As the runner writes it (to_json), with a running task and GPUs.
const std::string hb_text = R"({"node": "gpu-007", "host": "n7.caf)"
                            "\xc3\xa9"
                            R"(", "pid": 4242,
  "ts": 1764365000.125, "started": 1764360000.5, "running": ["T014", "T015"],
  "running_task_id": "T014", "pending": 12, "paused": false, "slots": 2, "gpus": 4,
  "gpu_ids": ["0", "1", "2", "3"], "gpus_free": 2, "version": "0.9.0", "stopped": true,
  "pid_start": 123456789, "boot_id": "6f1c9a"})";

// What the general path makes of text, as JSON (or null when it refuses).
json general(const std::string& text) {
  json_outcome j = parse_json_tolerant(text);
  if (!j.ok()) return nullptr;
  try {
    heartbeat h;
    from_json(*j.value, h);
    return json(h);
  } catch (const std::exception&) {
    return nullptr;
  }
}

// The fast path's reading, as JSON, or null when it gives up.
json fast(const std::string& text) {
  heartbeat h;
  h.running = {"left over"};  // parse() starts from a fresh heartbeat
  if (!detail::heartbeat_sax::parse(text, h)) return nullptr;
  return json(h);
}

std::string with(const std::string& member) {
  std::string t = hb_text;
  t.insert(t.size() - 1, ", " + member);
  return t;
}

}  // namespace

TEST_CASE("heartbeat_sax reads a heartbeat like from_json", "[heartbeat_sax]") {
  json f = fast(hb_text);
  REQUIRE_FALSE(f.is_null());
  CHECK(f == general(hb_text));
  CHECK(f["host"] == "n7.caf\xc3\xa9");
  CHECK(f["running"] == json({"T014", "T015"}));
  CHECK(f["stopped"] == true);
  CHECK(f["pid_start"] == 123456789);

  heartbeat h;
  h.node = "nodeA";
  h.ts = 1764365000;
  std::string minimal = json(h).dump();  // what a runner with nothing to do writes
  REQUIRE_FALSE(fast(minimal).is_null());
  CHECK(fast(minimal) == general(minimal));
  for (const char* t : {R"({"node": "a", "ts": 5})",
                        R"({"node": "a", "ts": 5, "host": null, "running": null, "pid": null})",
                        R"({"ts": 1.5, "node": "a", "pid_start": -3, "pid": 0})",
                        R"({"ts": 1.5, "node": "a", "pid_start": null, "gpu_ids": null})"}) {
    INFO(t);
    REQUIRE_FALSE(fast(t).is_null());
    CHECK(fast(t) == general(t));
  }
}

TEST_CASE("heartbeat_sax gives up on what it does not handle", "[heartbeat_sax]") {
  CHECK(fast(with(R"("extra": 1)")).is_null());         // kept in extra by from_json
  CHECK(fast(with(R"("node": "gpu-008")")).is_null());  // duplicate
  CHECK(fast(with(R"("gpus": [0, 1])")).is_null());     // a list: from_json counts it
  CHECK(fast(R"({"node": "a", "ts": 5, "pending": 2.0})").is_null());
  CHECK(fast(R"({"node": "a", "ts": 5, "pid_start": 2.5})").is_null());
  CHECK(fast(R"({"node": "a", "ts": 5, "running": [1]})").is_null());
  CHECK(fast(R"({"node": "a", "ts": 5, "running": "T001"})").is_null());
  CHECK(fast(R"({"node": "a", "ts": 5, "paused": 0})").is_null());
  CHECK(fast(R"({"node": "a", "ts": 5, "pid": -1})").is_null());
  CHECK(fast(R"({"node": "a", "ts": 5, "pid": 2147483648})").is_null());
  CHECK(fast(R"({"node": "a"})").is_null());
  CHECK(fast(R"({"node": "a", "ts": null})").is_null());
  CHECK(fast(R"({"node": "../x", "ts": 5})").is_null());
  CHECK(fast(R"({"node": null, "ts": 5})").is_null());
  CHECK(fast(R"({"ts": 5})").is_null());
  CHECK(fast(R"([{"node": "a", "ts": 5}])").is_null());
  CHECK(fast(R"({"node": "a", "ts": 5} x)").is_null());
  CHECK(fast(R"({"node": "a", "ts": 5,})").is_null());
  CHECK(fast(R"({"node": "a", "ts": 5, "running": [{"a": 1}]})").is_null());
  CHECK(fast(R"({"node": "a", "ts": 5, "host": "caf\u00e9"})").is_null());  // the general path's
  CHECK(fast("").is_null());
  CHECK(fast("true").is_null());
}

TEST_CASE("heartbeat_sax never accepts what the general path refuses, and agrees on values",
          "[heartbeat_sax]") {
  const std::string& base = hb_text;
  const std::string alphabet = "{}[]\":,0123456789.-+eE \\ntrufalsex\x01\x80\xc3\xa9";
  std::mt19937 rng(11);
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string text = base;
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
    json f = fast(text);
    if (f.is_null()) continue;
    ++accepted;
    INFO(text);
    REQUIRE(f == general(text));
  }
  CHECK(accepted > 100);  // the mutations do exercise the accepting side
}
