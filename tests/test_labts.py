"""The push check of the students' repositories (LabTS): .gitlab-ci.yml and ci/push-check.sh.

A student's repository is made here from a built kit (a git repository, as LabTS holds it) with
a submission in it. Most tests run the script on an interpreter that already has torch (as the
course's runner image does: `--python`, `--no-install`), so nothing is installed or downloaded;
the paths a student takes with no options (a venv in use, a relative `--python`) run here on a
stand-in for that venv, and tests/test_student_journey.py runs the script as shipped in a venv
made by the kit's README. The kit's `dlcourse` is the only one importable: its folder comes
first on the path and the course repository's editable install is switched off, as in
tests/test_student_kit.py. pytorch_intro_1 is the assignment: its public checks are the
cheapest (no 10,000 images).
"""

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from dlcourse import course, kit, weights
from dlcourse.grading.sandbox import BWRAP, bwrap_works

ASSIGNMENT = "pytorch_intro_1"
SHIELD = """import sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", "").startswith("__editable__")]
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the push check is bash")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return kit.build(tmp_path_factory.mktemp("kit") / "dlcourse-kit").path


@pytest.fixture(scope="module")
def shield(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shield")
    (folder / "sitecustomize.py").write_text(SHIELD)
    return folder


def _repository(built: Path, where: Path, weight_file: Path | None) -> Path:
    """A student's repository: the kit as published, then their work on one assignment."""
    repo = where / "student-repo"
    shutil.copytree(built, repo)
    if shutil.which("git"):
        git = ["git", "-C", str(repo), "-c", "user.name=s", "-c", "user.email=s@example.org"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "kit"], check=True)
    folder = repo / "release" / ASSIGNMENT
    shutil.copy(course.get(ASSIGNMENT).source_dir / f"{ASSIGNMENT}.ipynb", folder)
    if weight_file is not None:
        shutil.copy(weight_file, folder / "intro1_mlp.pt")
    return repo


def _push_check(repo: Path, shield: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLCOURSE_")}
    env.update(extra, PYTHONPATH=f"{shield}:{repo}")
    cmd = ["bash", "ci/push-check.sh", "--python", sys.executable, "--no-install", *args]
    return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)


def _wrapper(path: Path) -> Path:
    """An executable at `path` that is this venv's Python (which has torch and the kit's
    dependencies), as a student's .venv/bin/python would be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    path.chmod(0o755)
    return path


def _junit(path: Path) -> dict[str, str]:
    """testcase name -> "passed", "failed" or "skipped"."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        kind = next((c.tag for c in case if c.tag in ("failure", "skipped")), "passed")
        cases[case.get("name")] = {"failure": "failed"}.get(kind, kind)
    return cases


def _says_sandbox(out: str) -> None:
    if bwrap_works():
        assert "sandbox: your code runs in bubblewrap" in out
    else:
        assert "NOT SANDBOXED" in out


def test_the_kit_holds_the_push_check(built):
    yaml = pytest.importorskip("yaml")
    job = yaml.safe_load((built / ".gitlab-ci.yml").read_text())["push-check"]
    assert job["script"] == ["bash ci/push-check.sh --reports ci-reports"]
    assert job["artifacts"]["reports"]["junit"] == "ci-reports/*.xml"
    assert job["artifacts"]["when"] == "always"  # the report of a failed check too
    script = built / "ci" / "push-check.sh"
    assert script.stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", script]).returncode == 0
    released = (built / "ci" / "released.sha256").read_text().splitlines()
    assert f"{weights.sha256(built / 'release' / 'cw1' / 'cw1.ipynb')}  release/cw1/cw1.ipynb" in (
        released
    )


def test_a_good_submission_passes(built, shield, tmp_path):
    repo = _repository(built, tmp_path, weights.WEIGHTS_DIR / "intro1_mlp.pt")
    run = _push_check(repo, shield)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert f"OK: release/{ASSIGNMENT} for {ASSIGNMENT}" in out and "push check" in out
    _says_sandbox(out)
    cases = _junit(repo / "ci-reports" / f"{ASSIGNMENT}.xml")
    assert cases and set(cases.values()) == {"passed"}, cases
    assert _junit(repo / "ci-reports" / "sandbox.xml") == {
        "sandbox": "passed" if bwrap_works() else "skipped"
    }


def test_a_broken_submission_fails_and_says_why(built, shield, tmp_path):
    wrong = tmp_path / "wrong.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong)  # not MLP(hidden=256)'s parameters
    repo = _repository(built, tmp_path, wrong)
    run = _push_check(repo, shield)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert f"NOT READY: release/{ASSIGNMENT}" in out and "does not fit MLP" in out
    assert "FAILED" in out
    cases = _junit(repo / "ci-reports" / f"{ASSIGNMENT}.xml")
    assert cases["test_mlp::test_weights_load_strictly"] == "failed"


