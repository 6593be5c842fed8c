"""Icons from the SVG sources in resources/, tinted with the palette and crisp at any DPI."""

from __future__ import annotations

import functools
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
SIZES = (16, 20, 24, 32, 48, 64, 128)


@functools.cache
def _source(name: str) -> str | None:
    try:
        return (RESOURCES / "icons" / f"{name}.svg").read_text(encoding="utf-8")
    except OSError:
        return None


def icon(name: str, color: QColor | None = None, ratios: tuple[float, ...] = (1.0, 2.0)) -> QIcon:
    """The icon `name`; `currentColor` in the SVG becomes `color`. Empty if it is missing."""
    text = _source(name)
    if text is None:
        return QIcon()
    if color is not None:
        text = text.replace("currentColor", color.name())
    renderer = QSvgRenderer(QByteArray(text.encode("utf-8")))
    out = QIcon()
    for size in SIZES:
        for ratio in ratios:
            out.addPixmap(_render(renderer, size, ratio))
    return out


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
