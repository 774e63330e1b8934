#pragma once

// A Slurm lease's keeper: the batch script that starts one `leaseq runner` per node with srun
// and holds the allocation until the job ends, and the sbatch argv that submits it.
// Pure: builds text and argv; the CLI writes the script and runs sbatch.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "leaseq/detail/quote.hpp"
#include "leaseq/detail/strings.hpp"
#include "leaseq/error.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/version.hpp"

namespace leaseq {

// What `leaseq lease create` asks Slurm for.
struct lease_request {
  std::optional<std::string> name;
  std::int64_t nodes = 1;
  std::string time;  // Slurm's --time, passed as given ("30", "2:00:00", "1-00:00:00")
  std::optional<std::string> partition, qos, account, constraint, reservation;
  std::int64_t gpus_per_node = 0;
  std::vector<std::string> extra_args;  // more sbatch arguments, each one argv element
  // Tasks each node's runner runs at once: "" (the runner's default, 1), "auto" or a count.
  std::string slots;
};

// The most slots a runner has.
inline constexpr int max_slots = 4096;

// `--slots N|auto`: N, or nullopt for auto. Throws error, quoting the text, for anything else.
inline std::optional<int> parse_slots(std::string_view text) {
  if (text == "auto") return std::nullopt;
  int v = 0;
  bool ok = !text.empty() && text.size() <= 5;
  for (char c : text) {
    if (c < '0' || c > '9') ok = false;
    if (ok) v = v * 10 + (c - '0');
  }
  if (!ok || v < 1 || v > max_slots)
    throw error(fmt::format("--slots {}: expected auto or a number from 1 to {}",
                            detail::quote_for_message(std::string(text)), max_slots));
  return v;
}

// What each node's runner will run at once, in words (`lease create --dry-run`, the dashboard's
// form). Assumes parse_slots accepted r.slots (or it is empty).
inline std::string slots_preview(const lease_request& r) {
  if (r.slots.empty()) return "1 (the default; --slots N|auto)";
  if (auto n = parse_slots(r.slots)) return std::to_string(*n);
  if (r.gpus_per_node > 0) return fmt::format("{} (auto: one per GPU)", r.gpus_per_node);
  return "auto (one per CPU Slurm gives the job on each node)";
}

namespace detail {

// A positive count from an environment variable's text, or 0.
inline int cpu_count_text(std::string_view s) {
  if (s.empty() || s.size() > 6) return 0;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + (c - '0');
  }
  return v;
}

// SLURM_JOB_CPUS_PER_NODE ("72(x2),36": 72 on the first two nodes, 36 on the third) at the
// node with index `node_id` (SLURM_NODEID); 0 when it cannot tell.
inline int cpus_of_node(std::string_view per_node, int node_id) {
  while (!per_node.empty() && node_id >= 0) {
    std::size_t comma = per_node.find(',');
    std::string_view item = per_node.substr(0, comma);
    int repeat = 1;
    if (auto paren = item.find("(x"); paren != std::string_view::npos) {
      if (item.back() != ')') return 0;
      repeat = cpu_count_text(item.substr(paren + 2, item.size() - paren - 3));
      item = item.substr(0, paren);
      if (repeat < 1) return 0;
    }
    if (node_id < repeat) return cpu_count_text(item);
    node_id -= repeat;
    if (comma == std::string_view::npos) break;
    per_node.remove_prefix(comma + 1);
  }
  return 0;
}

}  // namespace detail

// What `--slots auto` means for a runner: one slot per GPU it hands out; without GPUs, one per
// CPU Slurm gave the job on this node (SLURM_CPUS_ON_NODE, else SLURM_JOB_CPUS_PER_NODE at
// SLURM_NODEID), else one per CPU this process may run on (`host_cpus`). `env` looks up a
// variable (nullptr when unset).
template <typename Env>
int auto_slots(std::size_t gpus, Env&& env, int host_cpus) {
  auto cap = [](long long n) { return static_cast<int>(std::min<long long>(n, max_slots)); };
  if (gpus > 0) return cap(static_cast<long long>(gpus));
  if (const char* c = env("SLURM_CPUS_ON_NODE"))
    if (int n = detail::cpu_count_text(c); n > 0) return cap(n);
  if (const char* per_node = env("SLURM_JOB_CPUS_PER_NODE")) {
    const char* id = env("SLURM_NODEID");
    int node_id = id ? detail::cpu_count_text(id) : 0;
    if (id && std::string_view(id) != "0" && node_id == 0) node_id = -1;
    if (int n = detail::cpus_of_node(per_node, node_id); n > 0) return cap(n);
  }
  return cap(std::max(1, host_cpus));
}

// The `--slots` words the keeper passes to each runner: none by default; the count; for auto,
// the GPUs per node when the lease asks for GPUs (known here, whatever the node shows), else
// `auto` (the runner counts the CPUs Slurm gave it).
inline std::string keeper_slots_arg(const lease_request& r) {
  if (r.slots.empty()) return {};
  if (auto n = parse_slots(r.slots)) return " --slots " + std::to_string(*n);
  if (r.gpus_per_node > 0) return " --slots " + std::to_string(r.gpus_per_node);
  return " --slots auto";
}

