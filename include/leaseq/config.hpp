#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "leaseq/file_io.hpp"

namespace leaseq {

// The ui.* settings of config.json, with the spec's defaults.
struct ui_config {
  double refresh_s = 2;
  double slurm_refresh_s = 20;
  double hb_stale_s = 60;
  double lost_confirm_s = 30;
  bool follow_auto_latest = false;
  std::int64_t max_tasks_display = 5000;
  std::int64_t log_tail_lines = 200;
};

// Squeue is never asked more often than this, whatever the config says.
inline constexpr double min_slurm_refresh_s = 10;

struct config {
  ui_config ui;
  json raw = json::object();          // the whole file, unknown keys included
  std::vector<std::string> warnings;  // one per key that was ignored, naming its path
};

namespace detail {

template <typename T>
void config_number(const json& ui, const char* key, T& target, double min, config& out) {
  auto it = ui.find(key);
  if (it == ui.end()) return;
  // A float is read as a double only: converting 2e28 to an integer is undefined behaviour.
  double v = it->is_number() ? it->template get<double>() : 0;
  bool ok = std::is_integral_v<T>
                ? it->is_number_integer() ||
                      (it->is_number_float() && std::isfinite(v) && v == std::trunc(v))
                : it->is_number();
  if (!ok) {
    out.warnings.push_back(fmt::format("config: ui.{}: expected {}, got {}; using the default {}",
                                       key, std::is_integral_v<T> ? "an integer" : "a number",
                                       it->type_name(), target));
    return;
  }
  if (!(v >= min) || v > 1e9) {
    out.warnings.push_back(
        fmt::format("config: ui.{}: {} is out of range (at least {}); using "
                    "the default {}",
                    key, it->dump(), min, target));
    return;
  }
  target = static_cast<T>(v);
}

}  // namespace detail

// Reads the config object; never throws. Wrong types and out-of-range values are reported
// in warnings (with their key path) and replaced by the default.
inline config parse_config(const json& doc) {
  config out;
  if (!doc.is_object()) {
    out.warnings.push_back(
        fmt::format("config: expected an object, got {}; using defaults", doc.type_name()));
    return out;
  }
  out.raw = doc;
  auto it = doc.find("ui");
  if (it == doc.end()) return out;
  if (!it->is_object()) {
    out.warnings.push_back(
        fmt::format("config: ui: expected an object, got {}; using defaults", it->type_name()));
    return out;
  }
  const json& ui = *it;
  detail::config_number(ui, "refresh_s", out.ui.refresh_s, 0.1, out);
  detail::config_number(ui, "slurm_refresh_s", out.ui.slurm_refresh_s, 0, out);
  detail::config_number(ui, "hb_stale_s", out.ui.hb_stale_s, 0.1, out);
  detail::config_number(ui, "lost_confirm_s", out.ui.lost_confirm_s, 0, out);
  detail::config_number(ui, "max_tasks_display", out.ui.max_tasks_display, 1, out);
  detail::config_number(ui, "log_tail_lines", out.ui.log_tail_lines, 1, out);
  if (auto f = ui.find("follow_auto_latest"); f != ui.end()) {
    if (f->is_boolean())
      out.ui.follow_auto_latest = f->get<bool>();
    else
      out.warnings.push_back(fmt::format(
          "config: ui.follow_auto_latest: expected a boolean, got {}; using the default false",
          f->type_name()));
  }
  if (out.ui.slurm_refresh_s < min_slurm_refresh_s) {
    out.warnings.push_back(
        fmt::format("config: ui.slurm_refresh_s: {} is below the floor of {}s; "
                    "using {}",
                    out.ui.slurm_refresh_s, min_slurm_refresh_s, min_slurm_refresh_s));
    out.ui.slurm_refresh_s = min_slurm_refresh_s;
  }
  return out;
}

// A missing file gives the defaults silently; an unreadable or corrupt one gives the defaults
// and a warning. The file is never rewritten by reading it.
inline config load_config(const fs::path& path) {
  json_outcome r = read_json_tolerant(path);
  if (!r.ok()) {
    config out;
    if (r.err != ENOENT)
      out.warnings.push_back(
          fmt::format("config: {}: {}; using defaults", path.string(), r.reason));
    return out;
  }
  return parse_config(*r.value);
}

inline json to_json(const ui_config& ui) {
  return json{{"refresh_s", ui.refresh_s},
              {"slurm_refresh_s", ui.slurm_refresh_s},
              {"hb_stale_s", ui.hb_stale_s},
              {"lost_confirm_s", ui.lost_confirm_s},
              {"follow_auto_latest", ui.follow_auto_latest},
              {"max_tasks_display", ui.max_tasks_display},
              {"log_tail_lines", ui.log_tail_lines}};
}

}  // namespace leaseq
