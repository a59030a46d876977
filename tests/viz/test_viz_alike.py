"""The models trained alike: their curve reports read into one table and drawn as one figure."""
import json

import pytest

from nested_learning.viz import alike


def stat(mean):
    return {"mean": mean, "ci_low": mean - 0.01, "ci_high": mean + 0.02, "n": 48}


def report(reread=(), passkey=()):
    return {"reread": [{"gap": gap, "ratio_own": stat(v), "own": stat(9.0)} for gap, v in reread],
            "passkey": [{"distance": d, "token_distance": d + 54, "own": stat(v)} for d, v in passkey]}


@pytest.fixture
def reports(tmp_path):
    (tmp_path / "reports").mkdir()
    write = lambda name, data: (tmp_path / "reports" / name).write_text(json.dumps(data))
    write("a.json", report(reread=[(100, 0.3), (1000, 0.4)], passkey=[(1000, 0.9)]))
    write("a-long.json", report(reread=[(1000, 0.99), (8000, 0.6)], passkey=[(8000, 0.1)]))
    write("b.json", report(reread=[(100, 1.0)]))
    (tmp_path / "reports" / "broken.json").write_text("{not json")
    models = (alike.AlikeModel("a", "model a", ("reports/a.json", "reports/a-long.json")),
              alike.AlikeModel("b", "model b", ("reports/b.json", "reports/missing.json")),
              alike.AlikeModel("c", "model c", ("reports/broken.json",)))
    return tmp_path, models


def test_curves_merge_each_models_reports_and_the_first_report_wins_a_distance(reports):
    root, models = reports
    frame = alike.curves(models, root)
    a = frame[(frame["model"] == "a") & (frame["measure"] == "reread")]
    assert a["tokens_back"].tolist() == [100, 1000, 8000]
    assert a["mean"].tolist() == [0.3, 0.4, 0.6]  # 1,000 from a.json, not the later a-long.json's 0.99
    assert a["report"].tolist() == ["reports/a.json", "reports/a.json", "reports/a-long.json"]
    keys = frame[(frame["model"] == "a") & (frame["measure"] == "passkey")]
    assert keys["tokens_back"].tolist() == [1054, 8054]  # the distance in tokens, not the filler's bytes
    assert set(frame["model"]) == {"a", "b"}  # a missing or broken file is skipped
    assert frame[frame["model"] == "b"]["mean"].tolist() == [1.0]


def test_the_figure_draws_one_line_per_model_and_measure_with_intervals(reports):
    root, models = reports
    fig = alike.curves_figure(alike.curves(models, root))
    names = [(t.name, t.showlegend) for t in fig.data]
    assert names == [("model a", True), ("model b", True), ("model a", False)]  # reread a, b; pass key a
    keys = fig.data[2]
    assert list(keys.y) == pytest.approx([90.0, 10.0]) and list(keys.error_y.array) == pytest.approx([2.0, 2.0])
    assert list(keys.error_y.arrayminus) == pytest.approx([1.0, 1.0])  # percentages, intervals asymmetric
    assert fig.layout.xaxis.type == "log"


def test_every_shipped_report_it_names_reads():
    """The registry names the files bench/model_targets.py writes; the shipped model's curves are there."""
    frame = alike.curves()
    shipped = frame[frame["model"] == "hope"]
    assert set(shipped["measure"]) == set(alike.MEASURES)
    assert {"window16", "window512"} <= set(frame["model"])


def test_every_model_of_the_registry_keeps_a_colour_of_its_own():
    """A baseline drawn in the shipped model's green would read as the shipped model."""
    fig = alike.curves_figure(alike.curves())
    colours = {t.name: t.line.color for t in fig.data}
    assert len(set(colours.values())) == len(colours) >= 5
    assert len(alike._COLOURS) >= len(alike.ALIKE)
