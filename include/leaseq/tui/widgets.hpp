#pragma once

// Widgets: functions that write cells into a buffer inside a rect, and nothing else. Every
// widget clips to its rect (0x0, 1x1, 2x2 are safe: they draw what fits, or nothing). State
// that outlives a frame (selection, scroll, form input) lives in small structs the app owns;
// the key handlers on them are pure.
//
// Text is expected to be sanitized by the caller already; buffer::print still turns any
// control byte into U+FFFD, so nothing can reach the terminal raw.

#include <leaseq/detail/text_width.hpp>
#include <leaseq/tui/input.hpp>
#include <leaseq/tui/layout.hpp>
#include <leaseq/tui/screen.hpp>

#include <algorithm>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace leaseq::tui {

struct theme {
  style normal{};
  style border{colors::gray, {}, false, false, false, false};
  style border_focused{colors::cyan, {}, true, false, false, false};
  style title{{}, {}, true, false, false, false};
  style header{{}, {}, true, false, true, false};
  style selected{{}, {}, false, false, false, true};
  style dim{{}, {}, false, true, false, false};
  style error{colors::red, {}, true, false, false, false};
  style status{{}, {}, false, false, false, true};
  style match{colors::black, colors::yellow, false, false, false, false};  // search hits
};

inline const theme& default_theme() {
  static const theme t;
  return t;
}

// Box-drawing sets (UTF-8). `ascii` for terminals without line drawing.
struct box_chars {
  const char *h, *v, *tl, *tr, *bl, *br;
};
inline constexpr box_chars box_light{"─", "│", "┌", "┐", "└", "┘"};
inline constexpr box_chars box_heavy{"━", "┃", "┏", "┓", "┗", "┛"};
inline constexpr box_chars box_ascii{"-", "|", "+", "+", "+", "+"};

// Truncates to max_width cells, ending with "…" when something was cut.
inline std::string truncate_text(std::string_view s, int max_width) {
  if (max_width <= 0) return {};
  if (leaseq::detail::display_width(s) <= max_width) return std::string(s);
  std::string out;
  int w = 0;
  for (std::size_t i = 0; i < s.size();) {
    leaseq::detail::utf8_char c = leaseq::detail::decode_utf8(s, i);
    int cw = leaseq::detail::codepoint_width(c.cp);
    if (cw < 0) cw = 1;
    if (w + cw > max_width - 1) break;
    out.append(s.substr(i, c.len));
    w += cw;
    i += c.len;
  }
  return out + "…";
}

// Clears r and draws a border in it. Needs at least 2x2 to draw anything.
inline void draw_box(buffer& buf, const rect& r, const style& st, const box_chars& bc = box_light) {
  clip_scope cs(buf, r);
  if (r.w < 2 || r.h < 2) return;
  for (int x = r.x + 1; x < r.right() - 1; ++x) {
    buf.print(x, r.y, bc.h, st, 1);
    buf.print(x, r.bottom() - 1, bc.h, st, 1);
  }
  for (int y = r.y + 1; y < r.bottom() - 1; ++y) {
    buf.print(r.x, y, bc.v, st, 1);
    buf.print(r.right() - 1, y, bc.v, st, 1);
  }
  buf.print(r.x, r.y, bc.tl, st, 1);
  buf.print(r.right() - 1, r.y, bc.tr, st, 1);
  buf.print(r.x, r.bottom() - 1, bc.bl, st, 1);
  buf.print(r.right() - 1, r.bottom() - 1, bc.br, st, 1);
}

// A bordered pane with a title in the top border; focus uses the heavy border and colour.
// Returns the inner rect for the content.
inline rect draw_pane(buffer& buf, const rect& r, std::string_view title, bool focused,
                      const theme& th = default_theme()) {
  clip_scope cs(buf, r);
  buf.fill(r, th.normal);
  draw_box(buf, r, focused ? th.border_focused : th.border, focused ? box_heavy : box_light);
  if (r.w > 4 && !title.empty()) {
    std::string t = " " + truncate_text(title, r.w - 4) + " ";
    buf.print(r.x + 1, r.y, t, focused ? th.border_focused : th.title, r.w - 2);
  }
  return inset(r, 1);
}

// One line of text, clipped, padded with spaces to the rect width.
inline void draw_line(buffer& buf, const rect& r, int row, std::string_view text, const style& st) {
  if (row < 0 || row >= r.h) return;
  clip_scope cs(buf, r);
  int used = buf.print(r.x, r.y + row, text, st, r.w);
  for (int x = r.x + used; x < r.right(); ++x) buf.print(x, r.y + row, " ", st, 1);
}

