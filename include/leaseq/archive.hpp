#pragma once

// The archive of ended tasks (protocol version 4): `leaseq clean` moves results out of done/
// into runs/<lease>/archive/, so a lease with a million finished tasks lists few files again.
//
// One file per clean run, archive/<YYYY-MM>-<host>-<pid>-<random>.jsonl, published complete
// with a no-replace rename (or link) and never written again: two cleans, even on clients whose
// locks do not see each other, each publish their own file. Its first line is a header (counts
// and id ranges per state): a reader's scan reads only that line, and only for files it has
// not seen (a file never changes, so the directory's stamp says when to look). Each further
// line is one result file's JSON on one line with `"ran_on": "<node>"` added.
//
// Crash safety: the archive file is fsync'd and published, and the directory fsync'd, before
// any live result is unlinked. A task both archived and live (a clean killed in between, or
// two cleans racing) is counted once, as the live one; a task in two archive files is counted
// once.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "leaseq/clock.hpp"
#include "leaseq/detail/dir.hpp"
#include "leaseq/detail/fault.hpp"
#include "leaseq/detail/posix.hpp"
#include "leaseq/detail/task_sax.hpp"
#include "leaseq/error.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/snapshot.hpp"

namespace leaseq {

inline constexpr int archive_format_version = 1;

// Consecutive sequence numbers archived with one state.
struct archive_range {
  std::int64_t lo = 0, hi = 0;  // inclusive
  task_state state = task_state::finished;
};

// What a scan keeps of one archive file: its header.
struct archive_file_summary {
  std::string name;
  std::size_t count = 0;
  double created = 0;
  std::vector<archive_range> ranges;  // sorted by lo, disjoint
};

// Every archive file of a lease, merged: a task archived twice counts once.
struct archive_index {
  std::vector<archive_file_summary> files;  // by name
  std::vector<archive_range> ranges;        // sorted, disjoint, across files
  std::array<std::size_t, task_state_count> counts{};
  std::size_t total = 0;

