#pragma once

// An in-memory filesystem for the Fs interface of tail.hpp (fs.hpp: open, and the open file's
// stat and read_at; stat and read by name too). Copies share one tree, so a test keeps a copy
// to write with while the follower reads through its own. A name points at a file; an open
// file keeps its file when the name is moved, removed or pointed elsewhere, as on POSIX, so
// truncation, rotation and appends in pieces are played without a process or a disk.

#include <leaseq/fs.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace test_support {

class memory_fs {
  struct node {
    std::string bytes;
    std::uint64_t ino = 0;
    bool regular = true;
    int read_err = 0;  // read_at fails with this errno while set
  };
  struct tree {
    std::map<std::string, std::shared_ptr<node>> names;
    std::uint64_t next_ino = 100;
  };

 public:
  class file {
   public:
    file() = default;
    explicit operator bool() const noexcept { return static_cast<bool>(n_); }
    int error() const noexcept { return err_; }
    leaseq::file_info stat() const { return info_of(*n_); }
    leaseq::read_chunk read_at(char* buf, std::size_t n, std::uint64_t offset) const {
      if (n_->read_err != 0) return {0, n_->read_err};
      if (offset >= n_->bytes.size()) return {0, 0};
      std::size_t got = std::min<std::size_t>(n, n_->bytes.size() - offset);
      std::memcpy(buf, n_->bytes.data() + offset, got);
      return {got, 0};
    }

   private:
    friend class memory_fs;
    std::shared_ptr<node> n_;
    int err_ = 0;
  };

  file open(const leaseq::fs::path& p) const {
    file f;
    auto it = t_->names.find(p.string());
    if (it == t_->names.end())
      f.err_ = ENOENT;
    else
      f.n_ = it->second;
    return f;
  }
  leaseq::file_info stat(const leaseq::fs::path& p) const {
    auto it = t_->names.find(p.string());
    if (it != t_->names.end()) return info_of(*it->second);
    leaseq::file_info f;
    f.err = ENOENT;
    return f;
  }

  // Writing, as a test's writer process would.
  void append(const leaseq::fs::path& p, std::string_view bytes) const {
    at(p).bytes.append(bytes);
  }
  void truncate(const leaseq::fs::path& p, std::size_t size = 0) const { at(p).bytes.resize(size); }
  // mv from to: the name `to` now points at from's file (a rotation, seen from `to`).
  void rename(const leaseq::fs::path& from, const leaseq::fs::path& to) const {
    auto it = t_->names.find(from.string());
    if (it == t_->names.end()) return;
    t_->names[to.string()] = it->second;
    t_->names.erase(it);
  }
  void remove(const leaseq::fs::path& p) const { t_->names.erase(p.string()); }
  // A name that is not a regular file (a FIFO, a directory).
  void make_special(const leaseq::fs::path& p) const { at(p).regular = false; }
  void fail_reads(const leaseq::fs::path& p, int err) const { at(p).read_err = err; }

 private:
  static leaseq::file_info info_of(const node& n) {
    leaseq::file_info f;
    f.is_regular = n.regular;
    f.size = n.bytes.size();
    f.ino = n.ino;
    f.dev = 1;
    return f;
  }
  node& at(const leaseq::fs::path& p) const {
    auto& slot = t_->names[p.string()];
    if (!slot) {
      slot = std::make_shared<node>();
      slot->ino = t_->next_ino++;
    }
    return *slot;
  }

  std::shared_ptr<tree> t_ = std::make_shared<tree>();
};

}  // namespace test_support
