#pragma once

// Where each pane goes for a terminal size. Pure; used by view() to draw and by update() for
// page sizes. Small terminals collapse panes (the focused one stays); nothing ever overlaps.

#include "dashboard/model.hpp"

#include <leaseq/tui/layout.hpp>

#include <algorithm>

namespace leaseq_dash {

struct frame_layout {
  tui::rect body;  // everything above the message line and the status bar
  tui::rect leases, nodes, tasks, log;
  tui::rect message, status;
  bool too_small = false;
};

// The nodes pane beside the task list under 100 columns: NODE, HEALTH and HB fit in it.
inline constexpr int narrow_nodes_w = 24;

inline frame_layout compute_layout(const model& m) {
  frame_layout f;
  int w = std::max(0, m.width), h = std::max(0, m.height);
  tui::rect all{0, 0, w, h};
  if (h >= 1) f.status = {0, h - 1, w, 1};
  f.body = {0, 0, w, std::max(0, h - 1)};
  if (!m.message.empty() && f.body.h >= 8) {
    f.message = {0, f.body.bottom() - 1, w, 1};
    f.body.h -= 1;
  }
  (void)all;
  if (f.body.h < 3 || w < 12) {
    f.too_small = true;
    return f;
  }
  if (m.screen == screen_kind::lease_list) {
    f.leases = f.body;
    return f;
  }
  const tui::rect& b = f.body;
  int lease_rows = static_cast<int>(m.leases.rows.size());
  int lease_h = std::clamp(lease_rows + 3, 4, 7);
  bool log_shown = m.log_open;
  tui::rect middle;
  if (b.h >= 18) {
    tui::rect rest = b;
    f.leases = {b.x, b.y, b.w, lease_h};
    rest.y += lease_h;
    rest.h -= lease_h;
    if (log_shown) {
      int log_h = std::max(5, rest.h * 2 / 5);
      middle = {rest.x, rest.y, rest.w, rest.h - log_h};
      f.log = {rest.x, middle.bottom(), rest.w, log_h};
    } else {
      middle = rest;
    }
  } else if (b.h >= 12) {
    if (m.focus == pane::leases) {
      f.leases = {b.x, b.y, b.w, lease_h};
      middle = {b.x, b.y + lease_h, b.w, b.h - lease_h};
    } else if (log_shown) {
      int log_h = b.h / 2;
      middle = {b.x, b.y, b.w, b.h - log_h};
      f.log = {b.x, middle.bottom(), b.w, log_h};
    } else {
      middle = b;
    }
  } else {
    // Only the focused pane.
    switch (m.focus) {
      case pane::leases:
        f.leases = b;
        return f;
      case pane::log:
        if (log_shown) {
          f.log = b;
          return f;
        }
        f.tasks = b;
        return f;
      case pane::nodes:
        f.nodes = b;
        return f;
      case pane::tasks:
        f.tasks = b;
        return f;
    }
    return f;
  }
  // Side by side when the task list still gets a useful COMMAND column beside the nodes, or
  // when the panes are too short to stack; otherwise (80 columns) the nodes go above the tasks
  // and both get the full width.
  bool stack = middle.w < 100 && middle.h >= 12;
  if (!stack && middle.w >= 70) {
    // Under 100 columns the nodes pane is narrow (name, health, heartbeat: draw_nodes drops
    // the rest), so the task list keeps a useful COMMAND column.
    int nw = middle.w >= 110   ? middle.w * 2 / 5
             : middle.w >= 100 ? middle.w * 9 / 20
                               : std::max(narrow_nodes_w, middle.w * 3 / 10);
    f.nodes = {middle.x, middle.y, nw, middle.h};
    f.tasks = {middle.x + nw, middle.y, middle.w - nw, middle.h};
  } else if (stack) {
    int nodes = m.snap ? static_cast<int>(m.snap->nodes.size()) : 0;
    int nh = std::clamp(nodes + 3, 4, middle.h / 2);
    f.nodes = {middle.x, middle.y, middle.w, nh};
    f.tasks = {middle.x, middle.y + nh, middle.w, middle.h - nh};
  } else if (m.focus == pane::nodes) {
    f.nodes = middle;
  } else {
    f.tasks = middle;
  }
  return f;
}

// Rows of content a pane shows (its height minus the border and a table header).
inline int page_rows(const tui::rect& r, int chrome = 3) {
  return std::max(1, r.h - chrome);
}

}  // namespace leaseq_dash
