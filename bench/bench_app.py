"""Dashboard speed (run by hand): a 512-token sequence on the default model.

Server side (always): median of N rounds of
  run        session.run (the recording) + the timelines without the CMS raster, serialised: what the
             page shows first after Run
  events     CMS update events + the full timelines, serialised (the raster drawn a moment later)
  scrub      what one scrubber move does on the server: M_t and M_t - M_(t-1), the CMS level weights
             (checkpointed replay), the coloured text, both figures serialised
  replay     building the CMS replay checkpoints (the first scrub on a layer)
Browser (--browser): `streamlit run app.py` headless, Chromium via Playwright: Run click -> metrics
visible, -> timelines drawn, -> page idle (raster, heatmaps, text done); one slider key press -> caption
updated. The browser renders in software on the same cores as the server, so these are pessimistic. --screenshots saves
one PNG per page to assets/screenshots/.
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

from nested_learning.viz import heatmaps, models, timelines  # noqa: E402
from nested_learning.recording.replay import CMSReplay  # noqa: E402
from nested_learning.viz.presets import TEXT_PRESETS  # noqa: E402
from nested_learning.viz.safe_text import byte_spans  # noqa: E402
from nested_learning.viz.text_map import text_figure  # noqa: E402
from nested_learning.viz.session import MemorySession  # noqa: E402


def text_of(n: int) -> str:
    base = TEXT_PRESETS["distractor"].text
    return (base * (n // len(base) + 1))[:n]


def median_ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1e3:.0f} ms (min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f})"


def server_side(model, text: str, rounds: int):
    run, events, scrub, replay_build = [], [], [], []
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
        replay = CMSReplay(recording, 0)
        replay.states(0)
        build = time.perf_counter() - started
        moves = []
        for _ in range(10):
            t = rng.randrange(recording.n_tokens)
            started = time.perf_counter()
            matrix = recording.memory_matrix(0, 0, t)  # as the page does: M_t rebuilt once, the delta reuses it
            memory = heatmaps.memory_figures(matrix, matrix - recording.memory_matrix(0, 0, t - 1))
            cms = heatmaps.cms_figure(replay.weights(t), model.config.cms_periods)
            coloured = text_figure(byte_spans(recording.tokens.tolist(), timelines.stream_row(recording, "surprise", 0)),
                                   "surprise", cursor=t)
            [pio.to_json(f, validate=False) for f in (*memory, cms, coloured)]
            moves.append(time.perf_counter() - started)
        if r:  # the first round warms up
            run.append(first), events.append(second), replay_build.append(build), scrub.extend(moves)
    print(f"server, {len(text)} tokens, {model.config.n_layers} layers x {model.config.n_heads} heads, "
          f"torch threads {torch.get_num_threads()}:")
    print(f"  run -> first results   {median_ms(run)}")
    print(f"  + CMS raster           {median_ms(events)}")
    print(f"  scrub (one move)       {median_ms(scrub)}")
    print(f"  CMS replay build       {median_ms(replay_build)}  (first scrub on a layer)")


def browser_side(text: str, rounds: int, screenshots: bool):
    from playwright.sync_api import sync_playwright

    from tests.support.browser import launch_chromium, running_app
    with running_app() as url, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
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
        page.get_by_text(f"{len(text.encode())} tokens (UTF-8 bytes)").wait_for()
        page.locator(idle).wait_for()
        shown, visible, done, scrub = [], [], [], []
        for r in range(rounds + 1):
            page.locator('[data-testid="stMain"]').get_by_role("button", name="Reset memory").click()
            page.get_by_text("Tokens in this run").wait_for(state="detached")
            page.locator(idle).wait_for()
            started = time.perf_counter()
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Tokens in this run").wait_for()
            metrics = time.perf_counter() - started
            page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()  # drawn, not just attached
            first = time.perf_counter() - started
            page.get_by_text(f"Token {len(text) - 1} (stream position").wait_for()
            page.wait_for_timeout(50)
            page.locator(idle).wait_for()
            whole = time.perf_counter() - started
            slider = page.locator('input[type="range"][aria-label="Token"]')  # not the play step slider
            slider.focus()
            started = time.perf_counter()
            slider.press("ArrowLeft")
            page.get_by_text(f"Token {len(text) - 2} (stream position").wait_for()
            moved = time.perf_counter() - started
            page.locator(idle).wait_for()
            if r:
                shown.append(metrics), visible.append(first), done.append(whole), scrub.append(moved)
        print("browser (Chromium headless, same machine):")
        print(f"  fresh server: Streamlit's page loaded         {frontend * 1000:.0f} ms")
        print(f"  fresh server: first paint                    {first_paint * 1000:.0f} ms")
        print(f"  fresh server: Run button ready               {page_ready * 1000:.0f} ms")
        print(f"  Run click -> metrics visible                {median_ms(shown)}")
        print(f"  Run click -> timelines drawn                {median_ms(visible)}")
        print(f"  Run click -> page idle (raster, scrubber)    {median_ms(done)}")
        print(f"  slider key -> caption updated                {median_ms(scrub)}")
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
    page.get_by_text("How token", exact=False).first.click()  # open the delta rule at the scrubbed token
    settle(page, idle)
    whole_page(page, out / "explore.png")
    steps = {"compare": ("Compare", "Compare"), "learn": ("Learn", "Write and recall"),
             "validate": ("Validate", None), "model": ("Model", None)}  # Validate: the saved report
    for name, (link, button) in steps.items():
        page.locator('[data-testid="stSidebarNavLink"]', has_text=link).click()
        settle(page, idle)
        if name == "compare":
            page.get_by_role("button", name="test_time_updates", exact=True).click()
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
