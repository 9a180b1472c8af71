"""A cohort graded on Slurm: the plan an array job runs, what its tasks run, and its merge job.

`dlcourse grade --slurm` and `dlcourse autograde --slurm` (slurm.py) write a plan into
<out>/.slurm/<run>/plan.json and submit it. Every task reads that one file and its array index:
no student's name or path ever reaches a shell or sbatch. A task grades its submissions as a
local `dlcourse grade` does (runner.grade_cached, the same sandbox, into the same
<out>/<id>/results.json) and records each one it finished in done/<index>.json. With a gradebook
that takes concurrent writers (PostgreSQL), an autograde task then runs nbgrader autograde for
its students too; with sqlite, the merge job runs nbgrader for one student at a time.

The merge job runs after every task ended, however it ended. A submission whose task did not
finish it gets an error row naming the task and how it ended (never a silent gap, never graded
in the merge job); then the cohort CSV is written and, for autograde, the rest of `dlcourse
autograde` runs (gradebook, export, feedback) on what the tasks graded.

On the cluster: `python -m dlcourse.grading.array_job task|merge PLAN_DIR`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcourse.grading import results, runner, submission
from dlcourse.grading.results import GradingResults
from dlcourse.grading.spec import Spec

PLAN = "plan.json"
MERGED = "merged.json"  # written last by the merge: its presence means the cohort is out
STATE_DIR = ".slurm"  # under the results folder: one folder per run


@dataclass(frozen=True)
class AutogradeTarget:
    """The course an autograde plan writes into."""

    root: Path
    db_url: str
    nbgrader_in_tasks: bool  # the gradebook takes concurrent writers


@dataclass
class Plan:
    """One `--slurm` run: what each array task grades, and what the merge job writes."""

    dir: Path
    assignment: str
    tests_dir: Path
    out: Path
    sandbox: bool
    force: bool
    cohort: dict[str, Path]  # every submission of the command: the merge's rows
    tasks: list[list[str]] = field(default_factory=list)  # array index -> submission ids
    elsewhere: dict[str, tuple[str, int]] = field(default_factory=dict)  # in earlier runs' tasks
    autograde: AutogradeTarget | None = None
    array_job: str | None = None
    merge_job: str | None = None

    @classmethod
    def new(cls, out: Path, **kwargs: Any) -> Plan:
        """A plan for a new run (its folder is made when it is first written)."""
        name = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        return cls(dir=Path(out) / STATE_DIR / name, out=Path(out), **kwargs)

    def write(self) -> None:
        for sub in ("logs", "done"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        doc = {
            "assignment": self.assignment,
            "tests_dir": os.fsdecode(self.tests_dir),
            "out": os.fsdecode(self.out),
            "sandbox": self.sandbox,
            "force": self.force,
            "cohort": {sid: os.fsdecode(p) for sid, p in self.cohort.items()},
            "tasks": self.tasks,
            "elsewhere": self.elsewhere,
            "autograde": None,
            "array_job": self.array_job,
            "merge_job": self.merge_job,
        }
        if self.autograde is not None:
            t = self.autograde
            doc["autograde"] = {
                "root": os.fsdecode(t.root),
                "db_url": t.db_url,
                "nbgrader_in_tasks": t.nbgrader_in_tasks,
            }
        # json's \\u escapes carry undecodable file names (surrogates) through unchanged
        results.write_atomic(self.dir / PLAN, json.dumps(doc, indent=1) + "\n")

    @classmethod
    def read(cls, folder: Path) -> Plan:
        path = Path(folder) / PLAN
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable Slurm plan ({exc})") from exc
        t = doc.get("autograde")
        return cls(
            dir=Path(folder),
            assignment=doc["assignment"],
            tests_dir=Path(doc["tests_dir"]),
            out=Path(doc["out"]),
            sandbox=doc["sandbox"],
            force=doc["force"],
            cohort={sid: Path(p) for sid, p in doc["cohort"].items()},
            tasks=[list(t_) for t_ in doc["tasks"]],
            elsewhere={sid: (d, int(i)) for sid, (d, i) in doc["elsewhere"].items()},
            autograde=None if t is None else AutogradeTarget(Path(t["root"]), t["db_url"],
                                                             t["nbgrader_in_tasks"]),
            array_job=doc.get("array_job"),
            merge_job=doc.get("merge_job"),
        )  # fmt: skip

    @classmethod
    def unmerged(cls, out: Path) -> list[Plan]:
        """Earlier runs into `out` whose merge has not written the cohort (maybe in flight)."""
        found = []
        for folder in sorted((Path(out) / STATE_DIR).glob("*/")):
            if (folder / PLAN).is_file() and not (folder / MERGED).is_file():
                try:
                    found.append(cls.read(folder))
                except (ValueError, KeyError):
                    continue  # a damaged plan cannot be in flight: its tasks could not read it
        return found

    def spec(self) -> Spec:
        from dlcourse.grading import spec

        return spec.load(self.assignment, self.tests_dir)

    def task_id(self, index: int) -> str:
        return f"{self.array_job}_{index}"

    def log(self, index: int) -> Path:
        return self.dir / "logs" / f"task-{self.array_job}_{index}.out"

    def done(self, index: int) -> set[str]:
        try:
            return set(json.loads((self.dir / "done" / f"{index}.json").read_text()))
        except (OSError, ValueError):
            return set()

    def mark_done(self, index: int, sids: set[str]) -> None:
        results.write_atomic(self.dir / "done" / f"{index}.json", json.dumps(sorted(sids)))

    def index_of(self) -> dict[str, int]:
        return {sid: i for i, sids in enumerate(self.tasks) for sid in sids}


def refused(folder: Path, spec: Spec) -> bool:
    """Whether the grader refuses this folder before running anything (not worth a task)."""
    folder = Path(folder)
    if not folder.is_dir():
        return True
    return bool(submission.problems(folder, spec.notebook, spec.weights))


def autograded(target: AutogradeTarget, assignment: str, student: str, notebook: str) -> bool:
    return (target.root / "autograded" / student / assignment / notebook).is_file()


# -- what an array task runs -------------------------------------------------------------------


def task(plan_dir: Path, index: int) -> int:
    """Grade the submissions of array task `index`; 0 when every one of them was graded."""
    from dlcourse.grading.sandbox import SandboxUnavailable, require_sandbox

    plan = Plan.read(plan_dir)
    spec = plan.spec()
    where = socket.gethostname()
    if plan.sandbox:
        try:
            require_sandbox()
        except SandboxUnavailable as exc:
            print(f"error: on node {where}: {exc}", file=sys.stderr)
            return 2
    ctx = _nbgrader_context(plan, spec)
    done = plan.done(index)
    status = 0
    for sid in plan.tasks[index]:
        if sid in done:
            continue  # a requeued task does not grade again what it already graded
        folder = plan.cohort[sid]
        print(f"grading {sid} on {where}", flush=True)
        try:
            grade = runner.grade_submission if plan.force else runner.grade_cached
            graded = grade(folder, spec, plan.out / sid, plan.sandbox)
            if ctx is not None and (folder / spec.notebook).is_file():
                _run_nbgrader(ctx, sid, plan.force, plan.sandbox)
        except Exception as exc:  # noqa: BLE001 - this one gets an error row; the rest go on
            traceback.print_exc()
            why = f"{type(exc).__name__}: {exc}"
            print(f"error: {sid} was not graded: {why}", file=sys.stderr, flush=True)
            status = 1
            continue
        done.add(sid)
        plan.mark_done(index, done)
        print(f"{sid}: {graded.score:g}/{graded.max_score:g} ({graded.status})", flush=True)
    return status


def _nbgrader_context(plan: Plan, spec: Spec) -> Any:
    """autograde's Course for tasks that run nbgrader themselves, else None."""
    t = plan.autograde
    if t is None or not t.nbgrader_in_tasks:
        return None
    from dlcourse.grading import autograde

    tree = autograde.source_tree(t.root, plan.assignment)
    return autograde.Course(
        t.root, plan.assignment, spec, tree, t.db_url, autograde.course_id(t.root)
    )


