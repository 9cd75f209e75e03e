"""The portal in a real browser: `batchai portal` as a user starts it, Debian's Chromium driven by
Playwright (no browser download is possible here), and a screenshot of every failure."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import pytest

from tests.jobs.conftest import lab  # noqa: F401  (a workspace, experiment and cluster)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Portal:
    def __init__(self, url: str, process: subprocess.Popen):
        self.url = url  # with ?token=
        self.base = url.split("/?", 1)[0]
        self.process = process


@pytest.fixture
def portal(lab, home):  # noqa: F811
    process = subprocess.Popen(
        [sys.executable, "-m", "batchai_cli", "portal", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BATCHAI_HOME": os.environ["BATCHAI_HOME"]},
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:"), f"no URL from batchai portal: {line!r} {process.stderr.read()}"
        yield Portal(line, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, tmp_path, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@contextlib.contextmanager
def shot_on_failure(page, tmp_path, name: str = "failure"):
    """Re-raise any failure as an AssertionError naming a screenshot of the page at that moment."""
    try:
        yield
    except BaseException as exc:
        path = tmp_path / f"{name}-{int(time.time() * 1000)}.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(path), full_page=True)
        raise AssertionError(f"{exc}\nscreenshot of the page: {path}") from exc
