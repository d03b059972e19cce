"""``dynaclr explore`` in a real headless browser (Debian's Chromium through playwright).

Skipped when no Chromium is installed (``apt-get install chromium``) or playwright is
missing; the page itself is always built and checked for its data. A screenshot is kept
under ``test-artifacts/`` at the repository root (ignored by git).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from dynaclr.cli import main as dynaclr

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def page_path(embedding_study, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("explore")
    store = root / "signal.zarr"
    shutil.copytree(embedding_study.signal, store)
    dynaclr(["annotate", str(store), str(embedding_study.annotations)])
    dynaclr(["reduce", str(store)])
    out = root / "explore.html"
    assert (
        dynaclr(
            [
                "explore",
                str(store),
                "--plate",
                str(embedding_study.plate),
                "--out",
                str(out),
                "--crop-size",
                "24",
            ]
        )
        == 0
    )
    return out


def test_page_is_self_contained(page_path, embedding_study):
    html = page_path.read_text()
    assert "http://" not in html and "https://" not in html  # no network needed
    data = json.loads(re.search(r"const DATA = (.*);\n", html).group(1).replace("<\\/", "</"))
    n = len(embedding_study.cells)
    assert len(data["x"]) == len(data["thumbs"]) == n
    assert all(t.startswith("data:image/png;base64,") for t in data["thumbs"])
    assert data["colorBy"] == "infection_state"
    assert data["key"] == "X_pca"


def test_page_in_headless_chromium(page_path, embedding_study):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri())
            page.wait_for_selector("#scatter[data-points-drawn]")
            n = len(embedding_study.cells)
            assert page.get_attribute("#scatter", "data-points-drawn") == str(n)
            assert page.locator("#track img.thumb").count() == 0
            i = 7
            x, y = page.evaluate(f"window.explorer.pagePosition({i})")
            page.mouse.move(x, y)
            assert page.locator("#hover img").count() == 1
            page.mouse.click(x, y)
            expected = page.evaluate(f"window.explorer.trackLength({i})")
            assert expected >= 2
            thumbs = page.locator("#track img.thumb")
            assert thumbs.count() == expected
            assert thumbs.first.evaluate("img => img.complete && img.naturalWidth") == 24
            page.select_option("#color-by", "t")
            assert page.get_attribute("#scatter", "data-points-drawn") == str(n)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "explore.png"))
        finally:
            browser.close()
    assert errors == []
