#!/usr/bin/env bash
# Khronos' validators for the translation test (src/gpu/translation.rs):
# spirv-val (Debian's spirv-tools) checks the SPIR-V naga writes,
# glslangValidator (glslang-tools) the GLSL. Installs them from Debian's
# packages when missing and apt-get is usable; otherwise says what to install.
set -euo pipefail

missing=()
command -v spirv-val >/dev/null 2>&1 || missing+=(spirv-tools)
command -v glslangValidator >/dev/null 2>&1 || missing+=(glslang-tools)
[ ${#missing[@]} -eq 0 ] && exit 0

bash "$(dirname "$0")/apt-install.sh" "the shader validators spirv-val and glslangValidator" "${missing[@]}"