def _run_nbgrader(ctx: Any, student: str, force: bool, sandbox: bool) -> None:
    from dlcourse.grading import autograde

    rep = autograde.StudentReport(student)
    autograde.run_nbgrader(ctx, rep, force, sandbox)
    for error in rep.errors:  # the merge job runs nbgrader again for it, and reports it
        print(f"{student}: {error}", flush=True)


# -- what the merge job runs -------------------------------------------------------------------


def merge(plan_dir: Path) -> int:
    """Write the cohort of a plan (and, for autograde, the gradebook's outputs), then MERGED."""
    plan = Plan.read(plan_dir)
    spec = plan.spec()
    if plan.autograde is not None:
        lines, failures = merge_autograde(plan, spec)
    else:
        lines, failures = merge_grade(plan, spec)
    print("\n".join(lines), flush=True)
    doc = {"lines": lines, "failed": failures}
    results.write_atomic(plan.dir / MERGED, json.dumps(doc, indent=1) + "\n")
    return 0


def merge_grade(plan: Plan, spec: Spec) -> tuple[list[str], dict[str, str]]:
    """The cohort of `dlcourse grade`: results.json per submission, marks.csv."""
    cohort, failures = collect(plan, plan.cohort, spec)
    lines = [
        f"{sid}: {g.score:g}/{g.max_score:g} ({g.status})" for sid, g in sorted(cohort.items())
    ]
    lines.append(f"results: {plan.out}/<submission>/results.json; cohort: {plan.out}/marks.csv")
    return lines, failures


