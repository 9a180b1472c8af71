"""What the grader checks about a submission folder before anything reads or runs it.

A submission is untrusted data as much as untrusted code: a symbolic link can point at another
student's files or the grader's, a file name need not be text, and a small weight file can
unpack into gigabytes. Each check here turns such a folder into a message for the staff table
and the student's feedback, never into a crash of the batch or a read the grader did not mean.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
from pathlib import Path

from dlcourse.weights import sha256

MAX_NOTEBOOK_BYTES = 50 * 2**20  # notebooks with their figures; read by the grader as JSON
MAX_WEIGHTS_BYTES = 512 * 2**20  # a weight file on disk, and its tensors unpacked


class SubmissionRejected(ValueError):
    """The folder cannot be graded as it is; the message names the file and what to do."""


def display_name(path: Path | str) -> str:
    """A path as text for messages and tables, whatever bytes its name holds."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def special_files(folder: Path) -> list[str]:
    """Everything in `folder` that is not a regular file or folder, or whose name is not text."""
    problems = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            shown = display_name(path.relative_to(folder))
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                problems.append(
                    f"{shown} is a symbolic link; submit the file itself, not a link to it"
                )
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                problems.append(f"{shown} is not a regular file (a pipe, socket or device)")
            elif not _is_text(name):
                problems.append(f"{shown}: the file name is not valid UTF-8; rename it")
    return problems


def _is_text(name: str) -> bool:
    try:
        name.encode("utf-8")  # undecodable bytes come back from os.walk as lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def copy_regular_files(src: Path, dst: Path) -> None:
    """Copy a folder's regular files and folders into `dst` (which may exist), never following
    a link (checked before)."""
    shutil.copytree(src, dst, symlinks=True, ignore=_not_regular, dirs_exist_ok=True)


def _not_regular(folder: str, names: list[str]) -> set[str]:
    skip = set()
    for name in names:
        mode = os.lstat(os.path.join(folder, name)).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            skip.add(name)
    return skip


def check_notebook_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise SubmissionRejected(
            f"{path.name} is {size / 2**20:.0f} MB, over the {MAX_NOTEBOOK_BYTES >> 20} MB "
            "limit; clear large outputs (Kernel > Restart & Clear Output) and save it again"
        )


def check_weights_size(path: Path) -> None:
    """Refuse a weight file that is too large on disk or once its tensors are unpacked."""
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise SubmissionRejected(f"{path.name} is over {MAX_WEIGHTS_BYTES >> 20} MB")
    try:
        with zipfile.ZipFile(path) as z:
            unpacked = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError):
        return  # not torch.save's zip format: torch.load refuses it with its own message
    if unpacked > MAX_WEIGHTS_BYTES:
        raise SubmissionRejected(
            f"{path.name} unpacks to {unpacked / 2**20:.0f} MB, over the "
            f"{MAX_WEIGHTS_BYTES >> 20} MB limit"
        )


def problems(folder: Path, notebook: str, weights: tuple[str, ...] = ()) -> list[str]:
    """Why a folder's contents cannot be graded ([] when they can): links and special files
    first (then nothing in it is opened), else an oversized notebook or weight file."""
    found = special_files(folder)
    if found:
        return found
    checks = [(notebook, check_notebook_size), *((w, check_weights_size) for w in weights)]
    for name, check in checks:
        if (folder / name).is_file():
            try:
                check(folder / name)
            except SubmissionRejected as exc:
                found.append(str(exc))
    return found


def fingerprint(folder: Path) -> str:
    """One hash of every regular file's name and content: has the submission changed?

    A link or special file counts by its name (it is never followed), so one added after
    grading changes the fingerprint: the submission is graded again and intake refuses it.
    """
    h = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        name = os.fsencode(path.relative_to(folder)) + b"\0"
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            h.update(name + b"not a regular file\0")
        elif path.is_file():
            h.update(name + sha256(path).encode())
    return h.hexdigest()
