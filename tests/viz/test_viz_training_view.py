"""The training curve: nats and bits per byte apart, stage starts marked, plain names."""
from nested_learning.viz import models
from nested_learning.viz.training_view import stage_starts, training_figure


def test_the_shipped_curve_marks_each_stage_and_keeps_nats_apart_from_bits():
    frame = models.read_metrics(models.metrics_path(models.DEFAULT_CHECKPOINT))
    starts = stage_starts(frame)
    assert [stage for _, stage in starts] == ["copy", "gapped", "long", "mixed", "reread"]
    assert starts[1][0] == 410  # the jump near step 400: the gapped stage's first logged step
    figure = training_figure(frame)
    axes = {trace.yaxis: [] for trace in figure.data}
    for trace in figure.data:
        axes[trace.yaxis].append(trace.name)
    titles = [figure.layout[f"yaxis{a[1:]}"].title.text for a in axes]
    assert titles[:2] == ["bits per byte", "loss (nats per byte)"]
    assert list(axes.values())[:2] == [["training text", "held-out prose"], ["training loss"]]  # never one axis for both
    # a line per stage change, through every panel
    assert sorted({shape.x0 for shape in figure.layout.shapes}) == [step for step, _ in starts[1:]]
    assert len(figure.layout.shapes) == 4 * len(axes)
    assert [a.text for a in figure.layout.annotations] == [stage for _, stage in starts]
    assert not any("_" in trace.name for trace in figure.data)  # plain names, not metric keys


def test_nothing_to_plot_is_none_and_a_curve_without_stages_has_no_markers():
    import pandas as pd
    assert training_figure(pd.DataFrame()) is None and training_figure(pd.DataFrame({"step": [1], "note": ["x"]})) is None
    figure = training_figure(pd.DataFrame({"step": [1, 2], "loss": [5.0, 4.0]}))
    assert [t.name for t in figure.data] == ["training loss"] and not figure.layout.shapes
