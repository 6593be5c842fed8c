"""The table model: Qt's model tester, coalesced updates, batched inserts, summaries."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QModelIndex
from pytestqt.modeltest import ModelTester

from uploader.core.events import UploadSnapshot
from uploader.gui.upload_model import Category, Column, FilterModel, Role, UploadModel


def snap(i: int, **kw: Any) -> UploadSnapshot:
    base = {
        "id": i,
        "path": f"/data/f{i}.pdf",
        "name": f"f{i}.pdf",
        "size": 1000,
        "state": "queued",
    }
    return UploadSnapshot(**{**base, **kw})


def mixed() -> list[UploadSnapshot]:
    return [
        snap(1, state="uploading", done_bytes=450),
        snap(
            2,
            state="failed",
            error="corrupted (truncated PDF: no %%EOF marker)",
            error_kind="corrupt",
        ),
        snap(3, state="uploaded", document_id=1, compression="pending", done_bytes=1000),
        snap(
            4, state="uploaded", document_id=2, compression="done", stored_size=380, done_bytes=1000
        ),
        snap(5, state="cancelled"),
        snap(6, state="queued"),
    ]


def test_qtmodeltester_passes_on_model_and_filter(qtmodeltester: ModelTester) -> None:
    model = UploadModel()
    for s in mixed():
        model.apply(s)
    model.flush()
    qtmodeltester.check(model, force_py=True)
    proxy = FilterModel()
    proxy.setSourceModel(model)
    proxy.set_category(Category.FAILED)
    qtmodeltester.check(proxy, force_py=True)
    assert proxy.rowCount() == 1


def test_words_and_roles() -> None:
    model = UploadModel()
    for s in mixed():
        model.apply(s)
    model.flush()

    def cell(row: int, col: Column, role: int = 0) -> object:
        return model.index(row, col).data(role)

    assert cell(0, Column.STATUS) == "Uploading 45%"
    assert cell(0, Column.PROGRESS, Role.PROGRESS) == 450
    assert cell(1, Column.STATUS) == "Failed: corrupted (truncated PDF: no %%EOF marker)"
    assert cell(1, Column.ACTIONS, Role.ACTIONS) == ("retry", "upload_anyway")
    assert cell(0, Column.ACTIONS, Role.ACTIONS) == ("cancel",)
    assert cell(2, Column.COMPRESSION) == "pending"
    assert cell(3, Column.COMPRESSION) == "compressed −62%"
    assert cell(3, Column.ACTIONS, Role.ACTIONS) == ()
    assert cell(4, Column.STATUS) == "Cancelled"
    dup = snap(9, state="uploaded", duplicate=True, document_id=2, compression="skipped")
    model.apply(dup)
    model.flush()
    assert cell(6, Column.STATUS) == "Already in library"
    assert cell(6, Column.COMPRESSION) == "stored as is"


def test_progress_emits_data_changed_for_changed_cells_only() -> None:
    model = UploadModel()
    for s in mixed():
        model.apply(s)
    model.flush()
    seen: list[tuple[int, int, int, int]] = []

    def record(tl: QModelIndex, br: QModelIndex, roles: object = None) -> None:
        seen.append((tl.row(), tl.column(), br.row(), br.column()))

    model.dataChanged.connect(record)
    # many updates between two flushes: one emission, for the latest
    for done in range(500, 900, 10):
        model.apply(snap(1, state="uploading", done_bytes=done))
    model.apply(snap(6, state="queued"))  # no visible change
    model.flush()
    assert seen == [(0, Column.PROGRESS, 0, Column.STATUS)]
    assert model.index(0, Column.STATUS).data() == "Uploading 89%"
    seen.clear()
    model.apply(replace(mixed()[2], compression="done", stored_size=100))
    model.flush()
    assert seen == [(2, Column.COMPRESSION, 2, Column.COMPRESSION)]


def test_new_rows_arrive_in_one_insert_per_flush() -> None:
    model = UploadModel()
    inserts: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _p, first, last: inserts.append((first, last)))
    for i in range(1, 1201):
        model.apply(snap(i))
    assert model.rowCount() == 0  # not before the flush
    model.flush()
    assert inserts == [(0, 1199)]
    assert model.summary.counts[Category.ACTIVE] == 1200


def test_remove_drops_rows_and_ignores_later_snapshots() -> None:
    model = UploadModel()
    for s in mixed():
        model.apply(s)
    model.flush()
    model.remove([3, 4, 5])
    assert [s.id for s in model.snapshots()] == [1, 2, 6]
    model.apply(snap(4, state="uploaded"))
    model.flush()
    assert [s.id for s in model.snapshots()] == [1, 2, 6]
    assert model.row_of(6) == 2


def test_summary_counts_documents_once() -> None:
    model = UploadModel()
    for s in mixed():
        model.apply(s)
    # a second upload of document 1 (already in the library) waits with it
    model.apply(snap(7, state="uploaded", document_id=1, compression="pending", duplicate=True))
    model.flush()
    s = model.summary
    assert s.counts[Category.ALL] == 7
    assert s.counts[Category.ACTIVE] == 2
    assert s.counts[Category.FAILED] == 1
    assert s.counts[Category.DONE] == 3
    assert s.waiting_compression == 1
    assert (
        s.text() == "2 to upload · 3 uploaded · 1 failed · 1 cancelled · "
        "1 waiting for compression · 620 B saved"
    )


def test_running_counts_match_a_recount_after_many_changes() -> None:
    rng = random.Random(7)
    model = UploadModel()
    states = ["queued", "uploading", "uploaded", "failed", "cancelled"]
    comps = [None, "not_queued", "pending", "running", "done", "skipped", "failed"]
    docs = {d: rng.choice(comps[1:]) for d in range(1, 20)}  # a document's state
    stored = {d: rng.randrange(0, 1000) for d in docs}
    rows: dict[int, UploadSnapshot] = {}
    for _ in range(3000):
        if rng.random() < 0.3:  # a document's compression moves: all its rows follow
            d = rng.randrange(1, 20)
            docs[d] = rng.choice(comps[1:])
            for r in [r for r in rows.values() if r.document_id == d]:
                rows[r.id] = replace(r, compression=docs[d])
                model.apply(rows[r.id])
        else:
            i = rng.randrange(1, 60)
            state = rng.choice(states)
            doc = rng.randrange(1, 20) if state == "uploaded" else None
            rows[i] = snap(
                i,
                state=state,
                document_id=doc,
                compression=docs[doc] if doc else None,
                stored_size=stored[doc] if doc else None,
                done_bytes=rng.randrange(0, 1000),
            )
            model.apply(rows[i])
        if rng.random() < 0.1:
            model.flush()
        if rng.random() < 0.01:
            gone = rng.randrange(1, 60)
            model.remove([gone])
            rows.pop(gone, None)
    model.flush()
    fresh = UploadModel()
    fresh.reset(model.snapshots())
    ours, recount = model.summary, fresh.summary
    assert ours.counts == recount.counts
    assert (ours.uploaded, ours.failed, ours.cancelled, ours.active) == (
        recount.uploaded,
        recount.failed,
        recount.cancelled,
        recount.active,
    )
    assert (ours.waiting_compression, ours.saved_bytes) == (
        recount.waiting_compression,
        recount.saved_bytes,
    )


def test_batch_progress_and_its_end() -> None:
    model = UploadModel()
    ended: list[tuple[int, int]] = []
    model.batch_finished.connect(lambda up, failed: ended.append((up, failed)))
    for i in (1, 2, 3):
        model.apply(snap(i, size=1000))
    model.flush()
    model.apply(snap(1, state="uploaded", done_bytes=1000))
    model.apply(snap(2, state="uploading", done_bytes=500))
    model.flush()
    s = model.summary
    assert (s.batch_count, s.batch_finished, s.batch_bytes, s.batch_done_bytes) == (
        3,
        1,
        3000,
        1500,
    )
    assert ended == []
    model.apply(snap(2, state="uploaded", done_bytes=1000))
    model.apply(snap(3, state="failed", error="permission denied"))
    model.flush()
    assert ended == [(2, 1)]
    assert model.summary.batch_count == 0


def test_find_by_name_combines_with_the_category() -> None:
    model = UploadModel()
    for s in mixed():
        model.apply(s)
    model.apply(snap(7, name="Invoice March.pdf", state="failed", error="permission denied"))
    model.flush()
    proxy = FilterModel()
    proxy.setSourceModel(model)
    proxy.set_text("INVOICE")
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["Invoice March.pdf"]
    proxy.set_category(Category.FAILED)
    assert proxy.rowCount() == 1
    proxy.set_text("f2")
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["f2.pdf"]
    proxy.set_text("")
    assert proxy.rowCount() == 2


def test_header_sorting_orders_by_plain_values() -> None:
    from PySide6.QtCore import Qt

    model = UploadModel()
    for s in mixed():
        model.apply(s)
    model.apply(
        snap(7, name="a.pdf", size=5, state="uploaded", document_id=3, compression="skipped")
    )
    model.flush()
    proxy = FilterModel()
    proxy.setSourceModel(model)

    def names() -> list[str]:
        return [proxy.index(r, Column.NAME).data() for r in range(proxy.rowCount())]

    assert names()[0] == "f1.pdf"  # not sorted: the order they were added in
    proxy.sort(Column.STATUS, Qt.SortOrder.AscendingOrder)
    assert names()[:2] == ["f2.pdf", "f1.pdf"]  # failed first, then uploading
    proxy.sort(Column.SIZE, Qt.SortOrder.AscendingOrder)
    assert names()[0] == "a.pdf"
    proxy.sort(Column.NAME, Qt.SortOrder.DescendingOrder)
    assert names()[-1] == "a.pdf"
