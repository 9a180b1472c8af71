"""Fast checks of CW1's grading pieces: the static Part 1 rules, the tiers' traceability."""

import importlib.util
import math

import nbformat
import pytest

from dlcourse import course, weights

TESTS_DIR = course.GRADER_TESTS / "cw1"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"cw1_{name}", TESTS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rules = _module("conftest")

ALLOWED = """
class Conv2d(nn.Module):
    def __init__(self, k, bias=True):
        super().__init__()
        self.k = tuple(int(v) for v in k)
        self.linear = None

    def forward(self, x):
        cols = F.unfold(x, self.k)
        return self.w.reshape(4, -1) @ cols
"""


def test_rules_allow_unfold_and_loops_in_init():
    assert rules.rule_violations(ALLOWED) == []


@pytest.mark.parametrize(
    "body, found",
    [
        ("for i in range(3):\n            x = x + 1\n        return x", "a Python loop in forward"),
        ("return torch.stack([r.sum() for r in x])", "a Python loop in forward"),
        ("while x.sum() > 0:\n            x = x - 1\n        return x", "a Python loop in forward"),
        ("return F.conv2d(x, self.w)", "`.conv2d`"),
        ("return torch.nn.functional.max_pool2d(x, 2)", "`.max_pool2d`"),
        ("return nn.Linear(3, 4)(x)", "`.Linear`"),
        ("return batch_norm(x, None, None)", "`batch_norm`"),
    ],
)
def test_rules_flag_loops_and_torch_layers(body, found):
    src = f"class Layer(nn.Module):\n    def forward(self, x):\n        {body}\n"
    problems = rules.rule_violations(src)
    assert problems and found in problems[0]


def test_grade_cells_carry_the_modules_points():
    cells = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in nbformat.read(course.ROOT / "source/cw1/cw1.ipynb", as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    for name in ("conv2d", "maxpool", "linear", "batchnorm", "model"):
        module = _module(f"test_{name}")
        total = sum(
            getattr(f, "_dlcourse_points", 0)
            for n, f in vars(module).items()
            if n.startswith("test_")
        )
        assert cells[module.GRADE_CELL] == total, module.GRADE_CELL
    part1 = ("cw1_conv2d_hidden", "cw1_maxpool_hidden", "cw1_linear_hidden", "cw1_batchnorm_hidden")
    assert sum(cells[c] for c in part1) == 50
    assert sum(cells.values()) == 100


def test_tiers_come_from_the_recorded_measurements():
    model = _module("test_model")
    files = weights.manifest()
    assert model.BASELINE_PUBLIC == files["cw1_baseline.pt"]["test_accuracy"]
    assert model.REFERENCE_PUBLIC == files["cw1_model.pt"]["test_accuracy"]
    # The rules stated in test_model.py, applied to the private-set measurements.
    assert model.ABOVE_BASELINE == math.ceil((model.BASELINE_MEASURED + 0.005) * 1000) / 1000
    assert model.TIERS[-1] == math.floor((model.REFERENCE_MEASURED - 0.01) * 200) / 200
    step = (model.TIERS[-1] - model.ABOVE_BASELINE) / 3
    for i, tier in enumerate(model.TIERS[:2]):
        assert tier == pytest.approx(model.ABOVE_BASELINE + (i + 1) * step, abs=5e-4)
    assert model.ABOVE_BASELINE > model.BASELINE_MEASURED
    assert list(model.TIERS) == sorted(model.TIERS) and model.TIERS[0] > model.ABOVE_BASELINE
    assert model.REFERENCE_MEASURED >= model.TIERS[-1] + 0.01, "reference must clear the top tier"


@pytest.mark.slow
def test_private_set_measurements_match_the_weights():
    """BASELINE_MEASURED and REFERENCE_MEASURED are what the weights score on the private set."""
    from dlcourse import notebook
    from dlcourse.grading import heldout
    from dlcourse.reference import cw1

    model = _module("test_model")
    private = heldout.private_test_split()
    for ns, name, measured in (
        (notebook.load_trusted(cw1.NOTEBOOK), "cw1_model.pt", model.REFERENCE_MEASURED),
        (cw1.released_definitions(cw1.NOTEBOOK), "cw1_baseline.pt", model.BASELINE_MEASURED),
    ):
        net = ns["MyResNet"]()
        net.load_state_dict(weights.load_state_dict(name))
        assert cw1.evaluate(net, private, batch_size=500) == pytest.approx(measured, abs=1e-4), name
