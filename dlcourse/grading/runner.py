"""Grade submissions: one grader process (pytest + plugin) per submission, N at a time.

A separate grader process per submission keeps test modules, caches and any crash of one
submission's grading away from the others; inside it, one student worker serves every test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dlcourse.grading import results
from dlcourse.grading.spec import Spec

GRADER_SLACK_S = 120  # grader-side start-up and metrics on top of the student's wall budget


def submission_id(path: Path, assignment: str) -> str:
    """`alice` for submitted/alice/<assignment>/, else the folder's own name."""
    path = Path(path).resolve()
    return path.parent.name if path.name == assignment else path.name


def grade_submission(
    submission: Path,
    spec: Spec,
    out_dir: Path,
    sandbox: bool | None = None,
    public_only: bool = False,
) -> dict[str, Any]:
    """Run the hidden (or only the public) tests on one submission; write results and summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / ".results.partial.json"
    raw.unlink(missing_ok=True)
    cmd = [
        sys.executable, "-m", "pytest", str(spec.tests_dir),
        "-p", "dlcourse.grading.plugin", "-p", "no:cacheprovider", "-p", "no:xdist",
        "--import-mode=importlib", "--rootdir", str(spec.tests_dir), "-o", "addopts=",
        "--confcutdir", str(spec.tests_dir),
        "-q", "--no-header", "-rN", "--tb=short",
        "--assignment", spec.name, "--submission", str(Path(submission).resolve()),
        "--results", str(raw),
    ]  # fmt: skip
    if public_only:
        cmd.append("--public-only")
    if sandbox is False:
        cmd.append("--no-sandbox")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NBGRADER_EXECUTION", None)
    extra = {"assignment": spec.name, "submission": str(submission)}
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=env,
            cwd=out_dir,
            timeout=spec.limits.wall_s + GRADER_SLACK_S,
        )
        log = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        log = f"grader timed out after {exc.timeout:g} s"
    results.write_atomic(out_dir / "grader.log", log)  # staff only: may show test code
    if raw.is_file():
        doc = results.read(raw)
        raw.unlink()
    else:
        tail = log.strip().splitlines()[-1:] or ["no output"]
        doc = results.failed_run(f"the grader could not run ({tail[0][:300]})", extra)
    title = f"{spec.name} - {submission_id(submission, spec.name)}"
    results.write_atomic(out_dir / "summary.txt", results.summary(doc, title))
    results.write_atomic(out_dir / "results.json", results.dumps(doc))
    return doc


def grade_many(
    submissions: list[Path],
    spec: Spec,
    out: Path,
    jobs: int = 1,
    force: bool = False,
    sandbox: bool | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Grade into out/<id>/ (skipping those already graded unless `force`), then out/marks.csv."""
    ids = {submission_id(s, spec.name): Path(s) for s in submissions}
    if len(ids) != len(submissions):
        raise ValueError("two submissions have the same id; grade them into different --out")
    todo = [i for i in ids if force or not (out / i / "results.json").is_file()]
    bar = tqdm(total=len(todo), desc=f"grading {spec.name}", file=sys.stdout, disable=not progress)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(grade_submission, ids[i], spec, out / i, sandbox): i for i in todo}
        for f in as_completed(futures):
            f.result()
            bar.update()
    bar.close()
    docs = {i: results.read(out / i / "results.json") for i in ids}
    results.write_atomic(out / "marks.csv", results.cohort_csv(docs))
    return docs
