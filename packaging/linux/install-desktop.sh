#!/bin/sh
# Adds (or with --remove, removes) Uploader's menu entry, icons and `uploader` command for
# the current user, pointing at this unpacked folder. Touches nothing outside ~/.local.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
bin=$HOME/.local/bin
id=org.uploader.Uploader
if [ "${1:-}" = "--remove" ]; then
  rm -f "$data/applications/$id.desktop" "$bin/uploader"
  find "$data/icons/hicolor" -name "$id.*" -delete 2>/dev/null || true
  echo "removed Uploader's menu entry"
  exit 0
fi
mkdir -p "$data/applications" "$bin"
sed "s|^Exec=uploader|Exec=\"$here/uploader\"|" "$here/share/applications/$id.desktop" \
  > "$data/applications/$id.desktop"
cp -R "$here/share/icons/hicolor" "$data/icons/" 2>/dev/null || { mkdir -p "$data/icons"; cp -R "$here/share/icons/hicolor" "$data/icons/"; }
ln -sf "$here/uploader" "$bin/uploader"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
echo "Uploader is in your menu; the command is $bin/uploader"
