"""Icons from the SVG sources in resources/, tinted with the palette and crisp at any DPI."""

from __future__ import annotations

import functools
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
# Buttons and menus ask for 16-32 px; QIcon scales the nearest for anything else. Each
# size costs a render at start, so only the app icon (window managers) gets them all.
SIZES = (16, 24, 32)
APP_SIZES = (16, 24, 32, 48, 64, 128, 256)


@functools.cache
def _source(name: str) -> str | None:
    try:
        return (RESOURCES / "icons" / f"{name}.svg").read_text(encoding="utf-8")
    except OSError:
        return None


def icon(
    name: str,
    color: QColor | None = None,
    sizes: tuple[int, ...] = SIZES,
    ratios: tuple[float, ...] | None = None,
) -> QIcon:
    """The icon `name`; `currentColor` in the SVG becomes `color`. Empty if it is missing.
    Rendered for the screen's pixel ratio unless `ratios` are given."""
    text = _source(name)
    if text is None:
        return QIcon()
    if color is not None:
        text = text.replace("currentColor", color.name())
    renderer = QSvgRenderer(QByteArray(text.encode("utf-8")))
    if ratios is None:
        ratios = (_screen_ratio(),)
    out = QIcon()
    for size in sizes:
        for ratio in ratios:
            out.addPixmap(_render(renderer, size, ratio))
    return out


def app_icon() -> QIcon:
    """The application's own icon, at every size a window manager or dock may show."""
    return icon("uploader", sizes=APP_SIZES, ratios=(1.0,))


def _screen_ratio() -> float:
    screen = QGuiApplication.primaryScreen()
    return 1.0 if screen is None else max(1.0, screen.devicePixelRatio())


def pixmap(name: str, size: int, ratio: float, color: QColor | None = None) -> QPixmap:
    text = _source(name)
    if text is None:
        return QPixmap()
    if color is not None:
        text = text.replace("currentColor", color.name())
    return _render(QSvgRenderer(QByteArray(text.encode("utf-8"))), size, ratio)


def _render(renderer: QSvgRenderer, size: int, ratio: float) -> QPixmap:
    px = round(size * ratio)
    image = QPixmap(QSize(px, px))
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, px, px))
    painter.end()
    image.setDevicePixelRatio(ratio)
    return image
