"""What makes grading one submission cheaper must not change what it does.

Grader processes are forked from a forkserver that has imported torch and pytest once
(dlcourse/grading/grader_process.py): each still runs pytest with exactly the environment,
folder and arguments it is given, reports stdout then stderr and its exit code, and is killed
at its time limit. The worker's process tree is read from /proc/<pid>/task/*/children instead
of psutil's scan of every process: the same processes and the same memory. nbformat is imported
without jsonschema's IRI checker, which stays importable. The marks themselves are checked by
the grading tests (tests/grading/, tests/cw1/, tests/cw2/), which run through all of this.
"""

import os
import subprocess
import sys
import time

import psutil
import pytest
import torch

from dlcourse.grading import grader_process, runner
from dlcourse.grading.sandbox import _allocated_bytes, _descendants

TESTS = """
import os, sys

def test_env_and_folder():
    assert os.environ["DLCOURSE_PROBE"] == "42" and "DLCOURSE_LEFT_OUT" not in os.environ
    assert os.getcwd() == os.environ["EXPECTED_CWD"]
    assert sys.dont_write_bytecode
    import torch
    assert torch.get_num_threads() == 1
    print("out-marker")
    print("err-marker", file=sys.stderr)

def test_fails():
    assert False, "as it should"
"""


@pytest.fixture
def suite(tmp_path):
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_probe.py").write_text(TESTS)
    (tmp_path / "run").mkdir()
    return tmp_path


def _env(cwd) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DLCOURSE_LEFT_OUT"}
    return {**env, **runner.GRADER_ENV, "DLCOURSE_PROBE": "42", "EXPECTED_CWD": str(cwd)}


def test_forked_grader_runs_pytest_as_given(suite, monkeypatch):
    monkeypatch.setenv("DLCOURSE_LEFT_OUT", "1")  # in this process, not in the env given
    args = [str(suite / "suite"), "-p", "no:cacheprovider", "-s", "-q", "-o", "addopts="]
    code, log = grader_process.run_pytest(args, _env(suite / "run"), suite / "run", 300)
    assert code == 1, log  # one test failed, as pytest reports it
    assert "1 failed, 1 passed" in log and "as it should" in log
    assert log.index("out-marker") < log.index("err-marker")  # stdout, then stderr
    assert not list((suite / "suite").rglob("__pycache__/*.pyc"))


def test_forked_grader_is_killed_at_its_limit(suite):
    hang = "import time\n\n\ndef test_hang():\n    time.sleep(60)\n"
    (suite / "suite" / "test_probe.py").write_text(hang)
    t0 = time.perf_counter()
    code, _ = grader_process.run_pytest([str(suite / "suite")], _env(suite), suite / "run", 3)
    assert code is None and time.perf_counter() - t0 < 50


def test_without_the_forkserver_it_is_the_same(suite, monkeypatch):
    monkeypatch.setenv("DLCOURSE_GRADER_FORK", "0")
    monkeypatch.setattr(grader_process, "_context", None)
    args = [str(suite / "suite"), "-p", "no:cacheprovider", "-s", "-q", "-o", "addopts="]
    code, log = grader_process.run_pytest(args, _env(suite / "run"), suite / "run", 300)
    assert code == 1 and "1 failed, 1 passed" in log and "out-marker" in log


def test_process_tree_is_what_psutil_finds():
    shell = "sleep 30 & (sleep 30 & sleep 30 & wait) & sleep 30 & wait"
    proc = subprocess.Popen(["bash", "-c", shell], start_new_session=True)
    try:
        time.sleep(1.0)
        root = psutil.Process(proc.pid)
        expected = sorted([proc.pid, *(p.pid for p in root.children(recursive=True))])
        assert sorted(_descendants(proc.pid)) == expected and len(expected) >= 5
        for pid in expected:  # sleeping processes: anonymous pages, no shared memory
            mem = psutil.Process(pid).memory_info()
            assert 0 < _allocated_bytes(pid) == mem.rss - mem.shared
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
    assert _allocated_bytes(proc.pid) == 0


def test_memory_counts_allocations_not_mapped_files(tmp_path):
    """What a student allocates counts towards the limit; pages of a file it maps (torch's
    libraries, whose residency depends on the page cache) do not."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2**20) * 200)
    code = (
        "import mmap, sys, time\n"
        "f = open(sys.argv[1], 'rb'); m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
        "sum(m[i] for i in range(0, len(m), 4096))  # every page of the file resident\n"
        "print('mapped', flush=True); sys.stdin.readline()\n"
        "held = bytearray(150 * 2**20)\n"
        "for i in range(0, len(held), 4096): held[i] = 1\n"
        "print('allocated', flush=True); sys.stdin.readline()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(big)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "mapped"
        rss, mapped = psutil.Process(proc.pid).memory_info().rss, _allocated_bytes(proc.pid)
        assert rss - mapped > 190 * 2**20 and mapped < 100 * 2**20  # the file's pages left out
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "allocated"
        assert _allocated_bytes(proc.pid) - mapped > 145 * 2**20
    finally:
        proc.kill()
        proc.wait()


def test_nbformat_comes_without_the_iri_checker_which_stays_importable():
    code = (
        "import sys\n"
        "from dlcourse.grading import student\n"
        "assert 'nbformat' in sys.modules and 'rfc3987_syntax' not in sys.modules\n"
        "import jsonschema\n"
        "try:\n    import rfc3987_syntax\nexcept ImportError:\n    pass  # not installed here\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_the_graders_public_test_split_is_the_datasets():
    """heldout reads only the 10,000 test images (not the training ones) for the private set."""
    from dlcourse import data
    from dlcourse.grading import heldout

    test, ours = data.load_fashion_mnist(smoke=False).test, heldout.public_test_split()
    assert torch.equal(test.x, ours.x) and torch.equal(test.y, ours.y)
    assert ours.x.dtype == test.x.dtype and ours.y.dtype == test.y.dtype
    assert heldout.public_test_split() is ours  # read once per process