def merge_autograde(plan: Plan, spec: Spec) -> tuple[list[str], dict[str, str]]:
    """The rest of `dlcourse autograde` on what the tasks graded (autograde.autograde with its
    isolated step replaced by `collect`): nbgrader where the tasks did not run it, gradebook
    totals, export, feedback, marks_with_notebook.csv."""
    from dlcourse.grading import autograde, gradebook

    t = plan.autograde
    assert t is not None
    found: dict[str, Any] = {}

    def isolated(folders, spec_, out, jobs, force, sandbox, progress):  # noqa: ANN001, ARG001
        ids = runner.cohort_ids(folders, spec_.name)
        before = {sid: _flags(out / sid) for sid in ids}
        cohort, failures = collect(plan, ids, spec_)
        found.update(cohort=cohort, failures=failures)
        if t.nbgrader_in_tasks:  # flags found after a task's nbgrader merged its student
            cid = autograde.course_id(t.root)
            for sid, graded in cohort.items():
                done = autograded(t, plan.assignment, sid, spec_.notebook)
                if sid not in failures and done and graded.flags != before[sid]:
                    gradebook.merge(t.db_url, cid, spec_, sid, graded)
        return {sid: g for sid, g in cohort.items() if sid not in failures}

    force_nbgrader = plan.force and not t.nbgrader_in_tasks  # else the tasks ran it, forced
    reports = autograde.autograde(
        plan.assignment, spec, t.root, t.db_url, 1, force_nbgrader, plan.sandbox,
        progress=False, isolated=isolated,
    )  # fmt: skip
    failures: dict[str, str] = found.get("failures", {})
    for rep in reports:
        if rep.student in failures:
            rep.errors.append(failures[rep.student])
            rep.isolated = found["cohort"][rep.student]
    out = t.root / "grades" / plan.assignment
    autograde.write_marks(out / "marks_with_notebook.csv", reports)
    lines = autograde.table(reports).splitlines()
    lines.append(f"marks: {out}/marks_with_notebook.csv; feedback: {t.root}/feedback/")
    return lines, failures


def _flags(out_dir: Path) -> list[str] | None:
    try:
        return GradingResults.read(out_dir / "results.json").flags
    except (OSError, ValueError, KeyError):
        return None


