"""Compare, Learn, Validate and Model pages under streamlit.testing."""
import numpy as np
from streamlit.testing.v1 import AppTest

from nested_learning import save_checkpoint
from nested_learning.validation import run_suite, write_json
from nested_learning.viz import alike, models, validation_view
from tests.support.models import diverging_model
from tests.conftest import tiny_model
from tests.support.apptest import APP, arrays, figure, has_chart, metric, ok, table


def test_compare_side_by_side(app):
    at = ok(app().run())
    ok(at.switch_page("app_pages/compare.py").run())
    at.pills(key="compare_off").set_value(["test_time_updates"])
    ok(at.button(key="compare_run").click().run())
    summary = table(at, "mean surprise")
    assert list(summary.index) == ["A", "B", "B - A"]
    assert summary.loc["B", "mean surprise"] != summary.loc["A", "mean surprise"]  # B's memory stays frozen
    assert 0 <= summary.loc["A", "recall accuracy"] <= 1  # the preset's answers are known
    timeline = figure(at, "compare_timeline")
    assert len(timeline["data"]) == 6  # loss A, loss B, B - A bars, surprise A, B, B - A
    panels = figure(at, "compare_memory")["data"]
    assert panels[0]["zmax"] == panels[1]["zmax"]  # shared scale
    np.testing.assert_allclose(arrays(panels[2]["z"]), arrays(panels[1]["z"]) - arrays(panels[0]["z"]), atol=1e-12)
    ok(at.slider(key="compare_token").set_value(2).run())
    assert not np.allclose(arrays(figure(at, "compare_memory")["data"][0]["z"]), arrays(panels[0]["z"]))
    at.pills(key="compare_off").set_value(["memory"])
    ok(at.button(key="compare_run").click().run())
    assert not has_chart(at, "compare_memory") and "no test-time memory" in at.info[0].value
    assert at.query_params["off"] == "memory"
    ok(at.switch_page("app_pages/explore.py").run())
    assert at.pills(key="view_off").value in (None, [])  # Compare's B choice stays on Compare


def test_a_compare_link_reproduces_the_comparison(app):
    at = ok(app().run())
    ok(at.switch_page("app_pages/compare.py").run())
    at.text_area(key="compare_text").set_value("Alice met Bob at noon. Alice met Bob at noon.").run()
    at.selectbox(key="compare_b").set_value("preset:transformer").run()
    ok(at.button(key="compare_run").click().run())
    ok(at.slider(key="compare_token").set_value(5).run())
    params = dict(at.query_params)
    assert params["b"] == "preset:transformer" and params["token"] == "5" and "text" in params
    fresh = app()  # another browser opens the link: the Compare page first
    fresh.query_params.update(params)
    ok(fresh.switch_page("app_pages/compare.py").run())
    assert fresh.selectbox(key="compare_b").value == "preset:transformer"
    assert any("random-init 'transformer' preset" in m.value for m in fresh.markdown)  # it ran on arrival
    assert fresh.slider(key="compare_token").value == 5


def test_b_runs_another_checkpoint_shipped_beside_the_default(tiny_checkpoint, tmp_path, monkeypatch):
    """Every other checkpoint in the default one's folder (the baseline, trained variants) is a B choice,
    by file name only; its label says what it is when the notes know it."""
    default = tmp_path / tiny_checkpoint.name
    default.write_bytes(tiny_checkpoint.read_bytes())
    variant = tiny_model("transformer", seed=3)
    save_checkpoint(variant, tmp_path / models.BASELINE_NAME)
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", default)
    at = ok(AppTest.from_file(APP, default_timeout=90).run())
    ok(at.switch_page("app_pages/compare.py").run())
    option = f"checkpoint:{models.BASELINE_NAME}"
    assert "the checkpoint transformer-window16.safetensors: the same-size transformer" in \
        " ".join(at.selectbox(key="compare_b").options)  # labelled with what it is
    at.selectbox(key="compare_b").set_value(option).run()
    ok(at.button(key="compare_run").click().run())
    summary = table(at, "mean surprise")
    assert np.isnan(summary.loc["B", "mean surprise"])  # the transformer has no memory
    assert summary.loc["B", "mean loss (nats)"] != summary.loc["A", "mean loss (nats)"]
    assert at.query_params["b"] == option


