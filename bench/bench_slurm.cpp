// Lease state lookups through the shared Slurm cache, next to what Slurm itself costs, measured
// in the same run:
//   - a cache hit for 100 leases (what every dashboard refresh costs between Slurm queries)
//     vs one real `squeue` call (the baseline; `true` when no Slurm cluster answers);
//   - one batched `squeue -j ID1,...,ID100` vs 100 single-job calls (the naive adapter).
// Usage: leaseq_bench_slurm   (uses SLURM_CONF, else /tmp/leaseq-slurm/etc/slurm.conf)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <leaseq/clock.hpp>
#include <leaseq/command.hpp>
#include <leaseq/slurm/slurm.hpp>

using namespace leaseq;
using steady = std::chrono::steady_clock;

namespace {

double ms_since(steady::time_point t0) {
  return std::chrono::duration<double, std::milli>(steady::now() - t0).count();
}

bool slurm_reachable() {
  if (!std::getenv("SLURM_CONF") && ::access("/tmp/leaseq-slurm/etc/slurm.conf", R_OK) == 0)
    ::setenv("SLURM_CONF", "/tmp/leaseq-slurm/etc/slurm.conf", 1);
  return run_command({"sinfo", "-h"}).ok();
}

}  // namespace

int main() {
  const int leases = 100;
  char tmpl[] = "/tmp/leaseq-bench-slurm-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  home_paths home(tmpl);
  std::vector<std::string> ids;
  std::string canned;
  for (int i = 0; i < leases; ++i) {
    ids.push_back(std::to_string(900000 + i));
    canned += ids.back() + "|RUNNING|None|1:02:03|2:00:00|4|n[1-4]|N/A|leaseq-bench\n";
  }
  manual_clock clock;
  auto fake = [&](const std::vector<std::string>&, const command_options&) {
    command_output r;
    r.exit_code = 0;
    r.out = canned;
    return r;
  };
  slurm_lease_states(home, ids, 20, {}, clock, fake);  // fills the cache

  const int iters = 2000;
  auto t0 = steady::now();
  std::size_t seen = 0;
  for (int i = 0; i < iters; ++i) seen += slurm_lease_states(home, ids, 20, {}, clock, fake).size();
  double hit_us = ms_since(t0) * 1000 / iters;

  bool real = slurm_reachable();
  const int calls = 20;
  std::vector<std::string> one =
      real
          ? std::vector<std::string>{"squeue", "-h",  "-t", "all", "-o", std::string(squeue_format),
                                     "-j",     ids[0]}
          : std::vector<std::string>{"true"};
  t0 = steady::now();
  for (int i = 0; i < calls; ++i) run_command(one);
  double one_ms = ms_since(t0) / calls;

  std::printf("cache hit, %d leases: %.1f us per lookup (%zu states read)\n", leases, hit_us, seen);
  std::printf("  baseline, same run: one %s call: %.2f ms  (%.0fx the cache hit)\n",
              real ? "squeue" : "`true` (no Slurm cluster)", one_ms, one_ms * 1000 / hit_us);

  if (real) {
    std::string all;
    for (const auto& id : ids) all += (all.empty() ? "" : ",") + id;
    t0 = steady::now();
    for (int i = 0; i < calls; ++i)
      run_command({"squeue", "-h", "-t", "all", "-o", std::string(squeue_format), "-j", all});
    double batched_ms = ms_since(t0) / calls;
    t0 = steady::now();
    for (const auto& id : ids)
      run_command({"squeue", "-h", "-t", "all", "-o", std::string(squeue_format), "-j", id});
    double single_ms = ms_since(t0);
    std::printf("one batched squeue for %d jobs: %.2f ms\n", leases, batched_ms);
    std::printf("  baseline, same run: %d single-job squeue calls: %.2f ms  (%.0fx)\n", leases,
                single_ms, single_ms / batched_ms);
  }
  std::error_code ec;
  fs::remove_all(tmpl, ec);
  return 0;
}