  const archive_range* find(std::int64_t seq) const {
    auto it = std::upper_bound(ranges.begin(), ranges.end(), seq,
                               [](std::int64_t s, const archive_range& r) { return s < r.lo; });
    if (it == ranges.begin()) return nullptr;
    --it;
    return seq <= it->hi ? &*it : nullptr;
  }
  bool contains(std::int64_t seq) const { return find(seq) != nullptr; }
};

// <YYYY-MM>-<host>-<pid>-<hex>.jsonl, or any name a reader may safely join: not a dot name,
// only A-Z a-z 0-9 . _ -, ending in .jsonl, at most 200 characters.
inline bool is_archive_file_name(std::string_view n) noexcept {
  constexpr std::string_view ext = ".jsonl";
  if (n.size() <= ext.size() || n.size() > 200 || n.front() == '.') return false;
  if (n.substr(n.size() - ext.size()) != ext) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  return true;
}

// Ranges of (seq, state) pairs sorted by seq, one pair per seq.
inline std::vector<archive_range> make_archive_ranges(
    const std::vector<std::pair<std::int64_t, task_state>>& sorted) {
  std::vector<archive_range> out;
  for (const auto& [seq, st] : sorted) {
    if (!out.empty() && out.back().state == st && out.back().hi + 1 == seq)
      out.back().hi = seq;
    else
      out.push_back({seq, seq, st});
  }
  return out;
}

inline std::string archive_header_line(const std::string& lease_id, double created,
                                       const std::string& host,
                                       const std::vector<archive_range>& ranges,
                                       std::size_t count) {
  json by_state = json::object();
  for (const auto& r : ranges) {
    json& a = by_state[std::string(to_string(r.state))];
    if (a.is_null()) a = json::array();
    a.push_back(json::array({r.lo, r.hi}));
  }
  json h = {{"leaseq_archive", archive_format_version},
            {"lease", lease_id},
            {"created", created},
            {"host", host},
            {"count", count},
            {"ranges", by_state}};
  return h.dump() + "\n";
}

// The header of an archive file; nullopt (with why) when it is not one.
inline std::optional<archive_file_summary> parse_archive_header(std::string_view line,
                                                                std::string& why) {
  json_outcome j = parse_json_tolerant(line);
  if (!j.ok()) {
    why = j.reason;
    return std::nullopt;
  }
  const json& h = *j.value;
  if (!h.is_object() || !h.contains("leaseq_archive") || !h["leaseq_archive"].is_number_integer()) {
    why = "its first line is not an archive header";
    return std::nullopt;
  }
  if (h["leaseq_archive"].get<std::int64_t>() > archive_format_version) {
    why = "archive format newer than this leaseq knows";
    return std::nullopt;
  }
  archive_file_summary s;
  if (auto c = h.find("created"); c != h.end() && c->is_number()) s.created = c->get<double>();
  auto rs = h.find("ranges");
  if (rs == h.end() || !rs->is_object()) {
    why = "its header has no ranges";
    return std::nullopt;
  }
  for (const auto& [state, list] : rs->items()) {
    auto st = parse_task_state(state);
    if (!st || !is_done(*st) || !list.is_array()) {
      why = "its header names state " + detail::quote_for_message(state);
      return std::nullopt;
    }
    for (const auto& p : list) {
      if (!p.is_array() || p.size() != 2 || !p[0].is_number_integer() ||
          !p[1].is_number_integer() || p[0].get<std::int64_t>() < 1 ||
          p[1].get<std::int64_t>() < p[0].get<std::int64_t>()) {
        why = "its header has a bad range";
        return std::nullopt;
      }
      s.ranges.push_back({p[0].get<std::int64_t>(), p[1].get<std::int64_t>(), *st});
    }
  }
  std::sort(s.ranges.begin(), s.ranges.end(),
            [](const archive_range& a, const archive_range& b) { return a.lo < b.lo; });
  for (std::size_t i = 1; i < s.ranges.size(); ++i)
    if (s.ranges[i].lo <= s.ranges[i - 1].hi) {
      why = "its header has overlapping ranges";
      return std::nullopt;
    }
  for (const auto& r : s.ranges) s.count += static_cast<std::size_t>(r.hi - r.lo + 1);
  return s;
}

// Merges the files' ranges; where files overlap (two cleans of the same task) the first file
// in name order gives the state.
inline archive_index merge_archive_files(std::vector<archive_file_summary> files) {
  archive_index idx;
  std::sort(
      files.begin(), files.end(),
      [](const archive_file_summary& a, const archive_file_summary& b) { return a.name < b.name; });
  std::vector<archive_range> all;
  for (const auto& f : files) all.insert(all.end(), f.ranges.begin(), f.ranges.end());
  std::stable_sort(all.begin(), all.end(),
                   [](const archive_range& a, const archive_range& b) { return a.lo < b.lo; });
  for (archive_range r : all) {
    if (!idx.ranges.empty()) {
      archive_range& last = idx.ranges.back();
      if (r.lo <= last.hi) r.lo = last.hi + 1;  // already covered up to last.hi
      if (r.lo > r.hi) continue;
      if (last.state == r.state && last.hi + 1 == r.lo) {
        last.hi = r.hi;
        continue;
      }
    }
    idx.ranges.push_back(r);
  }
  for (const auto& r : idx.ranges) {
    auto n = static_cast<std::size_t>(r.hi - r.lo + 1);
    idx.counts[state_index(r.state)] += n;
    idx.total += n;
  }
  idx.files = std::move(files);
  return idx;
}

namespace detail {

// The first line of a file (without the newline), read through one open without following a
// link and refusing anything but a regular file; at most max_bytes.
inline read_outcome read_first_line(const fs::path& path, std::size_t max_bytes) {
  read_outcome out;
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    out.err = errno;
    out.reason = std::strerror(errno);
    return out;
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    out.reason = "not a regular file";
    return out;
  }
  char buf[65536];
  while (out.content.size() < max_bytes) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out.err = errno;
      out.reason = std::strerror(errno);
      return out;
    }
    if (n == 0) break;
    std::string_view chunk(buf, static_cast<std::size_t>(n));
    if (auto nl = chunk.find('\n'); nl != std::string_view::npos) {
      out.content.append(chunk.substr(0, nl));
      out.ok = true;
      return out;
    }
    out.content.append(chunk);
  }
  out.reason = "no complete header line";
  return out;
}

}  // namespace detail

