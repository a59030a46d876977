"""The Validate page's tables come from the suite's results unchanged."""
import json

import pytest

from nested_learning.validation import Result, write_json
from nested_learning.validation.stats import Estimate
from nested_learning.viz import validation_view


def _result(passed: bool) -> Result:
    return Result(name="memory_updates", title="1. Memory updates", claim="c", pass_rule="PASS when x",
                  passed=passed, seeds={"data": 0}, n_sequences=4,
                  metrics={"ratio": Estimate(0.6, 0.5, 0.7, 100), "count": Estimate(1.0, 1.0, 1.0, 4)},
                  tables={"per_reading": [{"reading": 1, "loss": 2.0}, {"reading": 2, "loss": 1.5}], "empty": []},
                  checks={"a": True, "b": passed}, runtime_s=1.25)


def test_frames_show_verdicts_checks_and_intervals():
    results = [_result(True), _result(False)]
    summary = validation_view.summary_frame(results)
    assert list(summary["result"]) == ["PASS", "FAIL"]
    assert list(summary["checks"]) == ["2/2", "1/2"] and list(summary["failed checks"]) == ["", "b"]
    metrics = validation_view.metrics_frame(results[0])
    assert metrics.iloc[0].to_dict() == {"metric": "ratio", "mean": 0.6, "95% CI low": 0.5, "95% CI high": 0.7, "n": 100}
    assert validation_view.checks_frame(results[1])["holds"].tolist() == [True, False]
    tables = validation_view.table_frames(results[0])
    assert list(tables) == ["per_reading"] and tables["per_reading"]["loss"].tolist() == [2.0, 1.5]


def test_saved_report_next_to_the_shipped_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(validation_view, "ROOT", tmp_path)
    checkpoint = tmp_path / "assets" / "model.safetensors"
    assert validation_view.saved_report(checkpoint) is None
    (tmp_path / "reports").mkdir()
    write_json(tmp_path / "reports" / "validation-model.json", [_result(True)], {"command": "x", "finished": "now"})
    meta, results = validation_view.saved_report(checkpoint)
    assert meta["command"] == "x" and results[0].metrics["ratio"].ci_high == 0.7
    (tmp_path / "reports" / "validation-model.json").write_text(json.dumps({"format": "other"}))
    assert validation_view.saved_report(checkpoint) is None  # unreadable: no saved section, no crash


def test_curves_draw_each_condition_with_its_interval():
    rows = [{"gap": g, "condition": c, "ratio": r, "ratio_ci_low": r - 0.1, "ratio_ci_high": r + 0.1}
            for g in (100, 250) for c, r in (("own", 0.8), ("swap", 1.0))]
    result = Result(name="repetition_learning", title="2. Repetition", claim="c", pass_rule="PASS when x", passed=False,
                    seeds={}, n_sequences=2, metrics={}, tables={"ratio_by_gap": rows, "other": [{"a": 1}]})
    (figure,) = validation_view.curve_figures(result)
    assert [t.name for t in figure.data] == ["own", "swap"] and list(figure.data[0].x) == [100, 250]
    assert list(figure.data[1].error_y.array) == pytest.approx([0.1, 0.1])
    position = Result(name="loss_by_position", title="7.", claim="c", pass_rule="p", passed=False, seeds={}, n_sequences=1,
                      metrics={}, judged=False, tables={"loss_by_position": [
                          {"positions": "1-16", "first": 1, "last": 16, "loss": 2.0, "baseline_loss": 2.5}]})
    assert [t.name for t in validation_view.curve_figures(position)[0].data] == ["model", "baseline"]
    assert validation_view.curve_figures(_result(True)) == []


def test_a_quick_run_is_called_a_smoke_test_not_properties_that_hold():
    results = [_result(True), _result(True)]
    quick = validation_view.headline(results, quick=True)
    assert "Smoke test" in quick and "indicative" in quick and "properties hold" not in quick and "4 sequences" in quick
    assert validation_view.headline(results, quick=False).startswith("**2 of 2 properties hold**")
    assert list(validation_view.summary_frame(results, quick=True)["result"]) == ["PASS (smoke test)"] * 2
