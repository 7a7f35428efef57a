#!/usr/bin/env bash
# The setup scripts' one way to install Debian packages: as root, or
# through sudo where it is available; apt-get update only when the install
# needs it. Usage: apt-install.sh WHAT PACKAGE...
# Exits 1, after saying what to install, where apt-get cannot be used.
set -euo pipefail
what=$1
shift
if ! command -v apt-get >/dev/null 2>&1; then
    echo "segloss: install $what ($*) with your package manager" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ]; then
    as_root=(env)
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo env)
else
    echo "segloss: install $what ($*): apt-get needs root or sudo" >&2
    exit 1
fi
echo "segloss: installing $what ($*)" >&2
apt_install() { "${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
apt_install "$@" 2>/dev/null || { "${as_root[@]}" apt-get update -qq && apt_install "$@"; }
