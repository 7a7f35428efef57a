#!/usr/bin/env bash
# The training run's chart needs a font for its text (DejaVu Sans). Installs
# it from Debian's packages when it is missing and apt-get is usable;
# otherwise says what to install.
set -euo pipefail
for f in /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/TTF/DejaVuSans.ttf /usr/share/fonts/dejavu/DejaVuSans.ttf; do
    [ -e "$f" ] && exit 0
done
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq fonts-dejavu-core >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq fonts-dejavu-core >/dev/null; }
else
    echo "segloss: install the DejaVu fonts (fonts-dejavu-core, or dejavu-sans-fonts on Fedora) for the training run's chart" >&2
fi
