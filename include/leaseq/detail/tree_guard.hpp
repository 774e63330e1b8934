#pragma once

// Writers check that the directories they write into are real directories inside the lease
// tree: a directory below the lease root replaced by a symlink (or by a file) would send a
// rename, a log or an unlink somewhere else. The lease root itself may be a symlink (a home on
// another filesystem is common); only what lies below it is checked. This narrows the window,
// it cannot close it: a component swapped between the check and the write still wins, which
// is why final names are also opened with O_NOFOLLOW or replaced by rename.

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

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

}  // namespace leaseq::detail
