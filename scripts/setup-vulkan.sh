#!/usr/bin/env bash
# Makes sure a Vulkan device exists: a real GPU's driver, or Mesa's lavapipe
# (a conformant Vulkan 1.3 device on the CPU). Installs lavapipe from Debian's
# packages when no Vulkan driver is present and apt-get is usable; otherwise
# says exactly what to install.
set -euo pipefail

# grep reads all of ldconfig's output: grep -q would close the pipe early, and pipefail would report that.
have_loader() { ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null; }
have_driver() {
    [ -n "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && return 0
    for f in /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json; do
        [ -e "$f" ] && return 0
    done
    return 1
}

# Metal (macOS) and DX12 (Windows) come with the system.
case "$(uname -s)" in
    Darwin | MINGW* | MSYS* | CYGWIN*) exit 0 ;;
esac

if have_loader && have_driver; then
    exit 0
fi

if ! bash "$(dirname "$0")/apt-install.sh" "Mesa's lavapipe, no Vulkan driver being found" mesa-vulkan-drivers libvulkan1; then
    cat >&2 <<'MSG'
segloss: cannot install a Vulkan driver here. Install one, then run again:
  Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1
  Fedora:        dnf install mesa-vulkan-drivers vulkan-loader
  Arch:          pacman -S vulkan-swrast vulkan-icd-loader
  macOS/Windows: Metal and DX12 need nothing extra.
MSG
    exit 1
fi

if ! (have_loader && have_driver); then
    echo "segloss: lavapipe was installed but no Vulkan driver is visible; see above" >&2
    exit 1
fi
