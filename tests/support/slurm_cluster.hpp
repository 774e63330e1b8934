#pragma once

// The local Slurm cluster the end-to-end tests use (tools/slurm-local start: nodes n1 n2 n3 on
// this machine): where it lives, how to ask it, and whether it answers.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <leaseq/command.hpp>

namespace test_support {

inline std::filesystem::path slurm_dir() {
  const char* d = std::getenv("LEASEQ_SLURM_DIR");
  return d && *d ? std::filesystem::path(d) : std::filesystem::path("/tmp/leaseq-slurm");
}

inline leaseq::command_output slurm_cmd(const std::vector<std::string>& argv) {
  leaseq::command_options o;
  o.timeout = std::chrono::seconds(20);
  return leaseq::run_command(argv, o);
}

// Points SLURM_CONF at the local cluster's config (unless set) and asks sinfo for 3 nodes.
// Empty when the cluster answers; else why not.
inline std::string slurm_unreachable() {
  const char* conf = std::getenv("SLURM_CONF");
  if (!conf || !*conf) {
    std::filesystem::path local = slurm_dir() / "etc" / "slurm.conf";
    if (!std::filesystem::exists(local))
      return "no SLURM_CONF and no " + local.string() + " (run tools/slurm-local start)";
    ::setenv("SLURM_CONF", local.c_str(), 1);
  }
  leaseq::command_output r = slurm_cmd({"sinfo", "-h", "-N", "-o", "%N"});
  if (!r.ok()) return "sinfo: " + r.error + ": " + r.err;
  for (const char* n : {"n1", "n2", "n3"})
    if (r.out.find(n) == std::string::npos) return "the cluster has no node " + std::string(n);
  return "";
}

}  // namespace test_support

// A Slurm test without a reachable cluster warns "skipped: ..." (tools/test counts that as a
// failure unless LEASEQ_SKIP_SLURM=1) and returns.
#define LEASEQ_REQUIRE_SLURM()                                      \
  do {                                                              \
    std::string why_ = test_support::slurm_unreachable();           \
    if (!why_.empty()) {                                            \
      WARN("skipped: no Slurm cluster reachable (" << why_ << ")"); \
      return;                                                       \
    }                                                               \
  } while (0)
