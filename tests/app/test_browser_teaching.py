"""Teaching tools in a real browser at a laptop's 1280 x 720: what Continue wrote stays on the page, and
every Learn tab is in sight. Same harness as test_browser.py (headless app, Debian's Chromium)."""
from __future__ import annotations

import pytest

from tests.conftest import tiny_model
from tests.support.browser import app_serving, click, go, open_app, session_page, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with app_serving(tiny_model(), tmp_path_factory.mktemp("teaching")) as url:
        yield url




@pytest.fixture
def laptop(browser, server):
    with session_page(browser, 720, 1280) as page:
        open_app(page, server)
        yield page


def test_continue_keeps_its_panel_open_and_shows_the_three_continuations(laptop):
    click(laptop, "Run")
    laptop.get_by_text("Tokens in this run").wait_for()
    wait_idle(laptop)
    laptop.get_by_text("Continue a prompt from this memory").click()
    continue_button = laptop.get_by_role("button", name="Continue", exact=True)
    continue_button.wait_for()
    wait_idle(laptop)
    continue_button.click()
    laptop.get_by_text("memory had read 0 tokens").first.wait_for()  # the reset memory's continuation
    wait_idle(laptop)
    assert continue_button.is_visible()  # the panel stayed open: its results are in sight, not folded away
    assert laptop.get_by_text("memory had read").count() >= 2  # own memory and reset memory (and the baseline)


@pytest.mark.parametrize("classroom", [False, True])
def test_every_learn_tab_is_in_sight_on_a_laptop_screen(laptop, classroom):
    go(laptop, "Learn")
    if classroom:  # larger type for a projector
        laptop.locator('[data-testid="stSidebar"]').get_by_text("Classroom mode").click()
        laptop.get_by_text("Predict first", exact=False).first.wait_for()
        wait_idle(laptop)
    tabs = laptop.get_by_role("tab")
    tabs.last.wait_for()
    assert tabs.count() == 5
    strip = laptop.locator('[data-testid="stTabs"] [role="tablist"]').first.bounding_box()
    for i in range(tabs.count()):
        box = tabs.nth(i).bounding_box()
        assert box["x"] >= strip["x"] - 1 and box["x"] + box["width"] <= min(strip["x"] + strip["width"], 1280) + 1, i
    tabs.last.click()
    laptop.get_by_role("button", name="Read twice, updates on and off").wait_for()  # the last tab opened
