"""The dashboard under streamlit.testing (no browser): Explore, sessions, the shareable URL.

The app runs a tiny checkpoint: ``models.DEFAULT_CHECKPOINT`` is patched (the module reads it once from
the environment at import; nothing in a request can change it)."""
import json

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app_pages import model_loading
from nested_learning import load_checkpoint
from nested_learning.recording import record
from nested_learning.viz import models
from nested_learning.viz.presets import TEXT_PRESETS
from nested_learning.viz.view import decode_text
from nested_learning.viz.anatomy import ANATOMY_COLUMNS, ERROR, KEY, PREDICTION, VALUE
from nested_learning.viz.player import key_block, pooled, replay_pooled
from tests.support.apptest import APP, arrays, figure, has_chart, memory_player, metric, ok, table


def test_explore_runs_and_the_scrubber_redraws(app, tiny_checkpoint):
    at = ok(app().run())
    assert not has_chart(at, "timeline")
    ok(at.button(key="run").click().run())
    preset = TEXT_PRESETS["phrase"]
    assert metric(at, "Tokens in this run") == str(len(preset.text))
    timeline = figure(at, "timeline")
    assert len(timeline["data"]) == 5 + 5  # loss, surprise, learning rate, retention, CMS raster; a click target per panel
    assert list(timeline["data"][1]["y"]) == ["L0 mean", "L1 mean"]  # readable first: a row per layer
    ok(at.toggle(key="explore_all_heads").set_value(True).run())
    assert list(figure(at, "timeline")["data"][1]["y"]) == ["L0 H0", "L0 H1", "L1 H0", "L1 H1"]
    # The player's payload replays the pooled memory at every token: checked at token 3 of each layer.
    recording, _ = record(load_checkpoint(tiny_checkpoint, device="cpu"), preset.text)
    data, header, parts = memory_player(at)
    assert data["token"] == len(preset.text) - 1 and header["layer"] == 0 and header["n_tokens"] == len(preset.text)
    exact = pooled(recording.memory_matrix(0, 0, 3), header["block"]).numpy()
    np.testing.assert_allclose(replay_pooled(header, parts, 3), exact, rtol=1e-4, atol=1e-6)
    at.session_state["explore_token"] = 3  # the browser's player reports a settled token so
    timeline_before = figure(at, "timeline")
    ok(at.selectbox(key="view_layer").set_value(1).run())
    data, header, parts = memory_player(at)
    assert data["token"] == 3 and header["layer"] == 1
    np.testing.assert_allclose(replay_pooled(header, parts, 3), pooled(recording.memory_matrix(1, 0, 3), header["block"]).numpy(),
                               rtol=1e-4, atol=1e-6)
    assert figure(at, "timeline") == timeline_before  # a scrub leaves the timelines as they were (sent by reference)
    assert not has_chart(at, "memory_heatmaps")  # full resolution only on request
    at.session_state["explore_full_memory"] = True
    ok(at.run())
    full = arrays(figure(at, "memory_heatmaps")["data"][0]["z"])
    key_width = load_checkpoint(tiny_checkpoint, device="cpu").config.memory_key_dim  # 16 x the preset's DPFP factor
    assert full.shape == (16, key_width)
    np.testing.assert_allclose(full, recording.memory_matrix(1, 0, 3).numpy(), rtol=1e-5, atol=1e-7)
    # The CMS panels are the weights after the chosen token (drawn [hidden, model dim]), from a fresh replay.
    assert not has_chart(at, "cms_heatmaps")  # closed, it builds and sends nothing
    at.session_state["explore_cms"] = True
    ok(at.run())
    fresh, _ = record(load_checkpoint(tiny_checkpoint, device="cpu"), preset.text)
    levels = range(len(fresh.config.cms_periods))
    for level, trace in zip(levels, figure(at, "cms_heatmaps")["data"], strict=True):
        np.testing.assert_allclose(arrays(trace["z"]), fresh.cms_weights(1, level, 3).T.numpy(), rtol=1e-5, atol=1e-7)
    ok(at.segmented_control(key="cms_view").set_value("change in this run").run())
    for level, trace in zip(levels, figure(at, "cms_heatmaps")["data"], strict=True):
        assert trace["name"].startswith("W_t - W_start")
        change = fresh.cms_weights(1, level, 3) - fresh.cms_weights(1, level, -1)
        np.testing.assert_allclose(arrays(trace["z"]), change.T.numpy(), rtol=1e-5, atol=1e-7)
    data, header, parts = memory_player(at)  # the player draws the coloured text: characters, surprise each
    assert "".join(span[0] for span in header["spans"]) == preset.text and not has_chart(at, "text_map")
    surprise = recording.memory_stream(1, "surprise").double().mean(1).numpy()
    np.testing.assert_allclose(parts["span_values"], surprise, rtol=1e-6)  # one byte per character here
    repeats = table(at, "loss repeat")  # the preset's 8 copies: 7 repeats, each of the copy before
    bands = [s for s in timeline["layout"]["shapes"] if s["type"] == "rect"]
    assert len(repeats) == 7 and len(bands) == 14


