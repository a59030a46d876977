"""Explore's state without Streamlit: links, runs, clicks on charts, the player's settled reports, and
what reaches the session's mapping (only what changed)."""
import pytest

from nested_learning import HopeConfig
from nested_learning.viz.explore_state import CMS_VIEWS, KEYS, ExploreState, settled_token, update
from nested_learning.viz.run_memo import RunMemo
from nested_learning.viz.view import View, parse_view, view_to_params

CONFIG = HopeConfig.preset("hope", n_layers=4, memory_heads=4)
PRESETS = ("phrase", "facts")


class DrawnWidgets(dict):
    """A session mapping where some widgets are drawn already: Streamlit refuses writes to their keys."""

    def __init__(self, values, drawn=()):
        super().__init__(values)
        self.drawn = set(drawn)

    def __setitem__(self, key, value):
        assert key not in self.drawn, f"wrote {key} after its widget was drawn"
        super().__setitem__(key, value)

    def pop(self, key, *default):
        assert key not in self.drawn, f"removed {key} after its widget was drawn"
        return super().pop(key, *default)


def test_load_reads_the_widgets_keys_and_store_writes_only_what_changed():
    session = DrawnWidgets({"view_layer": 2, "view_off": ["memory"], "explore_token": 7, "explore_source": "Type",
                            "explore_text": "abc", "other": 1}, drawn=("view_layer", "view_off", "explore_source"))
    state = ExploreState.load(session)
    assert (state.layer, state.off, state.token, state.linked_text) == (2, ("memory",), 7, "abc")
    after = update(session, ExploreState.click_text, 0, 3)  # the drawn widgets' keys are not touched
    assert after.token == 3 and session["explore_token"] == 3 and session["explore_clicked_text"] == (0, 3)
    assert session["other"] == 1 and session["view_off"] == ["memory"]
    update(session, ExploreState.run_read, 5)  # no pending token: the last token
    assert session["explore_token"] == 4 and "pending_token" not in session
    session.drawn = set()
    update(session, ExploreState.arrive, View(off=("cms",)))
    assert session["view_off"] == ["cms"]  # a list, as the pills widget holds it


def test_none_removes_the_key():
    session = {"pending_token": 9, "run_asked_at": 3, "autorun": True}
    update(session, ExploreState.trigger_taken)
    assert "run_asked_at" not in session and session["autorun"] is False and session["pending_token"] == 9
    update(session, ExploreState.run_read, 20)
    assert session["explore_token"] == 9 and "pending_token" not in session


def test_a_link_with_an_input_runs_once_and_its_token_waits_for_the_run():
    view, notices = parse_view({"preset": "facts", "layer": "3", "head": "1", "token": "40", "off": "memory",
                                "heads": "all", "cms": "change", "probe": "cosine"}, CONFIG, PRESETS)
    assert notices == []
    state = ExploreState(source="Type", text="typed before", input_folded=True).arrive(view)
    assert (state.source, state.preset, state.text, state.autorun) == ("Preset", "facts", "typed before", True)
    assert (state.layer, state.head, state.off, state.pending_token) == (3, 1, ("memory",), 40)
    assert (state.all_heads, state.cms_view, state.probe_specific) == (True, CMS_VIEWS[1], False)
    assert state.should_run(False, runs=0) and not state.should_run(False, runs=2)  # from a fresh memory only
    state = state.trigger_taken()
    assert not state.should_run(False, runs=0) and state.should_run(True, runs=0)
    assert state.run_read(60).token == 40 and state.run_read(60).pending_token is None
    typed = ExploreState(source="Preset").arrive(View(text="the cat", token=2))
    assert (typed.source, typed.text, typed.linked_text, typed.autorun) == ("Type", "the cat", "the cat", True)


def test_a_link_without_an_input_sets_the_view_but_does_not_run():
    state = ExploreState(source="Upload", preset="phrase").arrive(View(layer=1, token=5))
    assert (state.source, state.preset, state.layer, state.autorun, state.pending_token) == ("Upload", "phrase", 1, False, 5)


@pytest.mark.parametrize("token", [None, 0, 17])
def test_the_view_goes_round_the_link(token):
    state = ExploreState(source="Type", text="abc abc", preset="facts", layer=2, head=3, off=("memory", "cms.1"),
                         all_heads=True, cms_view=CMS_VIEWS[1], probe_specific=False)
    view = state.view(token)
    assert view.preset is None and view.text == "abc abc"  # the typed text, not the remembered preset
    parsed, notices = parse_view(view_to_params(view), CONFIG, PRESETS)
    assert notices == [] and parsed == view
    back = ExploreState().arrive(parsed)
    assert back.view(token) == view
    assert ExploreState(source="Preset", text="abc", preset="facts").view(None) == View("facts")
    assert ExploreState().view(None) == View()  # nothing drawn yet: the defaults (probe specificity on)


def test_fit_keeps_remembered_choices_valid_for_another_model():
    small = HopeConfig.preset("hope", n_layers=2, memory_heads=2)
    state = ExploreState(layer=3, head=3, off=("memory", "cms.3", "nonsense")).fit(small)
    assert (state.layer, state.head) == (1, 1)
    assert set(state.off) <= {"memory", "cms.3"} and "memory" in state.off and "nonsense" not in state.off
    assert ExploreState().fit(small) == ExploreState()  # nothing chosen yet: nothing written


