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
#include "leaseq/detail/text_width.hpp"
#include "leaseq/tui/screen.hpp"
#include "leaseq/tui/input.hpp"
#include "leaseq/tui/term.hpp"
#include "leaseq/tui/layout.hpp"
#include "leaseq/tui/widgets.hpp"
#include "leaseq/tui/clipboard.hpp"
#include "leaseq/tui/app.hpp"
