#pragma once

#include <chrono>

namespace leaseq {

// Unix time in seconds with a fraction, the protocol's timestamp format.
inline double unix_now() noexcept {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// The real clock; stores and followers take a clock type so tests can inject time.
struct system_clock {
  double now() const noexcept { return unix_now(); }
};

// A clock a test moves by hand.
struct manual_clock {
  double t = 1764365000.0;
  double now() const noexcept { return t; }
  void advance(double seconds) noexcept { t += seconds; }
};

}  // namespace leaseq
