"""The student worker in isolation: what it can reach, and how its death is reported."""

from pathlib import Path

import pytest
import torch

from dlcourse.grading.sandbox import Limits, Worker, WorkerError, bwrap_works

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
        stopped = r"more than 64 at once|started \d+ processes \(limit 64\)"  # cgroup | poll
        with pytest.raises(WorkerError, match=stopped):
            call(w, spawn, "q")


def test_installed_bubblewrap_builds_the_sandbox():
    """An installed bubblewrap that cannot build our sandbox would silently skip the sandbox
    tests and grade unsandboxed: wherever the checkout lives (/tmp included), it must work."""
    from dlcourse.grading.sandbox import BWRAP

    if not BWRAP.exists():
        pytest.skip("bubblewrap is not installed here")
    assert bwrap_works(), "bubblewrap is installed but `bwrap_works()` is False"


ESCAPES = """
import json, os, subprocess, sys

def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True).returncode

status = open("/proc/self/status").read()
venv = sys.prefix
print(json.dumps({
    "uid": os.getuid(),
    "gid": os.getgid(),
    "cap_eff": status.split("CapEff:")[1].split()[0],
    "umount_data": sh("umount /usr/share/datasets"),
    "umount_lazy": sh("umount -l /usr/share/datasets"),
    "remount_venv_rw": sh(f"mount -o remount,rw,bind {venv}"),
    "mount_tmpfs": sh("mount -t tmpfs none /mnt"),
    "new_userns": sh("unshare -Urm true"),
    "write_venv": sh(f"touch {venv}/pwned"),
    "write_package": sh(f"touch {os.environ['PKG']}/pwned"),
    "write_root": sh("touch /pwned"),
    "write_etc": sh("mkdir -p /etc/x"),
}))
"""


@pytest.mark.skipif(not bwrap_works(), reason="needs a working bubblewrap")
def test_sandbox_holds_as_root(tmp_path):
    """Whoever starts it (the README's set-up runs graders as root), code inside the sandbox
    is nobody with no capabilities: it cannot unmount what hides the data, remount the
    read-only binds writable, mount anything or make a user namespace to get capabilities."""
    import json
    import subprocess
    import sys

    from dlcourse.grading.sandbox import PACKAGE_DIR, bwrap_args

    (tmp_path / "escape.py").write_text(ESCAPES)
    cmd = [*bwrap_args(tmp_path), "--setenv", "PKG", str(PACKAGE_DIR)]
    proc = subprocess.run(
        [*cmd, sys.executable, "-I", "escape.py"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert (seen["uid"], seen["gid"], seen["cap_eff"]) == (65534, 65534, "0000000000000000")
    for attempt, code in seen.items():
        if attempt not in ("uid", "gid", "cap_eff"):
            assert code != 0, f"{attempt} succeeded inside the sandbox"
    assert not (Path(sys.prefix) / "pwned").exists()
    assert not (PACKAGE_DIR / "pwned").exists()


def test_submission_cannot_shadow_grader_modules(tmp_path):
    """A `dlcourse/` folder (or a `torch.py`) inside a submission is never imported by the worker:
    it runs in Python's isolated mode, so the submission folder is not on sys.path."""
    import shutil

    shutil.copytree(SUBMISSIONS / "good", tmp_path / "sub")
    fake = tmp_path / "sub" / "dlcourse" / "grading"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "worker.py").write_text("raise SystemExit('shadowed')\n")
    (fake / "protocol.py").write_text("raise SystemExit('shadowed')\n")
    (tmp_path / "sub" / "torch.py").write_text("raise SystemExit('shadowed')\n")
    setup = {"op": "load", "notebook": "toy.ipynb"}
    for sandbox in (False, *([True] if bwrap_works() else [])):
        with Worker(tmp_path / "sub", Limits(call_s=20), sandbox=sandbox, setup=setup) as w:
            w.start()
            assert w.setup_reply["ok"], w.setup_reply
            assert call(w, PROBE, "p", fn="add", a=1, b=2)["value"] == 3


def test_cpu_time_of_a_call_is_measured_from_outside():
    """`last_cpu_s` is what the student's process tree spent, not what the student reports."""
    busy = (
        "def q(ns):\n    import time\n    t = time.process_time()\n"
        "    while time.process_time() - t < 1.0:\n        pass\n    return 0\n"
    )
    setup = {"op": "load", "notebook": "toy.ipynb"}
    with Worker(SUBMISSIONS / "good", Limits(call_s=30), setup=setup) as w:
        call(w, PROBE, "p", fn="add", a=1, b=2)
        assert w.last_cpu_s < 0.5
        call(w, busy, "q")
        assert 0.9 <= w.last_cpu_s < 3.0