// Reads every record of one archive file, calling fn(task_view&&) per record that parses;
// returns the number of lines that did not.
template <typename Fn>
std::size_t read_archive_records(const fs::path& path, Fn&& fn) {
  detail::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) throw io_error("cannot open", path.string(), errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    throw error(path.string() + " is not a regular file");
  std::string pending;
  std::size_t bad = 0;
  bool header = true;
  auto line = [&](std::string_view l) {
    if (header) {
      header = false;
      return;
    }
    if (l.empty()) return;
    auto res = std::make_shared<task_result>();
    if (!detail::task_sax::parse_result(l, *res)) {
      json_outcome j = parse_json_tolerant(l);
      try {
        if (!j.ok()) throw format_error(j.reason);
        from_json(*j.value, *res);
      } catch (const std::exception&) {
        ++bad;
        return;
      }
    }
    auto seq = task_seq(res->task.id);
    if (!seq) {
      ++bad;
      return;
    }
    task_view v;
    v.id = res->task.id;
    v.seq = *seq;
    v.state = res->state;
    if (auto it = res->task.extra.find("ran_on"); res->task.extra.is_object() &&
                                                  it != res->task.extra.end() && it->is_string() &&
                                                  is_valid_node(it->get<std::string>()))
      v.node = it->get<std::string>();
    v.spec = std::shared_ptr<const task_spec>(res, &res->task);
    v.result = std::move(res);
    fn(std::move(v));
  };
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw io_error("cannot read", path.string(), errno);
    if (n == 0) break;
    std::string_view chunk(buf, static_cast<std::size_t>(n));
    std::size_t at = 0;
    for (std::size_t nl; (nl = chunk.find('\n', at)) != std::string_view::npos; at = nl + 1) {
      if (pending.empty()) {
        line(chunk.substr(at, nl - at));
      } else {
        pending.append(chunk.substr(at, nl - at));
        line(pending);
        pending.clear();
      }
    }
    pending.append(chunk.substr(at));
    if (pending.size() > max_json_bytes) throw error(path.string() + ": a record is too long");
  }
  if (!pending.empty()) line(pending);
  return bad;
}

// The archived tasks of a lease as a snapshot of their own (`tasks --archived`, the dashboard's
// archived list): every record of every archive file `live` knows, read in full only here; a
// task also still live, or in two archive files, is listed once, by seq. `bad` counts the
// records that did not read, per file.
inline std::shared_ptr<const snapshot> archived_snapshot(
    const lease_paths& lease, const snapshot& live,
    const std::function<void(const fs::path&, std::size_t)>& bad = {}) {
  auto out = std::make_shared<snapshot>(live);
  auto table = std::make_shared<std::vector<task_view>>();
  if (live.archive) {
    std::unordered_set<std::int64_t> seen;
    for (const auto& f : live.archive->files) {
      fs::path path = lease.archive_dir() / f.name;
      std::size_t n = read_archive_records(path, [&](task_view&& v) {
        if (live.find_task(v.id) || !seen.insert(v.seq).second) return;
        table->push_back(std::move(v));
      });
      if (n > 0 && bad) bad(path, n);
    }
  }
  std::sort(table->begin(), table->end(),
            [](const task_view& a, const task_view& b) { return a.seq < b.seq; });
  out->task_table = std::move(table);
  return out;
}

// Whether any archive file of the lease holds task `id` (its header says so). For writers
// that must not take an archived task for a missing one (an idempotency key's task).
inline bool task_archived(const lease_paths& lease, const std::string& id) {
  auto seq = task_seq(id);
  if (!seq) return false;
  for (const std::string& n : detail::list_dir(lease.archive_dir().string()).names) {
    if (!is_archive_file_name(n)) continue;
    read_outcome r = detail::read_first_line(lease.archive_dir() / n, max_json_bytes);
    std::string why;
    auto h = r.ok ? parse_archive_header(r.content, why) : std::nullopt;
    if (h && merge_archive_files({*h}).contains(*seq)) return true;
  }
  return false;
}

// ---- writer ----

// One result file to archive: where it lies and what it says.
struct archive_candidate {
  std::string node;
  std::string id;
  std::int64_t seq = 0;
  task_state state = task_state::finished;
};

struct archive_outcome {
  std::string file;  // name in archive/, empty when nothing was written
  std::size_t archived = 0;
  std::size_t skipped = 0;          // results that vanished or changed before they were read
  std::uint64_t bytes_freed = 0;    // of results (and logs, unless kept) unlinked
  std::vector<std::string> errors;  // unlinks that failed (the task stays live: counted once)
};

