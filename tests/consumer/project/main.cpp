// A tiny HPC tool that embeds leaseq: enqueues a task on a lease tree and reads it back.
#include <leaseq/leaseq.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer DIR\n");
    return 2;
  }
  leaseq::home_paths home(argv[1]);
  home.ensure_root();
  leaseq::lease_paths lease(home, "local:consumer");
  leaseq::task_spec task;
  task.seq = leaseq::allocate_seq(lease);
  task.id = leaseq::format_task_id(task.seq);
  task.lease = "local:consumer";
  task.argv = {"echo", "hello"};
  task.cmd = "echo hello";
  leaseq::ensure_dir(lease.inbox("_any"));
  leaseq::write_json_atomic(lease.inbox_task("_any", task.id), leaseq::json(task));
  auto back = leaseq::read_json_tolerant(lease.inbox_task("_any", task.id));
  if (!back.ok()) return 1;
  auto parsed = back.value->get<leaseq::task_spec>();
  std::printf("%s %s\n", parsed.id.c_str(), parsed.cmd.c_str());
  return parsed.id == "T001" ? 0 : 1;
}
