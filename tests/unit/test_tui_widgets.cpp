#include <leaseq/tui/layout.hpp>
#include <leaseq/tui/widgets.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

using namespace leaseq::tui;

TEST_CASE("split_rows and split_cols tile the area exactly", "[tui][layout]") {
  auto rows = split_rows({0, 0, 10, 20}, {fixed(1), fill(), fixed(3)});
  REQUIRE(rows.size() == 3);
  CHECK(rows[0] == rect{0, 0, 10, 1});
  CHECK(rows[1] == rect{0, 1, 10, 16});
  CHECK(rows[2] == rect{0, 17, 10, 3});
  auto cols = split_cols({2, 0, 11, 1}, {percent(50), fill(1), fill(2)});
  CHECK(cols[0] == rect{2, 0, 5, 1});
  CHECK(cols[1].w + cols[2].w == 6);
  CHECK(cols[2].x == cols[1].right());
  // Too small: fixed parts shrink in order, nothing negative.
  auto tiny = split_rows({0, 0, 3, 2}, {fixed(1), fill(), fixed(3)});
  CHECK(tiny[0].h == 1);
  CHECK(tiny[1].h == 0);
  CHECK(tiny[2].h == 1);
  CHECK(inset({0, 0, 1, 1}, 1).empty());
  CHECK(centered({0, 0, 10, 10}, 4, 2) == rect{3, 4, 4, 2});
  CHECK(centered({0, 0, 2, 2}, 40, 40) == rect{0, 0, 2, 2});
}

TEST_CASE("a pane draws its border and title", "[tui][widgets]") {
  buffer b(12, 3);
  rect inner = draw_pane(b, b.area(), "Tasks", false);
  CHECK(inner == rect{1, 1, 10, 1});
  CHECK(b.to_text() ==
        "┌ Tasks ───┐\n"
        "│          │\n"
        "└──────────┘\n");
  draw_pane(b, b.area(), "A very long title", true);
  CHECK(b.row_text(0) == "┏ A very … ┓");
}

TEST_CASE("a table shows a header, rows, and scrolls to the selection", "[tui][widgets]") {
  buffer b(16, 4);
  std::vector<table_column> cols{{"ID", 3, false}, {"CMD", 0, false}, {"N", 2, true}};
  std::vector<std::string> cells(3);
  auto text = [&](int row, int col) -> std::string_view {
    if (col == 0)
      cells[0] = std::to_string(row + 1);
    else if (col == 1)
      cells[1] = "cmd" + std::to_string(row + 1) + " long argument";
    else
      cells[2] = std::to_string(row % 10);
    return cells[static_cast<std::size_t>(col)];
  };
  table_state st;
  draw_table(b, b.area(), cols, 5000, text, st);
  CHECK(b.to_text() ==
        "ID  CMD        N\n"
        "1   cmd1 lon…  0\n"
        "2   cmd2 lon…  1\n"
        "3   cmd3 lon…  2\n");
  CHECK(b.at(0, 1).st.reverse);
  CHECK_FALSE(b.at(0, 2).st.reverse);
  st.handle_key(key::of(key_code::end), 5000, 3);
  draw_table(b, b.area(), cols, 5000, text, st);
  CHECK(st.offset == 4997);
  CHECK(b.row_text(3) == "50… cmd5000 …  9");
  st.handle_key(key::of(key_code::page_up), 5000, 3);
  CHECK(st.selected == 4996);
  draw_table(b, b.area(), cols, 0, text, st);  // no rows: header only
  CHECK(b.row_text(1) == std::string(16, ' '));
}

TEST_CASE("a log view marks cut lines, scrolls sideways and wraps", "[tui][widgets]") {
  buffer b(12, 3);
  std::vector<std::string> lines{"short", "0123456789abcdefghij", "end"};
  log_view_state st;
  st.follow = false;
  draw_log_view(b, b.area(), lines, st);
  CHECK(b.row_text(0) == "short       ");
  CHECK(b.row_text(1) == "0123456789a›");
  CHECK(st.handle_key(key::of(key_code::right), 3, 3));
  draw_log_view(b, b.area(), lines, st);
  CHECK(b.row_text(1) == "‹9abcdefghij");
  CHECK(b.row_text(0) == "‹           ");  // all of "short" is to the left
  CHECK(st.handle_key(key::ch('w'), 3, 3));
  CHECK(st.hscroll == 0);
  draw_log_view(b, b.area(), lines, st);
  CHECK(b.row_text(0) == "short       ");
  CHECK(b.row_text(1) == "0123456789ab");
  CHECK(b.row_text(2) == "cdefghi[3/3]");  // the position marker sits on the last row
  st.follow = true;                        // following: the rows that end with the last line
  draw_log_view(b, b.area(), lines, st);
  CHECK(b.row_text(0) == "0123456789ab");
  CHECK(b.row_text(1) == "cdefghij    ");
}

