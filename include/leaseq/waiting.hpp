#pragma once

// Why a PENDING task waits, and which submits can never run. Pure: a reader derives both from
// what it already holds (a snapshot, the heartbeats, the lease's state); nothing is stored, so
// a reason is always as fresh as the scan it comes from.
//
// A reason is given only when nothing in sight will take the task: no runner serves its lane,
// none has the GPUs it asks for, every runner that could take it is paused or silent, or the
// lease itself ended; or (protocol version 3) its dependencies have not all FINISHED ("after
// T012 (RUNNING)"), or its retry delay has not passed. A task that simply waits its turn (or whose
// runners are still to come, a Slurm job not started yet) has no reason: "waiting" is then the
// whole story.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "leaseq/health.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"
#include "leaseq/slurm/slurm_parse.hpp"
#include "leaseq/snapshot.hpp"

namespace leaseq {

// What a reader knows of the lease beside its files. The default (kind unknown) makes no
// claim a lease's kind would decide: a lease no runner ever served gets no reason.
struct lease_condition {
  enum class lease_kind { unknown, local, slurm };
  lease_kind kind = lease_kind::unknown;
  // Slurm's word for the job (PENDING, RUNNING, CANCELLED, TIMEOUT, ...); empty when unknown.
  std::string state;
  // How many runners the lease will have (lease.json `nodes`), when known: until that many
  // have written a heartbeat, a node lane without one may still get its runner.
  std::optional<std::int64_t> nodes;

