#!/usr/bin/env bash
# The test command: sets up a Vulkan device if none is present, then runs
# every test (unit, GPU suite on the real kernels, doc tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-vulkan.sh
bash scripts/setup-shader-tools.sh   # spirv-val and glslangValidator for the translation test
bash scripts/setup-fonts.sh   # the training run's end-to-end test draws its chart
cargo test --workspace --all-features --lib --bins --tests --no-fail-fast 2>&1 | grep -v 'XDG_RUNTIME_DIR is invalid'
cargo test --workspace --all-features --doc 2>&1 | grep -v 'XDG_RUNTIME_DIR is invalid'