TEST_CASE("search matches are marked in cut, scrolled and wrapped lines", "[tui][widgets]") {
  CHECK(match_cells("an Error, another error", "error") ==
        std::vector<std::pair<int, int>>{{3, 8}, {18, 23}});
  CHECK(match_cells("日本 err", "err") == std::vector<std::pair<int, int>>{{5, 8}});  // cells
  CHECK(match_cells("abc", "").empty());
  CHECK(match_cells("aaaa", "aa") == std::vector<std::pair<int, int>>{{0, 2}, {2, 4}});

  const style mark = default_theme().match;
  buffer b(12, 3);
  std::vector<std::string> lines{"ok", "x ERROR y error z", "end"};
  log_view_state st;
  st.follow = false;
  draw_log_view(b, b.area(), lines, st, default_theme(), "error");
  CHECK(b.row_text(1) == "x ERROR y e›");
  CHECK(b.at(1, 1).st == style{});
  for (int x = 2; x < 7; ++x) CHECK(b.at(x, 1).st == mark);
  CHECK(b.at(7, 1).st == style{});
  CHECK(b.at(10, 1).st == mark);  // the part of the second match before the cut
  st.hscroll = 8;
  draw_log_view(b, b.area(), lines, st, default_theme(), "error");
  CHECK(b.row_text(1) == "‹ error z   ");
  CHECK(b.at(0, 1).st != mark);  // the marker is not part of a match
  for (int x = 2; x < 7; ++x) CHECK(b.at(x, 1).st == mark);
  st.wrap = true;
  st.hscroll = 0;
  draw_log_view(b, b.area(), lines, st, default_theme(), "error");
  CHECK(b.row_text(1) == "x ERROR y er");
  CHECK(b.row_text(2) == "ror z  [3/3]");
  CHECK(b.at(10, 1).st == mark);
  CHECK(b.at(0, 2).st == mark);  // a match cut by the wrap is marked on both rows
  CHECK(b.at(2, 2).st == mark);
  CHECK(b.at(3, 2).st == style{});
}

TEST_CASE("wrapped lines: how many rows each takes, how many were shown whole", "[tui][widgets]") {
  CHECK(wrapped_height("", 5) == 1);
  CHECK(wrapped_height("12345", 5) == 1);
  CHECK(wrapped_height("123456", 5) == 2);
  buffer b(5, 3);
  std::vector<std::string> lines{"abcdefgh", "ij", "klmno"};
  CHECK(draw_wrapped_lines(b, b.area(), lines, 0, 0, style{}) == 2);
  CHECK(b.to_text() == "abcde\nfgh  \nij   \n");
  CHECK(draw_wrapped_lines(b, b.area(), lines, 0, 1, style{}) == 3);  // from its second row
  CHECK(b.to_text() == "fgh  \nij   \nklmno\n");
  CHECK(draw_wrapped_lines(b, b.area(), lines, 2, 0, style{}) == 1);
  CHECK(b.to_text() == "klmno\n     \n     \n");
}

TEST_CASE("a log view follows the end and shows where it is", "[tui][widgets]") {
  buffer b(12, 3);
  std::vector<std::string> lines;
  for (int i = 1; i <= 10; ++i) lines.push_back("line " + std::to_string(i));
  log_view_state st;
  draw_log_view(b, b.area(), lines, st);
  CHECK(b.row_text(0) == "line 8      ");
  CHECK(b.row_text(2) == "lin›[follow]");  // "line 10" goes on under the marker: cut
  st.handle_key(key::of(key_code::home), 10, 3);
  CHECK_FALSE(st.follow);
  draw_log_view(b, b.area(), lines, st);
  CHECK(b.row_text(0) == "line 1      ");
  CHECK(b.row_text(2) == "line 3[3/10]");
  st.handle_key(key::of(key_code::end), 10, 3);
  CHECK(st.follow);
}

TEST_CASE("status bar: right text dropped when it does not fit", "[tui][widgets]") {
  buffer b(20, 1);
  draw_status_bar(b, b.area(), "lease=l1", "q:quit");
  CHECK(b.row_text(0) == "lease=l1      q:quit");
  buffer n(10, 1);
  draw_status_bar(n, n.area(), "lease=l1", "q:quit");
  CHECK(n.row_text(0) == "lease=l1  ");
}

TEST_CASE("confirm defaults to No and answers y/n/Enter/Esc", "[tui][widgets]") {
  confirm_state c;
  CHECK(c.handle_key(key::of(key_code::enter)) == confirm_state::result::cancelled);
  CHECK(c.handle_key(key::ch('y')) == confirm_state::result::accepted);
  CHECK(c.handle_key(key::of(key_code::escape)) == confirm_state::result::cancelled);
  c.handle_key(key::of(key_code::left));
  CHECK(c.handle_key(key::of(key_code::enter)) == confirm_state::result::accepted);
  buffer b(30, 8);
  draw_confirm(b, b.area(), "Cancel", "Cancel task 7?", c);
  CHECK(b.row_text(2).find("Cancel task 7?") != std::string::npos);
  CHECK(b.row_text(4).find("[ y: Yes ]  [ n: No ]") != std::string::npos);
}

