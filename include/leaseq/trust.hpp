#pragma once

// Who may be trusted with a LEASEQ_HOME, the way ssh's StrictModes decides whether to trust
// ~/.ssh. A home is one user's: whoever can write into it can submit tasks that run as that
// user, pause their runners, or plant links; whoever can read its task files reads the tasks'
// environment (tokens, keys). So a command refuses a home (or runs/, or a lease tree
// runs/<lease>) that is not owned by the caller or that group or others may write, and says
// exactly what to run to fix it; it warns, once, when task files are readable by others.
//
// Reading someone else's home (an administrator looking at a user's queue) is allowed: a
// reader changes nothing there and every byte it shows goes through the sanitizer. Writing
// into it, or running its tasks, is not. Shared project homes are not supported.
//
// The library never checks on its own (a program that embeds leaseq decides); the leaseq
// program calls check_home_trust() once per command, and its runner calls owned_by_me() on
// every task file before running it.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "leaseq/detail/dir.hpp"
#include "leaseq/detail/posix.hpp"
#include "leaseq/detail/strings.hpp"
#include "leaseq/error.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/sanitize.hpp"

namespace leaseq {

// What a command is about to do with a home. A reader may look at anyone's home it can read;
// a writer (submit, control, lease create, the runner, the dashboard) only at its own.
enum class home_use { read, write };

// Whether the open file belongs to this process's effective user. The runner asks this of
// every task file it claimed, on the descriptor it parses, before running anything: a task
// someone else wrote must never run as us.
inline bool owned_by_me(int fd) noexcept {
  struct stat st;
  return ::fstat(fd, &st) == 0 && st.st_uid == ::geteuid();
}

// The same by path, for callers that hold no descriptor. A symlink is never "mine" (what it
// points at can change after this answer); prefer owned_by_me(int) on the descriptor read.
inline bool owned_by_me(const fs::path& path) noexcept {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && !S_ISLNK(st.st_mode) && st.st_uid == ::geteuid();
}

// What inspect_home() found: problems that refuse the command, and the first task file others
// can read (a warning).
struct home_trust {
  std::vector<std::string> refusals;
  std::optional<std::string> exposed;
  bool ok() const noexcept { return refusals.empty(); }
};

namespace detail {

// A user's name from /etc/passwd, else the number: no NSS, so the static binary gives the
// same answer (only uids from LDAP show as numbers).
inline std::string user_name(uid_t uid) {
  std::ifstream in("/etc/passwd");
  std::string line;
  while (std::getline(in, line)) {
    std::size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    std::size_t c = b == std::string::npos ? b : line.find(':', b + 1);
    if (c == std::string::npos) continue;
    if (line.compare(b + 1, c - b - 1, std::to_string(uid)) == 0) return line.substr(0, a);
  }
  return std::to_string(uid);
}

// "nobody (uid 65534)", or "uid 1234" for a user /etc/passwd does not name.
inline std::string who(uid_t uid) {
  std::string name = user_name(uid);
  return name == std::to_string(uid) ? "uid " + name : name + " (uid " + std::to_string(uid) + ")";
}

inline std::string write_bits_text(mode_t mode) {
  bool g = mode & S_IWGRP, o = mode & S_IWOTH;
  return g && o ? "group and others" : g ? "its group" : "others";
}

// Why a directory of the home cannot be trusted, or nullopt: it must be ours and writable by
// us alone (a sticky bit does not help: others could still add files, i.e. tasks).
inline std::optional<std::string> dir_distrust(const fs::path& path, const struct stat& st,
                                               const std::string& what) {
  const std::string p = shell_quote(path.string());
  if (st.st_uid != ::geteuid())
    return fmt::format(
        "{} {} is owned by {}, not by you ({}, uid {}): anyone who can write there can run "
        "commands as you. Use a home of your own (LEASEQ_HOME), or if the tree is yours: chown "
        "-R {} {}",
        what, path.string(), who(st.st_uid), user_name(::geteuid()), ::geteuid(),
        user_name(::geteuid()), p);
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return fmt::format(
        "{} {} is writable by {} (mode {:04o}): they could submit tasks that run as you. Fix: "
        "chmod 700 {}",
        what, path.string(), write_bits_text(st.st_mode), st.st_mode & 07777, p);
  return std::nullopt;
}

// Which of group (1) and others (2) can still reach below a directory they could reach.
inline unsigned narrow_reach(unsigned reach, mode_t mode) noexcept {
  if (!(mode & S_IXGRP)) reach &= ~1u;
  if (!(mode & S_IXOTH)) reach &= ~2u;
  return reach;
}

inline bool readable_by(unsigned reach, mode_t mode) noexcept {
  return ((reach & 1u) && (mode & S_IRGRP)) || ((reach & 2u) && (mode & S_IROTH));
}

// The first task file of one lane directory that group or others can read. Looks at a few
// entries only: leaseq writes task files 0600, so exposed files come from a `chmod -R`, which
// leaves none of them out; a tree with thousands of results costs no more than a small one.
inline std::optional<fs::path> exposed_in_lane(const fs::path& lane, unsigned reach) {
  unique_fd fd(::open(lane.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return std::nullopt;
  DIR* d = ::fdopendir(fd.get());
  if (!d) return std::nullopt;
  fd.release();
  std::optional<fs::path> found;
  int looked = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    if (++looked > 16) break;
    struct stat st;
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
      continue;
    if (readable_by(reach, st.st_mode)) {
      found = lane / e->d_name;
      break;
    }
  }
  ::closedir(d);
  return found;
}

// The first task file (inbox, claimed, done: they hold the env) of one lease that group or
// others can reach and read. Only walks where they can search, so a 0700 tree costs one stat.
inline std::optional<fs::path> exposed_task_file(const fs::path& lease_root, unsigned reach) {
  for (const char* part : {"inbox", "claimed", "done"}) {
    fs::path top = lease_root / part;
    struct stat st;
    if (::lstat(top.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    unsigned r = narrow_reach(reach, st.st_mode);
    if (!r) continue;
    for (const std::string& lane : list_dir(top.string()).names) {
      fs::path dir = top / lane;
      if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
      unsigned rl = narrow_reach(r, st.st_mode);
      if (!rl) continue;
      if (auto f = exposed_in_lane(dir, rl)) return f;
    }
  }
  return std::nullopt;
}

// Why a directory below a lease tree the runner reads from (an inbox lane, control/<node>,
// claimed/<node>, ...) cannot be trusted, or nullopt: every existing component from below
// `root` down to `dir` must be ours and writable by us alone, like the tree itself. One that
// others may write lets them put files there (a task, a pause) or swap what lies below.
inline std::optional<std::string> subdir_distrust(const fs::path& root, const fs::path& dir) {
  fs::path rel = dir.lexically_relative(root);
  if (rel.empty() || *rel.begin() == "..") return std::nullopt;  // unsafe_dir() says why
  fs::path cur = root;
  for (const auto& part : rel) {
    if (part == ".") continue;
    cur /= part;
    struct stat st;
    if (::lstat(cur.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
    if (auto why = dir_distrust(cur, st, "the directory")) return why;
  }
  return std::nullopt;
}

// The directories of a lease tree leaseq reads commands and tasks from or writes into: each
// must be ours and private to us (subdir_distrust). Refusals are appended to `out`.
inline void inspect_tree_dirs(const fs::path& tree, std::vector<std::string>& out) {
  auto check = [&](const fs::path& dir, bool lanes) {
    struct stat st;
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
    if (auto why = dir_distrust(dir, st, "the directory")) {
      out.push_back(*why);
      return;
    }
    if (!lanes) return;
    for (const std::string& name : list_dir(dir.string()).names) {
      fs::path sub = dir / name;
      if (::lstat(sub.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
      if (auto why = dir_distrust(sub, st, "the directory")) out.push_back(*why);
    }
  };
  for (const char* part : {"inbox", "control", "claimed", "done", "logs", "priority"})
    check(tree / part, true);
  for (const char* part : {"keys", "ids", "hb"}) check(tree / part, false);
}

}  // namespace detail

// Inspects a home for `use`, without printing: its root, runs/, every lease tree runs/<lease>
// and the directories below each tree that hold tasks, commands and records (inbox/*,
// control/*, claimed/*, done/*, logs/*, priority/*, keys, ids, hb) must be real directories
// owned by the caller and writable by the caller alone.
// A home that does not exist yet is fine (leaseq creates it 0700). Symlinks under runs/ are
// refused for writers only (a reader never writes through them; open_lease_dir refuses them
// again at the write). The exposure warning is only looked for in a home of the caller's own.
inline home_trust inspect_home(const fs::path& home, home_use use) {
  home_trust out;
  struct stat st;
  // The home itself may be a symlink (to a bigger filesystem): what counts is where it leads.
  if (::stat(home.c_str(), &st) != 0) return out;
  if (!S_ISDIR(st.st_mode)) {
    out.refusals.push_back("LEASEQ_HOME " + home.string() + " is not a directory");
    return out;
  }
  if (st.st_uid != ::geteuid() && use == home_use::read) return out;  // someone else's: look only
  if (auto why = detail::dir_distrust(home, st, "LEASEQ_HOME")) {
    out.refusals.push_back(*why);
    return out;  // nothing below it can be trusted either: one fix at a time
  }
  unsigned reach = detail::narrow_reach(3u, st.st_mode);
  fs::path runs = home / "runs";
  if (::lstat(runs.c_str(), &st) != 0) return out;
  if (S_ISLNK(st.st_mode)) {
    if (use == home_use::write)
      out.refusals.push_back("refusing to write through the symbolic link " + runs.string() +
                             ": leaseq writes only into real directories of its tree (remove "
                             "the link, move the directory in its place)");
    return out;
  }
  if (!S_ISDIR(st.st_mode)) {
    out.refusals.push_back(runs.string() + " is not a directory");
    return out;
  }
  if (auto why = detail::dir_distrust(runs, st, "the lease directory")) {
    out.refusals.push_back(*why);
    return out;
  }
  reach = detail::narrow_reach(reach, st.st_mode);
  for (const std::string& name : detail::list_dir(runs.string()).names) {
    if (!is_valid_lease_id(name)) continue;  // never used, so never trusted or distrusted
    fs::path tree = runs / name;
    if (::lstat(tree.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      if (use == home_use::write)
        out.refusals.push_back("refusing to write through the symbolic link " + tree.string() +
                               ": a lease tree must be a real directory under runs/ (remove "
                               "the link, move the directory in its place)");
      continue;
    }
    if (!S_ISDIR(st.st_mode)) continue;
    if (auto why = detail::dir_distrust(tree, st, "the lease tree")) {
      out.refusals.push_back(*why);
      continue;
    }
    detail::inspect_tree_dirs(tree, out.refusals);
    if (unsigned r = detail::narrow_reach(reach, st.st_mode); r && !out.exposed) {
      if (auto f = detail::exposed_task_file(tree, r))
        out.exposed = f->string() + " (and likely every task file under " + home.string() +
                      ") can be read by other users, and task files hold the tasks' environment "
                      "(tokens, keys). Fix: chmod -R go-rwx " +
                      detail::shell_quote(home.string());
    }
  }
  return out;
}

// The leaseq program's check, once per command: throws error listing every problem (each with
// its fix) when the home cannot be trusted for `use`; prints the exposure warning to stderr,
// once per process.
inline void check_home_trust(const home_paths& home, home_use use = home_use::write) {
  home_trust t = inspect_home(home.root(), use);
  if (t.exposed) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      std::fprintf(stderr, "leaseq: warning: %s\n", sanitize_inline(*t.exposed).c_str());
  }
  if (t.ok()) return;
  std::string msg = t.refusals.front();
  for (std::size_t i = 1; i < t.refusals.size(); ++i) msg += "; " + t.refusals[i];
  throw error(msg);
}

}  // namespace leaseq
