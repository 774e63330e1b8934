// Full expected frames: the dashboard at 80x24 and 120x40 over the fixture's fixed tree and
// fixed clock, compared cell for cell with tests/dashboard/golden/*.txt, so that a layout change
// is a reviewed diff of those files. LEASEQ_UPDATE_GOLDEN=1 rewrites them.
#include "fixtures.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

using namespace dash_test;
namespace fs = std::filesystem;

namespace {

fs::path golden_dir() {
  return fs::path(__FILE__).parent_path() / "golden";
}

// The fixture lease, following its running task with a few lines in the log pane.
model golden_model(int w, int h) {
  model m = dashboard_model("99887766", w, h);
  m.task_table.selected = 0;
  press(m, 'F');
  m.outbox.clear();
  update(m, message{msg_log{m.follow.id,
                            {"epoch 1 loss=0.912", "epoch 2 loss=0.874", "epoch 3 loss=0.851"},
                            now - 3}});
  update(m, message{msg_tick{now}});
  m.message.clear();
  return m;
}

void check_golden(model& m, const std::string& name) {
  std::string frame = screen_text(m);
  fs::path file = golden_dir() / name;
  const char* update_env = std::getenv("LEASEQ_UPDATE_GOLDEN");
  if (update_env && *update_env == '1') {
    fs::create_directories(golden_dir());
    std::ofstream(file, std::ios::binary) << frame;
  }
  std::ifstream in(file, std::ios::binary);
  INFO("golden file " << file << " (LEASEQ_UPDATE_GOLDEN=1 rewrites it)");
  REQUIRE(in.good());
  std::stringstream want;
  want << in.rdbuf();
  // Line by line, so a failure names the first row that differs.
  std::istringstream got_lines(frame), want_lines(want.str());
  std::string g, w;
  int row = 0;
  while (std::getline(want_lines, w)) {
    std::getline(got_lines, g);
    INFO("row " << row);
    CHECK(g == w);
    ++row;
  }
  CHECK(frame == want.str());
}

}  // namespace

TEST_CASE("golden frame: the dashboard at 80x24", "[dashboard][golden]") {
  // As it opens: no log pane, the nodes above the tasks, both the full width.
  model m = dashboard_model("99887766", 80, 24);
  m.message.clear();
  check_golden(m, "dashboard-80x24.txt");
  // Following a task: too short to stack, side by side.
  model f = golden_model(80, 24);
  check_golden(f, "dashboard-80x24-follow.txt");
}

TEST_CASE("golden frame: the dashboard at 120x40", "[dashboard][golden]") {
  model m = golden_model(120, 40);
  check_golden(m, "dashboard-120x40.txt");
}

TEST_CASE("golden frame: the lease list at 80x24", "[dashboard][golden]") {
  model m = lease_list_model(80, 24);
  check_golden(m, "lease-list-80x24.txt");
}
