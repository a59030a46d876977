"""Dashboard speed (run by hand): a 512-token sequence on the default model.

Server side (always): median of N rounds of
  run        session.run (the recording) + the timelines without the CMS raster, serialised: what the
             page shows first after Run
  events     CMS update events + the full timelines, serialised (the raster drawn a moment later)
  payload    the memory player's bytes (once per run, layer and head)
  settled    what the server draws when the player settles on a token with the CMS panel open
  replay     building the CMS replay checkpoints (the first settle on a layer)
Browser (--browser): `streamlit run app.py` headless, Chromium via Playwright: Run click -> metrics
visible, -> first chart drawn, -> page settled (the player with its coloured text drawn, script idle); bytes
the server sent (websocket frames) for the run, for a whole-page rerun whose figures were all sent before
(All heads switched on, then off: the second), and per scrub step; one
slider key -> the player redrawn, -> the server's panels updated; Play's steps per second at 30 asked.
The browser renders in software on the same cores as the server, so these are pessimistic. --screenshots
saves one PNG per page to assets/screenshots/.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

import plotly.io as pio
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nested_learning.viz import heatmaps, models, player, timelines  # noqa: E402
from nested_learning.recording.replay import CMSReplay  # noqa: E402
from nested_learning.viz.presets import TEXT_PRESETS  # noqa: E402
from nested_learning.viz.session import MemorySession  # noqa: E402


def text_of(n: int) -> str:
    base = TEXT_PRESETS["distractor"].text
    return (base * (n // len(base) + 1))[:n]


def median_ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1e3:.0f} ms (min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f})"


def server_side(model, text: str, rounds: int):
    run, events, payload_build, settle, replay_build = [], [], [], [], []
    rng = random.Random(0)
    for r in range(rounds + 1):
        started = time.perf_counter()
        recording = MemorySession("bench").run(model, text).recording
        pio.to_json(timelines.timeline_figure(recording), validate=False)
        first = time.perf_counter() - started
        started = time.perf_counter()
        pio.to_json(timelines.timeline_figure(recording, recording.cms_events()), validate=False)
        second = time.perf_counter() - started
        started = time.perf_counter()
        data = player.payload(recording, 0, 0, "bench")
        build_payload = time.perf_counter() - started
        started = time.perf_counter()
        replay = CMSReplay(recording, 0)
        replay.states(0)
        build = time.perf_counter() - started
        moves = []
        for _ in range(10):  # what the server draws when the player settles with the CMS panel open
            t = rng.randrange(recording.n_tokens)
            started = time.perf_counter()
            pio.to_json(heatmaps.cms_figure(replay.weights(t), model.config.cms_periods), validate=False)
            moves.append(time.perf_counter() - started)
        if r:  # the first round warms up
            run.append(first), events.append(second), replay_build.append(build), settle.extend(moves)
            payload_build.append(build_payload)
    print(f"server, {len(text)} tokens, {model.config.n_layers} layers x {model.config.n_heads} heads, "
          f"torch threads {torch.get_num_threads()}:")
    print(f"  run -> first results   {median_ms(run)}")
    print(f"  + CMS raster           {median_ms(events)}")
    print(f"  player payload         {median_ms(payload_build)}  ({len(data) / 1e6:.2f} MB, once per run, layer and head)")
    print(f"  settled token          {median_ms(settle)}  (the CMS panels)")
    print(f"  CMS replay build       {median_ms(replay_build)}  (first settle on a layer)")


class Traffic:
    """Bytes the server sends the page (websocket frames), counted from a mark."""

    def __init__(self, page):
        self.total = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._add))

    def _add(self, frame):
        self.total += len(frame)

    def since(self, mark: int) -> str:
        return f"{(self.total - mark) / 1e3:.0f} KB"


def browser_side(text: str, rounds: int, screenshots: bool):
    from playwright.sync_api import sync_playwright

    from tests.support.browser import launch_chromium, running_app
    n = len(text.encode())
    with running_app() as url, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        traffic = Traffic(page)
        idle = '[data-testid="stApp"][data-test-script-state="notRunning"]'
        started = time.perf_counter()  # a fresh server: its first script run imports PyTorch and loads the model
        page.goto(url, wait_until="domcontentloaded")
        frontend = time.perf_counter() - started  # Streamlit's own page and scripts, before any of ours runs
        page.locator('[data-testid="stMain"] [data-testid="stElementContainer"]').first.wait_for()
        first_paint = time.perf_counter() - started
        page.get_by_role("button", name="Run", exact=True).wait_for()
        page_ready = time.perf_counter() - started
        page.locator(idle).wait_for()
        page.locator('[data-testid="stButtonGroup"] button', has_text=re.compile("^Type$")).click()
        page.locator(idle).wait_for()
        page.get_by_label("Text").fill(text)
        page.keyboard.press("Control+Enter")  # commit the text area
        page.get_by_text(f"{n} tokens (UTF-8 bytes)").wait_for()
        page.locator(idle).wait_for()
        rows = {k: [] for k in ("metrics", "chart", "settled", "run_bytes", "rerun_bytes", "key", "panels",
                                "step_bytes", "play")}
        slider = page.locator('input[type="range"][aria-label="Token"]')
        for r in range(rounds + 1):
            page.locator('[data-testid="stMain"]').get_by_role("button", name="Reset memory").click()
            page.get_by_text("Tokens in this run").wait_for(state="detached")
            page.locator(idle).wait_for()
            mark, started = traffic.total, time.perf_counter()
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Tokens in this run").wait_for()
            metrics = time.perf_counter() - started
            page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()  # drawn, not just attached
            chart = time.perf_counter() - started
            page.get_by_text(f"Token {n - 1} (stream position").wait_for()  # the player has drawn the run
            page.locator(idle).wait_for()
            settled = time.perf_counter() - started
            run_bytes = traffic.since(mark)
            page.get_by_text("All heads").click()  # a whole-page rerun, then one that shows nothing new:
            page.get_by_text("L0 H0").first.wait_for()
            page.locator(idle).wait_for()
            mark = traffic.total  # every figure of the second has been sent before
            page.get_by_text("All heads").click()
            page.get_by_text("L0 H0").first.wait_for(state="detached")
            page.locator(idle).wait_for()
            rerun_bytes = traffic.since(mark)
            slider.focus()
            mark, started = traffic.total, time.perf_counter()
            slider.press("ArrowLeft")  # one scrub step: the player redraws, then the server's panels follow
            page.get_by_text(f"Token {n - 2} (stream position").wait_for()
            key = time.perf_counter() - started
            page.wait_for_url(f"**token={n - 2}**")
            page.locator(idle).wait_for()
            panels = time.perf_counter() - started
            step_bytes = traffic.since(mark)
            slider.press("Home")  # Play from the first token
            page.get_by_label("Steps per second").select_option("30")
            page.get_by_role("button", name="Play", exact=True).click()
            first_token = int(page.locator(".player").get_attribute("data-token"))
            started = time.perf_counter()
            page.wait_for_timeout(2000)
            steps = int(page.locator(".player").get_attribute("data-token")) - first_token
            played = steps / (time.perf_counter() - started)
            page.get_by_role("button", name="Pause", exact=True).click()
            page.wait_for_url(f"**token={page.locator('.player').get_attribute('data-token')}**")  # Pause reported
            page.get_by_label("Steps per second").select_option("4")
            page.locator(idle).wait_for()
            if r:
                for name, value in (("metrics", metrics), ("chart", chart), ("settled", settled), ("run_bytes", run_bytes),
                                    ("rerun_bytes", rerun_bytes), ("key", key), ("panels", panels),
                                    ("step_bytes", step_bytes), ("play", played)):
                    rows[name].append(value)
        print("browser (Chromium headless, same machine):")
        print(f"  fresh server: Streamlit's page loaded         {frontend * 1000:.0f} ms")
        print(f"  fresh server: first paint                    {first_paint * 1000:.0f} ms")
        print(f"  fresh server: Run button ready               {page_ready * 1000:.0f} ms")
        print(f"  Run click -> metrics visible                {median_ms(rows['metrics'])}")
        print(f"  Run click -> first chart drawn              {median_ms(rows['chart'])}")
        print(f"  Run click -> page settled                   {median_ms(rows['settled'])}")
        print(f"  bytes sent for a run                        {', '.join(rows['run_bytes'])}")
        print(f"  bytes sent for a rerun with nothing new     {', '.join(rows['rerun_bytes'])}  (All heads off again)")
        print(f"  slider key -> player redrawn                {median_ms(rows['key'])}")
        print(f"  slider key -> server's panels updated       {median_ms(rows['panels'])}")
        print(f"  bytes sent per scrub step                   {', '.join(rows['step_bytes'])}")
        print(f"  Play at 30 steps/s: steps per second        {', '.join(f'{v:.1f}' for v in rows['play'])}")
        if screenshots:
            take_screenshots(page, idle)
        browser.close()


def settle(page, idle: str):
    page.wait_for_timeout(400)  # the rerun starts
    page.locator(idle).wait_for()


def whole_page(page, path: Path):
    """The app scrolls inside its main block: grow the viewport to the content, then shoot."""
    page.wait_for_timeout(1500)  # charts finish drawing
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(max(900, height + 40), 6000)})
    page.wait_for_timeout(800)
    page.screenshot(path=path)
    page.set_viewport_size({"width": 1400, "height": 1000})


def take_screenshots(page, idle: str):
    out = ROOT / "assets" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    page.get_by_role("button", name="What did test-time learning do here?").click()  # the run's verdict
    settle(page, idle)
    for panel in ("How the settled token was written", "The CMS levels' weights at the settled token"):
        page.get_by_text(panel, exact=False).first.click()  # open the delta rule and the CMS panels
        settle(page, idle)
    whole_page(page, out / "explore.png")
    steps = {"compare": ("Compare", "Compare"), "learn": ("Learn", "Write and recall"),
             "validate": ("Validate", None), "model": ("Model", None)}  # Validate: the saved report
    for name, (link, button) in steps.items():
        page.locator('[data-testid="stSidebarNavLink"]', has_text=link).click()
        settle(page, idle)
        if name == "compare":
            page.get_by_role("button", name="test-time updates", exact=True).click()
            settle(page, idle)
        if button:
            page.get_by_role("button", name=button, exact=True).click()
            settle(page, idle)
        whole_page(page, out / f"{name}.png")
    print(f"screenshots in {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=models.TORCH_THREADS,
                        help="torch threads for the server-side part (the app uses models.TORCH_THREADS)")
    parser.add_argument("--browser", action="store_true", help="also time the page in Chromium")
    parser.add_argument("--screenshots", action="store_true", help="save page screenshots (implies --browser)")
    args = parser.parse_args()
    choice, notice = models.default_choice("cpu")
    print(f"model: {choice.label}" + (" (no shipped checkpoint)" if notice else "") +
          f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work slows every number)")
    text = text_of(args.tokens)
    torch.set_num_threads(args.threads)
    server_side(models.build_model(choice), text, args.rounds)
    if args.browser or args.screenshots:
        browser_side(text, args.rounds, args.screenshots)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
