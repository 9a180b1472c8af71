"""Grade submissions: one grader process (pytest + plugin) per submission, N at a time.

A separate grader process per submission keeps test modules, caches and any crash of one
submission's grading away from the others; inside it, one student worker serves every test.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from dlcourse import weights
from dlcourse.grading import grader_process, results, submission
from dlcourse.grading.results import GradingResults
from dlcourse.grading.sandbox import require_sandbox
from dlcourse.grading.spec import Spec

GRADER_SLACK_S = 120  # grader-side start-up and metrics on top of the student's wall budget
GRADER_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    # No pytest plugins from entry points (benchmark, xdist, anyio...): the hidden tests use only
    # ours, and importing the others cost every grader process time.
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    # One thread, as in the student's worker: the grader's tensors are small, and on 2 cores
    # torch's second thread spun idle for 1 CPU s per submission (more with more cores).
    # Parallel grading comes from --jobs. Results no longer depend on the machine's core count.
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


def submission_id(path: Path, assignment: str) -> str:
    """`alice` for submitted/alice/<assignment>/, else the folder's own name (always text)."""
    path = Path(path).absolute()
    return submission.display_name(path.parent.name if path.name == assignment else path.name)


def _intake(folder: Path, spec: Spec) -> str | None:
    """Why this folder cannot be graded at all, or None."""
    if not folder.is_dir():
        return f"{submission.display_name(folder)} is not a folder"
    return "; ".join(submission.problems(folder, spec.notebook, spec.weights)) or None


def _weight_hashes(folder: Path, spec: Spec) -> dict[str, str]:
    return {w: weights.sha256(folder / w) for w in spec.weights if (folder / w).is_file()}


SHARED_WEIGHTS = " is identical to the weights submitted by "


def _reference_flags(hashes: dict[str, str]) -> list[str]:
    """Submitted weight files identical to one of the course's own (weights/manifest.json)."""
    known = {entry["sha256"]: name for name, entry in weights.manifest().items()}
    return [
        f"{file} is identical to the course's reference file weights/{known[h]}"
        for file, h in hashes.items()
        if h in known
    ]


def grade_submission(
    folder: Path,
    spec: Spec,
    out_dir: Path,
    sandbox: bool = True,
    public_only: bool = False,
    progress: Callable[[dict], None] | None = None,
) -> GradingResults:
    """Run the hidden (or only the public) tests on one submission; write results and summary.
    `progress` is called with {"collected": n}, then {"start": name} and {"test", "outcome",
    "output"} for each test as it starts and finishes (from another thread)."""
    folder = Path(folder).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    graded = GradingResults(spec.name, submission.display_name(folder), sandboxed=sandbox)
    title = f"{spec.name} - {submission_id(folder, spec.name)}"
    rejected = _intake(folder, spec)
    if rejected:
        graded.failure = f"submission refused: {rejected}"
        graded.write(out_dir, title)
        return graded
    graded.fingerprint = submission.fingerprint(folder)
    hashes = graded.weights_sha256 = _weight_hashes(folder, spec)
    raw = out_dir / ".results.partial.json"
    raw.unlink(missing_ok=True)
    cmd = [
        str(spec.tests_dir),
        "-p", "dlcourse.grading.plugin", "-p", "no:cacheprovider", "-p", "no:xdist",
        "-p", "no:unraisableexception",  # its gc.collect() x 5 at exit cost 0.4 CPU s
        "--import-mode=importlib", "--rootdir", str(spec.tests_dir), "-o", "addopts=",
        "--confcutdir", str(spec.tests_dir),
        "-q", "--no-header", "-rN", "--tb=short",
        "--assignment", spec.name, "--submission", str(folder),
        "--results", str(raw),
    ]  # fmt: skip
    if public_only:
        cmd.append("--public-only")
    if not sandbox:
        cmd.append("--no-sandbox")
    env = {**os.environ, **GRADER_ENV}
    env.pop("NBGRADER_EXECUTION", None)
    timeout = spec.limits.wall_s + GRADER_SLACK_S
    follower = _Follower(out_dir / ".progress.jsonl", progress) if progress else None
    if follower:
        cmd += ["--progress", str(follower.path)]
        follower.start()
    try:
        code, log = grader_process.run_pytest(cmd, env, out_dir, timeout)
    finally:
        if follower:
            follower.stop()
    if code is None:
        log = f"grader timed out after {timeout:g} s"
    results.write_atomic(out_dir / "grader.log", log)  # staff only: may show test code
    if raw.is_file():  # the grader process tells the tests; what it ran on is known here
        run = GradingResults.read(raw)
        graded.tests, graded.notes, graded.timings = run.tests, run.notes, run.timings
        raw.unlink()
    else:
        tail = log.strip().splitlines()[-1:] or ["no output"]
        graded.failure = f"the grader could not run ({tail[0][:300]})"
    graded.add_flags(_reference_flags(hashes))
    graded.write(out_dir, title)
    return graded


