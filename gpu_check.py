"""Can this machine run the course notebooks, and how fast?

Students run the course on Colab, Paperspace, the department's Slurm cluster or their own laptop,
and most "my notebook is slow / crashes" questions come down to which device torch actually sees.
This one file needs nothing but Python and torch, so it can be downloaded and run before anything
else is installed:

    python gpu_check.py          # a short report for people
    python gpu_check.py --json   # one JSON object for scripts

It picks the device the same way the course's notebooks do (`dlcourse.device.get_device`: CUDA,
then Apple MPS, then the CPU; `DLCOURSE_DEVICE` overrides), measures a matmul and a convolution
there, and tries mixed precision. It exits 0 when some device is usable (the CPU counts) and 1 when
torch is missing or broken, or `DLCOURSE_DEVICE` names a device this machine does not have.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import textwrap
import time
import warnings
from collections.abc import Callable
from typing import Any

try:
    import torch
    import torch.nn.functional as F
except (ImportError, OSError) as _exc:  # OSError: a CUDA build whose shared libraries are missing
    torch = None
    _TORCH_IMPORT_ERROR: BaseException | None = _exc
else:
    _TORCH_IMPORT_ERROR = None

SMOKE_ADVICE = (
    "Set DLCOURSE_SMOKE=1 to try a notebook in smoke mode (a small real subset of the data and a "
    "few steps) before the full run; smoke-mode weights score nothing, so train the models you "
    "submit in full mode, on a GPU where you can (Colab, the department's cluster: the kit's "
    "README)."
)


class DeviceUnavailableError(RuntimeError):
    """`DLCOURSE_DEVICE` asks for a device this machine cannot give."""


def versions() -> dict[str, str | None]:
    """What a bug report needs first: mismatched CUDA builds explain most GPU problems."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,  # None for a CPU-only build of torch
        "cudnn": _cudnn_version(cudnn) if cudnn else None,
    }


def _cudnn_version(v: int) -> str:
    # cuDNN 9 encodes 9.1.0 as 90100; cuDNN 8 encoded 8.9.7 as 8907.
    if v >= 90000:
        return f"{v // 10000}.{v % 10000 // 100}.{v % 100}"
    return f"{v // 1000}.{v % 1000 // 100}.{v % 100}"


def _cpu_name() -> str:
    # platform.processor() is empty on most Linux systems; /proc/cpuinfo has the model name.
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def list_devices() -> list[dict[str, Any]]:
    """Every device torch can use here, so a student can see whether the GPU they paid for is
    visible at all (a CPU-only torch build or a Slurm job without `--gres=gpu` hides it)."""
    devices: list[dict[str, Any]] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append(
                {
                    "type": "cuda",
                    "index": i,
                    "name": props.name,
                    "memory_gib": round(props.total_memory / 2**30, 1),
                    "compute_capability": f"{props.major}.{props.minor}",
                }
            )
    if torch.backends.mps.is_available():
        devices.append({"type": "mps", "index": 0, "name": "Apple MPS (Metal)"})
    devices.append(
        {"type": "cpu", "index": None, "name": _cpu_name(), "threads": torch.get_num_threads()}
    )
    return devices


def choose_device() -> torch.device:
    """The device the notebooks will use.

    Mirrors `dlcourse.device.get_device` without importing dlcourse, so this file works on its own.
    """
    if forced := os.environ.get("DLCOURSE_DEVICE"):
        try:
            dev = torch.device(forced)
        except RuntimeError as exc:
            raise DeviceUnavailableError(
                f"DLCOURSE_DEVICE={forced} is not a device name; use cpu, cuda, cuda:N or mps"
            ) from exc
        if dev.type == "cuda":
            if torch.version.cuda is None:
                raise DeviceUnavailableError(
                    f"DLCOURSE_DEVICE={forced} but this torch is a CPU-only build"
                )
            if not torch.cuda.is_available():
                raise DeviceUnavailableError(
                    f"DLCOURSE_DEVICE={forced} but CUDA is not available here (no GPU visible)"
                )
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise DeviceUnavailableError(
                    f"DLCOURSE_DEVICE={forced} but this machine has only "
                    f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0"
                )
        elif dev.type == "mps" and not torch.backends.mps.is_available():
            raise DeviceUnavailableError(f"DLCOURSE_DEVICE={forced} but Apple MPS is not available")
        elif dev.type not in ("cpu", "cuda", "mps"):
            raise DeviceUnavailableError(
                f"DLCOURSE_DEVICE={forced}: the course supports only cpu, cuda and mps"
            )
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _has_accelerator() -> bool:
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_ms(fn: Callable[[], object], device: torch.device, min_time_s: float = 0.3) -> float:
    """Median milliseconds per call of `fn` on `device`.

    GPU kernels are queued asynchronously, so every timed block ends with a synchronisation;
    the first call and the calibration blocks act as warm-up (cuBLAS/cuDNN handles, allocator).
    """
    fn()
    _sync(device)
    number, blocks, spent = 1, [], 0.0
    while len(blocks) < 5 and (spent < min_time_s or len(blocks) < 3):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        _sync(device)
        elapsed = time.perf_counter() - start
        spent += elapsed
        if elapsed < 0.02 and not blocks:
            number *= 2  # too short to time reliably: grow the block before measuring
        else:
            blocks.append(elapsed / number)
    return statistics.median(blocks) * 1000


