#include <leaseq/leaseq.hpp>

#include <string>

std::string odr_b_task_id() {
  return leaseq::format_task_id(15);
}
