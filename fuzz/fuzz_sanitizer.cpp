// The text sanitizer. Property: its output never holds ESC, a C0 control other than \t and \n,
// DEL, a C1 control, a raw 0x9B, or a bidi control or invisible character (U+202E, U+200B, ...:
// is_hidden_format_char), and is valid UTF-8; streaming it in two chunks split at any point
// gives the same text as one pass.
#include <leaseq/detail/text_width.hpp>
#include <leaseq/sanitize.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string whole = leaseq::sanitize(text);
  if (!leaseq::is_terminal_safe(whole)) std::abort();
  // ASCII controls can never hide inside a UTF-8 sequence; 0x9B can (as a continuation
  // byte, e.g. U+059B), so a raw 0x9B is ruled out by is_terminal_safe's UTF-8 check above.
  for (unsigned char c : whole)
    if (c == 0x1b || c == 0x7f || (c < 0x20 && c != '\t' && c != '\n')) std::abort();
  // No bidi control or invisible character, checked here apart from is_terminal_safe: a
  // decoder of its own, so one bug in the sanitizer's decoding cannot hide in both.
  for (std::size_t i = 0; i < whole.size();) {
    auto c = leaseq::detail::decode_utf8(whole, i);
    if (leaseq::is_hidden_format_char(c.cp)) std::abort();
    i += c.len;
  }
  if (!leaseq::is_terminal_safe(leaseq::sanitize_inline(text))) std::abort();
  std::size_t cut = size ? data[0] % (size + 1) : 0;
  leaseq::stream_sanitizer s;
  std::string streamed;
  s.feed(text.substr(0, cut), streamed);
  s.feed(text.substr(cut), streamed);
  s.finish(streamed);
  if (streamed != whole) std::abort();
  return 0;
}
