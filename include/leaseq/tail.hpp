#pragma once

// Following and paging log files by polling (it must work on NFS, where inotify hears nothing of
// other clients' writes). The caller decides when to poll: `leaseq follow` polls when a
// detail::dir_watch reports a write, and on a timer.
//
//   tail_follower   one file: polls by offset, re-opens by name, waits for a file that does not
//                   exist yet, restarts from 0 on truncation (and says so), follows a rotation
//                   (inode change) to the new file, holds a partial last line until its newline
//                   or until it is partial_after_s (1 s) old, cuts a line longer than
//                   max_line_bytes and drops the rest of it, so memory stays bounded.
//   merged_follower stdout + stderr of one task, in the order the polls saw them, each line
//                   tagged with its stream.
//   line_ring       the last N lines (ui.log_tail_lines) for a log pane; a partial line is
//                   completed in place when the rest arrives.
//   paged_reader    random access to the lines of a file of any size: line starts are indexed
//                   lazily in chunks (one checkpoint every 1024 lines); never loads the file;
//                   finds the next or previous line that matches, in bounded steps.
//   cr_folder       a byte stream with each \r-rewritten line reduced to its last state.
//
// The followers sanitize (sanitize.hpp) by default; with sanitize = false they pass the bytes
// through unchanged (for a pipe or a file, not a terminal). They are templates over the clock
// and the filesystem (fs.hpp: open, and the open file's stat and read_at), so tests can play
// truncation, rotation and partial lines in memory and move time by hand.

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "leaseq/clock.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/fs.hpp"
#include "leaseq/sanitize.hpp"

namespace leaseq {

enum class log_stream { out, err };

namespace detail {

// The longest prefix of s of at most n bytes that does not end inside a UTF-8 character, so a
// line cut at its length limit stays valid UTF-8.
inline std::size_t utf8_prefix(std::string_view s, std::size_t n) noexcept {
  if (n >= s.size()) return s.size();
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

}  // namespace detail

inline constexpr std::string_view to_string(log_stream s) noexcept {
  return s == log_stream::out ? "stdout" : "stderr";
}

struct tail_event {
  enum class kind {
    line,       // text holds one line, without its newline
    waiting,    // the file does not exist (yet); said once until it appears
    appeared,   // the file was opened
    truncated,  // it shrank below what was read: reading restarts from offset 0
    rotated,    // the name now points at another file (new inode): following the new one
    skipped,    // more than max_backlog was unread: jumped ahead to the newest data
    error,      // it cannot be read (text says why); retried on the next poll
  };
  kind what = kind::line;
  log_stream stream = log_stream::out;
  std::string text;
  bool complete = true;  // false: a partial line shown early; more of it may follow
  bool cut = false;      // the line was longer than max_line_bytes; the rest was dropped
  // (overwrite_cr) The line was rewritten with \r after a partial of it went out: this text
  // replaces that partial's text instead of continuing it.
  bool rewrites = false;
};

struct tail_options {
  std::size_t max_line_bytes = 64 * 1024;
  std::size_t max_read_per_poll = 8u << 20;  // bounds one poll's work and memory
  double partial_after_s = 1.0;
  bool sanitize = true;
  bool from_start = true;  // false: start at the end of an existing file (like tail -f -n0)
  // 0: read everything (follow, logs). Otherwise, when more than this is unread at a poll,
  // skip to the last max_backlog bytes (from the next line start) and say so: for a pane that
  // only shows the last lines of a log written faster than anyone can read it.
  std::size_t max_backlog = 0;
  // A \r not followed by \n starts the line over, as on a terminal: a progress bar (tqdm)
  // that redraws itself 1000 times is one line in its last state, not 1000 lines. Off by
  // default: the file's exact lines (a lone \r is a line break then).
  bool overwrite_cr = false;
};

template <class Clock = system_clock, class Fs = posix_fs>
class tail_follower {
  using file = typename Fs::file;

 public:
  explicit tail_follower(fs::path path, log_stream stream = log_stream::out, tail_options opts = {},
                         Clock clock = Clock{}, Fs fs = Fs{})
      : path_(std::move(path)),
        stream_(stream),
        opts_(opts),
        clock_(std::move(clock)),
        fs_(std::move(fs)) {}