def test_run_folds_the_input_and_reset_unfolds_it(app):
    at = ok(app().run())
    assert at.expander[0].label == "Input and switches" and at.expander[0].proto.expanded
    ok(at.button(key="run").click().run())
    assert not at.expander[0].proto.expanded  # the run's figures come first
    assert not any(b.key == "demo_phrase" for b in at.button)  # the start view is gone
    ok(at.button(key="reset_memory_main").click().run())
    assert at.expander[0].proto.expanded and any(b.key == "demo_phrase" for b in at.button)


def test_switching_memory_off_changes_the_figures(app):
    at = ok(app().run())
    at.pills(key="view_off").set_value(["memory"])
    ok(at.button(key="run").click().run())
    names = [t.get("name") for t in figure(at, "timeline")["data"]]
    assert sorted(names) == ["CMS updates", "click target", "click target", "loss"]  # no memory rows
    assert not has_chart(at, "memory_heatmaps")
    assert any("no test-time memory" in i.value for i in at.info)
    assert at.query_params["off"] == "memory"
    assert metric(at, "Mean surprise") == "n/a"  # not "nan"


def test_memory_carries_across_runs_until_reset(app):
    at = ok(app().run())
    at.segmented_control(key="explore_source").set_value("Type").run()
    at.text_area(key="explore_text").set_value("abcdefgh").run()
    ok(at.button(key="run").click().run())
    ok(at.button(key="run").click().run())
    assert metric(at, "Stream positions") == "8-15"
    assert metric(at, "Memory holds") == "16 tokens"
    ok(at.button(key="reset_memory").click().run())
    assert metric(at, "Memory holds") == "0 tokens" and not has_chart(at, "timeline")
    ok(at.button(key="run").click().run())
    assert metric(at, "Stream positions") == "0-7"
    ok(at.button(key="reset_memory_main").click().run())  # the page's own Reset (the sidebar is hidden on a phone)
    assert metric(at, "Memory holds") == "0 tokens" and not has_chart(at, "timeline")


def test_two_sessions_are_isolated(app, tiny_checkpoint):
    text = "the cat sat on the mat."
    a, b = ok(app().run()), ok(app().run())
    for at in (a, b):
        at.segmented_control(key="explore_source").set_value("Type").run()
        at.text_area(key="explore_text").set_value(text).run()
    ok(a.button(key="run").click().run())
    ok(a.button(key="run").click().run())  # A's memory has read the text twice
    ok(b.button(key="run").click().run())
    fresh, _ = record(load_checkpoint(tiny_checkpoint, device="cpu"), text)
    expected = float(fresh.stream("loss")[:-1].double().mean())
    assert metric(b, "Memory holds") == f"{len(text)} tokens" and metric(b, "Stream positions") == f"0-{len(text) - 1}"
    assert metric(b, "Mean loss (nats)") == f"{expected:.3f}"  # B equals a fresh model
    assert metric(a, "Memory holds") == f"{2 * len(text)} tokens"
    b_surprise = arrays(figure(b, "timeline")["data"][1]["z"])
    a_surprise = arrays(figure(a, "timeline")["data"][1]["z"])
    np.testing.assert_allclose(b_surprise, [fresh.stream(f"layers.{i}.memory.surprise").double().mean(1).tolist()
                                            for i in (0, 1)], rtol=1e-6)  # one row per layer: the head mean
    assert not np.allclose(a_surprise, b_surprise)  # A's second reading differs: its memory learned
    shared = model_loading.shared_model("shipped", tiny_checkpoint.name, "cpu")  # the one model both sessions used
    for (name, p), (_, q) in zip(shared.named_parameters(), load_checkpoint(tiny_checkpoint, device="cpu").named_parameters()):
        assert torch.equal(p, q), f"{name} changed"  # parameters are never mutated


