"""End to end in a real browser: `streamlit run app.py` headless on a free port, driven by Debian's
Chromium through Playwright across every page. Any error element fails the test.

Needs the `playwright` package and /usr/bin/chromium (CI installs both; see .ci/run). Missing either
is a failure, not a skip."""
from __future__ import annotations

import contextlib
import json
import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout, expect

from nested_learning import load_checkpoint
from nested_learning.recording import Recording
from nested_learning.viz.presets import TEXT_PRESETS
from tests.conftest import tiny_model
from tests.support.browser import FIRST_LOAD_MS, TIMEOUT_MS, app_serving, click, click_until, go, open_app, select_pill, session_page, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    metrics = '{"kind": "train", "step": 1, "loss": 5.5}\n{"kind": "train", "step": 2, "loss": 5.0}\n'
    with app_serving(tiny_model(), tmp_path_factory.mktemp("browser"), metrics) as url:
        yield url




@pytest.fixture
def page(browser, server):
    with session_page(browser, 1800, accept_downloads=True) as page:
        open_app(page, server)
        yield page


def type_text(page, text: str):
    """Explore's input: typed text, committed (its token count shown, so Run reads it, not the default)."""
    page.get_by_text("Type", exact=True).click()
    wait_idle(page)
    page.get_by_label("Text").fill(text)
    page.get_by_label("Text").press("Control+Enter")
    page.get_by_text(f"{len(text.encode())} tokens (UTF-8 bytes)").wait_for()
    wait_idle(page)


def test_explore_run_scrub_ablate_download(page, tmp_path):
    click(page, "Run")
    page.get_by_text("Tokens in this run").wait_for()
    page.locator('[data-testid="stPlotlyChart"] >> visible=true').first.wait_for()  # the timelines
    wait_idle(page)
    n = len(TEXT_PRESETS["phrase"].text)
    page.get_by_text("The CMS levels' weights at the settled token").click()  # a closed panel draws on opening
    page.locator('[data-testid="stPlotlyChart"] >> visible=true').nth(1).wait_for()
    wait_idle(page)
    page.get_by_text(f"Token {n - 1} (stream position {n - 1})").wait_for()
    slider = page.locator('input[type="range"][aria-label="Token"]')  # the player's
    for step in (2, 3):  # each key redraws in the browser at once
        slider.focus()
        slider.press("ArrowLeft")
        page.get_by_text(f"Token {n - step} (stream position {n - step})").wait_for()
    page.wait_for_url(f"**token={n - 3}**")  # the settled token reached the server (the link holds it)
    wait_idle(page)
    with page.expect_download() as download:
        click(page, "Download recording (.safetensors)")
    path = tmp_path / "recording.safetensors"
    download.value.save_as(path)
    recording = Recording.load(path)
    assert recording.n_tokens == n and recording.text == TEXT_PRESETS["phrase"].text
    with page.expect_download() as download:
        click(page, "Download per-token CSV")
    assert download.value.suggested_filename == "recording.csv"
    memory_pill = page.get_by_role("button", name="memory", exact=True)
    if not memory_pill.is_visible():
        page.get_by_text("Input and switches").click()  # Run folded the input away: open it again
        memory_pill.wait_for()
        wait_idle(page)
    select_pill(page, "memory")  # switch the memory off
    page.wait_for_url("**off=memory**", timeout=180_000)  # the pill's rerun has finished
    wait_idle(page)
    click(page, "Run")
    page.get_by_text("has no test-time memory in this run").wait_for()
    wait_idle(page)
    assert page.get_by_text("Switched off in this run: memory").count() == 1
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "384 tokens" in sidebar.inner_text()  # two runs of the preset: the memory carried


def test_shared_link_with_garbage_is_clamped(browser, server):
    with session_page(browser) as page:
        page.goto(server + "/?preset=facts&layer=7&head=x&token=99999&off=cms.1,%3Cscript%3E", timeout=FIRST_LOAD_MS)
        page.get_by_text("Tokens in this run").wait_for(timeout=FIRST_LOAD_MS)  # the preset ran from the link
        wait_idle(page)
        text = page.locator('[data-testid="stMain"]').inner_text()
        assert "layer=7 is out of range" in text and "head=x is not a whole number" in text
        assert "past the end of the run" in text and "<script> is not a component" in text
        assert "layer=1" in page.url and "off=cms.1" in page.url


