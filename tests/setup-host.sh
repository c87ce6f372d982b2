#!/usr/bin/env bash
# Prepares a Debian 12 host to build crun-qemu and run its test suite:
# installs podman, crun, QEMU and the tools the test images are built with,
# and clears two quirks of the test machines that stop podman itself.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# QEMU 10 (and libvirt) come from bookworm-backports: the machine already has
# qemu-utils from there, and bookworm's own qemu-system conflicts with it.
src=/etc/apt/sources.list.d/debian.sources
if [ -f "$src" ] && ! grep -q 'bookworm-backports' "$src"; then
    sed -i 's/^Suites: bookworm bookworm-updates$/& bookworm-backports/' "$src"
fi

# From bookworm, and from bookworm-backports (QEMU must match qemu-utils).
pkgs=(podman crun conmon buildah skopeo passt fuse-overlayfs uidmap
      containers-storage golang-github-containers-common netavark aardvark-dns iptables
      busybox-static syslinux syslinux-common mtools dosfstools cpio gzip gdisk
      genisoimage systemd-boot-efi tmux libclang-dev clang)
backports=(qemu-system-x86 qemu-utils ovmf seabios)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need=()
for p in "${pkgs[@]}" "${backports[@]}"; do
    installed "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "setup-host: installing ${need[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${pkgs[@]}"
    apt-get install -y -q --no-install-recommends -t bookworm-backports "${backports[@]}"
fi

# Quirk 1: cgroup v1 with a v2 hierarchy still holding hugetlb. crun 1.8.1
# refuses every container in that hybrid state; binding hugetlb to its own v1
# hierarchy empties the v2 controller list.
if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
    mkdir -p /sys/fs/cgroup/hugetlb
    mountpoint -q /sys/fs/cgroup/hugetlb || mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi

# Quirk 2: no CAP_SYS_RESOURCE and a hard nofile limit of 20000, below podman's
# default ulimits, so crun's setrlimit fails. Lower podman's defaults.
conf=/etc/containers/containers.conf
mkdir -p /etc/containers
if ! grep -q '^default_ulimits' "$conf" 2>/dev/null; then
    if grep -q '^\[containers\]' "$conf" 2>/dev/null; then
        sed -i 's/^\[containers\]$/&\ndefault_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]/' "$conf"
    else
        printf '[containers]\ndefault_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]\n' >>"$conf"
    fi
fi

# The Rust toolchain is the machine's own (rustup); make sure cargo is on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "setup-host: cargo is in $HOME/.cargo/bin; add it to PATH"
fi
echo "setup-host: done"
