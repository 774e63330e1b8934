// The squeue, scontrol and sbatch parsers, and Slurm durations. Property: any text (a broken
// or hostile squeue) is parsed or rejected without crashing; every text field of a parsed job
// is valid UTF-8 (it goes into JSON: the state cache, --json outputs); a parsed duration
// formats and parses back to the same number of seconds.
#include <leaseq/slurm/slurm_parse.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto utf8 = [](const leaseq::slurm_job& j) {
    for (const std::string* f :
         {&j.id, &j.state, &j.reason, &j.nodelist, &j.start_time, &j.name, &j.exit_code})
      if (!leaseq::detail::is_valid_utf8(*f)) std::abort();
  };
  leaseq::squeue_parse q = leaseq::parse_squeue(text);
  for (const auto& j : q.jobs) utf8(j);
  for (const auto& line : q.bad_lines)
    if (!leaseq::detail::is_valid_utf8(line)) std::abort();
  (void)leaseq::parse_scontrol_pairs(text);
  if (auto j = leaseq::parse_scontrol_job(text)) utf8(*j);
  (void)leaseq::parse_sbatch_parsable(text);
  (void)leaseq::says_invalid_job_id(text);
  leaseq::slurm_duration d = leaseq::parse_slurm_duration(text);
  std::string formatted = leaseq::format_slurm_duration(d);
  if (d.has_seconds() && !(leaseq::parse_slurm_duration(formatted) == d)) std::abort();
  return 0;
}
