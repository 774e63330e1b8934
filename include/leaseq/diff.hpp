#pragma once

// A pure diff of two snapshots into events, for the dashboard's notifications and for tools that
// react to changes (a finished task, a node going STALE) without comparing tables themselves.

#include <optional>
#include <string>
#include <vector>

#include "leaseq/model.hpp"
#include "leaseq/snapshot.hpp"

namespace leaseq {

enum class event_kind {
  task_added,          // a task the older snapshot did not have
  task_state_changed,  // from -> to
  task_removed,        // gone from the newer snapshot
  node_added,
  node_health_changed,  // from_health -> to_health
  node_removed,
};

inline constexpr std::string_view to_string(event_kind k) noexcept {
  switch (k) {
    case event_kind::task_added:
      return "task_added";
    case event_kind::task_state_changed:
      return "task_state_changed";
    case event_kind::task_removed:
      return "task_removed";
    case event_kind::node_added:
      return "node_added";
    case event_kind::node_health_changed:
      return "node_health_changed";
    case event_kind::node_removed:
      return "node_removed";
  }
  return "?";
}

struct snapshot_event {
  event_kind kind;
  std::string name;  // task id or node name
  std::optional<task_state> from_state, to_state;
  std::optional<node_health> from_health, to_health;
};

// Events that turn `before` into `after`: tasks in seq order, then nodes in name order.
inline std::vector<snapshot_event> diff(const snapshot& before, const snapshot& after) {
  std::vector<snapshot_event> out;
  const auto& a = before.tasks();
  const auto& b = after.tasks();
  std::size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (j == b.size() || (i < a.size() && a[i].seq < b[j].seq)) {
      out.push_back({event_kind::task_removed, a[i].id, a[i].state, std::nullopt, {}, {}});
      ++i;
    } else if (i == a.size() || b[j].seq < a[i].seq) {
      out.push_back({event_kind::task_added, b[j].id, std::nullopt, b[j].state, {}, {}});
      ++j;
    } else {
      if (a[i].state != b[j].state)
        out.push_back({event_kind::task_state_changed, b[j].id, a[i].state, b[j].state, {}, {}});
      ++i;
      ++j;
    }
  }
  const auto& na = before.nodes;
  const auto& nb = after.nodes;
  i = j = 0;
  while (i < na.size() || j < nb.size()) {
    if (j == nb.size() || (i < na.size() && na[i].name < nb[j].name)) {
      out.push_back({event_kind::node_removed, na[i].name, {}, {}, na[i].health, std::nullopt});
      ++i;
    } else if (i == na.size() || nb[j].name < na[i].name) {
      out.push_back({event_kind::node_added, nb[j].name, {}, {}, std::nullopt, nb[j].health});
      ++j;
    } else {
      if (na[i].health != nb[j].health)
        out.push_back(
            {event_kind::node_health_changed, nb[j].name, {}, {}, na[i].health, nb[j].health});
      ++i;
      ++j;
    }
  }
  return out;
}

}  // namespace leaseq
