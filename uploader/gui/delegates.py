"""Delegates that paint a row's progress bar, compression badge and buttons from the index.

No widget per row: buttons are painted with the style and clicked through
`editorEvent`; the delegates never reach into the window or the engine.
"""

from __future__ import annotations

from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFontMetrics, QMouseEvent, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionButton,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QWidget,
)

from .upload_model import ACTION_LABELS, Action, Role

Index = QModelIndex | QPersistentModelIndex

BUTTON_GAP = 6
BUTTON_MARGIN = 3


_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
_RAISED = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Raised
_SUNKEN = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Sunken
_HOVER = _RAISED | QStyle.StateFlag.State_MouseOver


def paint_background(
    delegate: QStyledItemDelegate, painter: QPainter, option: QStyleOptionViewItem, index: Index
) -> None:
    """The cell as the style paints it (selection), without its text.

    The view has painted the row (alternate colours) already; what is left is the
    item's panel, which needs nothing from the model: no initStyleOption, whose
    data calls are most of the cost of a painted cell.
    """
    widget = option.widget
    style = widget.style() if widget is not None else QApplication.style()
    style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, widget)


class ProgressDelegate(QStyledItemDelegate):
    """While uploading: the bytes, speed and time left, over a thin progress bar."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        value = index.data(Role.PROGRESS)
        if not isinstance(value, int) or value < 0:  # no bar, and no text either
            paint_background(self, painter, option, index)
            return
        paint_background(self, painter, option, index)
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        rect: QRect = option.rect.adjusted(4, 3, -6, -4)
        fm: QFontMetrics = option.fontMetrics
        bar_height = max(6, fm.height() // 3)
        text_rect = QRect(rect.left(), rect.top(), rect.width(), rect.height() - bar_height - 2)
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        palette: QPalette = option.palette
        painter.setPen(
            palette.color(
                QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
            )
        )
        shown = fm.elidedText(text, Qt.TextElideMode.ElideRight, text_rect.width())
        painter.drawText(text_rect, _LEFT, shown)
        painter.restore()
        bar = QStyleOptionProgressBar()
        bar.rect = QRect(rect.left(), rect.bottom() - bar_height + 1, rect.width(), bar_height)
        bar.minimum, bar.maximum, bar.progress = 0, 1000, value
        bar.textVisible = False
        bar.palette = palette
        bar.fontMetrics = fm
        # Qt 6 needs the horizontal flag or the bar is painted vertically
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, widget)


# Badge colours by compression state: a hue, blended with the palette so that
# the badge reads well on light and dark backgrounds alike.
BADGE_HUES = {
    "pending": QColor(0x8A, 0x8F, 0x98),
    "running": QColor(0x2F, 0x80, 0xED),
    "done": QColor(0x2E, 0x9E, 0x5B),
    "skipped": QColor(0x7B, 0x61, 0xC4),
    "failed": QColor(0xD9, 0x6A, 0x1B),
    "not_queued": QColor(0xD9, 0x6A, 0x1B),
}


def badge_colors(state: str, palette: QPalette) -> tuple[QColor, QColor]:
    """(fill, text) for a badge: a tint of the state's hue over the base colour."""
    hue = BADGE_HUES.get(state, QColor(0x8A, 0x8F, 0x98))
    base = palette.color(QPalette.ColorRole.Base)
    dark = base.lightness() < 128
    mix = 0.35 if dark else 0.16
    fill = QColor(
        round(base.red() + (hue.red() - base.red()) * mix),
        round(base.green() + (hue.green() - base.green()) * mix),
        round(base.blue() + (hue.blue() - base.blue()) * mix),
    )
    text = hue.lighter(150) if dark else hue.darker(140)
    return fill, text


