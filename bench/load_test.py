"""Load test (run by hand): several browser sessions use one dashboard server at once.

    python bench/load_test.py --sessions 8 --runs 3 --tokens 2000

Starts `streamlit run app.py` (the shipped checkpoint, the admission settings from NLE_* variables),
opens ``--sessions`` headless Chromium contexts at once (Debian's /usr/bin/chromium, Playwright's async
API), and in each types a ``--tokens``-byte text and presses Run ``--runs`` times (pressing Reset first
when the memory would overflow). Reports per-run latency (click -> "Read ..." status) percentiles, how
many runs waited in the queue, were stopped at the deadline or refused, and the server's peak resident
memory (VmHWM of the Streamlit process) and CPU time (what the class cost the server itself; the
browsers take the rest of the 2 cores). Numbers go in docs/dashboard.md "Serving a classroom".
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import CHROMIUM, running_app  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server process so far (what the class cost the server itself)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of the server process (VmHWM; Streamlit serves every session from one
    process), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one_session(browser, url: str, index: int, runs: int, text: str, timeout_ms: int) -> list[dict]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1200})
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    outcomes = []
    try:
        await page.goto(url)
        await page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()
        await page.get_by_text("Type", exact=True).click()
        await page.get_by_label("Text").wait_for()
        await page.get_by_label("Text").fill(text)
        await page.get_by_label("Text").press("Control+Enter")
        await page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()
        idle = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
        for run in range(runs):
            queued = False
            started = time.monotonic()
            await page.get_by_role("button", name="Run", exact=True).click()
            try:  # a run that starts and ends between two polls is missed: then it is already idle
                await page.locator('[data-testid="stApp"][data-test-script-state="running"]').wait_for(timeout=5000)
            except Exception:
                pass
            while not await idle.count():  # polled 4 times a second: the harness's own CPU competes with the server
                queued = queued or bool(await page.get_by_text("in the queue", exact=False).count())
                await asyncio.sleep(0.25)
            seconds = time.monotonic() - started
            refused = page.locator('[data-testid="stAlertContentError"]')
            if await refused.count():
                outcome, message = "refused", (await refused.first.inner_text())[:200]
            else:
                outcome, message = ("partial" if await page.get_by_text("Stopped at the", exact=False).count()
                                    else "complete"), ""
            outcomes.append({"session": index, "run": run, "outcome": outcome, "message": message,
                             "seconds": seconds, "queued": queued})
    finally:
        await context.close()
    return outcomes


async def main_async(args) -> dict:
    from playwright.async_api import async_playwright
    text = ("the quiet river bends past the old mill, and the miller counts the sacks. " * 40)[:args.tokens]
    with running_app(log_path=Path(args.log)) as url:
        import subprocess
        pid = int(subprocess.run(["pgrep", "-f", f"streamlit run app.py.*{url.rsplit(':', 1)[1]}"],
                                 capture_output=True, text=True).stdout.split()[0])
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            started, cpu_before = time.monotonic(), cpu_seconds(pid)
            results = await asyncio.gather(*[one_session(browser, url, i, args.runs, text, args.timeout * 1000)
                                             for i in range(args.sessions)])
            wall, server_cpu = time.monotonic() - started, cpu_seconds(pid) - cpu_before
            await browser.close()
        peak = peak_rss_mb(pid)
    outcomes = [o for session in results for o in session]
    seconds = sorted(o["seconds"] for o in outcomes if o["outcome"] != "refused")
    quantile = (lambda q: seconds[min(len(seconds) - 1, int(q * len(seconds)))]) if seconds else (lambda q: float("nan"))
    return {"sessions": args.sessions, "runs_per_session": args.runs, "tokens": args.tokens, "wall_s": round(wall, 1),
            "complete": sum(o["outcome"] == "complete" for o in outcomes),
            "partial": sum(o["outcome"] == "partial" for o in outcomes),
            "refused": sum(o["outcome"] == "refused" for o in outcomes),
            "queued": sum(o["queued"] for o in outcomes),
            "latency_s": {"p50": round(quantile(0.5), 2), "p90": round(quantile(0.9), 2), "max": round(seconds[-1], 2) if seconds else None,
                          "mean": round(statistics.mean(seconds), 2) if seconds else None},
            "server_peak_rss_mb": round(peak), "server_cpu_s": round(server_cpu, 1), "load_average_1min": os.getloadavg()[0], "refusals": [o["message"] for o in outcomes if o["outcome"] == "refused"][:3]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--timeout", type=int, default=300, help="seconds one browser step may take")
    parser.add_argument("--log", default="/tmp/load_test_streamlit.log")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=1))


if __name__ == "__main__":
    main()
