#include <leaseq/detail/prefault.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <catch2/catch.hpp>

using leaseq::detail::prefault_writable;

namespace {

// Pages of [p, p + bytes) the kernel has mapped (mincore), p page-aligned.
std::size_t resident_pages(void* p, std::size_t bytes) {
  std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v((bytes + page - 1) / page);
  REQUIRE(::mincore(p, bytes, v.data()) == 0);
  std::size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}

}  // namespace

TEST_CASE("prefault: a fresh buffer is mapped in one call, its contents and neighbours kept",
          "[prefault]") {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t pages = 64;
  void* m =
      ::mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(m != MAP_FAILED);
  auto* base = static_cast<unsigned char*>(m);
  // The first page holds data already; the range asked for starts inside it.
  std::memset(base, 0xab, page);
  CHECK(resident_pages(base, pages * page) == 1);
  bool mapped = prefault_writable(base + 100, pages * page - 100);
  if (!mapped) {
    // A kernel before 5.14 refuses MADV_POPULATE_WRITE: nothing changes, nothing breaks.
    CHECK(resident_pages(base, pages * page) == 1);
    WARN("this kernel cannot populate: prefault_writable is a no-op here");
  } else {
    CHECK(resident_pages(base, pages * page) == pages);
  }
  auto is = [](unsigned char want) { return [want](unsigned char c) { return c == want; }; };
  CHECK(std::all_of(base, base + page, is(0xab)));  // contents unchanged
  CHECK(std::all_of(base + page, base + pages * page, is(0)));
  ::munmap(m, pages * page);
}

TEST_CASE("prefault: small, empty and null ranges are left to fault as usual", "[prefault]") {
  std::vector<char> small(100, 'x');
  CHECK_FALSE(prefault_writable(small.data(), small.size()));
  CHECK_FALSE(prefault_writable(nullptr, std::size_t{1} << 30));
  CHECK_FALSE(prefault_writable(small.data(), 0));
  CHECK(small == std::vector<char>(100, 'x'));
  // A vector's spare capacity: the elements it holds stay as they were.
  std::vector<std::uint64_t> v(10, 7);
  v.reserve(1 << 20);
  leaseq::detail::prefault_capacity(v);
  CHECK(v == std::vector<std::uint64_t>(10, 7));
}
