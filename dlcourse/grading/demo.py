"""`dlcourse demo`: release, lay out a four-student cohort for pytorch_intro_1, autograde it.

The cohort is built from the instructor's notebook and reference weights: the reference
solution, a partial one (two exercises left undone, weights of a weaker model), a broken one
(nothing done, no weights) and an adversarial one (tries to read the test labels, patches
torch, floods stdout). Everything lives in a scratch course folder, never in submitted/.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import nbformat
import torch

from dlcourse import course, release, weights
from dlcourse.grading import autograde, spec
from dlcourse.grading.validate import Console

ASSIGNMENT = "pytorch_intro_1"
MARKER = ".dlcourse-demo"  # only a folder carrying this is ever wiped by the demo
ADVERSARY = '''import gzip


def _stolen_labels():
    """A cheat: the test labels, if this process can read them (the sandbox says no)."""
    path = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
    try:
        return torch.frombuffer(bytearray(gzip.open(path).read()[8:]), dtype=torch.uint8).long()
    except OSError:
        return None


class MLP(nn.Module):
    torch.Tensor.argmax = lambda self, *a, **k: torch.zeros(len(self), dtype=torch.long)
    print("x" * 3_000_000)

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, 10)
        )

    def forward(self, x):
        labels = _stolen_labels()
        if labels is not None and len(x) == len(labels):
            return torch.nn.functional.one_hot(labels, 10).float() * 10
        return self.net(x)
'''


def _cells_by_id(nb) -> dict[str, int]:
    return {
        c.metadata["nbgrader"]["grade_id"]: i
        for i, c in enumerate(nb.cells)
        if "nbgrader" in c.get("metadata", {})
    }


def _noisy(sd: dict[str, torch.Tensor], scale: float, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: v + scale * v.std() * torch.randn(v.shape, generator=g) for k, v in sd.items()}


def layout(root: Path) -> list[str]:
    """Write the scratch course at `root`: config, source, release, submissions."""
    a = course.get(ASSIGNMENT)
    source_nb = a.notebooks[0]
    if (root / MARKER).is_file():
        shutil.rmtree(root)
    elif root.exists():
        raise FileExistsError(f"{root} exists and was not made by the demo; remove it or use --dir")
    (root / a.tree).mkdir(parents=True)
    (root / MARKER).write_text("scratch course written by `dlcourse demo`\n")
    shutil.copy(course.ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(a.source_dir, root / a.tree / ASSIGNMENT)
    if release.main([ASSIGNMENT], out=str(root / "release")) != 0:
        raise RuntimeError("dlcourse release failed")
    released = nbformat.read(root / "release" / ASSIGNMENT / source_nb.name, as_version=4)
    instructor = nbformat.read(source_nb, as_version=4)
    ref = weights.load_state_dict("intro1_mlp.pt")

    def submit(student: str, nb, sd) -> None:
        d = root / "submitted" / student / ASSIGNMENT
        d.mkdir(parents=True)
        nbformat.write(nb, d / source_nb.name)
        if sd is not None:
            torch.save(sd, d / "intro1_mlp.pt")

    submit("reference", instructor, ref)
    partial = nbformat.from_dict(instructor)
    ids, rel = _cells_by_id(partial), _cells_by_id(released)
    for gid in ("intro1_one_hot", "intro1_grad"):  # left as released: raise NotImplementedError
        partial.cells[ids[gid]] = released.cells[rel[gid]]
    submit("partial", partial, _noisy(ref, 0.6, seed=1))
    submit("broken", released, None)
    adversarial = nbformat.from_dict(instructor)
    adversarial.cells[_cells_by_id(adversarial)["intro1_mlp"]].source = ADVERSARY
    submit("adversarial", adversarial, _noisy(ref, 3.0, seed=2))
    return ["reference", "partial", "broken", "adversarial"]


def main(root: Path) -> int:
    t0 = time.perf_counter()
    root = Path(root).resolve()
    console = Console()  # the release (nbgrader generate_assignment) takes several seconds
    console.say(f"releasing {ASSIGNMENT} into {root}/release", doing="dlcourse release")
    try:
        students = layout(root)
        console.say(f"cohort of {len(students)} laid out in {root}/submitted "
                    f"({', '.join(students)})")  # fmt: skip
        console.close()
        reports = autograde.autograde(ASSIGNMENT, spec.load(ASSIGNMENT), root, jobs=2)
    except (FileExistsError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        console.close()
    print()
    print(autograde.table(reports))
    print()
    print(f"marks: {root}/grades/{ASSIGNMENT}/marks_with_notebook.csv (and gradebook.csv)")
    feedback = f"{root}/feedback/<student>/{ASSIGNMENT}/"
    print(f"feedback: {feedback} (report.html, nbgrader's HTML, isolated_tests.txt)")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    return 0
