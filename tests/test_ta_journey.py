"""A teaching assistant follows the README's "Plain nbgrader" block literally, on CW1.

The other grading tests take the course's own routes (`dlcourse autograde`, which records the
assignment in the gradebook itself); here only nbgrader's commands run, read from the README and
run in bash as written, in a fresh course folder (what a clone holds for CW1: nbgrader_config.py,
source/, release/, grader_tests/; no gradebook, nothing autograded), with this venv's bin on PATH
as an activated venv would put it:

1. two submissions in submitted/: the instructor's notebook with the reference weights, and the
   blank release with one locked check cell edited; `nbgrader autograde cw1` before anything
   else stops with one line saying what to run (no traceback);
2. `nbgrader generate_assignment cw1 --force`: release/cw1 is rewritten byte for byte;
3. `nbgrader autograde cw1`: the instructor gets every automatic mark, the blank none (what
   test_assessed_autograde checks for CW2), and nbgrader says "checksum ... has changed" for
   the edited cell only, not for the test cells the release left as they were;
4. the README's `jupyter server` line, started in a private HOME and Jupyter folders; headless
   Chromium opens the link it prints and, in the formgrader, goes Manual Grading > cw1 > cw1 >
   the instructor's submission, sees the grader's staff note (a FLAG: the instructor submits
   the reference weights), and marks every written answer
   and plot cell (cw1_justify 4 of 5, with a comment; the rest full marks), each saved as the
   box loses focus;
5. `nbgrader generate_feedback cw1`: report.html holds the whole mark (99 of 100, final), the
   person's mark and comment; no student page carries a staff note; pages are 0644 and render
   cleanly in Chromium;
6. `nbgrader export`: the instructor's total is 99, final; the blank's is empty, with the cells
   that wait for a person counted.

DLCOURSE_SMOKE=1 in the environment keeps the kernel's run of each notebook short (an
environment variable of the kernel, not an option of any command). About four minutes on a
2-core machine, most of it the two autograded notebooks and CW1's isolated tests.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from report_pages import check_pages, chromium, chromium_missing

from dlcourse import course, weights
from dlcourse.grading.sandbox import bwrap_works

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not bwrap_works(), reason="autograding needs a working bubblewrap"),
    pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing())),
]

A = "cw1"
README_BLOCK = "### Plain nbgrader, from a fresh clone"
SERVER_START_S = 120
TA_MARKS = {"cw1_justify": 4}  # the rest of the written answers get full marks
TA_COMMENT = "Clear; say why the augmentation helped."
EDITED = "cw1_conv2d_check"  # a locked cell the blank submission changes


def readme_commands() -> list[str]:
    """The commands of the README's block, comments dropped."""
    readme = (course.ROOT / "README.md").read_text()
    text = readme[readme.index(README_BLOCK) :]
    body = re.search(r"```sh\n(.*?)```", text, re.S)
    assert body, f"no sh block after {README_BLOCK!r} in README.md"
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in body.group(1).splitlines()]
    return [line for line in lines if line]


