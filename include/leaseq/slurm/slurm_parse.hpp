#pragma once

// Pure parsers for what Slurm's commands print: squeue lines in leaseq's format, `scontrol show
// job` records, and time strings. No I/O here; the adapter (slurm.hpp) runs the commands.
// Every text field that comes out is valid UTF-8 (invalid bytes become U+FFFD): job names and
// reasons are whatever bytes a user put there, and they end up in JSON (the state cache,
// `--json` outputs), which only holds UTF-8. Control characters are kept: the display
// sanitizes them.

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "leaseq/detail/exact_bytes.hpp"
#include "leaseq/detail/strings.hpp"

namespace leaseq {

// The squeue format leaseq asks for: id, state, reason, time left, time limit, node count,
// node list, start time, then the job name last, because only the name may contain '|'.
inline constexpr std::string_view squeue_format = "%i|%T|%r|%L|%l|%D|%N|%S|%j";

// What Slurm prints when it has forgotten a job (after MinJobAge) or never knew it.
inline constexpr std::string_view slurm_invalid_job_id = "Invalid job id specified";

// A duration as Slurm prints it: UNLIMITED, NOT_SET, INVALID, or a number of seconds.
struct slurm_duration {
  enum class kind { seconds, unlimited, not_set, invalid };
  kind k = kind::invalid;
  std::int64_t seconds = 0;
  bool has_seconds() const noexcept { return k == kind::seconds; }
  friend bool operator==(const slurm_duration& a, const slurm_duration& b) noexcept {
    return a.k == b.k && (a.k != kind::seconds || a.seconds == b.seconds);
  }
};

namespace detail {

inline std::optional<std::int64_t> parse_uint(std::string_view s) noexcept {
  if (s.empty() || s.size() > 12) return std::nullopt;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

inline std::vector<std::string_view> split(std::string_view s, char sep, std::size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    auto p = s.find(sep);
    if (p == std::string_view::npos) break;
    parts.push_back(s.substr(0, p));
    s.remove_prefix(p + 1);
  }
  parts.push_back(s);
  return parts;
}

}  // namespace detail

// Parses Slurm's time forms: "UNLIMITED", "NOT_SET", "INVALID", "MM:SS", "H:MM:SS",
// "D-HH:MM:SS", and the input forms "D-HH", "D-HH:MM" and plain minutes. Anything else is
// INVALID.
inline slurm_duration parse_slurm_duration(std::string_view text) noexcept {
  using k = slurm_duration::kind;
  std::string_view s = detail::trim(text);
  if (s == "UNLIMITED" || s == "Partition_Limit") return {k::unlimited, 0};
  if (s == "NOT_SET" || s == "N/A" || s == "NONE") return {k::not_set, 0};
  if (s.empty() || s == "INVALID") return {k::invalid, 0};
  std::int64_t days = 0;
  bool has_days = false;
  if (auto dash = s.find('-'); dash != std::string_view::npos) {
    auto d = detail::parse_uint(s.substr(0, dash));
    if (!d) return {k::invalid, 0};
    days = *d;
    has_days = true;
    s.remove_prefix(dash + 1);
  }
  auto parts = detail::split(s, ':', 4);
  if (parts.size() > 3) return {k::invalid, 0};
  std::int64_t v[3] = {0, 0, 0};
  for (std::size_t i = 0; i < parts.size(); ++i) {
    auto n = detail::parse_uint(parts[i]);
    if (!n) return {k::invalid, 0};
    v[i] = *n;
  }
  std::int64_t secs = 0;
  if (has_days) {  // D-HH, D-HH:MM, D-HH:MM:SS
    secs = days * 86400 + v[0] * 3600 + v[1] * 60 + v[2];
  } else if (parts.size() == 3) {  // H:MM:SS
    secs = v[0] * 3600 + v[1] * 60 + v[2];
  } else if (parts.size() == 2) {  // MM:SS
    secs = v[0] * 60 + v[1];
  } else {  // minutes
    secs = v[0] * 60;
  }
  return {k::seconds, secs};
}

// Seconds as squeue prints them: M:SS, H:MM:SS or D-HH:MM:SS. Negative counts as 0.
inline std::string format_slurm_duration(std::int64_t secs) {
  if (secs < 0) secs = 0;
  std::int64_t d = secs / 86400, h = secs / 3600 % 24, m = secs / 60 % 60, s = secs % 60;
  if (d > 0) return fmt::format("{}-{:02}:{:02}:{:02}", d, h, m, s);
  if (h > 0) return fmt::format("{}:{:02}:{:02}", h, m, s);
  return fmt::format("{}:{:02}", m, s);
}

inline std::string format_slurm_duration(const slurm_duration& d) {
  switch (d.k) {
    case slurm_duration::kind::seconds:
      return format_slurm_duration(d.seconds);
    case slurm_duration::kind::unlimited:
      return "UNLIMITED";
    case slurm_duration::kind::not_set:
      return "NOT_SET";
    case slurm_duration::kind::invalid:
      return "INVALID";
  }
  return "INVALID";
}

// One job as squeue or scontrol describes it.
struct slurm_job {
  std::string id;
  std::string state;   // Slurm's word: RUNNING, PENDING, COMPLETED, ... kept verbatim
  std::string reason;  // "None" when Slurm gives none
  slurm_duration time_left;
  slurm_duration time_limit;
  std::optional<std::int64_t> nodes;
  std::string nodelist;
  std::string start_time;  // as Slurm prints it; "N/A" or "Unknown" when not known
  std::string name;
  std::string exit_code;  // scontrol only, "3:0"
};

// Slurm's job states that end a job. Anything else (PENDING, RUNNING, COMPLETING,
// CONFIGURING, SUSPENDED, REQUEUED, RESIZING, ...) may still change.
inline bool slurm_state_is_final(std::string_view state) noexcept {
  for (std::string_view s :
       {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
        "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"})
    if (state == s) return true;
  return false;
}

inline bool is_slurm_state_word(std::string_view s) noexcept {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || c == '_')) return false;
  return true;
}

