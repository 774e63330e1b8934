#!/usr/bin/env bash
# tools/amalgamate on scratch copies of include/: reproducible output, and refusals for a header
# the umbrella does not reach and for an include cycle.
set -euo pipefail
src=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fresh() { rm -rf "$work/t"; mkdir -p "$work/t"; cp -r "$src/include" "$work/t/"; }

fresh
"$src/tools/amalgamate" --root "$work/t" >/dev/null
first=$(sha256sum "$work/t/single_include/leaseq/leaseq.hpp")
rm "$work/t/single_include/leaseq/leaseq.hpp"
sleep 1
"$src/tools/amalgamate" --root "$work/t" >/dev/null
[ "$first" = "$(sha256sum "$work/t/single_include/leaseq/leaseq.hpp")" ] || { echo "not reproducible"; exit 1; }
grep -q '#pragma once' "$work/t/single_include/leaseq/leaseq.hpp"
[ "$(grep -c '#pragma once' "$work/t/single_include/leaseq/leaseq.hpp")" = 1 ] || { echo "pragma once kept"; exit 1; }
"$src/tools/amalgamate" --root "$work/t" --check >/dev/null

fresh
echo '#pragma once' > "$work/t/include/leaseq/orphan.hpp"
if "$src/tools/amalgamate" --root "$work/t" 2>"$work/err"; then echo "orphan accepted"; exit 1; fi
grep -q 'not reached from the umbrella header: leaseq/orphan.hpp' "$work/err"

fresh
printf '#pragma once\n#include "leaseq/cycle_b.hpp"\n' > "$work/t/include/leaseq/cycle_a.hpp"
printf '#pragma once\n#include "leaseq/cycle_a.hpp"\n' > "$work/t/include/leaseq/cycle_b.hpp"
echo '#include "leaseq/cycle_a.hpp"' >> "$work/t/include/leaseq/leaseq.hpp"
if "$src/tools/amalgamate" --root "$work/t" 2>"$work/err"; then echo "cycle accepted"; exit 1; fi
grep -q 'include cycle: leaseq/cycle_a.hpp -> leaseq/cycle_b.hpp -> leaseq/cycle_a.hpp' "$work/err"

fresh
echo '// changed' >> "$work/t/include/leaseq/names.hpp"
mkdir -p "$work/t/single_include/leaseq"
cp "$src/single_include/leaseq/leaseq.hpp" "$work/t/single_include/leaseq/"
if "$src/tools/amalgamate" --root "$work/t" --check 2>/dev/null; then echo "stale not detected"; exit 1; fi
echo "amalgamate: reproducible, refuses orphans and cycles, detects staleness"
