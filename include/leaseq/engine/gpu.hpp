#pragma once

// GPU detection and the runner's --gpu-ids option (--gpus, its former name).

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "leaseq/command.hpp"
#include "leaseq/detail/dir.hpp"
#include "leaseq/error.hpp"

namespace leaseq {

// --gpu-ids auto | none | 0,1,... (explicit device indices).
struct gpu_spec {
  enum class kind { automatic, none, list } mode = kind::automatic;
  std::vector<std::string> ids;  // for kind::list
};

inline gpu_spec parse_gpu_spec(std::string_view text) {
  gpu_spec s;
  if (text == "auto") return s;
  if (text == "none" || text.empty()) {
    s.mode = gpu_spec::kind::none;
    return s;
  }
  s.mode = gpu_spec::kind::list;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    std::string_view item = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    bool digits =
        !item.empty() && item.size() <= 4 &&
        std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits)
      throw error("invalid --gpu-ids value '" + std::string(text) +
                  "': expected auto, none, or a comma-separated list of device indices (0,1,3)");
    std::string id(item);
    if (std::find(s.ids.begin(), s.ids.end(), id) != s.ids.end())
      throw error("invalid --gpu-ids value '" + std::string(text) + "': device " + id + " twice");
    s.ids.push_back(id);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return s;
}

// Device indices from `nvidia-smi -L` output ("GPU 0: NVIDIA H200 (UUID: GPU-...)").
inline std::vector<std::string> parse_nvidia_smi_list(std::string_view out) {
  std::vector<std::string> ids;
  std::size_t pos = 0;
  while (pos < out.size()) {
    std::size_t eol = out.find('\n', pos);
    std::string_view line =
        out.substr(pos, eol == std::string_view::npos ? out.size() - pos : eol - pos);
    pos = eol == std::string_view::npos ? out.size() : eol + 1;
    if (line.substr(0, 4) != "GPU ") continue;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 4) continue;
    std::string_view idx = line.substr(4, colon - 4);
    if (std::all_of(idx.begin(), idx.end(), [](char c) { return c >= '0' && c <= '9'; }))
      ids.emplace_back(idx);
  }
  return ids;
}

struct gpu_detection {
  std::vector<std::string> ids;
  std::string source;  // "nvidia-smi", "/proc/driver/nvidia/gpus", "none"
};

// nvidia-smi -L (with a timeout, so a wedged driver cannot hang the runner), else one device
// per entry of /proc/driver/nvidia/gpus, else none.
inline gpu_detection detect_gpus(const std::string& proc_dir = "/proc/driver/nvidia/gpus",
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  gpu_detection d;
  command_options opt;
  opt.timeout = timeout;
  opt.max_output = 1 << 20;
  command_output r = run_command({"nvidia-smi", "-L"}, opt);
  if (r.ok()) {
    d.ids = parse_nvidia_smi_list(r.out);
    if (!d.ids.empty()) {
      d.source = "nvidia-smi";
      return d;
    }
  }
  auto listing = detail::list_dir(proc_dir);
  if (listing.err == 0 && !listing.names.empty()) {
    for (std::size_t i = 0; i < listing.names.size(); ++i) d.ids.push_back(std::to_string(i));
    d.source = proc_dir;
    return d;
  }
  d.source = "none";
  return d;
}

// The devices a runner hands out for a --gpu-ids value.
inline std::vector<std::string> resolve_gpus(const gpu_spec& spec) {
  switch (spec.mode) {
    case gpu_spec::kind::none:
      return {};
    case gpu_spec::kind::list:
      return spec.ids;
    case gpu_spec::kind::automatic:
      return detect_gpus().ids;
  }
  return {};
}

}  // namespace leaseq
