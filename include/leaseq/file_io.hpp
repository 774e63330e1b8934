#pragma once

#include <fcntl.h>
#include <stdio.h>  // renameat2, RENAME_NOREPLACE (glibc 2.28)
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "leaseq/detail/posix.hpp"
#include "leaseq/error.hpp"

namespace leaseq {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Largest JSON file a reader accepts; a bigger one is reported, never loaded.
inline constexpr std::size_t max_json_bytes = 16u << 20;
// Deepest nesting a reader accepts (no protocol file nests more than 3).
inline constexpr int max_json_depth = 64;

// mkdir -p with the given mode for the directories it creates.
inline void ensure_dir(const fs::path& dir, mode_t mode = 0700) {
  if (dir.empty()) return;
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return;
    throw io_error("not a directory", dir.string(), ENOTDIR);
  }
  if (dir.has_parent_path() && dir.parent_path() != dir) ensure_dir(dir.parent_path(), mode);
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST)
    throw io_error("cannot create directory", dir.string(), errno);
}

namespace detail {

inline std::string temp_suffix() {
  static std::atomic<std::uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}.{}.{:x}", ::getpid(), counter++, rng() & 0xffffffu);
}

inline void fsync_dir(const fs::path& dir) {
  unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd) ::fsync(fd.get());  // best effort: some filesystems refuse fsync on directories
}

}  // namespace detail

namespace detail {

// Creates tmp (O_EXCL|O_NOFOLLOW, so a planted symlink is never written through) with content,
// fsync'd when `durable`. On failure nothing is left and io_error is thrown.
inline void write_new_file(const fs::path& tmp, std::string_view content, mode_t mode,
                           bool durable) {
  unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) throw io_error("cannot create", tmp.string(), errno);
  auto fail = [&](const char* what) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw io_error(what, tmp.string(), e);
  };
  if (!write_all(fd.get(), content.data(), content.size())) fail("cannot write");
  if (durable && ::fsync(fd.get()) != 0) fail("cannot fsync");
  if (::close(fd.release()) != 0) fail("cannot close");
}

// The temp name replace_file() writes path under: starts with '.', so readers skip it.
inline fs::path temp_name_for(const fs::path& path, const std::string& suffix) {
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  return dir / ("." + path.filename().string() + ".tmp." + suffix);
}

// Writes content under a temp name in path's directory (write_new_file), and renames it onto
// path. On failure the temp file is removed and io_error thrown.
inline void replace_file(const fs::path& path, std::string_view content, const std::string& suffix,
                         mode_t mode, bool durable) {
  fs::path tmp = temp_name_for(path, suffix);
  write_new_file(tmp, content, mode, durable);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw io_error("cannot rename onto final name", path.string(), e);
  }
}

}  // namespace detail

// Writes content to a temp name starting with '.' in the same directory, fsyncs it, renames
// it onto path and fsyncs the directory: readers see the old file or the new one, never half.
// sync_dir=false skips the directory fsync (the file itself is still fsync'd before the
// rename): for files the runner writes per task or every few seconds (result, heartbeat),
// where one more fsync per file would halve throughput.
inline void write_file_atomic(const fs::path& path, std::string_view content, mode_t mode = 0600,
                              bool sync_dir = true) {
  detail::replace_file(path, content, detail::temp_suffix(), mode, true);
  if (sync_dir) detail::fsync_dir(path.has_parent_path() ? path.parent_path() : fs::path("."));
}

// Temp file + rename, without fsync: still never seen half-written by a reader, but not
// durable across a power loss by itself. For files that are cheap to lose or that the caller
// makes durable another way (the runner's claimed-file rewrite only adds "claimed" and "pid"
// to a task that is already durable). `suffix` makes the temp name unique; by default pid +
// counter + random.
inline void write_file_atomic_nosync(const fs::path& path, std::string_view content,
                                     const std::string& suffix = detail::temp_suffix(),
                                     mode_t mode = 0600) {
  detail::replace_file(path, content, suffix, mode, false);
}

