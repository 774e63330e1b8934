#pragma once

// The filesystem as the snapshot store sees it. The store is a template over this interface so
// tests can play NFS lag (a file that is not visible yet, a rename seen late) and exact time.
//
// An Fs type provides:
//   dir_listing_result list_dir(const fs::path& dir, const dir_stamp* skip_if) const;
//   file_info          stat(const fs::path& path) const;
//   file_read          read(const fs::path& path, std::size_t max_bytes) const;
//   file_read          read_tail(const fs::path& path, std::size_t max_bytes) const;
// and, for following a file by polling (tail.hpp),
//   file               open(const fs::path& path) const;
// where `file` (a nested type) is movable and default-constructible (not open), with
//   explicit operator bool() const        the open succeeded
//   int error() const                     errno of an open that failed
//   file_info stat() const                of the open file (fstat), not of the name
//   read_chunk read_at(char* buf, std::size_t n, std::uint64_t offset) const   (pread)
// An Fs that may be listed from several threads at once says so with
//   static constexpr bool concurrent_listing = true;
// (the store then lists the lanes of a big lease side by side).
// posix_fs below is the real one.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "leaseq/detail/posix.hpp"
#include "leaseq/file_io.hpp"

namespace leaseq {

// A directory's own mtime and size: when both are unchanged, its entries are unchanged too
// (every protocol writer adds, renames or unlinks entries, which bumps the directory's mtime).
struct dir_stamp {
  double mtime = 0;
  std::uint64_t size = 0;
  std::uint64_t ino = 0;
  bool operator==(const dir_stamp& o) const noexcept {
    return mtime == o.mtime && size == o.size && ino == o.ino;
  }
  bool operator!=(const dir_stamp& o) const noexcept { return !(*this == o); }
};

struct dir_entry {
  std::string name;
  std::uint64_t ino = 0;  // readdir's d_ino: an atomic rewrite (temp + rename) changes it
};

struct dir_listing_result {
  int err = 0;                     // errno of open/fstat/readdir; ENOENT is "no such directory yet"
  dir_stamp stamp;                 // fstat of the opened directory (valid when err == 0)
  bool unchanged = false;          // skip_if matched: entries were not read and are empty
  std::vector<dir_entry> entries;  // names starting with '.' are never listed (see read_dir)
};

struct file_info {
  int err = 0;  // errno of stat; ENOENT when missing
  bool is_regular = false;
  bool is_dir = false;
  std::uint64_t size = 0;
  double mtime = 0;
  std::uint64_t ino = 0;
  std::uint64_t dev = 0;
};

struct read_chunk {
  std::size_t n = 0;  // bytes read; 0 at the end of the file
  int err = 0;        // errno of a read that failed
};

struct file_read {
  bool ok = false;
  int err = 0;
  std::string reason;  // why not ok: "missing", "permission denied", "too large", ...
  std::string content;
  file_info info;  // fstat of the opened file
};

namespace detail {
inline double stat_mtime(const struct stat& st) noexcept {
  return static_cast<double>(st.st_mtim.tv_sec) + static_cast<double>(st.st_mtim.tv_nsec) * 1e-9;
}
inline file_info to_file_info(const struct stat& st) noexcept {
  file_info f;
  f.is_regular = S_ISREG(st.st_mode);
  f.is_dir = S_ISDIR(st.st_mode);
  f.size = static_cast<std::uint64_t>(st.st_size);
  f.mtime = stat_mtime(st);
  f.ino = static_cast<std::uint64_t>(st.st_ino);
  f.dev = static_cast<std::uint64_t>(st.st_dev);
  return f;
}
// What a stat() or fstat() that returned rc says: st, or its errno.
inline file_info stat_info(int rc, const struct stat& st) noexcept {
  if (rc == 0) return to_file_info(st);
  file_info f;
  f.err = errno;
  return f;
}

// A directory's stamp, its attributes asked of the server (AT_STATX_FORCE_SYNC: NFS and FUSE
// revalidate past their attribute caches, as an open would; a local filesystem has nothing to
// sync): one system call where open + fstat + close took three, for the many directories a
// rescan finds unchanged (issue 19). 0, or the errno; ENOSYS where statx is refused (a
// seccomp filter, an old kernel), and from then on without asking again.
inline int synced_dir_stamp(const fs::path& dir, dir_stamp& out) {
  static std::atomic<bool> unsupported{false};
  if (unsupported.load(std::memory_order_relaxed)) return ENOSYS;
  struct statx stx;
  if (::statx(AT_FDCWD, dir.c_str(), AT_STATX_FORCE_SYNC,
              STATX_TYPE | STATX_MTIME | STATX_SIZE | STATX_INO, &stx) != 0) {
    int err = errno;
    if (err == ENOSYS || err == EPERM || err == EINVAL) {
      unsupported.store(true, std::memory_order_relaxed);
      return ENOSYS;
    }
    return err;
  }
  constexpr unsigned need = STATX_TYPE | STATX_MTIME | STATX_SIZE | STATX_INO;
  if ((stx.stx_mask & need) != need || !S_ISDIR(stx.stx_mode)) return ENOTDIR;
  out.mtime =
      static_cast<double>(stx.stx_mtime.tv_sec) + static_cast<double>(stx.stx_mtime.tv_nsec) * 1e-9;
  out.size = stx.stx_size;
  out.ino = stx.stx_ino;
  return 0;
}

// The one directory reader (posix_fs::list_dir and detail::list_dir call it): opens the
// directory, fstats the open descriptor and, unless skip_if equals that stamp, reads its
// entries with one readdir pass (no stat per entry, d_type is not looked at). Names starting
// with '.' (temp files, .nfsXXXX) are skipped, unless `hidden_too` (then only "." and "..").
// With skip_if, the stamp is first asked without opening (synced_dir_stamp): an unchanged
// directory costs one system call.
inline dir_listing_result read_dir(const fs::path& dir, const dir_stamp* skip_if, bool hidden_too) {
  dir_listing_result out;
  if (skip_if) {
    dir_stamp now;
    int err = synced_dir_stamp(dir, now);
    if (err == ENOENT) {
      out.err = err;
      return out;
    }
    if (err == 0 && now == *skip_if) {
      out.stamp = now;
      out.unchanged = true;
      return out;
    }
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    out.err = errno;
    return out;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    out.err = errno;
    ::close(fd);
    return out;
  }
  out.stamp = {stat_mtime(st), static_cast<std::uint64_t>(st.st_size),
               static_cast<std::uint64_t>(st.st_ino)};
  if (skip_if && *skip_if == out.stamp) {
    out.unchanged = true;
    ::close(fd);
    return out;
  }
  // A directory's size grows with its entries (ext4: 4 KiB blocks of ~150 names; tmpfs: 20
  // bytes a name): reserving from it spares the vector's regrowth in a lane of thousands.
  out.entries.reserve(static_cast<std::size_t>(std::min<std::int64_t>(st.st_size / 16, 65536)));
  DIR* d = ::fdopendir(fd);  // takes ownership of fd
  if (!d) {
    out.err = errno;
    ::close(fd);
    return out;
  }
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string_view n(e->d_name);
    if (n[0] != '.' || (hidden_too && n != "." && n != ".."))
      out.entries.push_back({std::string(n), static_cast<std::uint64_t>(e->d_ino)});
    errno = 0;
  }
  if (errno != 0) out.err = errno;
  ::closedir(d);
  return out;
}

}  // namespace detail

