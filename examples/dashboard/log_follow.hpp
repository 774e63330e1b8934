#pragma once

// The dashboard's live log pane: a tail follower per followed file, the lines shown (trimmed
// fairly across the files), and an inotify watch on the files' directories, so that a line is
// shown as soon as it is written where the filesystem says so. inotify says nothing of other
// NFS or FUSE clients' writes, so the files are also polled every poll_s seconds.

#include "dashboard/model.hpp"

#include <leaseq/detail/dir_watch.hpp>
#include <leaseq/fs.hpp>
#include <leaseq/tail.hpp>

#include <sys/inotify.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace leaseq_dash {

class log_follow {
 public:
  // cap: how many lines the pane keeps (ui.log_tail_lines).
  explicit log_follow(std::size_t cap, double poll_s = 0.25)
      : cap_(std::max<std::size_t>(1, cap)), poll_s_(poll_s) {}

  // Readable when a followed file may have changed (-1 when nothing is watched).
  int wake_fd() const { return watch_ ? watch_->fd() : -1; }

  // The lines to show when they changed: soon after the watch saw a write, else when the
  // poll is due. A file written without pause wakes it at most once a frame (min_gap_s), so a
  // task writing 50 MB/s costs a redraw per frame, not one per write.
  std::optional<msg_log> tick(double now) {
    bool woken = watch_ && watch_->drain();
    if (sources_.empty() || (!woken && now < next_poll_)) return std::nullopt;
    if (woken && now < last_poll_ + min_gap_s) {
      std::this_thread::sleep_for(std::chrono::duration<double>(last_poll_ + min_gap_s - now));
      now = last_poll_ + min_gap_s;
    }
    last_poll_ = now;
    next_poll_ = now + poll_s_;
    return poll(false);
  }

  // Follows t instead of what was followed; returns the lines to show (the backlog), none
  // when t is empty.
  std::optional<msg_log> set(const follow_target& t) {
    sources_.clear();
    shown_.clear();
    follow_id_ = t.id;
    last_mtime_.reset();
    watch_.reset();
    if (t.empty()) return std::nullopt;
    bool multi = t.tasks.size() > 1, merged = t.mode == log_mode::merged;
    leaseq::tail_options o;
    o.overwrite_cr = true;  // a progress bar is one line in its last state, not hundreds
    for (const auto& it : t.tasks) {
      std::vector<std::pair<leaseq::log_stream, std::string>> streams;
      if (t.mode != log_mode::err) streams.push_back({leaseq::log_stream::out, it.out_path});
      if (t.mode != log_mode::out) streams.push_back({leaseq::log_stream::err, it.err_path});
      for (const auto& [stream, path] : streams) {
        std::string label;
        if (multi)
          label =
              it.task + (merged ? std::string(stream == leaseq::log_stream::out ? " out" : " err")
                                : std::string());
        else if (merged)
          label = stream == leaseq::log_stream::out ? "out" : "err";
        if (!label.empty()) label += "│ ";
        source s;
        s.label = label;
        s.path = path;
        if (!path.empty())
          s.follower = std::make_unique<leaseq::tail_follower<>>(path, stream, o);
        else
          shown_.push_back({static_cast<int>(sources_.size()),
                            "-- " + it.task +
                                " has no node yet: waiting for a runner to claim it "
                                "--",
                            true, true});
        sources_.push_back(std::move(s));
      }
    }
    watch_ = make_watch();
    next_poll_ = 0;
    return poll(true);
  }

 private:
  struct source {
    std::string label;
    std::unique_ptr<leaseq::tail_follower<>> follower;
    std::string path;
  };
  struct shown_line {
    int src = 0;
    std::string text;
    bool complete = true;
    bool notice = false;
  };

  // The directories of the followed files, waking only for those files' names.
  std::unique_ptr<leaseq::detail::dir_watch> make_watch() const {
    std::vector<std::filesystem::path> dirs;
    std::vector<std::string> names;
    for (const auto& s : sources_) {
      if (s.path.empty()) continue;
      std::filesystem::path p(s.path);
      if (std::find(dirs.begin(), dirs.end(), p.parent_path()) == dirs.end())
        dirs.push_back(p.parent_path());
      names.push_back(p.filename().string());
    }
    if (dirs.empty()) return nullptr;
    return std::make_unique<leaseq::detail::dir_watch>(
        std::move(dirs), IN_MODIFY | leaseq::detail::dir_watch::name_appears, std::move(names));
  }

