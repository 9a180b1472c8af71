"""The student kit (`dlcourse student-kit DIR`): what students need, nothing they must not see.

Each leak is checked here on the built folder itself, independently of the builder's own audit:
instructor folders, staff-only modules, solution and hidden-test markers, reference weights, the
private test set's seed (the public checks and the push check: tests/test_public_checks.py,
tests/test_labts.py). The
slow tests then run every release notebook from the kit, with `dlcourse` resolving to the kit's
copy only (the repository's editable install is switched off in the kernel), so a module the
notebooks need but the kit lacks shows up as the ModuleNotFoundError a student would get.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from blank_exercises import unexplained_errors
from nbclient import NotebookClient

from dlcourse import cli, course, kit, weights
from dlcourse.grading import heldout

ASSESSED_REFERENCE_WEIGHTS = (
    "cw1_model.pt", "cw1_baseline.pt", "vae_model.pt", "gan_generator.pt", "gan_discriminator.pt",
    "intro1_mlp.pt",
)  # fmt: skip
MARKERS = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS", "BEGIN SOLUTION", "BEGIN HIDDEN TESTS")
RELEASE_NOTEBOOKS = sorted(p.relative_to(course.ROOT) for p in course.RELEASE.glob("*/*.ipynb"))
# Run from the kit below: all but the tutorials', which tests/test_tutorials.py runs under the
# same rule (no error but a blank exercise's), and whose imports the kit's audit resolves against
# the kit's own files (kit.check_imports); they load no course weights.
TUTORIALS = {a.name for a in course.assignments() if a.tree == "tutorials"}
KIT_RUNS = [p for p in RELEASE_NOTEBOOKS if p.parent.name not in TUTORIALS]

# Loaded before anything else in the kernel (PYTHONPATH): removes the import hook of the
# repository's editable install, which would otherwise supply any dlcourse module the kit lacks.
SHIELD = """import sys
import sysconfig
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", "").startswith("__editable__")]
"""
# Appended to each notebook: where every imported dlcourse module (and gpu_check) came from.
PROBE = """import json as _json, sys as _sys
print("KIT-MODULES " + _json.dumps({n: getattr(m, "__file__", None) for n, m in _sys.modules.items()
      if n == "dlcourse" or n.startswith("dlcourse.") or n == "gpu_check"}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return kit.build(tmp_path_factory.mktemp("kit") / "dlcourse-kit").path


@pytest.fixture(scope="module")
def kit_env(built, tmp_path_factory) -> dict[str, str]:
    """Environment in which `import dlcourse` can only find the kit's package."""
    shield = tmp_path_factory.mktemp("shield")
    (shield / "sitecustomize.py").write_text(SHIELD)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(shield), str(built)])
    env.pop("NBGRADER_EXECUTION", None)
    env.update(DLCOURSE_SMOKE="1", MPLBACKEND="Agg")
    return env


# What a blank release may raise: the exercises' NotImplementedError, the NameError of a name a
# blank exercise never got to define, and a self-check's AssertionError on a blank answer. Anything
# else (ModuleNotFoundError, ImportError, FileNotFoundError for data or weights, AttributeError of
# a dlcourse function the kit lacks, ...) means the kit is broken.
def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_kit_has_no_instructor_folders(built):
    for name in ("notebooks", "tutorials", "source", "grader_tests", "autograded", "tests"):
        assert not (built / name).exists(), name
    assert sorted(p.name for p in built.iterdir()) == [
        ".gitignore", ".gitlab-ci.yml", "README.md", "ci", "constraints.txt", "dlcourse",
        "gpu_check.py", "public_checks", "pyproject.toml", "release", "weights",
    ]  # fmt: skip
    assert sorted(p.name for p in (built / "ci").iterdir()) == ["push-check.sh", "released.sha256"]


def test_kit_has_no_solution_or_hidden_test_markers(built):
    leaks = [
        (str(p.relative_to(built)), m)
        for p in _files(built)
        for m in MARKERS
        if m.encode() in p.read_bytes()
    ]
    assert not leaks


