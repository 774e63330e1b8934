#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "leaseq/detail/quote.hpp"
#include "leaseq/error.hpp"

namespace leaseq {

// A name from disk, argv or the keyboard that breaks its rule. The message names the value
// (escaped) and the rule, so the user sees exactly what was refused and why.
class name_error : public error {
 public:
  name_error(std::string_view kind, std::string_view value, std::string_view rule)
      : error("invalid " + std::string(kind) + " " + detail::quote_for_message(value) + ": " +
              std::string(rule)) {}
};

// The lane every runner of a lease may claim from.
inline constexpr std::string_view any_lane = "_any";

namespace detail {
inline bool is_alnum(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
inline bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}
inline bool all_digits(std::string_view s) noexcept {
  for (char c : s)
    if (!is_digit(c)) return false;
  return !s.empty();
}
}  // namespace detail

inline constexpr std::string_view node_rule =
    "a node name is 1-63 characters of [A-Za-z0-9._-] starting with a letter or digit";
inline constexpr std::string_view task_id_rule =
    "a task id is T followed by its sequence number, zero-padded to at least 3 digits (T001, "
    "T1000)";
inline constexpr std::string_view lease_id_rule =
    "a lease id is a Slurm job id (digits) or local:<hostname>";
inline constexpr std::string_view lease_name_rule =
    "a lease name is 1-64 characters of [A-Za-z0-9._-] or spaces, starting with a letter or "
    "digit";
inline constexpr std::string_view label_rule =
    "a label is 1-64 characters of [A-Za-z0-9._:-] starting with a letter or digit";
inline constexpr std::string_view key_rule =
    "an idempotency key is 1-128 characters of [A-Za-z0-9._:@+=-] starting with a letter or digit";

// [A-Za-z0-9][A-Za-z0-9._-]{0,62}. `_any` does not match (it starts with '_').
inline bool is_valid_node(std::string_view s) noexcept {
  if (s.empty() || s.size() > 63 || !detail::is_alnum(s[0])) return false;
  for (char c : s)
    if (!detail::is_alnum(c) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

// A node name or the shared lane `_any`.
inline bool is_valid_lane(std::string_view s) noexcept {
  return s == any_lane || is_valid_node(s);
}

// Canonical form only: "T" + digits, at least 3, no extra leading zeros beyond the padding.
inline bool is_valid_task_id(std::string_view s) noexcept {
  if (s.size() < 4 || s.size() > 19 || s[0] != 'T') return false;
  std::string_view digits = s.substr(1);
  if (!detail::all_digits(digits)) return false;
  return digits.size() == 3 || digits[0] != '0';
}

inline bool is_valid_lease_id(std::string_view s) noexcept {
  constexpr std::string_view local_prefix = "local:";
  if (s.substr(0, local_prefix.size()) == local_prefix)
    return is_valid_node(s.substr(local_prefix.size()));
  return s.size() <= 20 && detail::all_digits(s) && s[0] != '0';
}

// A lease's display name, also its Slurm job name (leaseq-<name>). ASCII only, so no name can
// carry a terminal escape, a C1 control or a bidi override into `lease ls` or squeue's output;
// spaces stay allowed ("my run"). Names read from index.json are not refused (that would hide
// the lease): every display sanitizes them.
inline bool is_valid_lease_name(std::string_view s) noexcept {
  if (s.empty() || s.size() > 64 || !detail::is_alnum(s[0])) return false;
  for (char c : s)
    if (!detail::is_alnum(c) && c != '.' && c != '_' && c != '-' && c != ' ') return false;
  return true;
}

inline bool is_valid_label(std::string_view s) noexcept {
  if (s.empty() || s.size() > 64 || !detail::is_alnum(s[0])) return false;
  for (char c : s)
    if (!detail::is_alnum(c) && c != '.' && c != '_' && c != ':' && c != '-') return false;
  return true;
}

inline bool is_valid_key(std::string_view s) noexcept {
  if (s.empty() || s.size() > 128 || !detail::is_alnum(s[0])) return false;
  for (char c : s) {
    bool ok = detail::is_alnum(c) || c == '.' || c == '_' || c == ':' || c == '@' || c == '+' ||
              c == '=' || c == '-';
    if (!ok) return false;
  }
  return true;
}

inline const std::string& check_node(const std::string& s) {
  if (!is_valid_node(s)) throw name_error("node name", s, node_rule);
  return s;
}
inline const std::string& check_lane(const std::string& s) {
  if (!is_valid_lane(s)) throw name_error("lane", s, std::string(node_rule) + ", or _any");
  return s;
}
inline const std::string& check_task_id(const std::string& s) {
  if (!is_valid_task_id(s)) throw name_error("task id", s, task_id_rule);
  return s;
}
inline const std::string& check_lease_id(const std::string& s) {
  if (!is_valid_lease_id(s)) throw name_error("lease id", s, lease_id_rule);
  return s;
}
inline const std::string& check_lease_name(const std::string& s) {
  if (!is_valid_lease_name(s)) throw name_error("lease name", s, lease_name_rule);
  return s;
}
inline const std::string& check_label(const std::string& s) {
  if (!is_valid_label(s)) throw name_error("label", s, label_rule);
  return s;
}
inline const std::string& check_key(const std::string& s) {
  if (!is_valid_key(s)) throw name_error("idempotency key", s, key_rule);
  return s;
}

inline std::string format_task_id(std::int64_t seq) {
  std::string digits = std::to_string(seq);
  if (digits.size() < 3) digits.insert(0, 3 - digits.size(), '0');
  return "T" + digits;
}

// The seq of a valid task id, or nullopt.
inline std::optional<std::int64_t> task_seq(std::string_view id) noexcept {
  if (!is_valid_task_id(id)) return std::nullopt;
  std::int64_t v = 0;
  for (char c : id.substr(1)) {
    if (v > (INT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

inline std::string local_lease_id(std::string_view hostname) {
  return "local:" + std::string(hostname);
}
inline bool is_local_lease(std::string_view lease_id) noexcept {
  return lease_id.substr(0, 6) == "local:";
}

}  // namespace leaseq