  // Reads what was appended since the last poll; appends events to out. Never throws for I/O.
  void poll(std::vector<tail_event>& out) {
    // Re-opened by name at every poll: on NFS an open revalidates (close-to-open), and the
    // name is what tells a rotation from an append.
    file fresh = fs_.open(path_);
    int name_err = fresh ? 0 : fresh.error();
    file_info by_name;
    if (fresh) {
      by_name = fresh.stat();
      if (by_name.err != 0) {
        name_err = by_name.err;
        fresh = file{};
      }
    }
    if (fresh && !by_name.is_regular) {
      report(out, "not a regular file");
      fresh = file{};
      name_err = EINVAL;
    }
    bool same = fresh && fd_ && by_name.ino == ino_ && by_name.dev == dev_;
    if (same) {
      fd_ = std::move(fresh);
    } else if (fresh && fd_) {
      read_available(out, SIZE_MAX);  // the old file's last words first
      end_content(out, true);
      adopt(std::move(fresh), by_name, out, tail_event::kind::rotated);
    } else if (fresh) {
      adopt(std::move(fresh), by_name, out, tail_event::kind::appeared);
    } else if (!fd_) {
      if (name_err == ENOENT) {
        if (!said_waiting_) notice(out, tail_event::kind::waiting, "waiting for the file");
        said_waiting_ = true;
      } else if (name_err != EINVAL) {
        report(out, std::string("cannot open: ") + std::strerror(name_err));
      }
      return;
    }
    // (a name that vanished leaves the open file readable: keep reading it until a new one
    // shows up under the name)
    if (!fd_) return;
    file_info st = fd_.stat();
    if (st.err == 0 && st.size < offset_) {
      end_content(out, true);
      offset_ = 0;
      notice(out, tail_event::kind::truncated, "file truncated: reading again from the start");
    }
    if (opts_.max_backlog > 0 && st.err == 0 && st.size > offset_ + opts_.max_backlog) {
      auto target = st.size - opts_.max_backlog;
      end_content(out, true);
      notice(out, tail_event::kind::skipped,
             fmt::format("skipped {} bytes to keep up with the writer", target - offset_));
      offset_ = target;
      cutting_ = true;  // resume at the next line start
    }
    read_available(out, opts_.max_read_per_poll);
    if (!pending_.empty() && clock_.now() - pending_since_ >= opts_.partial_after_s)
      flush_partial(out, false);
  }

  std::vector<tail_event> poll() {
    std::vector<tail_event> out;
    poll(out);
    return out;
  }

  // Reads to the end and emits a held partial line (complete = false: the file has no newline
  // there): call once the writer is known to be done.
  void drain(std::vector<tail_event>& out) {
    poll(out);
    if (fd_) read_available(out, SIZE_MAX);
    end_content(out, false);
  }

  const fs::path& path() const noexcept { return path_; }
  log_stream stream() const noexcept { return stream_; }
  std::uint64_t offset() const noexcept { return offset_; }
  bool is_open() const noexcept { return static_cast<bool>(fd_); }
  // Bytes of over-long lines that were dropped.
  std::uint64_t bytes_dropped() const noexcept { return dropped_; }
  // Bytes currently held back (a partial line); never more than max_line_bytes.
  std::size_t bytes_held() const noexcept { return pending_.size(); }

 private:
  void notice(std::vector<tail_event>& out, tail_event::kind k, std::string text) {
    tail_event e;
    e.what = k;
    e.stream = stream_;
    e.text = std::move(text);
    out.push_back(std::move(e));
  }
  void report(std::vector<tail_event>& out, std::string why) {
    if (why == last_error_) return;  // once per distinct problem
    last_error_ = why;
    notice(out, tail_event::kind::error, path_.string() + ": " + why);
  }

  void adopt(file fd, const file_info& st, std::vector<tail_event>& out, tail_event::kind k) {
    bool first = !opened_once_;
    fd_ = std::move(fd);
    ino_ = st.ino;
    dev_ = st.dev;
    offset_ = first && !opts_.from_start ? st.size : 0;
    opened_once_ = true;
    said_waiting_ = false;
    last_error_.clear();
    sanitizer_ = stream_sanitizer{};
    notice(out, k,
           k == tail_event::kind::rotated ? "file rotated: following the new file" : "file opened");
  }

