#!/usr/bin/env bash
# The training run's chart needs a font for its text (DejaVu Sans). Installs
# it from Debian's packages when it is missing and apt-get is usable;
# otherwise says what to install.
set -euo pipefail
for f in /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/TTF/DejaVuSans.ttf /usr/share/fonts/dejavu/DejaVuSans.ttf; do
    [ -e "$f" ] && exit 0
done
bash "$(dirname "$0")/apt-install.sh" "the DejaVu fonts for the training run's chart (dejavu-sans-fonts on Fedora)" fonts-dejavu-core || true
