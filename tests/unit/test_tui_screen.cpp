#include <leaseq/detail/text_width.hpp>
#include <leaseq/tui/clipboard.hpp>
#include <leaseq/tui/screen.hpp>

#include <catch2/catch.hpp>

using namespace leaseq::tui;
using leaseq::detail::codepoint_width;
using leaseq::detail::decode_utf8;
using leaseq::detail::display_width;

TEST_CASE("utf-8 decoding never stalls and rejects bad sequences", "[tui][text_width]") {
  CHECK(decode_utf8("a", 0).cp == U'a');
  CHECK(decode_utf8("\xc3\xa9", 0).cp == 0xE9);
  CHECK(decode_utf8("\xc3\xa9", 0).len == 2);
  CHECK(decode_utf8("\xe4\xbb\xbb", 0).cp == 0x4EFB);
  CHECK(decode_utf8("\xf0\x9f\x98\x80", 0).cp == 0x1F600);
  CHECK(decode_utf8("\xc0\xaf", 0).cp == 0xFFFD);      // overlong
  CHECK(decode_utf8("\xed\xa0\x80", 0).cp == 0xFFFD);  // surrogate
  CHECK(decode_utf8("\xe4\xbb", 0).cp == 0xFFFD);      // truncated
  CHECK(decode_utf8("\xe4\xbb", 0).len == 1);
  CHECK(decode_utf8("\xff", 0).len == 1);
}

TEST_CASE("display width: wide is 2, combining 0, controls -1", "[tui][text_width]") {
  CHECK(codepoint_width(U'a') == 1);
  CHECK(codepoint_width(0x4EFB) == 2);   // CJK
  CHECK(codepoint_width(0xFF21) == 2);   // fullwidth A
  CHECK(codepoint_width(0x1F600) == 2);  // emoji
  CHECK(codepoint_width(0x0301) == 0);   // combining acute
  CHECK(codepoint_width(0x200B) == 0);   // zero width space
  CHECK(codepoint_width(0x1B) == -1);
  CHECK(codepoint_width(0x9B) == -1);
  CHECK(codepoint_width(0xE9) == 1);
  CHECK(display_width("任务 1") == 6);
  CHECK(display_width("e\xcc\x81") == 1);
}

TEST_CASE("print places wide and combining characters in cells", "[tui][screen]") {
  buffer b(8, 1);
  CHECK(b.print(0, 0, "a任e\xcc\x81") == 4);
  CHECK(b.at(0, 0).text == "a");
  CHECK(b.at(1, 0).text == "任");
  CHECK(b.at(1, 0).width == 2);
  CHECK(b.at(2, 0).width == 0);
  CHECK(b.at(3, 0).text == "e\xcc\x81");
  CHECK(b.to_text() == "a任e\xcc\x81    \n");
}

TEST_CASE("print never stores a control byte", "[tui][screen]") {
  buffer b(6, 1);
  b.print(0, 0, "a\x1b[2Jb\x07");
  std::string row = b.row_text(0);
  CHECK(row.find('\x1b') == std::string::npos);
  CHECK(row.find('\x07') == std::string::npos);
  CHECK(b.at(1, 0).text == "\xef\xbf\xbd");
}

TEST_CASE("print honours max_width and the clip, a wide char never splits", "[tui][screen]") {
  buffer b(6, 2);
  CHECK(b.print(0, 0, "abcdef", {}, 3) == 3);
  CHECK(b.row_text(0) == "abc   ");
  CHECK(b.print(4, 1, "x任") == 1);  // the wide char needs two cells; only one left
  CHECK(b.row_text(1) == "    x ");
  {
    clip_scope cs(b, {1, 0, 2, 1});
    b.print(0, 0, "ZZZZ");
  }
  CHECK(b.row_text(0) == "aZZ   ");
  b.print(5, 0, "任");  // last column: drawn as nothing, not half a glyph
  CHECK(b.at(5, 0).width == 1);
}

TEST_CASE("overwriting half of a wide character blanks the other half", "[tui][screen]") {
  buffer b(4, 1);
  b.print(0, 0, "任");
  b.print(1, 0, "x");
  CHECK(b.row_text(0) == " x  ");
  b.print(0, 0, "任");
  b.print(0, 0, "y");
  CHECK(b.row_text(0) == "y   ");
  CHECK(b.at(1, 0).width == 1);
}

TEST_CASE("out of range writes are ignored, empty buffers are fine", "[tui][screen]") {
  buffer b(0, 0);
  CHECK(b.print(0, 0, "abc") == 0);
  b.fill({-5, -5, 100, 100});
  buffer c(2, 2);
  c.print(-1, 0, "abc");
  c.print(0, 5, "abc");
  c.set(7, 7, cell{});
  CHECK(c.to_text() == "bc\n  \n");
}

namespace {
present_options plain() {
  present_options o;
  o.synchronized = false;
  return o;
}
}  // namespace

TEST_CASE("present writes nothing when nothing changed", "[tui][screen]") {
  buffer a(10, 3), b(10, 3);
  a.print(0, 0, "hello");
  b.print(0, 0, "hello");
  CHECK(present(a, b).empty());
}

