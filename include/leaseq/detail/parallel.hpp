#pragma once

// Reading many small files on a few threads: how many, and running the parts. A one-shot reader
// that reads the files a quick scan left unread spends its time in open/read/close, which
// several threads overlap.

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace leaseq::detail {

// Threads for `jobs` files: `wanted`, or when 0 up to 8 by the hardware and one per 64 files
// at most, so that a handful of files is read on the calling thread alone. Never more than the
// files, never none.
inline unsigned reader_threads(std::size_t jobs, unsigned wanted = 0) {
  std::size_t most = std::max<std::size_t>(1, jobs);
  if (wanted == 0) {
    wanted = std::min(8u, std::max(1u, std::thread::hardware_concurrency()));
    most = jobs / 64 + 1;
  }
  return static_cast<unsigned>(std::min<std::size_t>(wanted, most));
}

// Runs work(part) for each part in [0, parts), the first on the calling thread, and waits for
// every one. work must not throw.
template <class Work>
void run_parts(unsigned parts, Work&& work) {
  std::vector<std::thread> pool;
  for (unsigned p = 1; p < parts; ++p) pool.emplace_back([&work, p] { work(p); });
  work(0u);
  for (auto& t : pool) t.join();
}

}  // namespace leaseq::detail
