#pragma once

// The snapshot store: scans one lease tree and publishes immutable snapshots.
//
// Threading: one thread (the dashboard's background scanner, or the CLI itself) calls
// refresh(); any thread may call latest(), due(), next_due(), task_interval() and
// request_refresh(), and none of them waits for a scan in progress. refresh() does all the I/O
// and then swaps in a new shared_ptr<const snapshot>; readers keep the one they hold for as
// long as they like. A typical scanner loop:
//   while (running) { if (store.due(clock.now())) publish(store.refresh()); sleep(100 ms); }
//
// Cadence (tui-spec "refresh cadence"): heartbeats every ui.refresh_s (2 s); inbox/claimed/done
// every 2 s, backing off by 1 s per scan that found nothing new, up to 5 s; any change, or
// request_refresh() ("refresh now"), brings it back to 2 s. The first refresh() scans all.
//
// Scanning (issue 4): one readdir per directory, no recursive walk, no stat per task file,
// dot-names skipped, each directory's attributes asked of the server every scan (one statx,
// fs.hpp). A directory whose own mtime and size are unchanged since the last scan is not
// re-read, unless its mtime was within
// dir_settle_s (2 s) of that scan, so a change inside the timestamp's granularity is never
// missed. Task and result files are parsed once and cached by name + inode (every protocol
// writer replaces a file by rename, which gives it a new inode; results never change);
// heartbeats are cached by name + inode + size + mtime (they are rewritten every 2 s, and a
// freed inode can come back); one the listing shows with a new inode is read without a stat,
// and parsed without a DOM (heartbeat_sax.hpp). A file that stops parsing keeps its last good view,
// is marked unknown and is retried on every scan; nothing is ever deleted by reading.
//
// Derived state: done/ wins over claimed/, claimed/ over inbox/ (a task in both inbox and
// claimed counts once, as RUNNING). A task seen RUNNING (claimed file, or listed in a
// heartbeat's `running`) that is now in neither claimed/ nor done/ is LOST? until its result
// shows up or ui.lost_confirm_s passes, then LOST. Heartbeats are read before the task
// directories, so a heartbeat never names a task the listing could not have seen yet.
// A task whose id was handed out (ids/, protocol 2; below ids/floor, or below the seq file in a
// protocol 1 tree) but whose file no listing shows is UNKNOWN ("not visible yet"): views never
// shrink while a shared filesystem's cache lags a move. A task this store saw before and that
// drops out of sight keeps its last view, marked unknown (a one-shot reader, with nothing
// seen before, lists it as UNKNOWN). Only
// an id no reservation vouches for is removed after ui.lost_confirm_s; a reservation whose
// submit died before publishing (ticket still 'R', owner gone), or that its submit has not
// committed to yet (protocol 6: it may still give the id back), vouches for nothing.
// Time alone changes only the tasks out of sight (LOST? -> LOST, removal): a task scan that
// finds no listing and no heartbeat's running list changed looks at those few and rebuilds the
// table only when one of them changes, so a lease with a LOST? task costs no more per scan.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "leaseq/archive.hpp"
#include "leaseq/clock.hpp"
#include "leaseq/config.hpp"
#include "leaseq/detail/heartbeat_sax.hpp"
#include "leaseq/detail/prefault.hpp"
#include "leaseq/detail/quote.hpp"
#include "leaseq/detail/strings.hpp"
#include "leaseq/detail/task_sax.hpp"
#include "leaseq/engine/seq.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/fs.hpp"
#include "leaseq/health.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/results_index.hpp"
#include "leaseq/snapshot.hpp"
#include "leaseq/task_file.hpp"

namespace leaseq {

struct store_options {
  ui_config ui;
  // A directory modified less than this long before a scan is always re-read next time.
  double dir_settle_s = 2;
  std::size_t max_file_bytes = max_json_bytes;
  // Threads that read and parse files when one directory has many new ones (a cold scan of a
  // big lease): 0 = up to 8 by the hardware, 1 = only the scanning thread. With more than one,
  // Fs::read is called from several threads at once.
  unsigned load_threads = 0;
  // For one-shot readers that need states, not details (status, tasks of live states): a
  // result whose line in done/<node>/.results vouches for it (results_index.hpp) gives its state
  // without being read (its view has no result or spec) ...
  bool results_from_index = false;
  // ... and a pending task file is counted by its name without being read (no spec), unless a
  // heartbeat lists it as running. A file that does not parse then goes unnoticed.
  bool pending_unread = false;
};

namespace detail {

enum class task_place : std::uint8_t { inbox = 0, claimed = 1, done = 2 };

// One task or result file as last read.
struct cached_file {
  std::int64_t seq = 0;  // the id is format_task_id(seq): only canonical names are cached
  std::uint64_t ino = 0;
  std::shared_ptr<const task_spec> spec;      // inbox/claimed: last good parse
  std::shared_ptr<const task_result> result;  // done: last good parse
  bool bad = false;                           // the current file does not parse
  // ... a claimed file (the runner replaces those) modified less than ui.hb_stale_s ago: most
  // likely read mid-replace through a
  // cache that lags (sshfs, NFS attribute caches give a stale size): lag, not a broken file.
  bool settling = false;
  // store_options::results_from_index: the state the results index gives (not read).
  std::optional<task_state> indexed;
  bool name_only = false;  // store_options::pending_unread: pending, not read
  // Why the file does not parse. Rare, so a pointer: a string per file is 24 MB in a table of
  // a million (issue 19).
  std::unique_ptr<std::string> reason;

  bool known() const noexcept { return spec || result || indexed || name_only; }
};

// One directory as last listed.
struct cached_dir {
  dir_stamp stamp;
  bool listed = false;                // entries below reflect a successful listing
  bool skippable = false;             // stamp is old enough to trust an unchanged stamp
  std::vector<std::string> subdirs;   // for roots: valid lane/node names, sorted
  std::vector<cached_file> files;     // for lanes: task files, any order
  std::vector<scan_error> odd_names;  // for lanes: entries that are not task files
  std::size_t bad_files = 0;          // for lanes: files that do not parse (retried every scan)
  std::uint64_t visited = 0;          // scan number that last used it
};

struct cached_hb {
  file_info info;
  std::optional<heartbeat> hb;
  bool bad = false;
  bool settling = false;  // bad, but modified less than ui.hb_stale_s ago (node_view)
  std::string reason;
  std::uint64_t scan = 0;  // the heartbeat scan that last listed it
};

// Priority among sightings of the same task: done > claimed > inbox.
struct sighting {
  std::int64_t seq;
  task_place place;
  const std::string* lane;
  const cached_file* file;
};

}  // namespace detail

template <class Fs = posix_fs, class Clock = system_clock>
class snapshot_store {
 public:
  snapshot_store(lease_paths paths, std::string lease_id, store_options opts = {}, Fs fs = Fs{},
                 Clock clock = Clock{})
      : paths_(std::move(paths)),
        lease_id_(std::move(lease_id)),
        opts_(opts),
        fs_(std::move(fs)),
        clock_(std::move(clock)) {
    auto s = std::make_shared<snapshot>();
    s->lease_id = lease_id_;
    latest_ = std::move(s);
    task_interval_ = base_interval();
  }