def test_a_chart_click_moves_the_scrubber_once():
    state = ExploreState(token=50)
    clicked = state.click_timeline((120, 130), start_position=100, n_tokens=64)
    assert clicked.token == 20 and clicked.clicked_timeline == (120, 130)
    # The chart keeps its selection: the next rerun sees it again, after the player moved on.
    moved = clicked.settle(33)
    assert moved.click_timeline((120, 130), 100, 64).token == 33
    assert moved.click_timeline((90,), 100, 64).token == 0  # before the run: its first token
    assert moved.click_timeline((400,), 100, 64).token == 63  # past it: its last
    assert moved.click_timeline((), 100, 64) == moved  # a cleared selection leaves the scrubber
    text = moved.click_text(100, 7)
    assert text.token == 7 and text.settle(9).click_text(100, 7).token == 9
    assert text.click_text(164, 7).token == 7  # the same character of the next run is a new click
    assert moved.click_text(100, None) == moved


def test_a_table_row_moves_the_scrubber_to_its_token_once():
    starts = [40, 95, 130]  # row i of the repeat table is the repeat starting at token starts[i]
    picked = ExploreState(token=10).click_row("repeats", (1,), starts)
    assert picked.token == 95 and picked.clicked_repeats == (1,)
    assert picked.settle(12).click_row("repeats", (1,), starts).token == 12  # the same selection, seen again
    assert picked.click_row("repeats", (2,), starts).token == 130
    assert picked.click_row("repeats", (), starts) == picked  # nothing picked: nothing moves
    assert picked.click_row("repeats", (7,), starts) == picked  # a stale row past the table: nothing moves
    gains = picked.click_row("gains", (1,), [5, 6])  # each table keeps its own selection
    assert gains.token == 6 and gains.clicked_repeats == (1,) and gains.clicked_gains == (1,)


def test_the_scrub_position_fits_the_run():
    assert ExploreState().scrub_position(10) == (9, None)
    assert ExploreState(token=4).scrub_position(10) == (4, None)
    token, notice = ExploreState(token=40).scrub_position(10)
    assert token == 9 and "token=40 is past the end of the run (0..9): using 9." in notice


def test_demos_run_and_reset_shows_the_start_again():
    state = ExploreState()
    assert state.shows_start(runs=0) and not state.shows_start(runs=1)
    demo = state.start_demo("facts")
    assert (demo.preset, demo.source, demo.autorun, demo.input_folded) == ("facts", "Preset", True, True)
    assert not demo.shows_start(runs=0)
    pressed = state.press_run(version=4)
    assert pressed.run_asked_at == 4 and pressed.input_folded and not pressed.autorun
    assert pressed.trigger_taken().reset().shows_start(runs=0)
    kept = ExploreState(source="Upload").keep_first("the first")
    assert (kept.source, kept.linked_text) == ("Type", "the first")


@pytest.mark.parametrize("report,expected", [
    ({"settled": {"run": "r1", "token": 5}}, 5),
    ({"settled": {"run": "r1", "token": 0}}, 0),
    ({"settled": {"run": "old", "token": 5}}, None),  # an earlier run's report
    ({"settled": {"run": "r1", "token": 10}}, None),  # past the run
    ({"settled": {"run": "r1", "token": -1}}, None),
    ({"settled": {"run": "r1", "token": "5"}}, None),
    ({"settled": {"run": "r1", "token": True}}, None),
    ({"settled": {"run": "r1", "token": 5.0}}, None),
    ({"settled": None}, None),
    ({}, None),
    (None, None),
    ("settled", None),
])
def test_the_players_report_counts_only_for_this_run_and_inside_it(report, expected):
    assert settled_token(report, "r1", n_tokens=10) == expected


def test_keys_are_one_per_field_and_distinct():
    assert set(KEYS) == set(ExploreState.__dataclass_fields__)
    assert len(set(KEYS.values())) == len(KEYS)


def test_the_run_memo_reuses_per_run_and_key():
    memo, built = RunMemo(), []

    def build(value):
        return lambda: built.append(value) or value

    run, other = object(), object()
    assert memo.get("spans", run, 0, build("a")) == "a"
    assert memo.get("spans", run, 0, build("b")) == "a" and built == ["a"]  # reused
    assert memo.get("figure", run, 0, build("c")) == "c"  # another name: its own entry
    assert memo.get("spans", run, 1, build("d")) == "d"  # another key: rebuilt
    assert memo.get("spans", run, 0, build("e")) == "e"  # only the last key is kept
    assert memo.get("figure", run, 0, build("f")) == "c"  # the other name's entry stayed
    assert memo.get("spans", other, 0, build("g")) == "g"  # another run (not an equal one: the same object)
    assert memo.get("figure", other, 0, build("h")) == "h"  # the previous run's values are gone
    assert memo.get("figure", run, 0, build("i")) == "i" and built == ["a", "c", "d", "e", "g", "h", "i"]
