#!/usr/bin/env bash
# The command-line tour: sets up a Vulkan device if none is present, then runs every
# implemented loss on the GPU against the float64 reference and the golden cases.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-vulkan.sh
cargo build --release -p segloss-cli
./target/release/segloss info 2>&1 | grep -v 'XDG_RUNTIME_DIR is invalid'
./target/release/segloss selftest 2>&1 | grep -v 'XDG_RUNTIME_DIR is invalid'
./target/release/segloss check tests/golden 2>&1 | grep -v 'XDG_RUNTIME_DIR is invalid'
