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

// One word for a POSIX shell, for scripts and for display: as it is when it holds only
// characters no shell treats specially, else single-quoted (a ' inside as '\''). "" is ''.
inline std::string shell_quote(std::string_view s) {
  constexpr std::string_view plain_punct = "_-./:=,+%@";
  bool plain = !s.empty();
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          plain_punct.find(c) != std::string_view::npos))
      plain = false;
  if (plain) return std::string(s);
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

// The words quoted by shell_quote, separated by spaces: a command line sh runs as `words`.
inline std::string shell_join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) {
    if (!out.empty()) out += ' ';
    out += shell_quote(w);
  }
  return out;
}

}  // namespace leaseq::detail