def test_query_parameters_round_trip(app):
    at = app()
    params = {"preset": "facts", "layer": "1", "head": "1", "token": "20", "off": "cms.1"}
    at.query_params.update(params)
    ok(at.run())  # a shared link runs its preset once
    assert not at.warning
    assert metric(at, "Tokens in this run") == str(len(TEXT_PRESETS["facts"].text))
    assert memory_player(at)[0]["token"] == 20 and at.selectbox(key="view_layer").value == 1
    assert at.selectbox(key="view_head").value == 1 and at.pills(key="view_off").value == ["cms.1"]
    assert dict(at.query_params) == params
    at.session_state["explore_token"] = 7  # as the player's settled token sets it
    ok(at.run())
    assert at.query_params["token"] == "7"


def test_a_link_carries_the_figure_settings(app):
    """All heads on the timelines, the CMS panels as their change, the probe as plain cosine: a link sets
    them, the figures follow, and switching one back takes it out of the URL."""
    at = app()
    params = {"preset": "phrase", "heads": "all", "cms": "change", "probe": "cosine"}
    at.query_params.update(params)
    at.session_state["explore_probe"] = at.session_state["explore_cms"] = True  # opened (a closed one draws nothing)
    ok(at.run())
    assert not at.warning  # no "default value also set via Session State" warning either
    assert at.toggle(key="explore_all_heads").value and at.toggle(key="probe_specific").value is False
    assert list(figure(at, "timeline")["data"][1]["y"]) == ["L0 H0", "L0 H1", "L1 H0", "L1 H1"]
    assert "W_t - W_start" in json.dumps(figure(at, "cms_heatmaps")["layout"])
    assert figure(at, "probe")["layout"]["yaxis"]["title"]["text"].startswith("cos(")  # not "specificity"
    assert dict(at.query_params) == {**params, "token": str(len(TEXT_PRESETS["phrase"].text) - 1)}
    ok(at.toggle(key="explore_all_heads").set_value(False).run())
    assert "heads" not in at.query_params and at.query_params["cms"] == "change"


def test_a_link_carries_typed_text_and_runs_it_on_arrival(app):
    text = "Alice met Bob at noon. Alice met Bob at noon."
    at = ok(app().run())
    at.segmented_control(key="explore_source").set_value("Type").run()
    at.text_area(key="explore_text").set_value(text).run()
    ok(at.button(key="run").click().run())
    params = dict(at.query_params)
    assert "preset" not in params and decode_text(params["text"]) == text
    fresh = app()
    fresh.query_params.update(params)
    ok(fresh.run())  # another browser opens the link: the same text, run once
    assert fresh.text_area(key="explore_text").value == text
    assert metric(fresh, "Tokens in this run") == str(len(text))


def test_a_rerun_carrying_a_url_this_session_wrote_before_is_not_a_new_link(app):
    """A rerun asked for before the previous run's URL reached the browser carries the URL before it (a
    loaded server, a quick second click): that is this session's own past view, not a link, and must not
    replace what was typed with the preset."""
    text = "Alice met Bob at noon. Alice met Bob at noon."
    at = ok(app().run())
    stale = dict(at.query_params)  # the view the first run wrote: the preset
    assert "preset" in stale
    at.segmented_control(key="explore_source").set_value("Type").run()
    ok(at.text_area(key="explore_text").set_value(text).run())
    assert decode_text(at.query_params["text"]) == text
    at.query_params.clear()
    at.query_params.update(stale)  # the next rerun arrives with the URL from before
    ok(at.run())
    assert at.text_area(key="explore_text").value == text
    assert decode_text(at.query_params["text"]) == text and "preset" not in at.query_params


