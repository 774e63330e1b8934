// The squeue, scontrol and sbatch parsers, and Slurm durations. Property: any text (a broken
// or hostile squeue) is parsed or rejected without crashing; a parsed duration formats and
// parses back to the same number of seconds.
#include <leaseq/slurm_parse.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)leaseq::parse_squeue(text);
  (void)leaseq::parse_scontrol_pairs(text);
  (void)leaseq::parse_scontrol_job(text);
  (void)leaseq::parse_sbatch_parsable(text);
  (void)leaseq::says_invalid_job_id(text);
  leaseq::slurm_duration d = leaseq::parse_slurm_duration(text);
  std::string formatted = leaseq::format_slurm_duration(d);
  if (d.has_seconds() && !(leaseq::parse_slurm_duration(formatted) == d)) std::abort();
  return 0;
}