// How every protocol JSON file is laid out on disk: indented, one trailing newline.
inline std::string json_file_text(const json& value) {
  return value.dump(2) + "\n";
}

inline void write_json_atomic(const fs::path& path, const json& value, mode_t mode = 0600,
                              bool sync_dir = true) {
  write_file_atomic(path, json_file_text(value), mode, sync_dir);
}

// Whether an exclusive create (link, O_EXCL, RENAME_NOREPLACE) failed because the name exists.
// sshfs speaks SFTP v3, which has no "file exists" status: a name this client's cache does not
// know but the server has comes back as EPERM. In a lease tree (one owner, mode 0700) EPERM
// has no other cause for these calls.
inline bool name_taken(int err) noexcept {
  return err == EEXIST || err == EPERM;
}

// Creates path only if it does not exist yet (O_EXCL), with the content written and fsync'd
// under a temp name first and then link()ed, so it is never seen half-written.
// Returns false when the path already existed.
inline bool create_file_exclusive(const fs::path& path, std::string_view content,
                                  mode_t mode = 0600) {
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  fs::path tmp = dir / ("." + path.filename().string() + ".tmp." + detail::temp_suffix());
  detail::unique_fd fd(
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) throw io_error("cannot create", tmp.string(), errno);
  bool ok = detail::write_all(fd.get(), content.data(), content.size()) && ::fsync(fd.get()) == 0;
  int e = errno;
  fd.reset();
  if (!ok) {
    ::unlink(tmp.c_str());
    throw io_error("cannot write", tmp.string(), e);
  }
  int rc = ::link(tmp.c_str(), path.c_str());
  e = errno;
  ::unlink(tmp.c_str());
  if (rc != 0) {
    if (name_taken(e)) return false;
    throw io_error("cannot create", path.string(), e);
  }
  detail::fsync_dir(dir);
  return true;
}

// Moves the complete file `temp` onto `final_name` (both relative to dir_fd) only if no file
// of that name exists: renameat2(RENAME_NOREPLACE), or link + unlink where the filesystem has
// no such rename. Either way the server decides, so two clients can never both publish one
// name, whatever their caches show. Returns false (temp left in place) when the name is taken.
inline bool publish_exclusive(int dir_fd, const std::string& temp, const std::string& final_name,
                              const fs::path& dir_for_errors) {
  if (::renameat2(dir_fd, temp.c_str(), dir_fd, final_name.c_str(), RENAME_NOREPLACE) == 0)
    return true;
  int e = errno;
  if (name_taken(e)) return false;
  if (e != EINVAL && e != ENOSYS && e != ENOTSUP && e != EOPNOTSUPP)
    throw io_error("cannot publish", (dir_for_errors / final_name).string(), e);
  if (::linkat(dir_fd, temp.c_str(), dir_fd, final_name.c_str(), 0) != 0) {
    e = errno;
    if (name_taken(e)) return false;
    throw io_error("cannot publish", (dir_for_errors / final_name).string(), e);
  }
  ::unlinkat(dir_fd, temp.c_str(), 0);
  return true;
}

// What a tolerant read saw. `ok` false means "not visible yet": the reason says why
// (missing, permission, too large, truncated or invalid JSON), the caller keeps its last view.
struct read_outcome {
  bool ok = false;
  int err = 0;  // errno when the OS refused, 0 otherwise
  std::string reason;
  std::string content;
};

struct json_outcome {
  std::optional<json> value;
  int err = 0;
  std::string reason;
  bool ok() const noexcept { return value.has_value(); }
};