  std::optional<msg_log> poll(bool force_emit) {
    bool changed = force_emit;
    std::optional<double> mtime;
    // Lines carry no time, but files do: the file written to least recently goes first, so a
    // merged follow shows each task's backlog in the order they were written, and the new
    // lines of one poll in about the order they came.
    std::vector<std::pair<double, std::size_t>> order;
    for (std::size_t i = 0; i < sources_.size(); ++i) {
      double t = 0;
      leaseq::file_info info = fs_.stat(sources_[i].path);
      if (info.err == 0) {
        t = info.mtime;
        if (!mtime || t > *mtime) mtime = t;
      }
      order.push_back({t, i});
    }
    std::stable_sort(order.begin(), order.end());
    for (const auto& [t, i] : order) {
      source& s = sources_[i];
      if (!s.follower) continue;
      std::vector<leaseq::tail_event> evs;
      s.follower->poll(evs);
      for (auto& e : evs) {
        changed = true;
        add_event(static_cast<int>(i), e);
      }
    }
    trim_fairly(cap_);
    if (mtime != last_mtime_) changed = true;
    last_mtime_ = mtime;
    if (!changed) return std::nullopt;
    msg_log out;
    out.follow_id = follow_id_;
    out.mtime = mtime;
    out.lines.reserve(shown_.size());
    for (const auto& l : shown_)
      out.lines.push_back(sources_[static_cast<std::size_t>(l.src)].label + l.text);
    return out;
  }

  // Keeps `cap` lines, taking the oldest lines of the sources that hold the most: a chatty
  // task's backlog must not push out every line of a quiet one.
  void trim_fairly(std::size_t cap) {
    if (shown_.size() <= cap) return;
    std::vector<std::size_t> count(sources_.size() + 1, 0);
    for (const auto& l : shown_) ++count[static_cast<std::size_t>(l.src)];
    // Water-filling: lower a common ceiling until the lines under it fit in cap.
    std::size_t ceiling = *std::max_element(count.begin(), count.end());
    auto kept = [&](std::size_t c) {
      std::size_t sum = 0;
      for (std::size_t n : count) sum += std::min(n, c);
      return sum;
    };
    while (ceiling > 0 && kept(ceiling) > cap) --ceiling;
    std::vector<std::size_t> drop(count.size(), 0);
    std::size_t extra = cap - kept(ceiling);  // room left under the ceiling: one more line
    for (std::size_t i = 0; i < count.size(); ++i) {
      std::size_t keep = std::min(count[i], ceiling);
      if (count[i] > ceiling && extra > 0) {
        ++keep;
        --extra;
      }
      drop[i] = count[i] - keep;
    }
    std::deque<shown_line> out;
    for (auto& l : shown_) {
      auto& d = drop[static_cast<std::size_t>(l.src)];
      if (d > 0) {
        --d;
        continue;
      }
      out.push_back(std::move(l));
    }
    shown_ = std::move(out);
  }

  void add_event(int src, const leaseq::tail_event& e) {
    using kind = leaseq::tail_event::kind;
    if (e.what == kind::appeared) return;
    if (e.what != kind::line) {
      shown_.push_back({src, "-- " + e.text + " --", true, true});
      return;
    }
    int looked = 0;
    for (auto it = shown_.rbegin(); it != shown_.rend() && looked < 64; ++it, ++looked) {
      if (it->src != src || it->notice) continue;
      if (!it->complete) {
        if (e.rewrites)
          it->text = e.text;
        else
          it->text += e.text;
        it->complete = e.complete;
        return;
      }
      break;
    }
    shown_.push_back({src, e.text, e.complete, false});
  }

  std::size_t cap_;
  double poll_s_;
  leaseq::posix_fs fs_;
  std::vector<source> sources_;
  std::deque<shown_line> shown_;
  std::uint64_t follow_id_ = 0;
  std::optional<double> last_mtime_;
  double next_poll_ = 0, last_poll_ = 0;
  static constexpr double min_gap_s = 0.015;
  std::unique_ptr<leaseq::detail::dir_watch> watch_;
};

}  // namespace leaseq_dash
