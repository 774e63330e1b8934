// Tail follower benchmark (issue 4): a writer process appends 50 MB/s for 10 s; the follower polls
// every 100 ms into a 200-line ring (as the dashboard does) and must keep up with bounded memory.
// Reports the writer's achieved rate, the follower's lag (bytes behind the file's size right
// after each poll, and that in seconds of writing), peak bytes held and heap in use. Baseline,
// same run: a bare pread loop over the finished file vs the follower (sanitize + split) over it.
//
//   leaseq_bench_tail [SECONDS] [MB_PER_S] [DIR]     (defaults: 10, 50, $TMPDIR or /tmp)
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <leaseq/file_io.hpp>
#include <leaseq/tail.hpp>

using namespace leaseq;
using clk = std::chrono::steady_clock;

namespace {

double heap_mb() {
  struct mallinfo2 mi = ::mallinfo2();
  return static_cast<double>(mi.uordblks + mi.hblkhd) / (1024.0 * 1024.0);
}

double secs_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

// Writes `seconds` worth of `rate` bytes/s in 10 ms slices of ~100-byte lines (every 50th
// line coloured, as real program output often is).
[[noreturn]] void writer(const fs::path& path, double seconds, double rate) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) ::_exit(1);
  std::string slice;
  long line = 0;
  auto t0 = clk::now();
  const double step = 0.01;
  const auto per_slice = static_cast<std::size_t>(rate * step);
  for (int i = 0; i * step < seconds; ++i) {
    slice.clear();
    while (slice.size() < per_slice) {
      char buf[160];
      int n = std::snprintf(buf, sizeof buf,
                            line % 50 == 0 ? "\x1b[32mstep %09ld loss=0.%06ld\x1b[0m %s\n"
                                           : "step %09ld loss=0.%06ld %s\n",
                            line, line % 1000000,
                            "................................................"
                            "..........");
      slice.append(buf, static_cast<std::size_t>(n));
      ++line;
    }
    if (!detail::write_all(fd, slice.data(), slice.size())) ::_exit(1);
    auto due = t0 + std::chrono::duration<double>((i + 1) * step);
    std::this_thread::sleep_until(due);
  }
  ::close(fd);
  std::FILE* f = std::fopen((path.string() + ".lines").c_str(), "w");
  if (f) {
    std::fprintf(f, "%ld\n", line);
    std::fclose(f);
  }
  ::_exit(0);
}

std::uint64_t size_of(const fs::path& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 10;
  double mbps = argc > 2 ? std::atof(argv[2]) : 50;
  const char* tmpdir = std::getenv("TMPDIR");
  fs::path base = argc > 3 ? fs::path(argv[3]) : fs::path(tmpdir && *tmpdir ? tmpdir : "/tmp");
  fs::path dir = base / ("leaseq-bench-tail-" + std::to_string(::getpid()));
  ensure_dir(dir);
  fs::path log = dir / "T001.out";
  double rate = mbps * 1024 * 1024;

  tail_follower<> follower(log);  // sanitizing, as for a terminal
  line_ring ring(200);
  std::vector<tail_event> events;
  double heap0 = heap_mb(), heap_peak = 0;
  std::uint64_t lag_max = 0, lines = 0, held_max = 0, polls = 0;
  double lag_sum = 0;

  std::printf("writer: %.0f MB/s for %.0f s into %s; follower polls every 100 ms\n", mbps, seconds,
              log.c_str());
  pid_t pid = ::fork();
  if (pid < 0) return 1;
  if (pid == 0) writer(log, seconds, rate);
  auto t0 = clk::now();
  for (;;) {
    int status = 0;
    bool done = ::waitpid(pid, &status, WNOHANG) == pid;
    events.clear();
    follower.poll(events);
    for (auto& e : events) {
      if (e.what == tail_event::kind::line) ++lines;
      ring.push(std::move(e));
    }
    ++polls;
    std::uint64_t size = size_of(log);
    std::uint64_t lag = size > follower.offset() ? size - follower.offset() : 0;
    lag_max = std::max(lag_max, lag);
    lag_sum += static_cast<double>(lag);
    held_max = std::max<std::uint64_t>(held_max, follower.bytes_held());
    heap_peak = std::max(heap_peak, heap_mb() - heap0);
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  double wall = secs_since(t0);
  events.clear();
  follower.drain(events);
  for (const auto& e : events)
    if (e.what == tail_event::kind::line) ++lines;
  std::uint64_t total = size_of(log);
  long written_lines = 0;
  if (std::FILE* f = std::fopen((log.string() + ".lines").c_str(), "r")) {
    if (std::fscanf(f, "%ld", &written_lines) != 1) written_lines = -1;
    std::fclose(f);
  }
  double achieved = static_cast<double>(total) / wall / (1024 * 1024);
  std::printf("writer achieved:       %8.1f MB/s (%.1f MB, %ld lines in %.1f s)\n", achieved,
              static_cast<double>(total) / (1024 * 1024), written_lines, wall);
  std::printf(
      "follower kept up:      %s (%llu of %ld lines, offset %llu of %llu bytes)\n",
      static_cast<long>(lines) == written_lines && follower.offset() == total ? "yes" : "NO",
      static_cast<unsigned long long>(lines), written_lines,
      static_cast<unsigned long long>(follower.offset()), static_cast<unsigned long long>(total));
  std::printf(
      "lag after each poll:   max %.2f MB (%.3f s of writing), mean %.2f MB over %llu polls\n",
      static_cast<double>(lag_max) / (1024 * 1024), static_cast<double>(lag_max) / rate,
      lag_sum / static_cast<double>(polls) / (1024 * 1024), static_cast<unsigned long long>(polls));
  std::printf(
      "memory:                peak heap in use %.2f MB, partial line held max %llu bytes, "
      "ring %zu lines\n",
      heap_peak, static_cast<unsigned long long>(held_max), ring.size());

  // Baseline in the same run: a bare pread loop over the finished file, vs the follower's work.
  std::vector<char> buf(64 * 1024);
  auto b0 = clk::now();
  {
    int fd = ::open(log.c_str(), O_RDONLY | O_CLOEXEC);
    std::uint64_t off = 0;
    for (;;) {
      ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
      if (n <= 0) break;
      off += static_cast<std::uint64_t>(n);
    }
    ::close(fd);
  }
  double bare = secs_since(b0);
  auto f0 = clk::now();
  {
    tail_follower<> again(log);
    line_ring r2(200);
    std::vector<tail_event> ev;
    while (again.offset() < total) {
      ev.clear();
      again.poll(ev);
      for (auto& e : ev) r2.push(std::move(e));
    }
  }
  double full = secs_since(f0);
  double mb = static_cast<double>(total) / (1024 * 1024);
  std::printf(
      "baseline: bare pread loop over the file: %8.0f MB/s; follower (sanitize + lines + "
      "ring): %.0f MB/s (%.1fx the bare loop's time)\n",
      mb / bare, mb / full, full / bare);

  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