namespace detail {

// Opens a file to read it, with O_NOATIME where the caller owns it: a reader leaves no trace,
// so a dashboard that reads every rewritten heartbeat each second does not dirty (and, on a
// journalling filesystem, log) each one's inode again. A file of another owner refuses the
// flag (EPERM): it is opened without it, and from then on so is every file.
inline int open_for_reading(const char* path) {
  constexpr int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
  static std::atomic<bool> noatime_refused{false};
  if (!noatime_refused.load(std::memory_order_relaxed)) {
    int fd = ::open(path, flags | O_NOATIME);
    if (fd >= 0 || errno != EPERM) return fd;
    noatime_refused.store(true, std::memory_order_relaxed);
  }
  return ::open(path, flags);
}

// The one reader of whole files (read_file_tolerant, posix_fs::read): a regular file of at most
// max_bytes, read through a single open so a rename mid-read cannot mix two files. Never throws
// for I/O problems; refuses FIFOs and devices (a reader must never block on or stream from
// one). `st`, when given, receives the opened file's fstat (st->st_ino stays 0 when none).
inline read_outcome read_regular_file(const fs::path& path, std::size_t max_bytes,
                                      struct stat* st_out) {
  read_outcome out;
  detail::unique_fd fd(open_for_reading(path.c_str()));
  if (!fd) {
    out.err = errno;
    out.reason = errno == ENOENT ? "missing" : std::string("cannot open: ") + std::strerror(errno);
    return out;
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    out.err = errno;
    out.reason = std::string("cannot stat: ") + std::strerror(errno);
    return out;
  }
  if (st_out) *st_out = st;
  if (!S_ISREG(st.st_mode)) {
    out.reason = "not a regular file";
    return out;
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    out.reason = fmt::format("too large ({} bytes, limit {})", st.st_size, max_bytes);
    return out;
  }
  // One byte more than the size: a read that fills less is the end, without a second call.
  out.content.resize(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t got = 0;
  for (;;) {
    if (got == out.content.size()) out.content.resize(got + 4096);  // it grew meanwhile
    std::size_t want = out.content.size() - got;
    ssize_t n = detail::read_retry(fd.get(), out.content.data() + got, want);
    if (n < 0) {
      out.err = errno;
      out.reason = std::string("cannot read: ") + std::strerror(errno);
      out.content.clear();
      return out;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
    if (got > max_bytes) {
      out.reason = fmt::format("too large (over {} bytes)", max_bytes);
      out.content.clear();
      return out;
    }
    if (static_cast<std::size_t>(n) < want) break;  // a short read of a regular file: EOF
  }
  out.content.resize(got);
  out.ok = true;
  return out;
}

}  // namespace detail

// Reads a whole regular file of at most max_bytes (detail::read_regular_file).
inline read_outcome read_file_tolerant(const fs::path& path, std::size_t max_bytes) {
  return detail::read_regular_file(path, max_bytes, nullptr);
}

namespace detail {

// Deepest bracket nesting outside strings; stops counting past limit.
inline int json_depth(std::string_view text, int limit) noexcept {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth && (max_depth = depth) > limit) return max_depth;
    } else if (c == ']' || c == '}')
      --depth;
  }
  return max_depth;
}

}  // namespace detail

// Parses JSON text with the reader's limits; never throws.
inline json_outcome parse_json_tolerant(std::string_view text) {
  json_outcome out;
  if (text.empty()) {
    out.reason = "empty file (being written?)";
    return out;
  }
  if (detail::json_depth(text, max_json_depth) > max_json_depth) {
    out.reason = fmt::format("nested deeper than {} levels", max_json_depth);
    return out;
  }
  json v = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) {
    out.reason = "invalid or truncated JSON";
    return out;
  }
  out.value = std::move(v);
  return out;
}

inline json_outcome read_json_tolerant(const fs::path& path,
                                       std::size_t max_bytes = max_json_bytes) {
  read_outcome raw = read_file_tolerant(path, max_bytes);
  if (!raw.ok) {
    json_outcome out;
    out.err = raw.err;
    out.reason = raw.reason;
    return out;
  }
  return parse_json_tolerant(raw.content);
}

}  // namespace leaseq
