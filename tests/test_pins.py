"""The pinned versions (constraints.txt) install on every Python the kit supports, and the
CPU-only route of the kit's README stays on the pinned torch.

The kit promises Python 3.10 to 3.13; its newest pins need 3.11 (soupsieve 3.11.5), so
constraints.txt pins older releases for the older Pythons by environment markers. Here pip
resolves the kit's dependencies (and, from 3.11 on, the course repository's too) against the
package index for each Python found on this machine, as `pip install -c constraints.txt -e .`
would, without installing anything: `--dry-run --ignore-installed --report`. The index here
serves no separate metadata files, so pip's lazy wheels (`fast-deps`, HTTP range requests) read
each wheel's metadata instead of downloading 2.6 GB of wheels per Python. This venv's pip runs
under each interpreter (it supports 3.10 and newer), so the answer does not depend on how old
the pip bundled with each is. Each test says why when it cannot run: no interpreter of that
version, or no package index reachable.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pip
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from dlcourse import course, kit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the repository needs 3.11
    import tomli as tomllib

CONSTRAINTS = course.ROOT / "constraints.txt"
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
PINNED = {"torch": "2.14.1", "torchvision": "0.29.1"}
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
NETWORK_ERRORS = r"NewConnectionError|Failed to establish|name resolution|timed out|ProxyError"


def _version(python: Path) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return tuple(map(int, out.stdout.split())) if out.returncode == 0 else None


def _interpreters(minor: str) -> list[tuple[tuple[int, ...], Path]]:
    """Every Python `minor` found here (pyenv's versions, /usr/bin, /usr/local/bin, PATH)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [*pyenv.glob(f"{minor}.*/bin/python{minor}")]
    candidates += [Path(d) / f"python{minor}" for d in ("/usr/bin", "/usr/local/bin")]
    found = {}
    for path in candidates:
        if path.is_file() and (v := _version(path)) and v[:2] == tuple(map(int, minor.split("."))):
            found[v] = path
    return sorted(found.items())


def _pip_env(tmp_path: Path) -> dict[str, str]:
    """This venv's pip, for any interpreter; no pip configuration of this machine (local
    indexes, find-links, caps): the package index as a student's pip sees it."""
    pipdir = tmp_path / "pip-only"
    pipdir.mkdir(exist_ok=True)
    if not (pipdir / "pip").exists():
        (pipdir / "pip").symlink_to(Path(pip.__file__).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update(
        PYTHONPATH=str(pipdir), PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1", PIP_DEFAULT_TIMEOUT="60",
        # Debian's Python refuses pip (PEP 668) even for a dry run, which changes nothing
        PIP_BREAK_SYSTEM_PACKAGES="1",
    )  # fmt: skip
    return env


def _requirements(staff: bool) -> list[str]:
    """What `pip install -e .` asks for: the kit's dependencies (kit.kit_pyproject), and with
    `staff` the course repository's `.[dev]` as well."""
    reqs = tomllib.loads(kit.kit_pyproject())["project"]["dependencies"]
    if staff:
        project = tomllib.loads((course.ROOT / "pyproject.toml").read_text())["project"]
        reqs += project["dependencies"] + project["optional-dependencies"]["dev"]
    return sorted(set(reqs))


def _pins() -> list[Requirement]:
    lines = (line.split("#")[0].strip() for line in CONSTRAINTS.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def _index_reachable(tmp_path: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
         "-q", "--retries", "0", "packaging"],
        env=_pip_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if probe.returncode != 0 and re.search(NETWORK_ERRORS, probe.stderr):
        pytest.skip(f"no package index reachable: {probe.stderr.strip()[-300:]}")
    assert probe.returncode == 0, f"pip cannot run: {probe.stderr[-2000:]}"


def _resolve(python: Path, reqs: list[str], tmp_path: Path) -> tuple[int, str, dict]:
    """(pip's exit code, its stderr, its report) for installing `reqs` with `python`."""
    report = tmp_path / f"report-{python.name}.json"
    run = subprocess.run(
        [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
         "--use-feature=fast-deps", "--report", report, "-c", CONSTRAINTS, *reqs],
        env=_pip_env(tmp_path), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    return run.returncode, run.stderr, json.loads(report.read_text()) if report.is_file() else {}


def _check(python: Path, version: tuple[int, ...], code: int, stderr: str, report: dict) -> None:
    """Everything pip would install is pinned for that Python, torch and torchvision as
    everywhere."""
    assert code == 0, f"{python}: the pinned set does not resolve:\n{stderr[-3000:]}"
    environment = report["environment"]
    assert environment["python_full_version"] == ".".join(map(str, version))
    installed = {
        canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
        for i in report["install"]
    }
    for name, want in PINNED.items():
        assert installed[name] == want, (python, name)
    pins = {
        canonicalize_name(r.name): next(iter(r.specifier)).version
        for r in _pins()
        if r.marker is None or r.marker.evaluate(environment)
    }
    unpinned = {n: v for n, v in installed.items() if n not in pins}
    assert not unpinned, f"{python}: resolved but not pinned in constraints.txt: {unpinned}"
    differ = {n: (v, pins[n]) for n, v in installed.items() if v != pins[n]}
    assert not differ, (python, differ)


@pytest.mark.slow
@pytest.mark.parametrize("minor", SUPPORTED)
def test_the_pinned_set_resolves(minor, tmp_path):
    """On the oldest patch release found (Debian 12's 3.11.2 is older than soupsieve's 3.11.5).
    About 20 s each, most of it waiting on the index (running them at once was no faster)."""
    found = _interpreters(minor)
    if not found:
        pytest.skip(f"no Python {minor} here (looked in pyenv, /usr/bin, /usr/local/bin)")
    _index_reachable(tmp_path)
    version, python = found[0]
    _check(python, version, *_resolve(python, _requirements(staff=version >= (3, 11)), tmp_path))


def test_each_package_has_one_pin_per_python():
    """Two lines for one package must split the Pythons between them by markers."""
    versions = ["3.10.13", "3.11.2", "3.11.7", "3.12.1", "3.13.0"]
    for full in versions:
        env = {"python_version": full.rsplit(".", 1)[0], "python_full_version": full}
        names = [
            canonicalize_name(r.name) for r in _pins() if not r.marker or r.marker.evaluate(env)
        ]
        assert len(names) == len(set(names)), {n for n in names if names.count(n) > 1}
        assert all(len(r.specifier) == 1 and str(r.specifier).startswith("==") for r in _pins())


def test_the_floors_are_stated_where_pip_reads_them():
    """pip refuses a Python outside requires-python before it downloads anything."""
    kit_floor = SpecifierSet(tomllib.loads(kit.kit_pyproject())["project"]["requires-python"])
    repo = tomllib.loads((course.ROOT / "pyproject.toml").read_text())["project"]
    assert "3.9.18" not in kit_floor and all(f"{m}.0" in kit_floor for m in SUPPORTED)
    assert "3.10.13" not in SpecifierSet(repo["requires-python"])  # nbgrader 0.9.6 needs 3.11
    readme = (kit.TEMPLATE_DIR / "README.md").read_text()
    assert f"Python {SUPPORTED[0]} to {SUPPORTED[-1]}" in readme


def _wheel(index: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """A minimal wheel in a PEP 503 simple index at `index`."""
    dist = f"{name.replace('-', '_')}-{version}"  # a wheel's name has no dashes
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    folder = index / name
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", meta)
        z.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
        z.writestr(f"{dist}.dist-info/RECORD", "")
    links = "".join(f'<a href="{w.name}">{w.name}</a>\n' for w in sorted(folder.glob("*.whl")))
    (folder / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")


def _chosen(tmp_path: Path, *index_args: str) -> dict[str, str]:
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
         "--report", report, *index_args, "-c", CONSTRAINTS, "torch"],
        env=_pip_env(tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    installed = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"]: i["metadata"]["version"] for i in installed}


def test_the_cpu_route_keeps_the_pinned_torch(tmp_path):
    """The README's CPU-only line adds PyTorch's CPU index to PyPI: there `torch==2.14.1+cpu`
    satisfies the pin `torch==2.14.1` (PEP 440 ignores a local label when the pin has none),
    and pip takes it over the CUDA build. Checked with pip's own resolver on two local indexes
    standing in for PyPI (a torch that needs a CUDA library) and the CPU index."""
    pypi, cpu = tmp_path / "pypi", tmp_path / "cpu"
    _wheel(pypi, "torch", PINNED["torch"], ("nvidia-stand-in==1.0",))
    _wheel(pypi, "nvidia-stand-in", "1.0")
    _wheel(cpu, "torch", f"{PINNED['torch']}+cpu")
    assert re.search(r"^torch==2\.14\.1$", CONSTRAINTS.read_text(), re.M)  # the pin, unmarked
    plain = _chosen(tmp_path, "--index-url", pypi.as_uri())
    assert plain == {"torch": PINNED["torch"], "nvidia-stand-in": "1.0"}
    cpu_route = _chosen(tmp_path, "--index-url", pypi.as_uri(), "--extra-index-url", cpu.as_uri())
    assert cpu_route == {"torch": f"{PINNED['torch']}+cpu"}  # no CUDA library
    assert SpecifierSet(f"=={PINNED['torch']}").contains(f"{PINNED['torch']}+cpu")


def test_the_cpu_index_serves_the_pinned_torch(tmp_path):
    """Against the real CPU index, where it can be reached."""
    host = CPU_INDEX.split("/")[2]
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        pytest.skip(f"{host} is not reachable from here ({exc}); see the local stand-in test")
    chosen = _chosen(tmp_path, "--no-deps", "--use-feature=fast-deps", "--index-url", CPU_INDEX)
    assert chosen["torch"] == f"{PINNED['torch']}+cpu"
