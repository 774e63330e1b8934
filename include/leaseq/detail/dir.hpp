#pragma once

#include <dirent.h>

#include <cerrno>
#include <string>
#include <vector>

#include "leaseq/error.hpp"

namespace leaseq::detail {

struct dir_listing {
  std::vector<std::string> names;  // entries not starting with '.'
  int err = 0;                     // errno of opendir/readdir; ENOENT means "empty"
};

// One readdir pass; names starting with '.' (temp files, .nfsXXXX) are skipped.
inline dir_listing list_dir(const std::string& path) {
  dir_listing out;
  DIR* d = ::opendir(path.c_str());
  if (!d) {
    out.err = errno;
    return out;
  }
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') out.names.emplace_back(e->d_name);
    errno = 0;
  }
  if (errno != 0) out.err = errno;
  ::closedir(d);
  return out;
}

}  // namespace leaseq::detail
