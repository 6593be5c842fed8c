"""The icon build: PNGs at every size from the SVG, and .ico/.icns containers that parse."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging"))

import icons  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("icons")
    icons.build(ROOT / "resources" / "icons" / "uploader.svg", out, "org.uploader.Uploader")
    return out


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_at_every_hicolor_size(built: Path) -> None:
    for size in (16, 22, 24, 32, 48, 64, 128, 256, 512):
        png = built / "hicolor" / f"{size}x{size}" / "apps" / "org.uploader.Uploader.png"
        data = png.read_bytes()
        assert png_size(data) == (size, size)
    assert (built / "hicolor" / "scalable" / "apps" / "org.uploader.Uploader.svg").exists()


def test_rendering_draws_the_svg() -> None:
    (big,) = icons.render(ROOT / "resources" / "icons" / "uploader.svg", [64]).values()
    from PySide6.QtGui import QImage

    image = QImage.fromData(big, "PNG")
    assert image.pixelColor(0, 0).alpha() == 0  # outside the rounded square
    centre = image.pixelColor(32, 50)
    assert centre.alpha() == 255


def test_ico_directory_points_at_each_png(built: Path) -> None:
    data = (built / "uploader.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind, count) == (0, 1, len(icons.ICO_SIZES))
    for i, size in enumerate(icons.ICO_SIZES):
        w, h, _, _, planes, bpp, length, offset = struct.unpack(
            "<BBBBHHII", data[6 + 16 * i : 22 + 16 * i]
        )
        assert (w or 256, h or 256) == (size, size)
        assert (planes, bpp) == (1, 32)
        assert png_size(data[offset : offset + length]) == (size, size)
    assert offset + length == len(data)


def test_icns_elements_are_pngs_of_their_size(built: Path) -> None:
    data = (built / "uploader.icns").read_bytes()
    assert data[:4] == b"icns"
    assert struct.unpack(">I", data[4:8])[0] == len(data)
    pos, seen = 8, {}
    while pos < len(data):
        kind, length = data[pos : pos + 4], struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        seen[kind] = png_size(data[pos + 8 : pos + length])
        pos += length
    assert pos == len(data)
    assert seen == {k: (s, s) for k, s in icons.ICNS_TYPES}
