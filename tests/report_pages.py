"""Report pages opened in headless Chromium, for the report tests (tests/grading/test_report.py).

A page passes when it loads from file://, every image has decoded (naturalWidth > 0), nothing
is logged to the console as an error (a Content Security Policy violation is one), no script
runs, and it asks for nothing but data: URIs. A full-page screenshot of each is kept in the
folder given; `check_pages` prints their paths (`pytest -rA` or `-s` shows them).

Debian's /usr/bin/chromium (`make system-deps`) runs under Playwright's Python package; as root
and without a network it needs the flags in CHROMIUM_ARGS (Playwright adds --headless). Without
either, the tests skip and say why. `chromium()` is the browser itself, for tests that drive a
page (the TA journey's formgrader).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def chromium_missing() -> str | None:
    """Why the pages cannot be checked here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: install Debian's chromium (make system-deps, as root)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing: pip install -c constraints.txt -e '.[dev]'"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium under Playwright (skips the test, saying why, where it cannot run)."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def check_pages(pages: list[Path], shots: Path, browser: Any = None) -> dict[Path, dict]:
    """Open each page; assert it renders cleanly; {page: what was seen} (images, shot)."""
    if browser is None:
        with chromium() as browser:
            return check_pages(pages, shots, browser)
    shots.mkdir(parents=True, exist_ok=True)
    seen: dict[Path, dict] = {}
    for k, page_file in enumerate(pages):
        shot = shots / f"{k:02d}-{_name(page_file)}.png"
        seen[page_file] = _check(browser, Path(page_file), shot)
    for page_file, s in seen.items():
        print(f"screenshot of {page_file}: {s['shot']}")
    return seen


def _name(page_file: Path) -> str:
    return f"{Path(page_file).parent.name}-{Path(page_file).stem}"


def _check(browser, page_file: Path, shot: Path) -> dict:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)  # fmt: skip
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:"))
            else problems.append(f"request for {r.url}"))  # fmt: skip
    page.goto(page_file.resolve().as_uri(), wait_until="load")
    images = page.evaluate(
        "Array.from(document.images).map(i => ({src: i.src.slice(0, 30), ok: i.complete,"
        " width: i.naturalWidth}))"
    )
    scripts = page.evaluate("document.scripts.length")
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    broken = [i for i in images if not i["ok"] or i["width"] <= 0]
    not_data = [i for i in images if not i["src"].startswith("data:image/")]
    where = f"{page_file} (screenshot {shot})"
    assert not problems, f"{where}: {problems}"
    assert not broken, f"{where}: {len(broken)} of {len(images)} images did not render"
    assert not not_data, f"{where}: images not embedded as data: URIs: {not_data}"
    assert scripts == 0, f"{where}: {scripts} script elements"
    return {"images": len(images), "shot": shot}
