"""Real-browser test: headless Chromium against ``retcore dashboard`` loads every page.

Needs Chromium at /usr/bin/chromium (``apt-get install chromium``; ``.ci/run``
installs it) and the ``playwright`` package; skipped cleanly otherwise.
Screenshots land in pytest's ``tmp_path`` (printed at the end).
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("RETCORE_CHROMIUM", "/usr/bin/chromium"))
PAGES = [("", "Overview"), ("confidence", "Confidence vs focus"), ("drift", "Class drift"),
         ("quality", "Image quality"), ("cases", "Cases"), ("compare", "Compare runs"),
         ("methods", "Methods"), ("study", "Study"), ("jobs", "Jobs")]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"dashboard did not answer at {url}")


@pytest.fixture(scope="module")
def server(tiny_explained):
    port = _free_port()
    retcore = Path(sys.executable).with_name("retcore")
    cmd = [str(retcore)] if retcore.exists() else [sys.executable, "-m", "jobs.cli"]
    proc = subprocess.Popen([*cmd, "dashboard", "--db", str(tiny_explained["db"]), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        _wait_http(f"http://127.0.0.1:{port}/_stcore/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _settle(page, timeout_s: float = 90.0) -> None:
    """Wait until the app has drawn and Streamlit's status widget no longer shows a run
    ('Running...' or its 'Stop' button)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_s * 1000)
    page.wait_for_selector("h1", timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').filter(has_text=re.compile("Running|Stop")).count()
        quiet = quiet + 1 if running == 0 else 0
        if quiet >= 4:  # 4 polls in a row without 'Running'
            return
        time.sleep(0.25)
    raise TimeoutError("the page kept running")


def test_every_page_loads_in_chromium(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path, title in PAGES:
                page.goto(f"{server}/{path}", wait_until="domcontentloaded")
                _settle(page)
                page.wait_for_selector(f"h1:has-text('{title}')", timeout=60_000)
                assert page.get_by_text("Page not found").count() == 0, f"{path}: unknown page"
                assert page.locator('[data-testid="stException"]').count() == 0, f"{path}: exception shown"
                if path in ("", "confidence", "drift", "quality", "methods"):
                    page.wait_for_selector('[data-testid="stVegaLiteChart"] canvas, '
                                           '[data-testid="stVegaLiteChart"] svg', state="attached", timeout=60_000)
                if path == "cases":
                    page.wait_for_selector('[data-testid="stImage"] img', state="attached", timeout=60_000)
                shot = tmp_path / f"{path or 'overview'}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
                shots.append(shot)
            # the filters survive in the URL: a shared link opens the same view
            page.goto(f"{server}/confidence?method=gae&split=test", wait_until="domcontentloaded")
            _settle(page)
            assert "method=gae" in page.url
        finally:
            browser.close()
    print("screenshots:", *shots, sep="\n  ")
