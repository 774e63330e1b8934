#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "leaseq/detail/dir.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/lock.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"

namespace leaseq {

namespace detail {

// The seq of "T014.json" / "T014.result.json", or 0.
inline std::int64_t seq_of_file_name(const std::string& name) {
  auto dot = name.find('.');
  return task_seq(std::string_view(name).substr(0, dot)).value_or(0);
}

// Highest task seq anywhere in the tree: used only when the seq file is missing or corrupt,
// so a lost counter never hands out an id that is already taken.
inline std::int64_t highest_seq_in_tree(const lease_paths& lease) {
  std::int64_t best = 0;
  for (const fs::path& root : {lease.inbox_root(), lease.claimed_root(), lease.done_root()}) {
    for (const std::string& lane : list_dir(root.string()).names)
      for (const std::string& f : list_dir((root / lane).string()).names)
        best = std::max(best, seq_of_file_name(f));
  }
  return best;
}

inline std::int64_t parse_seq_text(const std::string& text) {
  std::int64_t v = 0;
  bool any = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      if (v > (INT64_MAX - 9) / 10) return 0;
      v = v * 10 + (c - '0');
      any = true;
    } else if (c == '\n' || c == ' ' || c == '\r' || c == '\t') {
      if (any) break;
    } else {
      return 0;
    }
  }
  return any ? v : 0;
}

}  // namespace detail

// Reserves `count` consecutive seqs under flock(seq.lock) and returns the first. The seq file
// holds the next seq to hand out (text). Gap-free and distinct across processes.
inline std::int64_t allocate_seq(const lease_paths& lease, std::int64_t count = 1) {
  if (count < 1) throw error("allocate_seq: count must be positive");
  ensure_dir(lease.root());
  file_lock lock(lease.seq_lock());
  read_outcome raw = read_file_tolerant(lease.seq(), 64);
  std::int64_t next = raw.ok ? detail::parse_seq_text(raw.content) : 0;
  if (next <= 0) next = detail::highest_seq_in_tree(lease) + 1;
  write_file_atomic(lease.seq(), std::to_string(next + count) + "\n");
  return next;
}

}  // namespace leaseq