def test_compare_learn_validate_model(page, tmp_path):
    go(page, "Compare")
    select_pill(page, "test-time updates")
    page.wait_for_url("**off=test_time_updates**", timeout=180_000)
    wait_idle(page)
    click_until(page, "Compare", page.get_by_text("vs B (test-time updates off)"))
    page.get_by_text("Memory of one head, A vs B").wait_for()
    page.locator('[data-testid="stPlotlyChart"]').nth(1).wait_for()  # timelines and the A / B / B - A panels
    wait_idle(page)
    go(page, "Learn")
    click(page, "Write and recall")
    page.get_by_text("Delta rule: recalled right").wait_for()
    wait_idle(page)
    page.get_by_role("tab", name="Surprise falls on repeats").click()
    click(page, "Read it 4 times")
    page.get_by_text(re.compile(r"^Surprise in layer 0 (fell|did not fall)")).wait_for()  # the lesson's checked claim
    wait_idle(page)
    go(page, "Validate")
    for name in ("memory_updates", "repetition_learning", "in_context_association", "memory_ablation",
                 "surprise_gating", "loss_by_position"):
        page.get_by_label(f"Remove {name}").click()  # keep the two fast experiments
        page.get_by_label(f"Remove {name}").wait_for(state="detached")
        wait_idle(page)
    click(page, "Run the validation suite")
    page.get_by_text("pass rules were met", exact=False).first.wait_for()  # a quick run: a smoke test
    wait_idle(page)
    go(page, "Model")
    page.locator('[data-testid="stPlotlyChart"]').wait_for()  # the curve from the metrics file
    with page.expect_download() as download:
        click(page, "Download this model (.safetensors)")
    path = tmp_path / "model.safetensors"
    download.value.save_as(path)
    assert load_checkpoint(path, device="cpu").config == tiny_model().config
    wait_idle(page)


def test_explore_has_its_own_address_too(browser, server):
    """/explore is the default page (served at /), with the link's parameters kept; not "Page not found"."""
    with session_page(browser) as page:
        page.goto(server + "/explore?preset=facts&layr=1", timeout=FIRST_LOAD_MS)
        page.get_by_text("Tokens in this run").wait_for(timeout=FIRST_LOAD_MS)  # the linked preset ran
        wait_idle(page)
        text = page.locator('[data-testid="stMain"]').inner_text()
        assert "Page not found" not in page.content() and "Unknown link parameter layr" in text
        assert "preset=facts" in page.url


def test_a_link_to_typed_text_reproduces_the_run_in_a_fresh_browser(browser, server):
    text = "Alice met Bob at noon. Alice met Bob at noon."
    with session_page(browser) as first, session_page(browser) as second:  # second: another browser
        open_app(first, server)
        type_text(first, text)
        click(first, "Run")
        first.get_by_text("Tokens in this run").wait_for()
        wait_idle(first)
        link = first.url
        assert "text=" in link and "preset=" not in link
        second.goto(link, timeout=FIRST_LOAD_MS)  # no session state there, only the link
        second.get_by_text("Tokens in this run").wait_for(timeout=FIRST_LOAD_MS)
        wait_idle(second)
        assert second.get_by_label("Text").input_value() == text
        assert second.get_by_text("Key-value facts").count() == 0  # not the facts preset


