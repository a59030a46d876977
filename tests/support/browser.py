"""Shared helpers for the browser tests and the benchmarks that drive a real browser (bench/): start
``streamlit run app.py`` on a free port, launch Debian's Chromium headless, open isolated sessions, wait
for a page to settle and fail on any error element."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("NLE_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 120_000  # a ceiling on state waits, not a wait: a loaded CI box needs room (issue 29 item 8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"streamlit did not become healthy within {seconds} s")


@contextlib.contextmanager
def running_app(env: dict | None = None, log_path: Path | None = None):
    """``streamlit run app.py`` on a free local port; yields its URL once healthy, then stops it (the
    benchmark bench/bench_app.py uses it too)."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1"]
    # A file, not a pipe (an unread pipe fills and blocks the server).
    log = open(log_path, "wb") if log_path else open(os.devnull, "wb")
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)  # its own process group
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process)
        yield url
    finally:
        log.close()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def app_serving(model, folder: Path, metrics: str | None = None):
    """``streamlit run app.py`` with ``model`` saved in ``folder`` as its default checkpoint (``metrics``: the
    lines of its metrics file); yields the URL."""
    from nested_learning import save_checkpoint
    from nested_learning.metrics_file import metrics_path
    checkpoint = save_checkpoint(model, folder / "model.safetensors")
    if metrics is not None:
        metrics_path(checkpoint).write_text(metrics)
    with running_app({"NLE_DEFAULT_CHECKPOINT": str(checkpoint)}, folder / "streamlit.log") as url:
        yield url


def launch_chromium(playwright):
    """Debian's Chromium, headless (Playwright's own browser download does not work here)."""
    assert Path(CHROMIUM).is_file(), f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])


@contextlib.contextmanager
def session_page(browser, height: int = 1400, width: int = 1400, **options):
    """A page in a browser context of its own: a new Streamlit session, closed afterwards."""
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        yield page
    finally:
        context.close()


FIRST_LOAD_MS = 180_000  # a fresh session's first script run loads PyTorch and the model: minutes on a loaded CI box


def wait_idle(page, timeout_ms: float | None = None):
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=timeout_ms)
    page.wait_for_timeout(150)  # let the last deltas render
    assert_no_errors(page)


def open_app(page, url: str):
    """Open ``url`` in ``page`` and wait for its first script run to finish (see FIRST_LOAD_MS)."""
    page.goto(url, timeout=FIRST_LOAD_MS)
    wait_idle(page, FIRST_LOAD_MS)


def assert_no_errors(page):
    for test_id in ("stException", "stAlertContentError"):
        found = page.locator(f'[data-testid="{test_id}"]')
        assert found.count() == 0, f"{test_id}: {found.first.inner_text()}"


def click(page, name: str):
    page.get_by_role("button", name=name, exact=True).click()


def select_pill(page, name: str, tries: int = 3):
    """Click the pill ``name`` until the browser shows it selected: a click landing while the page redraws
    is lost (on a loaded machine, often). The selection shows in the browser before any rerun, so a
    retry never undoes a click that landed."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    pill = page.get_by_role("button", name=name, exact=True)
    selected = page.get_by_role("button", name=name, exact=True, pressed=True)
    for _ in range(tries):
        if selected.count():
            return
        pill.click()
        try:
            selected.wait_for(timeout=10_000)
            return
        except PlaywrightTimeout:
            wait_idle(page)
    raise AssertionError(f"the pill {name!r} was clicked {tries} times and is not selected")


def click_until(page, name: str, shown, tries: int = 3):
    """Click the button ``name`` until the locator ``shown`` appears (a lost click is clicked again once
    the page is idle and ``shown`` is still missing)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    for _ in range(tries):
        click(page, name)
        try:
            shown.wait_for()
            return
        except PlaywrightTimeout:
            wait_idle(page)
            if shown.count():
                return
    raise AssertionError(f"clicked {name!r} {tries} times and the page never showed what it should")


def go(page, title: str):
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
    page.get_by_role("heading", level=1).first.wait_for()
    wait_idle(page)
