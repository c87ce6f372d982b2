#!/usr/bin/env bash
# Boots a small demo VM, built locally from Debian packages, with podman and
# crun-qemu, on this terminal. The guest waits for you: type in its shell,
# ctrl-a x aborts it, ctrl-p ctrl-q detaches, `podman stop` powers it off.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
cargo build
tests/build-test-images.sh target/test-images
./package-vm-image.sh target/test-images/wait.raw localhost/crun-qemu-demo >/dev/null
exec podman run --runtime="$top"/target/debug/crun-qemu --security-opt label=disable \
    -it --rm localhost/crun-qemu-demo unused
