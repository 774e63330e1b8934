#pragma once

// leaseq: a file-based task queue over leases. This umbrella header includes the whole
// library; each header below can also be included on its own.

#include "leaseq/clock.hpp"
#include "leaseq/command.hpp"
#include "leaseq/config.hpp"
#include "leaseq/control.hpp"
#include "leaseq/error.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/gpu.hpp"
#include "leaseq/health.hpp"
#include "leaseq/index.hpp"
#include "leaseq/locate.hpp"
#include "leaseq/lock.hpp"
#include "leaseq/model.hpp"
#include "leaseq/names.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/runner.hpp"
#include "leaseq/seq.hpp"
#include "leaseq/spawn.hpp"
#include "leaseq/submit.hpp"
#include "leaseq/version.hpp"
