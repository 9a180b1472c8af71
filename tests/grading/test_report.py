"""Feedback reports: what the hidden tests measured (measurements.pt) drawn into report.html,
and the staff's cohort.html.

A real grading of the toy assignment, whose hidden tests get one more module that records
every kind of measurement (and some that fail), shows the plumbing end to end: marks as before,
the file written after the results and read back with weights_only, a stale file never shown.
CW1's and CW2's own recording code (grader_tests/cw1/test_model.py, grader_tests/cw2/) runs here
on made-up model outputs, so their pages are checked without grading again; tests/cw1 and
tests/cw2 grade the real models. Every page is opened in headless Chromium
(tests/report_pages.py): it loads, every image renders, no console error, no script; the
screenshots' paths are printed (`pytest -rA` shows them).
"""

import importlib.util
import pickle
import shutil
import stat
from pathlib import Path
from types import ModuleType

import pytest
import torch
from markupsafe import escape
from report_pages import check_pages

from dlcourse import course, data
from dlcourse.cli import main
from dlcourse.grading import gradebook, heldout, measurements, report, sandbox
from dlcourse.grading.measurements import Measurements
from dlcourse.grading.results import GradingResults, TestResult
from dlcourse.grading.student import StudentError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grading"
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"

# One more hidden-test module for the toy assignment: records for the report, and fails to.
TOY_REPORT_TESTS = '''
"""Records for the report (tests/grading/test_report.py)."""

import torch

from dlcourse import metrics
from dlcourse.grading import points

GRADE_CELL = "toy_hidden"
TEACHER = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
X = torch.randn(256, 4, generator=torch.Generator().manual_seed(1))


def probe_logits(ns, x):
    model = ns.load_model("Net", "toy.pt", hidden=8)
    with torch.no_grad():
        return model(x)


def probe_add(ns, a, b):
    return ns["add"](a, b)


def _record(report, logits, y, acc):
    rows = [("tier 1", 0.5, "test_toy_report::test_accuracy_tiers"),
            ("tier 2", 0.99, "test_toy_report::test_accuracy_tiers")]
    report.tiers("accuracy", "Accuracy on the grader's data", acc, rows, fmt=".1%")
    cm = metrics.confusion_matrix(logits.argmax(1), y, 3)
    report.confusion("confusion", "Confusion matrix", cm, ["a", "b", "c"])
    shares = metrics.class_histogram(logits.argmax(1), 3).tolist()
    report.bars("shares", "Predicted classes", shares, ["a", "b", "c"], 0.2, "20%", fmt=".0%")


@points(1)
def test_accuracy_tiers(student, report):
    """Accuracy at least 0.5, with the report's measurements."""
    logits = student.run(probe_logits, x=X)
    y = (X @ TEACHER.T).argmax(1)
    acc = metrics.accuracy(logits, y)
    report.measure("toy accuracy", lambda: _record(report, logits, y, acc))
    report.measure("broken", lambda: 1 / 0)  # the grader's own mistake: noted, never raised
    report.confusion("bad", "a matrix of the wrong shape", torch.zeros(2, 3), ["a", "b"])
    assert acc >= 0.5, f"accuracy {acc:.3f} is below 0.5"


@points(1)
def test_add_for_report(student, report):
    """add() adds; its output on images is drawn after every test ran."""
    a = torch.zeros(4, 1, 8, 8)
    b = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8).repeat(4, 1, 1, 1)

    def draw():
        out = student.run(probe_add, a=a, b=b)
        report.images("sums", "add() on images", out, [f"image {i}" for i in range(4)], columns=4)

    report.after_tests("sums", draw)
'''


def _toy_tests(folder: Path) -> Path:
    tests = shutil.copytree(FIXTURES / "toy_tests", folder / "toy_tests")
    (tests / "test_toy_report.py").write_text(TOY_REPORT_TESTS)
    return tests


