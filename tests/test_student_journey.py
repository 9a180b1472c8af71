"""A student follows the kit's README literally, from a fresh kit to a passing push check.

The other kit tests take convenient routes (`--python sys.executable --no-install`, the
repository's venv); here nothing is borrowed from this repository's environment: the commands
are read from the kit's README and .gitlab-ci.yml and run in bash as written, in a git
repository made from the kit, with a venv the README's own lines make and install:

1. `dlcourse student-kit DIR`, then `git init` there (the template of a student's repository);
2. the README's laptop block (venv, `pip install -c constraints.txt -e .`, `dlcourse data
   --download`; not `jupyter lab`, which waits for a person), with this machine's pip set-up
   (torch 2.14.1 from its local disk: the one download of the whole journey);
3. `python gpu_check.py`;
4. `dlcourse validate release/cw1 --assignment cw1 --junit report.xml` on the blank release
   (exit 1, the missing weight file said once) and on a tutorial (exit 0);
5. `bash ci/push-check.sh` with no options and the .gitlab-ci.yml variables, with the venv
   activated as section 6 says: Introduction I started with a weight file that does not fit
   (exit 1); then the README's batch nbconvert line runs that notebook, finished, in smoke mode
   (it trains and saves the weights), CW1 is finished (the instructor's notebook with the
   reference weights, as the other kit tests use it) and the push check passes (exit 0), which
   is `dlcourse validate` on a finished CW1. Neither push check installs anything: the venv's
   torch files are untouched and pip never runs.

It costs one venv with torch (about 6 GB, removed at the end) and about five minutes on a
2-core machine, most of it the install and CW1's timing of the model on 10,000 images.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from dlcourse import course, weights

yaml = pytest.importorskip("yaml")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="the journey starts with git init"),
]


def _block(readme: str, after: str) -> list[str]:
    """The lines of the first code block after `after`, comments dropped, continuations joined."""
    text = readme[readme.index(after) :]
    body = re.search(r"```\w*\n(.*?)```", text, re.S)
    assert body, f"no code block after {after!r} in the kit's README"
    lines = body.group(1).replace("\\\n", " ").splitlines()
    return [re.sub(r"\s+#.*$", "", line).strip() for line in lines if line.strip()]


def _clean_env() -> dict[str, str]:
    """This machine's environment without this repository's venv in it."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "NBGRADER_EXECUTION", "MPLBACKEND")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("DLCOURSE_")}
    ours = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != ours)
    return env