// Fs::concurrent_listing, false where the Fs does not say.
template <class Fs, class = void>
struct concurrent_listing : std::false_type {};
template <class Fs>
struct concurrent_listing<Fs, std::void_t<decltype(Fs::concurrent_listing)>>
    : std::bool_constant<Fs::concurrent_listing> {};

// The real filesystem. Every call opens afresh (on NFS an open revalidates the attribute
// cache, which is what makes new entries and new contents visible), or, for a directory that
// may be unchanged, asks its attributes with AT_STATX_FORCE_SYNC (the same revalidation).
struct posix_fs {
  static constexpr bool concurrent_listing = true;  // no state: each call opens afresh

  // The directory's stamp and, unless skip_if equals it, its entries (detail::read_dir).
  dir_listing_result list_dir(const fs::path& dir, const dir_stamp* skip_if = nullptr) const {
    return detail::read_dir(dir, skip_if, false);
  }

  // A file opened for reading by offset (tail.hpp).
  class file {
   public:
    file() = default;
    explicit operator bool() const noexcept { return static_cast<bool>(fd_); }
    int error() const noexcept { return err_; }
    file_info stat() const {
      struct stat st;
      return detail::stat_info(::fstat(fd_.get(), &st), st);
    }
    read_chunk read_at(char* buf, std::size_t n, std::uint64_t offset) const {
      for (;;) {
        ssize_t got = ::pread(fd_.get(), buf, n, static_cast<off_t>(offset));
        if (got >= 0) return {static_cast<std::size_t>(got), 0};
        if (errno != EINTR) return {0, errno};
      }
    }

   private:
    friend struct posix_fs;
    detail::unique_fd fd_;
    int err_ = 0;
  };

  // Never blocks on a FIFO or device, never becomes the controlling terminal.
  file open(const fs::path& path) const {
    file f;
    f.fd_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!f.fd_) f.err_ = errno;
    return f;
  }

  file_info stat(const fs::path& path) const {
    struct stat st;
    return detail::stat_info(::stat(path.c_str(), &st), st);
  }

  // Reads a whole regular file of at most max_bytes; never throws for I/O problems and never
  // blocks on a FIFO or device. `info` is the fstat of the file it opened.
  file_read read(const fs::path& path, std::size_t max_bytes) const {
    struct stat st {};
    read_outcome r = detail::read_regular_file(path, max_bytes, &st);
    file_read out;
    out.ok = r.ok;
    out.err = r.err;
    out.reason = std::move(r.reason);
    out.content = std::move(r.content);
    if (st.st_ino != 0) out.info = detail::to_file_info(st);
    return out;
  }

  // The last max_bytes of a regular file (all of it when smaller; info.size says which), never
  // through a symlink: for append-only hint files (results_index.hpp).
  file_read read_tail(const fs::path& path, std::size_t max_bytes) const {
    file_read out;
    detail::unique_fd fd(
        ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    struct stat st;
    if (!fd || ::fstat(fd.get(), &st) != 0) {
      out.err = errno;
      out.reason = std::strerror(errno);
      return out;
    }
    out.info = detail::to_file_info(st);
    if (!S_ISREG(st.st_mode)) {
      out.reason = "not a regular file";
      return out;
    }
    std::uint64_t size = out.info.size;
    std::uint64_t from = size > max_bytes ? size - max_bytes : 0;
    out.content.resize(static_cast<std::size_t>(size - from));
    std::size_t got = 0;
    while (got < out.content.size()) {
      ssize_t n = ::pread(fd.get(), out.content.data() + got, out.content.size() - got,
                          static_cast<off_t>(from + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        out.err = errno;
        out.reason = std::strerror(errno);
        out.content.clear();
        return out;
      }
      if (n == 0) break;  // shrank meanwhile
      got += static_cast<std::size_t>(n);
    }
    out.content.resize(got);
    out.ok = true;
    return out;
  }
};

}  // namespace leaseq
