#include <leaseq/sanitize.hpp>

#include <random>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

using namespace leaseq;

namespace {

const std::string fffd = "\xEF\xBF\xBD";

// Feeds text split at `at` (and byte by byte when at == npos).
std::string streamed(const std::string& text, std::size_t at) {
  stream_sanitizer s;
  std::string out;
  if (at == std::string::npos) {
    for (char c : text) s.feed(std::string_view(&c, 1), out);
  } else {
    s.feed(std::string_view(text).substr(0, at), out);
    s.feed(std::string_view(text).substr(at), out);
  }
  s.finish(out);
  return out;
}

// sanitize(text) == expected, the output is terminal-safe, and every split gives the same.
void check_all_splits(const std::string& text, const std::string& expected) {
  INFO("input: " << text);
  std::string whole = sanitize(text);
  CHECK(whole == expected);
  CHECK(is_terminal_safe(whole));
  for (std::size_t at = 0; at <= text.size(); ++at) {
    INFO("split at " << at);
    CHECK(streamed(text, at) == whole);
  }
  CHECK(streamed(text, std::string::npos) == whole);
}

}  // namespace

TEST_CASE("sanitize removes CSI sequences, 7-bit and C1", "[sanitize]") {
  check_all_splits("\x1b[31mred\x1b[0m plain", "red plain");
  check_all_splits("\x1b[?1049h\x1b[2J\x1b[1;1Hscreen", "screen");
  check_all_splits("a\x1b[38;5;196mb", "ab");
  check_all_splits(
      "\xc2\x9b"
      "31mX",
      "X");                                      // U+009B CSI
  check_all_splits("\x1b[1;2\ntext", "\ntext");  // a newline aborts a CSI and survives
}