// ---- status bar ------------------------------------------------------------------------

// Left text, right text (right-aligned, dropped first when space is short).
inline void draw_status_bar(buffer& buf, const rect& r, std::string_view left,
                            std::string_view right, const theme& th = default_theme()) {
  if (r.empty()) return;
  clip_scope cs(buf, r);
  rect line{r.x, r.y, r.w, 1};
  draw_line(buf, line, 0, truncate_text(left, r.w), th.status);
  int lw = leaseq::detail::display_width(left), rw = leaseq::detail::display_width(right);
  if (rw > 0 && lw + 1 + rw <= r.w) buf.print(r.right() - rw, r.y, right, th.status, rw);
}

// ---- table -----------------------------------------------------------------------------

struct table_column {
  std::string title;
  int width = 0;  // cells; 0 = share what is left
  bool align_right = false;
};

struct table_state {
  int selected = 0;  // row index, clamped to the row count
  int offset = 0;    // first visible row

  // Moves the selection; keeps it on a row.
  void move(int delta, int rows) {
    selected = std::clamp(selected + delta, 0, std::max(0, rows - 1));
  }

  // Arrow keys, j/k, PgUp/PgDn, Home/End (g/G). Returns true if handled.
  bool handle_key(const key& k, int rows, int page) {
    page = std::max(1, page);
    if (k.is(key_code::up) || k.is('k'))
      move(-1, rows);
    else if (k.is(key_code::down) || k.is('j'))
      move(1, rows);
    else if (k.is(key_code::page_up))
      move(-page, rows);
    else if (k.is(key_code::page_down))
      move(page, rows);
    else if (k.is(key_code::home) || k.is('g'))
      selected = 0;
    else if (k.is(key_code::end) || k.is('G'))
      selected = std::max(0, rows - 1);
    else
      return false;
    return true;
  }
};

// Cell text for (row, column); only called for visible rows, so a 5000-row table is cheap.
using table_cell_fn = std::function<std::string_view(int row, int col)>;

// Column widths for a given total: fixed widths first, the rest shared by width-0 columns,
// one space between columns.
inline std::vector<int> table_widths(const std::vector<table_column>& cols, int total) {
  std::vector<constraint> cs;
  for (std::size_t i = 0; i < cols.size(); ++i) {
    if (i > 0) cs.push_back(fixed(1));
    cs.push_back(cols[i].width > 0 ? fixed(cols[i].width) : fill());
  }
  auto sizes = detail::split_sizes(total, cs);
  // Every other size is a gap: keep the columns' in place (one vector, no second allocation;
  // GCC 12 also misreads the push_back version as freeing a non-heap pointer).
  for (std::size_t i = 0; i < cols.size(); ++i) sizes[i] = sizes[2 * i];
  sizes.resize(cols.size());
  return sizes;
}

// Header row, then rows from state.offset; scrolls so the selection stays visible; the
// selected row is drawn reversed. `row_style` may colour rows (e.g. by task state).
inline void draw_table(buffer& buf, const rect& r, const std::vector<table_column>& cols, int rows,
                       const table_cell_fn& cell_text, table_state& state,
                       const std::function<style(int row)>& row_style = {},
                       const theme& th = default_theme()) {
  if (r.empty()) return;
  clip_scope cs(buf, r);
  state.selected = std::clamp(state.selected, 0, std::max(0, rows - 1));
  int body = std::max(0, r.h - 1);
  if (state.selected < state.offset) state.offset = state.selected;
  if (body > 0 && state.selected >= state.offset + body) state.offset = state.selected - body + 1;
  state.offset = std::clamp(state.offset, 0, std::max(0, rows - body));
  std::vector<int> widths = table_widths(cols, r.w);
  auto draw_row = [&](int y, const std::function<std::string_view(int)>& text, const style& st) {
    draw_line(buf, {r.x, y, r.w, 1}, 0, "", st);
    int x = r.x;
    for (std::size_t c = 0; c < cols.size(); ++c) {
      int w = widths[c];
      if (w > 0) {
        std::string t = truncate_text(text(static_cast<int>(c)), w);
        int tw = leaseq::detail::display_width(t);
        buf.print(cols[c].align_right ? x + w - tw : x, y, t, st, w);
      }
      x += w + 1;
    }
  };
  draw_row(
      r.y, [&](int c) { return std::string_view(cols[static_cast<std::size_t>(c)].title); },
      th.header);
  for (int i = 0; i < body; ++i) {
    int row = state.offset + i;
    int y = r.y + 1 + i;
    if (row >= rows) {
      draw_line(buf, {r.x, y, r.w, 1}, 0, "", th.normal);
      continue;
    }
    style st = row_style ? row_style(row) : th.normal;
    if (row == state.selected) st.reverse = !st.reverse;
    draw_row(
        y, [&](int c) { return cell_text(row, c); }, st);
  }
}

