#pragma once

// leaseq: a file-based task queue over leases. This umbrella header includes the whole
// library; each header below can also be included on its own. Headers under leaseq/detail/
// are the library's internals and come in through the headers that use them.

// Basics: errors, time, names, durations, configuration.
#include "leaseq/clock.hpp"
#include "leaseq/config.hpp"
#include "leaseq/duration.hpp"
#include "leaseq/error.hpp"
#include "leaseq/names.hpp"
#include "leaseq/version.hpp"

// The on-disk tree: paths, atomic files, locks, trust checks, the lease index.
#include "leaseq/file_io.hpp"
#include "leaseq/fs.hpp"
#include "leaseq/index.hpp"
#include "leaseq/locate.hpp"
#include "leaseq/lock.hpp"
#include "leaseq/paths.hpp"
#include "leaseq/trust.hpp"

// Reading a lease: the task model, snapshots and their store, diffs, health, filters, the
// archive, one task file read on its own or followed by its files, why a task waits, log
// tails.
#include "leaseq/archive.hpp"
#include "leaseq/diff.hpp"
#include "leaseq/health.hpp"
#include "leaseq/model.hpp"
#include "leaseq/pending_check.hpp"
#include "leaseq/results_index.hpp"
#include "leaseq/sanitize.hpp"
#include "leaseq/select_reading.hpp"
#include "leaseq/snapshot.hpp"
#include "leaseq/store.hpp"
#include "leaseq/tail.hpp"
#include "leaseq/task_file.hpp"
#include "leaseq/task_filter.hpp"
#include "leaseq/task_tracker.hpp"
#include "leaseq/waiting.hpp"

// Running tasks: submit, the runner and its supervisor, control files, GPUs.
#include "leaseq/command.hpp"
#include "leaseq/engine/control.hpp"
#include "leaseq/engine/gpu.hpp"
#include "leaseq/engine/priority.hpp"
#include "leaseq/engine/result_writer.hpp"
#include "leaseq/engine/runner.hpp"
#include "leaseq/engine/seq.hpp"
#include "leaseq/engine/spawn.hpp"
#include "leaseq/engine/submit.hpp"
#include "leaseq/engine/supervise.hpp"

// Slurm leases: squeue/scontrol parsing and caching, the keeper job script, the lease list.
#include "leaseq/slurm/keeper.hpp"
#include "leaseq/slurm/leases.hpp"
#include "leaseq/slurm/slurm.hpp"
#include "leaseq/slurm/slurm_parse.hpp"

// The terminal: raw-ANSI screen, input, layout, widgets, the app loop.
#include "leaseq/tui/app.hpp"
#include "leaseq/tui/clipboard.hpp"
#include "leaseq/tui/input.hpp"
#include "leaseq/tui/layout.hpp"
#include "leaseq/tui/screen.hpp"
#include "leaseq/tui/term.hpp"
#include "leaseq/tui/widgets.hpp"
