#pragma once

#include <string>
#include <utility>
#include <vector>

#include "leaseq/fs.hpp"

namespace leaseq::detail {

struct dir_listing {
  std::vector<std::string> names;  // entries not starting with '.' (see read_dir)
  int err = 0;                     // errno of open/fstat/readdir; ENOENT means "empty"
};

// The names of read_dir (fs.hpp), the one directory reader: one readdir pass; names starting
// with '.' (temp files, .nfsXXXX) are skipped, unless `hidden_too` (then only "." and "..").
inline dir_listing list_dir(const std::string& path, bool hidden_too = false) {
  dir_listing_result r = read_dir(path, nullptr, hidden_too);
  dir_listing out;
  out.err = r.err;
  out.names.reserve(r.entries.size());
  for (dir_entry& e : r.entries) out.names.push_back(std::move(e.name));
  return out;
}

}  // namespace leaseq::detail