def test_nothing_started_passes_and_says_so(built, shield, tmp_path):
    repo = tmp_path / "blank"
    shutil.copytree(built, repo)
    run = _push_check(repo, shield)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "nothing to check yet" in run.stdout
    assert _junit(repo / "ci-reports" / "started.xml") == {"started": "skipped"}
    run = _push_check(repo, shield, "nope")
    assert run.returncode == 2 and "no public checks for nope" in run.stderr
    run = _push_check(repo, shield, DLCOURSE_REQUIRE_SANDBOX="1")
    if bwrap_works():
        assert run.returncode == 0 and "NOT SANDBOXED" not in run.stdout
    else:  # the runner asked for containment and cannot have it: the check fails, saying why
        assert run.returncode == 2 and "NOT SANDBOXED" in run.stdout
        assert "DLCOURSE_REQUIRE_SANDBOX=1" in run.stderr


def test_the_kit_has_no_private_test_set_only_a_stand_in(built, shield):
    """In the kit there is no seed: the check that times 10,000 images gets noise images."""
    code = (
        "from dlcourse.grading import heldout\n"
        "s = heldout.private_test_split()\n"
        "assert heldout.in_student_kit() and s.x.shape == (10000, 1, 28, 28)\n"
        "assert s is heldout.stand_in_split()\n"
        "try:\n    heldout.seed()\nexcept FileNotFoundError as exc:\n    print('no seed:', exc)\n"
    )
    env = {"PYTHONPATH": f"{shield}:{built}", "DLCOURSE_DATA": "/nonexistent", "PATH": "/usr/bin"}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "no seed:" in run.stdout and "public_checks/heldout.toml is missing" in run.stdout


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or not Path(BWRAP).exists(),
    reason="hides bubblewrap in a mount namespace of its own: needs root, unshare and bubblewrap",
)
def test_without_a_sandbox_the_check_says_so(built, shield, tmp_path):
    """A runner where bubblewrap cannot run (here: /dev/null bound over it, for this process
    only) says NOT SANDBOXED in the log and in the JUnit report, and fails where it must not."""
    repo = tmp_path / "blank"
    shutil.copytree(built, repo)
    hide = f'mount --bind /dev/null {BWRAP} && exec "$@"'
    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c", hide, "sh"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLCOURSE_")}
    env["PYTHONPATH"] = f"{shield}:{repo}"
    cmd = [*wrap, "bash", "ci/push-check.sh", "--python", sys.executable, "--no-install"]
    run = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "NOT SANDBOXED: bubblewrap cannot build its sandbox" in run.stdout
    assert _junit(repo / "ci-reports" / "sandbox.xml") == {"sandbox": "skipped"}
    assert "NOT SANDBOXED" in (repo / "ci-reports" / "sandbox.xml").read_text()
    env["DLCOURSE_REQUIRE_SANDBOX"] = "1"
    run = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "DLCOURSE_REQUIRE_SANDBOX=1" in run.stderr


def test_a_relative_python_path_works(built, shield, tmp_path):
    """`--python .venv/bin/python` once failed: the script asked it from / (exit 2)."""
    repo = _repository(built, tmp_path, weights.WEIGHTS_DIR / "intro1_mlp.pt")
    _wrapper(repo / ".venv" / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLCOURSE_")}
    env.update(PYTHONPATH=f"{shield}:{repo}")
    cmd = ["bash", "ci/push-check.sh", "--python", ".venv/bin/python", "--no-install"]
    run = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"OK: release/{ASSIGNMENT} for {ASSIGNMENT}" in run.stdout


@pytest.mark.parametrize("how", ["VIRTUAL_ENV", "PATH"])
def test_a_venv_in_use_is_used_as_it_is(built, shield, tmp_path, how):
    """No options, as a student runs it with the kit's venv activated (or only its bin/ first on
    PATH): that venv runs the checks, and with the kit already installed from this folder
    nothing is installed (no .ci-venv over the base Python, no second torch)."""
    repo = _repository(built, tmp_path, weights.WEIGHTS_DIR / "intro1_mlp.pt")
    venv = tmp_path / "venv"
    _wrapper(venv / "bin" / "python")
    _wrapper(venv / "bin" / "python3")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env = {k: v for k, v in env.items() if not k.startswith("DLCOURSE_")}
    env.update(PYTHONPATH=f"{shield}:{repo}", PATH=f"{venv / 'bin'}:/usr/bin:/bin")
    if how == "VIRTUAL_ENV":
        env["VIRTUAL_ENV"] = str(venv)
    run = subprocess.run(
        ["bash", "ci/push-check.sh"], cwd=repo, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert ("using the activated venv" if how == "VIRTUAL_ENV" else "using the venv of") in out
    assert "the kit is installed for" in out and "nothing to install" in out
    assert "installing the kit" not in out and not (repo / ".ci-venv").exists()
    assert f"OK: release/{ASSIGNMENT} for {ASSIGNMENT}" in out


def test_a_tutorial_is_checked_once_started(built, shield, tmp_path):
    """Every released assignment has checks now, a tutorial's too (its notebook loads in the
    grader's process), so a started tutorial is checked on push."""
    repo = tmp_path / "repo"
    shutil.copytree(built, repo)
    name = next(a.name for a in course.assignments() if a.tree == "tutorials")
    nb = repo / "release" / name / f"{name}.ipynb"
    nb.write_text(nb.read_text().replace("raise NotImplementedError()", "pass", 1))
    run = _push_check(repo, shield)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert f"{name}: dlcourse validate release/{name}" in out
    assert "PASS  definitions load in the grader's process" in out
    assert set(_junit(repo / "ci-reports" / f"{name}.xml").values()) == {"passed"}
