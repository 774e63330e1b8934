#!/usr/bin/env bash
# `cmake --install` puts the program, its man page, the bash, zsh and fish completions, the headers and the
# CMake package into the prefix, and the installed program runs.
#   check_install.sh SOURCE_DIR WORK_DIR [BUILD_DIR]
# With BUILD_DIR (a configured and built tree, LEASEQ_INSTALL=ON) that tree is installed;
# without, the program is built in WORK_DIR first.
set -euo pipefail
src=$1
work=$2
build=${3:-}
rm -rf "$work"
mkdir -p "$work"
if [ -z "$build" ]; then
  build=$work/build
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLEASEQ_BUILD_TESTS=OFF \
    -DLEASEQ_INSTALL=ON >/dev/null
  cmake --build "$build" --target leaseq_program leaseq_man -j2 >/dev/null
fi
cmake --install "$build" --prefix "$work/prefix" >/dev/null
p=$work/prefix
for f in bin/leaseq share/man/man1/leaseq.1 share/bash-completion/completions/leaseq \
  share/zsh/site-functions/_leaseq share/fish/vendor_completions.d/leaseq.fish \
  include/leaseq/leaseq.hpp include/leaseq/tui/screen.hpp lib/cmake/leaseq/leaseqConfig.cmake \
  lib/cmake/leaseq/leaseqConfigVersion.cmake lib/cmake/leaseq/leaseqTargets.cmake; do
  [ -e "$p/$f" ] || { echo "install: missing $f"; exit 1; }
done
"$p/bin/leaseq" --version | grep -q '^leaseq '
LEASEQ_HOME=$work/home "$p/bin/leaseq" submit --lease local:inst -- true | grep -qx T001
echo "install: program, man page, completion, headers and CMake package in place"
