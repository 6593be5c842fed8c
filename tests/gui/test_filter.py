"""FilterModel against a brute-force reference: random snapshots, state changes, removals,
filters and sorts; the signals it emits rebuild exactly what it shows; selections and
persistent indexes stay on their uploads."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from uploader.core.events import UploadSnapshot
from uploader.gui.upload_model import (
    Category,
    Column,
    FilterModel,
    Role,
    UploadModel,
    _keys_of,
    category,
)

STATES = ["queued", "uploading", "uploaded", "failed", "cancelled"]
COMPRESSION = [None, "not_queued", "pending", "running", "done", "skipped", "failed"]
NAMES = ["Invoice", "invoice-2", "scan", "Scan_Final", "notes", "ÉTÉ", "a", "ab", "b"]


def snap(i: int, rng: random.Random) -> UploadSnapshot:
    state = rng.choice(STATES)
    size = rng.choice([None, 0, 10, 1000, 5_000_000])
    return UploadSnapshot(
        id=i,
        path=f"/data/{i}",
        name=f"{rng.choice(NAMES)}-{rng.randrange(3)}.pdf",
        size=size,
        state=state,
        done_bytes=rng.randrange(0, 1000),
        document_id=i if state == "uploaded" else None,
        compression=rng.choice(COMPRESSION) if state == "uploaded" else None,
        error="permission denied" if state == "failed" else None,
        error_kind=rng.choice(["permission", "corrupt"]) if state == "failed" else None,
    )


def reference(
    model: UploadModel, cat: Category, text: str, column: int, order: Qt.SortOrder
) -> list[int]:
    """The ids shown, computed the slow and obvious way from the model's snapshots."""
    text = text.strip().casefold()
    rows = [
        s
        for s in model.snapshots()
        if (cat == Category.ALL or category(s) == cat) and text in s.name.casefold()
    ]
    if column >= 0:
        rows.sort(key=lambda s: _keys_of(s)[column], reverse=order == Qt.SortOrder.DescendingOrder)
    return [s.id for s in rows]


def shown(proxy: FilterModel) -> list[int]:
    return [proxy.index(r, 0).data(Role.UPLOAD_ID) for r in range(proxy.rowCount())]


class Mirror:
    """What a view knows: rebuilt only from the model's signals, read only at the rows
    they name. If FilterModel ever changes rows without saying so, this drifts."""

    def __init__(self, model: FilterModel) -> None:
        self.model = model
        self.ids: list[int] = shown(model)
        self.status: list[str] = self._read(0, model.rowCount())
        model.rowsAboutToBeRemoved.connect(self._removing)
        model.rowsInserted.connect(self._inserted)
        model.modelReset.connect(self._reset)
        model.layoutChanged.connect(self._reset)
        model.dataChanged.connect(self._changed)

    def _read(self, first: int, end: int) -> list[str]:
        return [self.model.index(r, Column.STATUS).data() for r in range(first, end)]

    def _removing(self, _parent: QModelIndex, first: int, last: int) -> None:
        del self.ids[first : last + 1]
        del self.status[first : last + 1]

    def _inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        self.ids[first:first] = [
            self.model.index(r, 0).data(Role.UPLOAD_ID) for r in range(first, last + 1)
        ]
        self.status[first:first] = self._read(first, last + 1)

    def _reset(self, *_: object) -> None:
        self.ids = shown(self.model)
        self.status = self._read(0, self.model.rowCount())

    def _changed(self, top: QModelIndex, bottom: QModelIndex, *_: object) -> None:
        if top.column() <= Column.STATUS <= bottom.column():
            self.status[top.row() : bottom.row() + 1] = self._read(top.row(), bottom.row() + 1)


