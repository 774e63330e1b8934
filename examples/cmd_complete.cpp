// __complete: prints completion candidates, one per line, for share/bash-completion/leaseq.
// Reads LEASEQ_HOME only; names that fail validation are never printed.
#include <algorithm>
#include <iostream>
#include <set>
#include <string>

#include <leaseq/detail/dir.hpp>
#include <leaseq/detail/strings.hpp>
#include <leaseq/index.hpp>
#include <leaseq/names.hpp>
#include <leaseq/paths.hpp>

#include "commands.hpp"

namespace leaseq_cli {

namespace {

void print_subcommands(const CLI::App& app, const std::vector<std::string>& path) {
  const CLI::App* at = &app;
  for (const auto& name : path) {
    const CLI::App* next = nullptr;
    for (const CLI::App* sub : at->get_subcommands([](const CLI::App*) { return true; }))
      if (sub->get_name() == name) next = sub;
    if (!next) return;
    at = next;
  }
  for (const CLI::App* sub : at->get_subcommands([](const CLI::App*) { return true; }))
    if (!sub->get_group().empty()) std::cout << sub->get_name() << "\n";
  for (const CLI::Option* opt : at->get_options())
    if (!opt->get_group().empty())  // a hidden alias (runner --gpus) is not offered
      for (const auto& l : opt->get_lnames()) std::cout << "--" << l << "\n";
}

std::string lease_or_default(const leaseq::home_paths& home, const std::string& lease) {
  if (!lease.empty()) return lease;
  auto idx = leaseq::read_index(home);
  return idx.index.default_lease.value_or("");
}

void print_tasks(const leaseq::home_paths& home, const std::string& lease_id) {
  if (!leaseq::is_valid_lease_id(lease_id)) return;
  leaseq::lease_paths lease(home, lease_id);
  std::set<std::string> ids;
  for (const auto& root : {lease.inbox_root(), lease.claimed_root(), lease.done_root()})
    for (const auto& lane : leaseq::detail::list_dir(root.string()).names) {
      if (!leaseq::is_valid_lane(lane)) continue;
      for (const auto& f : leaseq::detail::list_dir((root / lane).string()).names) {
        std::string id = f.substr(0, f.find('.'));
        if (leaseq::is_valid_task_id(id)) ids.insert(id);
      }
    }
  for (const auto& id : ids) std::cout << id << "\n";
}

void print_nodes(const leaseq::home_paths& home, const std::string& lease_id) {
  if (!leaseq::is_valid_lease_id(lease_id)) return;
  leaseq::lease_paths lease(home, lease_id);
  std::set<std::string> nodes;
  for (const auto& f : leaseq::detail::list_dir(lease.hb_dir().string()).names) {
    auto node = leaseq::detail::strip_suffix(f, ".json");
    if (node && leaseq::is_valid_node(*node)) nodes.insert(std::string(*node));
  }
  for (const auto& root : {lease.inbox_root(), lease.claimed_root(), lease.done_root()})
    for (const auto& n : leaseq::detail::list_dir(root.string()).names)
      if (leaseq::is_valid_node(n)) nodes.insert(n);
  for (const auto& n : nodes) std::cout << n << "\n";
}

}  // namespace

void add_complete_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("__complete", "Completion candidates (used by bash completion)");
  cmd->group("");  // hidden from --help
  auto kind = std::make_shared<std::string>();
  auto lease = std::make_shared<std::string>();
  auto words = std::make_shared<std::vector<std::string>>();
  cmd->add_option("kind", *kind, "commands|leases|tasks|nodes")->required();
  add_lease_option(*cmd, *lease);
  cmd->add_option("words", *words, "For commands: the subcommand path typed so far");
  cmd->callback([&app, kind, lease, words] {
    auto home = leaseq::home_paths::from_env();
    if (*kind == "commands") {
      print_subcommands(app, *words);
    } else if (*kind == "leases") {
      auto idx = leaseq::read_index(home);
      for (const auto& e : idx.index.leases) std::cout << e.id << "\n";
    } else if (*kind == "tasks") {
      print_tasks(home, lease_or_default(home, *lease));
    } else if (*kind == "nodes") {
      print_nodes(home, lease_or_default(home, *lease));
    }
  });
}

}  // namespace leaseq_cli