@pytest.fixture(scope="module")
def toy(once):
    """good, raising and changed (good, later refused) graded with `dlcourse grade`."""
    if not sandbox.bwrap_works():
        pytest.skip("needs a working bubblewrap")

    def build(folder: Path) -> dict:
        tests, out = _toy_tests(folder), folder / "grades"
        subs = [shutil.copytree(FIXTURES / "submissions" / n, folder / "subs" / n)
                for n in ("good", "raising")]  # fmt: skip
        subs.append(shutil.copytree(FIXTURES / "submissions" / "good", folder / "subs" / "changed"))
        (out / "raising").mkdir(parents=True)
        (out / "raising" / measurements.FILE).write_bytes(b"an earlier grading's file")
        args = ["grade", *map(str, subs), "--assignment", "toy", "--tests", str(tests),
                "--out", str(out), "--jobs", "2"]  # fmt: skip
        assert main(args) == 0
        changed = subs[2]
        (changed / "notes.txt").write_text("changed after grading")
        (changed / "link").symlink_to(changed / "toy.pt")  # now refused at intake
        assert main(args) == 0  # good and raising unchanged: their results are reused
        return {"out": str(out)}

    folder, result = once("report-toy", build)
    return Path(result["out"])


def _read(out: Path, sid: str) -> GradingResults:
    return GradingResults.read(out / sid / "results.json")


@pytest.mark.slow
def test_toy_marks_are_the_tests_own(toy):
    good, raising = _read(toy, "good"), _read(toy, "raising")
    assert good.score == good.max_score == 10 and not good.errors
    outcomes = {t.name: t.outcome for t in raising.tests}
    assert outcomes["test_toy::test_parameter_count"] == "passed"
    assert outcomes["test_toy_report::test_accuracy_tiers"] == "error"
    assert outcomes["test_toy_report::test_add_for_report"] == "passed"  # records nothing now
    text = (toy / "good" / "results.json").read_text() + (toy / "good" / "summary.txt").read_text()
    assert "not measured" not in text and "ZeroDivision" not in text  # measurements stay apart


@pytest.mark.slow
def test_measurements_written_after_the_tests_and_read_back_safely(toy):
    doc = measurements.load(toy / "good" / measurements.FILE)  # torch.load(weights_only=True)
    assert [(i["key"], i["kind"]) for i in doc["items"]] == [
        ("accuracy", "tiers"), ("confusion", "confusion"), ("shares", "bars"), ("sums", "images"),
    ]  # fmt: skip
    assert doc["notes"] == [
        "broken: not measured: a problem in the grader (ZeroDivisionError)",
        "bad: not measured: a problem in the grader (ValueError)",
    ]
    sums = doc["items"][3]["images"]
    assert sums.dtype == torch.uint8 and sums.shape == (4, 8, 8) and sums[0, 0, 0] == 0
    assert "ZeroDivisionError" in (toy / "good" / "grader.log").read_text()  # staff see why
    raising = measurements.load(toy / "raising" / measurements.FILE)
    assert raising["items"] == []  # the earlier file was removed before grading
    (note,) = raising["notes"]  # the student's own error, as in the marks
    add = next(t for t in _read(toy, "raising").tests if t.name == "test_toy::test_add")
    assert note == f"sums: not measured: {add.output.removeprefix('error: ').splitlines()[0]}"


@pytest.mark.slow
def test_report_shows_marks_tiers_and_plots_without_test_code(toy):
    html = (toy / "good" / report.REPORT).read_text()
    assert "toy: feedback for good" in html and "<strong>10 / 10</strong>" in html
    assert "Accuracy at least 0.5, with the report&#39;s measurements." in html
    assert html.count('src="data:image/png;base64,') == 2 + 4  # confusion, bars; 4 sums
    assert 'your result</td><td class="num">100.0%' in html and "reached tier 2" in html
    assert "default-src &#39;none&#39;" not in html and "default-src 'none'" in html  # the CSP
    for secret in ("TEACHER", "probe_", "def test_", "lambda", "1 / 0", "assert acc", "<script"):
        assert secret not in html, secret
    raising = (toy / "raising" / report.REPORT).read_text()
    add = next(t for t in _read(toy, "raising").tests if t.name == "test_toy::test_add")
    assert add.output.startswith("error: probe_add: ")  # the student's ValueError, or a timeout
    assert str(escape(add.output)) in raising and "sums: not measured: probe_add: " in raising