def test_garbage_query_parameters_are_clamped_with_notices(app):
    at = app()
    at.query_params.update({"preset": "<script>x</script>", "layer": "99", "head": "two", "token": "100000",
                            "off": "memory,bogus", "unknown": "1"})
    ok(at.run())
    warnings = " ".join(w.value for w in at.warning)
    assert "layer=99 is out of range (0..1): using 1" in warnings
    assert "head=two is not a whole number" in warnings and "off=bogus" in warnings and "preset=" in warnings
    assert "<script>" not in warnings
    ok(at.button(key="run").click().run())
    # memory off: no player, the server's slider scrubs
    assert at.slider(key="explore_token").value == len(TEXT_PRESETS["phrase"].text) - 1  # clamped to the run
    assert any("past the end" in w.value for w in at.warning)
    assert at.query_params["layer"] == "1" and at.query_params["off"] == "memory"
    assert "head" not in at.query_params


def test_a_too_long_paste_is_offered_its_first_tokens(app):
    """Issue 29 item 7: a long paste was refused with counts but offered nothing to run."""
    at = ok(app().run())
    at.segmented_control(key="explore_source").set_value("Type").run()
    at.text_area(key="explore_text").set_value("abc\u00e9" * 600).run()  # 3,000 bytes
    ok(at.button(key="keep_first").click().run())
    kept = at.text_area(key="explore_text").value
    assert kept == ("abc\u00e9" * 600).encode()[:2048].decode("utf-8", errors="ignore") and len(kept.encode()) <= 2048
    assert not [b for b in at.button if b.key == "keep_first"]  # it fits now: the offer is gone
    ok(at.button(key="run").click().run())
    assert metric(at, "Memory holds") == f"{len(kept.encode())} tokens"


def test_input_limits_and_odd_text(app):
    at = ok(app().run())
    at.segmented_control(key="explore_source").set_value("Type").run()
    at.text_area(key="explore_text").set_value("\u00e9" * 1025).run()  # 2050 bytes
    at.button(key="run").click().run()
    assert not at.exception and "2050 tokens" in at.error[0].value and "at most 2048" in at.error[0].value
    assert metric(at, "Memory holds") == "0 tokens"
    at.text_area(key="explore_text").set_value("<script>alert(1)</script> **x** \U0001F600\x07").run()
    ok(at.button(key="run").click().run())
    labels = [span[0] for span in memory_player(at)[1]["spans"]]  # the coloured text's characters (set as text)
    assert "<" in labels and "\U0001F600" in labels and "\\x07" in labels  # an emoji is one character, a bell an escape
    at.segmented_control(key="explore_source").set_value("Upload").run()
    at.file_uploader(key="explore_upload").set_value(("odd.txt", b"caf\xe9 \xff ok", "text/plain")).run()
    assert "not valid UTF-8" in at.warning[0].value
    ok(at.button(key="run").click().run())
    assert metric(at, "Tokens in this run") == str(len("caf\ufffd \ufffd ok".encode()))