// ---- log view --------------------------------------------------------------------------

struct log_view_state {
  int offset = 0;      // first visible line when not following
  bool follow = true;  // stick to the end as lines arrive
  int hscroll = 0;     // cells cut off the left of every line (Left/Right)
  bool wrap = false;   // long lines go on over the next rows instead (w)

  bool handle_key(const key& k, int lines, int page) {
    page = std::max(1, page);
    int max_off = std::max(0, lines - page);
    if (follow) offset = max_off;
    if (k.is(key_code::up) || k.is('k'))
      offset -= 1;
    else if (k.is(key_code::down) || k.is('j'))
      offset += 1;
    else if (k.is(key_code::page_up))
      offset -= page;
    else if (k.is(key_code::page_down))
      offset += page;
    else if (k.is(key_code::home) || k.is('g'))
      offset = 0;
    else if (k.is(key_code::end) || k.is('G'))
      offset = max_off;
    else if (k.is('f')) {
      follow = !follow;
      return true;
    } else if (k.is(key_code::right) || k.is(key_code::left)) {
      hscroll = std::max(0, hscroll + (k.is(key_code::right) ? 8 : -8));
      return true;
    } else if (k.is('w')) {
      wrap = !wrap;
      hscroll = 0;
      return true;
    } else
      return false;
    offset = std::clamp(offset, 0, max_off);
    follow = offset >= max_off;
    return true;
  }
};

// The cells [from, from + width) of s. Wide characters that straddle an edge are left out.
inline std::string slice_cells(std::string_view s, int from, int width) {
  std::string out;
  int x = 0;
  for (std::size_t i = 0; i < s.size();) {
    leaseq::detail::utf8_char c = leaseq::detail::decode_utf8(s, i);
    std::size_t len = c.len ? c.len : 1;
    int cw = std::max(0, leaseq::detail::codepoint_width(c.cp));
    if (x >= from && x + cw <= from + width) out.append(s.substr(i, len));
    x += cw;
    i += len;
    if (x >= from + width) break;
  }
  return out;
}

// Where `pattern` occurs in `text`, ASCII case ignored, as cell ranges [first, last) of the
// text; matches do not overlap.
inline std::vector<std::pair<int, int>> match_cells(std::string_view text,
                                                    std::string_view pattern) {
  std::vector<std::pair<int, int>> out;
  if (pattern.empty() || pattern.size() > text.size()) return out;
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  int cells = 0;
  std::size_t counted = 0;  // bytes of text counted into `cells`
  for (std::size_t i = 0; i + pattern.size() <= text.size();) {
    std::size_t k = 0;
    while (k < pattern.size() && lower(text[i + k]) == lower(pattern[k])) ++k;
    if (k < pattern.size()) {
      ++i;
      continue;
    }
    cells += leaseq::detail::display_width(text.substr(counted, i - counted));
    int w = leaseq::detail::display_width(text.substr(i, pattern.size()));
    out.push_back({cells, cells + w});
    cells += w;
    i += pattern.size();
    counted = i;
  }
  return out;
}

// The cells [from, from + width) of text at (x, y), and the parts of it inside `marks` (cell
// ranges of the whole text) in mark_st.
inline void print_marked_slice(buffer& buf, int x, int y, std::string_view text, int from,
                               int width, const style& st,
                               const std::vector<std::pair<int, int>>& marks,
                               const style& mark_st) {
  buf.print(x, y, slice_cells(text, from, width), st, width);
  for (const auto& [a, b] : marks) {
    int lo = std::max(a, from), hi = std::min(b, from + width);
    if (lo >= hi) continue;
    buf.print(x + lo - from, y, slice_cells(text, lo, hi - lo), mark_st, hi - lo);
  }
}