def test_a_compare_link_reproduces_the_comparison_in_a_fresh_browser(browser, server):
    """Typed text, B's switches and the token travel in the link; the comparison runs on arrival."""
    text = "Alice met Bob at noon. Alice met Bob at noon."
    with session_page(browser) as first, session_page(browser) as second:
        open_app(first, server)
        go(first, "Compare")
        first.get_by_label("or type your own (leave empty to use the preset)").fill(text)
        first.get_by_label("or type your own (leave empty to use the preset)").press("Control+Enter")
        wait_idle(first)
        select_pill(first, "test-time updates")
        first.wait_for_url("**off=test_time_updates**", timeout=180_000)  # written by the rerun the pill started
        wait_idle(first)
        click_until(first, "Compare", first.get_by_text("Memory of one head, A vs B"))
        wait_idle(first)
        slider = first.locator('input[type="range"][aria-label="Token"]')
        slider.focus()
        slider.press("ArrowLeft")
        first.wait_for_url(f"**token={len(text) - 2}**")
        wait_idle(first)
        link = first.url
        assert "text=" in link and "off=test_time_updates" in link
        second.goto(link, timeout=FIRST_LOAD_MS)  # no session there: only the link
        second.get_by_text("vs B (test-time updates off)").wait_for(timeout=FIRST_LOAD_MS)
        second.get_by_text("Memory of one head, A vs B").wait_for()
        wait_idle(second)
        # Filled by the run that read the link: waited for, not raced.
        expect(second.get_by_label("or type your own (leave empty to use the preset)")).to_have_value(text, timeout=TIMEOUT_MS)
        expect(second.locator('input[type="range"][aria-label="Token"]')).to_have_value(str(len(text) - 2), timeout=TIMEOUT_MS)


def test_a_first_visit_offers_one_click_demos(page):
    """The start view explains test-time learning in a few sentences; a demo runs in one click."""
    page.get_by_text("Test-time learning").first.wait_for()
    click(page, "A phrase read 8 times")
    page.get_by_text("Tokens in this run").wait_for()
    wait_idle(page)
    assert page.get_by_role("button", name="Key-value facts", exact=True).count() == 0  # the start view is gone
    page.get_by_text(f"Token {len(TEXT_PRESETS['phrase'].text) - 1} (stream position").wait_for()  # the player drew the last token


def test_clicking_a_timeline_scrubs_to_that_token(page):
    """A click on the loss panel or on a heatmap column (not only a drag) moves the scrubber and the cursor."""
    click(page, "Run")
    page.get_by_text("Tokens in this run").wait_for()
    wait_idle(page)
    n = len(TEXT_PRESETS["phrase"].text)
    page.get_by_text(f"Token {n - 1} (stream position {n - 1})").wait_for()
    panels = page.locator('[data-testid="stPlotlyChart"]').first.locator("g.draglayer rect.nsewdrag")
    for panel, fraction in ((0, 0.25), (2, 0.5)):  # the loss panel, then the learning-rate heatmap
        caption = page.get_by_text(re.compile(r"Token \d+ \(stream position \d+\)")).first
        before = caption.inner_text()
        for attempt in range(3):  # a click that lands while the chart is being redrawn is lost: click again
            area = panels.nth(panel)
            area.scroll_into_view_if_needed()
            box = area.bounding_box()
            x, y = box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2
            page.mouse.move(x, y)  # hover first: the click selects the hovered token
            page.wait_for_timeout(200)
            page.mouse.click(x, y)
            try:
                page.get_by_text(before).wait_for(state="detached", timeout=15_000)  # the rerun scrubbed
                break
            except PlaywrightTimeout:
                assert attempt < 2, f"three clicks on panel {panel} never moved the scrubber"
        wait_idle(page)
        caption = page.get_by_text(re.compile(r"Token \d+ \(stream position \d+\)")).first.inner_text()
        token = int(re.search(r"Token (\d+)", caption).group(1))
        assert abs(token - (n - 1) * fraction) <= 12, caption  # where the click was along the run
        assert "loss" in caption and "surprise" in caption
        assert page.locator(".player").get_attribute("data-token") == str(token)  # the heatmaps drawn there


