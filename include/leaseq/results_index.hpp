#pragma once

// The results index (protocol 5): done/<node>/.results, one line per result the node's runner
// committed, appended only once the result file is durable. A reader that counts (status)
// takes a result's state from its line instead of opening and parsing the file.
//
// The file is a hint; the result files stay the truth. A line counts only when it is whole
// (newline-terminated), well-formed, its checksum holds, and the listing of done/<node>/ shows
// its result file with the inode the line names. Anything else (a torn or garbled line, an
// entry whose file is gone or was replaced, a result no line names, two lines that disagree)
// leaves that result to be parsed as before. Its name starts with '.', so readers of protocol
// versions 1 to 4 never list it.
//
// A line: `<id> <state> <exit code or -> <inode> <checksum>\n`, e.g.
// `T014 FINISHED 0 1183042 5f0e23c1`; the checksum is FNV-1a 32 of the bytes before its space,
// as 8 lowercase hex digits (a torn write glued to the next line fails it).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "leaseq/detail/posix.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"

namespace leaseq {

inline constexpr std::string_view results_index_name = ".results";
// Longer lines are garbage: the longest well-formed one is about 70 bytes.
inline constexpr std::size_t results_index_max_line = 128;

struct results_index_entry {
  std::int64_t seq = 0;
  std::uint64_t ino = 0;
  task_state state = task_state::finished;
  std::optional<int> exit_code;
};

namespace detail {

inline std::uint32_t fnv1a32(std::string_view s) noexcept {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

// Digits only, no sign, no leading '+', at most `max_digits`.
inline std::optional<std::uint64_t> parse_decimal(std::string_view s, std::size_t max_digits) {
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

}  // namespace detail

inline std::string format_results_index_line(std::int64_t seq, task_state state,
                                             std::optional<int> exit_code, std::uint64_t ino) {
  std::string body = fmt::format("{} {} {} {}", format_task_id(seq), to_string(state),
                                 exit_code ? std::to_string(*exit_code) : std::string("-"), ino);
  return fmt::format("{} {:08x}\n", body, detail::fnv1a32(body));
}

// One line without its newline; nullopt unless every field is well-formed and the checksum holds.
inline std::optional<results_index_entry> parse_results_index_line(std::string_view line) {
  if (line.size() > results_index_max_line) return std::nullopt;
  std::size_t last = line.rfind(' ');
  if (last == std::string_view::npos || line.size() - last - 1 != 8) return std::nullopt;
  std::string_view body = line.substr(0, last);
  if (fmt::format("{:08x}", detail::fnv1a32(body)) != line.substr(last + 1)) return std::nullopt;
  std::string_view f[4];
  std::size_t n = 0, start = 0;
  for (std::size_t i = 0; i <= body.size(); ++i) {
    if (i < body.size() && body[i] != ' ') continue;
    if (n == 4) return std::nullopt;
    f[n++] = body.substr(start, i - start);
    start = i + 1;
  }
  if (n != 4) return std::nullopt;
  results_index_entry e;
  auto seq = task_seq(f[0]);
  auto state = parse_task_state(f[1]);
  auto ino = detail::parse_decimal(f[3], 20);
  if (!seq || !state || !is_done(*state) || !ino || *ino == 0) return std::nullopt;
  if (f[2] != "-") {
    bool neg = !f[2].empty() && f[2][0] == '-';
    auto v = detail::parse_decimal(neg ? f[2].substr(1) : f[2], 10);
    if (!v || *v > 2147483647u) return std::nullopt;
    e.exit_code = neg ? -static_cast<int>(*v) : static_cast<int>(*v);
  }
  e.seq = *seq;
  e.ino = *ino;
  e.state = *state;
  return e;
}

// The lines of an index a reader may use, sorted by seq, one per seq. `starts_mid_line`: the
// text is the tail of a bigger file, so its first line is a fragment. Of several lines for one
// seq, the last names the newest file; if lines for that file disagree, none is used.
inline std::vector<results_index_entry> parse_results_index(std::string_view text,
                                                            bool starts_mid_line) {
  std::vector<results_index_entry> all;
  all.reserve(text.size() / 40);
  std::size_t pos = 0;
  if (starts_mid_line) {
    std::size_t nl = text.find('\n');
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
  }
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) break;  // torn last line: not whole yet
    if (auto e = parse_results_index_line(text.substr(pos, nl - pos))) all.push_back(*e);
    pos = nl + 1;
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.seq < b.seq; });
  std::vector<results_index_entry> out;
  out.reserve(all.size());
  for (std::size_t i = 0; i < all.size();) {
    std::size_t j = i;
    while (j < all.size() && all[j].seq == all[i].seq) ++j;
    const results_index_entry& newest = all[j - 1];
    bool agree = std::all_of(all.begin() + static_cast<std::ptrdiff_t>(i),
                             all.begin() + static_cast<std::ptrdiff_t>(j), [&](const auto& e) {
                               return e.ino != newest.ino ||
                                      (e.state == newest.state && e.exit_code == newest.exit_code);
                             });
    if (agree) out.push_back(newest);
    i = j;
  }
  return out;
}

// The entry for seq that names the inode the listing shows, or null.
inline const results_index_entry* find_results_index_entry(
    const std::vector<results_index_entry>& index, std::int64_t seq, std::uint64_t ino) {
  auto it =
      std::lower_bound(index.begin(), index.end(), seq,
                       [](const results_index_entry& e, std::int64_t s) { return e.seq < s; });
  return it != index.end() && it->seq == seq && it->ino == ino ? &*it : nullptr;
}

// How much of an index a reader of a directory of `results` result files reads: enough for a
// line per result with room to spare. A bigger file (lines of tasks `leaseq clean` archived
// since) is read from its end, where the newest lines are.
inline std::size_t results_index_read_limit(std::size_t results) {
  return (results + 1024) * 96;
}

// Appends the line for a result that is durable at `result_path` (done/<node>/<id>.result.json)
// to its directory's index. Only the runner of that node calls it (one runner per node), so
// O_APPEND alone orders the lines. A previous write torn by a crash is ended with a newline
// first, so it costs only its own line. Never through a symlink. False when it could not be
// written: the result is then parsed by readers, as any result without a line.
inline bool append_results_index(const fs::path& result_path, std::int64_t seq, task_state state,
                                 std::optional<int> exit_code) {
  struct stat st;
  if (::lstat(result_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  fs::path index = result_path.parent_path() / std::string(results_index_name);
  detail::unique_fd fd(
      ::open(index.c_str(), O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  struct stat ist;
  if (!fd || ::fstat(fd.get(), &ist) != 0 || !S_ISREG(ist.st_mode)) return false;
  std::string line =
      format_results_index_line(seq, state, exit_code, static_cast<std::uint64_t>(st.st_ino));
  char last = '\n';
  if (ist.st_size > 0 && ::pread(fd.get(), &last, 1, ist.st_size - 1) != 1) last = '\n';
  if (last != '\n') line.insert(line.begin(), '\n');
  return detail::write_all(fd.get(), line.data(), line.size());
}

}  // namespace leaseq
