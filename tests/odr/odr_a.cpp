#include <leaseq/leaseq.hpp>

#include <string>

std::string odr_b_task_id();

int main() {
  // Both translation units use the same inline functions; a link error or a mismatch here
  // means something in a header is not inline.
  bool ok = leaseq::format_task_id(14) == "T014" && odr_b_task_id() == "T015" &&
            leaseq::is_valid_node("nodeA");
  return ok ? 0 : 1;
}
