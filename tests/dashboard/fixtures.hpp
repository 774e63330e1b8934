#pragma once

// Hand-built models for the dashboard's update/view tests: a lease listing, a snapshot with
// tasks in every state and nodes OK/STALE, and helpers to press keys and read the screen.

#include <dashboard/model.hpp>
#include <dashboard/update.hpp>
#include <dashboard/view.hpp>

#include <leaseq/snapshot.hpp>
#include <leaseq/tui/input.hpp>
#include <leaseq/tui/screen.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dash_test {

using namespace leaseq_dash;
using leaseq::task_state;

inline constexpr double now = 1'000'000;

inline leaseq::task_view make_task(int seq, task_state st, const std::string& node,
                                   const std::string& cmd) {
  leaseq::task_view t;
  t.id = leaseq::format_task_id(seq);
  t.seq = seq;
  t.node = node;
  t.state = st;
  auto spec = std::make_shared<leaseq::task_spec>();
  spec->id = t.id;
  spec->seq = seq;
  spec->argv = {"/bin/sh", "-c", cmd};
  spec->cmd = cmd;
  spec->cwd = "/work/dir";
  spec->env = {{"CUDA_VISIBLE_DEVICES", "0"}, {"SECRET_TOKEN", "abc"}};
  spec->created = now - 600 + seq;
  t.spec = spec;
  t.last_seen = now;
  if (st != task_state::pending) spec->claimed = now - 300 + seq;
  if (leaseq::is_done(st)) {
    auto r = std::make_shared<leaseq::task_result>();
    r->task = *spec;
    r->state = st;
    r->exit_code = st == task_state::finished ? 0 : 3;
    r->claimed = now - 300 + seq;
    r->started = now - 299 + seq;
    r->finished = now - 100 + seq;
    r->stdout_path = "logs/" + node + "/" + t.id + ".out";
    r->stderr_path = "logs/" + node + "/" + t.id + ".err";
    t.result = r;
  }
  return t;
}

inline std::shared_ptr<const leaseq::snapshot> make_snapshot(const std::string& lease) {
  auto s = std::make_shared<leaseq::snapshot>();
  s->lease_id = lease;
  s->taken_at = now;
  s->generation = 1;
  s->complete = true;
  auto tasks = std::make_shared<std::vector<leaseq::task_view>>();
  tasks->push_back(make_task(1, task_state::finished, "nodeA", "echo done-one"));
  tasks->push_back(make_task(2, task_state::failed, "nodeB", "python fail.py"));
  tasks->push_back(make_task(3, task_state::running, "nodeA", "python train.py --cfg a.yaml"));
  tasks->push_back(make_task(4, task_state::pending, "", "echo waiting"));
  auto lost = make_task(5, task_state::lost_maybe, "nodeC", "python lost.py");
  lost.last_running_seen = now - 40;
  lost.node = "nodeC";
  lost.missing_since = now - 10;
  lost.unknown = true;
  lost.unknown_reason = "was RUNNING, now in neither claimed/ nor done/";
  tasks->push_back(lost);
  tasks->push_back(make_task(6, task_state::cancelled, "nodeB", "sleep 100"));
  s->task_table = tasks;
  for (const auto& t : *tasks) ++s->counts[leaseq::state_index(t.state)];
  s->fs_lag = true;
  leaseq::node_view a;
  a.name = "nodeA";
  a.health = leaseq::node_health::ok;
  a.hb_age_s = 2;
  a.hb = leaseq::heartbeat{};
  a.hb->node = "nodeA";
  a.hb->ts = now - 2;
  a.running = {"T003"};
  leaseq::node_view b;
  b.name = "nodeB";
  b.health = leaseq::node_health::ok;
  b.hb_age_s = 5;
  b.pending = 2;
  leaseq::node_view c;
  c.name = "nodeC";
  c.health = leaseq::node_health::stale;
  c.hb_age_s = 95;
  c.running = {"T005"};
  s->nodes = {a, b, c};
  return s;
}

inline leaseq::lease_listing make_leases() {
  leaseq::lease_listing l;
  leaseq::lease_row local;
  local.id = "local:myhost";
  local.kind = "local";
  local.state = "RUNNING";
  local.gpus_per_node = 8;
  local.time_left = "-";
  local.is_default = true;
  leaseq::lease_row run;
  run.id = "99887766";
  run.kind = "slurm";
  run.state = "RUNNING";
  run.nodes = 4;
  run.gpus_per_node = 8;
  run.time_left = "10:42";
  run.name = "train";
  run.seen = now - 12;
  leaseq::lease_row pend;
  pend.id = "11223344";
  pend.kind = "slurm";
  pend.state = "PENDING";
  pend.reason = "Resources";
  pend.nodes = 2;
  pend.time_left = "-";
  l.rows = {local, run, pend};
  l.default_lease = "local:myhost";
  return l;
}

// A model on the lease list with the listing loaded.
inline model lease_list_model(int w = 80, int h = 24) {
  model m;
  m.width = w;
  m.height = h;
  m.now = now;
  m.home = "/home/u/.leaseq";
  m.binary = "/usr/bin/leaseq";
  update(m, message{msg_leases{make_leases()}});
  return m;
}

// A model showing lease `lease`'s dashboard with the snapshot loaded.
inline model dashboard_model(const std::string& lease = "99887766", int w = 100, int h = 30) {
  model m = lease_list_model(w, h);
  open_lease(m, lease);
  m.outbox.clear();
  update(m, message{msg_snapshot{make_snapshot(lease)}});
  update(m, message{msg_tick{now}});
  return m;
}

inline void press(model& m, const leaseq::tui::key& k) {
  update(m, leaseq::tui::event{leaseq::tui::key_event{k}});
}
inline void press(model& m, char32_t c) {
  press(m, leaseq::tui::key::ch(c));
}
inline void press(model& m, leaseq::tui::key_code c) {
  press(m, leaseq::tui::key::of(c));
}
inline void type(model& m, const std::string& s) {
  for (char c : s) press(m, static_cast<char32_t>(c));
}

inline std::string screen_text(model& m) {
  leaseq::tui::buffer buf(m.width, m.height);
  view(m, buf);
  return buf.to_text();
}

inline bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

template <class T>
const T* last_request(const model& m) {
  for (auto it = m.outbox.rbegin(); it != m.outbox.rend(); ++it)
    if (const auto* r = std::get_if<T>(&*it)) return r;
  return nullptr;
}

}  // namespace dash_test
