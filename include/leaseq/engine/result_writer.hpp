#pragma once

// Writes task results on a thread of their own, so the runner's loop does not wait for them.
//
// A result must be durable before its claimed file goes (protocol: write, fsync, rename, then
// unlink claimed/). The fsync is the slowest step of a short task on a local disk (a journal
// commit, about a millisecond; 10 ms and more on a busy one); done here, it overlaps the runner
// claiming and spawning the next task instead of delaying it. Results that finish while one is
// being flushed are committed together (group commit): each written under its temp name, all
// flushed by one syncfs, then each renamed onto its final name and only then its claimed file
// unlinked. Every job keeps the order result durable -> rename -> unlink, so a kill -9 at any
// moment leaves what the synchronous path would: a temp file (ignored, the claimed file still
// there) or a result with or without its claimed file (a task seen in both is done).
//
// The runner hands over jobs and collects outcomes on its own thread; `on_done` is called from
// the writer's thread after each batch (the runner uses it to wake its poll()).

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "leaseq/detail/fault.hpp"
#include "leaseq/error.hpp"
#include "leaseq/file_io.hpp"

namespace leaseq {

class result_writer {
 public:
  struct job {
    std::string id;
    fs::path path;                    // done/<node>/<id>.result.json
    std::string content;              // the result's JSON text
    std::optional<fs::path> claimed;  // unlinked once the result is durable
  };
  struct outcome {
    std::string id;
    std::optional<std::string> error;  // why the result is not written (the job is dropped)
  };

  explicit result_writer(std::function<void()> on_done = {}) : on_done_(std::move(on_done)) {
    // Signals stay with the runner's thread: its handlers wake the runner's poll().
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    thread_ = std::thread([this] { loop(); });
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  result_writer(const result_writer&) = delete;
  result_writer& operator=(const result_writer&) = delete;

  // Finishes the job in progress and drops those not started: their claimed files stay, so a
  // later runner of the node reports them (runner_lost) instead of losing them silently.
  ~result_writer() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  void submit(job j) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      todo_.push_back(std::move(j));
    }
    wake_.notify_one();
  }

  // Outcomes of the jobs finished since the last call.
  std::vector<outcome> collect() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<outcome> out;
    out.swap(finished_);
    return out;
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return quit_ || !todo_.empty(); });
      if (quit_) return;
      std::deque<job> batch;
      batch.swap(todo_);
      lock.unlock();
      std::vector<outcome> done = write_batch(batch);
      lock.lock();
      for (auto& o : done) finished_.push_back(std::move(o));
      if (on_done_) {
        lock.unlock();
        on_done_();
        lock.lock();
      }
    }
  }

  static outcome write(const job& j) {
    outcome o{j.id, std::nullopt};
    try {
      write_file_atomic(j.path, j.content, 0600, false);
    } catch (const error& e) {
      o.error = e.what();
      return o;
    }
    if (j.claimed) ::unlink(j.claimed->c_str());
    return o;
  }

  // One job: its own fsync. Several: temp files, one syncfs, renames, unlinks.
  static std::vector<outcome> write_batch(const std::deque<job>& batch) {
    std::vector<outcome> done;
    done.reserve(batch.size());
    if (batch.size() == 1) {
      done.push_back(write(batch.front()));
      return done;
    }
    std::vector<std::optional<fs::path>> temps;
    const std::string suffix = detail::temp_suffix();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const job& j = batch[i];
      done.push_back({j.id, std::nullopt});
      fs::path tmp = detail::temp_name_for(j.path, suffix + "." + std::to_string(i));
      try {
        detail::write_new_file(tmp, j.content, 0600, false);
        temps.push_back(std::move(tmp));
      } catch (const error& e) {
        done.back().error = e.what();
        temps.push_back(std::nullopt);
      }
    }
    std::optional<std::string> flush_error;
    for (std::size_t i = 0; i < batch.size() && !flush_error; ++i) {
      if (!temps[i]) continue;
      detail::unique_fd dir(
          ::open(batch[i].path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!dir || ::syncfs(dir.get()) != 0)
        flush_error = io_error("cannot flush", batch[i].path.parent_path(), errno).what();
      break;  // every result of a runner lives in its done/<node>: one filesystem
    }
    // syncfs, not an fsync per file: measured on ext4 with other programs writing (issue 19,
    // docs/performance.md), a batch's fsyncs (each its own journal commit, writeback of all
    // started first) made the runner slower, 45-62 tasks/s against 60-124 with syncfs.
    if (fault_hit(fault_point::batch_kill_before_rename)) ::kill(::getpid(), SIGKILL);
    if (fault_hit(fault_point::batch_stall_before_rename)) ::sleep(3);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!temps[i]) continue;
      const job& j = batch[i];
      if (flush_error || ::rename(temps[i]->c_str(), j.path.c_str()) != 0) {
        done[i].error =
            flush_error
                ? *flush_error
                : std::string(
                      io_error("cannot rename onto final name", j.path.string(), errno).what());
        ::unlink(temps[i]->c_str());
        continue;
      }
      if (j.claimed) ::unlink(j.claimed->c_str());
    }
    return done;
  }

  std::function<void()> on_done_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<job> todo_;
  std::vector<outcome> finished_;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace leaseq
