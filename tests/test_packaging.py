"""A regular (non-editable) install of the wheel works: every subpackage and template is in it.

`packages = ["dlcourse"]` once built a wheel without dlcourse.grading and dlcourse.reference, and
the installed `dlcourse` command failed on import; the repository's own editable install hid
that. Here the wheel is built from a copy of the sources, installed into a fresh venv whose
dependencies (torch, pytest, ...) come from this venv through a .pth file (nothing is
downloaded), and its `dlcourse` command grades the toy fixture.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from dlcourse import course

FIXTURES = course.ROOT / "tests" / "fixtures" / "grading"
SOURCES = ("pyproject.toml", "README.md", "gpu_check.py", "dlcourse")
PIP_ENV = {"PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy so that build/ and *.egg-info never land in the checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = course.ROOT / name
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    env = {**os.environ, **PIP_ENV}
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", tmp / "dist", src],
        cwd=tmp, env=env,
    )  # fmt: skip
    (found,) = (tmp / "dist").glob("dlcourse-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel; its dependencies are this venv's, via a .pth file.

    A .pth line only appends a folder to sys.path (the .pth files in that folder are not run), so
    the repository's editable install of dlcourse stays inactive there, and the venv's own
    site-packages comes first.
    """
    root = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", root])
    python = root / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                   .stdout.strip())  # fmt: skip
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "main_venv.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    # --ignore-installed: pip sees this venv's editable dlcourse through the .pth and must
    # neither skip the wheel nor try to uninstall that one.
    _run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
         "--no-warn-script-location", "-q", wheel],
        env={**os.environ, **PIP_ENV}, cwd=root.parent,
    )  # fmt: skip
    return root


def _venv_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("NBGRADER_EXECUTION", None)
    return env


@pytest.mark.slow
def test_wheel_holds_every_subpackage_and_the_kit_templates(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "dlcourse/__init__.py", "dlcourse/cli.py", "dlcourse/grading/worker.py",
        "dlcourse/grading/plugin.py", "dlcourse/reference/__init__.py", "dlcourse/kit.py",
        "dlcourse/kit_template/cli.py", "dlcourse/kit_template/README.md", "gpu_check.py",
        "dlcourse/kit_template/course.py", "dlcourse/kit_template/gitlab-ci.yml",
        "dlcourse/kit_template/push-check.sh", "dlcourse/kit_template/gitignore",
        "dlcourse/public_checks.py", "dlcourse/grading/grader_process.py",
        "dlcourse/grading/templates/report.html.j2",
    ):  # fmt: skip
        assert required in names, required
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


@pytest.mark.slow
def test_installed_wheel_runs_dlcourse_validate(venv, tmp_path):
    env = _venv_env(venv)
    where = _run(
        [venv / "bin" / "python", "-c",
         "import dlcourse, dlcourse.grading.worker, dlcourse.reference, dlcourse.kit; "
         "print(dlcourse.__file__)"],
        env=env, cwd=tmp_path,
    ).stdout.strip()  # fmt: skip
    installed = Path(where).resolve()
    assert installed.is_relative_to(venv.resolve()) and "site-packages" in installed.parts
    assert not installed.is_relative_to(course.ROOT.resolve())

    assert "validate" in _run([venv / "bin" / "dlcourse", "--help"], env=env, cwd=tmp_path).stdout
    proc = _run(
        [venv / "bin" / "dlcourse", "validate", FIXTURES / "submissions" / "good",
         "--assignment", "toy", "--tests", FIXTURES / "toy_tests", "--unsandboxed"],
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert "OK:" in proc.stdout