  static lease_condition local() { return {lease_kind::local, {}, std::nullopt}; }
  static lease_condition slurm(std::string state, std::optional<std::int64_t> nodes = {}) {
    return {lease_kind::slurm, std::move(state), nodes};
  }
};

// Slurm ended the lease's job: its runners are gone for good.
inline bool lease_ended(const lease_condition& l) noexcept {
  return l.kind == lease_condition::lease_kind::slurm && slurm_state_is_final(l.state);
}

namespace detail {

// A runner that may still claim: it wrote a heartbeat and did not stop. A STALE one counts:
// on a lagging filesystem its heartbeat may only be late.
inline bool may_serve(const node_view& n) noexcept {
  return n.hb && n.health != node_health::down && n.health != node_health::unknown;
}

// Runners still to come: a Slurm lease whose job has not ended and has fewer runners in
// sight than it will have (or an unknown number). A local lease's runner is started by hand,
// so it never "comes" by itself; a lease of unknown kind is given the benefit of the doubt.
inline bool runners_may_come(const lease_condition& l, std::size_t seen) noexcept {
  switch (l.kind) {
    case lease_condition::lease_kind::local:
      return false;
    case lease_condition::lease_kind::unknown:
      return seen == 0;
    case lease_condition::lease_kind::slurm:
      return !lease_ended(l) && (!l.nodes || static_cast<std::int64_t>(seen) < *l.nodes);
  }
  return false;
}

// What a pending task of protocol version 3 waits for besides a runner: its dependencies
// (each one not FINISHED, with its state; the first that ended otherwise makes the task's
// runner cancel it) or its retry delay.
inline std::optional<std::string> own_wait(const task_view& t, const snapshot& s) {
  if (!t.spec) return std::nullopt;
  std::string waits;
  for (const std::string& dep : t.spec->after) {
    const task_view* d = s.find_task(dep);
    if (d && d->state == task_state::finished) continue;
    std::string state = d ? std::string(to_string(d->state)) : std::string("not visible");
    if (d && is_done(d->state))
      return "dependency " + dep + " ended " + state + ": a runner will cancel it";
    waits += (waits.empty() ? "" : ", ") + dep + " (" + state + ")";
  }
  if (!waits.empty()) return "after " + waits;
  if (t.spec->not_before && *t.spec->not_before > s.taken_at)
    return fmt::format("attempt {}/{} starts in {:.0f} s (retry delay)", attempt_number(*t.spec),
                       attempts_allowed(*t.spec), *t.spec->not_before - s.taken_at);
  return std::nullopt;
}

// Why no runner will take `t` now, or nothing.
inline std::optional<std::string> runner_wait(const task_view& t, const snapshot& s,
                                              const lease_condition& lease) {
  const std::int64_t gpus = t.spec ? t.spec->gpus : 0;
  std::size_t seen = 0;  // runners that ever wrote a heartbeat
  for (const auto& n : s.nodes) seen += n.hb ? 1 : 0;

  if (!t.node.empty()) {
    const node_view* n = s.find_node(t.node);
    if (!n || !detail::may_serve(*n)) {
      // Its runner is still to come, unless it already came and stopped.
      if ((!n || !n->hb) && detail::runners_may_come(lease, seen)) return std::nullopt;
      return "no runner serves lane " + t.node;
    }
    if (gpus > n->hb->gpus)
      return fmt::format("needs {} GPUs, node {} has {}", gpus, t.node, n->hb->gpus);
    if (n->paused) return "the runner of " + t.node + " is paused";
    if (n->health == node_health::stale)
      return "the runner of " + t.node + " is not responding (heartbeat STALE)";
    return std::nullopt;
  }

  std::vector<const node_view*> serving;
  for (const auto& n : s.nodes)
    if (detail::may_serve(n)) serving.push_back(&n);
  if (serving.empty()) {
    if (detail::runners_may_come(lease, seen)) return std::nullopt;
    return std::string("no runner serves this lease");
  }
  std::int64_t most = 0;
  std::vector<const node_view*> able;  // runners with enough GPUs
  for (const node_view* n : serving) {
    most = std::max(most, n->hb->gpus);
    if (n->hb->gpus >= gpus) able.push_back(n);
  }
  // A runner still to come may have the GPUs: only the runners in sight are compared.
  if (able.empty()) {
    if (detail::runners_may_come(lease, seen)) return std::nullopt;
    return fmt::format("needs {} GPUs, the most any runner of this lease has is {}", gpus, most);
  }
  // Who could take it, for the message: one runner by name, else every runner (with enough
  // GPUs, when only some have them).
  std::string whom = able.size() == 1 ? "the runner of " + able.front()->name
                     : able.size() == serving.size()
                         ? std::string("every runner of this lease")
                         : fmt::format("every runner with {} GPUs or more", gpus);
  std::size_t paused = 0, silent = 0;
  for (const node_view* n : able) {
    paused += n->paused ? 1 : 0;
    silent += !n->paused && n->health == node_health::stale ? 1 : 0;
  }
  if (paused == able.size()) return whom + " is paused";
  if (paused + silent == able.size())
    return whom + (paused ? " is paused or" : " is") + " not responding (heartbeat STALE)";
  return std::nullopt;
}

}  // namespace detail

// "attempt 2/3" for a task with retries (or that was retried): the attempt it is on, or for an
// ended task the attempts it took, of those it may have. Nothing for any other task.
inline std::optional<std::string> attempt_text(const task_view& t) {
  const task_spec* spec = t.result ? &t.result->task : t.spec.get();
  if (!spec || (spec->retries == 0 && spec->attempts.empty())) return std::nullopt;
  int n =
      t.result ? std::max<int>(1, static_cast<int>(spec->attempts.size())) : attempt_number(*spec);
  return fmt::format("attempt {}/{}", n, std::max(n, attempts_allowed(*spec)));
}

// Why `t` (PENDING) waits, or nothing when it is simply queued. A task in any other state
// has no waiting reason. What keeps every runner away comes first, then what the task itself
// waits for (dependencies, a retry delay).
inline std::optional<std::string> waiting_reason(const task_view& t, const snapshot& s,
                                                 const lease_condition& lease = {}) {
  if (t.state != task_state::pending) return std::nullopt;
  if (lease_ended(lease)) return "lease ended (" + lease.state + ")";
  if (auto why = detail::runner_wait(t, s, lease)) return why;
  return detail::own_wait(t, s);
}

// Why a submit of a task asking for `gpus` GPUs into lane `node` (nullopt: _any) can never
// run, or nothing. Certain answers only: the lease ended, or its runners are all in sight
// (fresh heartbeats, and for a Slurm lease as many as it will have) and none can take it.
// `hbs` is every heartbeat of the lease; a runner is live when its heartbeat is OK at `now`.
inline std::optional<std::string> submit_refusal(int gpus, const std::optional<std::string>& node,
                                                 const std::vector<heartbeat>& hbs,
                                                 const lease_condition& lease, double now,
                                                 double hb_stale_s) {
  if (lease_ended(lease)) return "the lease ended (" + lease.state + "): no runner will come";
  std::vector<const heartbeat*> live;
  for (const auto& hb : hbs)
    if (compute_health(hb, now, hb_stale_s) == node_health::ok) live.push_back(&hb);
  if (live.empty()) return std::nullopt;  // runners unknown: anything may come
  if (lease.kind == lease_condition::lease_kind::slurm &&
      (!lease.nodes || static_cast<std::int64_t>(live.size()) < *lease.nodes))
    return std::nullopt;  // some of its runners are not in sight yet
  if (node) {
    auto known =
        std::find_if(hbs.begin(), hbs.end(), [&](const heartbeat& hb) { return hb.node == *node; });
    if (known == hbs.end()) {
      std::string names;
      for (const heartbeat* hb : live) names += (names.empty() ? "" : ", ") + hb->node;
      return fmt::format("no runner of this lease serves node {} (its runners: {})", *node, names);
    }
    auto it = std::find_if(live.begin(), live.end(),
                           [&](const heartbeat* hb) { return hb->node == *node; });
    if (it != live.end() && gpus > (*it)->gpus)
      return fmt::format("needs {} GPUs, node {} has {}", gpus, *node, (*it)->gpus);
    return std::nullopt;
  }
  std::int64_t most = 0;
  for (const heartbeat* hb : live) most = std::max(most, hb->gpus);
  if (gpus > most)
    return fmt::format("needs {} GPUs, the most any runner of this lease has is {}", gpus, most);
  return std::nullopt;
}

}  // namespace leaseq