def test_learn_demos_each_run_in_one_click(app):
    at = ok(app().run())
    ok(at.switch_page("app_pages/learn.py").run())
    at.text_area(key="learn_store").set_value("<b>cat</b> = **meow**\ncats = purr\nnot a pair").run()
    ok(at.button(key="learn_store_run").click().run())
    store = table(at, "delta error")
    assert list(store["key"]) == ["<b>cat</b>", "cats"] and "line 3" in at.warning[0].value
    assert "&lt;b&gt;cat" in figure(at, "learn_store_fig")["data"][0]["x"][0]  # escaped for Plotly
    assert any("mean recall error" in m.value for m in at.success)  # the lesson checked its claims
    ok(at.slider(key="learn_passes").set_value(5).run())
    ok(at.button(key="learn_store_run").click().run())
    assert table(at, "delta error")["delta error"].max() < store["delta error"].max()
    for button, column in (("learn_repeat_run", "copy"), ("learn_cms_run", "period (tokens)"),
                           ("learn_recall_run", "model predicts"), ("learn_forget_run", "reading"),
                           ("learn_variants_run", "second reading")):
        ok(at.button(key=button).click().run())
        assert not table(at, column).empty, button
        if column == "copy":
            assert list(table(at, "copy")["copy"]) == [1, 2, 3, 4]
        if column == "model predicts":  # recall with the memory learning, and frozen for comparison
            labels = [m.label for m in at.metric]
            assert "Answer digits predicted right" in labels and "The same with test-time updates off" in labels
        if column == "second reading":  # the passage reread verbatim, shuffled, corrupted and paraphrased
            assert len(table(at, "second reading")) == 4 and any(m.value.startswith("Paraphrased") for m in
                                                                 list(at.success) + list(at.warning))


def test_in_classroom_mode_every_lesson_waits_for_the_class_prediction_then_reveals_it(app):
    at = ok(app().run())
    ok(at.switch_page("app_pages/learn.py").run())
    at.session_state["classroom"] = True
    ok(at.run())
    lessons = ("store", "repeat", "cms", "recall", "forget")
    assert all(at.button(key=f"learn_{name}_run").disabled for name in lessons)  # Run waits for a prediction
    for name in lessons:
        radio = at.radio(key=f"learn_{name}_predict")
        assert radio.label.startswith("Predict first")
        ok(radio.set_value(radio.options[0]).run())
        assert not at.button(key=f"learn_{name}_run").disabled
        ok(at.button(key=f"learn_{name}_run").click().run())
        assert any(m.value.startswith(f"You predicted **{radio.options[0]}**") for m in at.info), name
        if name == "cms":  # the lesson checks its claim on the model
            assert any(m.value.startswith("Each level updated once per period") for m in at.success)


def test_validate_runs_the_suite_and_shows_the_saved_report(app, tiny_checkpoint, tmp_path, monkeypatch):
    at = ok(app().run())
    ok(at.switch_page("app_pages/validate.py").run())
    at.multiselect(key="validate_only").set_value(["long_range_persistence", "module_exactness"]).run()
    ok(at.button(key="validate_run").click().run())
    summary = table(at, "failed checks")
    assert len(summary) == 2 and summary["property"].iloc[1].endswith("exactness: delta-rule recall")
    assert summary["result"].iloc[1] == "PASS (smoke test)"  # exactness holds whatever the model; quick is a smoke test
    assert "quick settings" in at.caption[0].value and "Your run" in [s.value for s in at.subheader]
    assert any("Smoke test" in m.value for m in at.markdown) and not any("properties hold" in m.value for m in at.markdown)
    assert not any("Saved report" in s.value for s in at.subheader)
    monkeypatch.setattr(validation_view, "ROOT", tmp_path)  # a saved report for the shipped (tiny) checkpoint
    (tmp_path / "reports").mkdir()
    write_json(validation_view.report_file(tiny_checkpoint), run_suite(tiny_model(), quick=True, only="module_exactness"),
               {"command": "python -m nested_learning validate", "finished": "today", "settings": "quick"})
    ok(at.run())
    assert any("Saved report" in s.value and "not a run of yours" in s.value for s in at.subheader)