TEST_CASE("present: one changed cell, byte for byte", "[tui][screen]") {
  buffer a(10, 3), b(10, 3);
  b.print(2, 1, "x");
  CHECK(present(a, b, plain()) == "\x1b[2;3H\x1b[0mx\x1b[0m");
  CHECK(present(a, b) == "\x1b[?2026h\x1b[2;3H\x1b[0mx\x1b[0m\x1b[?2026l");
}

TEST_CASE("present: adjacent cells share one move and one style", "[tui][screen]") {
  buffer a(10, 3), b(10, 3);
  style red{colors::red};
  b.print(0, 0, "ab", red);
  b.print(5, 0, "c", red);
  b.print(6, 0, "d", style{{}, {}, true});
  CHECK(present(a, b, plain()) == "\x1b[1;1H\x1b[0;31mab\x1b[1;6Hc\x1b[0;1md\x1b[0m");
}

TEST_CASE("present: colours in each mode, dropped with NO_COLOR", "[tui][screen]") {
  buffer a(3, 1), b(3, 1);
  style st;
  st.fg = color::from_rgb(255, 0, 0);
  st.bg = color::indexed(200);
  st.underline = true;
  b.print(0, 0, "z", st);
  present_options o = plain();
  o.colors = color_mode::truecolor;
  CHECK(present(a, b, o) == "\x1b[1;1H\x1b[0;4;38;2;255;0;0;48;5;200mz\x1b[0m");
  o.colors = color_mode::palette256;
  CHECK(present(a, b, o) == "\x1b[1;1H\x1b[0;4;38;5;196;48;5;200mz\x1b[0m");
  o.colors = color_mode::basic16;
  CHECK(present(a, b, o) == "\x1b[1;1H\x1b[0;4;91;105mz\x1b[0m");
  o.colors = color_mode::none;
  CHECK(present(a, b, o) == "\x1b[1;1H\x1b[0;4mz\x1b[0m");
}

TEST_CASE("present_options::from_env honours NO_COLOR and TERM=dumb", "[tui][screen]") {
  ::setenv("TERM", "xterm-256color", 1);
  ::unsetenv("NO_COLOR");
  ::unsetenv("COLORTERM");
  CHECK(present_options::from_env().colors == color_mode::palette256);
  ::setenv("NO_COLOR", "1", 1);
  CHECK(present_options::from_env().colors == color_mode::none);
  ::unsetenv("NO_COLOR");
  ::setenv("TERM", "dumb", 1);
  CHECK(present_options::from_env().colors == color_mode::none);
  ::setenv("TERM", "xterm", 1);
  ::setenv("COLORTERM", "truecolor", 1);
  CHECK(present_options::from_env().colors == color_mode::truecolor);
  ::unsetenv("COLORTERM");
}

TEST_CASE("present: a wide character is written once and moves the cursor two", "[tui][screen]") {
  buffer a(6, 1), b(6, 1);
  b.print(0, 0, "任x");
  CHECK(present(a, b, plain()) == "\x1b[1;1H\x1b[0m任x\x1b[0m");
  // Replacing the wide char with two narrow ones rewrites both cells.
  buffer c(6, 1);
  c.print(0, 0, "abx");
  CHECK(present(b, c, plain()) == "\x1b[1;1H\x1b[0mab\x1b[0m");
}

TEST_CASE("present: a size change redraws every cell", "[tui][screen]") {
  buffer a(2, 1), b(3, 2);
  b.print(0, 0, "abc");
  std::string out = present(a, b, plain());
  CHECK(out == "\x1b[1;1H\x1b[0mabc\x1b[2;1H   \x1b[0m");
  present_options o = plain();
  o.full_redraw = true;
  CHECK(present(b, b, o) == out);
}

TEST_CASE("present then apply equals the back buffer (round trip)", "[tui][screen]") {
  // Apply the bytes with a tiny interpreter of the sequences present() emits.
  buffer front(12, 4), back(12, 4);
  front.print(0, 0, "old text 任");
  back.print(0, 0, "new 任 text");
  back.print(3, 2, "é!", style{colors::green});
  std::string bytes = present(front, back, plain());
  buffer screen_state = front;
  int x = 0, y = 0;
  for (std::size_t i = 0; i < bytes.size();) {
    if (bytes[i] == '\x1b') {
      std::size_t j = i + 2;
      while (j < bytes.size() && !std::isalpha(static_cast<unsigned char>(bytes[j]))) ++j;
      if (bytes[j] == 'H') std::sscanf(bytes.c_str() + i + 2, "%d;%d", &y, &x), --x, --y;
      i = j + 1;
      continue;
    }
    auto ch = decode_utf8(bytes, i);
    std::string t = bytes.substr(i, ch.len);
    i += ch.len;
    int w = codepoint_width(ch.cp);
    screen_state.print(x, y, t, back.at(x, y).st);
    x += w;
  }
  CHECK(screen_state.to_text() == back.to_text());
}

TEST_CASE("osc 52 copy is base64 in an OSC string", "[tui][clipboard]") {
  // base64 itself: test_exact_bytes.cpp.
  CHECK(osc52_copy("task-7") == "\x1b]52;c;dGFzay03\x07");
  CHECK(osc52_copy(std::string(osc52_max_bytes + 1, 'a')).empty());
}