  // Runs the scans that are due (all of them on the first call or after request_refresh())
  // and publishes the resulting snapshot. Returns the latest snapshot either way.
  std::shared_ptr<const snapshot> refresh() {
    std::lock_guard<std::mutex> scan_lock(scan_mu_);
    double now = clock_.now();
    bool forced = refresh_requested_.exchange(false) || scans_ == 0;
    bool do_hb = forced || now >= next_hb_;
    bool do_tasks = forced || now >= next_tasks_;
    if (!do_hb && !do_tasks) return latest();
    ++scans_;
    std::shared_ptr<const snapshot> prev = latest();
    auto next = std::make_shared<snapshot>(*prev);
    next->taken_at = now;
    next->generation = prev->generation + 1;
    if (do_hb) {
      scan_heartbeats();
      next_hb_ = now + opts_.ui.refresh_s;
    }
    if (do_tasks) {
      bool changed = scan_tasks(now, *prev, *next);
      if (forced || changed)
        task_interval_ = base_interval();
      else
        task_interval_ = std::min(task_interval_.load() + 1.0, max_interval());
      next_tasks_ = now + task_interval_;
    }
    build_nodes(now, *next);
    next->errors = dir_errors_;
    next->errors.insert(next->errors.end(), hb_errors_.begin(), hb_errors_.end());
    next->complete = true;
    std::shared_ptr<const snapshot> published = std::move(next);
    {
      std::lock_guard<std::mutex> lock(pub_mu_);
      latest_ = published;
      next_due_ = std::min(next_hb_, next_tasks_);
    }
    return published;
  }

  // request_refresh() + refresh(): a full scan now.
  std::shared_ptr<const snapshot> refresh_all() {
    request_refresh();
    return refresh();
  }

  // The last published snapshot (never null; empty and !complete before the first refresh).
  std::shared_ptr<const snapshot> latest() const {
    std::lock_guard<std::mutex> lock(pub_mu_);
    return latest_;
  }

  // "Refresh now": the next refresh() scans everything and the task cadence restarts at 2 s.
  void request_refresh() noexcept { refresh_requested_ = true; }

  // Clock time at which refresh() has work to do.
  double next_due() const {
    if (refresh_requested_) return 0;
    std::lock_guard<std::mutex> lock(pub_mu_);
    return next_due_;
  }
  bool due(double now) const { return now >= next_due(); }
  // Current interval of the inbox/claimed/done scans (2..5 s with the defaults).
  double task_interval() const noexcept { return task_interval_.load(); }

  const lease_paths& paths() const noexcept { return paths_; }
  const std::string& lease_id() const noexcept { return lease_id_; }
  const store_options& options() const noexcept { return opts_; }
  Fs& filesystem() noexcept { return fs_; }
  Clock& clock() noexcept { return clock_; }

 private:
  using cached_file = detail::cached_file;
  using cached_dir = detail::cached_dir;
  using task_place = detail::task_place;

  double base_interval() const { return opts_.ui.refresh_s; }
  double max_interval() const { return std::max(5.0, opts_.ui.refresh_s); }

  void add_error(std::vector<scan_error>& errs, const fs::path& path, int err, std::string msg) {
    errs.push_back({path.string(), err, std::move(msg)});
  }

  // Lists a directory through the cache. Returns nullptr when it does not exist (a reader
  // treats a missing directory as empty). On an OS error the last good listing is kept.
  // `listed`: the listing list_lanes took for it already.
  cached_dir* list_cached(const std::string& key, const fs::path& path, double now, bool& changed,
                          bool is_root, dir_listing_result* listed = nullptr) {
    cached_dir& d = dirs_[key];
    d.visited = scans_;
    dir_listing_result r = listed ? std::move(*listed) : fs_.list_dir(path, skip_stamp(d));
    if (r.err == ENOENT) {
      if (d.listed) changed = true;
      dirs_.erase(key);
      return nullptr;
    }
    if (r.err != 0) {
      add_error(dir_errors_, path, r.err,
                fmt::format("cannot list {}: {} (showing its last good listing)", path.string(),
                            std::strerror(r.err)));
      d.skippable = false;
      return &d;
    }
    if (r.unchanged) return &d;
    d.stamp = r.stamp;
    d.listed = true;
    d.skippable = r.stamp.mtime < now - opts_.dir_settle_s;
    if (is_root) {
      std::vector<std::string> names;
      for (auto& e : r.entries) names.push_back(std::move(e.name));
      std::sort(names.begin(), names.end());
      if (names != d.subdirs) changed = true;
      d.subdirs = std::move(names);
    } else if (relist_files(d, key, path, std::move(r.entries))) {
      changed = true;
    }
    return &d;
  }

  // Threads for `jobs` pieces of work: store_options::load_threads (0: up to 8 by the
  // hardware), never more than the pieces.
  unsigned worker_threads(std::size_t jobs) const {
    unsigned threads = opts_.load_threads;
    if (threads == 0) threads = std::min(8u, std::max(1u, std::thread::hardware_concurrency()));
    return static_cast<unsigned>(std::min<std::size_t>(threads, jobs));
  }

  static const dir_stamp* skip_stamp(const cached_dir& d) {
    return d.listed && d.skippable ? &d.stamp : nullptr;
  }

