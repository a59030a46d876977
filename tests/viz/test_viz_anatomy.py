"""The delta rule at one token: the parts add up to the recorded memory, old recordings still work."""
import numpy as np
import pytest

from nested_learning import Ablation
from nested_learning.recording import record
from nested_learning.viz.anatomy import ERROR, KEY, PREDICTION, VALUE, anatomy, anatomy_figure, explain
from tests.conftest import tiny_model
from tests.support.keys import with_stored_writes


@pytest.mark.parametrize("t, key_expansion", [(0, 1), (7, 1), (20, 1), (20, 4)])
def test_the_parts_add_up_to_the_next_memory(t, key_expansion):
    model = tiny_model(key_expansion=key_expansion)
    rec, _ = record(model, "the cat sat on the mat. the cat")
    a = anatomy(rec, 1, 1, t)
    np.testing.assert_allclose(a.error, a.value - a.prediction, atol=1e-12)
    np.testing.assert_allclose(a.write, np.outer(a.learning_rate * a.error, a.key), atol=1e-5)
    np.testing.assert_allclose(a.memory, a.retention * a.previous + a.write, atol=1e-5)
    np.testing.assert_allclose(a.prediction, a.previous @ a.key, atol=1e-12)
    assert a.key.shape == (key_expansion * a.value.shape[0],) and a.memory.shape == (len(a.value), len(a.key))
    figure = anatomy_figure(a)
    assert len(figure.data) == 5 and list(figure.data[0].y) == [KEY]
    assert list(figure.data[1].y) == [PREDICTION, VALUE, ERROR] and len(figure.data[0].x) == len(a.key)
    assert "off by" in explain(a)


def older_file(rec):
    """As recordings made before values were kept: writes, no errors, no values."""
    older = with_stored_writes(rec)
    for layer in older.memory_layers:
        del older.tensors[f"layers.{layer}.memory.values"]
    return older


def test_a_recording_without_values_derives_them_from_the_write(model):
    rec, _ = record(model, "the cat sat on the mat.")
    full = anatomy(rec, 0, 0, 5)
    derived = anatomy(older_file(rec), 0, 0, 5)
    np.testing.assert_allclose(derived.value, full.value, rtol=1e-4, atol=1e-5)


def test_without_updates_the_error_is_shown_and_nothing_written(model):
    """The recording keeps the error with updates off too: the anatomy shows what the memory got wrong
    and says nothing was written; a file from before (writes only, all zero) cannot show the error."""
    rec, _ = record(model, "abcdef", ablation=Ablation(test_time_updates=False))
    a = anatomy(rec, 0, 0, 3)
    assert a.learning_rate == 0 and not a.write.any() and np.linalg.norm(a.error) > 0
    assert np.isclose(np.linalg.norm(a.error), float(rec.memory_stream(0, "surprise")[3, 0]), rtol=1e-4)
    assert "nothing was written" in explain(a)
    assert list(anatomy_figure(a).data[1].y) == [PREDICTION, VALUE, ERROR]
    older = anatomy(older_file(rec), 0, 0, 3)
    assert older.error is None and "No write" in explain(older)
    assert list(anatomy_figure(older).data[1].y) == [PREDICTION]  # the prediction only
    with pytest.raises(KeyError, match="no test-time memory"):
        anatomy(record(model, "abc", ablation=Ablation(memory=False))[0], 0, 0, 1)


def test_the_figure_speaks_plainly_and_keeps_tick_labels_off_the_titles(model):
    figure = anatomy_figure(anatomy(record(model, "the cat sat on the mat.")[0], 0, 0, 5))
    titles = [a.text for a in figure.layout.annotations]
    assert len(titles) == 5 and not any("_(" in t or "_{" in t or "M_t" in t for t in titles)  # no raw LaTeX-like names
    assert any("own scale" in t or "write" in t for t in titles)
    # The key and the vector rows sit right above a row of titles: their index ticks would overlap them.
    assert figure.layout.xaxis.showticklabels is False and figure.layout.xaxis2.showticklabels is False
    write, after = figure.data[3], figure.data[4]
    assert write.zmax != after.zmax  # the write on its own scale, not the memory's
    # one value axis labelled on the left: the write's colour bar would cover the next panel's labels
    assert figure.layout[write.yaxis.replace("y", "yaxis")].showticklabels is False
    assert figure.layout[after.yaxis.replace("y", "yaxis")].showticklabels is False
