#pragma once

// Durations typed by people: `30s`, `5m`, `1h30m`, `2d`, `90` (seconds), and Slurm's clock
// forms `MM:SS`, `HH:MM:SS`, `D-HH:MM:SS`. One parser for every option that takes a time
// (`wait --timeout`, a task's time limit, ...). Pure.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "leaseq/detail/quote.hpp"
#include "leaseq/error.hpp"

namespace leaseq {

// The longest duration accepted: 1000 days. Anything longer is a typo, and keeps every sum far
// from overflow.
inline constexpr std::int64_t max_duration_s = 1000LL * 86400;

namespace detail {

// Digits only, at most 12 of them; nullopt-like -1 otherwise.
inline std::int64_t duration_number(std::string_view s) {
  if (s.empty() || s.size() > 12) return -1;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

inline std::int64_t parse_clock_duration(std::string_view s) {
  std::int64_t days = 0;
  if (auto dash = s.find('-'); dash != std::string_view::npos) {
    days = duration_number(s.substr(0, dash));
    if (days < 0) return -1;
    s.remove_prefix(dash + 1);
  }
  std::int64_t parts[3] = {0, 0, 0};
  int n = 0;
  while (true) {
    if (n == 3) return -1;
    std::size_t colon = s.find(':');
    std::string_view part = s.substr(0, colon);
    // Every field after the first has two digits (2:00:00, not 2:0:0).
    if (n > 0 && part.size() != 2) return -1;
    parts[n++] = duration_number(part);
    if (parts[n - 1] < 0) return -1;
    if (colon == std::string_view::npos) break;
    s.remove_prefix(colon + 1);
  }
  if (n == 1) return -1;  // a plain number is handled by the unit form
  std::int64_t h = 0, m = 0, sec = 0;
  if (n == 2) {
    m = parts[0];
    sec = parts[1];
  } else {
    h = parts[0];
    m = parts[1];
    sec = parts[2];
  }
  if (sec > 59 || (n == 3 && m > 59)) return -1;
  if (h > max_duration_s || m > max_duration_s || days > max_duration_s) return -2;
  return days * 86400 + h * 3600 + m * 60 + sec;
}

// "1h30m", "45s", "2d", "90" (seconds): numbers each followed by a unit, in any order, once.
inline std::int64_t parse_unit_duration(std::string_view s) {
  std::int64_t total = 0;
  std::string seen;
  while (!s.empty()) {
    std::size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    if (digits == 0) return -1;
    std::int64_t v = duration_number(s.substr(0, digits));
    if (v < 0) return -2;
    if (v > max_duration_s) return -2;
    s.remove_prefix(digits);
    char unit = s.empty() ? 's' : s.front();
    if (!s.empty()) s.remove_prefix(1);
    if (seen.find(unit) != std::string::npos) return -1;
    seen += unit;
    std::int64_t mult = unit == 's'   ? 1
                        : unit == 'm' ? 60
                        : unit == 'h' ? 3600
                        : unit == 'd' ? 86400
                                      : 0;
    if (mult == 0) return -1;
    total += v * mult;
    if (total > max_duration_s) return -2;
  }
  return total;
}

}  // namespace detail

// Seconds in `text`, or an error that quotes it and lists the accepted forms. Zero is allowed
// (`--timeout 0`: look once); negative, empty, fractional and longer-than-1000-day durations
// are refused.
inline std::int64_t parse_duration(std::string_view text) {
  std::int64_t v = text.find(':') != std::string_view::npos ? detail::parse_clock_duration(text)
                                                            : detail::parse_unit_duration(text);
  if (text.empty()) v = -1;
  if (v == -2 || v > max_duration_s)
    throw error("duration " + detail::quote_for_message(std::string(text)) +
                ": longer than 1000 days");
  if (v < 0)
    throw error("duration " + detail::quote_for_message(std::string(text)) +
                ": expected e.g. 30s, 5m, 1h30m, 2d, 90 (seconds), 5:00, 2:00:00 or 1-00:00:00");
  return v;
}

// The short form for messages: "45s", "5m", "1h30m", "2d3h".
inline std::string format_duration(std::int64_t s) {
  if (s <= 0) return "0s";
  std::string out;
  const std::pair<std::int64_t, char> units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
  for (const auto& [size, unit] : units)
    if (s >= size) {
      out += std::to_string(s / size) + unit;
      s %= size;
    }
  return out;
}

}  // namespace leaseq