def check(model: UploadModel, proxy: FilterModel, mirror: Mirror, state: dict[str, Any]) -> None:
    expected = reference(model, state["cat"], state["text"], state["col"], state["order"])
    assert shown(proxy) == expected
    assert mirror.ids == expected, "the signals did not describe the change"
    assert mirror.status == mirror._read(0, proxy.rowCount()), "a changed cell was not announced"
    for row, uid in enumerate(expected):
        assert proxy.row_of(uid) == row
        source = proxy.mapToSource(proxy.index(row, Column.SIZE))
        assert model.snapshot(source.row()).id == uid
        assert source.column() == Column.SIZE
        assert proxy.mapFromSource(source).row() == row
    hidden = {s.id for s in model.snapshots()} - set(expected)
    assert all(proxy.row_of(uid) is None for uid in hidden)
    counts = model.summary.counts
    snaps = model.snapshots()
    assert counts[Category.ALL] == len(snaps)
    for cat in (Category.ACTIVE, Category.FAILED, Category.DONE):
        assert counts[cat] == sum(1 for s in snaps if category(s) == cat)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(20, 120))
def test_filter_matches_a_brute_force_reference(
    qtmodeltester: ModelTester, seed: int, steps: int
) -> None:
    rng = random.Random(seed)
    model = UploadModel()
    proxy = FilterModel()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy, force_py=True)  # stays connected: checks every signal
    mirror = Mirror(proxy)
    state: dict[str, Any] = {
        "cat": Category.ALL,
        "text": "",
        "col": -1,
        "order": Qt.SortOrder.AscendingOrder,
    }
    latest: dict[int, UploadSnapshot] = {}
    next_id = 1
    for _ in range(steps):
        op = rng.random()
        if op < 0.45:  # a burst of snapshots: new uploads and state changes
            for _ in range(rng.randrange(1, 40)):
                if latest and rng.random() < 0.6:
                    uid = rng.choice(list(latest))
                    if rng.random() < 0.5:
                        new = replace(
                            latest[uid],
                            state=rng.choice(STATES),
                            done_bytes=rng.randrange(0, 1000),
                        )
                    else:
                        new = replace(snap(uid, rng), name=latest[uid].name)
                else:
                    uid, next_id = next_id, next_id + 1
                    new = snap(uid, rng)
                latest[uid] = new
                model.apply(new)
            model.flush()
        elif op < 0.55 and latest:
            gone = rng.sample(sorted(latest), k=min(len(latest), rng.choice([1, 2, 15])))
            model.remove(gone)
            for uid in gone:
                latest.pop(uid)
        elif op < 0.7:
            state["cat"] = rng.choice(list(Category))
            proxy.set_category(state["cat"])
        elif op < 0.85:
            # typing on, deleting, or a new word
            choices = [state["text"] + rng.choice("aeinst-_"), state["text"][:-1], ""]
            choices.append(rng.choice(NAMES)[: rng.randrange(1, 4)].upper())
            state["text"] = rng.choice(choices)
            proxy.set_text(state["text"])
        elif op < 0.97:
            state["col"] = rng.choice([-1, *range(len(Column))])
            state["order"] = rng.choice(list(Qt.SortOrder))
            proxy.sort(state["col"], state["order"])
        else:
            model.reset(list(latest.values()))
        check(model, proxy, mirror, state)


def test_rows_move_between_categories_as_their_state_changes() -> None:
    model = UploadModel()
    proxy = FilterModel()
    proxy.setSourceModel(model)
    rng = random.Random(1)
    base = [replace(snap(i, rng), state="queued") for i in range(1, 11)]
    for s in base:
        model.apply(s)
    model.flush()
    proxy.set_category(Category.ACTIVE)
    assert shown(proxy) == list(range(1, 11))
    model.apply(replace(base[2], state="uploaded", document_id=3, compression="pending"))
    model.apply(replace(base[6], state="failed", error="permission denied"))
    model.flush()
    assert shown(proxy) == [1, 2, 4, 5, 6, 8, 9, 10]
    proxy.set_category(Category.DONE)
    assert shown(proxy) == [3]
    proxy.set_category(Category.FAILED)
    assert shown(proxy) == [7]
    model.apply(replace(base[6], state="queued"))  # retried: back to Active
    model.flush()
    assert shown(proxy) == []
    assert model.summary.counts[Category.ACTIVE] == 9