  void read_available(std::vector<tail_event>& out, std::size_t budget) {
    char buf[64 * 1024];
    std::string clean;
    while (budget > 0) {
      std::size_t want = std::min(sizeof buf, budget);
      read_chunk r = fd_.read_at(buf, want, offset_);
      if (r.err != 0) {
        report(out, std::string("cannot read: ") + std::strerror(r.err));
        return;
      }
      if (r.n == 0) return;
      offset_ += r.n;
      budget -= r.n;
      std::string_view data(buf, r.n);
      if (!opts_.overwrite_cr) {
        pass_text(data, clean, out);
        continue;
      }
      // Split at each \r: the text before it goes in, and the line starts over unless a \n
      // follows (\r\n is a line break). A \r at the end of a read waits for the next byte.
      std::size_t start = 0;
      for (std::size_t i = 0; i < data.size(); ++i) {
        if (cr_held_ && data[i] != '\r') {  // \r\r\n is still one line break
          cr_held_ = false;
          if (data[i] != '\n') rewrite_line();
        }
        if (data[i] == '\r') {
          pass_text(data.substr(start, i - start), clean, out);
          start = i + 1;
          cr_held_ = true;
        }
      }
      pass_text(data.substr(start), clean, out);
    }
  }

  void pass_text(std::string_view data, std::string& clean, std::vector<tail_event>& out) {
    if (data.empty()) return;
    if (opts_.sanitize) {
      clean.clear();
      sanitizer_.feed(data, clean);
      append_text(clean, out);
    } else {
      append_text(data, out);
    }
  }

  // The held line is thrown away; if part of it was shown already, the next text of the line
  // replaces it. The line keeps its start time, so a bar redrawn faster than partial_after_s
  // is still shown while it runs.
  void rewrite_line() {
    pending_.clear();
    sanitizer_ = stream_sanitizer{};
    cutting_ = false;
    keep_since_ = true;
    if (partial_shown_) rewrites_next_ = true;
  }

  void append_text(std::string_view data, std::vector<tail_event>& out) {
    while (!data.empty()) {
      std::size_t nl = data.find('\n');
      std::string_view piece = data.substr(0, nl);
      if (cutting_) {
        dropped_ += piece.size();
      } else {
        if (pending_.empty() && !piece.empty()) {
          if (!keep_since_) pending_since_ = clock_.now();
          keep_since_ = false;
        }
        std::size_t room = opts_.max_line_bytes - pending_.size();
        if (piece.size() < room) {
          pending_.append(piece);
        } else {
          if (opts_.sanitize) room = detail::utf8_prefix(piece, room);
          pending_.append(piece.substr(0, room));
          dropped_ += piece.size() - room;
          emit(out, true, true);
          cutting_ = true;
        }
      }
      if (nl == std::string_view::npos) return;
      if (cutting_)
        cutting_ = false;
      else
        emit(out, true, false);
      data.remove_prefix(nl + 1);
    }
  }

  void emit(std::vector<tail_event>& out, bool complete, bool cut) {
    tail_event e;
    e.stream = stream_;
    e.text = std::move(pending_);
    e.complete = complete;
    e.cut = cut;
    e.rewrites = std::exchange(rewrites_next_, false);
    partial_shown_ = !complete;
    if (complete) keep_since_ = false;
    out.push_back(std::move(e));
    pending_.clear();
  }

  // The content read so far has ended (end of input, truncation, rotation): whatever the
  // sanitizer and the line buffer hold comes out, and both start afresh. `complete` says
  // whether a held partial line counts as ended (true when the file moved on).
  void end_content(std::vector<tail_event>& out, bool complete) {
    if (opts_.sanitize) {
      std::string rest;
      sanitizer_.finish(rest);
      append_text(rest, out);
      sanitizer_ = stream_sanitizer{};
    }
    flush_partial(out, complete);
    cutting_ = false;
  }

