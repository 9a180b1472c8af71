"""Feedback reports: a self-contained HTML page per submission, and a cohort page for staff.

A student's report.html shows the marks of every hidden test with its message, and what the
hidden tests measured in the grader process (measurements.pt, dlcourse.grading.measurements):
tier tables with where the student landed, a confusion matrix, images, bar charts. Written at
feedback time from the gradebook (dlcourse.grading.feedback), it leads with the whole mark:
each graded cell (hidden tests, a TA's mark with the comment, or waiting for a person) and the
total. It shows no hidden test code and nothing but what the tests chose to record, and none
of the staff's notes (flags, sandboxing): those are for the summary, the CSVs, the gradebook
comment and cohort.html. Pages are rendered from the
Jinja2 templates in templates/ with autoescaping on (messages and notes quote the student's own
errors), and every image is a data: URI, so a page can be mailed or opened offline; a Content
Security Policy forbids scripts and any fetch, so nothing a student wrote can run in a
reader's browser.

cohort.html (staff only) has a mark histogram per test, the most common failure messages with
their counts, and a link to each submission's report.

A report never stops grading: a measurements file that cannot be read costs the page its
plots (the page says so, the terminal names the file), and a page that cannot be written is
reported on stderr.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from dlcourse.grading import measurements, results
from dlcourse.grading.results import UNSANDBOXED, GradingResults, TestResult

REPORT = "report.html"
PAGE_MODE = 0o644  # as nbgrader writes feedback: readable by the group and others
COHORT = "cohort.html"
MESSAGE_CHARS = 2000  # a failure message as shown; results.json keeps what the plugin kept
MAX_NOTES = 50
COMMON_FAILURES = 15
SHOWN_NAMES = 5  # submissions named per failure message on the cohort page
PAGE_WIDTH_PX = 880  # images of one row together
MIN_IMAGE_PX = 56  # tiny images are drawn at least this wide where the row fits

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("dlcourse.grading", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# -- one submission ------------------------------------------------------------------------


@dataclass
class MarkRow:
    """One test as the report shows it: its module (`part`), name, mark and message."""

    part: str
    name: str
    description: str
    mark: str
    outcome: str
    message: str


def mark_rows(tests: Sequence[TestResult]) -> list[MarkRow]:
    rows = []
    for t in tests:
        part, _, name = t.name.rpartition("::")
        message = _clip(t.output, MESSAGE_CHARS)
        rows.append(MarkRow(part, name or t.name, t.description, _mark(t), t.outcome, message))
    return rows


def _mark(t: TestResult) -> str:
    return "error" if t.outcome == "error" else f"{t.score:g}/{t.max_score:g}"


def read_measurements(folder: Path, graded: GradingResults) -> tuple[list[dict], list[str]]:
    """(items, notes) of folder/measurements.pt for this grading; nothing when the grading
    failed (an earlier grading's file may still lie there) or none were recorded."""
    path = Path(folder) / measurements.FILE
    if graded.failure is not None or not path.is_file():
        return [], []
    try:
        doc = measurements.load(path)
    except measurements.MeasurementsError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return [], ["The grader's measurements could not be read, so this page has no plots."]
    return doc["items"], doc["notes"]


@dataclass
class CellRow:
    """One graded cell of the notebook, as the report's table of the whole mark shows it."""

    where: str  # the cell as the student finds it: In [n]
    name: str  # nbgrader's grade_id
    how: str  # hidden tests / marked by a person / waits for a person
    mark: str
    comment: str
    waiting: bool


@dataclass
class WholeMark:
    """The notebook's mark as the gradebook holds it: every graded cell, and the total."""

    cells: list[CellRow]
    score: float
    max_score: float
    late_penalty: float = 0.0

    @property
    def waiting(self) -> int:
        return sum(c.waiting for c in self.cells)


STAFF_NOTES = ("student code ran in ", UNSANDBOXED)  # how the worker ran: for staff


def for_student(graded: GradingResults) -> GradingResults:
    """The results as a student may read them: no FLAG, no word on sandboxing (staff notes)."""
    notes = [n for n in graded.notes if not any(m in n for m in STAFF_NOTES)]
    return dataclasses.replace(graded, flags=[], sandboxed=None, notes=notes)


def submission_page(
    graded: GradingResults,
    student: str,
    items: Sequence[Mapping[str, Any]] = (),
    measurement_notes: Sequence[str] = (),
    notes: Sequence[str] = (),
    whole: WholeMark | None = None,
) -> str:
    """The HTML of one submission's report (`notes`: more lines for the student, e.g. cells
    that nbgrader restored; `whole`: the gradebook's mark, leading the page when given)."""
    graded = for_student(graded)
    by_name = {t.name: t for t in graded.tests}
    sections = []
    for item in items:
        try:
            sections.append(_section(item, by_name))
        except Exception as exc:  # noqa: BLE001 - one bad item costs only its own section
            print(f"warning: report item {item.get('key')!r} not drawn: {exc!r}", file=sys.stderr)
            measurement_notes = [*measurement_notes, f"{item.get('key')}: could not be drawn"]
    return _env.get_template("report.html.j2").render(
        title=f"{graded.assignment}: feedback for {student}",
        assignment=graded.assignment,
        student=student,
        whole=whole,
        total=None if whole is None else _total(whole),
        score=f"{graded.score:g}",
        max_score=f"{graded.max_score:g}",
        status=graded.status,
        complete=graded.failure is None and not graded.errors,
        notes=_capped([*graded.all_notes, *notes]),
        tests=mark_rows(graded.tests),
        sections=sections,
        measurement_notes=list(measurement_notes),
    )


def _total(whole: WholeMark) -> str:
    total = f"{whole.score - whole.late_penalty:g} / {whole.max_score:g}"
    if whole.late_penalty:
        total += f" (after a late penalty of {whole.late_penalty:g})"
    return total


def write_report(
    results_dir: Path,
    student: str,
    dest: Path | None = None,
    notes: Sequence[str] = (),
    graded: GradingResults | None = None,
    whole: WholeMark | None = None,
) -> Path | None:
    """Render results_dir's results.json and measurements.pt into `dest` (default
    results_dir/report.html); the path written, or None (with the reason on stderr)."""
    results_dir = Path(results_dir)
    dest = Path(dest) if dest is not None else results_dir / REPORT
    try:
        if graded is None:
            graded = GradingResults.read(results_dir / "results.json")
        items, measured = read_measurements(results_dir, graded)
        write_page(dest, submission_page(graded, student, items, measured, notes, whole))
    except Exception as exc:  # noqa: BLE001 - a report never stops grading or feedback
        print(f"warning: no {dest} ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None
    return dest


def write_page(path: Path, text: str) -> None:
    """Write a page a student or a colleague reads: atomically, and readable as nbgrader's
    feedback is (PAGE_MODE), not only by its writer."""
    results.write_atomic(path, text)
    os.chmod(path, PAGE_MODE)


# -- measurement sections --------------------------------------------------------------------


def _section(item: Mapping[str, Any], tests: Mapping[str, TestResult]) -> dict[str, Any]:
    kind = item["kind"]
    base = {"kind": kind, "title": str(item["title"])}
    if kind == "tiers":
        return base | _tiers(item, tests)
    if kind == "confusion":
        return base | {"image": _confusion_png(item), "alt": f"confusion matrix: {item['title']}"}
    if kind == "bars":
        return base | {"image": _bars_png(item), "alt": f"bar chart: {item['title']}"}
    if kind == "images":
        return base | _images(item)
    raise ValueError(f"unknown kind {kind!r}")


def _fmt(value: float, fmt: str, unit: str = "") -> str:
    return f"{value:{fmt}}{unit}" if math.isfinite(value) else "not a number"


def _tiers(item: Mapping[str, Any], tests: Mapping[str, TestResult]) -> dict[str, Any]:
    """Rows in the tests' order, with the student's value placed after the last tier reached."""
    value, fmt, unit = float(item["value"]), str(item["format"]), str(item["unit"])
    higher = bool(item["higher_is_better"])
    rows, last = [], -1
    for i, r in enumerate(item["rows"]):
        t = float(r["threshold"])
        reached = math.isfinite(value) and (value >= t if higher else value <= t)
        last = i if reached else last
        test = tests.get(str(r["test"]))
        needs = f"{'≥' if higher else '≤'} {_fmt(t, fmt, unit)}"
        mark = "" if test is None else _mark(test)
        rows.append({"label": str(r["label"]), "needs": needs, "reached": reached, "mark": mark})
    landed = f"reached {rows[last]['label']}" if last >= 0 else "below every tier"
    return {"value": _fmt(value, fmt, unit), "rows": rows, "after": last, "landed": landed}


def _images(item: Mapping[str, Any]) -> dict[str, Any]:
    imgs = item["images"]
    columns = max(1, int(item["columns"]))
    height, width = int(imgs.shape[1]), int(imgs.shape[2])
    # whole multiples of the pixels, up to 3x (tiny images up to 56 px), within the page
    scale = max(1, min(max(3, math.ceil(MIN_IMAGE_PX / width)), PAGE_WIDTH_PX // (columns * width)))
    captions = [str(c) for c in item["captions"]] or [""] * len(imgs)
    return {
        "images": [
            {"src": _gray_png(img), "caption": cap, "alt": cap or f"image {i + 1}"}
            for i, (img, cap) in enumerate(zip(imgs, captions, strict=True))
        ],
        "columns": columns,
        "width": width * scale,
        "height": height * scale,
        "note": str(item["note"]),
    }


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _gray_png(img: Any) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.numpy(), mode="L").save(buf, format="PNG")
    return _data_uri(buf.getvalue())


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display

    return Figure(figsize=(width, height), layout="constrained")


def _figure_png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return _data_uri(buf.getvalue())


def _confusion_png(item: Mapping[str, Any]) -> str:
    counts = item["matrix"].double()
    labels = [str(x) for x in item["labels"]]
    share = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)  # of each true class
    fig = _figure(7.2, 6.0)
    ax = fig.add_subplot()
    im = ax.imshow(share.numpy(), cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right")
    ax.set_yticks(ticks, labels)
    for i in ticks:
        for j in ticks:
            color = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, label="share of the true class")
    return _figure_png(fig)


def _bars_png(item: Mapping[str, Any]) -> str:
    values = [float(v) for v in item["values"]]
    labels = [str(x) for x in item["labels"]]
    fmt = str(item["format"])
    fig = _figure(7.2, 3.4)
    ax = fig.add_subplot()
    threshold = item["threshold"]
    colors = ["#c0392b" if threshold is not None and v < threshold else "#2e86c1" for v in values]
    bars = ax.bar(range(len(values)), values, color=colors)
    ax.bar_label(bars, [_fmt(v, fmt) for v in values], fontsize=7)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    if fmt.endswith("%"):
        from matplotlib.ticker import PercentFormatter

        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    if threshold is not None:
        ax.axhline(threshold, color="#555", linestyle="--", linewidth=1,
                   label=str(item["threshold_label"]) or None)  # fmt: skip
        if item["threshold_label"]:
            ax.legend(loc="upper right", fontsize=8)
    ax.margins(y=0.15)
    return _figure_png(fig)


# -- the cohort -----------------------------------------------------------------------------


# A name (a file, a variable: kept whole, digits and all) or a number (masked).
_NAME_OR_NUMBER = re.compile(r"[A-Za-z_][\w.]*|\d+(?:[.,]\d+)*")


def message_pattern(text: str) -> str:
    """A failure message's first line with its numbers as #, so that the same failure with
    other values counts once ("test accuracy #% is below #%"); digits inside names stay
    ("missing weight file intro1_mlp.pt")."""
    first = text.strip().splitlines()[0] if text.strip() else "(no message)"
    return _NAME_OR_NUMBER.sub(lambda m: "#" if m[0][0].isdigit() else m[0], first)[:300]


def cohort_page(
    cohort: Mapping[str, GradingResults],
    assignment: str,
    links: Mapping[str, str] | None = None,
) -> str:
    """Staff's page for one assignment: totals, a mark histogram per test, the most common
    failure messages, and each submission with a link to its report (`links`)."""
    names: list[str] = []
    maxima: dict[str, float] = {}
    for r in cohort.values():
        for t in r.tests:
            if t.name not in maxima:
                names.append(t.name)
            maxima[t.name] = max(maxima.get(t.name, 0.0), t.max_score)
    per_test = []
    for name in names:
        found = [t for r in cohort.values() for t in r.tests if t.name == name]
        per_test.append({
            "name": name,
            "max": f"{maxima[name]:g}",
            "mean": f"{sum(t.score for t in found) / len(found):.2f}" if found else "-",
            "passed": sum(t.outcome == "passed" for t in found),
            "failed": sum(t.outcome == "failed" for t in found),
            "error": sum(t.outcome == "error" for t in found),
            "missing": len(cohort) - len(found),
        })  # fmt: skip
    common = common_failures(cohort)
    totals = [r.score for r in cohort.values() if r.failure is None]
    top = max((r.max_score for r in cohort.values()), default=0.0)
    rows = [
        {"id": sid, "score": f"{r.score:g}/{r.max_score:g}", "status": r.status,
         "link": (links or {}).get(sid)}
        for sid, r in sorted(cohort.items())
    ]  # fmt: skip
    return _env.get_template("cohort.html.j2").render(
        title=f"{assignment}: cohort of {len(cohort)}",
        assignment=assignment,
        count=len(cohort),
        graded=len(totals),
        mean=f"{sum(totals) / len(totals):.2f}" if totals else "-",
        max_score=f"{top:g}",
        flagged=sum(bool(r.flags) for r in cohort.values()),
        unsandboxed=sum(r.sandboxed is False for r in cohort.values()),
        totals_image=_totals_png(totals, top) if totals else None,
        tests_image=_per_test_png(cohort, names, maxima) if names else None,
        per_test=per_test,
        common=common[:COMMON_FAILURES],
        distinct_failures=len(common),
        submissions=rows,
    )


def common_failures(cohort: Mapping[str, GradingResults]) -> list[dict[str, Any]]:
    """Failure messages by pattern (`message_pattern`), most submissions first: the tests that
    gave each, the submissions (first few), and one full message where the pattern hid
    something."""
    found: dict[str, dict[str, Any]] = {}
    for sid, r in sorted(cohort.items()):
        failed = [(t.name, t.output) for t in r.tests if t.outcome != "passed"]
        if r.failure is not None:
            failed.append(("(whole submission)", r.failure))
        for test, text in failed:
            entry = found.setdefault(
                message_pattern(text), {"tests": [], "students": [], "example": ""}
            )
            entry["tests"] += [test] if test not in entry["tests"] else []
            entry["students"] += [sid] if sid not in entry["students"] else []
            if not entry["example"] and message_pattern(text) != text.strip():
                entry["example"] = f"{sid}: {_clip(text.strip(), 400)}"
    ranked = sorted(found.items(), key=lambda kv: (-len(kv[1]["students"]), kv[0]))
    return [
        {
            "pattern": pattern,
            "count": len(e["students"]),
            "tests": e["tests"],
            "students": e["students"][:SHOWN_NAMES],
            "more": max(0, len(e["students"]) - SHOWN_NAMES),
            "example": e["example"],
        }
        for pattern, e in ranked
    ]


def _totals_png(totals: Sequence[float], top: float) -> str:
    fig = _figure(7.2, 2.8)
    ax = fig.add_subplot()
    if top <= 60:  # one bar per whole mark, centred on it
        bins: Any = [k - 0.5 for k in range(math.ceil(top) + 2)]
    else:
        bins = 20
    ax.hist(totals, bins=bins, color="#2e86c1", edgecolor="white")
    ax.set_xlabel(f"total mark (out of {top:g})")
    ax.set_ylabel("submissions")
    ax.yaxis.get_major_locator().set_params(integer=True)
    return _figure_png(fig)


def _per_test_png(
    cohort: Mapping[str, GradingResults], names: Sequence[str], maxima: Mapping[str, float]
) -> str:
    """Small multiples: per test, how many submissions got each mark, and errors apart."""
    columns = 4
    rows = math.ceil(len(names) / columns)
    fig = _figure(10.0, 1.9 * rows)
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, columns, k + 1)
        found = [t for r in cohort.values() for t in r.tests if t.name == name]
        marks = Counter(t.score for t in found if t.outcome != "error")
        for m in (0.0, maxima[name]):
            marks.setdefault(m, 0)
        keys = sorted(marks)
        labels = [f"{m:g}" for m in keys] + ["error"]
        counts = [marks[m] for m in keys] + [sum(t.outcome == "error" for t in found)]
        colors = ["#2e86c1"] * len(keys) + ["#c0392b"]
        ax.bar(range(len(labels)), counts, color=colors)
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_title(name.rpartition("::")[2] or name, fontsize=8)
    return _figure_png(fig)


def write_reports(out: Path, cohort: Mapping[str, GradingResults], assignment: str) -> None:
    """out/<id>/report.html for every submission, then out/cohort.html linking to them."""
    out = Path(out)
    links = {}
    for sid, graded in sorted(cohort.items()):
        if write_report(out / sid, sid, graded=graded) is not None:
            links[sid] = f"{quote(sid)}/{REPORT}"
    try:
        results.write_atomic(out / COHORT, cohort_page(cohort, assignment, links))
    except Exception as exc:  # noqa: BLE001 - a report never stops grading
        print(f"warning: no {out / COHORT} ({type(exc).__name__}: {exc})", file=sys.stderr)


def _capped(lines: Sequence[str]) -> list[str]:
    """At most MAX_NOTES lines (a notebook can raise on thousands of statements)."""
    lines = [_clip(str(n), MESSAGE_CHARS) for n in lines]
    if len(lines) <= MAX_NOTES:
        return lines
    return [*lines[:MAX_NOTES], f"... and {len(lines) - MAX_NOTES} more notes"]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"
