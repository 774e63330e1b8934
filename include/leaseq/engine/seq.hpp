#pragma once

// Task sequence numbers, unique across clients whose locks do not see each other.
//
// Protocol 2 (docs/protocol.md "Sequence numbers"): a seq is taken by creating ids/<seq>
// exclusively (link(2) of a small ticket naming the owner, or O_EXCL where links are refused).
// The server decides who wins, so two submitters on two NFS clients, on sshfs mounts, or on
// Lustre without flock, never get the same id. The `seq` file is only a hint of where to start
// looking, and flock(seq.lock) only keeps local contenders from tripping over each other.
// ids/floor (written once, exclusively) says below which seq the tree was numbered by protocol
// 1 rules (the seq file alone); no allocation ever goes below it, so a stale or edited seq
// file cannot hand out an id an older task holds.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "leaseq/detail/dir.hpp"
#include "leaseq/detail/fault.hpp"
#include "leaseq/detail/posix.hpp"
#include "leaseq/detail/process_identity.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/lock.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"

namespace leaseq {

// The largest seq leaseq hands out: far beyond any real lease, and small enough that a seq
// file holding nonsense is recognised as such instead of overflowing.
inline constexpr std::int64_t max_task_seq = 999'999'999'999;

namespace detail {

// The seq of "T014.json" / "T014.result.json", or 0.
inline std::int64_t seq_of_file_name(const std::string& name) {
  auto dot = name.find('.');
  return task_seq(std::string_view(name).substr(0, dot)).value_or(0);
}

// The seq an ids/ entry names ("14"), or 0 for anything else (floor, temp names).
inline std::int64_t seq_of_reservation_name(std::string_view name) {
  if (name.empty() || name.size() > 18 || name[0] == '0') return 0;
  std::int64_t v = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + (c - '0');
  }
  return v;
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

inline std::int64_t highest_reservation(const lease_paths& lease) {
  std::int64_t best = 0;
  for (const std::string& n : list_dir(lease.ids_dir().string()).names)
    best = std::max(best, seq_of_reservation_name(n));
  return best;
}

inline std::int64_t parse_seq_text(const std::string& text) {
  std::int64_t v = 0;
  bool any = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      if (v > (INT64_MAX - 9) / 10) return -1;
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

// The seq below which the tree was numbered by protocol 1 (no ids/ entries there), or 0 when
// ids/floor is missing or unreadable.
inline std::int64_t read_floor(const lease_paths& lease) {
  read_outcome r = read_file_tolerant(lease.ids_floor(), 64);
  if (!r.ok) return 0;
  std::int64_t v = parse_seq_text(r.content);
  return v > 0 ? v : 0;
}

// Reads ids/floor, writing it first when this tree has none yet: one past everything protocol 1
// may have numbered (the seq file, the highest task). 0: another client wrote it first and
// this client cannot read it yet.
inline std::int64_t read_or_create_floor(const lease_paths& lease) {
  ensure_lease_dir(lease, lease.ids_dir());  // refuses a symlinked runs/<lease> or ids/
  if (std::int64_t f = read_floor(lease)) return f;
  read_outcome raw = read_file_tolerant(lease.seq(), 64);
  std::int64_t hint = raw.ok ? parse_seq_text(raw.content) : 0;
  if (hint < 0 || hint > max_task_seq) hint = 0;
  std::int64_t floor = std::max(hint, highest_seq_in_tree(lease) + 1);
  return create_file_exclusive(lease.ids_floor(), std::to_string(floor) + "\n") ? floor : 0;
}

// ids/floor for the first allocation of protocol 2 in this tree (read_or_create_floor), waiting
// while another client's floor is not visible here yet.
inline std::int64_t ensure_floor(const lease_paths& lease) {
  if (std::int64_t f = read_or_create_floor(lease)) return f;
  for (int i = 0; i < 600; ++i) {
    if (std::int64_t f = read_floor(lease)) return f;
    ::usleep(50 * 1000);
  }
  throw error(lease.ids_floor().string() + " exists but does not hold a number (fix or remove it)");
}

// The ticket's second line (protocol 6): "committed <seq>", the highest id of this ticket
// that its submit has committed to publishing, as 12 digits so that it is rewritten in place.
inline constexpr std::string_view ticket_commit_tag = "committed ";
inline constexpr std::size_t ticket_commit_digits = 12;

// Creates ids/<seq> entries: hard links of one ticket file naming this process (readers use it
// to tell a submit in progress from one that died), or O_EXCL files where links are refused.
//
// A reservation is only a claim on a number until its submit commits to it: ids reserved for
// requests a bound key answers, or taken out of order, are given back, and a reader that had
// counted them would see its total shrink. So the ticket says how far the submit has
// committed (commit_through, before each task is published), and readers count an unpublished
// reservation only up to there.
class reservation_maker {
 public:
  explicit reservation_maker(const lease_paths& lease)
      : dir_path_(prepared_ids_dir(lease)),
        dir_(open_lease_dir(lease, dir_path_)),
        ticket_content_("R " + process_identity::of_self().to_line() + "\n" +
                        std::string(ticket_commit_tag) + std::string(ticket_commit_digits, '0') +
                        "\n") {
    if (!dir_) throw io_error("cannot open directory", dir_path_.string(), errno);
    commit_offset_ = ticket_content_.find('\n') + 1 + ticket_commit_tag.size();
    remote_ = remote_filesystem(dir_.get());
  }
  reservation_maker(const reservation_maker&) = delete;
  reservation_maker& operator=(const reservation_maker&) = delete;
  ~reservation_maker() { drop_ticket(); }

  // True when this call created ids/<seq>; false when the seq was already taken.
  bool reserve(std::int64_t seq) {
    std::string name = std::to_string(seq);
    if (links_work_) {
      if (ticket_.empty() || links_ >= 30000) new_ticket();  // ext4 caps links per inode
      bool refused = fault_hit(fault_point::reserve_links_refused);
      if (refused) errno = EPERM;
      if (!refused && ::linkat(dir_.get(), ticket_.c_str(), dir_.get(), name.c_str(), 0) == 0) {
        ++links_;
        highest_ = std::max(highest_, seq);
        ticket& t = tickets_.back();
        if (t.lowest == 0) t.lowest = seq;
        t.highest = std::max(t.highest, seq);
        return true;
      }
      if (errno == EEXIST) return false;
      if (errno == EMLINK) {
        links_ = 30000;
        return reserve(seq);
      }
      if (errno != EPERM && errno != ENOTSUP && errno != ENOSYS && errno != EOPNOTSUPP)
        throw io_error("cannot reserve task id", (dir_path_ / name).string(), errno);
      // EPERM: no hard links here, or (sshfs) the name exists. O_EXCL tells them apart.
    }
    unique_fd fd(::openat(dir_.get(), name.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) {
      if (name_taken(errno)) return false;
      throw io_error("cannot reserve task id", (dir_path_ / name).string(), errno);
    }
    links_work_ = false;  // the name was free, so links are refused here: O_EXCL from now on
    write_all(fd.get(), ticket_content_.data(), ticket_content_.size());
    excl_reservations_.push_back(seq);  // reopened by name to mark: a batch may hold millions
    highest_ = std::max(highest_, seq);
    return true;
  }

  // Commits to publishing every id of this maker up to seq (none of them is given back from
  // now on, unless the submit fails): readers count them even where no directory shows them.
  // Written before the tasks are published; flushed on network filesystems, where the write
  // would otherwise wait in this client's cache while the task is already visible.
  void commit_through(std::int64_t seq) noexcept {
    if (seq <= committed_) return;
    if (seq > max_task_seq) return;
    std::string digits = fmt::format("{:0{}d}", seq, ticket_commit_digits);
    for (const ticket& t : tickets_)  // only the tickets linked to ids this step commits
      if (t.lowest != 0 && t.lowest <= seq && t.highest > committed_)
        mark(t.fd.get(), commit_offset_, digits);
    // O_EXCL reservations are made in ascending order: each is marked once.
    for (;
         excl_committed_ < excl_reservations_.size() && excl_reservations_[excl_committed_] <= seq;
         ++excl_committed_)
      mark_by_name(excl_reservations_[excl_committed_], commit_offset_, digits);
    committed_ = seq;
  }
  std::int64_t committed() const noexcept { return committed_; }
  // The highest id this maker reserved (0: none). reserve_seqs never goes below it, so a
  // maker's ids ascend (its bookkeeping, and its callers', relies on that).
  std::int64_t highest() const noexcept { return highest_; }

  // Marks every reservation this maker made as published ('R' -> 'P', one byte in place, on
  // the ticket inode all of them link to): a reader that cannot see such a task knows it
  // exists, instead of taking it for the leftover of a submit that died.
  void mark_published() noexcept {
    for (const ticket& t : tickets_) mark(t.fd.get(), 0, "P");
    for (std::int64_t s : excl_reservations_) mark_by_name(s, 0, "P");
  }

  // Gives a reservation back (a submit that failed, or a request a bound key answered). Only
  // ids not committed yet are given back by a submit that succeeds.
  void release(std::int64_t seq) noexcept {
    ::unlinkat(dir_.get(), std::to_string(seq).c_str(), 0);
    // Another submit may take the number now: never mark that name again.
    auto it = std::lower_bound(excl_reservations_.begin(), excl_reservations_.end(), seq);
    if (it != excl_reservations_.end() && *it == seq) {
      if (static_cast<std::size_t>(it - excl_reservations_.begin()) < excl_committed_)
        --excl_committed_;
      excl_reservations_.erase(it);
    }
  }

 private:
  static fs::path prepared_ids_dir(const lease_paths& lease) {
    ensure_floor(lease);  // refuses a symlinked runs/<lease> or ids/
    return lease.ids_dir();
  }
  void new_ticket() {
    drop_ticket();
    std::string name = ".ticket." + temp_suffix();
    unique_fd fd(::openat(dir_.get(), name.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) throw io_error("cannot create", (dir_path_ / name).string(), errno);
    if (!write_all(fd.get(), ticket_content_.data(), ticket_content_.size())) {
      int e = errno;
      ::unlinkat(dir_.get(), name.c_str(), 0);
      throw io_error("cannot write", (dir_path_ / name).string(), e);
    }
    ticket_ = std::move(name);
    tickets_.push_back({std::move(fd), 0, 0});
    links_ = 0;
  }
  void drop_ticket() noexcept {
    if (!ticket_.empty()) ::unlinkat(dir_.get(), ticket_.c_str(), 0);
    ticket_.clear();
  }
  void mark(int fd, std::size_t offset, std::string_view bytes) const noexcept {
    (void)!::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (remote_) (void)!::fdatasync(fd);
  }
  void mark_by_name(std::int64_t seq, std::size_t offset, std::string_view bytes) const noexcept {
    unique_fd fd(
        ::openat(dir_.get(), std::to_string(seq).c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
    if (fd) mark(fd.get(), offset, bytes);
  }

  fs::path dir_path_;
  unique_fd dir_;
  std::string ticket_content_;
  std::size_t commit_offset_ = 0;
  bool remote_ = false;
  std::string ticket_;
  // Every ticket inode made, kept open for marking, with the ids linked to it (a ticket holds
  // at most 30000 links: a batch of a million has 34, and a commit step touches one or two).
  struct ticket {
    unique_fd fd;
    std::int64_t lowest = 0, highest = 0;
  };
  std::vector<ticket> tickets_;
  std::vector<std::int64_t> excl_reservations_;  // O_EXCL reservations (no hard links)
  std::size_t excl_committed_ = 0;  // how many of excl_reservations_ are marked committed
  std::int64_t committed_ = 0;
  std::int64_t highest_ = 0;
  int links_ = 0;
  bool links_work_ = true;
};

// What a reader learns from ids/<seq>.
struct reservation_ticket {
  bool published = false;
  std::optional<process_identity> owner;
  // Protocol 6: how far an unpublished submit has committed (ids above it may still be given
  // back). Absent in tickets of protocol 2 to 5, which vouch for every id while the owner runs.
  std::optional<std::int64_t> committed_through;
};

inline std::optional<reservation_ticket> parse_ticket(std::string_view text) {
  if (text.size() < 2 || (text[0] != 'R' && text[0] != 'P') || text[1] != ' ') return std::nullopt;
  reservation_ticket t;
  t.published = text[0] == 'P';
  std::size_t eol = text.find('\n');
  t.owner =
      process_identity::from_line(text.substr(2, eol == std::string_view::npos ? eol : eol - 2));
  if (eol != std::string_view::npos) {
    std::string_view second = text.substr(eol + 1);
    if (second.substr(0, ticket_commit_tag.size()) == ticket_commit_tag) {
      std::string_view digits = second.substr(ticket_commit_tag.size(), ticket_commit_digits);
      std::int64_t v = 0;
      bool ok = digits.size() == ticket_commit_digits;
      for (char c : digits) {
        if (c < '0' || c > '9') ok = false;
        v = v * 10 + (c - '0');
      }
      // A line that does not parse commits to nothing: the reader counts these ids once
      // their tasks show, never before.
      t.committed_through = ok ? v : 0;
    }
  }
  return t;
}

inline std::int64_t seq_hint(const lease_paths& lease) {
  read_outcome raw = read_file_tolerant(lease.seq(), 64);
  std::int64_t hint = raw.ok ? parse_seq_text(raw.content) : 0;
  if (hint < 0 || hint > max_task_seq)
    throw error(fmt::format(
        "{} holds {}, beyond the largest task id (T{}): the file was edited or damaged; "
        "remove it and leaseq recounts from the tree",
        lease.seq().string(), raw.content.substr(0, raw.content.find('\n')), max_task_seq));
  if (hint <= 0) hint = std::max(highest_seq_in_tree(lease), highest_reservation(lease)) + 1;
  return hint;
}

}  // namespace detail

// Reserves `count` seqs, each one taken exclusively in ids/, and returns them ascending. Ids
// are distinct across every process and client; consecutive unless another client reserved
// in between (then the batch skips the ids it took). `maker` gives them back on failure.
// `take_lock` false plays a filesystem whose flock excludes nothing (tests).
inline std::vector<std::int64_t> reserve_seqs(const lease_paths& lease, std::size_t count,
                                              detail::reservation_maker& maker,
                                              bool take_lock = true) {
  std::vector<std::int64_t> out;
  if (count == 0) return out;
  out.reserve(count);
  std::optional<file_lock> lock;
  if (take_lock) lock.emplace(lease.seq_lock());
  std::int64_t s =
      std::max({detail::seq_hint(lease), detail::read_floor(lease), maker.highest() + 1});
  int taken_in_a_row = 0;
  while (out.size() < count) {
    if (s > max_task_seq)
      throw error(fmt::format("lease {} has no task ids left (T{} reached)", lease.root().string(),
                              max_task_seq));
    if (maker.reserve(s)) {
      out.push_back(s);
      taken_in_a_row = 0;
    } else if (++taken_in_a_row == 64) {
      // The hint is far behind (an old seq file, another client's stale view): jump past
      // every reservation this client can see instead of probing one id at a time.
      s = std::max(s, detail::highest_reservation(lease));
      taken_in_a_row = 0;
    }
    ++s;
  }
  try {
    write_file_atomic(lease.seq(), std::to_string(out.back() + 1) + "\n");
  } catch (...) {
    for (std::int64_t seq : out) maker.release(seq);
    throw;
  }
  return out;
}

// Makes ids/ and ids/floor as the lease tree is made (runner start, lease.json), not at the
// first submit. A reader on a lagging mount that looked for ids/ before it existed keeps "no
// such directory" cached while it already sees the seq file, and reads such a tree by protocol
// 1 rules: every number below seq counts as handed out, the ones submits gave back too, so
// its total goes up, then down. Best effort: a submit reports what fails here.
inline void prepare_ids(const lease_paths& lease) noexcept {
  try {
    detail::read_or_create_floor(lease);
  } catch (const std::exception&) {
  }
}

// One seq, or `count` consecutive ones (the first is returned). Reserved in ids/ as above.
inline std::int64_t allocate_seq(const lease_paths& lease, std::int64_t count = 1) {
  if (count < 1) throw error("allocate_seq: count must be positive");
  detail::reservation_maker maker(lease);
  for (;;) {
    auto seqs = reserve_seqs(lease, static_cast<std::size_t>(count), maker);
    if (seqs.back() - seqs.front() == count - 1) {
      maker.commit_through(seqs.back());  // the caller publishes them
      return seqs.front();
    }
    for (std::int64_t s : seqs) maker.release(s);  // not consecutive: try again past them
  }
}

}  // namespace leaseq