  // A held partial line: shown as the newest data (complete = false), or ended for good.
  void flush_partial(std::vector<tail_event>& out, bool complete) {
    if (!pending_.empty()) emit(out, complete, false);
  }

  fs::path path_;
  log_stream stream_;
  tail_options opts_;
  Clock clock_;
  Fs fs_;
  file fd_;
  std::uint64_t ino_ = 0, dev_ = 0, offset_ = 0, dropped_ = 0;
  std::string pending_;
  double pending_since_ = 0;
  bool cutting_ = false, said_waiting_ = false, opened_once_ = false;
  // overwrite_cr: a \r ended the last read; part of the line was emitted; the next emitted
  // text replaces that part; the line's start time survives a rewrite.
  bool cr_held_ = false, partial_shown_ = false, rewrites_next_ = false, keep_since_ = false;
  std::string last_error_;
  stream_sanitizer sanitizer_;
};

// stdout and stderr of one task, merged in the order the polls saw their lines.
template <class Clock = system_clock, class Fs = posix_fs>
class merged_follower {
 public:
  merged_follower(fs::path out_path, fs::path err_path, tail_options opts = {},
                  Clock clock = Clock{}, Fs fs = Fs{})
      : out_(std::move(out_path), log_stream::out, opts, clock, fs),
        err_(std::move(err_path), log_stream::err, opts, clock, fs) {}

  void poll(std::vector<tail_event>& out) {
    out_.poll(out);
    err_.poll(out);
  }
  std::vector<tail_event> poll() {
    std::vector<tail_event> out;
    poll(out);
    return out;
  }
  void drain(std::vector<tail_event>& out) {
    out_.drain(out);
    err_.drain(out);
  }
  tail_follower<Clock, Fs>& stdout_follower() noexcept { return out_; }
  tail_follower<Clock, Fs>& stderr_follower() noexcept { return err_; }

 private:
  tail_follower<Clock, Fs> out_, err_;
};

// One line of a log pane.
struct log_line {
  log_stream stream = log_stream::out;
  std::string text;
  bool complete = true;
  bool cut = false;
  bool notice = false;  // a follower's notice (truncated, rotated, ...), not file content
};

// The last `capacity` lines. A partial line is completed in place when the rest of it arrives.
class line_ring {
 public:
  explicit line_ring(std::size_t capacity = 200) : capacity_(std::max<std::size_t>(1, capacity)) {}

  void push(const tail_event& e, std::size_t max_line_bytes = 64 * 1024) {
    if (e.what == tail_event::kind::line) {
      for (auto it = lines_.rbegin(); it != lines_.rend(); ++it) {
        if (it->notice || it->stream != e.stream) continue;
        if (!it->complete) {
          if (e.rewrites) it->text.clear();
          std::size_t room =
              max_line_bytes > it->text.size() ? max_line_bytes - it->text.size() : 0;
          it->text.append(e.text, 0, detail::utf8_prefix(e.text, room));
          it->complete = e.complete;
          it->cut = it->cut || e.cut || e.text.size() > room;
          return;
        }
        break;
      }
      add({e.stream, e.text, e.complete, e.cut, false});
    } else if (e.what != tail_event::kind::appeared &&
               (e.what != tail_event::kind::waiting || lines_.empty())) {
      add({e.stream, "-- " + std::string(to_string(e.stream)) + ": " + e.text + " --", true, false,
           true});
    }
  }
  void push_all(const std::vector<tail_event>& events) {
    for (const auto& e : events) push(e);
  }
  // Moves the lines in (no copy of their text).
  void push(tail_event&& e, std::size_t max_line_bytes = 64 * 1024) {
    if (e.what == tail_event::kind::line && (lines_.empty() || lines_.back().complete)) {
      bool merge = false;
      for (auto it = lines_.rbegin(); it != lines_.rend(); ++it) {
        if (it->notice || it->stream != e.stream) continue;
        merge = !it->complete;
        break;
      }
      if (!merge) {
        add({e.stream, std::move(e.text), e.complete, e.cut, false});
        return;
      }
    }
    push(static_cast<const tail_event&>(e), max_line_bytes);
  }
  void push_all(std::vector<tail_event>&& events) {
    for (auto& e : events) push(std::move(e));
  }