  // The listings of a root's lanes (keys[i] at paths[i]), as list_cached would take them, on
  // several threads when the lanes hold many files: listing a million entries is the biggest
  // part of a first scan (the kernel's work, about half a second on tmpfs), and on NFS each
  // lane costs round trips. Nothing is empty where the Fs does not say it may be listed from
  // several threads at once (Fs::concurrent_listing), or where the lanes are few and small.
  std::vector<std::optional<dir_listing_result>> list_lanes(const std::vector<std::string>& keys,
                                                            const std::vector<fs::path>& paths) {
    std::vector<std::optional<dir_listing_result>> out(keys.size());
    if constexpr (!concurrent_listing<Fs>::value) {
      return out;
    } else {
      std::vector<const dir_stamp*> skips(keys.size(), nullptr);
      std::size_t expected = 0;  // entries the listings will return, by the last ones
      for (std::size_t i = 0; i < keys.size(); ++i) {
        auto it = dirs_.find(keys[i]);
        if (it == dirs_.end()) {
          expected += 1024;  // never listed: a first scan
          continue;
        }
        skips[i] = skip_stamp(it->second);
        if (!skips[i]) expected += it->second.files.size();
      }
      unsigned threads = worker_threads(keys.size());
      if (threads <= 1 || expected < 8192) return out;
      std::atomic<std::size_t> next{0};
      auto work = [&] {
        for (std::size_t i; (i = next.fetch_add(1)) < keys.size();)
          out[i] = fs_.list_dir(paths[i], skips[i]);
      };
      std::vector<std::thread> pool;
      for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
      work();
      for (auto& t : pool) t.join();
      return out;
    }
  }

  // Whether a listing shows exactly the cached files, in the same order, with the same inodes
  // and all parsed: the common case of a directory re-read with nothing new in it (readdir
  // order is stable while a directory does not change). Checked without building anything.
  static bool same_files(const cached_dir& d, const std::vector<dir_entry>& entries,
                         std::string_view suffix) {
    if (entries.size() != d.files.size() || !d.odd_names.empty()) return false;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const dir_entry& e = entries[i];
      const cached_file& f = d.files[i];
      if (f.ino == 0 || f.ino != e.ino || f.bad || !f.known()) return false;
      if (!detail::ends_with(e.name, suffix)) return false;
      auto seq = task_seq(std::string_view(e.name).substr(0, e.name.size() - suffix.size()));
      if (!seq || *seq != f.seq) return false;
    }
    return true;
  }

  // Re-reads the entries of a lane directory; true when its set of files or a parse changed.
  bool relist_files(cached_dir& d, const std::string& key, const fs::path& dir,
                    std::vector<dir_entry> entries) {
    bool is_done = key.compare(0, 5, "done/") == 0;
    // The runner rewrites a claimed file (claimed, starting, pid): the only task files that
    // are ever replaced, and so the only ones a lagging cache can show half-read.
    bool rewritten = key.compare(0, 8, "claimed/") == 0;
    std::string_view suffix = is_done ? ".result.json" : ".json";
    if (same_files(d, entries, suffix)) return false;
    std::unordered_map<std::int64_t, std::size_t> old;
    old.reserve(d.files.size());
    for (std::size_t i = 0; i < d.files.size(); ++i) old.emplace(d.files[i].seq, i);
    std::vector<cached_file> files;
    files.reserve(entries.size());
    detail::prefault_capacity(files);
    std::vector<std::size_t> to_load;
    std::vector<char> was_bad;
    d.odd_names.clear();
    bool changed = entries.size() != d.files.size();
    for (auto& e : entries) {
      std::string_view id;
      if (detail::ends_with(e.name, suffix))
        id = std::string_view(e.name).substr(0, e.name.size() - suffix.size());
      auto seq = task_seq(id);
      if (!seq) {
        d.odd_names.push_back({dir.string(), 0,
                               fmt::format("ignoring {} in {}: not a task file name",
                                           detail::quote_for_message(e.name), dir.string())});
        continue;
      }
      cached_file f;
      if (auto it = old.find(*seq); it != old.end())
        f = std::move(d.files[it->second]);
      else
        changed = true;
      f.seq = *seq;
      bool fresh = f.ino != 0 && f.ino == e.ino && !f.bad && f.known();
      f.ino = e.ino;
      if (!fresh) {
        to_load.push_back(files.size());
        was_bad.push_back(f.bad);
      }
      files.push_back(std::move(f));
    }
    if (is_done && opts_.results_from_index && !to_load.empty())
      take_from_index(files, to_load, was_bad, dir);
    if (opts_.pending_unread && key.compare(0, 6, "inbox/") == 0)
      count_by_name(files, to_load, was_bad);
    std::vector<char> present = load_files(files, to_load, dir, suffix, is_done, rewritten);
    bool all_present = true;
    for (std::size_t k = 0; k < to_load.size(); ++k) {
      if (!present[k] || !(was_bad[k] && files[to_load[k]].bad)) changed = true;
      if (!present[k]) all_present = false;
    }
    if (all_present) {
      d.files = std::move(files);  // the common case: no second copy of a big lane
    } else {
      std::vector<cached_file> kept;
      kept.reserve(files.size());
      for (std::size_t k = 0, i = 0; i < files.size(); ++i) {
        if (k < to_load.size() && to_load[k] == i && !present[k++])
          continue;  // vanished between listing and reading
        kept.push_back(std::move(files[i]));
      }
      d.files = std::move(kept);
    }
    // Counted here, where every file was just looked at, so that a scan of an unchanged
    // directory does not walk its files to find the bad ones.
    d.bad_files = static_cast<std::size_t>(
        std::count_if(d.files.begin(), d.files.end(), [](const cached_file& f) { return f.bad; }));
    return changed;
  }

  // store_options::results_from_index: results the index vouches for leave to_load.
  void take_from_index(std::vector<cached_file>& files, std::vector<std::size_t>& to_load,
                       std::vector<char>& was_bad, const fs::path& dir) {
    file_read r = fs_.read_tail(dir / std::string(results_index_name),
                                results_index_read_limit(files.size()));
    if (!r.ok) return;  // no index (protocol 1 to 4, another tool's results): parse them all
    auto index = parse_results_index(r.content, r.content.size() < r.info.size);
    keep_to_load(files, to_load, was_bad, [&](cached_file& f) {
      const results_index_entry* e = find_results_index_entry(index, f.seq, f.ino);
      if (!e) return true;
      f.indexed = e->state;
      return false;
    });
  }

  // store_options::pending_unread: pending files leave to_load, but for those a heartbeat
  // lists as running (claimed, the rename not visible yet: their view needs the spec).
  void count_by_name(std::vector<cached_file>& files, std::vector<std::size_t>& to_load,
                     std::vector<char>& was_bad) {
    keep_to_load(files, to_load, was_bad, [&](cached_file& f) {
      if (running_hint_ && running_hint_->count(format_task_id(f.seq)) > 0) return true;
      f.name_only = true;
      return false;
    });
  }

