// Every JSON reader of a protocol file: task, result, heartbeat, lease, index, config.
// Property: parse + from_json either succeeds or throws leaseq::error; nothing else escapes,
// and whatever parsed writes back as valid UTF-8 JSON (bytes that are not UTF-8 go to the
// *_b64 fields) and parses again to the same value.
#include <leaseq/config.hpp>
#include <leaseq/file_io.hpp>
#include <leaseq/index.hpp>
#include <leaseq/model.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

template <typename T>
static void round_trip(const leaseq::json& j) {
  try {
    T value = j.get<T>();
    leaseq::json again = value;
    try {
      (void)again.dump();  // strict: throws on text that is not UTF-8
    } catch (const leaseq::json::exception&) {
      std::abort();
    }
    T back = again.get<T>();
    if (leaseq::json(back) != again) std::abort();
  } catch (const leaseq::error&) {
  } catch (const leaseq::json::exception&) {
    // nlohmann type errors inside get<> are reported as format errors by our readers
  }
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  leaseq::json_outcome parsed = leaseq::parse_json_tolerant(text);
  if (!parsed.ok()) return 0;
  const leaseq::json& j = *parsed.value;
  round_trip<leaseq::task_spec>(j);
  round_trip<leaseq::task_result>(j);
  round_trip<leaseq::heartbeat>(j);
  round_trip<leaseq::lease_record>(j);
  round_trip<leaseq::lease_index>(j);
  leaseq::config c = leaseq::parse_config(j);
  if (c.ui.slurm_refresh_s < leaseq::min_slurm_refresh_s) std::abort();
  return 0;
}