def collect(
    plan: Plan, ids: dict[str, Path], spec: Spec
) -> tuple[dict[str, GradingResults], dict[str, str]]:
    """Every submission's results as the tasks left them, and why each missing one is missing.

    A submission a task did not finish gets an error result (never graded here: whatever
    stopped its task could stop the merge too). Its results.json then records no fingerprint,
    so the next run, on Slurm or here, grades it again. Then, as runner.grade_many does for a
    local run: shared-weight flags, marks.csv, the reports.
    """
    owners = _owners(plan)
    states: dict[str, dict[str, str]] = {}
    cohort: dict[str, GradingResults] = {}
    failures: dict[str, str] = {}
    for sid, folder in ids.items():
        out_dir = plan.out / sid
        graded = None
        if sid in owners:
            owner, index = owners[sid]
            if sid in owner.done(index):
                graded = _read(out_dir)
            if graded is None:
                failures[sid] = _task_failure(owner, index, states)
        else:
            graded = runner.current_results(folder, out_dir, plan.sandbox)
            if graded is None and refused(folder, spec):  # refused unopened: nothing runs
                graded = runner.grade_submission(folder, spec, out_dir, plan.sandbox)
            if graded is None:
                failures[sid] = (
                    "not graded: the submission changed, or its results went missing, after "
                    "the Slurm job was planned; run the same command again to grade it"
                )
        if graded is None:
            graded = GradingResults(
                spec.name,
                submission.display_name(folder),
                sandboxed=plan.sandbox,
                failure=failures[sid],
            )
            try:
                graded.write(out_dir, f"{spec.name} - {sid}")
            except OSError as exc:
                graded.failure = failures[sid] = (
                    f"{failures[sid]} (results.json not written: {exc})"
                )
        cohort[sid] = graded
    runner.finish_cohort(cohort, spec, plan.out)
    return cohort, failures


def _owners(plan: Plan) -> dict[str, tuple[Plan, int]]:
    """The run and array index each submission was handed to (this run's or an earlier's)."""
    owners = {sid: (plan, i) for sid, i in plan.index_of().items()}
    earlier: dict[str, Plan] = {}
    for sid, (folder, index) in plan.elsewhere.items():
        if folder not in earlier:
            try:
                earlier[folder] = Plan.read(Path(folder))
            except ValueError:
                continue
        owners.setdefault(sid, (earlier[folder], index))
    return owners


def _read(out_dir: Path) -> GradingResults | None:
    try:
        return GradingResults.read(out_dir / "results.json")
    except (OSError, ValueError, KeyError):
        return None


def _task_failure(plan: Plan, index: int, states: dict[str, dict[str, str]]) -> str:
    """Why a submission has no results: its task, how the task ended, its log's last line."""
    from dlcourse.grading import slurm_cli

    if plan.array_job not in states:
        try:
            states[plan.array_job or ""] = slurm_cli.ended_states(plan.array_job or "")
        except slurm_cli.SlurmError:
            states[plan.array_job or ""] = {}
    how = states[plan.array_job or ""].get(plan.task_id(index), "state unknown")
    text = (
        f"the grading job on the cluster ended without grading it (Slurm task "
        f"{plan.task_id(index)}, {how}); run the same command again to resubmit it"
    )
    last = _last_line(plan.log(index))
    return f"{text}; log {plan.log(index)}: {last}" if last else text


def _last_line(path: Path, limit: int = 200) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    return lines[-1][:limit] if lines else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dlcourse.grading.array_job", description=__doc__)
    p.add_argument("step", choices=["task", "merge"])
    p.add_argument("plan", type=Path, help="the run's folder (<out>/.slurm/<run>/)")
    p.add_argument("--index", type=int, help="array index (default: $SLURM_ARRAY_TASK_ID)")
    args = p.parse_args(argv)
    if args.step == "merge":
        try:
            return merge(args.plan)
        except (ValueError, RuntimeError) as exc:  # a gradebook that is down, a bad plan
            print(f"error: {exc}", file=sys.stderr)
            return 2
    index = args.index
    if index is None:
        index = int(os.environ.get("SLURM_ARRAY_TASK_ID", "-1"))
    if index < 0:
        p.error("no --index and no SLURM_ARRAY_TASK_ID: run inside a Slurm array task")
    return task(args.plan, index)


if __name__ == "__main__":
    sys.exit(main())
