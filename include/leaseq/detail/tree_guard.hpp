#pragma once

// Writers check that the directories they write into are real directories inside the lease
// tree: a directory below the lease root replaced by a symlink (or by a file) would send a
// rename, a log or an unlink somewhere else. The lease root itself may be a symlink (a home on
// another filesystem is common); only what lies below it is checked. This narrows the window,
// it cannot close it: a component swapped between the check and the write still wins, which
// is why final names are also opened with O_NOFOLLOW or replaced by rename.
//
// open_tree_dir() is the writers' side of the same rule, and it does close the window for the
// directories themselves: it walks from the anchor (the home) one component at a time with
// openat(O_NOFOLLOW|O_DIRECTORY), so the descriptor it returns is the real directory whatever
// is swapped afterwards. Every writer of the CLI and the library (submit, id reservations,
// keys, control files, lease.json) gets its directory from it.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "leaseq/detail/posix.hpp"
#include "leaseq/error.hpp"
#include "leaseq/file_io.hpp"

namespace leaseq::detail {

// Why dir cannot be written into safely, or nullopt when every existing component from below
// root down to dir is a real directory. Components that do not exist yet are fine: ensure_dir
// creates them as directories.
inline std::optional<std::string> unsafe_dir(const std::filesystem::path& root,
                                             const std::filesystem::path& dir) {
  std::filesystem::path rel = dir.lexically_relative(root);
  if (rel.empty() || *rel.begin() == "..")
    return dir.string() + " is not inside the lease tree " + root.string();
  std::filesystem::path cur = root;
  for (const auto& part : rel) {
    if (part == ".") continue;
    cur /= part;
    struct stat st;
    if (::lstat(cur.c_str(), &st) != 0) {
      if (errno == ENOENT) return std::nullopt;
      return cur.string() + ": cannot stat: " + std::strerror(errno);
    }
    if (S_ISLNK(st.st_mode))
      return cur.string() +
             " is a symbolic link; leaseq writes only into real directories of "
             "the lease tree";
    if (!S_ISDIR(st.st_mode)) return cur.string() + " is not a directory";
  }
  return std::nullopt;
}

// The message for a component that openat(O_NOFOLLOW|O_DIRECTORY) refused: names the symlink
// and where it points, so the user knows what was planted and what to remove.
inline std::string refused_component(int parent, const std::string& name,
                                     const std::filesystem::path& path) {
  struct stat st;
  if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = ::readlinkat(parent, name.c_str(), target, sizeof target - 1);
    std::string to = n >= 0 ? " -> " + std::string(target, static_cast<std::size_t>(n)) : "";
    return "refusing to write through the symbolic link " + path.string() + to +
           ": leaseq writes only into real directories of its tree (remove the link)";
  }
  return "refusing to write into " + path.string() + ": not a directory";
}

// Opens dir, which must be anchor or below it, walking from anchor one component at a time
// without following symlinks; missing components are created with `mode` when `create` is
// set. The anchor itself is opened normally: a home that is a symlink to another filesystem
// is the user's own choice (trust.hpp checks who owns it). Throws error naming the first
// component that is a symlink or not a directory, io_error for anything else.
inline unique_fd open_tree_dir(const std::filesystem::path& anchor,
                               const std::filesystem::path& dir, bool create = true,
                               mode_t mode = 0700) {
  std::filesystem::path rel = dir.lexically_relative(anchor);
  bool inside = !rel.empty();
  for (const auto& part : rel) inside = inside && part != "..";
  if (!inside)
    throw error("refusing to write into " + dir.string() + ": not inside " + anchor.string());
  if (create) ensure_dir(anchor, mode);
  unique_fd cur(::open(anchor.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cur) throw io_error("cannot open directory", anchor.string(), errno);
  std::filesystem::path walked = anchor;
  for (const auto& part : rel) {
    if (part == "." || part.empty()) continue;
    const std::string name = part.string();
    walked /= part;
    const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    unique_fd next(::openat(cur.get(), name.c_str(), flags));
    if (!next && errno == ENOENT && create) {
      if (::mkdirat(cur.get(), name.c_str(), mode) != 0 && errno != EEXIST)
        throw io_error("cannot create directory", walked.string(), errno);
      next.reset(::openat(cur.get(), name.c_str(), flags));
    }
    if (!next) {
      // O_NOFOLLOW gives ELOOP for a symlink; O_DIRECTORY gives ENOTDIR for a file (and, on
      // some systems, for a symlink too).
      if (errno == ELOOP || errno == ENOTDIR)
        throw error(refused_component(cur.get(), name, walked));
      throw io_error("cannot open directory", walked.string(), errno);
    }
    cur = std::move(next);
  }
  return cur;
}

// Replaces dir_fd/name with content (temp name starting with '.' opened O_EXCL|O_NOFOLLOW in
// the same directory, fsync'd when `durable`, then renameat): for writers that hold the
// directory as a descriptor from open_tree_dir(), so nothing swapped in after the walk (a
// symlinked directory, a planted final name) is ever written through. `shown` names the
// directory in errors.
inline void replace_file_at(int dir_fd, const std::string& name, std::string_view content,
                            const std::filesystem::path& shown, bool durable = true,
                            mode_t mode = 0600) {
  std::string tmp = "." + name + ".tmp." + temp_suffix();
  unique_fd fd(
      ::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) throw io_error("cannot create", (shown / tmp).string(), errno);
  auto fail = [&](const char* what, const std::string& about) {
    int e = errno;
    ::unlinkat(dir_fd, tmp.c_str(), 0);
    throw io_error(what, (shown / about).string(), e);
  };
  if (!write_all(fd.get(), content.data(), content.size())) fail("cannot write", tmp);
  if (durable && ::fsync(fd.get()) != 0) fail("cannot fsync", tmp);
  if (::close(fd.release()) != 0) fail("cannot close", tmp);
  if (::renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) != 0)
    fail("cannot rename onto final name", name);
  if (durable) ::fsync(dir_fd);  // best effort, as fsync_dir()
}

}  // namespace leaseq::detail