  std::size_t size() const noexcept { return lines_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }
  const log_line& operator[](std::size_t i) const { return lines_[i]; }
  // Lines pushed out of the ring so far.
  std::uint64_t evicted() const noexcept { return evicted_; }
  auto begin() const { return lines_.begin(); }
  auto end() const { return lines_.end(); }
  void clear() { lines_.clear(); }

 private:
  void add(log_line l) {
    lines_.push_back(std::move(l));
    while (lines_.size() > capacity_) {
      lines_.pop_front();
      ++evicted_;
    }
  }
  std::size_t capacity_;
  std::deque<log_line> lines_;
  std::uint64_t evicted_ = 0;
};

// A log's bytes as a terminal leaves them, for `leaseq logs` on a terminal: a line rewritten
// with \r (a progress bar) keeps only its last state; \r\n is a line break. Memory stays
// bounded: a line part longer than max_hold bytes goes out as it is, and a \r after it starts a
// new line rather than rewriting text already written.
class cr_folder {
 public:
  explicit cr_folder(std::size_t max_hold = 1u << 20)
      : max_hold_(std::max<std::size_t>(1, max_hold)) {}

  void feed(std::string_view data, std::string& out) {
    for (char c : data) {
      if (cr_held_ && c == '\r') continue;  // \r\r\n is still one line break
      if (cr_held_) {
        cr_held_ = false;
        if (c != '\n') {
          held_.clear();
          if (spilled_) out += '\n';
          spilled_ = false;
        }
      }
      if (c == '\r') {
        cr_held_ = true;
      } else if (c == '\n') {
        out += held_;
        out += '\n';
        held_.clear();
        spilled_ = false;
      } else {
        held_ += c;
        if (held_.size() >= max_hold_) {
          out += held_;
          held_.clear();
          spilled_ = true;
        }
      }
    }
  }

  // End of input: the last line's last state (a \r at the very end rewrites nothing).
  void finish(std::string& out) {
    out += held_;
    held_.clear();
    cr_held_ = spilled_ = false;
  }

 private:
  std::size_t max_hold_;
  std::string held_;
  bool cr_held_ = false, spilled_ = false;
};

// Lines of a file of any size by number, without loading it: line starts are found by reading
// forward in chunks, keeping one checkpoint offset every `every` lines (8 bytes per 1024 lines).
// Lines come back raw (run them through sanitize() for a terminal), cut at max_line_bytes.
class paged_reader {
 public:
  explicit paged_reader(fs::path path, std::size_t max_line_bytes = 64 * 1024,
                        std::size_t every = 1024)
      : path_(std::move(path)), max_line_(max_line_bytes), every_(std::max<std::size_t>(1, every)) {
    reload();
  }

  // Re-opens the file by name: a file that grew is indexed further on demand, one that shrank
  // or was replaced is indexed again from the start. False when it cannot be opened.
  bool reload() {
    posix_fs::file fd = posix_fs{}.open(path_);
    file_info st = fd ? fd.stat() : file_info{};
    if (!fd || st.err != 0 || !st.is_regular) {
      error_ = fd ? "not a regular file" : std::strerror(fd.error());
      fd_ = posix_fs::file{};
      size_ = 0;
      reset_index();
      return false;
    }
    error_.clear();
    if (st.ino != ino_ || st.size < scanned_) reset_index();
    ino_ = st.ino;
    size_ = st.size;
    fd_ = std::move(fd);
    return true;
  }

  const std::string& error() const noexcept { return error_; }
  std::uint64_t size_bytes() const noexcept { return size_; }

  // Number of lines (a last line without newline counts). Indexes the rest of the file.
  std::uint64_t line_count() {
    index_until(UINT64_MAX);
    return newlines_ + (size_ > 0 && !last_is_newline_ ? 1 : 0);
  }

  // Where find() stopped: the first line matching (if any), and the line it would look at
  // next. `searched_all` is false when max_lines ran out first (search on from `next`).
  struct find_result {
    std::optional<std::uint64_t> line;
    std::uint64_t next = 0;
    bool searched_all = true;
  };

