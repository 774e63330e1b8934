#pragma once

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "leaseq/clock.hpp"
#include "leaseq/detail/json_fields.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/lock.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/version.hpp"

namespace leaseq {

struct index_entry {
  std::string id;
  std::string kind;  // "local" or "slurm"
  std::optional<std::string> name;
  double created = 0;
  json extra = json::object();
};

// index.json: the known leases and the default one.
struct lease_index {
  int version = protocol_version;
  std::optional<std::string> default_lease;
  std::vector<index_entry> leases;
  json extra = json::object();

  const index_entry* find(const std::string& id) const {
    for (const auto& e : leases)
      if (e.id == id) return &e;
    return nullptr;
  }
  // Adds the lease unless it is known; true when it was added.
  bool add(index_entry e) {
    if (find(e.id)) return false;
    leases.push_back(std::move(e));
    return true;
  }
};

inline void to_json(json& j, const index_entry& e) {
  j = e.extra.is_object() ? e.extra : json::object();
  j["id"] = e.id;
  j["kind"] = e.kind;
  j["name"] = detail::or_null(e.name);
  j["created"] = e.created;
}

inline void to_json(json& j, const lease_index& idx) {
  j = idx.extra.is_object() ? idx.extra : json::object();
  j["version"] = idx.version;
  j["default"] = detail::or_null(idx.default_lease);
  j["leases"] = json::array();
  for (const auto& e : idx.leases) j["leases"].push_back(e);
}

// Throws format_error naming the field. Entries with an invalid id are refused, not skipped,
// so a writer never silently drops them on rewrite.
inline void from_json(const json& j, lease_index& idx) {
  if (!j.is_object()) throw format_error(std::string("expected an object, got ") + j.type_name());
  idx.version = static_cast<int>(detail::int_or(j, "version", protocol_version));
  idx.default_lease = detail::opt_string(j, "default");
  idx.leases.clear();
  if (auto it = j.find("leases"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) detail::bad_field("leases", "an array", *it);
    for (const json& e : *it) {
      if (!e.is_object()) detail::bad_field("leases[]", "an object", e);
      index_entry entry;
      entry.id = check_lease_id(detail::req_string(e, "id"));
      entry.kind =
          detail::opt_string(e, "kind").value_or(is_local_lease(entry.id) ? "local" : "slurm");
      entry.name = detail::opt_string(e, "name");
      entry.created = detail::opt_number(e, "created").value_or(0);
      entry.extra = detail::unknown_fields(e, {"id", "kind", "name", "created"});
      idx.leases.push_back(std::move(entry));
    }
  }
  idx.extra = detail::unknown_fields(j, {"version", "default", "leases"});
}

struct index_read {
  lease_index index;
  std::string error;  // non-empty: the file exists but cannot be used; index is empty
};

// A missing index is an empty one.
inline index_read read_index(const home_paths& home) {
  index_read out;
  json_outcome r = read_json_tolerant(home.index());
  if (!r.ok()) {
    if (r.err != ENOENT) out.error = home.index().string() + ": " + r.reason;
    return out;
  }
  try {
    from_json(*r.value, out.index);
  } catch (const error& e) {
    out.error = home.index().string() + ": " + e.what();
    out.index = lease_index{};
  }
  return out;
}

// Read-modify-write of index.json under flock(index.lock) and the link(2) lock
// index.json.lock (lock.hpp: holds where flock is local to one client). A corrupt index is never
// overwritten: the update is refused with the reason, so no lease record is lost.
template <typename Fn>
auto update_index(const home_paths& home, Fn&& fn) {
  home.ensure_root();
  file_lock lock(home.index_lock());  // cheap exclusion on one client
  dot_lock across_clients(home.root() / "index.json.lock");
  index_read current = read_index(home);
  if (!current.error.empty())
    throw error("refusing to rewrite " + home.index().string() + ": " + current.error +
                " (fix or move the file away)");
  current.index.version = std::max(current.index.version, protocol_version);
  if constexpr (std::is_void_v<decltype(fn(current.index))>) {
    fn(current.index);
    write_json_atomic(home.index(), json(current.index));
  } else {
    auto result = fn(current.index);
    write_json_atomic(home.index(), json(current.index));
    return result;
  }
}

// Adds a lease to the index unless it is known; a first lease becomes the default.
inline void register_lease(const home_paths& home, index_entry entry) {
  update_index(home, [&](lease_index& idx) {
    if (idx.add(std::move(entry)) && !idx.default_lease) idx.default_lease = idx.leases.back().id;
  });
}

}  // namespace leaseq
