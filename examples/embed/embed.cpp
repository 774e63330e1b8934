// Embedding leaseq in your own tool: enqueue a command on a lease, then read the lease the way
// the dashboard does (one snapshot: tasks with their derived state, nodes with their health).
#include <leaseq/leaseq.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: embed LEASE_ID COMMAND [ARGS...]\n");
    return 2;
  }
  try {
    auto home = leaseq::home_paths::from_env();
    std::string lease_id = leaseq::check_lease_id(argv[1]);
    leaseq::lease_paths lease(home, lease_id);

    leaseq::submit_request request;
    request.argv.assign(argv + 2, argv + argc);
    std::string id = leaseq::submit_task(lease, lease_id, request).id;
    std::printf("submitted %s\n", id.c_str());

    leaseq::snapshot_store<> store(lease, lease_id);
    auto snap = store.refresh_all();
    for (const auto& task : snap->tasks())
      std::printf("%s %s %s\n", task.id.c_str(), std::string(leaseq::to_string(task.state)).c_str(),
                  leaseq::sanitize_inline(task.command()).c_str());
    for (const auto& node : snap->nodes)
      std::printf("node %s %s\n", node.name.c_str(),
                  std::string(leaseq::to_string(node.health)).c_str());
  } catch (const leaseq::error& e) {
    std::fprintf(stderr, "embed: %s\n", e.what());
    return 1;
  }
  return 0;
}
