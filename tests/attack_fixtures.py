"""Submissions that would score without learning, built from public data: the grader's tests
(and bench/calibrate_heldout.py) use them to show that each earns nothing and is flagged.

Each is what a determined student could submit: a model class appended to the notebook and a
weight file within the size limit.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

THUMB = 14  # thumbnails of 14 x 14: 10,000 of them in float16 fit CW1's 4,000,000 bytes

# Appended to a CW1 notebook, this replaces its MyResNet (the grader keeps the last
# definition): cosine nearest neighbour among thumbnails of the public test images.
LOOKUP_MYRESNET = '''
class MyResNet(nn.Module):
    """Looks the image up among thumbnails of the 10,000 public test images."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.zeros(10000, 196, dtype=torch.float16))
        self.register_buffer("labels", torch.zeros(10000, dtype=torch.float16))

    def forward(self, x):
        q = F.avg_pool2d(x, 2).flatten(1)
        q = F.normalize(q - q.mean(1, keepdim=True), dim=1)
        t = self.table.float()
        t = F.normalize(t - t.mean(1, keepdim=True), dim=1)
        nearest = (q @ t.T).argmax(1)
        return F.one_hot(self.labels[nearest].long(), 10).float() * 10
'''


def lookup_weights(test_x: torch.Tensor, test_y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The state_dict of LOOKUP_MYRESNET for the public test images and labels."""
    thumbs = F.avg_pool2d(test_x, 2).flatten(1)
    return {"table": thumbs.half(), "labels": test_y.half()}


def packed_int64_table(test_x: torch.Tensor, test_y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The public test set binarised and packed 64 pixels per int64, with its labels: 130,000
    numbers, a table that a limit counted in numbers rather than bytes would let through."""
    bits = (test_x.flatten(1) > 0.3).to(torch.int64)
    pad = (-bits.shape[1]) % 64
    bits = F.pad(bits, (0, pad)).reshape(len(bits), -1, 64)
    packed = (bits << torch.arange(64)).sum(-1)
    return {"table": packed, "labels": test_y.clone()}


def classifier_class(name: str) -> str:
    """The course classifier's code (dlcourse/classifier.py) pasted into a notebook under the
    name the grader looks for, taking 28 x 28 images in [0, 1] as the tasks' models do; its
    state_dict is the kit's weights/fmnist_classifier.pt as it is."""
    return f'''
class {name}(nn.Module):
    """The course classifier, renamed."""

    def __init__(self, hidden=None):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True), nn.MaxPool2d(2),
            )

        self.body = nn.Sequential(block(1, 16), block(16, 32), block(32, 64), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(64 * 4 * 4, 128), nn.ReLU(inplace=True))
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        x = F.pad(x * 2 - 1, (2, 2, 2, 2), value=-1.0)
        return self.head(self.fc(self.body(x)))
'''


def table_class(name: str) -> str:
    """A class whose only state is `table` and `labels` buffers of any dtype (packed_int64_table's
    state_dict loads into it strictly); it answers zeros, as the table is what is being tested."""
    return f"""
class {name}(nn.Module):
    def __init__(self, hidden=None):
        super().__init__()
        self.register_buffer("table", torch.zeros(10000, 13, dtype=torch.int64))
        self.register_buffer("labels", torch.zeros(10000, dtype=torch.int64))

    def forward(self, x):
        return torch.zeros(len(x), 10)
"""


def zip_bomb(path: Path, unpacked_mb: int) -> None:
    """A torch.save file whose one tensor is stored deflated: tiny on disk, huge unpacked."""
    buf = io.BytesIO()
    torch.save({"fc1.weight": torch.zeros(2)}, buf)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename.endswith("data/0"):
                with dst.open(info.filename, "w", force_zip64=True) as f:
                    block = bytes(2**20)
                    for _ in range(unpacked_mb):
                        f.write(block)
            else:
                dst.writestr(info.filename, src.read(info.filename))


# Cells a notebook can hold to exhaust the machine that autogrades it (its kernel runs them).
KERNEL_ATTACKS = {
    "forkbomb": 'import subprocess\nsubprocess.run(["bash", "-c", "while :; do sleep 120 & done"])',
    "shm": (
        "import os\nwith open('/dev/shm/fill', 'wb') as f:\n"
        "    for _ in range(1536):\n        f.write(b'0' * 2**20)"
    ),
    "memfd": (
        "import os\nfds = []\nfor _ in range(60):\n"
        "    fds.append(os.memfd_create('x'))\n    os.write(fds[-1], b'0' * 50 * 2**20)"
    ),
    "disk": (  # files of 64 MB (each under the file-size limit) until the disk is full
        "for i in range(64):\n    with open(f'fill{i}.bin', 'wb') as f:\n"
        "        for _ in range(64):\n            f.write(b'0' * 2**20)"
    ),
    "line": "print('x' * 2**30)",
    "paced": (
        "import time\nfor _ in range(400):\n    print('y' * 2**20, flush=True)\n"
        "    time.sleep(0.001)"
    ),
}
# A cell of tuple literals: cheap to write, costly for whatever parses or highlights it.
LITERALS_CELL = "T = (" + "(1, 2, 3), " * 800_000 + ")"  # about 8.8 MB of code


# What a student's kernel can do to make nbgrader's own pass award points: delete every
# environment variable (NBGRADER_EXECUTION too), make every check and the isolated-cell marker
# pass, and swallow every exception so that no test cell shows an error.
KERNEL_BYPASS = """\
import os
os.environ.clear()
import dlcourse.check, dlcourse.grading
for name in dir(dlcourse.check):
    if not name.startswith("_") and callable(getattr(dlcourse.check, name)):
        setattr(dlcourse.check, name, lambda *a, **k: None)
dlcourse.grading.isolated_cell = lambda *a, **k: None
get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)
"""
