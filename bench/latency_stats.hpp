#pragma once

// Mean, median, 99th percentile and maximum of a set of latencies, for the benchmarks that
// time a line from its write to its arrival (follow, the dashboard's log pane).

#include <algorithm>
#include <cstddef>
#include <vector>

namespace bench_stats {

struct latency_stats {
  double mean = 0, p50 = 0, p99 = 0, max = 0;
  std::size_t n = 0;
};

inline latency_stats summarize(std::vector<double> v) {
  latency_stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.n = v.size();
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  s.p50 = v[v.size() / 2];
  s.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  s.max = v.back();
  return s;
}

}  // namespace bench_stats
