#pragma once

// Byte strings that are not UTF-8, carried through JSON. A shell can pass any bytes in argv,
// the working directory and the environment, but JSON strings are Unicode: a task file keeps a
// readable UTF-8 form (invalid bytes become U+FFFD) for every other tool, and the exact bytes
// in base64 beside it, only when the two differ (docs/protocol.md, "Task file").

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace leaseq::detail {

// How far the UTF-8 sequence at the start of s goes (RFC 3629: no overlong forms, no
// surrogates, nothing past U+10FFFF): `size` bytes, a whole character when `complete`, else the
// maximal subpart of an ill-formed or truncated one (the lead byte and the continuation bytes
// still acceptable after it; at least 1). s must not be empty.
struct utf8_scan {
  std::size_t size = 0;
  bool complete = false;
};
inline utf8_scan scan_utf8_sequence(std::string_view s) noexcept {
  auto c = static_cast<unsigned char>(s[0]);
  if (c < 0x80) return {1, true};
  std::size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return {1, false};
  }
  std::size_t k = 1;
  for (; k <= need && k < s.size(); ++k) {
    auto d = static_cast<unsigned char>(s[k]);
    if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF)) return {k, false};
  }
  return {k, k == need + 1};
}

// The length of the valid UTF-8 sequence at the start of s, or 0 when s does not start with one.
// s must not be empty.
inline std::size_t utf8_sequence_length(std::string_view s) noexcept {
  utf8_scan r = scan_utf8_sequence(s);
  return r.complete ? r.size : 0;
}

inline bool is_valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t n = utf8_sequence_length(s.substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// s with each maximal invalid subpart replaced by U+FFFD (the Unicode "best practice", as
// sanitize() and browsers do); s itself when it is valid.
inline std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    utf8_scan r = scan_utf8_sequence(s.substr(i));
    if (r.complete)
      out.append(s.data() + i, r.size);
    else
      out += "\xEF\xBF\xBD";  // for the lead byte and the continuation bytes acceptable after it
    i += r.size;
  }
  return out;
}

// RFC 4648 base64, standard alphabet, with padding.
inline std::string base64_encode(std::string_view bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    unsigned v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (std::size_t rest = bytes.size() - i; rest > 0) {
    unsigned v = at(i) << 16;
    if (rest == 2) v |= at(i + 1) << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// The bytes of canonical base64 text (padded, no whitespace, unused bits zero), or nullopt:
// one spelling per byte string, so a file cannot say two things at once.
inline std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int pad = 0;
    if (last && text[i + 3] == '=') pad = text[i + 2] == '=' ? 2 : 1;
    int v[4] = {0, 0, 0, 0};
    for (int k = 0; k < 4 - pad; ++k)
      if ((v[k] = value(text[i + static_cast<std::size_t>(k)])) < 0) return std::nullopt;
    unsigned bits = (static_cast<unsigned>(v[0]) << 18) | (static_cast<unsigned>(v[1]) << 12) |
                    (static_cast<unsigned>(v[2]) << 6) | static_cast<unsigned>(v[3]);
    out += static_cast<char>((bits >> 16) & 0xFF);
    if (pad == 2) {
      if (bits & 0xFFFF) return std::nullopt;
      break;
    }
    out += static_cast<char>((bits >> 8) & 0xFF);
    if (pad == 1) {
      if (bits & 0xFF) return std::nullopt;
      break;
    }
    out += static_cast<char>(bits & 0xFF);
  }
  return out;
}

}  // namespace leaseq::detail