def test_kit_has_no_reference_weights(built):
    repo_weights = {p.name: weights.sha256(p) for p in weights.WEIGHTS_DIR.glob("*.pt")}
    assert set(ASSESSED_REFERENCE_WEIGHTS) <= set(repo_weights)  # the list below is not stale
    forbidden = {sha: name for name, sha in repo_weights.items() if name not in kit.COURSE_WEIGHTS}
    for tree in (*course.SOURCE_TREES, "grader_tests"):  # weights kept beside the sources
        forbidden.update({weights.sha256(p): str(p) for p in (course.ROOT / tree).rglob("*.pt")})
    copies = {
        str(p.relative_to(built)): forbidden[h]
        for p in _files(built)
        if (h := hashlib.sha256(p.read_bytes()).hexdigest()) in forbidden
    }
    assert not copies
    names = {p.name for p in _files(built)}
    assert not names & set(ASSESSED_REFERENCE_WEIGHTS)


def test_kit_weights_are_the_course_weights_with_their_manifest(built):
    shipped = sorted(p.name for p in (built / "weights").iterdir())
    assert shipped == sorted([*kit.COURSE_WEIGHTS, "manifest.json"])
    files = json.loads((built / "weights" / "manifest.json").read_text())["files"]
    assert sorted(files) == sorted(kit.COURSE_WEIGHTS)
    for name, entry in files.items():
        assert weights.sha256(built / "weights" / name) == entry["sha256"]


def test_kit_package_is_student_only(built):
    pkg = built / "dlcourse"
    for name in ("reference", "release.py", "kit.py", "public_checks.py", "kit_template"):
        assert not (pkg / name).exists(), name
    assert {"data.py", "device.py", "metrics.py", "plots.py", "classifier.py", "weights.py"} <= {
        p.name for p in pkg.iterdir()
    }
    kit_cli = (pkg / "cli.py").read_text()
    assert "student-kit" not in kit_cli and "add_subcommands" not in kit_cli
    # The kit's own course.py: where its public checks are, and no instructor trees.
    assert (pkg / "course.py").read_bytes() == (kit.TEMPLATE_DIR / "course.py").read_bytes()
    assert "SOURCE_TREES" not in (pkg / "course.py").read_text()


def test_kit_ships_only_the_grading_engine(built):
    """`dlcourse validate` runs from the kit; nbgrader autograding, the gradebook, reports and
    Slurm stay staff-only."""
    shipped = sorted(p.name for p in (built / "dlcourse" / "grading").iterdir())
    assert shipped == sorted(kit.GRADING_ENGINE)
    for staff in ("autograde.py", "gradebook.py", "preprocessors.py", "feedback.py", "demo.py"):
        assert staff not in shipped, staff
    assert not (built / "public_checks" / "heldout.toml").exists()
    seed = str(heldout.seed())
    assert not [p for p in _files(built) if seed.encode() in p.read_bytes()]


def test_release_notebooks_are_all_present(built):
    in_kit = sorted(p.relative_to(built) for p in built.glob("release/*/*.ipynb"))
    assert in_kit == RELEASE_NOTEBOOKS
    assert {p.parts[1] for p in in_kit} >= {a.name for a in course.assignments()}
    for rel in RELEASE_NOTEBOOKS:
        assert (built / rel).read_bytes() == (course.ROOT / rel).read_bytes()
    # `dlcourse validate` and the push check know every released assignment
    checked = sorted(p.parent.name for p in built.glob("public_checks/*/assignment.toml"))
    assert checked == sorted({p.parts[1] for p in in_kit})


def test_kit_readme_and_pyproject(built):
    readme = (built / "README.md").read_text()
    for needle in ("gpu_check.py", "DLCOURSE_SMOKE=1", "pip install -c constraints.txt -e .",
                   "Colab", "SBATCH", "cw1_model.pt"):  # fmt: skip
        assert needle in readme, needle
    assert "@ASSIGNMENTS@" not in readme and "@BUILT_FROM@" not in readme
    pyproject = (built / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.10"' in pyproject  # below the repository's 3.11 (no nbgrader)
    assert "nbgrader" not in pyproject and "jinja2" not in pyproject
    assert '"psutil"' in pyproject and '"pytest"' in pyproject  # the sandbox, the plugin
    assert 'dlcourse = "dlcourse.cli:main"' in pyproject


def test_build_refuses_a_non_empty_folder_unless_forced(tmp_path, capsys):
    dest = tmp_path / "kit"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    assert cli.main(["student-kit", str(dest)]) == 1
    err = capsys.readouterr().err
    assert str(dest) in err and "--force" in err
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]  # untouched
    assert cli.main(["student-kit", str(dest), "--force"]) == 0
    assert not (dest / "notes.txt").exists() and (dest / "README.md").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kit"]  # no temporary folder left