namespace detail {

// A result file's bytes on one line: JSON keeps newlines only as whitespace (never inside a
// string), so they become spaces; "ran_on" is put first.
inline std::string archive_record_line(std::string_view raw, const std::string& node) {
  std::string out;
  out.reserve(raw.size() + node.size() + 16);
  std::size_t brace = raw.find('{');
  out += "{\"ran_on\":\"" + node + "\",";
  for (std::size_t i = brace + 1; i < raw.size(); ++i) {
    char c = raw[i];
    out += (c == '\n' || c == '\r') ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  out += '\n';
  return out;
}

inline std::string archive_file_name(double now) {
  std::time_t t = static_cast<std::time_t>(now);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char month[16];
  std::strftime(month, sizeof month, "%Y-%m", &tm);
  std::string host = short_hostname();
  if (!is_valid_node(host)) host = "host";
  return fmt::format("{}-{}-{}.jsonl", month, host, temp_suffix());
}

inline std::uint64_t unlink_counted(int dir_fd, const std::string& name, int& err) {
  struct stat st;
  std::uint64_t size = 0;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
    size = static_cast<std::uint64_t>(st.st_size);
  if (::unlinkat(dir_fd, name.c_str(), 0) != 0) {
    err = errno;
    return 0;
  }
  err = 0;
  return size;
}

}  // namespace detail

// Archives the given results: reads each, writes one archive file (fsync'd, published without
// replacing anything, directory fsync'd), then unlinks the results and, unless keep_logs, the
// tasks' logs. `already_archived` are live duplicates of archived tasks (a clean killed
// before its unlinks): their live files are only unlinked. Every directory is opened from the
// home without following a link (tree_guard.hpp). Fault point clean_kill_mid_unlink kills the
// process (SIGKILL) before an unlink, for the crash tests.
inline archive_outcome archive_results(const lease_paths& lease, const std::string& lease_id,
                                       std::vector<archive_candidate> tasks,
                                       const std::vector<archive_candidate>& already_archived,
                                       bool keep_logs, double now = unix_now()) {
  archive_outcome out;
  std::sort(tasks.begin(), tasks.end(),
            [](const archive_candidate& a, const archive_candidate& b) { return a.seq < b.seq; });
  std::string body;
  std::vector<std::pair<std::int64_t, task_state>> kept;
  std::vector<archive_candidate> to_unlink;
  for (const auto& t : tasks) {
    fs::path p = lease.result(t.node, t.id);
    read_outcome r = detail::read_regular_file(p, max_json_bytes, nullptr);
    task_result res;
    if (!r.ok || !detail::task_sax::parse_result(r.content, res) || res.task.id != t.id ||
        !is_done(res.state) || r.content.find('{') == std::string::npos) {
      ++out.skipped;
      continue;
    }
    body += detail::archive_record_line(r.content, t.node);
    kept.emplace_back(t.seq, res.state);
    to_unlink.push_back(t);
  }
  if (!kept.empty()) {
    std::string header = archive_header_line(lease_id, now, short_hostname(),
                                             make_archive_ranges(kept), kept.size());
    detail::unique_fd dir = open_lease_dir(lease, lease.archive_dir());
    std::string name = detail::archive_file_name(now);
    std::string tmp = "." + name + ".tmp";
    detail::unique_fd fd(::openat(dir.get(), tmp.c_str(),
                                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) throw io_error("cannot create", (lease.archive_dir() / tmp).string(), errno);
    bool ok = detail::write_all(fd.get(), header.data(), header.size()) &&
              detail::write_all(fd.get(), body.data(), body.size()) && ::fsync(fd.get()) == 0;
    int e = errno;
    fd.reset();
    if (!ok) {
      ::unlinkat(dir.get(), tmp.c_str(), 0);
      throw io_error("cannot write", (lease.archive_dir() / tmp).string(), e);
    }
    if (!publish_exclusive(dir.get(), tmp, name, lease.archive_dir())) {
      ::unlinkat(dir.get(), tmp.c_str(), 0);
      throw error("archive file " + (lease.archive_dir() / name).string() + " exists already");
    }
    ::fsync(dir.get());  // the archive is durable before any live file goes
    out.file = name;
    out.archived = kept.size();
  }
  to_unlink.insert(to_unlink.end(), already_archived.begin(), already_archived.end());
  std::vector<std::string> nodes;
  for (const auto& t : to_unlink) nodes.push_back(t.node);
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  for (const std::string& node : nodes) {
    detail::unique_fd done = open_lease_dir(lease, lease.done(node));
    detail::unique_fd logs;
    if (!keep_logs && fs::is_directory(lease.logs(node)))
      logs = open_lease_dir(lease, lease.logs(node));
    for (const auto& t : to_unlink) {
      if (t.node != node) continue;
      if (fault_hit(fault_point::clean_kill_mid_unlink)) ::kill(::getpid(), SIGKILL);
      int err = 0;
      out.bytes_freed += detail::unlink_counted(done.get(), t.id + ".result.json", err);
      if (err != 0 && err != ENOENT)
        out.errors.push_back(fmt::format("cannot remove {}: {}", lease.result(node, t.id).string(),
                                         std::strerror(err)));
      if (logs && err == 0)
        for (const char* ext : {".out", ".err", ".exit"})
          out.bytes_freed += detail::unlink_counted(logs.get(), t.id + ext, err);
    }
    ::fsync(done.get());
    if (logs) ::fsync(logs.get());
  }
  return out;
}

}  // namespace leaseq
