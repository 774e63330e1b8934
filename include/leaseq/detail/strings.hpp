#pragma once

// Small string helpers, each written once: trimming, suffix tests and stripping (file names such
// as T000012.json or T000012.result.json), joining with a separator, and quoting for a POSIX shell.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace leaseq::detail {

// s without leading and trailing spaces, tabs, CRs and LFs.
inline std::string_view trim(std::string_view s) noexcept {
  constexpr std::string_view space = " \t\r\n";
  std::size_t first = s.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

inline bool ends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The part of `name` before `suffix` ("T000012" for "T000012.json", ".json"): nullopt when name
// does not end with suffix or is nothing but the suffix (a file named ".json" names nothing).
inline std::optional<std::string_view> strip_suffix(std::string_view name,
                                                    std::string_view suffix) noexcept {
  if (name.size() <= suffix.size() || !ends_with(name, suffix)) return std::nullopt;
  return name.substr(0, name.size() - suffix.size());
}

// The items with `sep` between them ("a,b,c"); "" for none.
template <class Range>
std::string join(const Range& items, std::string_view sep) {
  std::string out;
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += sep;
    first = false;
    out += std::string_view(item);
  }
  return out;
}

// One word for a POSIX shell, for scripts and for display, appended to `out`: as it is when it
// holds only characters no shell treats specially, else single-quoted (a ' inside as '\'').
// "" is ''.
struct shell_plain_bytes {
  bool plain[256] = {};
  constexpr shell_plain_bytes() {
    for (int c = 0; c < 256; ++c)
      plain[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    for (char c : std::string_view("_-./:=,+%@")) plain[static_cast<unsigned char>(c)] = true;
  }
};

inline void shell_quote_into(std::string& out, std::string_view s) {
  // A table: the dashboard's search joins every task's argv this way on each pass.
  static constexpr shell_plain_bytes table;
  bool plain = !s.empty();
  for (char c : s)
    if (!table.plain[static_cast<unsigned char>(c)]) {
      plain = false;
      break;
    }
  if (plain) {
    out += s;
    return;
  }
  out += '\'';
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  out += '\'';
}

inline std::string shell_quote(std::string_view s) {
  std::string out;
  shell_quote_into(out, s);
  return out;
}

// The words quoted by shell_quote, separated by spaces (a command line sh runs as `words`),
// into `out`, whose buffer a caller joining many commands reuses.
inline void shell_join_into(std::string& out, const std::vector<std::string>& words) {
  out.clear();
  for (const auto& w : words) {
    if (!out.empty()) out += ' ';
    shell_quote_into(out, w);
  }
}

inline std::string shell_join(const std::vector<std::string>& words) {
  std::string out;
  shell_join_into(out, words);
  return out;
}

}  // namespace leaseq::detail