class Terminal:
    """The student's shell: each command runs in bash in `cwd`, after `activate` when set."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.activate = ""
        self.times: dict[str, float] = {}

    def run(self, name: str, script: str, expect: int = 0, **extra: str) -> str:
        t0 = time.monotonic()
        proc = subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{self.activate}{script}"],
            cwd=self.cwd, env={**self.env, **extra}, capture_output=True, text=True,
            timeout=1200,
        )  # fmt: skip
        self.times[name] = round(time.monotonic() - t0, 1)
        out = proc.stdout + proc.stderr
        assert proc.returncode == expect, f"{name}: exit {proc.returncode}, not {expect}:\n{out}"
        return out


def _torch_files(venv: Path) -> dict[str, str]:
    """sha256 of torch's dist-info files and of torch/__init__.py, with its mtime: a second
    install of torch changes them."""
    site = next(venv.glob("lib/python*/site-packages"))
    files = [*site.glob("torch-*.dist-info/*"), site / "torch" / "__init__.py"]
    assert len(files) > 2, f"no torch in {site}"
    found = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}
    found["mtime"] = str((site / "torch" / "__init__.py").stat().st_mtime_ns)
    return found


def _junit(path: Path) -> dict[str, str]:
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        kind = next((c.tag for c in case if c.tag in ("failure", "skipped")), "passed")
        cases[case.get("name")] = kind
    return cases


def test_a_student_follows_the_kit_readme(tmp_path):
    kit_dir = tmp_path / "dlcourse-kit"
    build = subprocess.run(
        [sys.executable, "-m", "dlcourse", "student-kit", kit_dir],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    readme = (kit_dir / "README.md").read_text()
    ci = yaml.safe_load((kit_dir / ".gitlab-ci.yml").read_text())
    term = Terminal(tmp_path, _clean_env())
    term.run(
        "git init",
        "cd dlcourse-kit && git init -q && git add -A && "
        "git -c user.name=s -c user.email=s@example.org commit -qm kit",
    )
    try:
        _journey(term, kit_dir, readme, ci)
    finally:
        shutil.rmtree(kit_dir / ".venv", ignore_errors=True)  # 6 GB
        print(f"journey step times (s): {term.times}")


def _journey(term: Terminal, kit_dir: Path, readme: str, ci: dict) -> None:
    laptop = _block(readme, "**Laptop or desktop**")
    assert laptop[0] == "cd dlcourse-kit" and "pip install -c constraints.txt -e ." in laptop
    install = [line for line in laptop if not line.startswith("jupyter lab")]
    out = term.run("install (README, laptop)", "\n".join(install))
    assert (kit_dir / ".venv" / "bin" / "dlcourse").is_file(), out
    assert "Fashion-MNIST at" in out  # `dlcourse data --download`
    term.cwd = kit_dir
    term.activate = "source .venv/bin/activate\n"
    before = _torch_files(kit_dir / ".venv")

    out = term.run("gpu_check", _block(readme, "## 2. Check your machine")[0])
    assert torch.__version__.split("+")[0] in out and "Speed on" in out

    validate = _block(readme, "## 5. Check a submission")[0]
    assert validate == "dlcourse validate release/cw1 --assignment cw1 --junit report.xml"
    out = term.run("validate blank cw1", validate, expect=1)
    assert "NOT READY: release/cw1 for cw1" in out and out.count("cw1_model.pt is missing") == 1
    assert "missing weight file" not in out and "graded with --unsandboxed" not in out
    tutorial = next(a.name for a in course.assignments() if a.tree == "tutorials")
    out = term.run("validate a tutorial", validate.replace("cw1", tutorial).split(" --junit")[0])
    assert f"OK: release/{tutorial}" in out and "PASS  definitions load" in out

    push = "bash ci/push-check.sh"
    assert f"`{push}`" in readme and ci["push-check"]["script"] == [f"{push} --reports ci-reports"]
    variables = {
        k: str(v).replace("$CI_PROJECT_DIR", str(kit_dir)) for k, v in ci["variables"].items()
    }
    variables["CI_PROJECT_DIR"] = str(kit_dir)
    assert variables["DLCOURSE_PYTHON"] == ""  # the path every push takes

    intro = kit_dir / "release" / "pytorch_intro_1"
    shutil.copy(course.get("pytorch_intro_1").source_dir / "pytorch_intro_1.ipynb", intro)
    torch.save({"fc.weight": torch.zeros(3, 3)}, intro / "intro1_mlp.pt")  # does not fit MLP
    out = term.run("push check, a broken submission", push, expect=1, **variables)
    assert "using the activated venv" in out and "nothing to install" in out, out
    assert "FAILED" in out and "does not fit MLP" in out
    assert _junit(kit_dir / "ci-reports" / "pytorch_intro_1.xml")[
        "test_mlp::test_weights_load_strictly"
    ] == "failure"  # fmt: skip

    slurm = _block(readme, "run a notebook as a batch job")
    nbconvert = next(line for line in slurm if line.startswith("jupyter nbconvert"))
    assert nbconvert.endswith(" release/cw1/cw1.ipynb")
    nbconvert = nbconvert.replace(
        "release/cw1/cw1.ipynb", f"release/{intro.name}/{intro.name}.ipynb"
    )
    out = term.run("nbconvert, smoke mode", nbconvert, DLCOURSE_SMOKE="1")
    assert "without encryption" not in out, out
    trained = torch.load(intro / "intro1_mlp.pt", weights_only=True)  # saved by the smoke run
    reference = torch.load(weights.WEIGHTS_DIR / "intro1_mlp.pt", weights_only=True)
    assert {k: v.shape for k, v in trained.items()} == {k: v.shape for k, v in reference.items()}

    shutil.copy(course.get("cw1").source_dir / "cw1.ipynb", kit_dir / "release" / "cw1")
    shutil.copy(weights.WEIGHTS_DIR / "cw1_model.pt", kit_dir / "release" / "cw1")
    out = term.run("push check, finished cw1 and intro", push, **variables)
    assert "OK: release/cw1 for cw1" in out and "OK: release/pytorch_intro_1" in out
    assert "push check: cw1 pytorch_intro_1: passed" in out
    assert "installing the kit" not in out and "Collecting" not in out
    assert set(_junit(kit_dir / "ci-reports" / "cw1.xml").values()) == {"passed"}
    assert _torch_files(kit_dir / ".venv") == before  # no second torch install

    status = term.run("git status", "git status --porcelain --ignored")
    ignored = {line[3:] for line in status.splitlines() if line.startswith("!! ")}
    assert {"report.xml", "ci-reports/", ".venv/"} <= ignored, status
