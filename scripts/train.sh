#!/usr/bin/env bash
# The main job: trains one small segmentation network in burn with each
# segloss loss on data made on the fly (seagulls against the sky, a scene of
# poles and wires), and writes docs/training/: prediction panels, the IoU
# chart and the table of final scores. Arguments go to segloss-train
# (--help lists them: size, epochs, steps, adapter, output folder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-vulkan.sh
bash scripts/setup-fonts.sh
# Built as the test command builds it (same profile, same features), so the
# two commands share one build of burn, its longest part (about 25 minutes on
# 2 cores from a fresh clone, BENCHMARKS.md "Build time"; seconds after that).
cargo test --workspace --all-features --lib --bins --tests --no-run
./target/debug/segloss-train "$@" 2>&1 | grep -v 'XDG_RUNTIME_DIR is invalid'
