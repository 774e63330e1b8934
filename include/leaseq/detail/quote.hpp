#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace leaseq::detail {

// Renders an untrusted value for an error message: quoted, control bytes and non-ASCII shown
// as escapes, cut at max_len, so a hostile name can never drive the terminal.
inline std::string quote_for_message(std::string_view s, std::size_t max_len = 80) {
  std::string out = "\"";
  std::size_t n = 0;
  for (unsigned char c : s) {
    if (n++ == max_len) {
      out += "...";
      break;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

}  // namespace leaseq::detail