def click_scrubs(page, area, x_fraction: float, y_fraction: float = 0.5) -> int:
    """Click a chart area at the given fractions of its box and return the token the player moved to (a
    click landing while the page redraws is lost: tried up to three times)."""
    before = page.locator(".player").get_attribute("data-token")
    for attempt in range(3):
        area.scroll_into_view_if_needed()
        box = area.bounding_box()
        x, y = box["x"] + box["width"] * x_fraction, box["y"] + box["height"] * y_fraction
        if area.get_attribute("class") == "js-plotly-plot":  # fractions are data coordinates of a chart
            x, y = page.evaluate("""([gd, x, y]) => { const layout = gd._fullLayout, box = gd.getBoundingClientRect();
                return [box.x + layout._size.l + layout.xaxis.l2p(x), box.y + layout._size.t + layout.yaxis.l2p(y)]; }""",
                                 [area.element_handle(), x_fraction, y_fraction])
        page.mouse.move(x, y)  # hover first: the click selects the hovered token
        page.wait_for_timeout(200)
        page.mouse.click(x, y)
        player = page.locator(f'.player:not([data-token="{before}"])')  # in the component's shadow root
        try:
            player.wait_for(timeout=15_000)
            break
        except PlaywrightTimeout:
            assert attempt < 2, "three clicks never moved the player"
    wait_idle(page)
    return int(page.locator(".player").get_attribute("data-token"))


