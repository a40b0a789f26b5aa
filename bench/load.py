"""Benchmark: many concurrent browser sessions on one dashboard server (a team browsing one database).

Run by hand: ``.venv/bin/python bench/load.py [--db PATH] [--images 100000] [--sessions 20]
[--rounds 1] [--chromium /usr/bin/chromium]``.

It builds (or reuses, ``--db``) the synthetic results database of ``bench/dashboard.py`` with
``--images`` test images and its summaries, starts ``retcore dashboard`` on a free loopback port
(nothing else is reachable), and opens ``--sessions`` browser sessions at once in headless
Chromium (one browser, one context per session, as separate users: separate Streamlit sessions
and websockets). Every session visits every page, ``--rounds`` times, each starting at a different
page so the pages are spread over the sessions. A visit is timed from navigation until the page's
title is drawn and Streamlit's status widget has stopped showing a run (the time of the first of
four quiet polls, 0.1 s apart); it is an error when the page shows an exception, "Page not found",
or does not settle within ``--timeout`` seconds.

Printed: per page, visits, median / 95th percentile / slowest seconds and errors; the slowest visit
overall against the 3 s target, and the load average. The load generator (Chromium drawing 20 pages
with charts) runs on the same machine as the server, so on a small machine it competes with the
server for the same cores: the numbers are an upper bound of what a user on another machine sees.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGES = [("", "Overview"), ("confidence", "Confidence vs focus"), ("drift", "Class drift"),
         ("quality", "Image quality"), ("cases", "Cases"), ("compare", "Compare runs"),
         ("methods", "Methods"), ("study", "Study"), ("jobs", "Jobs")]
TARGET_S = 3.0
RUNNING = re.compile("Running|Stop")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"dashboard did not answer at {url}")


async def _visit(page, base: str, path: str, title: str, timeout_s: float) -> tuple[float, str | None]:
    """Seconds until ``path`` is drawn and settled, and the error (None when fine)."""
    started = time.perf_counter()
    try:
        await page.goto(f"{base}/{path}", wait_until="domcontentloaded", timeout=timeout_s * 1000)
        await page.wait_for_selector(f"h1:has-text('{title}')", timeout=timeout_s * 1000)
        deadline = started + timeout_s
        quiet_since, quiet = None, 0
        while time.perf_counter() < deadline:
            running = await page.locator('[data-testid="stStatusWidget"]').filter(has_text=RUNNING).count()
            if running:
                quiet_since, quiet = None, 0
            else:
                quiet_since = quiet_since or time.perf_counter()
                quiet += 1
                if quiet >= 4:
                    break
            await asyncio.sleep(0.1)
        else:
            return time.perf_counter() - started, "kept running"
        seconds = quiet_since - started
        if await page.locator('[data-testid="stException"]').count():
            return seconds, "exception shown"
        if await page.get_by_text("Page not found").count():
            return seconds, "page not found"
        return seconds, None
    except Exception as exc:  # a timeout or a broken connection is an error of this visit
        return time.perf_counter() - started, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


async def _session(browser, base: str, index: int, rounds: int, timeout_s: float, results: list) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    order = PAGES[index % len(PAGES):] + PAGES[:index % len(PAGES)]
    try:
        for _ in range(rounds):
            for path, title in order:
                seconds, error = await _visit(page, base, path, title, timeout_s)
                results.append((index, path or "overview", seconds, error))
    finally:
        await context.close()


async def _load(base: str, chromium: str, sessions: int, rounds: int, timeout_s: float) -> list:
    from playwright.async_api import async_playwright

    results: list = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        try:
            await asyncio.gather(*(_session(browser, base, i, rounds, timeout_s, results) for i in range(sessions)))
        finally:
            await browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=None, help="Reuse (or create) this database file.")
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a visit counts as failed")
    parser.add_argument("--chromium", default=os.environ.get("RETCORE_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()

    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="retcore-load-")
        args.db = Path(tmp.name) / "results.duckdb"
    if not args.db.exists():
        from bench.dashboard import build_database
        from jobs.summarize import run_summarize

        t0 = time.perf_counter()
        build_database(args.db, args.images)
        run_summarize(args.db, echo=lambda line: None)
        print(f"built {args.db} ({args.images:,} images) with its summaries in {time.perf_counter() - t0:.0f} s",
              flush=True)
    port = _free_port()
    retcore = Path(sys.executable).with_name("retcore")
    cmd = [str(retcore)] if retcore.exists() else [sys.executable, "-m", "jobs.cli"]
    server = subprocess.Popen([*cmd, "dashboard", "--db", str(args.db), "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/_stcore/health")
        print(f"server {base}; {args.sessions} sessions x {len(PAGES)} pages x {args.rounds} round(s); "
              f"load average before {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        t0 = time.perf_counter()
        results = asyncio.run(_load(base, args.chromium, args.sessions, args.rounds, args.timeout))
        wall = time.perf_counter() - t0
        load = os.getloadavg()[0]
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"\n{'page':<12} {'visits':>6} {'median':>7} {'p95':>7} {'slowest':>8} {'errors':>6}")
    for _path, title in PAGES:
        name = _path or "overview"
        rows = [r for r in results if r[1] == name]
        secs = sorted(r[2] for r in rows)
        p95 = secs[min(len(secs) - 1, int(0.95 * len(secs)))]
        errors = sum(r[3] is not None for r in rows)
        print(f"{name:<12} {len(rows):6d} {statistics.median(secs):7.2f} {p95:7.2f} {secs[-1]:8.2f} {errors:6d}")
    failed = [r for r in results if r[3] is not None]
    slowest = max(r[2] for r in results)
    print(f"\n{len(results)} visits in {wall:.0f} s; slowest {slowest:.2f} s (target <= {TARGET_S:.0f} s: "
          f"{'met' if slowest <= TARGET_S and not failed else 'NOT met'}); {len(failed)} errors; "
          f"load average {load:.1f} on {os.cpu_count()} cores")
    for index, page, _seconds, error in failed[:10]:
        print(f"  session {index} {page}: {error}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
