#pragma once

// Faulting in a big fresh buffer at once (issue 19: the first scan of a million tasks).
//
// A scan fills a few large vectors it has just reserved (the task table: about 180 MB at a
// million tasks). Filled element by element, every new 4 KiB page costs a trap into the kernel;
// on a virtual machine each trap is several microseconds, and measured on this project's VMs the
// traps were a third of a first scan at 1M tasks. MADV_POPULATE_WRITE (Linux 5.14) maps the
// whole range in one call instead, with the contents unchanged. Elsewhere, or on an older
// kernel (EINVAL), nothing happens and the pages fault in as before.

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace leaseq::detail {

// Below this many bytes (16 pages) the traps saved are too few to matter.
inline constexpr std::size_t prefault_min_bytes = std::size_t{64} << 10;

// Maps the whole pages inside [p, p + bytes) writable now. Only pages wholly inside the range
// are touched, so a buffer that shares a page with other allocations leaves them alone. True
// when the kernel mapped them; false when the range is too small or the kernel cannot.
inline bool prefault_writable(const void* p, std::size_t bytes) noexcept {
#if defined(__linux__)
#ifndef MADV_POPULATE_WRITE
  constexpr int MADV_POPULATE_WRITE = 23;  // <linux/mman.h>; headers older than the kernel
#endif
  if (!p || bytes < prefault_min_bytes) return false;
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  auto begin = (reinterpret_cast<std::uintptr_t>(p) + page - 1) & ~(page - 1);
  auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(page - 1);
  return end > begin &&
         ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE) == 0;
#else
  (void)p;
  (void)bytes;
  return false;
#endif
}

// The spare capacity of a vector just reserved: what it is about to fill.
template <class Vector>
void prefault_capacity(Vector& v) noexcept {
  prefault_writable(v.data() + v.size(), (v.capacity() - v.size()) * sizeof(*v.data()));
}

}  // namespace leaseq::detail
