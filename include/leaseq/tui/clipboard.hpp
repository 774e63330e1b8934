#pragma once

// Copy to the system clipboard with OSC 52: the terminal emulator does the copy, so it works
// over SSH and inside tmux (with `set -g set-clipboard on`). Write the returned bytes to the
// terminal like a frame.

#include <string>
#include <string_view>

namespace leaseq::tui {

inline std::string base64_encode(std::string_view in) {
  static constexpr char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < in.size() ? tbl[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Terminals cap OSC 52 payloads (xterm ~100 KB); longer text is refused (empty result).
inline constexpr std::size_t osc52_max_bytes = 74994;

inline std::string osc52_copy(std::string_view text) {
  if (text.size() > osc52_max_bytes) return {};
  return "\x1b]52;c;" + base64_encode(text) + "\x07";
}

}  // namespace leaseq::tui
