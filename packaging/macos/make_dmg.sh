#!/usr/bin/env bash
# Packs build/package/pyinstaller/Uploader.app into dist/Uploader-<version>-macos-<arch>.dmg
# with an /Applications link to drag it onto. Signs and notarises when the identity and
# the notary profile are given (see packaging/README.md); never otherwise.
#   packaging/macos/make_dmg.sh VERSION [ARCH]
set -euo pipefail
version=$1
arch=${2:-$(uname -m)}
app=build/package/pyinstaller/Uploader.app
dmg=dist/Uploader-${version}-macos-${arch}.dmg
[[ -d $app ]] || { echo "make_dmg.sh: no $app; run python packaging/build.py --bundle-only" >&2; exit 1; }

if [[ -n ${MACOS_SIGN_IDENTITY:-} ]]; then
  codesign --force --deep --timestamp --options runtime \
    --entitlements packaging/macos/entitlements.plist --sign "$MACOS_SIGN_IDENTITY" "$app"
  codesign --verify --deep --strict --verbose=2 "$app"
fi

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cp -R "$app" "$staging/"
ln -s /Applications "$staging/Applications"
mkdir -p dist
rm -f "$dmg"
hdiutil create -volname "Uploader $version" -srcfolder "$staging" -fs HFS+ -format UDZO -ov "$dmg"

if [[ -n ${MACOS_SIGN_IDENTITY:-} ]]; then
  codesign --timestamp --sign "$MACOS_SIGN_IDENTITY" "$dmg"
fi
if [[ -n ${MACOS_NOTARY_PROFILE:-} ]]; then
  xcrun notarytool submit "$dmg" --keychain-profile "$MACOS_NOTARY_PROFILE" --wait
  xcrun stapler staple "$dmg"
fi
echo "$dmg"
