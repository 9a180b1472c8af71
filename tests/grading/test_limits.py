"""Every student process is bounded by the kernel: memory, processes, disk and output.

Tried as a determined student would, as root, under plain `nbgrader autograde` (what TAs type):
a fork bomb, 1.5 GB into /dev/shm, 3 GB of memfds no one maps, a disk filled from the working
directory, one print of a gigabyte, 400 MB printed a megabyte at a time, and an 8.8 MB cell of
tuple literals for whatever parses or renders it. Each is a cell of its own student's notebook
(otherwise the toy's good solution); the isolated grader's student process gets the /dev/shm
and memfd attacks in `Net.forward`. A second course with one honest student is autograded at
the same time, on the same machine.

Measured from outside, while it runs: the peak RSS of nbgrader's own process (VmHWM), the most
memory any box held and the most tasks any box ran (cgroup files, read by this test), what is
left running afterwards, and the size of what was written.
"""

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from attack_fixtures import KERNEL_ATTACKS, LITERALS_CELL
from nbgrader.api import Gradebook

from dlcourse.course import ROOT
from dlcourse.grading import cgroups, preprocessors, runner
from dlcourse.grading.sandbox import bwrap_works

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grading"
GOOD = FIXTURES / "submissions" / "good"
ATTACKERS = [*KERNEL_ATTACKS, "literals"]
# What the student sees in the cell (either, where two limits can stop it first).
KERNEL_MESSAGES = {
    "forkbomb": ("process limit",),
    "shm": ("No space left on device",),
    "memfd": ("out of memory",),
    "disk": ("No space left on device",),
    "line": ("no output came after the cell", "out of memory", "output limit"),
    "paced": ("output limit",),
}
NBGRADER_PEAK_MB = 1024  # before: 3,770 MB for the gigabyte line alone
WRITTEN_MB = 30  # autograded notebook and feedback page, each (before: 450 MB)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not bwrap_works(), reason="needs a working bubblewrap"),
    pytest.mark.skipif(cgroups.hierarchy() is None, reason=cgroups.unavailable() or ""),
]


