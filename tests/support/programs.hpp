#pragma once

// The programs the end-to-end tests drive: those this build made, unless LEASEQ_TEST_BIN,
// LEASEQ_TEST_EMBED_EXAMPLE or LEASEQ_TEST_RENDERER_DEMO name others. tools/test runs this
// (uninstrumented) driver a second time against the sanitizer build's programs, so that build
// need not compile the driver again.

#include <cstdlib>

namespace test_support {

inline const char* program_under_test(const char* env_name, const char* built) {
  const char* other = std::getenv(env_name);
  return other != nullptr && *other != '\0' ? other : built;
}

}  // namespace test_support

#ifdef LEASEQ_BIN_BUILT
#define LEASEQ_BIN ::test_support::program_under_test("LEASEQ_TEST_BIN", LEASEQ_BIN_BUILT)
#endif
#ifdef LEASEQ_EMBED_EXAMPLE_BUILT
#define LEASEQ_EMBED_EXAMPLE \
  ::test_support::program_under_test("LEASEQ_TEST_EMBED_EXAMPLE", LEASEQ_EMBED_EXAMPLE_BUILT)
#endif
#ifdef LEASEQ_RENDERER_DEMO_BUILT
#define LEASEQ_RENDERER_DEMO \
  ::test_support::program_under_test("LEASEQ_TEST_RENDERER_DEMO", LEASEQ_RENDERER_DEMO_BUILT)
#endif
