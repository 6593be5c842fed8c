#!/usr/bin/env bash
# Installs, once, the Debian tools and libraries that `make package` and its test need.
# Idempotent: installs only what is missing; does nothing on a machine that has it all.
set -euo pipefail

# Tools for building and checking the .deb.
tools=(dpkg-deb:dpkg readelf:binutils strip:binutils patchelf:patchelf lintian:lintian
       desktop-file-validate:desktop-file-utils appstreamcli:appstream shellcheck:shellcheck)
# Libraries the shipped Qt plugins link against (the xcb and wayland platforms): the build
# resolves every library of the bundle to the package that provides it, so they must be here.
libs=(libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-randr0
      libxcb-shape0 libxcb-xkb1 libxcb-cursor0 libxkbcommon-x11-0 libxkbcommon0 libwayland-client0
      libwayland-cursor0 libwayland-egl1 libegl1 libgl1 libopengl0 libfontconfig1 libfreetype6
      libdbus-1-3 libglib2.0-0 libx11-xcb1 libxrender1 libxi6)

missing=()
for pair in "${tools[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
for pkg in "${libs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "packaging/deps.sh: please install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
