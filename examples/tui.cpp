// `leaseq tui`: wires the dashboard's pure model/update/view (examples/dashboard/) to the
// terminal loop (leaseq/tui/app.hpp) and the background worker that does all the I/O.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

#include <leaseq/leaseq.hpp>

#include "dashboard/entry.hpp"
#include "dashboard/model.hpp"
#include "dashboard/update.hpp"
#include "dashboard/view.hpp"
#include "dashboard/worker.hpp"

namespace leaseq_dash {

namespace {

std::string self_binary() {
  std::error_code ec;
  leaseq::fs::path self = leaseq::fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("leaseq") : self.string();
}

}  // namespace

int run(const options& opt) {
  leaseq::home_paths env_home = leaseq::home_paths::from_env();
  std::string home = leaseq::fs::absolute(env_home.root()).lexically_normal().string();
  leaseq::home_paths abs_home(home);
  leaseq::config cfg = leaseq::load_config(abs_home.config());

  model m;
  m.ui = cfg.ui;
  m.home = home;
  m.hostname = leaseq::short_hostname();
  const char* bin_env = std::getenv("LEASEQ_BIN");
  m.binary = bin_env && *bin_env ? std::string(bin_env) : self_binary();
  m.now = leaseq::unix_now();

  // Which screen: --lease / --local open a dashboard, --slurm the filtered lease list, and
  // otherwise the default lease (or the lease list when there is none).
  std::string lease;
  if (!opt.lease.empty()) {
    lease = leaseq::check_lease_id(opt.lease);
  } else if (opt.local) {
    lease = leaseq::local_lease_id(m.hostname);
    leaseq::check_lease_id(lease);
  } else if (!opt.slurm) {
    leaseq::index_read idx = leaseq::read_index(abs_home);
    if (idx.index.default_lease) lease = *idx.index.default_lease;
    if (!idx.error.empty()) notify(m, idx.error, true);
  }
  if (opt.slurm) m.lease_filter = lease_filter_mode::slurm;
  // Every bad key, not only the last one notified: the whole list is behind `!`.
  m.config_warnings = cfg.warnings;
  if (cfg.warnings.size() == 1)
    notify(m, cfg.warnings.front(), true);
  else if (cfg.warnings.size() > 1)
    notify(m,
           fmt::format("config.json: {} keys ignored (!: list them): {}", cfg.warnings.size(),
                       cfg.warnings.front()),
           true);

  worker w(home, cfg, self_binary());
  if (!lease.empty()) open_lease(m, lease);
  auto flush = [&w](model& mm) {
    for (auto& r : mm.outbox) w.send(std::move(r));
    mm.outbox.clear();
  };
  flush(m);

  leaseq::tui::app_options ao;
  // Worker results wake the loop at once (wake_fd, read by take()); the tick keeps ages and
  // the clock moving.
  ao.tick_ms = 250;
  ao.wake_fd = w.wake_fd();
  auto result = leaseq::tui::run_app(
      m,
      [&](model& mm, const leaseq::tui::event& ev, leaseq::tui::app_io& io) {
        // LEASEQ_FAULT, tests: counted on key presses, so a test decides when it fires.
        if (std::holds_alternative<leaseq::tui::key_event>(ev) &&
            leaseq::fault_hit(leaseq::fault_point::dashboard_throws))
          throw std::runtime_error("injected fault: dashboard_throws");
        bool go = update(mm, ev);
        update(mm, msg_tick{leaseq::unix_now()});
        for (auto& msg : w.take()) update(mm, msg);
        flush(mm);
        if (!mm.clipboard.empty()) {
          std::string bytes = leaseq::tui::osc52_copy(std::exchange(mm.clipboard, {}));
          if (bytes.empty()) notify(mm, "too long for the clipboard (OSC 52)", true);
          io.write_raw(std::move(bytes));
        }
        return go;
      },
      [](model& mm, leaseq::tui::buffer& buf) { view(mm, buf); }, ao);
  // The terminal is restored by now. Worker threads may be waiting on a slow command
  // (sbatch, a hanging squeue): leave without joining them.
  std::fflush(stdout);
  std::fflush(stderr);
  if (result.signo != 0) {
    std::signal(result.signo, SIG_DFL);
    std::raise(result.signo);
  }
  std::_Exit(result.exit_code);
}

}  // namespace leaseq_dash
