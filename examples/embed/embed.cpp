// Embedding leaseq in your own HPC tool: list the leases this user knows.
#include <leaseq/leaseq.hpp>

#include <cstdio>

int main() {
  auto home = leaseq::home_paths::from_env();
  leaseq::index_read idx = leaseq::read_index(home);
  if (!idx.error.empty()) {
    std::fprintf(stderr, "embed: %s\n", idx.error.c_str());
    return 1;
  }
  for (const auto& lease : idx.index.leases)
    std::printf("%s %s%s\n", lease.id.c_str(), lease.kind.c_str(),
                idx.index.default_lease == lease.id ? " *default" : "");
  return 0;
}
