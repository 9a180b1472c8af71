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
from dlcourse.grading import cgroups, grader_process, results, submission
from dlcourse.grading.results import GradingResults
from dlcourse.grading.sandbox import require_sandbox
from dlcourse.grading.spec import Spec

GRADER_SLACK_S = 120  # grader-side start-up and metrics on top of the student's wall budget
RETRY_TIME_SCALE = 4.0  # wall-clock limits of the second grading after a safety stop
GRADER_MB = 2048  # the grader process's own memory, on top of its student process's limit
GRADER_PIDS = 512  # tasks of the grader's box (its student process's box is inside it)
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


def grade_submission(
    folder: Path,
    spec: Spec,
    out_dir: Path,
    sandbox: bool = True,
    public_only: bool = False,
    progress: Callable[[dict], None] | None = None,
) -> GradingResults:
    """Run the hidden (or only the public) tests on one submission; write results and summary.

    A test that a wall-clock safety limit stopped says nothing about the submission (the
    machine may have been busy), so the submission is graded once more with every wall-clock
    limit RETRY_TIME_SCALE times longer; stopped again, it is "incomplete, regrade".
    `progress` is called with {"collected": n}, then {"start": name} and {"test", "outcome",
    "output"} for each test as it starts and finishes (from another thread).
    """
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
    graded.weights_sha256 = _weight_hashes(folder, spec)
    run = _run_grader(folder, spec, out_dir, sandbox, public_only, 1.0, progress)
    if run.incomplete:
        first = run.status
        run = _run_grader(folder, spec, out_dir, sandbox, public_only, RETRY_TIME_SCALE, progress)
        run.notes.append(
            f"graded again with {RETRY_TIME_SCALE:g}x the wall-clock limits after a safety "
            f"stop ({first})"
        )
    graded.tests, graded.notes, graded.timings = run.tests, run.notes, run.timings
    graded.failure, graded.stopped = run.failure, run.stopped
    graded.add_flags(run.flags)  # the tests' own and the course weights found (plugin)
    graded.write(out_dir, title)
    return graded


def _grader_timeout(spec: Spec, scale: float) -> float:
    return (spec.limits.wall_s + spec.limits.startup_s + GRADER_SLACK_S) * scale


def longest_grading_s(spec: Spec) -> float:
    """Wall-clock seconds one submission's grading may take at most: both runs (a Slurm task's
    time limit must not cut the second, which is what a busy node needs)."""
    return _grader_timeout(spec, 1.0) + _grader_timeout(spec, RETRY_TIME_SCALE)


def _run_grader(
    folder: Path,
    spec: Spec,
    out_dir: Path,
    sandbox: bool,
    public_only: bool,
    scale: float,
    progress: Callable[[dict], None] | None,
) -> GradingResults:
    """One pytest run of the tests in a grader process: its tests, notes and timings, or
    why it could not run (`failure`; `stopped` when its own wall-clock limit ended it)."""
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
        "--results", str(raw), "--time-scale", f"{scale:g}",
    ]  # fmt: skip
    if public_only:
        cmd.append("--public-only")
    if not sandbox:
        cmd.append("--no-sandbox")
    env = {**os.environ, **GRADER_ENV}
    env.pop("NBGRADER_EXECUTION", None)
    timeout = _grader_timeout(spec, scale)
    box = None  # the grader's own memory is bounded too (with its student process inside)
    if cgroups.hierarchy() is not None:
        memory = (spec.limits.memory_mb + GRADER_MB) * 2**20
        box = cgroups.Box(memory, GRADER_PIDS, who="the grader's processes")
    follower = _Follower(out_dir / ".progress.jsonl", progress) if progress else None
    if follower:
        cmd += ["--progress", str(follower.path)]
        follower.start()
    try:
        code, log = grader_process.run_pytest(cmd, env, out_dir, timeout, box)
        died = box.describe_death() if box is not None else None
    finally:
        if follower:
            follower.stop()
        if box is not None:
            box.close()  # nothing it started outlives it
    if died is not None:
        log += f"\ngrader stopped: {died}"
    if code is None:
        log = f"grader timed out after {timeout:g} s"
    results.write_atomic(out_dir / "grader.log", log)  # staff only: may show test code
    if raw.is_file():  # the grader process tells the tests; what it ran on is known here
        run = GradingResults.read(raw)
        raw.unlink()
        return run
    run = GradingResults(spec.name, submission.display_name(folder), sandboxed=sandbox)
    if code is None:
        run.failure, run.stopped = f"the grader stopped after {timeout:g} s of wall clock", True
    elif died is not None:
        run.failure = f"the grader was stopped: {died}"
    else:
        tail = log.strip().splitlines()[-1:] or ["no output"]
        run.failure = f"the grader could not run ({tail[0][:300]})"
    return run


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


def current_results(
    folder: Path, out_dir: Path, sandbox: bool, incomplete: bool = False
) -> GradingResults | None:
    """The results in out_dir if they were computed for this very submission and finished,
    else None: a changed submission, another sandbox setting, an unreadable file, or a grading
    a safety stop left incomplete (unless `incomplete`: just graded) is graded again."""
    path = out_dir / "results.json"
    if not path.is_file():
        return None
    try:
        cached = GradingResults.read(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    expected = submission.fingerprint(folder) if Path(folder).is_dir() else None
    finished = incomplete or not cached.incomplete
    if cached.sandboxed == sandbox and cached.fingerprint == expected and finished:
        return cached
    return None


def grade_cached(
    folder: Path, spec: Spec, out_dir: Path, sandbox: bool = True, incomplete: bool = False
) -> GradingResults:
    """The current results in out_dir (see current_results), else a new grading."""
    cached = current_results(folder, out_dir, sandbox, incomplete)
    return cached if cached is not None else grade_submission(folder, spec, out_dir, sandbox)


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
    progress: bool | Callable[[str, GradingResults], None] = True,
) -> dict[str, GradingResults]:
    """Grade into out/<id>/ (reusing results of unchanged submissions unless `force`), then
    flag weight files shared between students and write out/marks.csv, each submission's
    report.html and out/cohort.html. `progress`: a bar, or a function called with each
    submission's id and results as it is graded.

    Every folder gets a row: one that cannot be graded gets its reason, never a crash.
    Raises SandboxUnavailable up front when a sandbox is asked for and cannot be built.
    """
    if sandbox:
        require_sandbox()
    ids = cohort_ids(submissions, spec.name)
    grade = grade_submission if force else grade_cached
    bar = tqdm(total=len(ids), desc=f"grading {spec.name}", file=sys.stdout,
               disable=progress is not True)  # fmt: skip
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(grade, p, spec, out / i, sandbox): i for i, p in ids.items()}
        cohort: dict[str, GradingResults] = {}
        for f in as_completed(futures):
            cohort[futures[f]] = f.result()
            bar.update()
            if callable(progress):
                progress(futures[f], cohort[futures[f]])
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
