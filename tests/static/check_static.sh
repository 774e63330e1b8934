#!/usr/bin/env bash
# Checks the fully static leaseq (-DLEASEQ_STATIC=ON, built by tests/CMakeLists.txt during the
# build) needs nothing from the machine: `file` says statically linked, and it runs inside an
# empty root directory where neither fmt, nlohmann-json nor even libc exists (chroot, when we
# are root).
#   check_static.sh STATIC_BINARY WORK_DIR
set -euo pipefail
bin=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
test -x "$bin" || { echo "no static program at $bin"; exit 1; }
file "$bin" | grep -q 'statically linked' || { file "$bin"; echo "not static"; exit 1; }
if ldd "$bin" >/dev/null 2>&1; then echo "ldd found dynamic dependencies"; exit 1; fi
size=$(stat -c %s "$bin")
echo "static: $size bytes"
# Issue 19's budget: small enough to scp to any cluster. A size, not a time: deterministic.
if [ "$size" -gt 3000000 ]; then echo "static: $size bytes is over the 3 MB budget"; exit 1; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "static: not root, skipping the empty-root run"
  exit 0
fi
chroot_bin=$(command -v chroot || echo /usr/sbin/chroot)
root="$work/emptyroot"
mkdir -p "$root/bin" "$root/home" "$root/tmp"
cp "$bin" "$root/bin/leaseq"
"$chroot_bin" "$root" /bin/leaseq --version | grep -q '^leaseq '
env -i LEASEQ_HOME=/home/.leaseq "$chroot_bin" "$root" /bin/leaseq submit --lease local:box -- /bin/true \
  | grep -qx 'T001'
test -f "$root/home/.leaseq/runs/local:box/inbox/_any/T001.json"
env -i LEASEQ_HOME=/home/.leaseq "$chroot_bin" "$root" /bin/leaseq tasks --lease local:box | grep -q T001
echo "static: runs in an empty root"
