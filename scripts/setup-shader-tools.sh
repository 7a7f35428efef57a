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

echo "segloss: installing the shader validators (${missing[*]})" >&2
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "segloss: install ${missing[*]} (spirv-val and glslangValidator) with your package manager" >&2
    exit 1
fi