def test_every_panel_scrubs_at_2048_and_at_16384_tokens(page):
    """Loss, surprise, learning rate, retention, the CMS raster (binned past its marker budget), the coloured
    text and the player's loss strip each move the player to the clicked token: in a 2,048-token run, and
    in the eighth such run of a session (stream positions 14,336-16,383)."""
    text = "abcdefgh" * 256
    n = len(text)
    type_text(page, text)
    for run in range(8):
        click(page, "Run")
        page.get_by_text(f"Run {run + 1} ({n} tokens at {run * n})").wait_for()  # the sidebar lists it
        wait_idle(page)
        if run not in (0, 7):
            continue
        page.get_by_text(f"Token {n - 1} (stream position {run * n + n - 1})").wait_for()
        timeline = page.locator('[data-testid="stPlotlyChart"]').first.locator("g.draglayer rect.nsewdrag")
        # The timelines' Plotly element is mounted after the script run ends (late on a loaded machine).
        low, high = page.evaluate_handle("() => new Promise(done => { const poll = () => { const e = document."
                                         "querySelector('.js-plotly-plot'); e && e._fullLayout && e._fullLayout.xaxis ? "
                                         "done(e._fullLayout.xaxis.range) : requestAnimationFrame(poll); }; poll(); })").json_value()
        for panel, fraction in ((0, 0.2), (1, 0.4), (2, 0.6), (3, 0.8), (4, 0.3)):
            token = click_scrubs(page, timeline.nth(panel), fraction)
            clicked = low + fraction * (high - low) - run * n  # the stream position under the click, in the run
            assert abs(token - clicked) <= 16, (run, panel, token, clicked)  # targets every 13 tokens
        character = page.locator('.player .text span[data-first="405"]')  # the coloured text's 406th character
        assert click_scrubs(page, character, 0.5) == 405, run
        assert click_scrubs(page, page.locator("canvas.loss"), 0.5) in range(n // 2 - 2, n // 2 + 2)
        page.wait_for_url(f"**token={page.locator('.player').get_attribute('data-token')}**")  # settled, reported


def test_the_player_draws_the_recorded_memory_at_every_token(page):
    """The browser's replay gives the pooled M_t and its write of a fresh recording, at checkpoint boundaries
    (tokens 63, 64) and between them; compared through the largest |value| the player drew."""
    from nested_learning.recording import record
    from nested_learning.viz.player import key_block, pooled
    text = TEXT_PRESETS["phrase"].text
    recording, _ = record(tiny_model(), text)  # the server's checkpoint is this model
    block = key_block(recording.config.memory_key_dim)
    click(page, "Run")
    page.get_by_text(f"Token {len(text) - 1} (stream position").wait_for()
    wait_idle(page)
    slider = page.locator('input[type="range"][aria-label="Token"]')
    for t in (0, 63, 64, 100):
        slider.fill(str(t))
        page.get_by_text(f"Token {t} (stream position {t})").wait_for()
        drawn = json.loads(page.locator(".player").get_attribute("data-limits"))
        memory = pooled(recording.memory_matrix(0, 0, t), block)
        write = memory - pooled(recording.memory_matrix(0, 0, t - 1), block)
        expected = [float(memory.abs().max()), float(write.abs().max())]
        assert drawn == pytest.approx(expected, rel=1e-3), t


def test_the_player_draws_both_matrices_of_a_2_layer_memory(browser, tmp_path):
    """memory_depth 2: the browser replays W1 and W2 around their anchors (W1's made non-zero, as training
    makes it) and draws what the recording rebuilds, each opened by a link (matrix=w2 for W2)."""
    import torch
    from nested_learning.recording import record
    from nested_learning.viz.player import key_block, pooled
    from tests.support.browser import app_serving
    model = tiny_model(memory_depth=2)
    with torch.no_grad():
        for block in model.blocks:
            block.memory.initial_memory.normal_(0, 0.3, generator=torch.Generator().manual_seed(3))
    text = TEXT_PRESETS["phrase"].text
    recording, _ = record(model, text)
    with contextlib.ExitStack() as stack, app_serving(model, tmp_path) as url:
        for link, matrix, symbol in (("", "memory", "W1"), ("&matrix=w2", "hidden_memory", "W2")):
            page = stack.enter_context(session_page(browser))  # a fresh session: its memory starts at 0
            open_app(page, f"{url}/?preset=phrase&token=70{link}")
            page.get_by_text(f"Token 70 (stream position 70)").wait_for()
            expect(page.locator(".player .title-now")).to_contain_text(f"{symbol}\u209c", timeout=TIMEOUT_MS)
            for t in (70, 64):  # after a checkpoint's replay, and at one
                if t != 70:
                    page.locator('input[type="range"][aria-label="Token"]').fill(str(t))
                    page.get_by_text(f"Token {t} (stream position {t})").wait_for()
                weights = recording.memory_matrix(0, 0, t, matrix)
                block = key_block(weights.shape[1])
                now, before = pooled(weights, block), pooled(recording.memory_matrix(0, 0, t - 1, matrix), block)
                drawn = json.loads(page.locator(".player").get_attribute("data-limits"))
                assert drawn == pytest.approx([float(now.abs().max()), float((now - before).abs().max())], rel=1e-3), (matrix, t)


def test_the_tour_search_hover_and_guesses_in_the_player(page):
    """Next / Back step through the tour's tokens with their captions; a search marks every occurrence and
    goes to the next; pointing at a character marks it and shows its numbers and the model's guesses."""
    from nested_learning.recording import record
    from nested_learning.viz.repeats import find_repeats
    from nested_learning.viz.tour import tour_stops
    text = TEXT_PRESETS["phrase"].text
    recording, _ = record(tiny_model(), text)
    stops = tour_stops(recording, find_repeats(recording.tokens.tolist()))
    click(page, "Run")
    page.get_by_text(f"Token {len(text) - 1} (stream position").wait_for()
    wait_idle(page)
    for i in (0, 1, 2):
        page.get_by_role("button", name="Tour next").click()
        page.get_by_text(f"Stop {i + 1} of {len(stops)}, token {stops[i][0]}:").wait_for()
        assert page.locator(".player").get_attribute("data-token") == str(stops[i][0])
    page.get_by_role("button", name="Tour back").click()
    page.get_by_text(f"Stop 2 of {len(stops)}").wait_for()
    assert "Its guesses for the next byte: '" in page.locator(".player .guesses").inner_text()
    page.get_by_label("Search the run").fill("the mat")  # every occurrence, marked; Next match goes there
    occurrences = [i for i in range(len(text)) if text.startswith("the mat", i)]
    page.get_by_text(f"{len(occurrences)} found").wait_for()
    assert page.locator(".player .text span.found").count() == 7 * len(occurrences)
    page.get_by_role("button", name="Next match").click()
    expected = next(i for i in occurrences if i > stops[1][0])
    page.get_by_text(f"Token {expected} (stream position {expected})").wait_for()
    page.locator('.player .text span[data-first="10"]').hover()
    page.get_by_text(re.compile(r"^Pointing at Token 10 \(stream position 10\)")).wait_for()
    assert page.locator(".player .text span.hover").get_attribute("data-first") == "10"


def test_the_attention_window_follows_the_scrubbed_token(page):
    """Opened, the panel names the window attention reads at the settled token and the token's guesses with
    and without the memory's read; a scrub moves the window with it."""
    click(page, "Run")
    page.get_by_text("Tokens in this run").wait_for()
    wait_idle(page)
    n = len(TEXT_PRESETS["phrase"].text)
    page.get_by_text("What reaches the settled token: attention's window and the memory").click()
    page.get_by_text(f"Attention reads positions {n - 16}-{n - 1}").wait_for()
    page.locator('[data-testid="stPlotlyChart"] >> visible=true').nth(1).wait_for()  # the weights beside the timelines
    wait_idle(page)
    assert page.get_by_text("without the memory's read").count() >= 1
    slider = page.locator('input[type="range"][aria-label="Token"]')  # the player's
    slider.focus()
    for _ in range(5):
        slider.press("ArrowLeft")
    page.get_by_text(f"Attention reads positions {n - 21}-{n - 6}").wait_for()  # the settled token's window
    wait_idle(page)


def pick_row(page, grid, row: int, token: int):
    """Click row ``row`` (0 = the first under the header) of the table ``grid`` until the player is at ``token``."""
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    row_height = 35  # Streamlit's default row height; the header is one row too
    player = page.locator(".player")
    for attempt in range(3):  # a click landing while the page redraws is lost: click again
        page.mouse.click(box["x"] + 12, box["y"] + row_height * (row + 1.5))
        try:
            page.locator(f'.player[data-token="{token}"]').wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            wait_idle(page)  # a landed but slow click: clicking again would unselect its row
            if player.get_attribute("data-token") == str(token):
                break
            assert attempt < 2, f"row {row} never scrubbed to {token}: at {player.get_attribute('data-token')}"
    wait_idle(page)


def test_a_repeat_table_row_scrubs_to_its_repeat(page):
    """Picking a row of the repeats table moves the player to the start of that repeat."""
    click(page, "Run")
    page.get_by_text("Tokens in this run").wait_for()
    wait_idle(page)
    grid = page.locator('[data-testid="stDataFrame"]').first  # the repeats table: the page's first table
    for row, start in ((2, 72), (0, 24)):
        pick_row(page, grid, row, start)


def test_a_row_of_the_tokens_the_memory_helped_most_scrubs_there(page):
    """The verdict's gains table lists tokens; picking a row moves the player to the token it names."""
    click(page, "Run")
    page.get_by_text("Tokens in this run").wait_for()
    wait_idle(page)
    click(page, "What did test-time learning do here?")
    helped = page.get_by_text("The tokens the memory helped most")
    helped.wait_for()
    wait_idle(page)
    helped.click()
    grid = page.locator('[data-testid="stDataFrame"]').filter(has_text="lowered by")
    grid.wait_for()
    wait_idle(page)
    # The grid draws on a canvas; its accessible twin holds each cell's text (column 1: the token).
    tokens = [int(grid.get_by_test_id(f"glide-cell-1-{row}").inner_text()) for row in (0, 2)]
    assert len(set(tokens)) == 2
    for row, token in zip((2, 0), tokens[::-1]):
        pick_row(page, grid, row, token)


def test_a_downloaded_recording_loads_back_into_the_overlay(page, tmp_path):
    """A recording saved from a run and uploaded again is overlaid on the run by its file name; a file that is
    not a recording gets one line naming it and the overlay keeps what it had."""
    click(page, "Run")
    page.get_by_text("Tokens in this run").wait_for()
    wait_idle(page)
    with page.expect_download() as download:
        click(page, "Download recording (.safetensors)")
    saved = tmp_path / "first run.safetensors"
    download.value.save_as(saved)
    page.get_by_text("Overlay earlier runs and saved recordings").click()
    page.get_by_text("No earlier run yet").wait_for()
    wait_idle(page)
    upload = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    upload.set_input_files(saved)
    page.locator(".legendtext", has_text="first run.safetensors (saved)").wait_for()
    wait_idle(page)
    assert page.locator(".legendtext", has_text="(this run)").count() == 1
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a recording at all")
    upload.set_input_files(broken)
    error = page.locator('[data-testid="stAlertContentError"]')
    error.filter(has_text="broken.safetensors").wait_for()
    message = error.locator('[data-testid="stMarkdownContainer"]').inner_text().strip()  # not the icon's name
    assert message.startswith("broken.safetensors: not a safetensors file") and len(message.splitlines()) == 1
    assert page.locator(".legendtext", has_text="first run.safetensors (saved)").count() == 1


def test_on_a_projector_classroom_mode_scrolls_to_the_picked_figure(browser, server):
    """At 1280 x 720 the run's controls fill the first screen: picking a figure brings it into view."""
    with session_page(browser, height=720, width=1280) as page:
        open_app(page, server)
        click(page, "Run")
        page.get_by_text("Tokens in this run").wait_for()
        wait_idle(page)
        page.locator('[data-testid="stSidebar"]').get_by_text("Classroom mode").click()
        picker = page.locator('[data-testid="stButtonGroup"]').filter(has_text="Continue a prompt")
        picker.wait_for()
        wait_idle(page)
        picker.get_by_role("radio", name="Delta rule", exact=True).click()
        title = page.get_by_text("How the settled token was written")
        title.wait_for()
        wait_idle(page)
        page.wait_for_function("() => { const e = document.querySelector('.st-key-classroom_figure_top');"
                               " return e && e.getBoundingClientRect().top < 200; }")
        assert 0 <= title.bounding_box()["y"] < 720  # the figure's title is on the first screen


def test_typed_markup_is_shown_as_text(page):
    """Typed markup reaches the player's coloured text as characters: no element, no script runs."""
    text = "<img src=x onerror=window.__xss=1> <b>bold</b>"
    type_text(page, text)
    click(page, "Run")
    page.get_by_text(f"Token {len(text) - 1} (stream position").wait_for()
    wait_idle(page)
    assert page.locator(".player .text").inner_text() == text
    assert page.locator(".player img, .player b").count() == 0 and page.evaluate("window.__xss") is None


def test_play_animates_the_scrubber_in_the_browser(page):
    """Play steps the player at its chosen rate without the server; a click during Play is answered at
    once; Pause reports the token, and the server's panels (and the link) follow."""
    click(page, "Run")
    page.get_by_text("Tokens in this run").wait_for()
    wait_idle(page)
    n = len(TEXT_PRESETS["phrase"].text)
    page.get_by_label("Steps per second").select_option("8")
    click(page, "Play")  # at the last token: starts from the beginning
    page.get_by_text("Token 1 (stream position 1)").wait_for()
    page.get_by_text("Token 3 (stream position 3)").wait_for()
    strip = page.locator("canvas.loss")
    box = strip.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)  # during Play
    page.locator(".player .caption", has_text=re.compile(rf"^Token ({int(n * 0.75)}|{int(n * 0.75) + 1}|{int(n * 0.75) + 2}) \(stream")).wait_for()
    click(page, "Pause")
    paused = page.locator(".player").get_attribute("data-token")
    page.wait_for_url(f"**token={paused}**")  # reported once, on Pause
    wait_idle(page)
    page.wait_for_timeout(1000)
    assert page.locator(".player").get_attribute("data-token") == paused  # stopped
    assert int(paused) >= int(n * 0.75)


