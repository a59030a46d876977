"""Reset wins over a run, in a real browser (issue 29 item 3): pressed mid-run, or right after the memory
player reported its token (a fragment's rerun, after which Streamlit delivered the click without its
callback). Every wait is on the page's state, never on time."""
from __future__ import annotations

import re

import pytest

from tests.conftest import tiny_model
from tests.support.browser import app_serving, click, open_app, session_page, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def slow_app(tmp_path_factory):
    """A model slow enough (about a second for 2,000 tokens) that a click lands mid-run."""
    with app_serving(tiny_model(d_model=256, n_layers=6), tmp_path_factory.mktemp("reset")) as url:
        yield url




def memory_holds(page, tokens: int, runs: list[str]):
    """Wait until the sidebar says the memory holds ``tokens`` and lists exactly ``runs``."""
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text(re.compile(rf"^{tokens} tokens$")).wait_for()
    wait_idle(page)
    assert re.findall(r"Run \d+ \(\d+ tokens at \d+\)", sidebar.inner_text()) == runs


def reset(page):
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Reset memory", exact=True).click()


def test_reset_pressed_mid_run_wins_and_the_counters_agree(browser, slow_app):
    with session_page(browser) as page:
        open_app(page, slow_app)
        page.get_by_text("Type", exact=True).click()
        wait_idle(page)
        page.get_by_label("Text").fill("abcdefghij" * 200)
        page.get_by_label("Text").press("Control+Enter")
        page.get_by_text("2000 tokens (UTF-8 bytes)").wait_for()
        wait_idle(page)
        for _ in range(3):  # a run landing first, then Resets while the model reads
            click(page, "Run")
            page.get_by_text("Reading 2000 tokens").wait_for()
            reset(page)
            memory_holds(page, 0, [])
            assert page.get_by_text("Tokens in this run").count() == 0
        run_once_the_discarded_run_ended(page)  # the next run starts from the empty memory
        memory_holds(page, 2000, ["Run 1 (2000 tokens at 0)"])


def run_once_the_discarded_run_ended(page):
    """Run: a discarded run still finishing its piece holds the session's slot, and the new run waits for it."""
    click(page, "Run")
    page.get_by_text("Tokens in this run").wait_for()


def test_reset_right_after_pause_is_not_lost(browser, slow_app):
    """The player's Pause reports its token (a fragment's rerun); a Reset clicked right after was lost and
    the next Run continued the old memory."""
    with session_page(browser) as page:
        open_app(page, slow_app)
        for _ in range(3):
            click(page, "Run")
            page.get_by_text("Tokens in this run").wait_for()
            wait_idle(page)
            n = int(re.search(r"Memory holds\s+(\d+) tokens", page.locator('[data-testid="stSidebar"]').inner_text())[1])
            page.get_by_label("Steps per second").select_option("8")
            click(page, "Play")  # at the last token: starts from the beginning
            page.get_by_text("Token 1 (stream position 1)").wait_for()
            click(page, "Pause")
            reset(page)  # at once: while the pause's report reruns the player's fragment
            memory_holds(page, 0, [])
            run_once_the_discarded_run_ended(page)
            memory_holds(page, n, [f"Run 1 ({n} tokens at 0)"])
            reset(page)
            memory_holds(page, 0, [])
