"""`dlcourse grade --slurm` and `dlcourse autograde --slurm`: a cohort as a Slurm array job.

The same command as a local run, with the grading spread over the cluster: one array task per
submission (or per `--chunk` of them), at most `--max-running` at once, then a merge job that
runs after all of them and writes the cohort (array_job.py). Each task grades in the same
sandbox into the same results.json as a local run, so the marks are the same. Running the
command again submits only what is missing: a submission whose results are current, or whose
task is still queued or running, is not submitted again. Without `--wait` the command prints
the job ids and how to follow them; with it, it shows progress from squeue and then the marks.

Planning and submitting run here (the login node) and run no student code; the tasks and the
merge job need the course, its venv and the submissions at the same paths on the nodes.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dlcourse.grading.spec import Spec

if TYPE_CHECKING:  # array_job imports the grader (and torch): not needed to parse options
    from dlcourse.grading.array_job import AutogradeTarget, Plan

MAX_ARRAY_TASKS = 1000  # Slurm's default MaxArraySize is 1001: larger cohorts are chunked
EXTRA_MB = 3072  # the grader process's box (runner.GRADER_MB) and the task's own Python
NBGRADER_EXTRA_MB = 4096  # the nbgrader kernel too, in an autograde task
NBGRADER_S = 1800  # one student's nbgrader autograde, as a safety stop for the task's --time
SERIAL_NBGRADER_S = 300  # per student, for the merge job that runs nbgrader one at a time
MERGE_S = 1800
MERGE_WAIT_S = 60  # a shared filesystem may show the merge's file a little after the job ends
MAX_RUNNING_HELP = "array tasks running at once (sbatch --array=0-M%%N; default 50)"
MERGE_TIME_HELP = "merge job's time limit (default 30 min; autograde on sqlite: +5 min a student)"
SBATCH_HELP = "more for sbatch, e.g. --sbatch-arg=--account=dl-course (repeatable)"


# The options of --slurm: (flag, argparse keywords). `requested` compares with these defaults.
OPTIONS: list[tuple[str, dict]] = [
    ("--partition", {"help": "Slurm partition (default: the cluster's default)"}),
    ("--gres", {"help": "e.g. gpu:1, only where a partition demands a GPU (grading is CPU)"}),
    ("--max-running", {"type": int, "default": 50, "metavar": "N", "help": MAX_RUNNING_HELP}),
    ("--chunk", {"type": int, "default": 1, "metavar": "K", "help": "submissions per task (1)"}),
    ("--cpus", {"type": int, "default": 1, "help": "CPUs per task (default 1)"}),
    ("--mem", {"help": "memory per task (default: the assignment's limit + 2 GB)"}),
    ("--time", {"help": "time limit per task (default: from the assignment's limits)"}),
    ("--merge-time", {"help": MERGE_TIME_HELP}),
    ("--sbatch-arg", {"action": "append", "default": [], "metavar": "ARG", "help": SBATCH_HELP}),
    ("--wait", {"action": "store_true", "help": "show progress until done, then the marks"}),
    ("--poll", {"type": float, "default": 10.0, "metavar": "S", "help": "squeue interval (10 s)"}),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The --slurm options, shared by `grade` and `autograde`."""
    g = p.add_argument_group(
        "Slurm",
        "with --slurm: grade as a Slurm array job, then a merge job writes the cohort; "
        "running the command again submits only what is missing",
    )
    g.add_argument("--slurm", action="store_true", help="submit to Slurm instead of grading here")
    for flag, kwargs in OPTIONS:
        g.add_argument(flag, **kwargs)


def requested(args: argparse.Namespace) -> bool:
    """Whether --slurm, or any of its options, was given (an option alone is an error)."""
    return args.slurm or any(
        getattr(args, flag[2:].replace("-", "_")) != _default(kwargs) for flag, kwargs in OPTIONS
    )


def _default(kwargs: dict) -> object:
    if "default" in kwargs:
        return kwargs["default"]
    return False if kwargs.get("action") == "store_true" else None


