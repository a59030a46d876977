"""Figure builders: what each panel shows is the recording's data, on the scales promised."""
import numpy as np
import pytest
import torch

from nested_learning import Ablation, ByteTokenizer
from nested_learning.recording import record
from nested_learning.viz import compare, heatmaps, timelines
from nested_learning.recording.replay import CMSReplay
from nested_learning.viz.presets import TEXT_PRESETS, recall_accuracy
from tests.conftest import random_tokens, tiny_model


@pytest.fixture(scope="module")
def runs():
    """A recording that starts mid-stream (position 5: not aligned to any CMS period or chunk)."""
    model = tiny_model()
    _, state = record(model, "hello")
    rec, _ = record(model, "the cat sat on the mat. the cat sat on the mat.", state=state)
    return model, rec


def test_timeline_rows_hold_the_streams(runs):
    _, rec = runs
    fig = timelines.timeline_figure(rec)
    loss, surprise, lr, retention, *targets = fig.data
    positions = np.arange(rec.n_tokens) + 5
    np.testing.assert_array_equal(loss.x, positions)
    np.testing.assert_allclose(loss.y, rec.stream("loss").double().numpy())
    assert surprise.y == ("L0 H0", "L0 H1", "L1 H0", "L1 H1")
    np.testing.assert_allclose(surprise.z[3], rec.stream("layers.1.memory.surprise")[:, 1].double().numpy())
    np.testing.assert_allclose(lr.z[0], rec.stream("layers.0.memory.learning_rate")[:, 0].double().numpy())
    np.testing.assert_allclose(retention.z[2], rec.stream("layers.1.memory.retention")[:, 0].double().numpy())
    axes = sorted({trace.xaxis for trace in fig.data})
    bottom = axes[-1]
    assert all(fig.layout[a.replace("x", "xaxis")].matches == bottom for a in axes[:-1])  # one shared token axis
    # every panel's hover names the token's character, the heatmaps' too (x-unified hover stays in a panel)
    characters = timelines.token_labels(rec)
    assert list(loss.customdata) == characters and "%{customdata}" in surprise.hovertemplate
    assert all(list(row) == characters for row in surprise.customdata) and len(surprise.customdata) == 4
    # a click anywhere on a panel scrubs: one invisible, selectable point per token on each panel
    assert [t.yaxis for t in targets] == [t.yaxis for t in (loss, surprise, lr, retention)]
    for target in targets:
        np.testing.assert_array_equal(target.x, positions)  # a short run: every token
        assert target.mode == "markers" and target.marker.opacity == 0 and target.hoverinfo == "none"
    assert fig.layout.clickmode == "event+select" and fig.layout.dragmode == "zoom"  # Streamlit: clicks select only outside select mode


def test_raster_marker_area_is_the_update_norm(runs):
    _, rec = runs
    events = rec.cms_events()
    fig = timelines.timeline_figure(rec, events)
    raster = next(trace for trace in fig.data if trace.name == "CMS updates")
    np.testing.assert_allclose(raster.marker.size, events["update_norm"].to_numpy())
    assert raster.marker.sizemode == "area"
    np.testing.assert_array_equal(raster.x, events["token_index"].to_numpy() + 5)
    rows = timelines.raster_rows(rec)
    assert len(set(raster.y)) == len(rows) == 2 * 4  # one row per (layer, level) that updated


def test_timeline_without_memory_has_loss_only(runs):
    model, _ = runs
    rec, _ = record(model, "abcabc", ablation=Ablation(memory=False))
    assert [trace.name for trace in timelines.timeline_figure(rec).data] == ["loss", "click target"]


def test_memory_heatmaps_are_symmetric_around_zero(runs):
    _, rec = runs
    m, d = rec.memory_matrix(1, 0, 10), rec.memory_delta(1, 0, 10)
    for trace, matrix in zip([f.data[0] for f in heatmaps.memory_figures(m, d)], (m, d)):
        peak = float(matrix.abs().max())
        assert trace.zmax == pytest.approx(peak) and trace.zmin == pytest.approx(-peak) and trace.zmid == 0
        np.testing.assert_allclose(trace.z, matrix.numpy())


