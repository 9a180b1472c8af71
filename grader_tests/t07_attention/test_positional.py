"""Hidden tests for `sinusoidal_encoding` (grade cell t07_attention_pe_check, 2 points).

The expected values are the formula evaluated here in float64:
PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i + 1] = cos(p / 10000^(2i/d)).
"""

import math

import torch

from dlcourse.grading import points

GRADE_CELL = "t07_attention_pe_check"


def probe_pe(ns, max_len, d_model):
    return ns["sinusoidal_encoding"](max_len, d_model)


def formula(max_len, d_model):
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    for p in range(max_len):
        for i in range(d_model // 2):
            angle = p / 10000 ** (2 * i / d_model)
            pe[p, 2 * i], pe[p, 2 * i + 1] = math.sin(angle), math.cos(angle)
    return pe


@points(1)
def test_small_table(student, close):
    got = student.run(probe_pe, max_len=7, d_model=6)
    close(got, formula(7, 6), "sinusoidal_encoding(7, 6)", atol=1e-6, rtol=0, against="the formula")


@points(1)
def test_long_and_wide(student, close):
    """128 positions of width 64: sines in the even columns, cosines in the odd ones."""
    got = student.run(probe_pe, max_len=128, d_model=64)
    close(
        got,
        formula(128, 64),
        "sinusoidal_encoding(128, 64)",
        atol=1e-4,
        rtol=0,
        against="the formula",
    )
