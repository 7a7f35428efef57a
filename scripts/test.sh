#!/usr/bin/env bash
# The test command: sets up a Vulkan device if none is present, then runs
# every test (unit, GPU suite on the real kernels, doc tests), the GPU suite
# again within WebGPU's default limits, and on Linux the GPU suite on a
# second backend, wgpu's GL on Mesa's llvmpipe OpenGL 4.5.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-vulkan.sh
bash scripts/setup-shader-tools.sh   # spirv-val and glslangValidator for the translation test
bash scripts/setup-fonts.sh   # the training run's end-to-end test draws its chart
cargo test --workspace --all-features --lib --bins --tests --no-fail-fast 2>&1 | grep -v 'XDG_RUNTIME_DIR is invalid'
cargo test --workspace --all-features --doc 2>&1 | grep -v 'XDG_RUNTIME_DIR is invalid'
# Nothing may lean on an adapter's generous limits: 8 storage buffers a
# stage, 256 MiB buffers, 128 MiB bindings, 16 KiB of workgroup memory.
SEGLOSS_LIMITS=webgpu cargo test -p segloss --all-features --test suite 2>&1 | grep -v 'XDG_RUNTIME_DIR is invalid'
if [ "$(uname -s)" = Linux ]; then
    bash scripts/setup-gl.sh
    # One test at a time: wgpu's GL backend serializes every call on one
    # EGL context and panics when a thread waits for it over 6 s, which a
    # long llvmpipe dispatch on another test's thread can cause.
    WGPU_BACKEND=gl cargo test -p segloss --all-features --test suite -- --test-threads=1 2>&1 | grep -v 'XDG_RUNTIME_DIR is invalid'
fi