// One log line in a row: cut at the pane's edges with a dim marker where text goes on
// ("‹" left, "›" right), so a cut line never passes for a whole one. Occurrences of
// `highlight` are drawn in the theme's match style.
inline void draw_cut_line(buffer& buf, const rect& r, int row, std::string_view text, int hscroll,
                          const style& st, const theme& th = default_theme(),
                          std::string_view highlight = {}) {
  int total = leaseq::detail::display_width(text);
  bool left = hscroll > 0 && total > 0, right = total - hscroll > r.w;
  int from = hscroll + (left ? 1 : 0);
  int width = r.w - (left ? 1 : 0) - (right ? 1 : 0);
  draw_line(buf, r, row, "", st);
  if (width <= 0) return;
  clip_scope cs(buf, r);
  int x = r.x;
  if (left) x += buf.print(x, r.y + row, "‹", th.dim, 1);
  print_marked_slice(buf, x, r.y + row, text, from, width, st, match_cells(text, highlight),
                     th.match);
  if (right) buf.print(r.right() - 1, r.y + row, "›", th.dim, 1);
}

// How many rows a line takes when wrapped at `width` cells (at least one).
inline int wrapped_height(std::string_view s, int width) {
  int total = leaseq::detail::display_width(s);
  width = std::max(1, width);
  return std::max(1, (total + width - 1) / width);
}

// Lines from r's top, each wrapped over as many rows as it needs (the first one from its row
// `skip`), matches of `highlight` marked. Returns how many lines were shown to their end.
inline int draw_wrapped_lines(buffer& buf, const rect& r, const std::vector<std::string>& lines,
                              std::size_t first, int skip, const style& st,
                              std::string_view highlight = {}, const theme& th = default_theme()) {
  clip_scope cs(buf, r);
  int y = 0, whole = 0;
  for (std::size_t li = first; li < lines.size() && y < r.h; ++li) {
    const std::string& text = lines[li];
    auto marks = match_cells(text, highlight);
    int rows = wrapped_height(text, r.w);
    int k = li == first ? std::clamp(skip, 0, rows - 1) : 0;
    for (; k < rows && y < r.h; ++k, ++y) {
      draw_line(buf, r, y, "", st);
      print_marked_slice(buf, r.x, r.y + y, text, k * r.w, r.w, st, marks, th.match);
    }
    if (k == rows) ++whole;
  }
  for (; y < r.h; ++y) draw_line(buf, r, y, "", st);
  return whole;
}

// Lines top to bottom; the bottom-right corner shows "[follow]" or the position. Long lines
// are cut with a marker (scrolled with hscroll), or wrapped when state.wrap; occurrences of
// `highlight` are marked.
inline void draw_log_view(buffer& buf, const rect& r, const std::vector<std::string>& lines,
                          log_view_state& state, const theme& th = default_theme(),
                          std::string_view highlight = {}) {
  if (r.empty()) return;
  clip_scope cs(buf, r);
  int n = static_cast<int>(lines.size());
  int max_off = std::max(0, n - r.h);
  if (state.follow) state.offset = max_off;
  state.offset = std::clamp(state.offset, 0, max_off);
  if (state.wrap) {
    // Rows from offset down; following, the rows that end at the last line (the first of
    // them may start inside a line).
    int first = state.offset, skip = 0;
    if (state.follow) {
      int rows = 0;
      for (first = n; first > 0 && rows < r.h;)
        rows += wrapped_height(lines[static_cast<std::size_t>(--first)], r.w);
      skip = std::max(0, rows - r.h);
    }
    draw_wrapped_lines(buf, r, lines, static_cast<std::size_t>(first), skip, th.normal, highlight,
                       th);
  }
  std::string marker = state.follow ? "[follow]"
                                    : "[" + std::to_string(std::min(n, state.offset + r.h)) + "/" +
                                          std::to_string(n) + "]";
  int mw = leaseq::detail::display_width(marker);
  if (mw > r.w) mw = 0;
  if (!state.wrap) {
    // The last row ends where the marker starts, so its cut mark is not hidden under it.
    for (int i = 0; i < r.h; ++i) {
      int li = state.offset + i;
      rect row = i == r.h - 1 ? rect{r.x, r.y, r.w - mw, r.h} : r;
      draw_cut_line(buf, row, i,
                    li < n ? std::string_view(lines[static_cast<std::size_t>(li)]) : "",
                    state.hscroll, th.normal, th, highlight);
    }
  }
  if (mw > 0) buf.print(r.right() - mw, r.bottom() - 1, marker, th.dim, mw);
}

// ---- modal, confirm, selector, help ----------------------------------------------------