class BadgeDelegate(QStyledItemDelegate):
    """The compression badge: a rounded pill with the state in words."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # painted pills by (text, state, size, palette, pixel ratio): a few kinds, many rows
        self._pills: dict[tuple[object, ...], QPixmap] = {}
        self._widths: dict[tuple[str, int], int] = {}

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        state = index.data(Role.COMPRESSION)
        paint_background(self, painter, option, index)
        if not text or not isinstance(state, str):
            return
        rect: QRect = option.rect
        fm: QFontMetrics = option.fontMetrics
        advance = self._widths.get((text, fm.height()))
        if advance is None:
            advance = self._widths[(text, fm.height())] = fm.horizontalAdvance(text)
        width = max(1, min(advance + 16, rect.width() - 8))
        height = fm.height() + 6
        ratio = painter.device().devicePixelRatioF()
        key = (text, state, width, height, option.palette.cacheKey(), ratio)
        pill = self._pills.get(key)
        if pill is None:
            if len(self._pills) > 128:
                self._pills.clear()
                self._widths.clear()
            pill = self._pills[key] = _pill(text, state, QSize(width, height), option, ratio)
        painter.drawPixmap(rect.left() + 4, rect.center().y() - height // 2 + 1, pill)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(size.width() + 24, size.height() + 8)


def _pill(
    text: str, state: str, size: QSize, option: QStyleOptionViewItem, ratio: float
) -> QPixmap:
    """A badge on a transparent pixmap of `size`: the state's tint, its words centred."""
    pixmap = QPixmap(round(size.width() * ratio), round(size.height() * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    fill, ink = badge_colors(state, option.palette)
    area = QRectF(0, 0, size.width(), size.height())
    radius = size.height() / 2
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setFont(option.font)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(fill)
    painter.drawRoundedRect(area, radius, radius)
    painter.setPen(ink)
    shown = option.fontMetrics.elidedText(text, Qt.TextElideMode.ElideRight, size.width() - 12)
    painter.drawText(area, Qt.AlignmentFlag.AlignCenter, shown)
    painter.end()
    return pixmap


def button_rects(rect: QRect, labels: list[str], fm: QFontMetrics) -> list[QRect]:
    """Where each button of a row sits in its cell, right-aligned."""
    height = min(rect.height() - 2 * BUTTON_MARGIN, fm.height() + 10)
    widths = [fm.horizontalAdvance(label) + 24 for label in labels]
    x = rect.right() - BUTTON_MARGIN - sum(widths) - BUTTON_GAP * (len(widths) - 1) + 1
    y = rect.top() + (rect.height() - height) // 2
    out = []
    for w in widths:
        out.append(QRect(x, y, w, height))
        x += w + BUTTON_GAP
    return out


def actions_of(index: Index) -> list[Action]:
    value = index.data(Role.ACTIONS)
    return list(value) if isinstance(value, tuple) else []


def _button(
    label: str, size: QSize, state: QStyle.StateFlag, option: QStyleOptionViewItem, ratio: float
) -> QPixmap:
    """A push button as the style paints it, on a transparent pixmap of `size`."""
    pixmap = QPixmap(round(size.width() * ratio), round(size.height() * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    button = QStyleOptionButton()
    button.rect = QRect(QPoint(0, 0), size)
    button.text = label
    button.palette = option.palette
    button.fontMetrics = option.fontMetrics
    button.state = state
    widget: QWidget | None = option.widget
    style = widget.style() if widget is not None else QApplication.style()
    painter = QPainter(pixmap)
    painter.setFont(option.font)
    style.drawControl(QStyle.ControlElement.CE_PushButton, button, painter, widget)
    painter.end()
    return pixmap


class ActionsDelegate(QStyledItemDelegate):
    """A row's buttons (Retry, Upload anyway, Cancel), painted; a click emits an event."""

    action_requested = Signal(int, str)  # upload id, Action value

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pressed: tuple[int, Action] | None = None
        self._hover: tuple[int, Action] | None = None
        # painted buttons by (label, size, state, palette, pixel ratio): a list repaints
        # the same few buttons on every row, and the style's gradients are not cheap
        self._buttons: dict[tuple[object, ...], QPixmap] = {}

    def button_rects(self, option_rect: QRect, index: Index, fm: QFontMetrics) -> list[QRect]:
        return button_rects(option_rect, [ACTION_LABELS[a] for a in actions_of(index)], fm)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        paint_background(self, painter, option, index)
        acts = actions_of(index)
        if not acts:
            return
        uid = index.data(Role.UPLOAD_ID)
        fm: QFontMetrics = option.fontMetrics
        labels = [ACTION_LABELS[a] for a in acts]
        ratio = painter.device().devicePixelRatioF()
        for action, label, r in zip(
            acts, labels, button_rects(option.rect, labels, fm), strict=True
        ):
            state = _RAISED
            if self._hover == (uid, action):
                state = _HOVER
            if self._pressed == (uid, action):
                state = _SUNKEN
            key = (label, r.width(), r.height(), state, option.palette.cacheKey(), ratio)
            pixmap = self._buttons.get(key)
            if pixmap is None:
                if len(self._buttons) > 64:
                    self._buttons.clear()
                pixmap = self._buttons[key] = _button(label, r.size(), state, option, ratio)
            painter.drawPixmap(r.topLeft(), pixmap)

    @staticmethod
    def width_for(fm: QFontMetrics) -> int:
        """Room for the widest set of buttons a row has (Retry and Upload anyway)."""
        labels = [ACTION_LABELS[a] for a in (Action.RETRY, Action.UPLOAD_ANYWAY)]
        return sum(fm.horizontalAdvance(t) + 24 for t in labels) + BUTTON_GAP + 2 * BUTTON_MARGIN

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        fm: QFontMetrics = option.fontMetrics
        return QSize(self.width_for(fm), fm.height() + 16)

    def _hit(self, pos: QPoint, option: QStyleOptionViewItem, index: Index) -> Action | None:
        rect: QRect = option.rect
        fm: QFontMetrics = option.fontMetrics
        for action, r in zip(actions_of(index), self.button_rects(rect, index, fm), strict=True):
            if r.contains(pos):
                return action
        return None

    def editorEvent(
        self,
        event: QEvent,
        model: QAbstractItemModel,
        option: QStyleOptionViewItem,
        index: Index,
    ) -> bool:
        kind = event.type()
        if not isinstance(event, QMouseEvent) or kind not in (
            QEvent.Type.MouseButtonPress,
            QEvent.Type.MouseButtonRelease,
            QEvent.Type.MouseMove,
            QEvent.Type.MouseButtonDblClick,
        ):
            return False
        uid = index.data(Role.UPLOAD_ID)
        if not isinstance(uid, int):
            return False
        hit = self._hit(event.position().toPoint(), option, index)
        key = None if hit is None else (uid, hit)
        if kind == QEvent.Type.MouseMove:
            if key != self._hover:
                self._hover = key
                self._repaint(option)
            return False
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        if kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick):
            self._pressed = key
            if key is not None:
                self._repaint(option)
            return key is not None
        pressed, self._pressed = self._pressed, None
        if pressed is not None:
            self._repaint(option)
        if key is not None and key == pressed:
            self.action_requested.emit(uid, key[1].value)
            return True
        return False

    def clear_hover(self) -> None:
        self._hover = None

    def _repaint(self, option: QStyleOptionViewItem) -> None:
        widget: QWidget | None = option.widget
        if isinstance(widget, QAbstractItemView):
            widget.viewport().update()
        elif widget is not None:
            widget.update()