class Sampler(threading.Thread):
    """Peaks of a process (VmHWM) and of every box below this process's cgroups."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.done = pid, threading.Event()
        self.rss_mb = 0.0
        self.boxes: dict[str, tuple[int, int]] = {}  # box -> (limit, peak) bytes
        self.tasks = 0
        h = cgroups.hierarchy()
        self.parents = h.parents

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.sample()

    def sample(self) -> None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
            hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
            self.rss_mb = max(self.rss_mb, int(hwm.split()[1]) / 1024)
        except (OSError, StopIteration):
            pass
        for d in _boxes(self.parents.get("memory", self.parents.get(""))):
            try:
                limit = int((d / "memory.limit_in_bytes").read_text())
                peak = int((d / "memory.max_usage_in_bytes").read_text())
            except OSError:
                continue
            self.boxes[str(d)] = (limit, max(peak, self.boxes.get(str(d), (0, 0))[1]))
        for d in _boxes(self.parents.get("pids", self.parents.get(""))):
            try:
                self.tasks = max(self.tasks, int((d / "pids.current").read_text()))
            except OSError:
                continue


def _boxes(parent: Path) -> list[Path]:
    """The boxes below `parent` now (they come and go while we look: a vanished one is skipped)."""
    found, todo = [], [parent]
    while todo:
        try:
            boxes = [c for c in todo.pop().iterdir() if c.name.startswith("dlcourse-")]
        except OSError:
            continue
        found += boxes
        todo += boxes  # a box's own boxes (the grader's holds its student process's)
    return found


def _course(root: Path, students: dict[str, str | None]) -> None:
    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(FIXTURES / "toy_source", root / "source")
    shutil.copytree(FIXTURES / "toy_tests", root / "grader_tests" / "toy")
    for student, cell in students.items():
        folder = shutil.copytree(GOOD, root / "submitted" / student / "toy")
        if cell is not None:
            nb = nbformat.read(folder / "toy.ipynb", as_version=4)
            nb.cells.insert(2, nbformat.v4.new_code_cell(cell))
            nbformat.write(nb, folder / "toy.ipynb")


def _nbgrader(root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "nbgrader", *args]
    return subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _measured(proc: subprocess.Popen) -> tuple[Sampler, str]:
    sampler = Sampler(proc.pid)
    sampler.start()
    out = proc.communicate()[0].decode(errors="replace")
    sampler.done.set()
    sampler.join()
    assert proc.returncode == 0, out[-3000:]
    return sampler, out


def _leftovers() -> list[str]:
    return [
        " ".join(p.info["cmdline"])
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and p.info["cmdline"][:2] == ["sleep", "120"]
    ]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root, alone = tmp_path_factory.mktemp("attacked"), tmp_path_factory.mktemp("alone")
    _course(root, {**KERNEL_ATTACKS, "literals": LITERALS_CELL})
    _course(alone, {"honest": None})
    for course in (root, alone):
        assert _nbgrader(course, "generate_assignment", "toy", "--force").wait() == 0
    honest = _nbgrader(alone, "autograde", "toy", "--force")  # at the same time as the attacks
    attacked, log = _measured(_nbgrader(root, "autograde", "toy", "--force"))
    assert honest.wait() == 0, honest.communicate()[0][-2000:]
    time.sleep(1)
    leftovers = _leftovers()
    feedback, _ = _measured(_nbgrader(root, "generate_feedback", "toy", "--force"))
    peaks = sorted((peak >> 20, limit >> 20) for limit, peak in attacked.boxes.values())
    print(  # for the record (`pytest -s`): what was measured from outside
        f"\nnbgrader autograde peak RSS {attacked.rss_mb:.0f} MB; generate_feedback "
        f"{feedback.rss_mb:.0f} MB; most tasks in a box {attacked.tasks}; box peaks (MB, "
        f"limit MB): {peaks}"
    )
    return {"root": root, "alone": alone, "attacked": attacked, "log": log,
            "leftovers": leftovers, "feedback": feedback}  # fmt: skip


def _scores(root: Path, student: str) -> dict[str, tuple[float, bool]]:
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "dl-course") as gb:
        return {
            cell: (g.score, g.needs_manual_grade)
            for cell in ("toy_add_test", "toy_hidden")
            for g in [gb.find_grade(cell, "toy", "toy", student)]
        }


def _outputs(root: Path, student: str) -> str:
    nb = nbformat.read(root / "autograded" / student / "toy" / "toy.ipynb", as_version=4)
    return "\n".join(
        o.get("evalue", "") + o.get("text", "")[:200]
        for c in nb.cells
        for o in c.get("outputs", [])
    )


@pytest.mark.parametrize("attack", list(KERNEL_MESSAGES))
def test_each_attack_gets_a_clear_error_and_changes_no_mark(graded, attack):
    outputs = _outputs(graded["root"], attack)
    assert any(m in outputs for m in KERNEL_MESSAGES[attack]), outputs[-2000:]
    full = {"toy_add_test": (1.0, False), "toy_hidden": (7.0, False)}
    assert _scores(graded["root"], attack) == full  # its isolated marks, no more and no less


def test_the_honest_student_graded_beside_them_gets_the_marks_alone(graded):
    assert _scores(graded["alone"], "honest") == {
        "toy_add_test": (1.0, False), "toy_hidden": (7.0, False)
    }  # fmt: skip


def test_no_process_exceeds_its_limit(graded):
    attacked = graded["attacked"]
    assert attacked.rss_mb < NBGRADER_PEAK_MB, f"nbgrader's process peaked at {attacked.rss_mb} MB"
    assert attacked.boxes, "no box was seen"
    over = {box: peak for box, (limit, peak) in attacked.boxes.items() if peak > limit}
    assert not over, over
    assert attacked.tasks <= preprocessors.KERNEL_PIDS
    assert graded["feedback"].rss_mb < NBGRADER_PEAK_MB, graded["feedback"].rss_mb


def test_nothing_outlives_the_step_and_little_is_written(graded):
    root = graded["root"]
    assert graded["leftovers"] == []
    assert not list(root.rglob("fill*.bin")), "the kernel's disk fill reached the host"
    for student in ATTACKERS:
        for path in (
            root / "autograded" / student / "toy" / "toy.ipynb",
            root / "feedback" / student / "toy" / "toy.html",
        ):
            assert path.stat().st_size < WRITTEN_MB * 2**20, (path, path.stat().st_size)


def test_literals_are_refused_unparsed_by_the_grader_and_cut_in_the_feedback(graded):
    root = graded["root"]
    html = (root / "feedback" / "literals" / "toy" / "toy.html").read_text()
    assert "characters of code, over the 100,000 the feedback shows" in html
    summary = (root / "grades" / "toy" / "literals" / "summary.txt").read_text()
    assert "characters of code (at most 100,000)" in summary
    hidden, waiting = _scores(root, "literals")["toy_hidden"]
    assert hidden < 7 and waiting  # what could not be computed waits for a person


WORKER_ATTACKS = {  # (what the student may be told, whichever limit comes first; the cell)
    "shm": (("No space left on device", "File too large"), KERNEL_ATTACKS["shm"]),
    "memfd": (("out of memory: the student's processes used",), KERNEL_ATTACKS["memfd"]),
}


@pytest.mark.parametrize("attack", list(WORKER_ATTACKS))
def test_the_graders_student_process_is_bounded_too(attack, toy_spec, tmp_path):
    messages, cell = WORKER_ATTACKS[attack]
    sub = shutil.copytree(GOOD, tmp_path / attack)
    nb = nbformat.read(sub / "toy.ipynb", as_version=4)
    net = next(c for c in nb.cells if "def forward" in c.source)
    body = "\n".join("        " + line for line in cell.splitlines())
    net.source = net.source.replace(
        "    def forward(self, x):\n", f"    def forward(self, x):\n{body}\n"
    )
    nbformat.write(nb, sub / "toy.ipynb")
    graded = runner.grade_submission(sub, toy_spec, tmp_path / "out")
    logits = [
        t for t in graded.tests if t.name.split("::")[1] in ("test_logits_shape", "test_accuracy")
    ]
    told = [t.outcome == "error" and any(m in t.output for m in messages) for t in logits]
    assert all(told), graded.summary(attack)
    assert graded.score == 4  # add, add by hand, no loop, parameter count: their marks
