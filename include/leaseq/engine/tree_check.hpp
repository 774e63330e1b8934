#pragma once

// The runner's per-pass check of the directories it uses (protocol.md, "Trust model"): each
// must be a real directory of the lease tree (detail::unsafe_dir) and ours, writable by no one
// else (detail::subdir_distrust). The runner's seven directories share most of their path
// components and both checks walk the same ones, so asked separately they cost about 40
// lstat a pass, several passes a task. Here each distinct component is looked at once per pass
// (forget() starts one); the answers, messages included, are those of the two checks.

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "leaseq/detail/tree_guard.hpp"
#include "leaseq/trust.hpp"

namespace leaseq::detail {

class tree_check {
 public:
  // `anchor`: where the walk for links starts (the home); `root`: the lease tree, below which
  // every component must also be ours and private.
  tree_check(fs::path anchor, fs::path root) : anchor_(std::move(anchor)), root_(std::move(root)) {}

  // Forgets what was looked at: the next why() sees the tree as it is now.
  void forget() { seen_.clear(); }

  // unsafe_dir(anchor, dir) or, when that finds nothing, subdir_distrust(root, dir); `link`
  // tells which one answered.
  std::optional<std::string> why(const fs::path& dir, bool& link) {
    link = true;
    fs::path rel = dir.lexically_relative(anchor_);
    if (rel.empty() || *rel.begin() == "..")
      return dir.string() + " is not inside the lease tree " + anchor_.string();
    fs::path cur = anchor_;
    for (const auto& part : rel) {
      if (part == ".") continue;
      cur /= part;
      const looked& l = look(cur);
      if (l.err == ENOENT) break;  // created as a directory when needed
      if (l.err) return cur.string() + ": cannot stat: " + std::strerror(l.err);
      if (S_ISLNK(l.st.st_mode))
        return cur.string() +
               " is a symbolic link; leaseq writes only into real directories of "
               "the lease tree";
      if (!S_ISDIR(l.st.st_mode)) return cur.string() + " is not a directory";
    }
    link = false;
    rel = dir.lexically_relative(root_);
    if (rel.empty() || *rel.begin() == "..") return std::nullopt;
    cur = root_;
    for (const auto& part : rel) {
      if (part == ".") continue;
      cur /= part;
      const looked& l = look(cur);
      if (l.err || !S_ISDIR(l.st.st_mode)) return std::nullopt;
      if (auto distrust = dir_distrust(cur, l.st, "the directory")) return distrust;
    }
    return std::nullopt;
  }

 private:
  struct looked {
    std::string path;
    int err = 0;
    struct stat st {};
  };

  const looked& look(const fs::path& p) {
    for (const looked& l : seen_)
      if (l.path == p.native()) return l;
    looked l;
    l.path = p.native();
    if (::lstat(l.path.c_str(), &l.st) != 0) l.err = errno;
    seen_.push_back(std::move(l));
    return seen_.back();
  }

  fs::path anchor_, root_;
  std::vector<looked> seen_;  // a few dozen at most: a linear search is cheapest
};

}  // namespace leaseq::detail
