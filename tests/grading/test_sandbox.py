"""The student worker in isolation: what it can reach, and how its death is reported."""

from pathlib import Path

import pytest
import torch

from dlcourse.sandbox import Limits, Worker, WorkerError, bwrap_works

SUBMISSIONS = Path(__file__).resolve().parents[1] / "fixtures" / "grading" / "submissions"

PROBE = "def p(ns, fn, **kw):\n    return ns[fn](**kw)\n"
SNOOP = "def s(ns):\n    return ns['snoop']()\n"


def call(w, source, probe, **kwargs):
    return w.request({"op": "call", "source": source, "name": probe, "kwargs": kwargs})


@pytest.mark.skipif(not bwrap_works(), reason="needs a working bubblewrap")
def test_sandbox_blocks_data_grader_files_network_and_writes():
    setup = {"op": "load", "notebook": "toy.ipynb"}
    with Worker(SUBMISSIONS / "snoop", Limits(call_s=10), sandbox=True, setup=setup) as w:
        w.start()
        assert w.setup_reply["ok"]
        assert call(w, SNOOP, "s") == {"ok": True, "value": [], "seconds": pytest.approx(0, abs=5)}
        reply = call(w, PROBE, "p", fn="add", a=torch.ones(2), b=torch.ones(2))
        assert torch.equal(reply["value"], 2 * torch.ones(2))


def test_unknown_name_and_bad_return_type_are_messages():
    setup = {"op": "load", "notebook": "toy.ipynb"}
    with Worker(SUBMISSIONS / "good", Limits(call_s=10), setup=setup) as w:
        w.start()
        reply = call(w, PROBE, "p", fn="Nope")
        assert (
            reply["error"]
            == "the notebook defines no `Nope`; the grader finds it by this exact name"
        )
        reply = call(w, "def q(ns):\n    return object()\n", "q")
        assert reply["error"] == "result is a object, which the grader cannot accept"


def test_exit_is_reported_and_worker_restarts():
    setup = {"op": "load", "notebook": "toy.ipynb"}
    with Worker(SUBMISSIONS / "good", Limits(call_s=10), setup=setup) as w:
        with pytest.raises(WorkerError, match="exited with code 3"):
            call(w, "def q(ns):\n    import os\n    os._exit(3)\n", "q")
        assert call(w, PROBE, "p", fn="add", a=1, b=2)["value"] == 3


def test_wall_budget_is_shared_by_restarts():
    setup = {"op": "load", "notebook": "toy.ipynb"}
    with Worker(SUBMISSIONS / "hanging", Limits(wall_s=6, call_s=30), setup=setup) as w:
        with pytest.raises(WorkerError, match="wall-clock budget of 6 s"):
            call(w, "def q(ns):\n    while True:\n        pass\n", "q")
        with pytest.raises(WorkerError, match="wall-clock budget of 6 s"):
            call(w, PROBE, "p", fn="add", a=1, b=2)


def test_process_count_is_limited():
    spawn = (
        "def q(ns):\n    import subprocess, time\n"
        "    procs = [subprocess.Popen(['sleep', '30']) for _ in range(80)]\n"
        "    time.sleep(30)\n"
    )
    setup = {"op": "load", "notebook": "toy.ipynb"}
    with Worker(SUBMISSIONS / "good", Limits(call_s=20), setup=setup) as w:
        with pytest.raises(WorkerError, match=r"started \d+ processes \(limit 64\)"):
            call(w, spawn, "q")


def test_installed_bubblewrap_builds_the_sandbox():
    """An installed bubblewrap that cannot build our sandbox would silently skip the sandbox
    tests and grade unsandboxed: wherever the checkout lives (/tmp included), it must work."""
    from dlcourse.sandbox import BWRAP

    if not BWRAP.exists():
        pytest.skip("bubblewrap is not installed here")
    assert bwrap_works(), "bubblewrap is installed but `bwrap_works()` is False"
