// The strict flat JSON reader under task_sax and heartbeat_sax: what it hands a handler, and
// what it gives up on (then the general path decides).
#include <leaseq/detail/flat_json.hpp>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace {

// Writes down every event; accepts everything.
struct recorder {
  std::vector<std::string> events;
  bool null() { return add("null"); }
  bool boolean(bool v) { return add(v ? "true" : "false"); }
  bool number_integer(std::int64_t v) { return add("int " + std::to_string(v)); }
  bool number_float(double v, const std::string&) { return add("float " + std::to_string(v)); }
  bool string(std::string& s) { return add("str " + s); }
  bool key(std::string& k) { return add("key " + k); }
  bool start_object(std::size_t) { return add("{"); }
  bool end_object() { return add("}"); }
  bool start_array(std::size_t) { return add("["); }
  bool end_array() { return add("]"); }
  bool add(std::string e) {
    events.push_back(std::move(e));
    return true;
  }
};

bool read(const std::string& text, std::vector<std::string>* events = nullptr) {
  recorder r;
  leaseq::detail::flat_json_reader<recorder> rd{text.data(), text.data() + text.size(), r, {}};
  bool ok = rd.document();
  if (events) *events = r.events;
  return ok;
}

}  // namespace

TEST_CASE("flat_json_reader hands a flat object's members to the handler", "[flat_json]") {
  std::vector<std::string> ev;
  REQUIRE(read(R"( {"a": [1, -2.5, "x\n\"y"], "b": {"c": null}, "d": true, "e": false} )", &ev));
  CHECK(ev == std::vector<std::string>{"{", "key a", "[", "int 1", "float -2.500000", "str x\n\"y",
                                       "]", "key b", "{", "key c", "null", "}", "key d", "true",
                                       "key e", "false", "}"});
  REQUIRE(read("{\"caf\xc3\xa9\": \"\xe2\x82\xac\"}", &ev));  // valid UTF-8 is taken as it is
  CHECK(ev[1] == "key caf\xc3\xa9");
  CHECK(ev[2] == "str \xe2\x82\xac");
}

TEST_CASE("flat_json_reader gives up on what it does not handle", "[flat_json]") {
  for (const char* text : {
           R"({"a": [[1]]})",                 // deeper than one level below the object
           R"({"a": {"b": {"c": 1}}})",       // the same
           R"({"a": "\u00e9"})",              // \u escapes: the general path's
           R"({"a": "\q"})",                  // an invalid escape
           "{\"a\": \"\x01\"}",               // a control byte
           "{\"a\": \"\xe9\"}",               // not UTF-8
           R"({"a": 01})",                    // a leading zero
           R"({"a": 99999999999999999999})",  // beyond int64
           R"({"a": tru})",                   // a truncated literal
           R"({"a": 1,})",                    // a trailing comma
           R"({"a": 1} x)",                   // trailing bytes
           R"({"a" 1})",                      // no colon
           "",
       }) {
    INFO(text);
    CHECK_FALSE(read(text));
  }
}