def test_on_a_laptop_screen_the_run_shows_its_timelines_without_scrolling(browser, server):
    """1280 x 720: Run folds the input away, so the whole loss panel is in view at the top of the page (the
    surprise panel starts at the fold)."""
    with session_page(browser, 720, 1280) as laptop:
        open_app(laptop, server + "/explore")
        click(laptop, "Run")
        laptop.get_by_text("Tokens in this run").wait_for()
        wait_idle(laptop)
        laptop.evaluate("() => { window.scrollTo(0, 0); document.querySelectorAll('*').forEach(e => { e.scrollTop = 0; }); }")
        timeline = laptop.locator('[data-testid="stPlotlyChart"]').filter(has=laptop.locator("text=next-token loss")).first
        loss_panel = timeline.locator("g.draglayer rect.nsewdrag").first.bounding_box()  # the loss plot's area
        assert loss_panel["y"] + loss_panel["height"] <= 720, loss_panel  # all of it in view
        folded = laptop.locator('[data-testid="stExpander"]', has_text="Input and switches").locator("details")
        assert folded.get_attribute("open") is None  # the input folded away, one click from being open again


def test_on_a_phone_the_panels_stack_and_reset_is_in_reach(browser, server):
    with session_page(browser, 844, 390, is_mobile=True, has_touch=True) as phone:
        open_app(phone, server + "/explore")
        click(phone, "Run")
        phone.get_by_text("Tokens in this run").wait_for()
        wait_idle(phone)
        memory, write = phone.locator(".player figure").nth(0), phone.locator(".player figure").nth(1)
        memory.scroll_into_view_if_needed()
        a, b = memory.bounding_box(), write.bounding_box()
        assert b["y"] >= a["y"] + a["height"] - 1  # stacked: the write's panel below M_t, not over it
        assert a["x"] + a["width"] <= 390 + 1 and b["x"] + b["width"] <= 390 + 1  # inside the screen
        reset = phone.locator('[data-testid="stMain"]').get_by_role("button", name="Reset memory", exact=True)
        reset.scroll_into_view_if_needed()
        assert reset.is_visible()
        reset.click()
        phone.get_by_text("Tokens in this run").wait_for(state="detached")  # the memory and the run are gone
        wait_idle(phone)


