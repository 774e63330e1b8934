#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "leaseq/error.hpp"

namespace leaseq {

// A JSON document whose fields have the wrong type or are missing.
class format_error : public error {
 public:
  using error::error;
};

namespace detail {

using json = nlohmann::json;

inline const char* json_type_name(const json& v) noexcept {
  return v.type_name();
}

[[noreturn]] inline void bad_field(const std::string& field, const char* expected, const json& v) {
  throw format_error("field '" + field + "': expected " + expected + ", got " + json_type_name(v));
}

inline const json* find_field(const json& obj, const char* name) {
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

inline std::string req_string(const json& obj, const char* name) {
  const json* v = find_field(obj, name);
  if (!v) throw format_error(std::string("missing field '") + name + "'");
  if (!v->is_string()) bad_field(name, "a string", *v);
  return v->get<std::string>();
}

inline std::optional<std::string> opt_string(const json& obj, const char* name) {
  const json* v = find_field(obj, name);
  if (!v || v->is_null()) return std::nullopt;
  if (!v->is_string()) bad_field(name, "a string or null", *v);
  return v->get<std::string>();
}

inline std::optional<double> opt_number(const json& obj, const char* name) {
  const json* v = find_field(obj, name);
  if (!v || v->is_null()) return std::nullopt;
  if (!v->is_number()) bad_field(name, "a number or null", *v);
  return v->get<double>();
}

inline double req_number(const json& obj, const char* name) {
  auto v = opt_number(obj, name);
  if (!v) throw format_error(std::string("missing field '") + name + "'");
  return *v;
}

inline std::optional<std::int64_t> opt_int(const json& obj, const char* name) {
  const json* v = find_field(obj, name);
  if (!v || v->is_null()) return std::nullopt;
  if (v->is_number_integer()) return v->get<std::int64_t>();
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (d >= -9.2e18 && d <= 9.2e18 && d == static_cast<double>(static_cast<std::int64_t>(d)))
      return static_cast<std::int64_t>(d);
  }
  bad_field(name, "an integer or null", *v);
}

inline std::int64_t int_or(const json& obj, const char* name, std::int64_t fallback) {
  return opt_int(obj, name).value_or(fallback);
}

inline bool bool_or(const json& obj, const char* name, bool fallback) {
  const json* v = find_field(obj, name);
  if (!v || v->is_null()) return fallback;
  if (!v->is_boolean()) bad_field(name, "a boolean", *v);
  return v->get<bool>();
}

inline std::vector<std::string> string_list(const json& obj, const char* name) {
  std::vector<std::string> out;
  const json* v = find_field(obj, name);
  if (!v || v->is_null()) return out;
  if (!v->is_array()) bad_field(name, "an array of strings", *v);
  for (const json& e : *v) {
    if (!e.is_string()) bad_field(name, "an array of strings", e);
    out.push_back(e.get<std::string>());
  }
  return out;
}

inline std::map<std::string, std::string> string_map(const json& obj, const char* name) {
  std::map<std::string, std::string> out;
  const json* v = find_field(obj, name);
  if (!v || v->is_null()) return out;
  if (!v->is_object()) bad_field(name, "an object of strings", *v);
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it.value().is_string())
      bad_field(std::string(name) + "." + it.key(), "a string", it.value());
    out.emplace(it.key(), it.value().get<std::string>());
  }
  return out;
}

template <typename T>
json or_null(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

// Fields of obj that are not in known: kept so a rewrite never drops what another tool wrote.
inline json unknown_fields(const json& obj, std::initializer_list<const char*> known) {
  json extra = json::object();
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool is_known = false;
    for (const char* k : known)
      if (it.key() == k) is_known = true;
    if (!is_known) extra[it.key()] = it.value();
  }
  return extra;
}

}  // namespace detail
}  // namespace leaseq
