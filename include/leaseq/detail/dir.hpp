#pragma once

#include <dirent.h>

#include <cerrno>
#include <string>
#include <string_view>
#include <vector>

#include "leaseq/error.hpp"

namespace leaseq::detail {

struct dir_listing {
  std::vector<std::string> names;  // entries not starting with '.' (see list_dir)
  int err = 0;                     // errno of opendir/readdir; ENOENT means "empty"
};

// One readdir pass; names starting with '.' (temp files, .nfsXXXX) are skipped, unless
// `hidden_too` (then only "." and ".." are).
inline dir_listing list_dir(const std::string& path, bool hidden_too = false) {
  dir_listing out;
  DIR* d = ::opendir(path.c_str());
  if (!d) {
    out.err = errno;
    return out;
  }
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string_view n(e->d_name);
    if (n[0] != '.' || (hidden_too && n != "." && n != "..")) out.names.emplace_back(n);
    errno = 0;
  }
  if (errno != 0) out.err = errno;
  ::closedir(d);
  return out;
}

}  // namespace leaseq::detail