def test_classroom_mode_shows_one_figure_and_each_tool_works(page):
    click(page, "Run")
    page.get_by_text("Tokens in this run").wait_for()
    wait_idle(page)
    page.locator('[data-testid="stSidebar"]').get_by_text("Classroom mode").click()
    figure_button = lambda name: page.locator('[data-testid="stButtonGroup"] button', has_text=re.compile(f"^{name}$"))
    figure_button("Delta rule").wait_for()  # the rerun in classroom mode has drawn its figure picker
    wait_idle(page)
    charts = page.locator('[data-testid="stPlotlyChart"]')
    assert charts.count() == 1  # the timelines alone
    value_px = page.locator('[data-testid="stMain"] [data-testid="stMetricValue"]').first.evaluate(
        "e => parseFloat(getComputedStyle(e.querySelector('p') || e).fontSize)")
    assert value_px > 40  # larger than a normal metric (36 px), not shrunk to paragraph size
    figure_button("Delta rule").click()
    page.get_by_text("How the settled token was written").wait_for()  # open, not in an expander
    wait_idle(page)
    assert charts.count() == 1 and not page.locator(".player .panels").is_visible()  # the anatomy alone
    figure_button("Verdict").click()
    wait_idle(page)
    click(page, "What did test-time learning do here?")
    page.get_by_text(re.compile(r"^Against another document's memory")).wait_for()
    wait_idle(page)
    page.mouse.move(0, 0)  # the verdict button's tooltip would cover the picker
    figure_button("Continue a prompt").click()
    page.get_by_text("Continue a prompt from this memory").wait_for()
    wait_idle(page)
    for attempt in range(3):  # a click landing while the page redraws is lost: open and click again
        if not page.get_by_role("button", name="Continue", exact=True).is_visible():
            page.get_by_text("Continue a prompt from this memory").click()
        click(page, "Continue")
        try:
            page.get_by_text("this model, your memory").wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            assert attempt < 2, "Continue never showed the continuations"
    page.get_by_text("this model, a reset memory").wait_for()
    wait_idle(page)
