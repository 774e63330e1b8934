// runner, submit, cancel, retry, pause, resume, lease local: what the engine commands share
// (cmd_runner.cpp, cmd_submit.cpp, cmd_control.cpp hold the commands).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <leaseq/leaseq.hpp>

#include "commands.hpp"
#include "engine_common.hpp"

namespace leaseq_cli {

using namespace leaseq;

namespace {

// Whether some process holds runner-<node>.lock (a live runner holds it for its whole life).
// True as well when the filesystem refuses flock: then only the pid can tell.
bool runner_lock_held(const lease_paths& lease, const std::string& node) {
  detail::unique_fd fd(
      ::open(lease.runner_lock(node).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return false;  // no lock file: no runner of this version or later ever ran here
  for (;;) {
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
      ::flock(fd.get(), LOCK_UN);
      return false;
    }
    if (errno == EINTR) continue;
    return errno == EWOULDBLOCK || file_lock::unsupported(errno);
  }
}

}  // namespace

std::string resolve_lease(const home_paths& home, const std::string& given,
                          bool local_only_default) {
  check_home_trust(home, home_use::write);  // every engine command writes, or runs tasks
  std::string id = given;
  if (id.empty() && !local_only_default) {
    index_read idx = read_index(home);
    // An unreadable index hides which lease is the default: never guess (the local lease
    // would silently receive work meant for a Slurm lease).
    if (!idx.error.empty())
      throw error(idx.error + "; cannot tell the default lease: pass --lease ID");
    if (idx.index.default_lease) id = *idx.index.default_lease;
  }
  if (id.empty()) id = local_lease_id(short_hostname());
  check_lease_id(id);
  if (is_local_lease(id)) {
    // First use of the local lease: register it and write its lease.json.
    lease_paths lease(home, id);
    // The exists() check only saves work: the file is created exclusively, so a lease.json
    // another process wrote meanwhile (or that a lagging cache hid) is never replaced.
    if (!fs::exists(lease.lease_json())) {
      double now = unix_now();
      lease_record rec;
      rec.id = id;
      rec.kind = "local";
      rec.created = now;
      if (create_lease_json(lease, json(rec))) {
        try {
          register_lease(home, index_entry{id, "local", std::nullopt, now, json::object()});
        } catch (const error& e) {
          // The user named the lease: an index that cannot be rewritten only keeps it out of
          // `lease ls` for now (the next command registers it), it never blocks the work.
          std::fprintf(stderr, "leaseq: warning: %s\n", sanitize_inline(e.what()).c_str());
        }
      }
    }
  }
  return id;
}

// Anything read from the heartbeat is untrusted: a pid is only used once it has passed
// is_signallable_pid().
local_heartbeat live_local_runner(const lease_paths& lease, const std::string& node) {
  local_heartbeat out;
  json_outcome r = read_json_tolerant(lease.heartbeat(node));
  if (!r.ok()) return out;
  heartbeat hb;
  try {
    from_json(*r.value, hb);
  } catch (const error& e) {
    out.problem = lease.heartbeat(node).string() + " is unreadable: " + e.what();
    return out;
  }
  if (hb.stopped || unix_now() - hb.ts > 60) return out;
  if (!hb.host.empty() && hb.host != short_hostname()) {
    out.problem =
        fmt::format("{} was written on host {}, not this one ({})", lease.heartbeat(node).string(),
                    detail::quote_for_message(hb.host), short_hostname());
    return out;
  }
  if (!is_signallable_pid(hb.pid)) {
    out.problem = fmt::format("{} names pid {}, which no runner can have",
                              lease.heartbeat(node).string(), hb.pid);
    return out;
  }
  pid_t pid = static_cast<pid_t>(hb.pid);
  if (::kill(pid, 0) != 0 && errno == ESRCH) return out;
  if (hb.pid_start != 0 && !hb.boot_id.empty()) {
    // Protocol 4: the runner wrote who it is. A pid now held by another process (pids are
    // reused), or a heartbeat from an earlier boot, names no runner.
    if (!detail::is_same_process(pid, hb.pid_start, hb.boot_id)) return out;
  } else if (!runner_lock_held(lease, node)) {
    return out;  // an older runner's heartbeat tells only its pid: a live runner holds its lock
  }
  out.hb = hb;
  return out;
}

void add_engine_commands(CLI::App& app, CLI::App& lease_cmd) {
  add_runner_commands(app, lease_cmd);
  add_submit_command(app);
  add_control_commands(app);
}

}  // namespace leaseq_cli