TEST_CASE("sanitize removes OSC sequences: title, OSC 52 clipboard, OSC 8 links", "[sanitize]") {
  check_all_splits(
      "\x1b]0;evil title\x07"
      "after",
      "after");
  check_all_splits("\x1b]52;c;SGVsbG8gd29ybGQ=\x07x", "x");
  check_all_splits("\x1b]52;c;SGVsbG8=\x1b\\y", "y");
  check_all_splits("\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\", "link");
  check_all_splits(
      "\xc2\x9d"
      "0;t\xc2\x9cY",
      "Y");  // C1 OSC ended by C1 ST
}

TEST_CASE("sanitize removes DCS, APC, PM and SOS strings", "[sanitize]") {
  check_all_splits("\x1bPq#0;2;0;0;0#0~~\x1b\\d", "d");
  check_all_splits("\x1b_Gf=100;AAAA\x1b\\a", "a");
  check_all_splits("\x1b^private\x1b\\p", "p");
  check_all_splits("\x1bXsos\x1b\\s", "s");
  check_all_splits(
      "\xc2\x90q\xc2\x9c"
      "D",
      "D");  // C1 DCS
  check_all_splits(
      "\xc2\x9f"
      "apc\xc2\x9c"
      "A",
      "A");
}

TEST_CASE("sanitize: unterminated and cancelled sequences", "[sanitize]") {
  check_all_splits("a\x1b]0;title with no end\nnext line", "a\nnext line");
  check_all_splits("tail\x1b]52;c;AAAA", "tail");
  check_all_splits("x\x1b", "x");
  check_all_splits("x\x1b[", "x");
  check_all_splits("\x1b]0;abc\x18X", "X");  // CAN cancels
  check_all_splits(
      "\x1bPabc\x1a"
      "Z",
      "Z");  // SUB cancels
  // An ESC inside a string ends it and starts a new sequence.
  check_all_splits("\x1b]0;t\x1b[31mR", "R");
  // A huge unterminated payload gives the text back after 4096 bytes, still safe.
  std::string big = "\x1b]52;c;" + std::string(5000, 'A');
  std::string out = sanitize(big);
  CHECK(is_terminal_safe(out));
  CHECK(out.size() < 5000);
}

TEST_CASE("sanitize removes two-byte and charset escapes", "[sanitize]") {
  check_all_splits("\x1b(Bx\x1b)0y", "xy");
  check_all_splits(
      "\x1b"
      "7saved\x1b"
      "8",
      "saved");
  check_all_splits(
      "\x1b"
      "c",
      "");
  check_all_splits("\x1b\x1b[1mb", "b");
}

TEST_CASE("sanitize: C0 controls, DEL, C1, raw 0x9B", "[sanitize]") {
  check_all_splits("bell\x07 bs\x08 nul", "bell^G bs^H nul");
  check_all_splits(std::string("a\0b", 3), "a^@b");
  check_all_splits("del\x7f", "del^?");
  check_all_splits("tab\tnewline\n", "tab\tnewline\n");
  check_all_splits(
      "a\x9b"
      "31mb",
      "a" + fffd + "31mb");                          // a raw 0x9B is invalid UTF-8
  check_all_splits("nel\xc2\x85x", "nelx");          // other C1 controls are dropped
  check_all_splits("\xc2\xa0nbsp", "\xc2\xa0nbsp");  // U+00A0 is not C1
}

TEST_CASE("sanitize: a carriage return never overwrites", "[sanitize]") {
  check_all_splits("dos\r\nline\r\n", "dos\nline\n");
  check_all_splits("10%\r50%\r100%\n", "10%\n50%\n100%\n");
  check_all_splits("secret\rshown", "secret\nshown");
  check_all_splits("end\r", "end\n");
  check_all_splits("\r\r\n", "\n\n");
}

TEST_CASE("sanitize: invalid UTF-8 becomes U+FFFD, valid text is kept", "[sanitize]") {
  check_all_splits("h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
                   "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
  check_all_splits("\xff", fffd);
  check_all_splits("\xc0\xaf", fffd + fffd);                        // overlong
  check_all_splits("\xe0\x80\xaf", fffd + fffd + fffd);             // overlong 3-byte
  check_all_splits("\xed\xa0\x80", fffd + fffd + fffd);             // surrogate
  check_all_splits("\xf4\x90\x80\x80", fffd + fffd + fffd + fffd);  // past U+10FFFF
  check_all_splits("\xe2\x82", fffd);                               // truncated at the end
  check_all_splits("\xe2\x82x", fffd + "x");                        // truncated in the middle
  check_all_splits("\xf0\x9f\x98", fffd);
}

TEST_CASE("sanitize_inline makes one line", "[sanitize]") {
  CHECK(sanitize_inline("a\nb\tc\x1b[31m") == "a\\nb c");
}

TEST_CASE("is_terminal_safe", "[sanitize]") {
  CHECK(is_terminal_safe("plain \xc3\xa9\t\n"));
  CHECK_FALSE(is_terminal_safe("\x1b"));
  CHECK_FALSE(is_terminal_safe("\r"));
  CHECK_FALSE(is_terminal_safe("\x7f"));
  CHECK_FALSE(is_terminal_safe("\xc2\x9b"));
  CHECK_FALSE(is_terminal_safe("\x9b"));
  CHECK_FALSE(is_terminal_safe("\xe2\x82"));
}

TEST_CASE("sanitize: random hostile bytes always come out safe, whatever the split", "[sanitize]") {
  const std::vector<std::string> parts = {"\x1b",
                                          "[",
                                          "]",
                                          "P",
                                          "_",
                                          "^",
                                          "X",
                                          "\\",
                                          "\x07",
                                          "\x18",
                                          "\r",
                                          "\n",
                                          "\t",
                                          "\x9b",
                                          "\xc2",
                                          "\x9c",
                                          "\x9d",
                                          "\xe2",
                                          "\x82",
                                          "\xac",
                                          "\xf0",
                                          "\x9f",
                                          "\xff",
                                          "\x7f",
                                          "\x00",
                                          "m",
                                          "0",
                                          ";",
                                          "52",
                                          "a",
                                          "\xc3\xa9",
                                          "8;;",
                                          "\x1b\\",
                                          "\xe2\x80\xae",
                                          "\xe2\x81\xa6",
                                          "\x80",
                                          "\xbb",
                                          "\xef"};
  std::mt19937 rng(42);
  for (int round = 0; round < 400; ++round) {
    std::string text;
    int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      const std::string& p = parts[rng() % parts.size()];
      text.append(p.empty() ? std::string(1, '\0') : p);
    }
    std::string whole = sanitize(text);
    REQUIRE(is_terminal_safe(whole));
    for (std::size_t at = 0; at <= text.size(); ++at) REQUIRE(streamed(text, at) == whole);
    REQUIRE(streamed(text, std::string::npos) == whole);
  }
}

// Issue 15.6: Trojan Source (CVE-2021-42574) reorders a line with these; a zero-width space
// hides a difference; U+2028 breaks a line the table does not know about.
TEST_CASE("sanitize shows bidi controls and invisible characters as text", "[sanitize]") {
  check_all_splits("admin\xe2\x80\xaenimda", "admin<U+202E>nimda");
  check_all_splits("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad",
                   "<U+202A><U+202B><U+202C><U+202D>");
  check_all_splits("\xe2\x81\xa6x\xe2\x81\xa7y\xe2\x81\xa8z\xe2\x81\xa9",
                   "<U+2066>x<U+2067>y<U+2068>z<U+2069>");
  check_all_splits("a\xe2\x80\x8b\xe2\x80\x8c\xe2\x80\x8d\xe2\x80\x8e\xe2\x80\x8f",
                   "a<U+200B><U+200C><U+200D><U+200E><U+200F>");
  check_all_splits("l1\xe2\x80\xa8l2\xe2\x80\xa9", "l1<U+2028>l2<U+2029>");
  check_all_splits("\xef\xbb\xbftext", "<U+FEFF>text");
  check_all_splits("\xd8\x9c", "<U+061C>");  // ARABIC LETTER MARK
  // Their neighbours are ordinary text.
  check_all_splits("\xe2\x80\x8a\xe2\x80\x90\xe2\x80\xaf\xe2\x81\xa5\xe2\x81\xaa\xef\xbb\xbe",
                   "\xe2\x80\x8a\xe2\x80\x90\xe2\x80\xaf\xe2\x81\xa5\xe2\x81\xaa\xef\xbb\xbe");
  CHECK(sanitize_inline("a\xe2\x80\xae"
                        "b\n") == "a<U+202E>b\\n");
  CHECK_FALSE(is_terminal_safe("\xe2\x80\xae"));
  CHECK_FALSE(is_terminal_safe("\xef\xbb\xbf"));
  CHECK_FALSE(is_terminal_safe("\xd8\x9c"));
  CHECK(is_terminal_safe("\xe2\x80\x90"));
}
