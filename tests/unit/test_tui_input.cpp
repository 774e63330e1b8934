#include <leaseq/tui/input.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace leaseq::tui;

namespace {

// Feeds `bytes` split at `cut` (two reads), then a timeout flush; returns the events.
std::vector<event> decode_split(const std::string& bytes, std::size_t cut) {
  key_decoder d;
  std::vector<event> out = d.feed(bytes.substr(0, cut));
  auto more = d.feed(bytes.substr(cut));
  out.insert(out.end(), more.begin(), more.end());
  auto rest = d.flush_timeout();
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

// Feeds one byte at a time.
std::vector<event> decode_bytewise(const std::string& bytes) {
  key_decoder d;
  std::vector<event> out;
  for (char c : bytes) {
    auto evs = d.feed(std::string(1, c));
    out.insert(out.end(), evs.begin(), evs.end());
  }
  auto rest = d.flush_timeout();
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

std::vector<std::string> names(const std::vector<event>& evs) {
  std::vector<std::string> out;
  for (auto& e : evs) {
    if (auto* k = std::get_if<key_event>(&e))
      out.push_back(key_name(k->k));
    else if (auto* p = std::get_if<paste_event>(&e))
      out.push_back("paste:" + p->text);
  }
  return out;
}

struct key_sample {
  std::string bytes;
  std::string name;
};

const std::vector<key_sample> key_samples = {
    {"a", "a"},
    {"\xc3\xa9", "\xc3\xa9"},
    {"\xe4\xbb\xbb", "\xe4\xbb\xbb"},
    {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
    {"\r", "Enter"},
    {"\t", "Tab"},
    {"\x1b[Z", "Shift+Tab"},
    {"\x7f", "Backspace"},
    {"\x03", "Ctrl+C"},
    {"\x1a", "Ctrl+Z"},
    {"\x1b"
     "a",
     "Alt+a"},
    {"\x1b\xc3\xa9", "Alt+\xc3\xa9"},
    {"\x1b[A", "Up"},
    {"\x1b[B", "Down"},
    {"\x1b[C", "Right"},
    {"\x1b[D", "Left"},
    {"\x1bOA", "Up"},
    {"\x1b[H", "Home"},
    {"\x1b[F", "End"},
    {"\x1b[1~", "Home"},
    {"\x1b[4~", "End"},
    {"\x1b[5~", "PgUp"},
    {"\x1b[6~", "PgDn"},
    {"\x1b[3~", "Del"},
    {"\x1bOP", "F1"},
    {"\x1bOQ", "F2"},
    {"\x1bOR", "F3"},
    {"\x1bOS", "F4"},
    {"\x1b[11~", "F1"},
    {"\x1b[14~", "F4"},
    {"\x1b[1;5A", "Ctrl+Up"},
    {"\x1b[1;3D", "Alt+Left"},
    {"\x1b[200~hello\x1b[201~", "paste:hello"},
    {"\x1b[200~a\x1b[Ab\r\n\x1b[201~", "paste:a\x1b[Ab\r\n"},
};

}  // namespace

TEST_CASE("every key sequence decodes the same whatever the read split", "[tui][input]") {
  for (const auto& s : key_samples) {
    INFO("sequence for " << s.name);
    // The sequence followed by a plain key, so splits that leave it pending are covered too.
    std::string bytes = s.bytes + "z";
    std::vector<std::string> want{s.name, "z"};
    for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
      INFO("cut at " << cut);
      CHECK(names(decode_split(bytes, cut)) == want);
    }
    CHECK(names(decode_bytewise(bytes)) == want);
  }
}

TEST_CASE("a lone Esc waits for the timeout, then is the Esc key", "[tui][input]") {
  key_decoder d;
  CHECK(d.feed("\x1b").empty());
  CHECK(d.has_pending());
  auto evs = d.flush_timeout();
  REQUIRE(evs.size() == 1);
  CHECK(std::get<key_event>(evs[0]).k == key::of(key_code::escape));
  CHECK_FALSE(d.has_pending());
  // Esc Esc: two Esc keys.
  CHECK(names(decode_bytewise("\x1b\x1b")) == std::vector<std::string>{"Esc", "Esc"});
}

TEST_CASE("unknown or broken sequences are swallowed, never stray letters", "[tui][input]") {
  CHECK(names(decode_bytewise("\x1b[99~x")) == std::vector<std::string>{"x"});
  CHECK(names(decode_bytewise("\x1b[?1;2cx")) == std::vector<std::string>{"x"});
  CHECK(names(decode_bytewise("\x1b[1;2;3;4;5;6Xx")) == std::vector<std::string>{"x"});
  CHECK(names(decode_bytewise("\x1bOzx")) == std::vector<std::string>{"x"});
  // An unfinished CSI at the timeout is dropped whole.
  key_decoder d;
  CHECK(d.feed("\x1b[12;").empty());
  CHECK(d.flush_timeout().empty());
  CHECK(names(d.feed("q")) == std::vector<std::string>{"q"});
}

TEST_CASE("invalid utf-8 becomes U+FFFD, one byte at a time", "[tui][input]") {
  CHECK(names(decode_bytewise("\xff"
                              "a")) == std::vector<std::string>{"\xef\xbf\xbd", "a"});
  CHECK(names(decode_bytewise("\xe4"
                              "a")) == std::vector<std::string>{"\xef\xbf\xbd", "a"});
}

TEST_CASE("a paste split anywhere, even inside the end marker, comes out whole", "[tui][input]") {
  std::string bytes = "\x1b[200~line1\nline2\x1b[201~";
  for (std::size_t a = 0; a <= bytes.size(); ++a) {
    for (std::size_t b = a; b <= bytes.size(); ++b) {
      key_decoder d;
      std::vector<event> out = d.feed(bytes.substr(0, a));
      auto e2 = d.feed(bytes.substr(a, b - a));
      out.insert(out.end(), e2.begin(), e2.end());
      auto e3 = d.feed(bytes.substr(b));
      out.insert(out.end(), e3.begin(), e3.end());
      REQUIRE(out.size() == 1);
      CHECK(std::get<paste_event>(out[0]).text == "line1\nline2");
    }
  }
}

TEST_CASE("a paste in progress survives the Esc timeout", "[tui][input]") {
  key_decoder d;
  CHECK(d.feed("\x1b[200~abc").empty());
  CHECK(d.flush_timeout().empty());
  auto out = d.feed("def\x1b[201~");
  REQUIRE(out.size() == 1);
  CHECK(std::get<paste_event>(out[0]).text == "abcdef");
}

TEST_CASE("key helpers", "[tui][input]") {
  CHECK(key::ch('q').is('q'));
  CHECK_FALSE(key::ctrl_of('q').is('q'));
  CHECK(key_name(key::ctrl_of('c')) == "Ctrl+C");
  CHECK(key_name(key::of(key_code::page_down)) == "PgDn");
}