// Words quoted for a POSIX shell (detail/strings.hpp), for the keeper script and for display.
using detail::shell_join;
using detail::shell_quote;

namespace detail {

inline void check_request_text(const char* what, const std::string& v) {
  if (v.empty()) throw error(fmt::format("--{}: must not be empty", what));
  if (v.size() > 256) throw error(fmt::format("--{}: longer than 256 characters", what));
  for (unsigned char c : v)
    if (c < 0x20 || c == 0x7f)
      throw error(fmt::format("--{}: control characters are not allowed", what));
}

}  // namespace detail

// Refuses requests sbatch would misread; the rest (a bad partition, a bad time) is Slurm's to
// judge and its error reaches the user verbatim.
inline void validate(const lease_request& r) {
  if (r.nodes < 1 || r.nodes > 100000) throw error("--nodes: must be between 1 and 100000");
  if (r.gpus_per_node < 0 || r.gpus_per_node > 4096)
    throw error("--gpus-per-node: must be between 0 and 4096");
  detail::check_request_text("time", r.time);
  if (r.name) {
    detail::check_request_text("name", *r.name);
    if (r.name->size() > 64) throw error("--name: longer than 64 characters");
  }
  const std::pair<const char*, const std::optional<std::string>*> opts[] = {
      {"partition", &r.partition},
      {"qos", &r.qos},
      {"account", &r.account},
      {"constraint", &r.constraint},
      {"reservation", &r.reservation}};
  for (const auto& [what, v] : opts)
    if (*v) detail::check_request_text(what, **v);
  if (!r.slots.empty()) (void)parse_slots(r.slots);
  for (const auto& a : r.extra_args) {
    detail::check_request_text("sbatch-arg", a);
    if (a.empty() || a[0] != '-')
      throw error("--sbatch-arg " + shell_quote(a) +
                  ": must be an option (start with '-'); a stray word would become the script");
  }
}

// The keeper script. LEASEQ_HOME and the leaseq binary are absolute paths fixed at creation,
// so the lease works whatever the job's environment. The runner's node name comes from
// SLURMD_NODENAME on each node, which is why srun runs a tiny sh: the variable must be read
// there, not in the keeper. `slots_arg` is keeper_slots_arg(): digits or `auto`, nothing to quote.
inline std::string keeper_script(const fs::path& leaseq_bin, const fs::path& leaseq_home,
                                 const std::string& slots_arg = {}) {
  std::string bin = shell_quote(leaseq_bin.string());
  std::string home = shell_quote(leaseq_home.string());
  return fmt::format(
      R"keeper(#!/bin/bash
# leaseq keeper (leaseq {version}): holds this Slurm allocation and runs one leaseq runner per
# node until the job ends (scancel, time limit). Generated by `leaseq lease create`.
umask 077
export LEASEQ_HOME={home}
lease_dir="$LEASEQ_HOME/runs/$SLURM_JOB_ID"
mkdir -p "$lease_dir" || exit 1
exec >>"$lease_dir/keeper.log" 2>&1
echo "keeper: job $SLURM_JOB_ID on ${{SLURM_JOB_NODELIST:-?}} started $(date -u +%FT%TZ)"
srun --ntasks-per-node=1 --kill-on-bad-exit=0 \
  /bin/sh -c 'exec "$0" runner --lease "$SLURM_JOB_ID" --node "$SLURMD_NODENAME"{slots}' {bin}
rc=$?
echo "keeper: srun exited with $rc at $(date -u +%FT%TZ)"
exit $rc
)keeper",
      fmt::arg("version", version), fmt::arg("home", home), fmt::arg("bin", bin),
      fmt::arg("slots", slots_arg));
}

// The sbatch argv for a lease (never a shell string). `test_only` swaps --parsable for
// --test-only: Slurm then says whether and when the job would start, and submits nothing.
inline std::vector<std::string> sbatch_argv(const lease_request& r, const fs::path& script,
                                            const fs::path& leaseq_home, bool test_only = false,
                                            const std::string& sbatch = "sbatch") {
  std::vector<std::string> a{sbatch, test_only ? "--test-only" : "--parsable"};
  a.push_back("--job-name=" + (r.name ? "leaseq-" + *r.name : std::string("leaseq")));
  a.push_back("--nodes=" + std::to_string(r.nodes));
  a.push_back("--ntasks-per-node=1");
  a.push_back("--time=" + r.time);
  if (r.partition) a.push_back("--partition=" + *r.partition);
  if (r.qos) a.push_back("--qos=" + *r.qos);
  if (r.account) a.push_back("--account=" + *r.account);
  if (r.constraint) a.push_back("--constraint=" + *r.constraint);
  if (r.reservation) a.push_back("--reservation=" + *r.reservation);
  if (r.gpus_per_node > 0) a.push_back("--gpus-per-node=" + std::to_string(r.gpus_per_node));
  // Slurm's own messages (before the keeper redirects, and "CANCELLED ... DUE TO TIME LIMIT")
  // go next to the keeper scripts; the keeper's output goes to runs/<jobid>/keeper.log.
  a.push_back("--output=" + (leaseq_home / "keepers" / "slurm-%j.out").string());
  a.push_back("--open-mode=append");
  for (const auto& x : r.extra_args) a.push_back(x);
  a.push_back(script.string());
  return a;
}

}  // namespace leaseq