def _usage_problem(args: argparse.Namespace) -> str | None:
    if not args.slurm:
        return "the Slurm options (--partition, --wait, ...) need --slurm"
    if args.jobs != 1:
        return "--jobs grades here in parallel; with --slurm, --max-running caps the tasks"
    for name in ("max_running", "chunk", "cpus"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    if args.poll <= 0:
        return "--poll must be positive"
    return None


def cmd_grade(args: argparse.Namespace, spec: Spec, out: Path) -> int:
    """`dlcourse grade SUBMISSION... --slurm`."""
    from dlcourse.grading import runner

    ids = runner.cohort_ids(args.submissions, spec.name)
    return _run(args, spec, Path(out).absolute(), ids, target=None)


def cmd_autograde(args: argparse.Namespace, spec: Spec) -> int:
    """`dlcourse autograde A --slurm`: isolated tests (and, with a gradebook that takes
    concurrent writers, nbgrader) in array tasks; the rest of autograde in the merge job."""
    if problem := _usage_problem(args):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from dlcourse.grading import slurm_cli

    try:
        slurm_cli.require("sbatch", "squeue")  # before the gradebook is touched
        target, ids = prepare_autograde(Path(args.root), args.db, spec)
    except (ValueError, RuntimeError) as exc:  # SlurmError too
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _run(args, spec, target.root / "grades" / spec.name, ids, target=target)


def prepare_autograde(
    root: Path, db: str | None, spec: Spec
) -> tuple[AutogradeTarget, dict[str, Path]]:
    """The course to autograde into and its students' folders, with the gradebook made ready
    for the tasks: the schema, the assignment's cells and the course rows, which concurrent
    tasks would otherwise race to create (nbgrader's SaveAutoGrades opens the gradebook
    under the default course id). Says so when the gradebook is sqlite."""
    from nbgrader.api import Gradebook

    from dlcourse.grading import array_job, autograde, gradebook, runner
    from dlcourse.release import nbgrader_env

    root = Path(root).resolve()
    db_url = gradebook.database_url(db, root)
    gradebook.check_reachable(db_url)
    tree = autograde.source_tree(root, spec.name)
    parallel = gradebook.takes_concurrent_writers(db_url)
    if not parallel:
        print(
            f"note: the gradebook {gradebook.shown(db_url)} is sqlite, which takes one writer "
            "at a time (parallel nbgrader processes would fail or lose grades): the array "
            "tasks run the isolated tests in parallel, and the merge job runs nbgrader "
            "autograde for one student at a time. For nbgrader in parallel too, use a "
            "PostgreSQL gradebook: --db postgresql://USER@HOST/DATABASE"
        )
    os.environ["PATH"] = nbgrader_env()["PATH"]  # a new gradebook runs the venv's alembic
    autograde.ensure_in_gradebook(root, spec.name, tree, db_url)
    with Gradebook(db_url):
        pass
    with Gradebook(db_url, autograde.course_id(root)):
        pass
    _, folders = autograde.intake(root, spec.name, spec)
    ids = runner.cohort_ids(list(folders.values()), spec.name)
    return array_job.AutogradeTarget(root, db_url, parallel), ids


def plan_run(
    spec: Spec,
    out: Path,
    ids: dict[str, Path],
    target: AutogradeTarget | None = None,
    force: bool = False,
    sandbox: bool = True,
    chunk: int = 1,
) -> tuple[Plan, list[Plan], dict[str, str]]:
    """The new run's plan (its tasks: what is neither current nor in flight), the earlier runs
    still in the queue, and the queue. Runs no student code; asks squeue only about earlier
    runs into `out`. A folder the grader refuses unopened is graded here at once."""
    from dlcourse.grading import array_job

    earlier, in_flight, queued = _in_flight(out)
    plan = array_job.Plan.new(
        out, assignment=spec.name, tests_dir=spec.tests_dir, sandbox=sandbox, force=force,
        cohort=ids, autograde=target, elsewhere=in_flight,
    )  # fmt: skip
    plan.tasks = _chunks(_to_submit(plan, spec, ids, in_flight), chunk)
    return plan, earlier, queued


def _run(
    args: argparse.Namespace,
    spec: Spec,
    out: Path,
    ids: dict[str, Path],
    target: AutogradeTarget | None,
) -> int:
    from dlcourse.grading import array_job, slurm_cli

    if problem := _usage_problem(args):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if array_job.STATE_DIR in ids:
        print(f"error: a submission is named {array_job.STATE_DIR}, the name of the folder "
              f"where --slurm keeps its runs in {out}; rename it", file=sys.stderr)  # fmt: skip
        return 2
    try:
        slurm_cli.require("sbatch", "squeue")
        plan, earlier, queued = plan_run(
            spec, out, ids, target, args.force, not args.unsandboxed, args.chunk
        )
        merging = [p for p in earlier if p.merge_job and p.merge_job in queued]
        if not plan.tasks and merging:  # all in flight already: submit nothing, follow it
            return _follow(args, spec, plan, earlier, merging[-1])
        if not (plan.tasks or earlier or target is not None):
            # nothing to grade and nothing in flight: merging is cheap, and runs no student code
            print(f"nothing to submit: the {len(ids)} results are current")
            lines, _ = array_job.merge_grade(plan, spec)
            print("\n".join(lines))
            return 0
        plan.write()
        if plan.tasks:
            plan.array_job = slurm_cli.sbatch(
                _task_options(args, spec, plan), _script(plan, "task")
            )
            plan.write()
        deps = [j for p in earlier for j in (p.array_job, p.merge_job) if _in_queue(j, queued)]
        deps = [plan.array_job, *deps] if plan.array_job else deps
        try:
            opts = _merge_options(args, spec, plan, deps)
            plan.merge_job = slurm_cli.sbatch(opts, _script(plan, "merge"))
        except slurm_cli.SlurmError as exc:
            if plan.array_job:  # the tasks run; a re-run finds them queued and adds the merge
                raise slurm_cli.SlurmError(
                    f"{exc}. The array job {plan.array_job} was submitted and runs: run the same "
                    "command again to submit the merge job (nothing is graded twice)"
                ) from exc
            raise
        plan.write()
    except slurm_cli.SlurmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_submitted(plan, earlier, len(plan.elsewhere), out)
    if not args.wait:
        return 0
    return _wait([plan, *earlier], plan.merge_job, args.poll) or _report(plan)


def _follow(
    args: argparse.Namespace, spec: Spec, plan: Plan, earlier: list[Plan], latest: Plan
) -> int:
    """Nothing new to submit while earlier runs are queued: say so; with --wait, watch them
    end, then print the marks (for `grade`, merged here for this very cohort: it is cheap)."""
    from dlcourse.grading import array_job

    jobs = [j for p in earlier for j in (p.array_job, p.merge_job) if j]
    held = len(plan.elsewhere)
    what = (
        f"{held} submissions are still queued or running in earlier jobs"
        if held
        else "an earlier run's merge job is still to finish"
    )
    print(f"nothing new to submit: {what} ({', '.join(jobs)}); merge job {latest.merge_job} "
          "writes the cohort once they have all ended")  # fmt: skip
    if not args.wait:
        print(f"progress: squeue --jobs {','.join(jobs)}   (or this command again with --wait)")
        return 0
    if rc := _wait(earlier, latest.merge_job, args.poll):
        return rc
    if plan.autograde is not None:
        return _report(latest)
    lines, failures = array_job.merge_grade(plan, spec)
    print("\n".join(lines))
    _say_failures(failures)
    return 0


def _in_flight(out: Path) -> tuple[list[Plan], dict[str, tuple[str, int]], dict[str, str]]:
    """Earlier runs with jobs still queued, the submissions their queued tasks hold, and
    the queue itself."""
    from dlcourse.grading import array_job, slurm_cli

    plans = array_job.Plan.unmerged(out)
    jobs = [j for p in plans for j in (p.array_job, p.merge_job) if j]
    queued = slurm_cli.queue(jobs)
    live = [p for p in plans if any(_in_queue(j, queued) for j in (p.array_job, p.merge_job))]
    held: dict[str, tuple[str, int]] = {}
    for p in live:
        for index, sids in enumerate(p.tasks):
            if p.task_id(index) in queued:
                for sid in set(sids) - p.done(index):
                    held[sid] = (str(p.dir), index)
    return live, held, queued


def _in_queue(job: str | None, queued: dict[str, str]) -> bool:
    return bool(job) and any(k == job or k.startswith(f"{job}_") for k in queued)


def _to_submit(plan: Plan, spec: Spec, ids: dict[str, Path], in_flight: dict) -> list[str]:
    """The submissions that need a task: not current (or --force), not in flight. A folder
    the grader refuses unopened is graded here at once (nothing of it runs)."""
    from dlcourse.grading import array_job, runner

    todo = []
    for sid, folder in ids.items():
        if sid in in_flight:
            continue
        out_dir = plan.out / sid
        if array_job.refused(folder, spec):
            runner.grade_submission(folder, spec, out_dir, plan.sandbox)
            continue
        if plan.force or runner.current_results(folder, out_dir, plan.sandbox) is None:
            todo.append(sid)
            continue
        t = plan.autograde
        has_nb = (folder / spec.notebook).is_file()
        if (
            t
            and t.nbgrader_in_tasks
            and has_nb
            and not array_job.autograded(t, spec.name, sid, spec.notebook)
        ):
            todo.append(sid)
    return todo


def _chunks(todo: list[str], chunk: int) -> list[list[str]]:
    chunk = max(chunk, math.ceil(len(todo) / MAX_ARRAY_TASKS))
    return [todo[i : i + chunk] for i in range(0, len(todo), chunk)]


def _script(plan: Plan, step: str) -> str:
    """The job script: the venv's Python on the plan (nothing from a student in it)."""
    from dlcourse.grading import results

    path = plan.dir / f"{step}.sh"
    python = shlex.quote(sys.executable)
    body = (
        "#!/bin/sh\n"
        f"# dlcourse --slurm {step} of {plan.assignment}: see plan.json beside this file\n"
        f"exec {python} -m dlcourse.grading.array_job {step} {shlex.quote(str(plan.dir))}\n"
    )
    results.write_atomic(path, body)
    path.chmod(0o755)
    return str(path)


def _common_options(args: argparse.Namespace, plan: Plan, name: str) -> list[str]:
    opts = [f"--job-name={name}", f"--chdir={plan.dir}", f"--cpus-per-task={args.cpus}"]
    if args.partition:
        opts.append(f"--partition={args.partition}")
    return opts


def _task_options(args: argparse.Namespace, spec: Spec, plan: Plan) -> list[str]:
    n, chunk = len(plan.tasks), max(len(t) for t in plan.tasks)
    autograding = plan.autograde is not None and plan.autograde.nbgrader_in_tasks
    from dlcourse.grading.runner import longest_grading_s

    seconds = chunk * (longest_grading_s(spec) + (NBGRADER_S if autograding else 0))
    mem = args.mem or f"{spec.limits.memory_mb + (NBGRADER_EXTRA_MB if autograding else EXTRA_MB)}M"
    opts = _common_options(args, plan, f"dlcourse-{plan.assignment}")
    opts += [
        f"--array=0-{n - 1}%{args.max_running}",
        "--output=logs/task-%A_%a.out",  # relative to --chdir: no user path in the pattern
        f"--mem={mem}",
        f"--time={args.time or _minutes(seconds + 300)}",
    ]
    if args.gres:
        opts.append(f"--gres={args.gres}")
    return opts + list(args.sbatch_arg)


def _merge_options(args: argparse.Namespace, spec: Spec, plan: Plan, deps: list[str]) -> list[str]:
    t = plan.autograde
    serial = t is not None and not t.nbgrader_in_tasks
    seconds = MERGE_S + (len(plan.cohort) * SERIAL_NBGRADER_S if serial else 0)
    mem = f"{spec.limits.memory_mb + NBGRADER_EXTRA_MB}M" if t is not None else f"{EXTRA_MB}M"
    opts = _common_options(args, plan, f"dlcourse-{plan.assignment}-merge")
    opts += ["--output=logs/merge-%j.out", f"--mem={mem}"]
    opts.append(f"--time={args.merge_time or _minutes(seconds)}")
    if deps:
        opts.append("--dependency=afterany:" + ":".join(deps))
    return opts + list(args.sbatch_arg)


def _minutes(seconds: float) -> str:
    return str(math.ceil(seconds / 60))


def _print_submitted(plan: Plan, earlier: list[Plan], held: int, out: Path) -> None:
    jobs = [j for j in (plan.array_job, plan.merge_job) if j]
    n = sum(len(t) for t in plan.tasks)
    if plan.array_job:
        print(f"submitted {n} submissions of {plan.assignment} to Slurm: array job "
              f"{plan.array_job} ({len(plan.tasks)} tasks)")  # fmt: skip
    else:
        print(f"nothing new to grade in {plan.assignment}")
    if held:
        old = [j for p in earlier for j in (p.array_job, p.merge_job) if j]
        print(f"{held} submissions are still queued or running in earlier jobs ({', '.join(old)})")
        jobs += old
    print(f"merge job {plan.merge_job} writes the cohort once they have all ended")
    print(f"progress: squeue --jobs {','.join(jobs)}   (or this command again with --wait)")
    print(f"logs: {plan.dir}/logs/; cohort: {_cohort_file(plan, out)}")


def _cohort_file(plan: Plan, out: Path) -> Path:
    return out / ("marks_with_notebook.csv" if plan.autograde is not None else "marks.csv")


def _wait(plans: list[Plan], merge_job: str | None, poll: float) -> int:
    """Show squeue's counts for the plans' tasks until `merge_job` has ended (0), or until
    interrupted (130: the jobs go on)."""
    from dlcourse.grading import slurm_cli

    plans = list({p.dir: p for p in plans}.values())
    arrays = [p for p in plans if p.array_job]
    watched = [j for p in plans for j in (p.array_job, p.merge_job) if j]
    progress = _Progress(f"{plans[0].assignment} on Slurm", sum(len(p.tasks) for p in arrays))
    try:
        while True:
            try:
                queued = slurm_cli.queue(watched)
            except slurm_cli.SlurmError as exc:
                progress.note(f"warning: {exc}; trying again")
                queued = None
            if queued is not None:
                left = [
                    s for k, s in queued.items() for p in arrays if k.startswith(f"{p.array_job}_")
                ]
                merging = queued.get(merge_job or "") == "RUNNING"
                progress.show(len(left), left.count("RUNNING"), left.count("PENDING"), merging)
                if merge_job not in queued:
                    break
            time.sleep(poll)
    except KeyboardInterrupt:
        progress.close()
        print("stopped waiting; the jobs go on. Run the same command with --wait to watch again")
        return 130
    progress.close()
    return 0


class _Progress:
    """A tqdm bar on a terminal; in a log, one line each time the counts change."""

    def __init__(self, desc: str, total: int) -> None:
        from tqdm import tqdm

        self.desc, self.total, self.last = desc, total, None
        self.bar = tqdm(total=total, desc=desc, unit="task", file=sys.stdout) if _tty() else None

    def show(self, left: int, running: int, pending: int, merging: bool) -> None:
        state = f"{running} running, {pending} pending" + (", merge job running" if merging else "")
        if self.bar is not None:
            self.bar.n = self.total - left
            self.bar.set_postfix_str(state)
            self.bar.refresh()
        elif (left, state) != self.last:
            print(f"{self.desc}: {self.total - left}/{self.total} tasks ended, {state}", flush=True)
        self.last = (left, state)

    def note(self, text: str) -> None:
        (self.bar.write if self.bar is not None else print)(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _tty() -> bool:
    return sys.stdout.isatty()


def _report(plan: Plan) -> int:
    """Print the merge job's marks, or say how it ended and what to do."""
    import json

    from dlcourse.grading import array_job, slurm_cli

    merged = plan.dir / array_job.MERGED
    deadline = time.monotonic() + MERGE_WAIT_S
    while not merged.is_file() and time.monotonic() < deadline:
        time.sleep(2)
    if not merged.is_file():
        try:
            how = slurm_cli.ended_states(plan.merge_job).get(plan.merge_job, "state unknown")
        except slurm_cli.SlurmError:
            how = "state unknown"
        log = plan.dir / "logs" / f"merge-{plan.merge_job}.out"
        print(f"error: merge job {plan.merge_job} ended without writing the cohort ({how}); "
              f"its log: {log}. Run the same command again: what was graded is kept",
              file=sys.stderr)  # fmt: skip
        return 2
    doc = json.loads(merged.read_text())
    print("\n".join(doc["lines"]))
    _say_failures(doc["failed"])
    return 0


def _say_failures(failures: dict[str, str]) -> None:
    if failures:
        print(f"{len(failures)} submissions have an error row because their Slurm task did "
              "not finish them; run the same command again to resubmit only those")  # fmt: skip
