// Name validation. Property: whatever passes contains no '/', no "..", no control byte, and
// task ids round-trip through their seq; a valid lease name is printable ASCII (so it can hold
// no escape, C1 control or bidi override).
#include <leaseq/names.hpp>
#include <leaseq/paths.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

static bool path_safe(const std::string& s) {
  if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  if (leaseq::is_valid_node(s) && (!path_safe(s) || s[0] == '.')) std::abort();
  if (leaseq::is_valid_lane(s) && !path_safe(s)) std::abort();
  if (leaseq::is_valid_key(s) && !path_safe(s)) std::abort();
  if (leaseq::is_valid_lease_id(s) && !path_safe(s)) std::abort();
  if (leaseq::is_valid_lease_name(s))
    for (unsigned char c : s)
      if (c < 0x20 || c >= 0x7f) std::abort();
  if (leaseq::is_valid_task_id(s)) {
    auto seq = leaseq::task_seq(s);
    if (!seq || leaseq::format_task_id(*seq) != s) std::abort();
  }
  leaseq::lease_paths lease("/tmp/leaseq-fuzz");
  try {
    auto p = lease.inbox_task(s, "T001");
    if (p.lexically_normal().string().rfind("/tmp/leaseq-fuzz/", 0) != 0) std::abort();
  } catch (const leaseq::name_error& e) {
    std::string msg = e.what();
    for (unsigned char c : msg)
      if (c < 0x20 || c == 0x7f) std::abort();  // the message never carries a control byte
  }
  return 0;
}