// A centred box of w x h (clamped to area) with a title; clears beneath it. Returns the inner
// rect.
inline rect draw_modal(buffer& buf, const rect& area, int w, int h, std::string_view title,
                       const theme& th = default_theme()) {
  rect box = centered(area, w, h);
  return draw_pane(buf, box, title, true, th);
}

struct confirm_state {
  bool yes = false;  // which button is highlighted; default is the safe "No"
  enum class result { pending, accepted, cancelled };

  // y/n, Left/Right/Tab to move, Enter to choose, Esc cancels.
  result handle_key(const key& k) {
    if (k.is('y') || k.is('Y')) return result::accepted;
    if (k.is('n') || k.is('N') || k.is(key_code::escape)) return result::cancelled;
    if (k.is(key_code::left) || k.is(key_code::right) || k.is(key_code::tab) ||
        k.is(key_code::backtab) || k.code == key_code::backtab)
      yes = !yes;
    else if (k.is(key_code::enter))
      return yes ? result::accepted : result::cancelled;
    return result::pending;
  }
};

inline void draw_confirm(buffer& buf, const rect& area, std::string_view title,
                         std::string_view question, const confirm_state& st,
                         const theme& th = default_theme()) {
  int w = std::max(28, leaseq::detail::display_width(question) + 4);
  rect in = draw_modal(buf, area, w, 6, title, th);
  if (in.empty()) return;
  clip_scope cs(buf, in);
  draw_line(buf, in, 0, truncate_text(question, in.w), th.normal);
  if (in.h >= 3) {
    // The buttons name their keys: without a hint people reach for Enter and get the safe No.
    style yes_st = st.yes ? th.selected : th.normal, no_st = st.yes ? th.normal : th.selected;
    int x = in.x;
    x += buf.print(x, in.y + 2, "[ y: Yes ]", yes_st);
    x += buf.print(x, in.y + 2, "  ", th.normal);
    buf.print(x, in.y + 2, "[ n: No ]", no_st);
  }
}

struct selector_state {
  int selected = 0;
  table_state scroll{};
  enum class result { pending, chosen, cancelled };

  result handle_key(const key& k, int items) {
    if (k.is(key_code::enter)) return items > 0 ? result::chosen : result::pending;
    if (k.is(key_code::escape) || k.is('q')) return result::cancelled;
    scroll.selected = selected;
    scroll.handle_key(k, items, 10);
    selected = scroll.selected;
    return result::pending;
  }
};

// A list in a modal; the selected item is reversed and kept visible.
inline void draw_selector(buffer& buf, const rect& area, std::string_view title,
                          const std::vector<std::string>& items, selector_state& st,
                          const theme& th = default_theme()) {
  int w = leaseq::detail::display_width(title) + 6;
  for (auto& it : items) w = std::max(w, leaseq::detail::display_width(it) + 4);
  rect in = draw_modal(buf, area, w, static_cast<int>(items.size()) + 2, title, th);
  if (in.empty()) return;
  int n = static_cast<int>(items.size());
  st.selected = std::clamp(st.selected, 0, std::max(0, n - 1));
  int& off = st.scroll.offset;
  if (st.selected < off) off = st.selected;
  if (st.selected >= off + in.h) off = st.selected - in.h + 1;
  off = std::clamp(off, 0, std::max(0, n - in.h));
  for (int i = 0; i < in.h; ++i) {
    int idx = off + i;
    if (idx >= n) break;
    draw_line(buf, in, i, items[static_cast<std::size_t>(idx)],
              idx == st.selected ? th.selected : th.normal);
  }
}

// Key bindings in two columns in a modal.
inline void draw_help(buffer& buf, const rect& area,
                      const std::vector<std::pair<std::string, std::string>>& bindings,
                      const theme& th = default_theme()) {
  int kw = 0, dw = 0;
  for (auto& b : bindings) {
    kw = std::max(kw, leaseq::detail::display_width(b.first));
    dw = std::max(dw, leaseq::detail::display_width(b.second));
  }
  static constexpr std::string_view title = "Help (any key closes)";
  int w = std::max(kw + dw + 4, static_cast<int>(title.size()) + 4);
  rect in = draw_modal(buf, area, w, static_cast<int>(bindings.size()) + 2, title, th);
  for (int i = 0; i < in.h && i < static_cast<int>(bindings.size()); ++i) {
    auto& b = bindings[static_cast<std::size_t>(i)];
    draw_line(buf, in, i, "", th.normal);
    clip_scope cs(buf, in);
    buf.print(in.x, in.y + i, b.first, th.title, kw);
    buf.print(in.x + kw + 2, in.y + i, b.second, th.normal, std::max(0, in.w - kw - 2));
  }
}