TEST_CASE("a form edits, validates and submits", "[tui][widgets]") {
  form_state f;
  f.fields.push_back(
      {"Name", "",
       [](const std::string& v) { return v.empty() ? std::string("required") : std::string(); },
       ""});
  f.fields.push_back({"N", "", nullptr, ""});
  CHECK(f.handle_key(key::of(key_code::enter)) == form_state::result::pending);
  CHECK(f.fields[0].error == "required");
  f.handle_key(key::ch('a'));
  f.handle_key(key::ch(0x4EFB));
  f.handle_key(key::of(key_code::backspace));
  f.paste("b\x1b[31mc");
  CHECK(f.fields[0].value == "ab[31mc");
  f.handle_key(key::of(key_code::tab));
  f.handle_key(key::ch('7'));
  CHECK(f.fields[1].value == "7");
  CHECK(f.handle_key(key::of(key_code::enter)) == form_state::result::submitted);
  CHECK(f.fields[0].error.empty());
  buffer b(50, 10);
  draw_form(b, b.area(), "Submit", f);
  CHECK(b.to_text().find("ab[31mc") != std::string::npos);
  CHECK(f.handle_key(key::of(key_code::escape)) == form_state::result::cancelled);
}

TEST_CASE("selector and help overlay", "[tui][widgets]") {
  std::vector<std::string> items{"one", "two", "three"};
  selector_state s;
  s.handle_key(key::of(key_code::down), 3);
  s.handle_key(key::of(key_code::down), 3);
  s.handle_key(key::of(key_code::down), 3);
  CHECK(s.selected == 2);
  CHECK(s.handle_key(key::of(key_code::enter), 3) == selector_state::result::chosen);
  buffer b(20, 7);
  draw_selector(b, b.area(), "Pick", items, s);
  CHECK(b.to_text().find("three") != std::string::npos);
  buffer h(40, 6);
  draw_help(h, h.area(), {{"q", "quit"}, {"?", "help"}});
  CHECK(h.to_text().find("q  quit") != std::string::npos);
}

TEST_CASE("every widget in a 0x0, 1x1, 2x2 rect stays inside it", "[tui][widgets]") {
  std::vector<table_column> cols{{"A", 0, false}};
  std::vector<std::string> lines{"x", "y"};
  form_state form;
  form.fields.push_back({"F", "v", nullptr, "bad"});
  std::vector<std::function<void(buffer&, const rect&)>> widgets = {
      [](buffer& b, const rect& r) { draw_box(b, r, {}); },
      [](buffer& b, const rect& r) { draw_pane(b, r, "Title", true); },
      [&](buffer& b, const rect& r) {
        table_state st;
        draw_table(
            b, r, cols, 3, [](int, int) { return std::string_view("任务"); }, st);
      },
      [&](buffer& b, const rect& r) {
        log_view_state st;
        draw_log_view(b, r, lines, st);
      },
      [](buffer& b, const rect& r) { draw_modal(b, r, 10, 10, "M"); },
      [](buffer& b, const rect& r) { draw_confirm(b, r, "C", "Sure?", confirm_state{}); },
      [&](buffer& b, const rect& r) { draw_form(b, r, "Form", form); },
      [&](buffer& b, const rect& r) {
        selector_state st;
        draw_selector(b, r, "S", lines, st);
      },
      [](buffer& b, const rect& r) { draw_status_bar(b, r, "left", "right"); },
      [](buffer& b, const rect& r) {
        draw_help(b, r, {{"q", "quit"}});
      },
      [](buffer& b, const rect& r) { draw_line(b, r, 0, "任务任务", {}); },
  };
  for (int size : {0, 1, 2}) {
    for (std::size_t i = 0; i < widgets.size(); ++i) {
      INFO("widget " << i << " in " << size << "x" << size);
      buffer b(6, 6);
      b.fill(b.area(), {}, "#");
      rect r{2, 2, size, size};
      widgets[i](b, r);
      for (int y = 0; y < 6; ++y)
        for (int x = 0; x < 6; ++x)
          if (!r.contains(x, y)) REQUIRE(b.at(x, y).text == "#");
      CHECK(b.clip() == b.area());  // clip restored
    }
  }
}

TEST_CASE("truncate_text respects display width", "[tui][widgets]") {
  CHECK(truncate_text("hello", 10) == "hello");
  CHECK(truncate_text("hello", 4) == "hel…");
  CHECK(truncate_text("任务任务", 5) == "任务…");
  CHECK(truncate_text("abc", 0).empty());
}