  // The first line at or after `from` (forward) or at or before it (backward) for which
  // `match` is true, looking at no more than max_lines lines, so a search through a huge log
  // answers in bounded time and can be taken up again.
  template <typename Match>
  find_result find(const Match& match, std::uint64_t from, bool forward,
                   std::uint64_t max_lines = 4'000'000) {
    find_result r;
    std::uint64_t looked = 0;
    const std::size_t batch = every_;
    if (forward) {
      for (std::uint64_t first = from;; first += batch) {
        auto got = lines(first, batch);
        for (std::size_t i = 0; i < got.size(); ++i) {
          if (match(std::string_view(got[i]))) {
            r.line = first + i;
            r.next = first + i + 1;
            return r;
          }
        }
        looked += got.size();
        r.next = first + got.size();
        if (got.size() < batch) return r;
        if (looked >= max_lines) {
          r.searched_all = false;
          return r;
        }
      }
    }
    // Backward: batches that end at `from`, each read forward and looked at from its end.
    std::uint64_t end = from + 1;  // one past the last line to look at
    while (end > 0) {
      std::uint64_t first = end > batch ? end - batch : 0;
      auto got = lines(first, static_cast<std::size_t>(end - first));
      for (std::size_t i = got.size(); i-- > 0;) {
        if (match(std::string_view(got[i]))) {
          r.line = first + i;
          r.next = first + i > 0 ? first + i - 1 : 0;
          return r;
        }
      }
      looked += end - first;
      end = first;
      r.next = end > 0 ? end - 1 : 0;
      if (end > 0 && looked >= max_lines) {
        r.searched_all = false;
        return r;
      }
    }
    return r;
  }

  // Lines [first, first + count); fewer at the end of the file.
  std::vector<std::string> lines(std::uint64_t first, std::size_t count) {
    std::vector<std::string> out;
    if (!fd_ || count == 0) return out;
    index_until(first);
    std::uint64_t k = std::min<std::uint64_t>(first / every_, checkpoints_.size() - 1);
    std::uint64_t line = k * every_, off = checkpoints_[k];
    char buf[64 * 1024];
    std::string cur;
    while (off < size_ && out.size() < count) {
      std::size_t n = fd_.read_at(buf, sizeof buf, off).n;
      if (n == 0) break;
      for (std::size_t i = 0; i < n && out.size() < count; ++i) {
        if (buf[i] == '\n') {
          if (line >= first) out.push_back(std::move(cur));
          cur.clear();
          ++line;
        } else if (line >= first) {
          if (cur.size() < max_line_) cur += buf[i];
        }
      }
      off += static_cast<std::uint64_t>(n);
    }
    if (off >= size_ && !cur.empty() && line >= first && out.size() < count)
      out.push_back(std::move(cur));
    return out;
  }

 private:
  void reset_index() {
    checkpoints_.assign(1, 0);
    scanned_ = 0;
    newlines_ = 0;
    last_is_newline_ = false;
  }

  // Scans forward until the checkpoint at or before `line` is known (or the end of file).
  void index_until(std::uint64_t line) {
    if (!fd_) return;
    char buf[256 * 1024];
    while (scanned_ < size_ && (line == UINT64_MAX || newlines_ < line)) {
      std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(sizeof buf, size_ - scanned_));
      std::size_t n = fd_.read_at(buf, want, scanned_).n;
      if (n == 0) {
        size_ = scanned_;  // it shrank under us; reload() notices
        break;
      }
      for (std::size_t i = 0; i < n; ++i) {
        if (buf[i] != '\n') continue;
        ++newlines_;
        if (newlines_ % every_ == 0)
          checkpoints_.push_back(scanned_ + static_cast<std::uint64_t>(i) + 1);
      }
      last_is_newline_ = buf[n - 1] == '\n';
      scanned_ += static_cast<std::uint64_t>(n);
    }
  }

  fs::path path_;
  std::size_t max_line_, every_;
  posix_fs::file fd_;
  std::uint64_t ino_ = 0, size_ = 0;
  std::string error_;
  std::vector<std::uint64_t> checkpoints_{0};  // offset of line k * every_
  std::uint64_t scanned_ = 0, newlines_ = 0;
  bool last_is_newline_ = false;
};

}  // namespace leaseq
