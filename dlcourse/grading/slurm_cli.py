"""Slurm's command-line tools (sbatch, squeue, sacct, scontrol) as cluster grading uses them.

Only these tools talk to the cluster, so the site's own set-up (SLURM_CONF, SBATCH_* variables,
accounts, partitions, limits) applies exactly as for a job the staff submit by hand. Nothing a
student chose (a name, a path) is ever put on these command lines: jobs find their work through
the plan file (array_job.py) and the array index.
"""

from __future__ import annotations

import re
import shutil
import subprocess

TOOL_TIMEOUT_S = 120  # a busy slurmctld can be slow to answer; a dead one never does


class SlurmError(RuntimeError):
    """A Slurm tool is missing, refused, or did not answer; the message says what to do."""


def require(*tools: str) -> None:
    """Raise SlurmError unless every tool is on PATH."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SlurmError(
            f"{', '.join(missing)} not found on PATH: --slurm submits through Slurm's "
            "command-line tools. Run this on the cluster's login node (or install the "
            "client: apt-get install slurm-client, with the cluster's slurm.conf), or "
            "grade here without --slurm"
        )


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except FileNotFoundError as exc:
        raise SlurmError(f"{cmd[0]} not found: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(
            f"{cmd[0]} did not answer within {TOOL_TIMEOUT_S} s: is the cluster's "
            "controller (slurmctld) up? Try `sinfo`"
        ) from exc


def _last_lines(text: str, n: int = 3) -> str:
    return " / ".join(line.strip() for line in text.strip().splitlines()[-n:]) or "no output"


def sbatch(options: list[str], script: str) -> str:
    """Submit `script` with `options`; returns the job id (the array's id for an array)."""
    proc = _run(["sbatch", "--parsable", *options, script])
    if proc.returncode != 0:
        raise SlurmError(f"sbatch refused the job: {_last_lines(proc.stderr + proc.stdout)}")
    job = proc.stdout.strip().split(";")[0]  # "id" or "id;cluster"
    if not job.isdigit():
        raise SlurmError(f"sbatch answered {proc.stdout.strip()!r}, not a job id")
    return job


def queue(job_ids: list[str]) -> dict[str, str]:
    """Jobs still in the queue, by id ("12_3" for an array task, "13" for a job): their state
    (PENDING, RUNNING, ...). A job that ended is absent."""
    ids = [j for j in job_ids if j]
    if not ids:
        return {}
    proc = _run(["squeue", "--noheader", "--array", "--jobs", ",".join(ids), "--format=%i|%T"])
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:  # every one of them has ended and been purged
            return {}
        raise SlurmError(f"squeue failed: {_last_lines(proc.stderr)}")
    found = {}
    for line in proc.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job:
            found[job] = state
    return found


def ended_states(job_id: str) -> dict[str, str]:
    """How each task of an ended job ended ("12_3": "FAILED, exit code 1"), from sacct where
    accounting is kept, else from scontrol (which remembers ended jobs for a few minutes);
    {} when neither knows."""
    proc = _run(["sacct", "--noheader", "--parsable2", "--allocations", "--jobs", job_id,
                 "--format=JobID,State,ExitCode"])  # fmt: skip
    found: dict[str, str] = {}
    if proc.returncode == 0:
        for line in proc.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 3:
                found[parts[0]] = _state(parts[1], parts[2])
    if found:
        return found
    proc = _run(["scontrol", "--oneliner", "show", "job", job_id])
    if proc.returncode != 0:
        return {}
    for line in proc.stdout.splitlines():
        fields = dict(re.findall(r"\b(JobId|ArrayJobId|ArrayTaskId|JobState|ExitCode)=(\S+)", line))
        if "JobState" not in fields:
            continue
        key = fields.get("JobId", "")
        if "ArrayTaskId" in fields and "ArrayJobId" in fields:
            key = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
        found[key] = _state(fields["JobState"], fields.get("ExitCode", "0:0"))
    return found


def _state(state: str, exit_code: str) -> str:
    code, _, signal = exit_code.partition(":")
    if exit_code in ("", "0:0"):
        return state
    if signal not in ("", "0"):
        return f"{state}, signal {signal}"
    return f"{state}, exit code {code}"