// ---- form ------------------------------------------------------------------------------

struct form_field {
  std::string label;
  std::string value;
  // Returns an error message, or "" when the value is acceptable.
  std::function<std::string(const std::string&)> validate;
  std::string error;  // set by form_state::validate()
};

struct form_state {
  std::vector<form_field> fields;
  int focused = 0;
  enum class result { pending, submitted, cancelled };

  // Runs every validator; true when all pass.
  bool validate() {
    bool ok = true;
    for (auto& f : fields) {
      f.error = f.validate ? f.validate(f.value) : std::string();
      if (!f.error.empty()) ok = false;
    }
    return ok;
  }

  // Tab/Shift+Tab/Up/Down move between fields, printable keys and paste type, Backspace
  // deletes a character, Ctrl+U clears, Enter submits (if valid), Esc cancels.
  result handle_key(const key& k) {
    int n = static_cast<int>(fields.size());
    if (n == 0) return k.is(key_code::escape) ? result::cancelled : result::pending;
    focused = std::clamp(focused, 0, n - 1);
    std::string& v = fields[static_cast<std::size_t>(focused)].value;
    if (k.is(key_code::escape)) return result::cancelled;
    if (k.is(key_code::enter)) return validate() ? result::submitted : result::pending;
    if (k.is(key_code::tab) || k.is(key_code::down))
      focused = (focused + 1) % n;
    else if (k.code == key_code::backtab || k.is(key_code::up))
      focused = (focused + n - 1) % n;
    else if (k.is(key_code::backspace)) {
      while (!v.empty() && (static_cast<unsigned char>(v.back()) & 0xC0) == 0x80) v.pop_back();
      if (!v.empty()) v.pop_back();
    } else if (k.ctrl && k.rune == 'u')
      v.clear();
    else if (k.code == key_code::rune && !k.ctrl && !k.alt && !leaseq::detail::is_control(k.rune))
      leaseq::detail::append_utf8(v, k.rune);
    return result::pending;
  }

  // Pasted text goes into the focused field with control bytes dropped.
  void paste(std::string_view text) {
    if (fields.empty()) return;
    std::string& v = fields[static_cast<std::size_t>(
                                std::clamp(focused, 0, static_cast<int>(fields.size()) - 1))]
                         .value;
    for (std::size_t i = 0; i < text.size();) {
      leaseq::detail::utf8_char c = leaseq::detail::decode_utf8(text, i);
      if (!leaseq::detail::is_control(c.cp)) leaseq::detail::append_utf8(v, c.cp);
      i += c.len;
    }
  }
};

// Label, input box (focused one reversed, with a trailing cursor block), error under it.
inline void draw_form(buffer& buf, const rect& area, std::string_view title, const form_state& form,
                      const theme& th = default_theme()) {
  int lw = 0;
  for (auto& f : form.fields) lw = std::max(lw, leaseq::detail::display_width(f.label));
  rect in = draw_modal(buf, area, std::max(40, lw + 30),
                       static_cast<int>(form.fields.size()) * 2 + 3, title, th);
  if (in.empty()) return;
  clip_scope cs(buf, in);
  for (std::size_t i = 0; i < form.fields.size(); ++i) {
    const form_field& f = form.fields[i];
    int y = in.y + static_cast<int>(i) * 2;
    bool foc = static_cast<int>(i) == form.focused;
    buf.print(in.x, y, f.label, th.title, lw);
    int fx = in.x + lw + 1;
    int fw = std::max(0, in.right() - fx);
    style fs = th.normal;
    fs.underline = true;
    if (foc) fs.reverse = true;
    draw_line(buf, {fx, y, fw, 1}, 0, "", fs);
    // Show the tail of a long value so the cursor end stays visible.
    std::string shown = f.value;
    while (leaseq::detail::display_width(shown) > fw - 1 && !shown.empty()) {
      std::size_t len = leaseq::detail::decode_utf8(shown, 0).len;
      shown.erase(0, len ? len : 1);
    }
    buf.print(fx, y, shown, fs, fw);
    if (!f.error.empty()) buf.print(fx, y + 1, f.error, th.error, fw);
  }
  draw_line(buf, in, in.h - 1, "Enter: submit  Tab: next field  Esc: cancel", th.dim);
}

}  // namespace leaseq::tui
