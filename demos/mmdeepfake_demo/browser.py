"""Drive the page in a real headless Chromium: the browser test and the timing script use it.

Playwright drives the system's Chromium (Debian package ``chromium``) through
``executable_path``, so no browser is downloaded. Timings are taken in the page itself: from the
click on *Detect* to the verdict label appearing, then to the explanation views being drawn.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
]


def find_chromium() -> str | None:
    """Path of a system Chromium, or None when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass(frozen=True)
class PageRun:
    """What one upload-and-detect round trip through the page showed and how long it took."""

    verdict_text: str
    seconds_to_verdict: float
    seconds_to_explanation: float
    gallery_images: int
    screenshot: Path


def detect_through_page(
    url: str,
    video: str | os.PathLike,
    screenshot: str | os.PathLike,
    *,
    timeout_s: float = 300.0,
    chromium: str | None = None,
) -> PageRun:
    """Open the page, upload ``video``, click Detect, wait for every view, save a screenshot."""
    from playwright.sync_api import sync_playwright

    executable = chromium or find_chromium()
    if executable is None:
        raise FileNotFoundError("no chromium executable found (apt-get install chromium)")
    timeout_ms = timeout_s * 1000
    screenshot = Path(screenshot)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, timeout=timeout_ms)
            page.wait_for_selector("#detect", timeout=timeout_ms)
            page.locator("#video-input input[type=file]").set_input_files(str(video))
            page.wait_for_selector("#video-input video", timeout=timeout_ms)
            start = time.perf_counter()
            page.click("#detect")
            page.wait_for_selector("#verdict h2, .toast-body", timeout=timeout_ms)
            if page.locator(".toast-body").count():
                raise RuntimeError(
                    f"the page showed an error: {page.locator('.toast-body').first.inner_text()}"
                )
            to_verdict = time.perf_counter() - start
            page.wait_for_selector("#gallery img", timeout=timeout_ms)
            page.wait_for_selector("#spectrogram img", timeout=timeout_ms)
            page.wait_for_selector("#timeline .js-plotly-plot", timeout=timeout_ms)
            to_explanation = time.perf_counter() - start
            page.wait_for_timeout(500)  # let plotly finish its first paint
            page.screenshot(path=str(screenshot), full_page=True)
            return PageRun(
                verdict_text=page.locator("#verdict h2").inner_text().strip(),
                seconds_to_verdict=to_verdict,
                seconds_to_explanation=to_explanation,
                gallery_images=page.locator("#gallery img").count(),
                screenshot=screenshot,
            )
        finally:
            browser.close()