def test_without_a_checkpoint_a_seeded_random_model_is_used(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", tmp_path / "absent.safetensors")
    at = ok(AppTest.from_file(APP, default_timeout=90).run())
    assert "random-init" in at.info[0].value


def test_a_damaged_shipped_checkpoint_falls_back_with_the_reason(monkeypatch, tmp_path):
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x00" * 64)
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", damaged)
    at = ok(AppTest.from_file(APP, default_timeout=90).run())
    assert "could not be loaded" in at.info[0].value and "random\\-init" in at.sidebar.caption[0].value


def test_explore_continues_a_prompt_three_ways_and_leaves_the_memory(app):
    at = ok(app().run())
    ok(at.button(key="run").click().run())
    held = metric(at, "Memory holds")
    at.session_state["explore_generate"] = True  # the panel opened (closed, it builds nothing)
    ok(at.run())
    assert at.text_input(key="generate_prompt").value == TEXT_PRESETS["phrase"].text[:24]
    at.slider(key="generate_tokens").set_value(8).run()
    ok(at.button(key="generate_run").click().run())
    assert at.session_state["explore_generate"]  # the panel stays open on the rerun Continue makes
    for _ in range(2):  # shown on Continue's rerun and kept on the next one (a scrub, a widget)
        captions = [c.value for c in at.caption]
        assert any(f"memory had read {len(TEXT_PRESETS['phrase'].text)} tokens" in c for c in captions)
        assert sum("memory had read 0 tokens" in c for c in captions) >= 1  # the reset memory (and a baseline, if shipped)
        ok(at.run())
    assert metric(at, "Memory holds") == held


def test_explore_gives_a_python_snippet_of_the_view(app):
    at = ok(app().run())
    ok(at.button(key="run").click().run())
    at.session_state["explore_token"], at.session_state["explore_reproduce"] = 4, True  # settled; the panel opened
    ok(at.run())
    code = next(c.value for c in at.code if "from nested_learning" in c.value)
    assert "t, layer, head = 4, 0, 0" in code and repr(TEXT_PRESETS["phrase"].text) in code


def test_explore_shows_the_delta_rule_at_the_scrubbed_token(app, tiny_checkpoint):
    at = ok(app().run())
    ok(at.button(key="run").click().run())
    assert not has_chart(at, "anatomy") and not has_chart(at, "probe")  # closed panels send nothing
    at.session_state["explore_token"] = 4
    at.session_state["explore_delta_rule"] = at.session_state["explore_probe"] = True
    ok(at.run())
    parts = figure(at, "anatomy")["data"]
    assert list(parts[0]["y"]) == [KEY] and list(parts[1]["y"]) == [PREDICTION, VALUE, ERROR]
    recording, _ = record(load_checkpoint(tiny_checkpoint, device="cpu"), TEXT_PRESETS["phrase"].text)
    block = key_block(recording.config.memory_key_dim, ANATOMY_COLUMNS)
    np.testing.assert_allclose(arrays(parts[4]["z"]), pooled(recording.memory_matrix(0, 0, 4), block).numpy(), rtol=1e-5, atol=1e-7)
    probe = figure(at, "probe")["data"]  # the memory probe: one curve per head over tokens 0..4
    assert len(probe) == 2 and list(arrays(probe[0]["x"])) == [0, 1, 2, 3, 4]


def test_a_run_gets_a_verdict_against_its_controls_in_one_click(app):
    at = ok(app().run())
    ok(at.button(key="run").click().run())
    ok(at.button(key="verdict_run").click().run())
    sentences = [m.value for m in list(at.success) + list(at.warning) + list(at.info)]
    assert any(s.startswith(("Test-time learning", "No clear sign")) for s in sentences)  # the answer first
    assert any(s.startswith("Against test-time updates off") for s in sentences)  # a control that cannot learn
    assert any(s.startswith("Against another document's memory") for s in sentences)
    assert not any("lowered by" in e.value.columns or "condition" in e.value.columns for e in at.dataframe)  # closed
    at.session_state["verdict_numbers"] = at.session_state["verdict_gains_panel"] = True  # both panels opened
    ok(at.run())
    conditions = list(table(at, "condition")["condition"])
    assert conditions[:2] == ["this run", "test-time updates off"] and "another document's memory" in conditions
    gains = table(at, "lowered by")  # the tokens the writes helped most, largest first, beside the verdict
    assert list(gains["lowered by"]) == sorted(gains["lowered by"], reverse=True)
    ok(at.run())  # kept for this run: shown again without another click
    assert any(s.startswith("Against another document's memory") for s in [m.value for m in list(at.info) + list(at.success)])


def test_a_first_visit_offers_three_demos_that_run_in_one_click(app):
    at = ok(app().run())
    assert any("Test-time learning" in m.value for m in at.markdown)
    ok(at.button(key="demo_facts").click().run())
    assert metric(at, "Tokens in this run") == str(len(TEXT_PRESETS["facts"].text))
    assert not any("Test-time learning" in m.value for m in at.markdown)  # the introduction steps aside
    assert "memory" in at.pills(key="view_off").help and "delta rule" in at.pills(key="view_off").help


def test_the_sidebar_lists_the_runs_and_earlier_runs_overlay(app):
    at = ok(app().run())
    ok(at.button(key="run").click().run())
    at.pills(key="view_off").set_value(["cms.1"])
    ok(at.button(key="run").click().run())
    captions = [c.value for c in at.sidebar.caption]
    assert any(c.startswith("**Run 1** (192 tokens at 0)") for c in captions)
    assert any(c.startswith("**Run 2** (192 tokens at 192)") and "off: cms.1" in c for c in captions)
    assert not has_chart(at, "overlay")  # closed, it builds nothing
    at.session_state["explore_overlay"] = True
    ok(at.run())
    names = [t["name"] for t in figure(at, "overlay")["data"]]
    assert "Run 1" in names and "Run 2 (this run)" in names


def test_a_saved_recording_loads_back_into_the_overlay_aligned_on_a_span(app):
    """A downloaded recording, uploaded again (another session, another day), joins the overlay under its
    file name; aligned on a text, each run counts tokens from where it read that text; a bad file is one
    line naming it and the panel stays."""
    saved, _ = record(load_checkpoint(models.DEFAULT_CHECKPOINT), "xyz " * 10 + "the cat sat on the mat")
    at = ok(app().run())
    ok(at.button(key="run").click().run())  # the phrase preset
    at.session_state["explore_overlay"] = True
    ok(at.run())
    at.file_uploader(key="overlay_upload").set_value(("bad.safetensors", b"not a recording", "application/octet-stream"))
    at.run()
    assert not at.exception and "bad.safetensors: not a safetensors file" in at.error[0].value.replace("\\", "")
    assert not has_chart(at, "overlay")
    at.file_uploader(key="overlay_upload").set_value(("monday.safetensors", models.recording_bytes(saved),
                                                      "application/octet-stream"))
    ok(at.run())
    at.multiselect(key="overlay_runs").set_value(["monday.safetensors (saved)"]).run()
    traces = {t["name"]: t for t in figure(at, "overlay")["data"] if t.get("showlegend") is not False}
    assert set(traces) == {"monday.safetensors (saved)", "Run 1 (this run)"}
    at.text_input(key="overlay_align").set_value("the cat").run()
    traces = {t["name"]: t for t in figure(at, "overlay")["data"] if t.get("showlegend") is not False}
    assert arrays(traces["monday.safetensors (saved)"]["x"])[40] == 0  # "the cat" starts at byte 40 there


def test_classroom_mode_shows_one_figure_at_a_time(app):
    at = ok(app().run())
    ok(at.button(key="run").click().run())
    every = {"timeline", "memory_heatmaps", "anatomy", "probe", "cms_heatmaps", "attention_window"}
    for panel in ("explore_full_memory", "explore_delta_rule", "explore_probe", "explore_cms", "explore_window"):
        at.session_state[panel] = True  # opened
    ok(at.run())
    assert every <= {e.key for e in at.get("plotly_chart")}  # normally all at once
    ok(at.sidebar.toggle(key="classroom").set_value(True).run())
    assert {e.key for e in at.get("plotly_chart")} & every == {"timeline"}  # the first figure alone
    assert [m.label for m in at.metric if m.label != "Memory holds"] == ["Tokens", "Mean loss (nats)", "Mean surprise"]
    for name, key in [("Memory M_t", "memory_heatmaps"), ("Delta rule", "anatomy"), ("Probe", "probe"),
                      ("Attention window", "attention_window"), ("CMS", "cms_heatmaps")]:
        ok(at.segmented_control(key="classroom_figure").set_value(name).run())
        assert {e.key for e in at.get("plotly_chart")} & every == {key}, name
    ok(at.segmented_control(key="classroom_figure").set_value("Coloured text").run())
    assert memory_player(at)[0]["text"] and not memory_player(at)[0]["panels"]  # the player's text alone
    assert {e.key for e in at.get("plotly_chart")} & every == set()
    assert memory_player(at)[0]["token"] == len(TEXT_PRESETS["phrase"].text) - 1  # the player stays, for every figure


def test_the_attention_window_panel_shows_what_reaches_the_settled_token(app):
    """Opened, the panel runs the model up to the settled token: attention's weights over its window (each
    row sums to 1), each branch's addition per layer, and the token's cost with and without the memory."""
    at = ok(app().run())
    ok(at.button(key="run").click().run())
    at.session_state["explore_window"] = True
    ok(at.run())
    weights = figure(at, "attention_window")["data"]
    assert len(weights) == 2  # one heatmap per attention layer
    z = arrays(weights[0]["z"])
    np.testing.assert_allclose(z.sum(-1), 1, rtol=1e-5)
    config = load_checkpoint(models.DEFAULT_CHECKPOINT).config
    assert z.shape[1] == config.attention_window + config.n_persistent_tokens  # the window's tokens and the persistent ones
    updates = table(at, "memory")
    assert list(updates["layer"]) == [0, 1] and (updates["memory"] > 0).all()
    assert any("Attention reads positions" in c.value and "without the memory's read" in c.value for c in at.caption)


def test_explore_shows_both_matrices_of_a_2_layer_memory(tiny_checkpoint, tmp_path, monkeypatch):
    """A memory_depth 2 checkpoint runs on Explore: the player replays W1 and, on the Matrix choice, W2 (each
    as the recording rebuilds it), the full panel draws the chosen matrix at full resolution, the write panel
    gives the gradient step's numbers, the probe reads the whole memory, and a link carries matrix=w2."""
    from nested_learning import save_checkpoint
    from tests.conftest import tiny_model
    model = tiny_model(memory_depth=2)
    with torch.no_grad():  # like a trained one: W1 does not start at zero
        for block in model.blocks:
            block.memory.initial_memory.normal_(0, 0.3, generator=torch.Generator().manual_seed(2))
    path = save_checkpoint(model, tmp_path / "deep.safetensors", {"note": "tests"})
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", path)
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params.update({"preset": "phrase", "token": "6"})
    ok(at.run())
    text = TEXT_PRESETS["phrase"].text
    recording, _ = record(load_checkpoint(path, device="cpu"), text)
    _, header, parts = memory_player(at)
    assert header["symbol"] == "W1" and (header["rows"], header["columns"]) == (16, 16)
    np.testing.assert_allclose(replay_pooled(header, parts, 6), recording.memory_matrix(0, 0, 6).numpy(), rtol=1e-4, atol=1e-5)
    at.session_state["explore_full_memory"] = at.session_state["explore_delta_rule"] = True
    at.session_state["explore_probe"] = True
    ok(at.selectbox(key="view_matrix").set_value("hidden_memory").run())
    _, header, parts = memory_player(at)
    assert header["symbol"] == "W2" and at.query_params["matrix"] == "w2"
    w2 = recording.memory_matrix(0, 0, 6, "hidden_memory")
    np.testing.assert_allclose(replay_pooled(header, parts, 6), pooled(w2, header["block"]).numpy(), rtol=1e-4, atol=1e-5)
    full = figure(at, "memory_heatmaps")
    np.testing.assert_allclose(arrays(full["data"][0]["z"]), w2.numpy(), rtol=1e-5, atol=1e-6)
    assert full["layout"]["yaxis"]["title"]["text"] == "hidden unit"
    steps = table(at, "quantity").set_index("quantity")["value"]
    assert steps["step rho_t"] == pytest.approx(float(recording.memory_stream(0, "write_rate")[6, 0]), rel=1e-5)
    assert steps["|v_t - M_t(k_t)|"] < steps["surprise |v_t - M_(t-1)(k_t)|"]  # the write moved the read toward v
    probe = figure(at, "probe")["data"]
    assert len(probe) == 2 and len(arrays(probe[0]["x"])) == 7
    linked = AppTest.from_file(APP, default_timeout=90)  # the link reopens W2
    linked.query_params.update({"preset": "phrase", "matrix": "w2"})
    ok(linked.run())
    assert linked.selectbox(key="view_matrix").value == "hidden_memory" and memory_player(linked)[1]["symbol"] == "W2"


def test_a_w2_link_on_a_one_matrix_memory_is_ignored_with_a_notice(app):
    at = app()
    at.query_params.update({"preset": "phrase", "matrix": "w2"})
    ok(at.run())
    assert any("matrix=w2" in w.value for w in at.warning) and memory_player(at)[1]["symbol"] == "M"
    assert not [s for s in at.selectbox if s.key == "view_matrix"]


def test_explore_runs_an_lm_objective_model_and_shows_its_levels_as_they_learned(tmp_path, monkeypatch):
    """cms_objective "lm": Explore records the run with the levels learning from the text's next tokens; the
    CMS panels draw each level's weights at the scrubbed token as the recording kept them."""
    from nested_learning import save_checkpoint
    from tests.conftest import tiny_model
    path = save_checkpoint(tiny_model(cms_objective="lm", cms_periods=[4, 16]), tmp_path / "lm.safetensors")
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", path)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"preset": "phrase", "token": "40"})
    at.session_state["explore_cms"] = True
    ok(at.run())
    recording, _ = record(load_checkpoint(path, device="cpu"), TEXT_PRESETS["phrase"].text)
    for level, trace in enumerate(figure(at, "cms_heatmaps")["data"]):
        weights = recording.cms_weights(0, level, 40)
        assert not torch.equal(weights, recording.cms_weights(0, level, -1))  # it learned by token 40
        np.testing.assert_allclose(arrays(trace["z"]), weights.T.numpy(), rtol=1e-5, atol=1e-6)