def test_ab_panels_share_one_scale_and_show_the_difference():
    a, b = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 3.0]])
    fig = heatmaps.ab_figure(a, b)
    assert fig.data[0].zmax == fig.data[1].zmax == 3.0
    np.testing.assert_allclose(fig.data[2].z, [[-0.5, 5.0]])
    assert fig.data[2].zmax == 5.0
    assert heatmaps.symmetric_limit(torch.zeros(2, 2)) > 0  # an all-zero panel still draws


def test_cms_panels_one_per_level(runs):
    _, rec = runs
    weights = [rec.cms_weights(0, j, 7) for j in range(4)]
    fig = heatmaps.cms_figure(weights, rec.config.cms_periods)
    assert len(fig.data) == 4
    np.testing.assert_allclose(fig.data[2].z, weights[2].T.numpy())  # drawn [hidden, model dim]


def test_each_cms_panel_says_how_often_its_level_has_updated_and_when_next():
    """The counts are the recording's own update events: a slow level that has not updated yet says so (its
    "change in this run" panel is all zero) and names the token it will update after."""
    model = tiny_model(cms_periods=(1, 3, 8))
    tokens = random_tokens(1, 40)[0]
    _, state = record(model, tokens[:13])
    rec, _ = record(model, tokens[13:], state=state)
    events = rec.cms_events()
    for t in (0, 1, 9, 26):
        for level, period in enumerate((1, 3, 8)):
            at = events[(events.layer == 0) & (events.level == level)]["token_index"]
            done, upcoming = int((at <= t).sum()), int(at[at > t].min()) if (at > t).any() else None
            said = heatmaps.cms_level_schedule(period, rec.start_position, t)
            assert said.startswith(f"{done} update"), (t, period, said)
            if upcoming is not None:
                assert said.endswith(f"next after token {upcoming}"), (t, period, said)
    fig = heatmaps.cms_figure([rec.cms_weights(0, j, 1) for j in range(3)], (1, 3, 8), start=rec.start_position, t=1)
    assert "level 2 (period 8: 0 updates in this run so far, next after token 2)" in fig.layout.annotations[2].text