  // Keeps the entries of to_load (and was_bad) whose file `keep` says must still be read; a
  // file it lets go is good as it is.
  template <class Keep>
  static void keep_to_load(std::vector<cached_file>& files, std::vector<std::size_t>& to_load,
                           std::vector<char>& was_bad, Keep keep) {
    std::size_t out = 0;
    for (std::size_t k = 0; k < to_load.size(); ++k) {
      cached_file& f = files[to_load[k]];
      if (!keep(f)) {
        f.bad = false;
        f.settling = false;
        f.reason.reset();
        continue;
      }
      to_load[out] = to_load[k];
      was_bad[out] = was_bad[k];
      ++out;
    }
    to_load.resize(out);
    was_bad.resize(out);
  }

  // Loads files[to_load[k]] for every k, on several threads when there are many. Returns, per
  // k, whether the file was still there.
  std::vector<char> load_files(std::vector<cached_file>& files,
                               const std::vector<std::size_t>& to_load, const fs::path& dir,
                               std::string_view suffix, bool is_done, bool rewritten) {
    std::vector<char> present(to_load.size(), 0);
    auto work = [&](std::size_t begin, std::size_t step) {
      for (std::size_t k = begin; k < to_load.size(); k += step) {
        cached_file& f = files[to_load[k]];
        // A canonical id built from the seq: safe to join.
        std::string name = format_task_id(f.seq);
        name.append(suffix.data(), suffix.size());
        try {
          present[k] = load_file(f, dir / name, is_done, rewritten);
        } catch (const std::exception& e) {  // bad_alloc and the like: unknown, not a crash
          f.bad = true;
          f.reason = std::make_unique<std::string>(e.what());
          present[k] = 1;
        }
      }
    };
    unsigned threads = worker_threads(to_load.size() / 32 + 1);
    if (threads <= 1) {
      work(0, 1);
      return present;
    }
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work, t, threads);
    work(0, threads);
    for (auto& t : pool) t.join();
    return present;
  }

  // Reads and parses one task or result file into f. False when the file vanished between
  // the listing and the read (it moved on: claimed, or finished): not a sighting.
  bool load_file(cached_file& f, const fs::path& path, bool is_result, bool rewritten) {
    file_read r = fs_.read(path, opts_.max_file_bytes);
    if (!r.ok && r.err == ENOENT) return false;
    auto fail = [&](std::string reason) {
      f.bad = true;
      f.settling = rewritten && r.ok && clock_.now() - r.info.mtime < opts_.ui.hb_stale_s;
      f.reason = std::make_unique<std::string>(std::move(reason));
      return true;
    };
    if (!r.ok) return fail(r.reason);
    if (r.info.ino != 0) f.ino = r.info.ino;
    parsed_task_file p = parse_task_file(r.content, is_result, f.seq);
    if (!p.ok()) return fail(std::move(p.error));
    if (is_result)
      f.result = std::move(p.result);
    else
      f.spec = std::move(p.spec);
    f.bad = false;
    f.reason.reset();
    return true;
  }

  void scan_heartbeats() {
    hb_errors_.clear();
    dir_listing_result r = fs_.list_dir(paths_.hb_dir(), nullptr);
    if (r.err != 0 && r.err != ENOENT) {
      add_error(hb_errors_, paths_.hb_dir(), r.err,
                fmt::format("cannot list {}: {} (showing the last heartbeats)",
                            paths_.hb_dir().string(), std::strerror(r.err)));
      return;
    }
    ++hb_scans_;
    for (const auto& e : r.entries) {
      std::string node;
      if (detail::ends_with(e.name, ".json")) node = e.name.substr(0, e.name.size() - 5);
      if (!is_valid_node(node)) {
        add_error(hb_errors_, paths_.hb_dir(), 0,
                  fmt::format("ignoring {} in {}: not <node>.json with a valid node name",
                              detail::quote_for_message(e.name), paths_.hb_dir().string()));
        continue;
      }
      fs::path path = paths_.heartbeat(node);
      detail::cached_hb& h = hbs_[node];
      // A runner replaces its heartbeat by rename: a listing that shows another inode than the
      // one read last time says it changed, without a stat. The same inode may still have been
      // rewritten in place (another tool): its size and mtime tell.
      bool replaced = e.ino != 0 && h.hb && e.ino != h.info.ino;
      file_info info;
      if (!replaced) {
        info = fs_.stat(path);
        if (info.err == ENOENT) continue;
      }
      bool same = !replaced && !h.bad && h.hb && info.err == 0 && info.ino == h.info.ino &&
                  info.size == h.info.size && info.mtime == h.info.mtime;
      if (!same) {
        file_read fr = fs_.read(path, opts_.max_file_bytes);
        if (!fr.ok && fr.err == ENOENT) continue;
        if (replaced) info = fr.ok ? fr.info : fs_.stat(path);
        std::string reason;
        auto take = [&](heartbeat hb) {
          if (hb.node != node)
            add_error(hb_errors_, path, 0,
                      fmt::format("heartbeat {} says node {}", path.string(),
                                  detail::quote_for_message(hb.node)));
          h.hb = std::move(hb);
          h.info = fr.info;
        };
        heartbeat fast;
        if (fr.ok && detail::heartbeat_sax::parse(fr.content, fast)) {
          take(std::move(fast));  // the common, well-formed heartbeat: no DOM
        } else {
          json_outcome j = fr.ok ? parse_json_tolerant(fr.content) : json_outcome{};
          // A heartbeat caught mid-rewrite (a filesystem whose rename is not atomic to this
          // client, or a writer that rewrites in place) reads torn: read it again before
          // calling it unreadable.
          for (int retry = 0; retry < 3 && fr.ok && !j.ok(); ++retry) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            fr = fs_.read(path, opts_.max_file_bytes);
            if (fr.ok) j = parse_json_tolerant(fr.content);
          }
          if (!fr.ok && fr.err == ENOENT) continue;
          if (!fr.ok) {
            reason = fr.reason;
          } else if (!j.ok()) {
            reason = j.reason;
          } else {
            try {
              heartbeat hb;
              from_json(*j.value, hb);
              take(std::move(hb));
            } catch (const std::exception& ex) {
              reason = ex.what();
            }
          }
        }
        h.bad = !reason.empty();
        double age = clock_.now() - info.mtime;
        h.settling =
            h.bad && info.err == 0 && age < opts_.ui.hb_stale_s && age > -opts_.ui.hb_stale_s;
        h.reason = std::move(reason);
      }
      h.scan = hb_scans_;
    }
    // Heartbeats no longer listed (or gone between the listing and the read) are dropped.
    for (auto it = hbs_.begin(); it != hbs_.end();)
      it = it->second.scan == hb_scans_ ? std::next(it) : hbs_.erase(it);
  }

  // A lane directory this scan listed (or found unchanged), with where it sits.
  struct listed_lane {
    task_place place;
    const std::string* lane;
    const cached_dir* dir;
  };

  // Lists the lane directories under one root, appending them to `out`. Roots and lanes are
  // visited in a fixed order: inbox, then claimed, then done (a rename inbox -> claimed or a
  // finish claimed -> done seen mid-scan still shows the task in one of them).
  void scan_root(task_place place, const char* root_name, const fs::path& root, double now,
                 bool& changed, std::vector<listed_lane>& out) {
    cached_dir* r = list_cached(root_name, root, now, changed, true);
    if (!r) return;
    std::vector<const std::string*> lanes;
    std::vector<std::string> keys;
    std::vector<fs::path> paths;
    for (const std::string& lane : r->subdirs) {
      bool ok = place == task_place::inbox ? is_valid_lane(lane) : is_valid_node(lane);
      if (!ok) {
        add_error(dir_errors_, root, 0,
                  fmt::format("ignoring directory {} in {}: not a valid {} name",
                              detail::quote_for_message(lane), root.string(),
                              place == task_place::inbox ? "lane" : "node"));
        continue;
      }
      node_names_.insert(lane);
      lanes.push_back(&lane);
      keys.push_back(std::string(root_name) + "/" + lane);
      paths.push_back(root / lane);
    }
    // All of one root's lanes are listed before the next root's, as one by one.
    auto listings = list_lanes(keys, paths);
    for (std::size_t i = 0; i < lanes.size(); ++i) {
      const std::string& lane = *lanes[i];
      cached_dir* d = list_cached(keys[i], paths[i], now, changed, false,
                                  listings[i] ? &*listings[i] : nullptr);
      if (!d) continue;
      dir_errors_.insert(dir_errors_.end(), d->odd_names.begin(), d->odd_names.end());
      if (d->bad_files > 0) d->skippable = false;  // retry them next scan
      out.push_back({place, &lane, d});
    }
  }

  // Names of nodes that only show up under logs/ or control/.
  void scan_node_root(const char* root_name, const fs::path& root, double now, bool& changed) {
    cached_dir* r = list_cached(root_name, root, now, changed, true);
    if (!r) return;
    for (const std::string& n : r->subdirs) {
      if (is_valid_node(n))
        node_names_.insert(n);
      else
        add_error(dir_errors_, root, 0,
                  fmt::format("ignoring directory {} in {}: not a valid node name",
                              detail::quote_for_message(n), root.string()));
    }
  }

  // Heartbeat evidence: task id -> (node, hb ts) for every task a heartbeat lists as running.
  std::unordered_map<std::string, std::pair<std::string, double>> hb_running() const {
    std::unordered_map<std::string, std::pair<std::string, double>> out;
    for (const auto& [node, h] : hbs_) {
      if (!h.hb || h.hb->stopped) continue;
      for (const auto& id : h.hb->running)
        if (is_valid_task_id(id)) out[id] = {node, h.hb->ts};
      if (h.hb->running_task_id && is_valid_task_id(*h.hb->running_task_id))
        out.emplace(*h.hb->running_task_id, std::make_pair(node, h.hb->ts));
    }
    return out;
  }

  // Returns true when anything visible changed.
  bool scan_tasks(double now, const snapshot& prev, snapshot& next) {
    dir_errors_.clear();
    node_names_.clear();
    bool changed = false;
    std::vector<listed_lane> lanes;
    auto evidence = hb_running();
    running_hint_ = &evidence;
    scan_root(task_place::inbox, "inbox", paths_.inbox_root(), now, changed, lanes);
    scan_root(task_place::claimed, "claimed", paths_.claimed_root(), now, changed, lanes);
    scan_root(task_place::done, "done", paths_.done_root(), now, changed, lanes);
    running_hint_ = nullptr;
    scan_node_root("logs", paths_.logs_root(), now, changed);
    scan_node_root("control", paths_.control_root(), now, changed);
    scan_allocations(now, changed);
    scan_archive(changed);
    for (auto it = dirs_.begin(); it != dirs_.end();) {
      if (it->second.visited != scans_) {
        it = dirs_.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
    std::vector<std::string> keys = evidence_keys(evidence);
    bool evidence_changed = keys != last_evidence_;
    if (!changed && !evidence_changed && prev.complete && !time_moved(now, prev, evidence))
      return false;
    last_evidence_ = std::move(keys);

    // Only now, with something to rebuild, every file of every lane becomes a sighting.
    std::vector<detail::sighting> seen;
    std::size_t sightings = 0;
    for (const listed_lane& l : lanes) sightings += l.dir->files.size();
    seen.reserve(sightings);
    detail::prefault_capacity(seen);
    for (const listed_lane& l : lanes)
      for (const cached_file& f : l.dir->files) seen.push_back({f.seq, l.place, l.lane, &f});

    std::sort(seen.begin(), seen.end(), [](const detail::sighting& a, const detail::sighting& b) {
      return a.seq != b.seq ? a.seq < b.seq : a.place > b.place;  // best sighting first
    });
    auto table = std::make_shared<std::vector<task_view>>();
    table->reserve(seen.size() + 8);
    detail::prefault_capacity(*table);
    const auto& old = prev.tasks();
    std::size_t oi = 0;
    auto flush_old_before = [&](std::int64_t seq) {
      for (; oi < old.size() && old[oi].seq < seq; ++oi)
        carry_unseen(old[oi], now, evidence, *table);
    };
    for (std::size_t i = 0; i < seen.size();) {
      std::size_t j = i;
      while (j < seen.size() && seen[j].seq == seen[i].seq) ++j;
      flush_old_before(seen[i].seq);
      const task_view* before = oi < old.size() && old[oi].seq == seen[i].seq ? &old[oi] : nullptr;
      if (before) ++oi;
      table->push_back(make_view(seen[i], before, now, evidence));
      i = j;
    }
    flush_old_before(INT64_MAX);
    add_invisible(now, *table);
    // Tasks known only from a heartbeat (one-shot reader, or the claimed file not visible).
    for (const auto& [id, ev] : evidence) {
      auto seq = *task_seq(id);
      if (archived(seq)) continue;
      auto it = std::lower_bound(table->begin(), table->end(), seq,
                                 [](const task_view& v, std::int64_t s) { return v.seq < s; });
      if (it != table->end() && it->seq == seq) continue;
      task_view v;
      v.id = id;
      v.seq = seq;
      v.node = ev.first;
      v.state = task_state::lost_maybe;
      v.last_running_seen = ev.second;
      v.missing_since = now;
      v.unknown = true;
      v.unknown_reason = heartbeat_only_reason(ev.first);
      table->insert(it, std::move(v));
    }
    next.task_table = std::move(table);
    summarize(next);
    return true;
  }

  // Whether time alone changes the view of a task out of sight (LOST? becoming LOST, an id no
  // reservation vouches for any more): with no listing and no heartbeat evidence changed, only
  // those few tasks can change, so only they are looked at, never the whole table. What the
  // rebuild would refresh and no state depends on (last_seen, a LOST? task's
  // last_running_seen from a heartbeat's ts) waits for the next rebuild, as it does when no
  // task is out of sight.
  bool time_moved(double now, const snapshot& prev,
                  const std::unordered_map<std::string, std::pair<std::string, double>>& ev) {
    if (summary_.timed.empty()) return false;
    if (summary_.table != prev.task_table.get()) return true;  // not the table summarized
    std::vector<task_view> out;
    for (std::size_t i : summary_.timed) {
      const task_view& before = prev.tasks()[i];
      out.clear();
      carry_unseen(before, now, ev, out);
      if (out.empty()) return true;  // removed
      const task_view& v = out.front();
      if (v.state != before.state || v.unknown != before.unknown || v.node != before.node ||
          v.unknown_reason != before.unknown_reason)
        return true;
    }
    return false;
  }

  static std::vector<std::string> evidence_keys(
      const std::unordered_map<std::string, std::pair<std::string, double>>& ev) {
    std::vector<std::string> keys;
    keys.reserve(ev.size());
    for (const auto& [id, e] : ev) keys.push_back(id + "@" + e.first);
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  task_view make_view(const detail::sighting& s, const task_view* before, double now,
                      const std::unordered_map<std::string, std::pair<std::string, double>>& ev) {
    const cached_file& f = *s.file;
    task_view v;
    if (before) v = *before;
    v.id = format_task_id(f.seq);
    v.seq = f.seq;
    v.last_seen = now;
    v.missing_since.reset();
    v.unknown = f.bad;
    v.settling = f.bad && f.settling;
    v.unknown_reason = f.bad ? fmt::format("its {} file does not parse: {}",
                                           s.place == task_place::done ? "result" : "task",
                                           f.reason ? *f.reason : std::string())
                             : "";
    switch (s.place) {
      case task_place::done:
        v.node = *s.lane;
        if (f.result) {
          v.result = f.result;
          v.spec = std::shared_ptr<const task_spec>(f.result, &f.result->task);
          v.state = f.result->state;
        } else if (f.indexed) {
          v.state = *f.indexed;
        } else if (!before) {
          v.state = task_state::running;  // a result is there, its outcome not readable yet
        }
        break;
      case task_place::claimed:
        v.node = *s.lane;
        if (f.spec) v.spec = f.spec;
        v.result.reset();
        v.state = task_state::running;
        break;
      case task_place::inbox: {
        if (f.spec) v.spec = f.spec;
        v.result.reset();
        v.node = *s.lane == any_lane ? std::string() : *s.lane;
        v.state = task_state::pending;
        auto it = ev.find(v.id);
        if (it != ev.end()) {  // claimed, the rename not visible yet
          v.state = task_state::running;
          v.node = it->second.first;
        }
        break;
      }
    }
    if (v.state == task_state::running) {
      v.last_running_seen = now;
    }
    return v;
  }

  static std::string heartbeat_only_reason(const std::string& node) {
    return "listed as running by the heartbeat of " + node + ", but in neither claimed/ nor done/";
  }

  // A task of the previous snapshot that this scan did not see.
  void carry_unseen(const task_view& before, double now,
                    const std::unordered_map<std::string, std::pair<std::string, double>>& ev,
                    std::vector<task_view>& out) {
    if (archived(before.seq)) return;  // moved to archive/: counted there
    task_view v = before;
    bool was_running = before.state == task_state::running ||
                       before.state == task_state::lost_maybe || before.state == task_state::lost ||
                       ev.count(before.id) > 0;
    if (!v.missing_since) v.missing_since = now;
    double missing_for = now - *v.missing_since;
    if (was_running) {
      auto it = ev.find(before.id);
      if (it != ev.end()) {
        v.node = it->second.first;
        v.last_running_seen = std::max(v.last_running_seen.value_or(0), it->second.second);
      }
      v.state = before.state == task_state::lost || missing_for >= opts_.ui.lost_confirm_s
                    ? task_state::lost
                    : task_state::lost_maybe;
      v.unknown = v.state == task_state::lost_maybe;
      if (v.state == task_state::lost)
        v.unknown_reason = "not in claimed/ or done/ for longer than ui.lost_confirm_s";
      else if (it != ev.end())
        v.unknown_reason = heartbeat_only_reason(v.node);
      else
        v.unknown_reason = "was RUNNING, now in neither claimed/ nor done/";
      out.push_back(std::move(v));
      return;
    }
    bool vouched = allocated(before.seq, now);
    if (missing_for >= opts_.ui.lost_confirm_s && !vouched) return;  // gone for good: removed
    v.unknown = true;  // its last state, marked unknown: the dashboard holds what it saw
    v.unknown_reason = vouched ? "not visible yet (shared filesystem lag?): its file is in none "
                                 "of inbox/, claimed/, done/ right now"
                               : "its file is no longer visible";
    out.push_back(std::move(v));
  }

  // ---- ids handed out (seq.hpp): which tasks exist even when no listing shows them ----

  void scan_allocations(double now, bool& changed) {
    bool c = false;
    cached_dir* d = list_cached("ids", paths_.ids_dir(), now, c, true);
    if (!d) {
      has_ids_ = false;
      reserved_.clear();
      floor_ = 0;
    } else if (c || !has_ids_) {
      has_ids_ = true;
      reserved_.clear();
      reserved_.reserve(d->subdirs.size());
      for (const std::string& n : d->subdirs)
        if (std::int64_t seq = detail::seq_of_reservation_name(n)) reserved_.push_back(seq);
      std::sort(reserved_.begin(), reserved_.end());
    }
    if (has_ids_ && (c || floor_ == 0)) {
      file_read r = fs_.read(paths_.ids_floor(), 64);
      floor_ = r.ok ? std::max<std::int64_t>(0, detail::parse_seq_text(r.content)) : 0;
    }
    legacy_next_ = 0;
    // The seq file is small but read on every scan of a 1M-task lease: only when it changed.
    file_info si = fs_.stat(paths_.seq());
    if (si.err != 0) {
      seq_hint_ = 0;
      seq_stamp_ = {};
    } else if (si.ino != seq_stamp_.ino || si.mtime != seq_stamp_.mtime ||
               si.size != seq_stamp_.size) {
      file_read r = fs_.read(paths_.seq(), 64);
      std::int64_t hint = r.ok ? std::max<std::int64_t>(0, detail::parse_seq_text(r.content)) : 0;
      // New ids handed out: the table is rebuilt to look for ids not visible yet.
      if (hint != seq_hint_) c = true;
      seq_hint_ = hint;
      seq_stamp_ = si;
    }
    if (!has_ids_) legacy_next_ = seq_hint_;  // a protocol 1 tree: the seq file counts the ids
    changed |= c;
  }

  // Whether seq names a task that exists, per the reservations (not per any listing).
  bool allocated(std::int64_t seq, double now) {
    if (seq < floor_ || (!has_ids_ && seq < legacy_next_)) return true;
    if (!std::binary_search(reserved_.begin(), reserved_.end(), seq)) return false;
    return ticket_vouches(seq, now);
  }

  // A reservation vouches for a task unless its submit died before publishing: ticket 'R',
  // its owner gone (this host) or silent for long (another host), past a grace period longer
  // than any attribute cache (a stale 'R' is then re-read as 'P').
  bool ticket_vouches(std::int64_t seq, double now) {
    auto it = tickets_.find(seq);
    if (it != tickets_.end() && it->second.final) return it->second.vouches;
    file_read r = fs_.read(paths_.ids_dir() / std::to_string(seq), 512);
    ticket_verdict v;
    if (!r.ok) {
      v.vouches = r.err != ENOENT;  // released (a failed submit gave it back): no task
      v.final = false;
    } else if (auto t = detail::parse_ticket(r.content); !t) {
      v.vouches = true;  // not a ticket leaseq wrote: trust it
      v.final = true;
    } else if (t->published) {
      v.vouches = true;
      v.final = true;
    } else {
      auto live = t->owner ? detail::check_liveness(*t->owner) : detail::liveness::unknown;
      double age = now - r.info.mtime;
      double grace = live == detail::liveness::dead ? 60.0 : 600.0;
      bool owner_may_run = live == detail::liveness::alive || age < grace;
      // Protocol 6: an id its submit has not committed to yet may still be given back.
      bool committed = !t->committed_through || seq <= *t->committed_through;
      v.vouches = owner_may_run && committed;
      v.final = !owner_may_run;
    }
    tickets_[seq] = v;
    return v.vouches;
  }

  // Adds an UNKNOWN view for every id handed out that the table does not hold.
  void add_invisible(double now, std::vector<task_view>& table) {
    if (!has_ids_ && legacy_next_ <= 1) return;
    std::int64_t legacy_end = std::max(floor_, has_ids_ ? 0 : legacy_next_);
    std::int64_t highest_seen = table.empty() ? 0 : table.back().seq;
    // A seq file far beyond anything seen was edited or damaged: it vouches for nothing.
    if (legacy_end > highest_seen + 1'000'000) legacy_end = 0;
    std::vector<task_view> extra;
    std::size_t ti = 0;
    auto missing = [&](std::int64_t seq) {
      while (ti < table.size() && table[ti].seq < seq) ++ti;
      return (ti == table.size() || table[ti].seq != seq) && !archived(seq);
    };
    auto add = [&](std::int64_t seq, const char* why) {
      task_view v;
      v.seq = seq;
      v.id = format_task_id(seq);
      v.state = task_state::unknown;
      v.unknown = true;
      v.missing_since = now;
      v.unknown_reason = why;
      extra.push_back(std::move(v));
    };
    for (std::int64_t seq = 1; seq < legacy_end; ++seq)
      if (missing(seq)) add(seq, "not visible yet (shared filesystem lag?): the id was handed out");
    for (std::int64_t seq : reserved_) {
      if (seq < legacy_end || !missing(seq)) continue;
      if (ticket_vouches(seq, now))
        add(seq, "not visible yet (shared filesystem lag, or a submit in progress): ids/ holds it");
    }
    // A cached listing of ids/ (NFS, sshfs) can be older than the listings of the lanes: ids
    // reserved since it was taken are looked up one by one, from the highest listed up to the
    // highest the seq file or any task shows. A name never looked up before is asked of the
    // server, past the directory cache.
    if (has_ids_) {
      std::int64_t listed = reserved_.empty() ? floor_ - 1 : reserved_.back();
      std::int64_t upper = std::max(seq_hint_ - 1, highest_seen);
      upper = std::min(upper, listed + 4096);
      for (std::int64_t seq = std::max(listed, legacy_end - 1) + 1; seq <= upper; ++seq) {
        while (ti < table.size() && table[ti].seq < seq) ++ti;
        if ((ti < table.size() && table[ti].seq == seq) || archived(seq)) continue;
        file_info f = fs_.stat(paths_.ids_dir() / std::to_string(seq));
        if (f.err == 0 && ticket_vouches(seq, now))
          add(seq, "not visible yet (shared filesystem lag): ids/ holds it");
      }
    }
    if (extra.empty()) return;
    std::vector<task_view> merged;
    merged.reserve(table.size() + extra.size());
    std::merge(std::make_move_iterator(table.begin()), std::make_move_iterator(table.end()),
               std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()),
               std::back_inserter(merged),
               [](const task_view& a, const task_view& b) { return a.seq < b.seq; });
    table = std::move(merged);
  }

  void build_nodes(double now, snapshot& s) {
    std::set<std::string> names(node_names_.begin(), node_names_.end());
    for (const auto& [n, h] : hbs_) names.insert(n);
    names.erase(std::string(any_lane));
    s.nodes.clear();
    s.nodes.reserve(names.size());
    for (const auto& n : names) {
      node_view v;
      v.name = n;
      if (auto it = hbs_.find(n); it != hbs_.end()) {
        v.hb = it->second.hb;
        v.hb_unknown = it->second.bad;
        v.hb_settling = it->second.settling;
        v.hb_reason = it->second.reason;
      }
      v.health = compute_health(v.hb, now, opts_.ui.hb_stale_s);
      if (v.hb) {
        v.hb_age_s = heartbeat_age(*v.hb, now);
        v.paused = v.hb->paused;
      }
      s.nodes.push_back(std::move(v));
    }
    for (auto& v : s.nodes) {
      if (auto it = summary_.running.find(v.name); it != summary_.running.end())
        v.running = it->second;
      if (auto it = summary_.pending.find(v.name); it != summary_.pending.end())
        v.pending = it->second;
    }
    s.fs_lag = summary_.lag;
    for (const auto& n : s.nodes)
      if (n.hb_unknown) s.fs_lag = true;
  }

  // What the nodes and the status bar need from a task table, computed once per new table
  // (a heartbeat-only refresh of a 100 000-task lease then costs nothing per task).
  struct table_summary {
    std::unordered_map<std::string, std::vector<std::string>> running;
    std::unordered_map<std::string, std::size_t> pending;
    bool lag = false;  // a task is LOST? or unknown
    // Tasks out of sight (indices into *table): time alone can change their views, so every
    // task scan looks at them (time_moved) even when nothing else changed.
    std::vector<std::size_t> timed;
    const std::vector<task_view>* table = nullptr;
  };

  void summarize(snapshot& s) {
    s.counts = {};
    summary_ = {};
    summary_.table = s.task_table.get();
    for (const auto& t : s.tasks()) {
      ++s.counts[state_index(t.state)];
      if (t.state == task_state::running || t.state == task_state::lost_maybe)
        summary_.running[t.node].push_back(t.id);
      else if (t.state == task_state::pending && !t.node.empty())
        ++summary_.pending[t.node];
      if (t.unknown || t.state == task_state::lost_maybe) summary_.lag = true;
      if (t.missing_since && t.state != task_state::lost)
        summary_.timed.push_back(static_cast<std::size_t>(&t - s.tasks().data()));
    }
    s.archive = archive_;
    s.archived = 0;
    s.archived_counts = {};
    if (!archive_) return;
    s.archived_counts = archive_->counts;
    // A task archived and still live (a clean killed before its unlinks) counts as the live one.
    for (const auto& t : s.tasks())
      if (const archive_range* r = archive_->find(t.seq);
          r && s.archived_counts[state_index(r->state)] > 0)
        --s.archived_counts[state_index(r->state)];
    for (std::size_t i = 0; i < task_state_count; ++i) {
      s.counts[i] += s.archived_counts[i];
      s.archived += s.archived_counts[i];
    }
  }

  // ---- archive/ (protocol 4): one header read per archive file, when it first shows up ----

  bool archived(std::int64_t seq) const { return archive_ && archive_->contains(seq); }

  void scan_archive(bool& changed) {
    bool c = false;
    double now = clock_.now();
    cached_dir* d = list_cached("archive", paths_.archive_dir(), now, c, true);
    if (!d) {
      if (archive_) changed = true;
      archive_.reset();
      archive_files_.clear();
      return;
    }
    // A published archive file never changes: an unchanged listing means nothing new, unless a
    // header did not read last time (it is read again, like any file that did not parse).
    if (!c && archive_ && !archive_retry_) {
      dir_errors_.insert(dir_errors_.end(), archive_errors_.begin(), archive_errors_.end());
      return;
    }
    archive_errors_.clear();
    archive_retry_ = false;
    std::unordered_map<std::string, archive_file_summary> next;
    std::vector<archive_file_summary> files;
    for (const std::string& n : d->subdirs) {
      if (!is_archive_file_name(n)) {
        add_error(archive_errors_, paths_.archive_dir(), 0,
                  fmt::format("ignoring {} in {}: not an archive file name",
                              detail::quote_for_message(n), paths_.archive_dir().string()));
        continue;
      }
      auto it = archive_files_.find(n);
      if (it == archive_files_.end()) {
        fs::path p = paths_.archive_dir() / n;
        read_outcome r = detail::read_first_line(p, opts_.max_file_bytes);
        std::string why = r.reason;
        std::optional<archive_file_summary> f;
        if (r.ok) f = parse_archive_header(r.content, why);
        if (!f) {
          if (r.err != ENOENT)
            add_error(archive_errors_, p, r.err,
                      fmt::format("ignoring archive file {}: {}", p.string(), why));
          archive_retry_ = true;  // look again next scan
          continue;
        }
        f->name = n;
        it = archive_files_.emplace(n, std::move(*f)).first;
      }
      files.push_back(it->second);
      next.emplace(n, std::move(it->second));
    }
    archive_files_ = std::move(next);
    bool same = archive_ && archive_->files.size() == files.size();
    auto merged = merge_archive_files(std::move(files));
    for (std::size_t i = 0; same && i < merged.files.size(); ++i)
      same = merged.files[i].name == archive_->files[i].name;
    if (!same) {
      archive_ = std::make_shared<const archive_index>(std::move(merged));
      changed = true;
    }
    dir_errors_.insert(dir_errors_.end(), archive_errors_.begin(), archive_errors_.end());
  }

  lease_paths paths_;
  std::string lease_id_;
  store_options opts_;
  Fs fs_;
  Clock clock_;

  mutable std::mutex scan_mu_;  // one refresh() at a time
  mutable std::mutex pub_mu_;   // guards latest_ and next_due_
  std::shared_ptr<const snapshot> latest_;
  double next_due_ = 0;
  std::atomic<bool> refresh_requested_{false};

  std::uint64_t scans_ = 0;
  double next_hb_ = 0, next_tasks_ = 0;
  std::atomic<double> task_interval_{2};  // read by other threads while a scan runs
  std::unordered_map<std::string, cached_dir> dirs_;
  std::map<std::string, detail::cached_hb> hbs_;
  std::uint64_t hb_scans_ = 0;
  std::set<std::string> node_names_;
  table_summary summary_;
  std::vector<std::string> last_evidence_;
  // While scan_tasks() lists the lanes: the heartbeats' running tasks (pending_unread).
  const std::unordered_map<std::string, std::pair<std::string, double>>* running_hint_ = nullptr;
  struct ticket_verdict {
    bool vouches = true;
    bool final = false;  // never read again
  };
  bool has_ids_ = false;
  std::int64_t floor_ = 0, legacy_next_ = 0, seq_hint_ = 0;
  file_info seq_stamp_;
  std::vector<std::int64_t> reserved_;  // sorted
  std::unordered_map<std::int64_t, ticket_verdict> tickets_;
  std::vector<scan_error> dir_errors_, hb_errors_;
  std::shared_ptr<const archive_index> archive_;
  std::unordered_map<std::string, archive_file_summary> archive_files_;  // by name: never change
  std::vector<scan_error> archive_errors_;
  bool archive_retry_ = false;  // a header did not read: read it again next scan
};

// For select_tasks(): whether a task's .err log holds anything (one stat per call). The store,
// the filesystem and the paths must outlive the returned function.
template <class Fs>
std::function<bool(const task_view&)> stderr_probe(const Fs& fs, const lease_paths& paths) {
  return [&fs, &paths](const task_view& t) {
    if (!is_valid_node(t.node) || !is_valid_task_id(t.id)) return false;
    file_info info = fs.stat(paths.stderr_log(t.node, t.id));
    return info.err == 0 && info.size > 0;
  };
}

}  // namespace leaseq
