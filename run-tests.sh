#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The whole test suite: unit tests, then the real kernels.
#   1. cargo test for the workspace (the os layer's safe core, the harness)
#      and for the in-guest program
#   2. setup: host packages, kernel source, patch series
#   3. build the C-layer and the Rust-layer kernels from the same tree
#   4. verify-link: every symbol of a migrated file comes from Rust, once
#   5. the ABI guard rejects a deliberately wrong layout, and the stub check
#      a stub that refers outside its page
#   6. the guest suite on the Rust kernel, then on the C kernel
# Run as root on Debian (setup installs packages with apt-get).
set -euo pipefail
cd "$(dirname "$0")"

harness() { ./target/release/uml-harness "$@"; }

echo "== cargo test"
cargo test --workspace --locked
cargo test --locked --manifest-path tests/guest/Cargo.toml
cargo build --release --locked -p uml-harness
# The criterion benchmarks are built, never timed, in CI.
cargo bench --locked -p uml-bench --no-run

echo "== setup"
harness setup
echo "== build"
harness build --os c
harness build --os rust
echo "== verify-link"
harness verify-link --os rust
echo "== build self-tests (ABI guard, stub check)"
harness abi-guard-selftest
harness stub-check-selftest
# The self-tests leave the objects rebuilt but vmlinux not relinked.
harness build --os rust
echo "== host checks"
harness hostcheck
echo "== KUnit, C and Rust layers (same tests must pass)"
harness kunit --os c,rust
echo "== guest suite"
harness test --os rust --os c
