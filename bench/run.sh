#!/usr/bin/env bash
# Benchmarks crun-qemu against a hand-written container and plain QEMU.
# Usage: bench/run.sh [ROUNDS] [K]   (defaults: 9 rounds, K=4 VMs at once)
# Prints a table; writes target/bench/results.json. Needs root and the
# machine set up by tests/setup-host.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
exec cargo bench --bench runtime -- "$@"
