"""Class-sized screenshots (run by hand): what a projector at 1280 x 720 shows in classroom mode.

    python bench/classroom_screenshots.py [--out assets/screenshots/classroom]

Starts `streamlit run app.py` on the shipped checkpoint, turns classroom mode on, runs the "A phrase read
8 times" demo and saves the first screen of each figure Explore shows one at a time (the picker's order),
then the first screen of every Learn lesson. docs/dashboard.md "Classroom mode" shows them; a reviewer
reads each caption against its figure there. Every wait is on the page's state.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app_pages.classroom import FIGURES  # noqa: E402  (a constant: importing it runs no page)
from tests.support.browser import click, go, launch_chromium, open_app, running_app, wait_idle  # noqa: E402

SIZE = {"width": 1280, "height": 720}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def settle(page):
    page.wait_for_timeout(300)  # the click's rerun starts
    wait_idle(page)
    page.wait_for_timeout(800)  # charts finish drawing (a screenshot, not a test: nothing is asserted)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "assets" / "screenshots" / "classroom"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright
    with running_app() as url, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport=SIZE)
        page.set_default_timeout(180_000)
        open_app(page, url)
        page.locator('[data-testid="stSidebar"]').get_by_text("Classroom mode").click()
        settle(page)
        click(page, "A phrase read 8 times")
        page.get_by_text("Mean loss (nats)").wait_for()
        settle(page)
        picker = page.locator('[data-testid="stButtonGroup"]').filter(has_text="Continue a prompt")  # the figure picker
        for figure in FIGURES:
            picker.get_by_role("radio", name=figure, exact=True).click()
            settle(page)
            if figure == "Verdict":
                click(page, "What did test-time learning do here?")
                settle(page)
            page.mouse.move(0, 0)  # no tooltip over the figure (the page has scrolled to it)
            page.screenshot(path=out / f"explore-{slug(figure)}.png")
        go(page, "Learn")
        settle(page)
        tabs = page.locator('[data-testid="stTab"]')
        for i in range(tabs.count()):
            name = tabs.nth(i).inner_text().strip()
            tabs.nth(i).click()
            settle(page)
            page.screenshot(path=out / f"learn-{i + 1}-{slug(name)}.png")
        browser.close()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