def test_sorting_keeps_following_changes() -> None:
    model = UploadModel()
    proxy = FilterModel()
    proxy.setSourceModel(model)
    a = UploadSnapshot(id=1, path="/a", name="a", size=10, state="queued")
    b = UploadSnapshot(id=2, path="/b", name="b", size=10, state="queued")
    c = UploadSnapshot(id=3, path="/c", name="c", size=10, state="queued")
    for s in (a, b, c):
        model.apply(s)
    model.flush()
    proxy.sort(Column.STATUS, Qt.SortOrder.AscendingOrder)
    assert shown(proxy) == [1, 2, 3]  # ties stay in the order they were added
    model.apply(replace(c, state="failed", error="permission denied"))
    model.flush()
    assert shown(proxy) == [3, 1, 2]  # failures first
    model.apply(replace(a, state="uploaded", document_id=1, compression="done"))
    model.flush()
    assert shown(proxy) == [3, 2, 1]
    proxy.sort(Column.STATUS, Qt.SortOrder.DescendingOrder)
    assert shown(proxy) == [1, 2, 3]
    new = UploadSnapshot(id=4, path="/d", name="d", size=1, state="failed", error="x")
    model.apply(new)
    model.flush()
    assert shown(proxy) == [1, 2, 3, 4]
    proxy.sort(-1, Qt.SortOrder.AscendingOrder)  # back to the order they were added
    assert shown(proxy) == [1, 2, 3, 4]


def test_a_sort_keeps_the_selection_and_persistent_indexes_on_their_uploads(
    qtbot: QtBot,
) -> None:
    from PySide6.QtWidgets import QTableView

    model = UploadModel()
    proxy = FilterModel()
    proxy.setSourceModel(model)
    for i in range(1, 30):
        model.apply(
            UploadSnapshot(id=i, path=f"/{i}", name=f"n{30 - i:02d}", size=i, state="queued")
        )
    model.flush()
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(proxy)
    selection = view.selectionModel()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for uid in (3, 17):
        row = proxy.row_of(uid)
        assert row is not None
        selection.select(proxy.index(row, 0), flags)
    keep = QPersistentModelIndex(proxy.index(proxy.row_of(5) or 0, Column.SIZE))
    proxy.sort(Column.NAME, Qt.SortOrder.AscendingOrder)
    assert shown(proxy)[:2] == [29, 28]
    picked = sorted(proxy.snapshot(i.row()).id for i in selection.selectedRows())
    assert picked == [3, 17]
    assert keep.isValid()
    assert proxy.snapshot(keep.row()).id == 5
    assert keep.column() == Column.SIZE


def test_delegates_get_all_roles_of_a_cell_in_one_call() -> None:
    model = UploadModel()
    proxy = FilterModel()
    proxy.setSourceModel(model)
    model.apply(UploadSnapshot(id=1, path="/x", name="x.pdf", size=1500, state="queued"))
    model.apply(UploadSnapshot(id=2, path="/y", name="y.pdf", size=2500, state="queued"))
    model.flush()
    proxy.sort(Column.SIZE, Qt.SortOrder.DescendingOrder)
    opt = QStyleOptionViewItem()
    QStyledItemDelegate().initStyleOption(opt, proxy.index(0, Column.SIZE))  # multiData
    assert opt.text == "2.5 kB"
    assert opt.displayAlignment == Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
    opt = QStyleOptionViewItem()
    QStyledItemDelegate().initStyleOption(opt, proxy.index(1, Column.NAME))
    assert opt.text == "x.pdf"


@pytest.mark.parametrize("budget", [0.0, 10.0])
def test_a_flush_on_the_timer_comes_in_slices_and_ends_the_batch_once(
    qtbot: QtBot, budget: float
) -> None:
    """budget 0: every turn of the loop takes one small slice; plenty: one flush."""
    model = UploadModel(flush_ms=1, budget=budget)
    proxy = FilterModel()
    proxy.setSourceModel(model)
    proxy.set_category(Category.DONE)
    inserts: list[int] = []
    ended: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _p, first, last: inserts.append(last - first + 1))
    model.batch_finished.connect(lambda up, failed: ended.append((up, failed)))
    n = 1000
    for i in range(1, n + 1):
        model.apply(UploadSnapshot(id=i, path=f"/{i}", name=f"f{i}", size=1, state="queued"))
    qtbot.waitUntil(lambda: model.rowCount() == n)
    assert sum(inserts) == n
    assert (len(inserts) > 1) == (budget == 0.0)
    assert proxy.rowCount() == 0
    for i in range(1, n + 1):
        state = "failed" if i % 10 == 0 else "uploaded"
        model.apply(UploadSnapshot(id=i, path=f"/{i}", name=f"f{i}", size=1, state=state))
    qtbot.waitUntil(lambda: bool(ended))
    assert ended == [(900, 100)]
    assert shown(proxy) == [i for i in range(1, n + 1) if i % 10]
    qtbot.wait(50)  # a few more turns of the loop: the batch does not end twice
    assert ended == [(900, 100)]