class _Follower(threading.Thread):
    """Passes each JSON line the grader process appends to `path` on to `callback`."""

    def __init__(self, path: Path, callback: Callable[[dict], None]) -> None:
        super().__init__(daemon=True)
        self.path, self.callback = path, callback
        path.unlink(missing_ok=True)
        self.done = threading.Event()
        self.offset = 0

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.read()
        self.read()

    def read(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            self.callback(json.loads(line))

    def stop(self) -> None:
        self.done.set()
        self.join()
        self.path.unlink(missing_ok=True)


def grade_cached(folder: Path, spec: Spec, out_dir: Path, sandbox: bool = True) -> GradingResults:
    """The results in out_dir if they were computed for this very submission, else grade it."""
    path = out_dir / "results.json"
    if path.is_file():
        cached = GradingResults.read(path)
        if cached.sandboxed == sandbox and cached.fingerprint == (
            submission.fingerprint(folder) if Path(folder).is_dir() else None
        ):
            return cached
    return grade_submission(folder, spec, out_dir, sandbox)


def cohort_ids(submissions: list[Path], assignment: str) -> dict[str, Path]:
    """A distinct id per distinct folder (`alice`, `alice-2`...); a folder given twice once."""
    ids: dict[str, Path] = {}
    seen: set[Path] = set()
    for s in submissions:
        path = Path(s).absolute()
        key = path.resolve() if path.exists() else path
        if key in seen:
            continue
        seen.add(key)
        base = submission_id(path, assignment)
        sid, n = base, 1
        while sid in ids:
            n += 1
            sid = f"{base}-{n}"
        ids[sid] = path
    return ids


def grade_many(
    submissions: list[Path],
    spec: Spec,
    out: Path,
    jobs: int = 1,
    force: bool = False,
    sandbox: bool = True,
    progress: bool = True,
) -> dict[str, GradingResults]:
    """Grade into out/<id>/ (reusing results of unchanged submissions unless `force`), then
    flag weight files shared between students and write out/marks.csv, each submission's
    report.html and out/cohort.html.

    Every folder gets a row: one that cannot be graded gets its reason, never a crash.
    Raises SandboxUnavailable up front when a sandbox is asked for and cannot be built.
    """
    if sandbox:
        require_sandbox()
    ids = cohort_ids(submissions, spec.name)
    grade = grade_submission if force else grade_cached
    bar = tqdm(total=len(ids), desc=f"grading {spec.name}", file=sys.stdout, disable=not progress)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(grade, p, spec, out / i, sandbox): i for i, p in ids.items()}
        cohort: dict[str, GradingResults] = {}
        for f in as_completed(futures):
            cohort[futures[f]] = f.result()
            bar.update()
    bar.close()
    finish_cohort(cohort, spec, out)
    return cohort


def finish_cohort(cohort: dict[str, GradingResults], spec: Spec, out: Path) -> None:
    """What a graded cohort gets, however it was graded (here or as a Slurm array): flags on
    weight files shared between students, out/marks.csv and the HTML reports.

    Sharing is computed over every submission graded into `out`, not only this run's: grading
    a few late submissions must neither drop a match with the rest nor miss one, and a student
    who resubmitted other weights loses the flag on both sides.
    """
    everyone = {**graded_in(out), **cohort}
    shared = shared_weight_flags(everyone)
    for sid, graded in everyone.items():  # the current sharing replaces an earlier run's
        kept = [f for f in graded.flags if SHARED_WEIGHTS not in f]
        if graded.replace_flags(kept + shared.get(sid, [])):
            graded.write(out / sid, f"{spec.name} - {sid}")
    results.write_atomic(out / "marks.csv", results.cohort_csv(cohort))
    from dlcourse.grading import report  # matplotlib and jinja2 only once the marks are out

    report.write_reports(out, cohort, spec.name)  # out/<id>/report.html, out/cohort.html


def graded_in(out: Path) -> dict[str, GradingResults]:
    """The results already in out/<id>/results.json (an unreadable one is skipped: grading
    that submission again rewrites it)."""
    found = {}
    for path in sorted(Path(out).glob("*/results.json")):
        try:
            found[path.parent.name] = GradingResults.read(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def shared_weight_flags(cohort: dict[str, GradingResults]) -> dict[str, list[str]]:
    """For each submission, the weight files byte-identical to another submission's."""
    owners: dict[str, list[tuple[str, str]]] = {}
    for sid, graded in cohort.items():
        for file, h in (graded.weights_sha256 or {}).items():
            owners.setdefault(h, []).append((sid, file))
    flags: dict[str, list[str]] = {}
    for group in owners.values():
        for sid, file in group:
            others = sorted(o for o, _ in group if o != sid)
            if others:
                flags.setdefault(sid, []).append(f"{file}{SHARED_WEIGHTS}{', '.join(others)}")
    return flags