def test_validate_shows_the_models_trained_alike_on_opening(app):
    at = ok(app().run())
    ok(at.switch_page("app_pages/validate.py").run())
    assert not has_chart(at, "alike_curves")  # closed, it reads no report
    at.session_state["validate_alike"] = True
    ok(at.run())
    names = {t["name"] for t in figure(at, "alike_curves")["data"]}
    assert {alike.SHIPPED, "transformer, window 16 (the baseline)"} <= names
    assert any("reports/model-targets.json" in c.value for c in at.caption)


def test_model_page_shows_and_switches_models(app, tiny_checkpoint):
    at = ok(app().run())
    ok(at.switch_page("app_pages/model.py").run())
    parameters = table(at, "parameters")
    assert parameters.iloc[-1]["parameters"] == sum(p.numel() for p in tiny_model().parameters())
    curve = figure(at, "model_curve")  # the metrics file next to the checkpoint
    assert [t["name"] for t in curve["data"]] == ["training loss"]
    at.radio(key="model_source").set_value("upload").run()
    at.file_uploader(key="model_upload").set_value(("bad.safetensors", b"not a checkpoint", "application/octet-stream"))
    ok(at.run())
    at.button(key="model_load_upload").click().run()
    assert not at.exception and "Not loaded, the current model stays" in at.error[0].value
    assert "tiny\\-app" in at.sidebar.caption[0].value  # still the shipped model
    other = tiny_model(n_layers=1)
    name = "**one** <b>layer</b>.safetensors"  # a file name is user text: shown escaped
    at.file_uploader(key="model_upload").set_value((name, models.checkpoint_bytes(other), "application/octet-stream"))
    ok(at.run())
    ok(at.button(key="model_load_upload").click().run())
    assert "uploaded \\*\\*one\\*\\* \\<b\\>layer" in at.sidebar.caption[0].value
    config = table(at, "field")
    assert config.set_index("field").loc["n_layers", "value"] == "1"


def test_a_diverging_run_names_token_and_layer_and_keeps_the_memory(monkeypatch, tmp_path):
    # A model whose byte "z" embeds to infinity (a checkpoint cannot hold that: the loader refuses
    # non-finite tensors), served as the default model under a name no other test uses.
    model = diverging_model()
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", save_checkpoint(tiny_model(), tmp_path / "diverging.safetensors"))
    monkeypatch.setattr(models, "build_model", lambda choice: model)
    at = ok(AppTest.from_file(APP, default_timeout=90).run())
    at.segmented_control(key="explore_source").set_value("Type").run()
    at.text_area(key="explore_text").set_value("abc").run()
    ok(at.button(key="run").click().run())
    at.text_area(key="explore_text").set_value("xyzw").run()
    at.button(key="run").click().run()
    assert not at.exception
    assert "diverged at token 2 (character z), stream position 5, layer 0" in at.error[0].value
    assert metric(at, "Memory holds") == "3 tokens" and metric(at, "Stream positions") == "0-2"


def test_a_one_byte_input_runs_on_explore_and_compare(app):
    at = ok(app().run())
    at.segmented_control(key="explore_source").set_value("Type").run()
    at.text_area(key="explore_text").set_value("x").run()
    ok(at.button(key="run").click().run())
    assert any("nothing to scrub" in c.value for c in at.caption)
    assert metric(at, "Memory holds") == "1 tokens"  # the sidebar survives
    ok(at.run())  # and a later visit still renders
    ok(at.switch_page("app_pages/compare.py").run())
    at.text_area(key="compare_text").set_value("x").run()
    ok(at.button(key="compare_run").click().run())
    assert any("nothing to scrub" in c.value for c in at.caption)


def test_run_waits_for_text_that_is_not_only_whitespace(app):
    at = ok(app().run())
    at.segmented_control(key="explore_source").set_value("Type").run()
    at.text_area(key="explore_text").set_value("  \n\t ").run()
    assert at.button(key="run").disabled and any("Nothing to read yet" in c.value for c in at.caption)
    at.text_area(key="explore_text").set_value(" a ").run()
    assert not at.button(key="run").disabled