def fresh_course(root: Path) -> Path:
    """What a clone holds for CW1, without anything a run leaves (gradebook, autograded/)."""
    for tree in ("source", "release"):
        shutil.copytree(course.ROOT / tree / A, root / tree / A,
                        ignore=shutil.ignore_patterns("*.pt"))  # fmt: skip
    shutil.copytree(course.GRADER_TESTS, root / "grader_tests",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(course.ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    return root


def submit(root: Path) -> dict[str, Path]:
    notebook = f"{A}.ipynb"
    folders = {s: root / "submitted" / s / A for s in ("instructor", "blank")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    shutil.copy(root / "source" / A / notebook, folders["instructor"] / notebook)
    shutil.copy(weights.WEIGHTS_DIR / "cw1_model.pt", folders["instructor"])
    blank = nbformat.read(root / "release" / A / notebook, as_version=4)
    cell = next(c for c in blank.cells if c.metadata.get("nbgrader", {}).get("grade_id") == EDITED)
    cell.source += "\nprint('the student edited this locked cell')"
    nbformat.write(blank, folders["blank"] / notebook)
    return folders


class Terminal:
    """The TA's shell in the course folder: each command in bash, the venv's bin on PATH."""

    def __init__(self, cwd: Path, home: Path) -> None:
        self.cwd = cwd
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(home / "jupyter-config"),
            "JUPYTER_DATA_DIR": str(home / "jupyter-data"),
            "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"),
            "IPYTHONDIR": str(home / "ipython"),
            "DLCOURSE_SMOKE": "1",
        }
        self.times: dict[str, float] = {}

    def run(self, command: str, expect: int = 0) -> str:
        t0 = time.monotonic()
        proc = subprocess.run(["bash", "-c", command], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, check=False)  # fmt: skip
        self.times[command] = time.monotonic() - t0
        out = proc.stdout + proc.stderr
        assert proc.returncode == expect, f"{command}: exit {proc.returncode}\n{out[-4000:]}"
        return out

    def start(self, command: str) -> subprocess.Popen:
        """A command that keeps running (a server), in its own process group."""
        return subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.cwd, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # fmt: skip


def printed_link(server: subprocess.Popen) -> str:
    """The link the server prints for its user (with the token it generated)."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in server.stdout:
            lines.append(line)
            if re.search(r"http://(localhost|127\.0\.0\.1):\d+/\S*\?token=\w+", line):
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(SERVER_START_S):
        pytest.fail(f"jupyter server printed no link in {SERVER_START_S} s:\n{''.join(lines)}")
    link = next(m for ln in lines if (m := re.search(r"http://\S+\?token=\w+", ln)))
    return link.group(0)


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(30)


def manual_cells(root: Path) -> dict[str, float]:
    """Written answers and plot cells (graded solution cells): points of each."""
    nb = nbformat.read(root / "source" / A / f"{A}.ipynb", as_version=4)
    meta = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    return {m["grade_id"]: m["points"] for m in meta if m.get("grade") and m.get("solution")}


def autograder_cells(root: Path) -> dict[str, float]:
    """Test cells (graded cells that are not solutions): marked by the isolated grader."""
    nb = nbformat.read(root / "source" / A / f"{A}.ipynb", as_version=4)
    meta = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    return {m["grade_id"]: m["points"] for m in meta if m.get("grade") and not m.get("solution")}


def grade_in_formgrader(browser, link: str, marks: dict[str, float], shot: Path) -> str:
    """The TA's clicks: Manual Grading > cw1 > cw1 > the instructor's submission; each mark
    and the comment typed and saved (on leaving the box); returns what the first comment box
    shows before anything is typed (the grader's staff note)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(link)
    page.get_by_role("link", name="Manual Grading").first.click()
    page.get_by_role("link", name=A, exact=True).first.click()  # the assignment
    page.get_by_role("link", name=A, exact=True).last.click()  # its notebook
    page.wait_for_selector("#main-table a.name-hidden")  # the submissions, fetched by the page
    page.get_by_role("button", name="Show All Names").click()
    page.get_by_role("link", name="instructor", exact=True).click()
    first_box = page.locator("textarea.comment").first  # the grader's note: its grey text
    page.wait_for_function("box => box.placeholder !== ''", arg=first_box.element_handle())
    note = first_box.get_attribute("placeholder")
    for cell, score in marks.items():
        with page.expect_response(lambda r: "/api/grade/" in r.url and r.request.method == "PUT"):
            page.fill(f"#{cell}", f"{score:g}")
            page.press(f"#{cell}", "Tab")
    with page.expect_response(lambda r: "/api/comment/" in r.url and r.request.method == "PUT"):
        page.fill("#cw1_justify-comment", TA_COMMENT)
        page.press("#cw1_justify-comment", "Tab")
    page.screenshot(path=str(shot), full_page=False)
    page.close()
    return note or ""


def test_ta_grades_cw1_with_plain_nbgrader_from_a_fresh_clone(tmp_path):
    commands = readme_commands()
    generate, autograde, server_cmd, feedback, export = commands
    assert generate.startswith(f"nbgrader generate_assignment {A} --force")
    assert server_cmd.startswith("jupyter server")
    root = fresh_course(tmp_path / "course")
    term = Terminal(root, tmp_path / "home")
    submit(root)
    released = (root / "release" / A / f"{A}.ipynb").read_bytes()

    # 1. autograde before the assignment is recorded: one line, no traceback
    out = term.run(autograde, expect=1)
    errors = [ln for ln in out.splitlines() if "ERROR" in ln]
    assert len(errors) == 1 and "Traceback" not in out, out
    assert f"{A} is not in the gradebook" in errors[0] and f"`{generate}`" in errors[0]

    # 2. record it: the release is written again, the same bytes
    term.run(generate)
    assert (root / "release" / A / f"{A}.ipynb").read_bytes() == released

    # 3. autograde: every automatic mark for the instructor, none for the blank
    out = term.run(autograde)
    changed = set(re.findall(r"Attribute 'checksum' for cell (\w+) has changed", out))
    assert changed == {EDITED}, out[-3000:]
    tests, manual = autograder_cells(root), manual_cells(root)
    db = f"sqlite:///{root / 'gradebook.db'}"
    with Gradebook(db) as gb:
        for student, expected in (("instructor", tests), ("blank", dict.fromkeys(tests, 0))):
            scores = {c: gb.find_grade(c, A, A, student).auto_score for c in tests}
            assert scores == expected, student
        assert all(gb.find_grade(c, A, A, "instructor").needs_manual_grade for c in manual)

    # 4. the formgrader, as the README starts it, in headless Chromium
    marks = {cell: TA_MARKS.get(cell, points) for cell, points in manual.items()}
    root_flag = " --allow-root" if os.geteuid() == 0 else ""  # jupyter refuses root without it
    server = term.start(server_cmd + root_flag)
    try:
        link = printed_link(server)
        with chromium() as browser:
            note = grade_in_formgrader(browser, link, marks, tmp_path / "formgrader.png")
            print(f"screenshot of the formgrader: {tmp_path / 'formgrader.png'}")
            # the reference weights, submitted: a FLAG for staff (its marks stand: students
            # never had that file), which no student page may show
            assert note == (
                "Isolated grader: status complete - FLAGGED; sandboxed; FLAG: cw1_model.pt is "
                "identical to the course's reference file weights/cw1_model.pt"
            )

            # 5. feedback: the whole mark on one page, no staff note on any
            term.run(feedback)
            folder = root / "feedback" / "instructor" / A
            check_pages([folder / "report.html", folder / f"{A}.html"], tmp_path / "shots", browser)
    finally:
        stop(server)
    total = sum(tests.values()) + sum(marks.values())
    assert total == 99
    page = (folder / "report.html").read_text()
    assert f"Your mark: <strong>{total:g} / 100</strong>" in page and "not final" not in page
    row = re.search(r"<td>cw1_justify</td>\s*<td>(.*?)</td>\s*<td class=\"num\">(.*?)</td>", page)
    assert row and row.groups() == ("a person", "4 / 5"), row
    assert TA_COMMENT in page and TA_COMMENT in (folder / f"{A}.html").read_text()
    for name in (f"{A}.html", "report.html", "isolated_tests.txt"):
        text = (folder / name).read_text()
        assert "Isolated grader: status" not in text and "FLAG" not in text, name
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name

    # 6. export: the person's marks in the total; a submission still waiting has none
    term.run(export)
    rows = {r["student_id"]: r for r in csv.DictReader((root / "grades.csv").open())}
    assert (float(rows["instructor"]["score"]), rows["instructor"]["status"]) == (total, "final")
    assert rows["blank"]["score"] == "" and rows["blank"]["status"].startswith("not final")
    print("times: " + "; ".join(f"{c.split()[1]} {t:.0f} s" for c, t in term.times.items()))
