"""What the hidden tests measured, kept for the feedback report: measurements.pt by results.json.

Hidden tests record through the `report` fixture (dlcourse.grading.plugin) what they computed
in the grader process: a tier table with the measured value and the tests' own thresholds, a
confusion matrix, images, a bar chart. Nothing comes from the student's notebook outputs, and
nothing here may cost a mark, so recording never raises: a measurement that cannot be taken
becomes a note in the report (its traceback goes to grader.log, which only staff read). Work
that needs another call into the student's process waits until every test has run
(`after_tests`), so it cannot use up the time or the process a test needed.

Items are plain dicts of tensors, numbers and text: the file is written atomically with
`torch.save` and read back with `torch.load(weights_only=True)` (`load`), like every message
between grader and student. The report (dlcourse.grading.report) draws each item by its kind.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

FILE = "measurements.pt"  # next to results.json
FORMAT = 1
KINDS = ("tiers", "confusion", "images", "bars")
MAX_BYTES = 8 * 2**20  # all tensors together: a report holds a few dozen small images
MAX_IMAGES = 128
MAX_TEXT = 200


class MeasurementsError(ValueError):
    """A measurements file that cannot be used; the message names it and says what to do."""


class Measurements:
    """The grader process's record of one submission's measurements (the `report` fixture).

    Every public method returns normally whatever it is given: a bad value or an error in a
    `measure`/`after_tests` function becomes a note, never a failed test.
    """

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []
        self.tracebacks: list[str] = []  # staff only: the plugin prints them into grader.log
        self._done: set[str] = set()
        self._later: list[tuple[str, Callable[[], Any]]] = []

    # -- guards -----------------------------------------------------------------------------

    def measure(self, what: str, compute: Callable[[], Any]) -> None:
        """`compute()` once per `what` (it records items); an error in it is only noted."""
        if what in self._done:
            return
        self._done.add(what)
        try:
            compute()
        except Exception as exc:  # noqa: BLE001 - a measurement never costs a mark
            self._note_failure(what, exc)

    def after_tests(self, what: str, compute: Callable[[], Any]) -> None:
        """Run `compute()` once after every test has run: for measurements that call into the
        student's process again (their time and failures then cannot touch a test)."""
        if what not in self._done:
            self._done.add(what)
            self._later.append((what, compute))

    def run_after_tests(self) -> None:
        """The plugin calls this at the end of the session, before writing the file."""
        later, self._later = self._later, []
        for what, compute in later:
            self._done.discard(what)
            self.measure(what, compute)

    # -- what a report shows ----------------------------------------------------------------

    def tiers(
        self,
        key: str,
        title: str,
        value: float,
        rows: Sequence[tuple[str, float, str]],
        higher_is_better: bool = True,
        fmt: str = ".3f",
        unit: str = "",
    ) -> None:
        """A tier table: `value` as measured and the tests' own thresholds, as
        (label, threshold, test name as in results.json, e.g. "test_model::test_tier_1")."""

        def item() -> dict[str, Any]:
            format(1.0, fmt)  # a bad format spec fails here, not when the report is drawn
            return {
                "title": _text(title),
                "value": float(value),
                "higher_is_better": bool(higher_is_better),
                "format": str(fmt),
                "unit": _text(unit),
                "rows": [
                    {"label": _text(label), "threshold": float(t), "test": _text(test)}
                    for label, t, test in rows
                ],
            }

        self._add(key, "tiers", item)

    def confusion(self, key: str, title: str, matrix: torch.Tensor, labels: Sequence[str]) -> None:
        """Counts with true classes as rows and predicted classes as columns."""

        def item() -> dict[str, Any]:
            m = torch.as_tensor(matrix).detach().cpu().long()
            if m.dim() != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labels):
                raise ValueError(f"a {len(labels)}-class confusion matrix, not {tuple(m.shape)}")
            return {"title": _text(title), "matrix": m.clone(), "labels": list(map(_text, labels))}

        self._add(key, "confusion", item)

    def images(
        self,
        key: str,
        title: str,
        images: torch.Tensor,
        captions: Sequence[str] = (),
        value_range: tuple[float, float] = (0.0, 1.0),
        columns: int = 8,
        note: str = "",
    ) -> None:
        """Greyscale images (N, H, W) or (N, 1, H, W) spanning `value_range`, stored as uint8
        (values outside the range are clipped, NaN shows black)."""

        def item() -> dict[str, Any]:
            x = torch.as_tensor(images).detach().cpu().float()
            if x.dim() == 4 and x.shape[1] == 1:
                x = x[:, 0]
            if x.dim() != 3 or not 0 < len(x) <= MAX_IMAGES:
                raise ValueError(f"1 to {MAX_IMAGES} images (N, H, W), not {tuple(x.shape)}")
            if captions and len(captions) != len(x):
                raise ValueError(f"{len(captions)} captions for {len(x)} images")
            lo, hi = map(float, value_range)
            scaled = ((x.nan_to_num(lo) - lo) / (hi - lo)).clamp(0, 1)
            return {
                "title": _text(title),
                "images": (scaled * 255).round().to(torch.uint8),
                "captions": list(map(_text, captions)),
                "columns": max(1, int(columns)),
                "note": _text(note, 600),
            }

        self._add(key, "images", item)

    def bars(
        self,
        key: str,
        title: str,
        values: Sequence[float],
        labels: Sequence[str],
        threshold: float | None = None,
        threshold_label: str = "",
        fmt: str = ".3f",
    ) -> None:
        """A bar chart (one bar per label), with an optional threshold line."""

        def item() -> dict[str, Any]:
            vals = [float(v) for v in values]
            if len(vals) != len(labels) or not vals:
                raise ValueError(f"{len(vals)} values for {len(labels)} labels")
            format(1.0, fmt)
            return {
                "title": _text(title),
                "values": vals,
                "labels": list(map(_text, labels)),
                "threshold": None if threshold is None else float(threshold),
                "threshold_label": _text(threshold_label),
                "format": str(fmt),
            }

        self._add(key, "bars", item)

    # -- the file ---------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        return {"format": FORMAT, "items": list(self.items.values()), "notes": list(self.notes)}

    def write(self, path: Path) -> None:
        """Write atomically (a temporary file in the same folder, then a rename)."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(self.document(), f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _add(self, key: str, kind: str, build: Callable[[], dict[str, Any]]) -> None:
        try:
            item = {"key": _text(key), "kind": kind, **build()}
            others = (i for k, i in self.items.items() if k != item["key"])
            size = _tensor_bytes(item) + sum(map(_tensor_bytes, others))
            if size > MAX_BYTES:
                raise ValueError(f"{size:,} bytes of tensors in all, over {MAX_BYTES:,}")
        except Exception as exc:  # noqa: BLE001 - a measurement never costs a mark
            self._note_failure(key, exc)
            return
        self.items[item["key"]] = item

    def _note_failure(self, what: str, exc: Exception) -> None:
        """A line for the report, without hidden-test text; the traceback for grader.log."""
        from dlcourse.grading.sandbox import WorkerError
        from dlcourse.grading.student import StudentError

        self.tracebacks.append(f"{what}:\n" + "".join(traceback.format_exception(exc)))
        if isinstance(exc, StudentError | WorkerError):  # written for the student
            why = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        else:  # a grader-side problem: its message could quote hidden-test code
            why = f"a problem in the grader ({type(exc).__name__})"
        self.notes.append(f"{_text(what)}: not measured: {why}")


def load(path: Path) -> dict[str, Any]:
    """A measurements file, read with `torch.load(weights_only=True)` and checked: every item
    a dict of a known kind. MeasurementsError (naming the file) when it cannot be used."""
    path = Path(path)
    again = "re-grade the submission (--force) to measure it again"
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every unreadable file gets the same advice
        raise MeasurementsError(f"{path} cannot be read ({type(exc).__name__}); {again}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise MeasurementsError(f"{path} is not a measurements file of format {FORMAT}; {again}")
    items = doc.get("items")
    notes = doc.get("notes", [])
    if not isinstance(items, list) or not isinstance(notes, list):
        raise MeasurementsError(f"{path} has no list of items; {again}")
    bad = [i for i in items if not isinstance(i, dict) or i.get("kind") not in KINDS]
    if bad:
        raise MeasurementsError(f"{path} holds {len(bad)} items of no known kind; {again}")
    return {"items": items, "notes": [str(n) for n in notes]}


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    return str(value)[:limit]


def _tensor_bytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return 0