def benchmark(device: torch.device) -> list[dict[str, Any]]:
    """Achieved TFLOP/s for the two operations that dominate the course's models.

    Sizes keep the whole check within a few seconds on a 2-core laptop while still filling a GPU.
    """
    gpu = device.type != "cpu"
    n = 4096 if gpu else 1024
    batch, channels, size = (64, 128, 56) if gpu else (8, 64, 56)
    gen = torch.Generator().manual_seed(0)
    results = []

    dtypes = [torch.float32] + ([torch.float16] if device.type == "cuda" else [])
    for dtype in dtypes:
        a = torch.randn(n, n, generator=gen).to(device, dtype)
        b = torch.randn(n, n, generator=gen).to(device, dtype)
        ms = time_ms(lambda a=a, b=b: a @ b, device)
        name = str(dtype).removeprefix("torch.")
        results.append(_timing("matmul", name, f"{n}x{n} @ {n}x{n}", 2 * n**3, ms))

    x = torch.randn(batch, channels, size, size, generator=gen).to(device)
    w = torch.randn(channels, channels, 3, 3, generator=gen).to(device)
    ms = time_ms(lambda: F.conv2d(x, w, padding=1), device)
    flops = 2 * batch * channels * size * size * channels * 3 * 3
    shape = f"{batch}x{channels}x{size}x{size}, 3x3 kernel, {channels} out"
    # cuDNN computes fp32 convolutions in TF32 on Ampere and later unless told not to.
    tf32 = (
        device.type == "cuda"
        and torch.backends.cudnn.allow_tf32
        and torch.cuda.get_device_capability(device)[0] >= 8
    )
    results.append(_timing("conv2d", "tf32" if tf32 else "float32", shape, flops, ms))
    return results


def _timing(op: str, dtype: str, shape: str, flops: int, ms: float) -> dict[str, Any]:
    return {
        "op": op,
        "dtype": dtype,
        "shape": shape,
        "ms": round(ms, 3),
        "tflops": round(flops / (ms / 1000) / 1e12, 4),
    }


def check_amp(device: torch.device) -> dict[str, dict[str, Any]]:
    """Whether `torch.autocast` really computes in fp16 / bf16 here.

    Autocast silently falls back to fp32 (sometimes with only a warning) where a dtype is not
    supported, so a tiny matmul is run and its output dtype checked.
    """
    results = {}
    a = torch.randn(16, 16, device=device)
    for dtype in (torch.float16, torch.bfloat16):
        name = str(dtype).removeprefix("torch.")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with torch.autocast(device_type=device.type, dtype=dtype):
                    out = a @ a
            works = out.dtype == dtype and bool(torch.isfinite(out).all())
            if works:
                detail = f"autocast matmul gives {name}"
            else:
                detail = f"autocast matmul gave {str(out.dtype).removeprefix('torch.')}"
            if caught:
                detail += f" ({caught[0].message})"
        except (RuntimeError, TypeError, ValueError) as exc:
            works, detail = False, f"{type(exc).__name__}: {exc}".splitlines()[0]
        if works and device.type == "cpu":
            detail += "; on a CPU this rarely makes training faster"
        if works and device.type == "cuda":
            major = torch.cuda.get_device_capability(device)[0]
            needs = 8 if dtype == torch.bfloat16 else 7
            if major < needs:
                detail += f"; no {name} tensor cores before compute {needs}.0, expect no speed-up"
        results[name] = {"works": works, "detail": detail}
    return results