struct squeue_parse {
  std::vector<slurm_job> jobs;
  std::vector<std::string> bad_lines;  // lines that are not in squeue_format
};

// Parses `squeue -h -o <squeue_format>` output.
inline squeue_parse parse_squeue(std::string_view text) {
  squeue_parse out;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (detail::trim(line).empty()) continue;
    auto f = detail::split(line, '|', 9);
    slurm_job j;
    if (f.size() != 9 || !detail::parse_uint(detail::trim(f[0])) ||
        !is_slurm_state_word(detail::trim(f[1]))) {
      out.bad_lines.push_back(detail::to_valid_utf8(line));
      continue;
    }
    j.id = std::string(detail::trim(f[0]));
    j.state = std::string(detail::trim(f[1]));
    j.reason = detail::to_valid_utf8(detail::trim(f[2]));
    j.time_left = parse_slurm_duration(f[3]);
    j.time_limit = parse_slurm_duration(f[4]);
    j.nodes = detail::parse_uint(detail::trim(f[5]));
    j.nodelist = detail::to_valid_utf8(detail::trim(f[6]));
    j.start_time = detail::to_valid_utf8(detail::trim(f[7]));
    j.name = detail::to_valid_utf8(f[8]);
    out.jobs.push_back(std::move(j));
  }
  return out;
}

// `scontrol show job` prints Key=Value pairs separated by blanks, several per line; a value may
// itself contain blanks (JobName, WorkDir), so a word without '=' continues the value before it.
inline std::map<std::string, std::string> parse_scontrol_pairs(std::string_view text) {
  std::map<std::string, std::string> kv;
  std::string* last = nullptr;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() &&
           (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
      ++i;
    std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t' && text[i] != '\n' &&
           text[i] != '\r')
      ++i;
    if (start == i) break;
    std::string_view word = text.substr(start, i - start);
    auto eq = word.find('=');
    bool is_key = eq != std::string_view::npos && eq > 0 &&
                  ((word[0] >= 'A' && word[0] <= 'Z') || (word[0] >= 'a' && word[0] <= 'z'));
    for (std::size_t c = 0; is_key && c < eq; ++c) {
      char ch = word[c];
      if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '_' || ch == ':' || ch == '/'))
        is_key = false;
    }
    if (is_key) {
      std::string key(word.substr(0, eq));
      if (kv.count(key)) {  // a repeated key (heterogeneous job records): keep the first
        last = nullptr;
        continue;
      }
      last = &(kv[key] = std::string(word.substr(eq + 1)));
    } else if (last) {
      // Blanks inside a value are single spaces in every field we read.
      *last += ' ';
      *last += word;
    }
  }
  return kv;
}

// Parses one `scontrol show job ID` record. nullopt when it holds no JobId or JobState.
inline std::optional<slurm_job> parse_scontrol_job(std::string_view text) {
  auto kv = parse_scontrol_pairs(text);
  auto get = [&](const char* k) -> std::string {
    auto it = kv.find(k);
    return it == kv.end() ? std::string() : detail::to_valid_utf8(it->second);
  };
  slurm_job j;
  j.id = get("JobId");
  j.state = get("JobState");
  if (!detail::parse_uint(j.id) || !is_slurm_state_word(j.state)) return std::nullopt;
  j.reason = get("Reason");
  if (j.reason.empty()) j.reason = "None";
  j.time_limit = parse_slurm_duration(get("TimeLimit"));
  // Time left is only meaningful while it runs: the limit minus the run time so far.
  auto run = parse_slurm_duration(get("RunTime"));
  if (j.state == "RUNNING" && j.time_limit.has_seconds() && run.has_seconds())
    j.time_left = {slurm_duration::kind::seconds,
                   std::max<std::int64_t>(0, j.time_limit.seconds - run.seconds)};
  else if (j.state == "RUNNING" || j.state == "PENDING")
    j.time_left = j.time_limit;
  else
    j.time_left = {slurm_duration::kind::not_set, 0};
  j.nodes = detail::parse_uint(get("NumNodes"));
  j.nodelist = get("NodeList");
  if (j.nodelist == "(null)") j.nodelist.clear();
  j.start_time = get("StartTime");
  j.name = get("JobName");
  j.exit_code = get("ExitCode");
  return j;
}

// True when a command's stderr (or stdout) says the job id is unknown to Slurm.
inline bool says_invalid_job_id(std::string_view text) noexcept {
  return text.find(slurm_invalid_job_id) != std::string_view::npos;
}

// The job id from `sbatch --parsable` output: "123" or "123;cluster".
inline std::optional<std::string> parse_sbatch_parsable(std::string_view out) {
  std::string_view s = detail::trim(out);
  // sbatch may print warnings before the id; the id is on the last line.
  if (auto nl = s.rfind('\n'); nl != std::string_view::npos) s = s.substr(nl + 1);
  s = s.substr(0, s.find(';'));
  s = detail::trim(s);
  if (!detail::parse_uint(s)) return std::nullopt;
  return std::string(s);
}

}  // namespace leaseq