def test_build_refuses_the_repository_itself():
    with pytest.raises(kit.KitError, match="course repository"):
        kit.build(course.ROOT, force=True)
    with pytest.raises(kit.KitError, match="copies"):
        kit.build(course.RELEASE / "kit")


def test_audit_names_a_leak(built, tmp_path):
    """The builder's own audit catches what the tests above check (it guards `dlcourse release`
    edits and new modules that the tests cannot foresee)."""
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    (leaky / "grader_tests").mkdir()
    (leaky / "cw1_model.pt").write_bytes((weights.WEIGHTS_DIR / "cw1_model.pt").read_bytes())
    (leaky / "dlcourse").mkdir()
    (leaky / "dlcourse" / "check.py").write_text("from dlcourse.reference import cw1\n")
    (leaky / "dlcourse" / "grading").mkdir()
    (leaky / "dlcourse" / "grading" / "gradebook.py").write_text("")
    (leaky / "answer.md").write_text("### BEGIN SOLUTION\n")
    (leaky / "notes.md").write_text(f"seed = {heldout.seed()}\n")
    problems = "\n".join(kit.audit(leaky))
    assert "grader_tests/ is an instructor folder" in problems
    assert "cw1_model.pt is a copy of the reference weights weights/cw1_model.pt" in problems
    assert "dlcourse/check.py imports dlcourse.reference, which the kit does not have" in problems
    assert "dlcourse/grading/gradebook.py is staff-only" in problems
    assert "answer.md contains a solution or hidden-test marker" in problems
    assert "notes.md holds the private test set's seed" in problems
    assert kit.audit(built) == []


@pytest.mark.slow
def test_kit_installs_in_place_and_imports_from_itself(built, tmp_path):
    """`pip install -c constraints.txt -e .` inside the kit, as its README says (into a fresh venv
    whose dependencies come from this one through a .pth file, so nothing is downloaded)."""
    copy = tmp_path / "dlcourse-kit"  # the install writes *.egg-info into the folder
    shutil.copytree(built, copy)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "main_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--ignore-installed", "-c", "constraints.txt", "-e", "."],
        cwd=copy, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    code = (
        "import importlib, pkgutil\n"
        "import dlcourse, gpu_check\n"
        "from dlcourse import classifier, weights\n"
        "for m in pkgutil.walk_packages(dlcourse.__path__, 'dlcourse.'):\n"
        "    # unavailable: mounted over modules graded code may not import; it raises by design\n"
        "    if m.name not in ('dlcourse.__main__', 'dlcourse.grading.unavailable'):\n"
        "        importlib.import_module(m.name)\n"
        "classifier.load_classifier()\n"
        "print(dlcourse.__file__, gpu_check.__file__, weights.WEIGHTS_DIR)\n"
    )
    run = subprocess.run(
        [python, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    pkg, gpu, weights_dir = map(Path, run.stdout.split())
    assert (pkg, gpu, weights_dir) == (
        copy / "dlcourse" / "__init__.py", copy / "gpu_check.py", copy / "weights",
    )  # fmt: skip
    dlcourse_cmd = venv / "bin" / "dlcourse"
    run = subprocess.run([dlcourse_cmd, "--help"], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "student-kit" not in run.stdout and "grade " not in run.stdout
    assert "validate" in run.stdout
    run = subprocess.run(
        [dlcourse_cmd, "validate", "--assignment", "nope", "."], cwd=tmp_path, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2 and "public_checks/nope/assignment.toml" in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("rel", KIT_RUNS, ids=[p.stem for p in KIT_RUNS])
def test_release_notebook_runs_from_the_kit(built, kit_env, rel, monkeypatch):
    """Blank exercises raise NotImplementedError; nothing else may fail (imports, data, weights)."""
    for key in ("PYTHONPATH", "DLCOURSE_SMOKE", "MPLBACKEND"):
        monkeypatch.setenv(key, kit_env[key])
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    path = built / rel
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    unexpected = unexplained_errors(nb)
    assert not unexpected, f"{rel} fails from the kit for another reason than a blank exercise"
    probe = next(
        o.text
        for o in nb.cells[-1].outputs
        if o.output_type == "stream" and "KIT-MODULES" in o.text
    )
    modules = json.loads(probe.split("KIT-MODULES ", 1)[1])
    assert {"dlcourse", "dlcourse.data", "dlcourse.device"} <= set(modules)
    outside = {n: f for n, f in modules.items() if not f or not Path(f).is_relative_to(built)}
    assert not outside, "imported from outside the kit"