def advice(device: torch.device, fell_back: bool) -> list[str]:
    """What to do next, for the situations students most often end up in.

    `fell_back` means the CPU is all there is (not merely chosen with DLCOURSE_DEVICE=cpu).
    """
    tips = []
    if fell_back:
        tips.append(
            "No GPU found: the notebooks will run on the CPU. Everything works, but training is "
            "much slower: a small ResNet takes about a minute per Fashion-MNIST epoch on a 2-core "
            "CPU, where a GPU needs seconds."
        )
        tips.append(SMOKE_ADVICE)
        if torch.version.cuda is None and shutil.which("nvidia-smi"):
            tips.append(
                "nvidia-smi exists but this torch is a CPU-only build: in the kit's folder, "
                "`pip install --force-reinstall -c constraints.txt torch torchvision` installs "
                "the CUDA build of the same version from PyPI (the kit's README, Install)."
            )
        elif "SLURM_JOB_ID" in os.environ:
            tips.append("On the cluster, ask Slurm for a GPU: srun/sbatch --gres=gpu:1 ...")
        else:
            tips.append("On Colab: Runtime > Change runtime type > GPU, then run this again.")
    elif device.type == "cpu":
        tips.append("Using the CPU because DLCOURSE_DEVICE=cpu; unset it to use the GPU or MPS.")
    elif device.type == "mps":
        tips.append(
            "Apple MPS works for the course; a few operations fall back to the CPU. "
            "Set PYTORCH_ENABLE_MPS_FALLBACK=1 if one raises NotImplementedError."
        )
    else:
        tips.append(f"Good to go: notebooks will train on {device}.")
    return tips


def run_checks() -> dict[str, Any]:
    """Everything the report shows, as one dict (the `--json` output)."""
    report: dict[str, Any] = {"ok": True, "error": None, "versions": versions()}
    report["devices"] = list_devices()
    try:
        device = choose_device()
    except DeviceUnavailableError as exc:
        report.update(ok=False, error=f"{exc}. Unset DLCOURSE_DEVICE to pick a device that exists.")
        report.update(chosen_device=None, fell_back_to_cpu=None, timings=[], amp={}, advice=[])
        return report
    fell_back = device.type == "cpu" and not _has_accelerator()
    report["chosen_device"] = str(device)
    report["fell_back_to_cpu"] = fell_back
    report["timings"] = benchmark(device)
    report["amp"] = check_amp(device)
    report["advice"] = advice(device, fell_back)
    return report


def format_report(report: dict[str, Any]) -> str:
    """Short aligned lines for a terminal."""
    v = report["versions"]
    cuda = v["cuda"] or "none (CPU-only build of torch)"
    if v["cuda"] and not any(d["type"] == "cuda" for d in report["devices"]):
        cuda += " (torch's build; no CUDA GPU visible)"
    lines = [
        f"{'Python':<12}{v['python']} ({v['platform']})",
        f"{'torch':<12}{v['torch']}",
        f"{'CUDA':<12}{cuda}",
        f"{'cuDNN':<12}{v['cudnn'] or 'none'}",
    ]
    for d in report["devices"]:
        if d["type"] == "cuda":
            label = f"GPU {d['index']}"
            text = f"{d['name']}, {d['memory_gib']} GiB, compute {d['compute_capability']}"
        elif d["type"] == "mps":
            label, text = "MPS", d["name"]
        else:
            label, text = "CPU", f"{d['name']}, {d['threads']} threads"
        lines.append(f"{label:<12}{text}")
    if not report["ok"]:
        return "\n".join(lines)

    fell_back = " (fell back to the CPU: no GPU found)" if report["fell_back_to_cpu"] else ""
    lines.append(f"{'Device':<12}{report['chosen_device']}{fell_back}")
    lines.append("")
    lines.append(f"Speed on {report['chosen_device']}:")
    for t in report["timings"]:
        name = f"{t['op']} {t['dtype']}"
        lines.append(f"  {name:<17}{t['ms']:>9.2f} ms {t['tflops']:>8.3f} TFLOP/s   {t['shape']}")
    lines.append("Mixed precision (torch.autocast):")
    for name, r in report["amp"].items():
        lines.append(f"  {name:<17}{'works' if r['works'] else 'NO':<7}{r['detail']}")
    lines.append("")
    lines.extend(
        textwrap.fill(tip, 88, initial_indent="- ", subsequent_indent="  ")
        for tip in report["advice"]
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (`python gpu_check.py`, `dlcourse check`)."""
    parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    args = parser.parse_args(argv)

    if torch is None:
        error = (
            f"torch cannot be imported ({_TORCH_IMPORT_ERROR}). Install the course kit first, as "
            "its README says (in a venv, in the kit's folder: `pip install -c constraints.txt "
            "-e .`), then run this again with that venv's Python."
        )
        if args.json:
            print(json.dumps({"ok": False, "error": error}))
        print(f"error: {error}", file=sys.stderr)
        return 1

    report = run_checks()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if not report["ok"]:
        print(f"error: {report['error']}", file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
