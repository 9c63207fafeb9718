#!/usr/bin/env bash
# The Debian packages the whole test suite needs beyond Python, in one place (used by
# .ci/run and, through tools/prereqs.py, by `make test`):
#   - Xvfb + the xcb/GL libraries Qt and vispy need (napari GUI tests; QT_QPA_PLATFORM=offscreen
#     is not enough for vispy's GL canvas),
#   - Debian's chromium at /usr/bin/chromium (dashboard browser tests, driven by pip playwright),
#   - mdbtools (mdb-export: Arbin .res cycler files, read through navani).
#
#   sudo tools/install-system-deps.sh           install what is missing (apt-get; needs root)
#   tools/install-system-deps.sh --list         print the package names, one a line
#   tools/install-system-deps.sh --missing      print the packages not installed (dpkg-query)
set -euo pipefail

PACKAGES=(
  make xvfb xauth
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-shape0
  libdbus-1-3 libegl1 libgl1 libfontconfig1 libglib2.0-0
  chromium
  mdbtools
)

missing() {
  local p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
      echo "$p"
    fi
  done
}

case "${1:-}" in
  --list) printf '%s\n' "${PACKAGES[@]}"; exit 0 ;;
  --missing) missing; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--list|--missing]" >&2; exit 2 ;;
esac

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: no apt-get here; install the equivalents of: ${PACKAGES[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: needs root: sudo $0" >&2
  exit 1
fi

todo=$(missing)
if [ -z "$todo" ]; then
  echo "install-system-deps: all ${#PACKAGES[@]} Debian packages are installed"
  exit 0
fi
echo "install-system-deps: installing" $todo
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086  # one word per package
apt-get install -y -qq --no-install-recommends $todo >/dev/null
echo "install-system-deps: done"
