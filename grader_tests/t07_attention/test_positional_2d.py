"""Hidden tests for `sinusoidal_encoding_2d` (grade cell t07_attention_pe2d_check, 2 points).

Expected values: the 1-D formula evaluated here in float64, rows in the first half and columns in
the second. The notebook's function is called with a correct `sinusoidal_encoding` in place of
the student's, so a mistake in Exercise 5 does not also cost this exercise."""

import math

import torch

from dlcourse.grading import points
from dlcourse.grading.compare import close

GRADE_CELL = "t07_attention_pe2d_check"


def probe_pe2d(ns, height, width, d_model):
    def reference_1d(max_len, d):
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        frequency = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32) / d)
        pe = torch.zeros(max_len, d)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(position * frequency), torch.cos(position * frequency)
        return pe

    fn = ns["sinusoidal_encoding_2d"]
    definitions = getattr(fn, "__globals__", {})
    saved = definitions.get("sinusoidal_encoding")
    definitions["sinusoidal_encoding"] = reference_1d
    try:
        out = fn(height, width, d_model)
    finally:
        if saved is None:
            definitions.pop("sinusoidal_encoding", None)
        else:
            definitions["sinusoidal_encoding"] = saved
    return out.detach() if isinstance(out, torch.Tensor) else repr(out)[:80]


def formula(height, width, d_model):
    half = d_model // 2

    def pe(p, j):
        return (math.sin if j % 2 == 0 else math.cos)(p / 10000 ** ((j - j % 2) / half))

    rows = [[pe(p // width, j) for j in range(half)] + [pe(p % width, j) for j in range(half)]
            for p in range(height * width)]  # fmt: skip
    return torch.tensor(rows, dtype=torch.float64)


@points(1)
def test_small_grids(student):
    """A 4 x 3 grid with d = 8 and a 2 x 6 grid with d = 12 (rows first, columns second)."""
    for h, w, d in [(4, 3, 8), (2, 6, 12)]:
        got = student.run(probe_pe2d, height=h, width=w, d_model=d)
        close(got, formula(h, w, d), f"sinusoidal_encoding_2d({h}, {w}, {d})", "the formula",
              atol=1e-6)  # fmt: skip


@points(1)
def test_large_grid_and_relative_offsets(student):
    """A 14 x 14 grid (a 224-pixel ViT image in 16-pixel patches) with d = 64: values, and equal
    dot products for pairs of patches with the same offsets."""
    got = student.run(probe_pe2d, height=14, width=14, d_model=64)
    close(got, formula(14, 14, 64), "sinusoidal_encoding_2d(14, 14, 64)", "the formula", atol=1e-4)
    sim = got.double() @ got.double().T
    pairs = [((0, 0), (2, 5)), ((7, 3), (9, 8)), ((11, 8), (13, 13))]
    values = torch.stack([sim[a * 14 + b, c * 14 + e] for (a, b), (c, e) in pairs])
    close(values, values[0].expand(3), "dot products of patches 2 rows down and 5 columns right",
          "the first pair's", atol=1e-3)  # fmt: skip