def test_cms_replay_matches_the_model_state(runs):
    """The replayed level weights after token t are the weights the model itself held after token t."""
    model, rec = runs
    every = 7  # checkpoints at tokens 6, 13, ...: not aligned with the periods or the start position
    replay = CMSReplay(rec, 1, every=every)
    _, start = record(model, "hello")
    for t in (-1, every - 1, 2 * every + 1, rec.n_tokens - 1):
        state = start if t < 0 else model(rec.tokens[None, :t + 1], state=start).state
        for level, w in enumerate(replay.weights(t)):
            torch.testing.assert_close(w, state.layers[1].cms[level].memory[0, 0], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(rec.cms_weights(1, level, t), w)
    with pytest.raises(IndexError):
        replay.weights(rec.n_tokens)


def test_recall_accuracy():
    tokens = torch.tensor([5, 6, 7, 8])
    top1 = torch.tensor([6, 0, 8, 0])  # predicts tokens 1 and 3 right
    assert recall_accuracy(top1, tokens, (1, 2, 3)) == pytest.approx(2 / 3)
    assert recall_accuracy(top1, tokens, (0, 9)) is None and recall_accuracy(top1, tokens, ()) is None


def test_presets_answers_are_their_task_answers():
    facts = TEXT_PRESETS["facts"]
    query = facts.text.split(";")[1]
    assert "".join(facts.text[p] for p in facts.answers) == "".join(c for c in query if c.isdigit())
    phrase = TEXT_PRESETS["phrase"]
    assert all(phrase.text[p] == phrase.text[p - phrase.answers[0]] for p in phrase.answers)


def test_comparison_of_a_run_with_itself_is_zero(runs):
    model, _ = runs
    text = TEXT_PRESETS["facts"].text[:40]
    a = compare.run_side(model, text, Ablation())
    b = compare.run_side(model, text, Ablation(test_time_updates=False))
    answers = (5, 20, 21, 24, 30)  # B (updates off) predicts bytes 5 and 24 right: a count off by one differs
    table = compare.summary_table(a, b, answers)
    assert list(table.index) == ["A", "B", "B - A"]
    # Recall accuracy by hand: the top-1 guess at the byte before each answer against the answer byte.
    recall = lambda rec: np.mean([int(rec.stream("topk.ids")[p - 1, 0]) == int(rec.tokens[p]) for p in answers])
    assert table.loc["A", "recall accuracy"] == pytest.approx(recall(a))
    assert table.loc["B", "recall accuracy"] == pytest.approx(recall(b))
    assert table.loc["B - A", "recall accuracy"] == pytest.approx(recall(b) - recall(a))
    # Counted straight from the streams: the last token has no next byte, surprise is over layers and heads.
    loss = lambda rec: rec.stream("loss")[:-1].double().mean().item()
    surprise = lambda rec: np.mean([rec.stream(f"layers.{i}.memory.surprise").double().mean().item()
                                    for i in rec.memory_layers])
    assert table.loc["A", "mean loss (nats)"] == pytest.approx(loss(a))
    assert table.loc["B - A", "mean loss (nats)"] == pytest.approx(loss(b) - loss(a))
    assert table.loc["B - A", "bits per byte"] == pytest.approx((loss(b) - loss(a)) / np.log(2))
    assert table.loc["B - A", "mean surprise"] == pytest.approx(surprise(b) - surprise(a))
    same = compare.summary_table(a, compare.run_side(model, text, Ablation()))
    assert (same.loc["B - A", ["mean loss (nats)", "mean surprise"]] == 0).all()
    assert np.isnan(same.loc["A", "recall accuracy"])  # no answers given
    fig = compare.compare_timeline(a, b)
    np.testing.assert_allclose(fig.data[2].y, (b.stream("loss") - a.stream("loss")).double().numpy())
    assert fig.data[3].zmax == fig.data[4].zmax  # A and B surprise on one scale
    panels = compare.compare_memory(a, b, 1, 0, 25)
    np.testing.assert_allclose(panels.data[2].z, (b.memory_matrix(1, 0, 25) - a.memory_matrix(1, 0, 25)).numpy())
    off = compare.run_side(model, text, Ablation(memory=False))
    assert compare.compare_memory(a, off, 1, 0, 25) is None


def test_a_long_run_gets_sparser_click_targets(runs):
    """Past MAX_CLICK_TARGETS tokens the invisible click points thin out (SVG markers cost the browser),
    evenly, from the first token, at most MAX_CLICK_TARGETS per panel."""
    model, _ = runs
    rec, _ = record(model, "abcdefgh" * 80)  # 640 tokens: every fourth one
    targets = [t for t in timelines.timeline_figure(rec).data if t.name == "click target"]
    assert len(targets) == 4 and all(len(t.x) == len(t.y) <= timelines.MAX_CLICK_TARGETS for t in targets)
    np.testing.assert_array_equal(targets[0].x, np.arange(0, 640, 4))
    np.testing.assert_allclose(targets[0].y, np.nan_to_num(rec.stream("loss").double().numpy())[::4])


def test_timeline_scales_are_honest(model):
    """Bounded streams on their physical range (an exact 0 or 1 looks like one); surprise capped at its
    99th percentile only when an outlier would flatten it, and the panel says so."""
    from nested_learning import Ablation
    from nested_learning.recording import record
    from nested_learning.viz import timelines
    rec, _ = record(model, "the cat sat on the mat. " * 3, ablation=Ablation(test_time_updates=False))
    figure = timelines.timeline_figure(rec)
    scales = {trace.name: (trace.zmin, trace.zmax) for trace in figure.data if trace.type == "heatmap"}
    assert scales["learning rate"] == (0.0, model.config.max_learning_rate)
    assert scales["retention"] == (model.config.min_retention, 1.0)
    rec.tensors["layers.0.memory.surprise"][5, 0] = 1e3  # one outlier
    figure = timelines.timeline_figure(rec)
    surprise = next(t for t in figure.data if t.name.startswith("surprise"))
    assert surprise.zmax < 10 and "capped at the 99th percentile" in figure.layout.annotations[1].text


def test_a_chart_selection_gives_the_positions_to_scrub_to():
    from nested_learning.viz.timelines import clicked_positions
    assert clicked_positions(None) == () and clicked_positions({"selection": {"points": [], "box": []}}) == ()
    assert clicked_positions({"selection": {"points": [{"x": 12.0}, {"x": 3}]}}) == (3, 12)
    box = {"selection": {"points": [], "box": [{"xref": "x", "x": [42.06, 50.02], "y": [5.8, 5.2]}]}}
    assert clicked_positions(box) == (43,)  # the first token inside the dragged span


def test_heatmaps_name_their_axes_and_surprise_a_and_b_share_a_labelled_bar(model):
    from nested_learning.recording import record
    from nested_learning.viz import compare, heatmaps
    for figure in heatmaps.memory_figures(torch.eye(4), torch.zeros(4, 4)):
        assert figure.layout.xaxis.title.text == "key dimension" and figure.layout.yaxis.title.text == "value dimension"
        assert figure.layout.yaxis.scaleanchor == "x"  # square cells for a square memory
    wide = heatmaps.memory_figures(torch.ones(16, 128), torch.zeros(16, 128), "token 3")  # DPFP keys: 8x wider
    assert all(f.layout.yaxis.scaleanchor is None for f in wide)  # fills the panel instead of a thin strip
    assert wide[0].layout.title.text == "M_t after token 3" and wide[1].layout.title.text == "M_t - M_(t-1)"
    assert heatmaps.ab_figure(torch.ones(16, 128), torch.ones(16, 128)).layout.yaxis.scaleanchor is None
    a, _ = record(model, "abcabc")
    timeline = compare.compare_timeline(a, a)
    bars = [t.colorbar.title.text for t in timeline.data if t.type == "heatmap" and t.showscale is not False]
    assert bars == ["A and B", "B - A"]


def test_the_token_axis_shows_the_text(runs):
    model, rec = runs
    bottom_axis = lambda fig: fig.layout[sorted({t.xaxis for t in fig.data})[-1].replace("x", "xaxis")]
    fig = timelines.timeline_figure(rec)
    bottom = bottom_axis(fig)
    text = [ByteTokenizer.token_label(i) for i in rec.tokens.tolist()]
    assert list(bottom.ticktext) == ["·" if c == " " else c for c in text]  # one character per token
    assert list(bottom.tickvals) == list(range(5, 5 + rec.n_tokens))
    long, _ = record(model, "a long run " * 20)  # beyond MAX_TEXT_TICKS tokens: positions, not characters
    assert long.n_tokens > timelines.MAX_TEXT_TICKS
    bottom = bottom_axis(timelines.timeline_figure(long))
    assert bottom.ticktext is None and bottom.title.text == "token position in the stream"


def test_b_options_name_and_resolve_what_b_can_run():
    presets = ["hope", "transformer"]
    assert compare.b_options(presets, shipped=True, uploaded=False, current_kind="preset") == \
        ["same", "shipped", "preset:hope", "preset:transformer"]
    # B never offers the model A already is
    assert "shipped" not in compare.b_options(presets, True, True, "shipped")
    assert "upload" not in compare.b_options(presets, True, True, "upload")
    assert "shipped" not in compare.b_options(presets, shipped=False, uploaded=False, current_kind="preset")
    with_files = compare.b_options(presets, True, False, "shipped", ["base.safetensors", "deep.safetensors"])
    assert with_files == ["same", "checkpoint:base.safetensors", "checkpoint:deep.safetensors", "preset:hope", "preset:transformer"]
    assert "checkpoint:deep.safetensors" not in compare.b_options(presets, True, False, "checkpoint", ["deep.safetensors"],
                                                                  "deep.safetensors")
    assert compare.b_source("checkpoint:deep.safetensors") == ("checkpoint", "deep.safetensors")
    assert compare.b_label("checkpoint:deep.safetensors", notes={"deep.safetensors": "a variant"}) == \
        "the checkpoint deep.safetensors: a variant"
    assert compare.b_source("preset:transformer") == ("preset", "transformer")
    assert compare.b_source("shipped") == ("shipped", "")
    assert compare.b_label("shipped", "hope-default.safetensors") == "the shipped checkpoint (hope-default.safetensors)"
    assert compare.side_label(Ablation.from_names(["memory"]), "preset:transformer") == \
        "B (memory off, random-init 'transformer' preset)"
    assert compare.side_label(Ablation(), "same") == "B (all on)"
    assert compare.side_label(Ablation.from_names("test_time_updates,cms.2"), "same") == \
        "B (test-time updates, CMS level 2 off)"  # plain names, as people read them
    for name in Ablation.SWITCHES:
        assert "_" not in compare.switch_label(name)


def test_a_long_run_is_drawn_in_bins_that_keep_its_spikes(monkeypatch, runs):
    """Past MAX_TIMELINE_COLUMNS tokens each drawn column is a bin of tokens: surprise and learning rate
    keep the bin's largest value, retention its smallest, the loss its range; the CMS raster becomes a
    binned heatmap of the largest update norm; clicks still scrub on every panel."""
    model, _ = runs
    rec, _ = record(model, "abcdefgh" * 40)  # 320 tokens
    monkeypatch.setattr(timelines, "MAX_TIMELINE_COLUMNS", 100)  # bins of 4 tokens
    monkeypatch.setattr(timelines, "MAX_RASTER_MARKERS", 10)
    fig = timelines.timeline_figure(rec, rec.cms_events())
    loss, surprise, lr, retention, raster, *targets = fig.data
    stream = lambda name: rec.stream(f"layers.0.memory.{name}")[:, 0].double().numpy().reshape(80, 4)
    np.testing.assert_allclose(surprise.z[0], stream("surprise").max(1), rtol=1e-6)
    np.testing.assert_allclose(lr.z[0], stream("learning_rate").max(1), rtol=1e-6)
    np.testing.assert_allclose(retention.z[0], stream("retention").min(1), rtol=1e-6)
    np.testing.assert_array_equal(surprise.x, np.arange(0, 320, 4))
    values = np.nan_to_num(rec.stream("loss").double().numpy(), nan=-1.0).reshape(80, 4)
    strokes = np.asarray(loss.y, dtype=float).reshape(80, 2)
    finite = values.min(1) >= 0  # the last bin holds the token without a next one
    np.testing.assert_allclose(strokes[finite], np.stack([values.min(1), values.max(1)], 1)[finite], rtol=1e-6)
    events = rec.cms_events()
    assert raster.type == "heatmap" and raster.name == "CMS updates" and np.asarray(raster.z).shape == (8, 80)
    first = events[(events.layer == 0) & (events.level == 0)]["update_norm"].to_numpy().reshape(80, 4).max(1)
    np.testing.assert_allclose(np.asarray(raster.z)[0], first, rtol=1e-6)
    assert len(targets) == 5 and {t.yaxis for t in targets} == {t.yaxis for t in (loss, surprise, lr, retention, raster)}


def test_overlay_aligns_runs_on_a_text_and_names_the_ones_without_it():
    model = tiny_model()
    early, _ = record(model, "the cat sat. and more")
    late, _ = record(model, "zzzz zzzz the cat sat.")
    other, _ = record(model, "nothing like it")
    figure = timelines.overlay_figure({"early": early, "late": late, "other": other}, align_on="the cat")
    lines = {t.name: t for t in figure.data if t.showlegend is not False}
    assert set(lines) == {"early", "late"} and "without the text: other" in figure.layout.annotations[0].text
    assert lines["early"].x[0] == 0 and lines["late"].x[10] == 0  # each counted from where it read the text
    assert figure.layout.xaxis2.title.text == "tokens from the start of the aligned text"
    slim = timelines.overlay_streams(late)
    assert set(slim.tensors) == {"tokens", "loss", "layers.0.memory.surprise", "layers.1.memory.surprise"}
    same = timelines.overlay_figure({"late": slim}, align_on="the cat")
    assert np.array_equal(same.data[0].y, timelines.overlay_figure({"late": late}, align_on="the cat").data[0].y,
                          equal_nan=True)
    assert timelines.span_start(late, "") is None and timelines.span_start(late, "cat") == 14
