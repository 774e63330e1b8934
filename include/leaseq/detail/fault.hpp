#pragma once

// Fault injection for tests: LEASEQ_FAULT makes chosen operations of the runner fail on purpose,
// so tests can drive the real binary through disk-full and lying-rename paths.
//
//   LEASEQ_FAULT="point=SPEC[,point=SPEC...]"
//
// SPEC is N (the first N times the point is reached, it fails) or 1/K (every K-th time fails).
// Points:
//   result_write_enospc   writing a result file fails with ENOSPC before anything is written
//   result_write_eio      the same with EIO
//   claim_rename_lies     the claim rename inbox -> claimed happens, but the runner is told it
//                         failed with EIO (as a lost NFS reply does)
//   dashboard_throws      the dashboard's update step throws std::runtime_error; counted on
//                         key presses only (terminal restore tests)
//   claim_record_enospc   recording "starting" in the claimed file, before the task is
//                         spawned, fails with ENOSPC (the claim must be given back)
//   pid_record_enospc     recording the pid after the spawn fails with ENOSPC (the task must
//                         be killed at once)
//   clean_kill_mid_unlink `leaseq clean` kills itself (SIGKILL) before unlinking a live result
//                         it has archived (crash tests)
//   batch_kill_before_rename  the runner's result writer kills the runner (SIGKILL) once a
//                         batch of several results is written under temporary names and
//                         flushed, before any of them is renamed (group-commit crash tests)
//   batch_stall_before_rename  the same moment, but the writer waits 3 s and goes on: the
//                         batch's tasks are ended but not yet written while the runner runs
//                         (tests of what arrives meanwhile, such as a cancel)
//   reserve_links_refused  a submit's link(2) of its reservation ticket fails with EPERM, as
//                         on a filesystem without hard links (the O_EXCL reservation path)
//
// The variable is read once per process, on first use. Unset (or empty), each check is one
// load of a flag that is false: no cost in production. An unknown point or a bad SPEC is
// ignored, with a message returned by fault_config_problems() for the runner to log.

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace leaseq {

enum class fault_point : int {
  result_write_enospc = 0,
  result_write_eio = 1,
  claim_rename_lies = 2,
  dashboard_throws = 3,
  claim_record_enospc = 4,
  pid_record_enospc = 5,
  clean_kill_mid_unlink = 6,
  batch_kill_before_rename = 7,
  batch_stall_before_rename = 8,
  reserve_links_refused = 9,
};

namespace detail {

inline constexpr int fault_point_count = 10;

inline constexpr std::string_view fault_point_name(fault_point p) noexcept {
  switch (p) {
    case fault_point::result_write_enospc:
      return "result_write_enospc";
    case fault_point::result_write_eio:
      return "result_write_eio";
    case fault_point::claim_rename_lies:
      return "claim_rename_lies";
    case fault_point::dashboard_throws:
      return "dashboard_throws";
    case fault_point::claim_record_enospc:
      return "claim_record_enospc";
    case fault_point::pid_record_enospc:
      return "pid_record_enospc";
    case fault_point::clean_kill_mid_unlink:
      return "clean_kill_mid_unlink";
    case fault_point::batch_kill_before_rename:
      return "batch_kill_before_rename";
    case fault_point::batch_stall_before_rename:
      return "batch_stall_before_rename";
    case fault_point::reserve_links_refused:
      return "reserve_links_refused";
  }
  return "";
}

struct fault_rule {
  std::uint64_t first_n = 0;  // fail the first N hits
  std::uint64_t every_k = 0;  // or every K-th hit
  std::atomic<std::uint64_t> hits{0};
};

struct fault_table {
  bool any = false;
  fault_rule rules[fault_point_count];
  std::vector<std::string> problems;

  // Parses "point=SPEC,..."; anything it does not understand goes to problems.
  void parse(std::string_view text) {
    while (!text.empty()) {
      std::size_t comma = text.find(',');
      std::string_view item = text.substr(0, comma);
      text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
      if (item.empty()) continue;
      std::size_t eq = item.find('=');
      std::string_view name = item.substr(0, eq);
      std::string_view spec =
          eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
      int index = -1;
      for (int i = 0; i < fault_point_count; ++i)
        if (fault_point_name(static_cast<fault_point>(i)) == name) index = i;
      std::uint64_t n = 0;
      bool every = spec.size() > 2 && spec.substr(0, 2) == "1/";
      if (every) spec.remove_prefix(2);
      bool number = !spec.empty() && spec.size() <= 18;
      for (char c : spec) {
        if (c < '0' || c > '9') number = false;
        n = n * 10 + static_cast<std::uint64_t>(c - '0');
      }
      if (index < 0 || !number || (every && n == 0)) {
        problems.push_back("LEASEQ_FAULT: ignoring " + std::string(item) +
                           " (expected POINT=N or POINT=1/K with POINT one of "
                           "result_write_enospc, result_write_eio, claim_rename_lies, "
                           "dashboard_throws, claim_record_enospc, pid_record_enospc, "
                           "clean_kill_mid_unlink, batch_kill_before_rename, "
                           "batch_stall_before_rename, reserve_links_refused)");
        continue;
      }
      if (every)
        rules[index].every_k = n;
      else
        rules[index].first_n = n;
      any = any || n > 0;
    }
  }

  bool hit(fault_point p) {
    if (!any) return false;
    fault_rule& r = rules[static_cast<int>(p)];
    if (r.first_n == 0 && r.every_k == 0) return false;
    std::uint64_t n = ++r.hits;
    return n <= r.first_n || (r.every_k != 0 && n % r.every_k == 0);
  }
};

inline fault_table& faults() {
  static fault_table* table = [] {
    auto* t = new fault_table;  // never destroyed: checks may run during exit
    if (const char* v = std::getenv("LEASEQ_FAULT"); v && *v) t->parse(v);
    return t;
  }();
  return *table;
}

}  // namespace detail

// True when the injected fault fires at this hit of point p.
inline bool fault_hit(fault_point p) {
  return detail::faults().hit(p);
}

// Whether any fault is configured, and what in LEASEQ_FAULT was not understood.
inline bool faults_enabled() {
  return detail::faults().any;
}
inline const std::vector<std::string>& fault_config_problems() {
  return detail::faults().problems;
}

}  // namespace leaseq
