// The keymap (update.hpp): one table drives both the key dispatch and the help overlay.

#include "fixtures.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <iterator>
#include <set>
#include <string>
#include <utility>
#include <vector>

using namespace dash_test;
namespace tui = leaseq::tui;

namespace {

// A model where the keys of context c are looked up.
model in_context(key_context c) {
  model m = dashboard_model("99887766", 160, 40);
  switch (c) {
    case key_context::anywhere:
    case key_context::global:
    case key_context::dashboard:
    case key_context::tasks:
      break;
    case key_context::leases:
      m.screen = screen_kind::lease_list;
      break;
    case key_context::nodes:
      m.focus = pane::nodes;
      break;
    case key_context::log:
      press(m, 'F');
      m.focus = pane::log;
      break;
    case key_context::details:
      press(m, tui::key_code::enter);
      break;
    case key_context::paged:
    case key_context::paged_find:
      m.ov = overlay::paged;
      m.paged.task = m.visible.front()->id;
      m.paged.path = "/home/u/.leaseq/some.out";
      m.paged.typing = c == key_context::paged_find;
      break;
    case key_context::search:
      press(m, '/');
      break;
    case key_context::form:
      open_create_form(m);
      break;
    case key_context::confirm:
      ask(m, "Refresh", "Refresh?", req_refresh{});
      break;
    case key_context::selector:
      m.selector_ids = {m.visible.front()->id};
      m.ov = overlay::selector;
      break;
    case key_context::help:
      press(m, '?');
      break;
    case key_context::problems:
      press(m, '!');
      break;
    case key_context::stats:
      m.stats_node = "gpu01";
      m.ov = overlay::stats;
      break;
  }
  m.outbox.clear();
  return m;
}

}  // namespace

TEST_CASE("every key of the keymap dispatches to its own entry", "[dashboard][keymap]") {
  std::set<key_context> seen;
  for (const auto& b : keymap()) {
    seen.insert(b.context);
    // An entry for every other key is tried with a key no entry of its context names.
    std::vector<tui::key> keys = b.keys;
    if (keys.empty()) keys.push_back(tui::key::ch('z'));
    for (const auto& k : keys) {
      INFO(to_string(b.context) << ": " << key_text(k) << " (" << b.help << ")");
      model m = in_context(b.context);
      auto contexts = active_key_contexts(m);
      REQUIRE(std::find(contexts.begin(), contexts.end(), b.context) != contexts.end());
      // Not taken by an earlier context, nor by an earlier entry of its own.
      CHECK(binding_for(m, k) == &b);
      CHECK(handle_key(m, k));
    }
  }
  // Every context has its keys (and its heading in the help).
  CHECK(seen.size() == std::size(key_contexts_in_order));
}

TEST_CASE("no key is in two entries of one context", "[dashboard][keymap]") {
  for (key_context c : key_contexts_in_order) {
    std::vector<std::string> names;
    int others = 0;
    for (const auto& b : keymap()) {
      if (b.context != c) continue;
      if (b.keys.empty()) ++others;
      for (const auto& k : b.keys) names.push_back(key_text(k));
    }
    std::set<std::string> unique(names.begin(), names.end());
    INFO(to_string(c));
    CHECK(unique.size() == names.size());
    CHECK(others <= 1);
  }
}

TEST_CASE("every help line comes from the keymap and the overlay shows each",
          "[dashboard][keymap]") {
  // The help is a heading per context, then that context's entries in the table's order.
  std::vector<std::pair<std::string, std::string>> want;
  for (key_context c : key_contexts_in_order) {
    want.emplace_back(to_string(c), "");
    for (const auto& b : keymap())
      if (b.context == c) want.emplace_back(key_label(b), b.help);
  }
  CHECK(key_help() == want);
  for (const auto& b : keymap()) CHECK_FALSE(b.help.empty());

  // Scrolled through, the overlay shows every line.
  model m = dashboard_model("99887766", 160, 40);
  press(m, '?');
  std::string all;
  for (std::size_t i = 0; i < key_help().size(); ++i) {
    all += screen_text(m);
    press(m, 'j');
  }
  REQUIRE(m.ov == overlay::help);
  for (const auto& [label, help] : key_help()) {
    INFO(label << " " << help);
    CHECK(contains(all, help.empty() ? "-- " + label + " --" : label));
    if (!help.empty()) CHECK(contains(all, help));
  }
}

TEST_CASE("Ctrl-C quits from every context", "[dashboard][keymap]") {
  for (key_context c : key_contexts_in_order) {
    model m = in_context(c);
    INFO(to_string(c));
    press(m, tui::key::ctrl_of('c'));
    CHECK(m.quit);
  }
}