@pytest.mark.slow
def test_stale_measurements_are_never_shown(toy):
    changed = _read(toy, "changed")
    assert changed.failure and changed.failure.startswith("submission refused")
    assert (toy / "changed" / measurements.FILE).is_file()  # the first grading's
    html = (toy / "changed" / report.REPORT).read_text()
    assert "submission refused" in html and "<img" not in html


@pytest.mark.slow
def test_cohort_page(toy):
    html = (toy / report.COHORT).read_text()
    assert "toy: 3 submissions" in html
    for sid in ("good", "raising", "changed"):
        assert f'<a href="{sid}/report.html">{sid}</a>' in html
    assert "error: probe_add: " in html  # raising's, with its count
    assert html.count('src="data:image/png;base64,') == 2  # totals, per-test histograms


# -- CW1 and CW2: their own recording code on made-up outputs ---------------------------------


def _hidden(assignment: str, module: str) -> ModuleType:
    path = course.GRADER_TESTS / assignment / f"{module}.py"
    spec = importlib.util.spec_from_file_location(module, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _results(assignment: str, modules: dict[str, ModuleType], failed: set[str]) -> GradingResults:
    tests = []
    for name, mod in modules.items():
        for fn_name, fn in vars(mod).items():
            if fn_name.startswith("test_") and hasattr(fn, "_dlcourse_points"):
                ok, pts = fn_name not in failed, fn._dlcourse_points
                doc = fn.__doc__.splitlines()[0]
                outcome, output = ("passed", "") if ok else ("failed", "below the tier")
                tests.append(TestResult(f"{name}::{fn_name}", doc, pts, pts if ok else 0.0,
                                        outcome, output, False, mod.GRADE_CELL))  # fmt: skip
    return GradingResults(assignment, "alice", tests=tests, sandboxed=True)


def _page(folder: Path, graded: GradingResults, m: Measurements) -> Path:
    folder.mkdir(parents=True)
    graded.write(folder, "title")
    m.write(folder / measurements.FILE)
    path = report.write_report(folder, "alice")
    assert path is not None
    return path


def _tier_tests_exist(m: Measurements, graded: GradingResults) -> None:
    names = {t.name for t in graded.tests}
    for item in m.items.values():
        if item["kind"] == "tiers":
            assert {r["test"] for r in item["rows"]} <= names, item["key"]


@pytest.fixture(scope="module")
def cw1_page(tmp_path_factory) -> Path:
    mod = _hidden("cw1", "test_model")
    y = heldout.private_test_split().y
    g = torch.Generator().manual_seed(0)
    taken = torch.where(torch.arange(len(y)) < 800, (y + 1) % 10, y)  # 92% right: tier 2
    logits = torch.nn.functional.one_hot(taken, 10) * 4.0 + torch.rand(len(y), 10, generator=g)
    acc = (logits.argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(0.92)
    m = Measurements()
    m.measure("test accuracy", lambda: mod._record(m, logits, acc))
    assert not m.notes and list(m.items) == ["accuracy", "confusion", "mistakes"]
    graded = _results("cw1", {"test_model": mod}, {"test_tier_3"})
    _tier_tests_exist(m, graded)
    mistakes = m.items["mistakes"]
    worst = (logits.argmax(1) != y).nonzero().flatten()
    assert mistakes["images"].shape == (mod.SHOWN_MISTAKES, 28, 28)
    public = data.load_fashion_mnist(smoke=False).test.x
    private = heldout.private_test_split().x

    def as_shown(x):
        return x[0].mul(255).round().to(torch.uint8)

    first = next(i for i in worst if torch.equal(mistakes["images"][0], as_shown(public[i])))
    assert not torch.equal(mistakes["images"][0], as_shown(private[first]))  # never private
    return _page(tmp_path_factory.mktemp("cw1-page") / "alice", graded, m)


class _FakeVAE:
    """Answers the report's probes as a student process would: decode(z), or x itself."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[str] = []

    def run(self, probe, **kwargs):
        self.calls.append(probe.__name__)
        if self.fail:
            raise StudentError(f"{probe.__name__}: RuntimeError: decode is not written yet")
        if probe.__name__ == "probe_reconstruct":
            return kwargs["x"]  # a perfect copy: the public image, never a private one
        z = kwargs["z"]
        assert probe.__name__ == "probe_decode" and z.shape == (32, 16)
        return torch.sigmoid(z @ torch.ones(16, 784)).reshape(32, 1, 28, 28)


@pytest.fixture(scope="module")
def cw2_page(tmp_path_factory) -> Path:
    gan, vae = _hidden("cw2", "test_gan_quality"), _hidden("cw2", "test_vae_model")
    m = Measurements()
    g = torch.Generator().manual_seed(0)
    samples = torch.rand(10_000, 1, 32, 32, generator=g) * 2 - 1
    shares = [0.25, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.04, 0.01]
    scores = {"fid": 52.5, "kid": 6.1, "coverage": 9, "histogram": shares}
    m.measure("sample quality", lambda: gan._record(m, scores, samples))
    m.measure("negative ELBO", lambda: vae._record(m, 256.1))
    fake, mu = _FakeVAE(), torch.zeros(5, 16)
    m.after_tests("VAE reconstructions", lambda: vae._record_recon(m, fake))
    m.after_tests("VAE samples", lambda: vae._record_samples(m, fake, mu))
    assert fake.calls == []  # nothing runs in the student's process before the tests end
    m.run_after_tests()
    assert not m.notes and fake.calls == ["probe_reconstruct", "probe_decode"]
    top, bottom = m.items["reconstructions"]["images"].split(8)
    assert torch.equal(top, bottom)  # what the probe was sent: public test images
    public = data.load_fashion_mnist(smoke=False).test.x[:8, 0]
    assert torch.equal(top, public.mul(255).round().to(torch.uint8))
    assert list(m.items) == [
        "fid", "kid", "coverage", "class shares", "gan samples", "elbo", "reconstructions",
        "vae samples",
    ]  # fmt: skip
    graded = _results(
        "cw2",
        {"test_gan_quality": gan, "test_vae_model": vae},
        {"test_fid_tier_3", "test_coverage_all", "test_elbo_tier_3"},
    )
    _tier_tests_exist(m, graded)
    failing = Measurements()
    failing.after_tests("VAE samples", lambda: vae._record_samples(failing, _FakeVAE(True), mu))
    failing.run_after_tests()
    assert failing.notes == [
        "VAE samples: not measured: probe_decode: RuntimeError: decode is not written yet"
    ]
    return _page(tmp_path_factory.mktemp("cw2-page") / "alice", graded, m)


def test_cw1_page_shows_tiers_confusion_and_mistakes_and_no_secret(cw1_page):
    html = cw1_page.read_text()
    assert html.count('src="data:image/png;base64,') == 1 + 16
    assert "tier 2</td>" in html and "reached tier 2" in html and "0/4" in html
    assert "Shown as in the public test set" in html
    for secret in (str(heldout.seed()), "heldout", "probe_", "def ", "BASELINE_MEASURED",
                   "Nothing is trained here", "11.2"):  # fmt: skip
        assert secret not in html, secret


def test_cw2_page_shows_tiers_samples_and_shares(cw2_page):
    html = cw2_page.read_text()
    assert html.count('src="data:image/png;base64,') == 1 + 64 + 16 + 32  # bars; images
    assert "52.50" in html and "256.10 nats" in html and "below every tier" not in html
    for secret in ("probe_", "def ", "SAMPLE_SEED", "REPORT_SEED", "ELBO_SEED", "pytest"):
        assert secret not in html, secret


# -- the pieces ---------------------------------------------------------------------------------


def _student_failure() -> None:
    raise StudentError("probe: the student's own error\n  line 3 in forward")


def test_recording_never_raises_and_says_what_was_not_measured(tmp_path):
    m = Measurements()
    m.tiers("t", "tiers", float("nan"), [("tier 1", 1.0, "m::t")])  # NaN: shown, reaches nothing
    m.tiers("f", "bad format", 1.0, [], fmt="%d")
    m.images("i", "too many", torch.zeros(1000, 4, 4))
    m.images("c", "captions", torch.zeros(2, 4, 4), ["only one"])
    m.bars("b", "empty", [], [])
    m.measure("student", _student_failure)
    m.measure("student", lambda: 1 / 0)  # once per name: not run again
    m.images("huge", "over the size limit", torch.zeros(100, 512, 512))
    assert list(m.items) == ["t"]
    assert m.notes == [
        "f: not measured: a problem in the grader (ValueError)",
        "i: not measured: a problem in the grader (ValueError)",
        "c: not measured: a problem in the grader (ValueError)",
        "b: not measured: a problem in the grader (ValueError)",
        "student: not measured: probe: the student's own error",
        "huge: not measured: a problem in the grader (ValueError)",
    ]
    m.write(tmp_path / measurements.FILE)
    assert [p.name for p in tmp_path.iterdir()] == [measurements.FILE]  # no temporary left
    assert measurements.load(tmp_path / measurements.FILE)["notes"] == m.notes


class _Exploit:
    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.mark.parametrize("content", ["junk", "pickle", "wrong kind"])
def test_unusable_measurements_name_the_file_and_cost_only_the_plots(tmp_path, content, capsys):
    path = tmp_path / measurements.FILE
    if content == "junk":
        path.write_bytes(b"not a torch file")
    elif content == "pickle":
        path.write_bytes(pickle.dumps({"format": 1, "items": [_Exploit()]}, protocol=2))
    else:
        torch.save({"format": 1, "items": [{"kind": "javascript"}], "notes": []}, path)
    with pytest.raises(measurements.MeasurementsError, match=str(path)) as exc:
        measurements.load(path)
    assert "--force" in str(exc.value)
    graded = GradingResults("toy", "x", tests=[], sandboxed=True)
    graded.write(tmp_path, "t")
    assert report.write_report(tmp_path, "bob") == tmp_path / report.REPORT
    html = (tmp_path / report.REPORT).read_text()
    assert "measurements could not be read" in html and str(tmp_path) not in html
    captured = capsys.readouterr()
    assert str(path) in captured.err and "unpickled!" not in captured.out


@pytest.fixture(scope="module")
def hostile_page(tmp_path_factory) -> Path:
    """Everything a student controls, made to look like markup."""
    folder = tmp_path_factory.mktemp("hostile")
    t = TestResult(f"test_x::test_{HOSTILE}", HOSTILE, 1, 0, "error", f"error: {HOSTILE}", False,
                   None)  # fmt: skip
    GradingResults("toy", "x", tests=[t], notes=[HOSTILE], sandboxed=True).write(folder, "t")
    m = Measurements()
    m.images("i", HOSTILE, torch.zeros(1, 4, 4), [HOSTILE], note=HOSTILE)
    m.tiers("nan", HOSTILE, float("nan"), [(HOSTILE, 1.0, t.name)], unit=HOSTILE)
    m.write(folder / measurements.FILE)
    assert report.write_report(folder, HOSTILE) is not None
    cohort = {HOSTILE: GradingResults.read(folder / "results.json")}
    (folder / report.COHORT).write_text(report.cohort_page(cohort, "toy", {HOSTILE: "x.html"}))
    return folder


def test_student_text_is_escaped(hostile_page):
    for page in (report.REPORT, report.COHORT):
        html = (hostile_page / page).read_text()
        assert "<script>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    html = (hostile_page / report.REPORT).read_text()
    assert "not a number" in html and "below every tier" in html  # a NaN reaches no tier


def test_browser_tests_skip_with_the_reason_where_chromium_is_missing(monkeypatch):
    import report_pages

    monkeypatch.setattr(report_pages, "CHROMIUM", Path("/nonexistent/chromium"))
    assert "install Debian's chromium (make system-deps" in report_pages.chromium_missing()
    with pytest.raises(pytest.skip.Exception, match="/nonexistent/chromium is missing"):
        report_pages.check_pages([], Path("/nonexistent"))


def test_failure_messages_count_once_whatever_their_numbers():
    def graded(sid: str, acc: str) -> GradingResults:
        t = TestResult("m::test_tier_1", "", 4, 0, "failed", f"test accuracy {acc} is below 91.1%",
                       False, None)  # fmt: skip
        return GradingResults("cw1", sid, tests=[t], sandboxed=True)

    cohort = {"a": graded("a", "80.12%"), "b": graded("b", "85.00%"), "c": graded("c", "1,000%")}
    (common,) = report.common_failures(cohort)
    assert common["pattern"] == "test accuracy #% is below #%"
    assert (common["count"], common["students"]) == (3, ["a", "b", "c"])
    assert common["tests"] == ["m::test_tier_1"]


def test_names_keep_their_digits_in_failure_patterns():
    """cohort.html grouped "missing weight file intro1_mlp.pt" as "intro#_mlp.pt"."""
    assert report.message_pattern("missing weight file intro1_mlp.pt (cw1_model.pt: 2 MB)") == (
        "missing weight file intro1_mlp.pt (cw1_model.pt: # MB)"
    )
    assert report.message_pattern("layer2.weight: shape (64, 3) != (32, 3), 1e-5 off") == (
        "layer2.weight: shape (#, #) != (#, #), #e-# off"
    )


def _whole_page(tmp_path: Path, graded: GradingResults) -> str:
    cells = [
        report.CellRow("In [4]", "cw1_conv2d_hidden", "the hidden tests", "12 / 15", "", False),
        report.CellRow("the text cell after In [20]", "cw1_justify", "a person", "4 / 5",
                       "Clear, but say why <b>augmentation</b> helps.", False),
        report.CellRow("In [21]", "cw1_errors", "waits for a person", "– / 4", "", True),
    ]  # fmt: skip
    whole = report.WholeMark(cells, score=16.0, max_score=24.0, late_penalty=1.0)
    graded.write(tmp_path, "t")
    assert report.write_report(tmp_path, "alice", whole=whole) == tmp_path / report.REPORT
    return (tmp_path / report.REPORT).read_text()


def test_report_leads_with_the_whole_mark_and_keeps_staff_notes_out(tmp_path):
    t = TestResult("test_conv2d::test_forward", "Outputs match.", 15, 12, "failed",
                   "3 of 15 outputs differ", False, "cw1_conv2d_hidden")  # fmt: skip
    graded = GradingResults(
        "cw1", "alice", tests=[t], sandboxed=False, flags=["cw1_model.pt is a copy of bob's"],
        notes=["NOT SANDBOXED: student code ran in a limited process only, its memory ...",
               "missing file: extra.pt"],
    )  # fmt: skip
    html = _whole_page(tmp_path, graded)
    assert "Your mark: <strong>15 / 24 (after a late penalty of 1)</strong>" in html
    assert "not final: 1 cell still to be marked by a person" in html
    assert "Clear, but say why &lt;b&gt;augmentation&lt;/b&gt; helps." in html  # escaped
    assert "<td>the text cell after In [20]</td>" in html and "– / 4" in html
    assert "Of it, from the hidden tests: <strong>12 / 15</strong>" in html
    assert "missing file: extra.pt" in html  # the student's own business
    for staff in ("FLAG", "a copy of bob", "SANDBOXED", "sandbox"):
        assert staff not in html, staff
    assert stat.S_IMODE((tmp_path / report.REPORT).stat().st_mode) == 0o644


def test_gradebook_comments_lose_only_the_graders_paragraph():
    note = "Isolated grader: status complete - FLAGGED; sandboxed; FLAG: x.pt is a copy"
    assert gradebook.for_student(note) == ""
    assert gradebook.for_student(f"Good.\n\n{note}") == "Good."
    assert gradebook.for_student(f"{note}\n\nGood, but cite it.") == "Good, but cite it."
    assert gradebook.for_student(None) == "" and gradebook.for_student("No response.") == (
        "No response."
    )


@pytest.mark.slow
def test_pages_render_in_chromium(toy, cw1_page, cw2_page, hostile_page, tmp_path_factory):
    pages = [toy / s / report.REPORT for s in ("good", "raising", "changed")]
    pages += [toy / report.COHORT, cw1_page, cw2_page, hostile_page / report.REPORT,
              hostile_page / report.COHORT]  # fmt: skip
    seen = check_pages(pages, tmp_path_factory.mktemp("report-screenshots"))
    assert seen[cw1_page]["images"] == 17 and seen[cw2_page]["images"] == 113
    assert seen[toy / report.COHORT]["images"] == 2
