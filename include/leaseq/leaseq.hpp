#pragma once

// leaseq: a file-based task queue over leases. This umbrella header includes the whole
// library; each header below can also be included on its own.

#include "leaseq/version.hpp"
#include "leaseq/error.hpp"
#include "leaseq/clock.hpp"
#include "leaseq/names.hpp"
#include "leaseq/file_io.hpp"
#include "leaseq/lock.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/model.hpp"
#include "leaseq/config.hpp"
#include "leaseq/index.hpp"
#include "leaseq/seq.hpp"
#include "leaseq/command.hpp"
#include "leaseq/health.hpp"
#include "leaseq/gpu.hpp"
#include "leaseq/spawn.hpp"
#include "leaseq/locate.hpp"
#include "leaseq/submit.hpp"
#include "leaseq/control.hpp"
#include "leaseq/runner.hpp"
#include "leaseq/slurm_parse.hpp"
#include "leaseq/slurm.hpp"
#include "leaseq/keeper.hpp"
#include "leaseq/leases.hpp"