def test_the_window_maps_selection_and_row_buttons_through_filter_and_sort(
    open_session: Any, lib_dir: Any, until: Any
) -> None:
    from PySide6.QtTest import QTest

    w = open_session(lib_dir).window
    states = ["failed", "uploaded", "failed", "queued", "failed", "cancelled", "failed"]
    names = ["d-report", "a", "b-scan", "c", "a-scan", "e", "c-scan"]
    for i, (state, name) in enumerate(zip(states, names, strict=True)):
        w.model.apply(
            UploadSnapshot(
                id=1000 + i,
                path=f"/nowhere/{name}",
                name=name,
                size=10,
                state=state,
                error="permission denied" if state == "failed" else None,
                error_kind="permission" if state == "failed" else None,
            )
        )
    w.model.flush()
    clicked: list[tuple[int, str]] = []
    w.actions_delegate.action_requested.disconnect(w._on_row_action)
    w.actions_delegate.action_requested.connect(lambda uid, a: clicked.append((uid, a)))

    w.view.sortByColumn(Column.NAME, Qt.SortOrder.DescendingOrder)
    w.filter_buttons[Category.FAILED].click()
    assert w.filter_buttons[Category.FAILED].text() == "Failed (4)"
    assert shown(w.proxy) == [1000, 1006, 1002, 1004]  # d-report, c-scan, b-scan, a-scan
    w.view.selectRow(1)
    assert [s.id for s in w.selected()] == [1006]

    index = w.proxy.index(2, Column.ACTIONS)  # b-scan's Retry button, really clicked
    rect = w.view.visualRect(index)
    target = w.actions_delegate.button_rects(rect, index, w.view.fontMetrics())[0]
    QTest.mouseClick(
        w.view.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        target.center(),
    )
    assert clicked == [(1002, "retry")]

    w.search.setText("SCAN")  # the selected row stays selected through the new filter
    assert shown(w.proxy) == [1006, 1002, 1004]
    assert [s.id for s in w.selected()] == [1006]
    w.filter_buttons[Category.ALL].click()
    assert shown(w.proxy) == [1006, 1002, 1004]  # c-scan, b-scan, a-scan
    assert [s.id for s in w.selected()] == [1006]
    w.search.clear()
    assert w.proxy.rowCount() == 7
    assert [s.id for s in w.selected()] == [1006]
    assert w.view.currentIndex().row() == w.proxy.row_of(1006)


@pytest.mark.parametrize("every", [1, 2])  # one span (removed row by row) or many (a reset)
def test_clearing_finished_rows_mid_batch_keeps_the_batch(every: int) -> None:
    model = UploadModel()
    proxy = FilterModel()
    proxy.setSourceModel(model)
    for i in range(1, 41):
        model.apply(UploadSnapshot(id=i, path=f"/{i}", name=f"f{i}", size=100, state="queued"))
    model.flush()
    done = [i for i in range(1, 41) if i <= 20 and i % every == 0]
    for i in done:
        model.apply(
            UploadSnapshot(
                id=i, path=f"/{i}", name=f"f{i}", size=100, state="uploaded", document_id=i
            )
        )
    model.flush()
    model.remove(done)
    s = model.summary
    assert (s.batch_count, s.batch_finished, s.batch_bytes) == (
        40 - len(done),
        0,
        (40 - len(done)) * 100,
    )
    assert shown(proxy) == [i for i in range(1, 41) if i not in done]
    assert s.counts[Category.ACTIVE] == 40 - len(done)