def test_compare_and_learn_name_a_divergence_instead_of_showing_nan(monkeypatch, tmp_path):
    model = diverging_model()
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", save_checkpoint(tiny_model(), tmp_path / "diverging-cl.safetensors"))
    monkeypatch.setattr(models, "build_model", lambda choice: model)
    at = ok(AppTest.from_file(APP, default_timeout=90).run())
    ok(at.switch_page("app_pages/compare.py").run())
    at.text_area(key="compare_text").set_value("pizza").run()
    at.button(key="compare_run").click().run()
    assert not at.exception and "A: The run diverged at token 2 (character z)" in at.error[0].value
    ok(at.switch_page("app_pages/learn.py").run())
    at.text_input(key="learn_repeat").set_value("zoo ").run()
    at.button(key="learn_repeat_run").click().run()
    assert not at.exception and "diverged at token 0 (character z)" in at.error[0].value
    assert metric(at, "Memory holds") == "0 tokens"  # the sidebar stays


def test_a_full_server_queues_then_refuses_with_the_place(app, monkeypatch):
    from app_pages import serving
    monkeypatch.setenv("NLE_MAX_RUNNING", "1")
    monkeypatch.setenv("NLE_WAIT_LIMIT_S", "0.5")
    serving.shared_admission.clear()
    try:
        settings, pools, problem = serving.shared_admission()
        assert settings.max_running == 1 and problem is None
        at = ok(app().run())
        with pools["run"].slot("another browser session"):
            at.button(key="run").click().run()
            assert "Waited 0.5 s at place 1 in the queue" in at.error[0].value
            assert metric(at, "Memory holds") == "0 tokens"
        ok(at.button(key="run").click().run())  # the slot is free again
        assert metric(at, "Memory holds") != "0 tokens"
    finally:
        serving.shared_admission.clear()


def test_every_component_off_runs_on_explore_and_compare(app):
    """The all-off ablation (no attention, memory, CMS, FFN ...: embeddings and the output head only)."""
    from nested_learning.viz.view import ablation_names
    at = ok(app().run())
    names = ablation_names(load_config(at))
    at.pills(key="view_off").set_value(names)
    ok(at.button(key="run").click().run())
    assert metric(at, "Mean surprise") == "n/a" and metric(at, "Memory holds") != "0 tokens"
    ok(at.switch_page("app_pages/compare.py").run())
    at.pills(key="compare_off").set_value(names)
    ok(at.button(key="compare_run").click().run())
    assert "B - A" in list(table(at, "mean surprise").index)


def load_config(at):
    from nested_learning import load_checkpoint
    return load_checkpoint(models.DEFAULT_CHECKPOINT).config


def test_classroom_mode_asks_for_a_prediction_then_reveals(app):
    at = ok(app().run())
    ok(at.switch_page("app_pages/learn.py").run())
    assert not at.radio  # no prompts outside classroom mode
    ok(at.sidebar.toggle(key="classroom").set_value(True).run())
    assert "font-size" in "".join(h.proto.body for h in at.get("html"))  # the larger type
    at.radio(key="learn_repeat_predict").set_value("lower").run()
    ok(at.button(key="learn_repeat_run").click().run())
    assert any(i.value.startswith("You predicted **lower**; the model:") for i in at.info)


def test_tables_are_formatted_for_people():
    import pandas as pd
    from app_pages.widgets import for_people
    frame = pd.DataFrame({"error": [9.922861e-17, 0.123456, float("nan")], "parameters": [654056, 12, 3]})
    text = for_people(frame).to_string()
    assert "9.92e-17" in text and "0.123" in text and "n/a" in text and "654,056" in text
    assert "0.123456" not in text and "nan" not in text


def test_b_runs_the_2_layer_memory_beside_the_linear_one(tiny_checkpoint, tmp_path, monkeypatch):
    """The deep-memory checkpoint shipped beside the default is a B choice that runs: both memories report
    their surprise, and the memory panel says why one M_t cannot be drawn against the other."""
    default = tmp_path / tiny_checkpoint.name
    default.write_bytes(tiny_checkpoint.read_bytes())
    save_checkpoint(tiny_model(memory_depth=2, seed=3), tmp_path / "hope-deep.safetensors")
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", default)
    at = ok(AppTest.from_file(APP, default_timeout=90).run())
    ok(at.switch_page("app_pages/compare.py").run())
    assert "2-layer MLP memory" in " ".join(at.selectbox(key="compare_b").options)
    at.selectbox(key="compare_b").set_value("checkpoint:hope-deep.safetensors").run()
    ok(at.button(key="compare_run").click().run())
    summary = table(at, "mean surprise")
    assert summary["mean surprise"].notna().all()
    assert not has_chart(at, "compare_memory") and "2-layer memory against a linear one" in at.info[0].value
