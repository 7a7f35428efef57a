#!/usr/bin/env bash
# The main job: trains one small segmentation network in burn with each
# segloss loss on data made on the fly (seagulls against the sky, a scene of
# poles and wires), and writes docs/training/: prediction panels, the IoU
# chart and the table of final scores. Arguments go to segloss-train
# (--help lists them: size, epochs, steps, adapter, output folder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-vulkan.sh
# The chart's text needs a font.
if ! ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/TTF/DejaVuSans.ttf /usr/share/fonts/dejavu/DejaVuSans.ttf >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null; }
    else
        echo "segloss-train: install the DejaVu fonts (fonts-dejavu-core) for the chart's text" >&2
    fi
fi
# Built as the test command builds it (same profile, same features), so the
# two commands share one build of burn, its longest part (about 40 minutes on
# 2 cores from a fresh clone; seconds after that).
cargo test --workspace --all-features --lib --bins --tests --no-run
./target/debug/segloss-train "$@" 2>&1 | grep -v 'XDG_RUNTIME_DIR is invalid'
