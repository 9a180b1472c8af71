"""gpu_check.py is the first thing students run, often on a machine without a GPU: it must work
there, say clearly that it fell back to the CPU, and fail loudly only when asked for a missing
device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
HAS_ACCELERATOR = torch.cuda.is_available() or torch.backends.mps.is_available()


def run(*args: str, device: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DLCOURSE_DEVICE"}
    if device is not None:
        env["DLCOURSE_DEVICE"] = device
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def json_report() -> dict:
    proc = run("gpu_check.py", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_json_report_on_this_machine(json_report: dict) -> None:
    assert json_report["ok"] is True and json_report["error"] is None
    assert json_report["versions"]["torch"] == torch.__version__
    assert json_report["versions"]["cuda"] == torch.version.cuda
    assert json_report["devices"][-1]["type"] == "cpu"
    assert json_report["fell_back_to_cpu"] is (not HAS_ACCELERATOR)
    if not HAS_ACCELERATOR:
        assert json_report["chosen_device"] == "cpu"
        assert len(json_report["devices"]) == 1
        assert any("DLCOURSE_SMOKE=1" in tip for tip in json_report["advice"])
        # nothing the kit lacks: no reference weights, no `make test`
        assert not any("weights/" in tip or "make " in tip for tip in json_report["advice"])
    ops = {t["op"] for t in json_report["timings"]}
    assert {"matmul", "conv2d"} <= ops
    for t in json_report["timings"]:
        assert t["ms"] > 0 and t["tflops"] > 0, t
    assert set(json_report["amp"]) == {"float16", "bfloat16"}
    for result in json_report["amp"].values():
        assert isinstance(result["works"], bool) and result["detail"]


def test_human_output_mentions_the_fallback() -> None:
    proc = run("gpu_check.py")
    assert proc.returncode == 0, proc.stderr
    assert "TFLOP/s" in proc.stdout and "torch.autocast" in proc.stdout
    if not HAS_ACCELERATOR:
        assert "fell back to the CPU" in proc.stdout
        assert "DLCOURSE_SMOKE=1" in proc.stdout


def test_missing_device_exits_1_with_a_clear_message() -> None:
    # On a CUDA machine ask for one GPU more than it has, so the test means the same everywhere.
    missing = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    proc = run("gpu_check.py", device=missing)
    assert proc.returncode == 1
    assert f"DLCOURSE_DEVICE={missing}" in proc.stderr and "Unset DLCOURSE_DEVICE" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("forced", "message"),
    [("gpu", "not a device name"), ("xla", "only cpu, cuda and mps"), ("cuda:99", "cuda:99 but")],
)
def test_unusable_device_json_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], forced: str, message: str
) -> None:
    import gpu_check

    monkeypatch.setenv("DLCOURSE_DEVICE", forced)
    assert gpu_check.main(["--json"]) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["ok"] is False and message in report["error"]
    assert report["timings"] == [] and report["chosen_device"] is None
    assert f"DLCOURSE_DEVICE={forced}" in err


def test_missing_torch_exits_1_with_install_advice() -> None:
    hide_torch = (
        "import runpy, sys; sys.modules['torch'] = None; sys.argv = ['gpu_check.py']; "
        "runpy.run_path('gpu_check.py', run_name='__main__')"
    )
    proc = run("-c", hide_torch)
    assert proc.returncode == 1
    assert "torch cannot be imported" in proc.stderr
    assert "pip install -c constraints.txt -e ." in proc.stderr and "make" not in proc.stderr


def test_dlcourse_check_prints_the_same_keys(json_report: dict) -> None:
    proc = run("-m", "dlcourse", "check", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report.keys() == json_report.keys()
    assert report["versions"].keys() == json_report["versions"].keys()
    assert report["chosen_device"] == json_report["chosen_device"]
