#!/usr/bin/env bash
# wgpu's GL backend for the second-backend run: EGL (glvnd) with Mesa's
# vendor library and its software OpenGL 4.5 driver (llvmpipe), which wgpu
# opens headless. Installs them from Debian's packages when missing and
# apt-get is usable; otherwise says what to install.
set -euo pipefail

case "$(uname -s)" in
    Linux) ;;
    *) echo "segloss: the GL run is Linux-only (Mesa's llvmpipe)" >&2; exit 1 ;;
esac

have_egl() { ldconfig -p 2>/dev/null | grep 'libEGL\.so\.1' >/dev/null; }
have_mesa_egl() { ldconfig -p 2>/dev/null | grep 'libEGL_mesa\.so\.0' >/dev/null; }
have_dri() { compgen -G '/usr/lib/*/dri/swrast_dri.so' >/dev/null || compgen -G '/usr/lib/dri/swrast_dri.so' >/dev/null; }

if have_egl && have_mesa_egl && have_dri; then
    exit 0
fi

bash "$(dirname "$0")/apt-install.sh" "Mesa's EGL and OpenGL driver" libegl1 libegl-mesa0 libgl1-mesa-dri
